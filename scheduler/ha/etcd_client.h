// `EtcdClient`: the few etcd v3 calls high availability needs (DESIGN.md section 12), over etcd's
// HTTP/JSON gateway (`POST /v3/kv/txn`, `/v3/kv/range`, `/v3/lease/grant`, ...): keys and values
// travel base64-encoded, 64-bit numbers as strings, and proto3 leaves out false and zero fields.
//
// Several endpoints: a call goes to the current one; a connection failure, a timeout or an
// "unavailable" answer (no etcd leader, say) moves to the next and tries again until the call's
// deadline. Every call gsched makes is safe to repeat: a put of the same key and value under the
// same condition, a range, a delete, a lease grant (a second lease only expires).
//
// Blocking and not thread-safe: one client per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "scheduler/common/clock.h"
#include "scheduler/common/status.h"

namespace gsched::ha {

struct EtcdOptions {
  std::vector<std::string> endpoints;     // "http://127.0.0.1:2379", ...
  std::string ca_file;                    // For https endpoints.
  Duration attempt_timeout = Seconds(1);  // One request to one endpoint.
  Duration call_timeout = Seconds(5);     // A call, over every endpoint and retry.
};

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t lease = 0;
};

struct RangeResult {
  std::vector<KeyValue> kvs;
  bool more = false;
  int64_t revision = 0;  // The store's revision when read.
};

// One condition of a transaction; all must hold for the success branch.
struct Compare {
  enum class Target { kCreateRevision, kModRevision };
  std::string key;
  Target target = Target::kModRevision;
  int64_t revision = 0;  // Equal to this (0 for "absent" with kCreateRevision).
};

struct TxnOp {
  enum class Kind { kPut, kRange, kDeleteRange };
  Kind kind = Kind::kRange;
  std::string key;
  std::string value;      // kPut.
  std::string range_end;  // kRange / kDeleteRange: exclusive end; empty: the key alone.
  int64_t lease = 0;      // kPut.
  int64_t limit = 0;      // kRange: 0 for no limit.
  static TxnOp Put(std::string key, std::string value, int64_t lease = 0);
  static TxnOp Range(std::string key, std::string range_end = {}, int64_t limit = 0);
  static TxnOp DeleteRange(std::string key, std::string range_end);
};

struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;             // The revision after the transaction.
  std::vector<RangeResult> ranges;  // One per kRange op of the branch taken, in order.
};

// The end of the range of every key starting with `prefix`.
std::string PrefixEnd(std::string_view prefix);

class EtcdClient {
 public:
  explicit EtcdClient(EtcdOptions options);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  Result<TxnResult> Txn(const std::vector<Compare>& compare, const std::vector<TxnOp>& success,
                        const std::vector<TxnOp>& failure = {});
  Result<RangeResult> Range(std::string_view key, std::string_view range_end = {},
                            int64_t limit = 0);
  Status Put(std::string_view key, std::string_view value, int64_t lease = 0);
  Status DeleteRange(std::string_view key, std::string_view range_end);

  // A new lease of `ttl` (whole seconds, at least 1); its id.
  Result<int64_t> Grant(Duration ttl);
  // Renews the lease; the TTL it has now, or `kNotFound` once it expired or was revoked.
  Result<Duration> KeepAlive(int64_t lease);
  Status Revoke(int64_t lease);

  // The endpoint the last call used.
  const std::string& endpoint() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace gsched::ha
