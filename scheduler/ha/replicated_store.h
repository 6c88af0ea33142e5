// `ReplicatedStore`: the leader's `Store` under high availability (DESIGN.md section 12).
//
// A commit is acknowledged only once it is in etcd and in the local RocksDB, in that order:
//   1. the writer thread takes every queued commit (up to `max_group`), encodes them as one group
//      and appends it to the log in etcd, one transaction per record, each conditioned on the
//      leader key still having the revision it had when this scheduler won (`epoch`);
//   2. it writes the same mutations, plus the applied seq, to the local RocksDB;
//   3. it answers the callers in submission order.
// So the local database is always a prefix of the log, and a deposed leader cannot acknowledge
// anything: etcd refuses its transactions once another scheduler holds the leader key.
//
// A refused transaction, or etcd out of reach past the write deadline, fences the store: that
// group and every later commit fail with `kUnavailable` ("not the leader"), and `on_lost` runs
// once. `Fence` does the same from outside (the lease keeper saw the lease go). Reads go to the
// local database. Thread-safe like every `Store`.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "scheduler/ha/etcd_client.h"
#include "scheduler/state/rocksdb_store.h"

namespace gsched::ha {

// The meta key (family kMeta) of the last log seq a database has applied, as `U64Key`.
inline constexpr std::string_view kAppliedSeqKey = "ha_applied_seq";
// That seq of `store`; 0 when it has applied none.
Result<uint64_t> AppliedSeq(const state::Store& store);

struct ReplicatedStoreOptions {
  EtcdOptions etcd;
  std::string leader_key;
  std::string log_prefix;  // "<prefix>log/".
  int64_t epoch = 0;       // The leader key's revision when this scheduler took it.
  uint64_t next_seq = 1;   // The seq of the next record.
  // etcd refuses requests over 1.5 MiB by default; a record travels base64-encoded (4/3).
  size_t max_record_bytes = 1'000'000;
  size_t max_group = 8'192;
  size_t max_queue = 200'000;
  // Called once, on the thread that fenced the store (the writer, or the caller of `Fence`).
  std::function<void(const Status&)> on_lost;
};

struct ReplicationFigures {
  uint64_t groups = 0;   // Groups appended to the log.
  uint64_t records = 0;  // Records (etcd transactions) written.
  uint64_t bytes = 0;    // Record bytes written.
  uint64_t last_seq = 0;
  bool fenced = false;
  double etcd_seconds = 0;   // Spent waiting for etcd's answers to log writes.
  double local_seconds = 0;  // Spent writing groups to the local RocksDB.
};

class ReplicatedStore final : public state::Store {
 public:
  ReplicatedStore(std::unique_ptr<state::RocksDbStore> local, ReplicatedStoreOptions options);
  // Answers every queued commit (written, or failed once fenced), then stops the writer.
  ~ReplicatedStore() override;
  ReplicatedStore(const ReplicatedStore&) = delete;
  ReplicatedStore& operator=(const ReplicatedStore&) = delete;

  void CommitAsync(state::WriteBatch batch, CommitCallback done) override;
  Result<std::string> Get(state::Family f, std::string_view key) const override;
  Status Scan(state::Family f, std::string_view begin, std::string_view end,
              const std::function<bool(std::string_view, std::string_view)>& fn) const override;
  Result<std::optional<std::string>> LastKey(state::Family f) const override;
  state::CommitStats Stats() const override;

  // No write succeeds from now on; `on_lost` runs (once) with `why`.
  void Fence(const Status& why);
  bool fenced() const;
  ReplicationFigures Figures() const;
  state::RocksDbStore& local() { return *local_; }

  struct Impl;

 private:
  std::unique_ptr<state::RocksDbStore> local_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gsched::ha
