#include "scheduler/state/rocksdb_store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

namespace gsched::state {
namespace {

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok())
    return Status::Ok();
  if (s.IsNotFound())
    return Status::NotFound(std::string(what) + ": not found");
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut()) {
    return Status::Unavailable(std::string(what) + ": " + s.ToString());
  }
  return Status::Internal(std::string(what) + ": " + s.ToString());
}

// Whether a failed write may succeed once the device recovers: I/O errors (a failing or full
// device) and transient conditions. Anything else, a batch RocksDB refuses, would fail the same way
// again and goes to the caller.
bool Retryable(const rocksdb::Status& s) {
  return s.IsIOError() || s.IsBusy() || s.IsTryAgain() || s.IsTimedOut();
}

constexpr Family kAllFamilies[kFamilyCount] = {Family::kJobs,  Family::kAccounts, Family::kNodes,
                                               Family::kUsage, Family::kEvents,   Family::kTokens,
                                               Family::kMeta,  Family::kJobIndex};

}  // namespace

struct RocksDbStore::Impl {
  struct Pending {
    WriteBatch batch;
    CommitCallback done;
  };

  RocksDbOptions options;
  rocksdb::Options db_options;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;

  // The open database. Readers and the writer's writes share `db_mu`; only the writer thread
  // takes it exclusively, to reopen after a failed write. Null while a reopen has failed.
  mutable std::shared_mutex db_mu;
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // Indexed by `Family`; owned by `db`.
  rocksdb::ColumnFamilyHandle* default_handle = nullptr;

  mutable std::mutex mu;
  std::condition_variable wake;
  std::deque<Pending> queue;
  bool stopping = false;
  std::thread writer;

  std::atomic<uint64_t> commits{0};
  std::atomic<uint64_t> syncs{0};
  std::atomic<uint64_t> max_group{0};

  // Set while a group waits for free space or for a failed write to succeed; commits queue behind
  // it.
  std::atomic<bool> failing{false};
  std::atomic<uint64_t> write_failures{0};

  rocksdb::ColumnFamilyHandle* Handle(Family f) const { return handles[static_cast<size_t>(f)]; }

  // Callers hold `db_mu` exclusively (or own the only reference, at open).
  rocksdb::Status OpenDb() {
    std::vector<rocksdb::ColumnFamilyHandle*> opened;
    rocksdb::DB* raw = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(db_options, options.path, descriptors, &opened, &raw);
    if (!s.ok())
      return s;
    db.reset(raw);
    default_handle = opened[0];
    handles.assign(opened.begin() + 1, opened.end());
    return s;
  }

  // Callers hold `db_mu` exclusively. `flush` first when the database is healthy, so that the next
  // open reads sorted files instead of replaying the write-ahead log record by record.
  void CloseDb(bool flush) {
    if (!db)
      return;
    if (flush) {
      // Best effort: the log is still there if this fails (restart.1m: ~50 MB of log, a quarter
      // of the start-up's CPU samples without it).
      rocksdb::FlushOptions fo;
      fo.allow_write_stall = true;
      db->Flush(fo, handles).PermitUncheckedError();
    }
    for (rocksdb::ColumnFamilyHandle* h : handles)
      db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    db->DestroyColumnFamilyHandle(default_handle).PermitUncheckedError();
    db->Close().PermitUncheckedError();
    db.reset();
    handles.clear();
    default_handle = nullptr;
  }

  // Whether the file system under the database has room for `bytes` more and still keeps
  // `min_free_bytes` (for RocksDB's flushes and compactions). When it cannot tell, it lets the
  // write try.
  bool HasRoom(size_t bytes) const {
    struct statvfs st {};
    if (::statvfs(options.path.c_str(), &st) != 0)
      return true;
    uint64_t free_bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
    return free_bytes >= options.min_free_bytes + 2 * static_cast<uint64_t>(bytes);
  }

  // Waits `backoff` (then doubles it, up to 1 s); false when the store is closing instead.
  bool Backoff(std::chrono::milliseconds& backoff) {
    std::unique_lock lock(mu);
    if (wake.wait_for(lock, backoff, [&] { return stopping; }))
      return false;
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(1));
    return true;
  }

  // Writes `merged` durably, holding it (and everything queued behind it, unanswered) while it
  // cannot be: nothing is acknowledged that is not durable and no commit overtakes another.
  // - A disk short of room: the database is never handed a write that may not fit; it waits.
  // - A write RocksDB reports failed with an I/O error: RocksDB 7.8 takes no writes after one
  //   (it asserts, or stays read-only), so the database is closed and reopened, which replays the
  //   log up to its last whole record, and the same batch is written again. Writing it twice is
  //   harmless: it holds puts, deletes and range deletes, and nothing was written in between.
  // Only a closing store or a write RocksDB refuses for what it holds ends in a failed `Status`.
  Status WriteUntilDurable(const rocksdb::WriteOptions& wo, rocksdb::WriteBatch& merged) {
    auto backoff = std::chrono::milliseconds(100);
    while (true) {
      if (!HasRoom(merged.GetDataSize())) {
        write_failures.fetch_add(1, std::memory_order_relaxed);
        if (!failing.exchange(true)) {
          spdlog::error(
              "store: the disk under {} is nearly full (keeping {} bytes free); commits "
              "wait for room",
              options.path, options.min_free_bytes);
        }
        if (!Backoff(backoff))
          return Status::Unavailable("store closing while the disk is full");
        continue;
      }
      rocksdb::Status s;
      {
        std::shared_lock lock(db_mu);
        s = db ? db->Write(wo, &merged) : rocksdb::Status::IOError("the database is not open");
      }
      if (s.ok()) {
        if (failing.exchange(false))
          spdlog::warn("store: writes succeed again; commits go on");
        return Status::Ok();
      }
      if (!Retryable(s))
        return FromRocks(s, "commit");
      write_failures.fetch_add(1, std::memory_order_relaxed);
      if (!failing.exchange(true)) {
        spdlog::error(
            "store: a commit failed ({}); commits wait while the database is reopened and the "
            "write retried",
            s.ToString());
      }
      if (!Backoff(backoff))
        return Status::Unavailable("store closing while writes fail: " + s.ToString());
      std::unique_lock lock(db_mu);
      CloseDb(/*flush=*/false);
      if (rocksdb::Status o = OpenDb(); !o.ok())
        spdlog::error("store: reopening {} failed ({}); trying again", options.path, o.ToString());
    }
  }

  void WriterLoop() {
    std::vector<Pending> group;
    while (true) {
      {
        std::unique_lock lock(mu);
        wake.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty())
          return;  // Stopping and drained.
        size_t n = std::min(queue.size(), options.max_group);
        group.clear();
        for (size_t i = 0; i < n; ++i) {
          group.push_back(std::move(queue.front()));
          queue.pop_front();
        }
      }
      rocksdb::WriteBatch merged;
      // The batch holds column family ids, which a reopen keeps; the handles only name them.
      bool open = true;
      {
        std::shared_lock lock(db_mu);
        open = db != nullptr;
        for (const Pending& p : group) {
          if (!open)
            break;
          for (const Mutation& m : p.batch.mutations()) {
            rocksdb::Status s;
            switch (m.kind) {
              case Mutation::Kind::kPut:
                s = merged.Put(Handle(m.family), m.key, m.value);
                break;
              case Mutation::Kind::kDelete:
                s = merged.Delete(Handle(m.family), m.key);
                break;
              case Mutation::Kind::kDeleteRange:
                s = merged.DeleteRange(Handle(m.family), m.key, m.value);
                break;
            }
            // Building an in-memory batch only fails on absurd sizes; the write below reports it.
            s.PermitUncheckedError();
          }
        }
      }
      rocksdb::WriteOptions wo;
      wo.sync = options.sync;
      // Closed only by a reopen that failed while the store was closing.
      Status status = open ? WriteUntilDurable(wo, merged)
                           : Status::Unavailable("store closing; the database is not open");
      syncs.fetch_add(1, std::memory_order_relaxed);
      uint64_t size = group.size();
      uint64_t prev = max_group.load(std::memory_order_relaxed);
      while (size > prev && !max_group.compare_exchange_weak(prev, size)) {
      }
      for (Pending& p : group)
        p.done(status);
      group.clear();
    }
  }
};

RocksDbStore::RocksDbStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  impl_->writer = std::thread([this] { impl_->WriterLoop(); });
}

RocksDbStore::~RocksDbStore() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  impl_->writer.join();
  std::unique_lock lock(impl_->db_mu);
  impl_->CloseDb(/*flush=*/!impl_->failing.load());
}

Result<std::unique_ptr<RocksDbStore>> RocksDbStore::Open(const RocksDbOptions& options) {
  if (options.path.empty())
    return Status::InvalidArgument("must not be empty", "data_dir");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->options.max_group = std::max<size_t>(1, options.max_group);

  rocksdb::Options db_options;
  if (options.env != nullptr)
    db_options.env = options.env;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.IncreaseParallelism(2);
  db_options.max_background_jobs = 2;
  db_options.keep_log_file_num = 4;
  // A log file lives until every family with writes in it has flushed them; a family that is
  // written rarely (accounts, tokens) would keep the whole log alive, and a start after a crash
  // would replay all of it. Past this size the oldest log's families are flushed.
  db_options.max_total_wal_size = 64 << 20;
  // Reads at start-up scan whole families; a larger block cache is not needed for that.
  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.OptimizeLevelStyleCompaction(64 << 20);
  cf_options.compression = rocksdb::kLZ4Compression;

  impl->descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_options);
  for (Family f : kAllFamilies)
    impl->descriptors.emplace_back(std::string(FamilyName(f)), cf_options);
  impl->db_options = db_options;
  if (rocksdb::Status s = impl->OpenDb(); !s.ok())
    return Status::Unavailable("cannot open database at " + options.path + ": " + s.ToString());
  return std::unique_ptr<RocksDbStore>(new RocksDbStore(std::move(impl)));
}

void RocksDbStore::CommitAsync(WriteBatch batch, CommitCallback done) {
  impl_->commits.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping) {
      done(Status::Unavailable("store is closing"));
      return;
    }
    if (impl_->queue.size() >= impl_->options.max_queue) {
      done(Status::ResourceExhausted("commit queue is full (" +
                                     std::to_string(impl_->options.max_queue) + " waiting)"));
      return;
    }
    impl_->queue.push_back({std::move(batch), std::move(done)});
  }
  impl_->wake.notify_one();
}

Result<std::string> RocksDbStore::Get(Family f, std::string_view key) const {
  std::shared_lock lock(impl_->db_mu);
  if (!impl_->db)
    return Status::Unavailable("get: the database is being reopened after a write error");
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), impl_->Handle(f),
                                     rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound())
    return Status::NotFound(std::string(FamilyName(f)) + " key not found");
  RETURN_IF_ERROR(FromRocks(s, "get"));
  return value;
}

Status RocksDbStore::Scan(Family f, std::string_view begin, std::string_view end,
                          const std::function<bool(std::string_view, std::string_view)>& fn) const {
  std::shared_lock lock(impl_->db_mu);
  if (!impl_->db)
    return Status::Unavailable("scan: the database is being reopened after a write error");
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper(end.data(), end.size());
  if (!end.empty())
    ro.iterate_upper_bound = &upper;
  // A start-up scan reads each block once; keep it out of the block cache.
  ro.fill_cache = false;
  ro.readahead_size = 2 << 20;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->Handle(f)));
  for (it->Seek(rocksdb::Slice(begin.data(), begin.size())); it->Valid(); it->Next()) {
    rocksdb::Slice k = it->key();
    rocksdb::Slice v = it->value();
    if (!fn(std::string_view(k.data(), k.size()), std::string_view(v.data(), v.size())))
      break;
  }
  return FromRocks(it->status(), "scan");
}

Result<std::optional<std::string>> RocksDbStore::LastKey(Family f) const {
  std::shared_lock lock(impl_->db_mu);
  if (!impl_->db)
    return Status::Unavailable("seek: the database is being reopened after a write error");
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->Handle(f)));
  it->SeekToLast();
  RETURN_IF_ERROR(FromRocks(it->status(), "seek"));
  if (!it->Valid())
    return std::optional<std::string>();
  return std::optional<std::string>(it->key().ToString());
}

CommitStats RocksDbStore::Stats() const {
  CommitStats s;
  s.commits = impl_->commits.load(std::memory_order_relaxed);
  s.syncs = impl_->syncs.load(std::memory_order_relaxed);
  s.max_group = impl_->max_group.load(std::memory_order_relaxed);
  s.failing = impl_->failing.load(std::memory_order_relaxed);
  s.write_failures = impl_->write_failures.load(std::memory_order_relaxed);
  std::lock_guard lock(impl_->mu);
  s.queue_depth = impl_->queue.size();
  return s;
}

Status RocksDbStore::CreateCheckpoint(const std::string& dir) {
  std::shared_lock lock(impl_->db_mu);
  if (!impl_->db)
    return Status::Unavailable("checkpoint: the database is being reopened after a write error");
  rocksdb::Checkpoint* raw = nullptr;
  RETURN_IF_ERROR(FromRocks(rocksdb::Checkpoint::Create(impl_->db.get(), &raw), "checkpoint"));
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // Flushing first puts everything in table files: the copy needs no write-ahead log replay.
  return FromRocks(checkpoint->CreateCheckpoint(dir, /*log_size_for_flush=*/0), "checkpoint");
}

}  // namespace gsched::state
