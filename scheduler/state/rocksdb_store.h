// `RocksDbStore`: the durable `Store`, one RocksDB database under `data_dir` with a column family
// per `Family`, and a group-commit writer thread.
//
// Group commit: callers enqueue batches; the writer thread takes everything queued (up to
// `max_group` commits), merges it into one RocksDB write batch, writes it with `sync = true`, then
// answers every caller in submission order. Each caller's batch stays atomic because the merged
// write is atomic. The queue is bounded by `max_queue`: past it a commit fails fast with
// `kResourceExhausted` rather than growing memory.
//
// A commit is answered only once it is durable. A disk short of `min_free_bytes` holds the group
// unanswered until it has room; so does a write that RocksDB reports failed with an I/O error:
// the database is reopened (RocksDB takes no writes after a failed one) and the same group
// written again, with backoff, until it succeeds or the store closes. Meanwhile
// `CommitStats::failing` is set so that callers can refuse new writes; reads go on.
//
// RocksDB headers stay in the .cpp (pimpl) so that including this header is cheap.
#pragma once

#include <memory>
#include <string>

#include "scheduler/state/store.h"

namespace rocksdb {
class Env;
}

namespace gsched::state {

struct RocksDbOptions {
  std::string path;
  size_t max_queue = 200'000;  // Commits waiting for the writer before new ones are refused.
  size_t max_group = 8'192;    // Commits that may share one sync.
  bool sync = true;            // false only for benchmarks that measure everything but fsync.
  // Commits wait (unanswered, `CommitStats::failing`) while the file system would have less than
  // this free after them.
  uint64_t min_free_bytes = uint64_t{64} << 20;
  // The environment RocksDB does its file I/O through; null is the default one. Tests pass one
  // that injects write errors.
  rocksdb::Env* env = nullptr;
};

class RocksDbStore final : public Store {
 public:
  // Opens (creating when missing) the database and starts the writer thread.
  static Result<std::unique_ptr<RocksDbStore>> Open(const RocksDbOptions& options);
  // Drains the queue (every queued commit is answered), stops the writer, closes the database.
  ~RocksDbStore() override;

  RocksDbStore(const RocksDbStore&) = delete;
  RocksDbStore& operator=(const RocksDbStore&) = delete;

  void CommitAsync(WriteBatch batch, CommitCallback done) override;
  Result<std::string> Get(Family f, std::string_view key) const override;
  Status Scan(Family f, std::string_view begin, std::string_view end,
              const std::function<bool(std::string_view, std::string_view)>& fn) const override;
  Result<std::optional<std::string>> LastKey(Family f) const override;
  CommitStats Stats() const override;

  // A consistent copy of the database in `dir` (which must not exist), made of hard links where
  // the file system allows: what a new standby starts from (DESIGN.md section 12).
  Status CreateCheckpoint(const std::string& dir);

  struct Impl;

 private:
  explicit RocksDbStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gsched::state
