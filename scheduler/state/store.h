// The persistence interface of the scheduler (DESIGN.md section 4).
//
// State lives in named families (RocksDB column families): jobs, accounts, nodes, usage, events,
// tokens, meta. Values are opaque bytes; the server owns their encoding. A `WriteBatch` is applied
// atomically and durably: `Commit` returns (or calls back) only after the write-ahead log is
// synced, so an acknowledged change survives `kill -9` at any moment.
//
// Concurrency: `Commit` and `CommitAsync` may be called from any thread. Concurrent commits are
// group-committed: one writer takes everything queued, writes one batch with one sync, then answers
// all of them in submission order. Callbacks of `CommitAsync` run on the writer thread and must not
// block. Reads (`Get`, `Scan`) may run concurrently with writes and see committed data only.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "scheduler/common/status.h"

namespace gsched::state {

// `kJobIndex`: the jobs of each user and account (`u/<user>/<id>`, `a/<account>/<id>`, ids as
// `U64Key`), so that listing someone's jobs reads theirs, not every job.
enum class Family : uint8_t {
  kJobs,
  kAccounts,
  kNodes,
  kUsage,
  kEvents,
  kTokens,
  kMeta,
  kJobIndex
};
inline constexpr int kFamilyCount = 8;
std::string_view FamilyName(Family f);

// One change of a batch.
struct Mutation {
  enum class Kind : uint8_t { kPut, kDelete, kDeleteRange };
  Kind kind;
  Family family;
  std::string key;
  std::string value;  // kPut: the value; kDeleteRange: the exclusive end key.
};

class WriteBatch {
 public:
  void Put(Family f, std::string key, std::string value) {
    mutations_.push_back({Mutation::Kind::kPut, f, std::move(key), std::move(value)});
  }
  void Delete(Family f, std::string key) {
    mutations_.push_back({Mutation::Kind::kDelete, f, std::move(key), {}});
  }
  // Deletes keys in [begin, end).
  void DeleteRange(Family f, std::string begin, std::string end) {
    mutations_.push_back({Mutation::Kind::kDeleteRange, f, std::move(begin), std::move(end)});
  }
  // Adds `other`'s mutations after these.
  void Append(WriteBatch&& other) {
    if (mutations_.empty()) {
      mutations_ = std::move(other.mutations_);
      return;
    }
    for (Mutation& m : other.mutations_)
      mutations_.push_back(std::move(m));
  }
  bool empty() const { return mutations_.empty(); }
  size_t size() const { return mutations_.size(); }
  const std::vector<Mutation>& mutations() const { return mutations_; }
  // Approximate bytes, for limits and metrics.
  size_t ByteSize() const;

 private:
  std::vector<Mutation> mutations_;
};

// Figures of the group-commit writer, for `/metrics`.
struct CommitStats {
  uint64_t commits = 0;      // Batches handed to `Commit` / `CommitAsync`.
  uint64_t syncs = 0;        // Synced writes to disk; commits / syncs is the mean group size.
  uint64_t max_group = 0;    // Largest number of commits that shared one sync.
  uint64_t queue_depth = 0;  // Commits waiting right now.
  // The disk is (nearly) full or a write failed: commits wait, unanswered, until they can be made
  // durable.
  bool failing = false;
  uint64_t write_failures = 0;  // Attempts held back: the disk found full, or a failed write.
};

class Store {
 public:
  using CommitCallback = std::function<void(Status)>;
  virtual ~Store() = default;

  // Applies `batch` atomically and durably, then calls `done` (on the writer thread). When the
  // queue is full, `done` gets `kResourceExhausted` at once and nothing is written.
  virtual void CommitAsync(WriteBatch batch, CommitCallback done) = 0;
  // Blocking form of `CommitAsync`.
  Status Commit(WriteBatch batch);

  // The value at `key`, or `kNotFound`.
  virtual Result<std::string> Get(Family f, std::string_view key) const = 0;
  // Calls `fn` for each key in [begin, end) in key order (empty `end`: to the end of the family)
  // until it returns false.
  virtual Status Scan(
      Family f, std::string_view begin, std::string_view end,
      const std::function<bool(std::string_view key, std::string_view value)>& fn) const = 0;

  // The greatest key of the family, or nothing when it is empty.
  virtual Result<std::optional<std::string>> LastKey(Family f) const = 0;

  virtual CommitStats Stats() const = 0;
};

// Keys that sort numerically: 8 bytes, big-endian.
std::string U64Key(uint64_t v);
// Inverse of `U64Key`; fails unless `key` is exactly 8 bytes.
Result<uint64_t> ParseU64Key(std::string_view key);

}  // namespace gsched::state
