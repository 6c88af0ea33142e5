#include "scheduler/ha/replicated_store.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "scheduler/ha/log_record.h"

namespace gsched::ha {

Result<uint64_t> AppliedSeq(const state::Store& store) {
  auto v = store.Get(state::Family::kMeta, kAppliedSeqKey);
  if (!v.ok())
    return v.status().code() == StatusCode::kNotFound ? Result<uint64_t>(0) : v.status();
  return state::ParseU64Key(*v);
}

struct ReplicatedStore::Impl {
  struct Pending {
    state::WriteBatch batch;
    CommitCallback done;
  };

  ReplicatedStoreOptions options;
  state::RocksDbStore* local = nullptr;
  EtcdClient etcd;  // The writer thread's.

  mutable std::mutex mu;
  std::condition_variable wake;
  std::deque<Pending> queue;
  bool stopping = false;
  Status fence_status;  // Under `mu`; set once.
  std::atomic<bool> fenced{false};
  std::thread writer;

  std::atomic<uint64_t> groups{0}, records{0}, bytes{0}, last_seq{0};
  std::atomic<uint64_t> etcd_us{0}, local_us{0};

  static uint64_t MicrosSince(std::chrono::steady_clock::time_point t0) {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count());
  }

  explicit Impl(ReplicatedStoreOptions o) : options(std::move(o)), etcd(options.etcd) {
    last_seq.store(options.next_seq - 1);
  }

  void Fence(const Status& why) {
    {
      std::lock_guard lock(mu);
      if (fenced.load())
        return;
      fence_status = Status::Unavailable("not the leader: " + why.message());
      fenced.store(true);
    }
    spdlog::error("replicated store fenced: {}", why.message());
    if (options.on_lost)
      options.on_lost(why);
  }

  Status FenceStatus() const {
    std::lock_guard lock(mu);
    return fence_status;
  }

  Status WriteGroup(std::vector<Pending>& group) {
    std::vector<state::WriteBatch> batches;
    batches.reserve(group.size());
    for (Pending& p : group)
      batches.push_back(std::move(p.batch));
    uint64_t seq = last_seq.load() + 1;
    for (std::string& record :
         EncodeGroup(static_cast<uint64_t>(options.epoch), batches, options.max_record_bytes)) {
      size_t size = record.size();
      auto t0 = std::chrono::steady_clock::now();
      auto res = etcd.Txn({{options.leader_key, Compare::Target::kModRevision, options.epoch}},
                          {TxnOp::Put(LogKey(options.log_prefix, seq), std::move(record))});
      etcd_us.fetch_add(MicrosSince(t0));
      if (!res.ok()) {
        Fence(Status::Unavailable("the log write to etcd failed: " + res.status().message()));
        return FenceStatus();
      }
      if (!res->succeeded) {
        Fence(Status::Unavailable("etcd refused the log write: the leader key changed (epoch " +
                                  std::to_string(options.epoch) + " is over)"));
        return FenceStatus();
      }
      records.fetch_add(1);
      bytes.fetch_add(size);
      ++seq;
    }
    state::WriteBatch merged;
    for (state::WriteBatch& b : batches)
      merged.Append(std::move(b));
    merged.Put(state::Family::kMeta, std::string(kAppliedSeqKey), state::U64Key(seq - 1));
    auto t0 = std::chrono::steady_clock::now();
    Status local_status = local->Commit(std::move(merged));
    local_us.fetch_add(MicrosSince(t0));
    if (Status s = std::move(local_status); !s.ok()) {
      // In the log but not here: as a standby this database catches up from the log.
      Fence(Status::Unavailable("the local write failed: " + s.message()));
      return FenceStatus();
    }
    last_seq.store(seq - 1);
    groups.fetch_add(1);
    return Status::Ok();
  }

  void Run() {
    for (;;) {
      std::vector<Pending> group;
      {
        std::unique_lock lock(mu);
        wake.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty())
          return;
        size_t n = std::min(queue.size(), options.max_group);
        group.reserve(n);
        for (size_t i = 0; i < n; ++i) {
          group.push_back(std::move(queue.front()));
          queue.pop_front();
        }
      }
      Status s = fenced.load() ? FenceStatus() : WriteGroup(group);
      for (Pending& p : group)
        p.done(s);
    }
  }
};

ReplicatedStore::ReplicatedStore(std::unique_ptr<state::RocksDbStore> local,
                                 ReplicatedStoreOptions options)
    : local_(std::move(local)), impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->local = local_.get();
  impl_->writer = std::thread([this] { impl_->Run(); });
}

ReplicatedStore::~ReplicatedStore() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  impl_->writer.join();
}

void ReplicatedStore::CommitAsync(state::WriteBatch batch, CommitCallback done) {
  {
    std::unique_lock lock(impl_->mu);
    if (impl_->fenced.load()) {
      Status s = impl_->fence_status;
      lock.unlock();
      return done(s);
    }
    if (impl_->queue.size() >= impl_->options.max_queue) {
      lock.unlock();
      return done(Status::ResourceExhausted("commit queue full"));
    }
    impl_->queue.push_back({std::move(batch), std::move(done)});
  }
  impl_->wake.notify_one();
}

Result<std::string> ReplicatedStore::Get(state::Family f, std::string_view key) const {
  return local_->Get(f, key);
}
Status ReplicatedStore::Scan(
    state::Family f, std::string_view begin, std::string_view end,
    const std::function<bool(std::string_view, std::string_view)>& fn) const {
  return local_->Scan(f, begin, end, fn);
}
Result<std::optional<std::string>> ReplicatedStore::LastKey(state::Family f) const {
  return local_->LastKey(f);
}

state::CommitStats ReplicatedStore::Stats() const {
  state::CommitStats s = local_->Stats();
  std::lock_guard lock(impl_->mu);
  s.queue_depth += impl_->queue.size();
  return s;
}

void ReplicatedStore::Fence(const Status& why) {
  impl_->Fence(why);
}
bool ReplicatedStore::fenced() const {
  return impl_->fenced.load();
}

ReplicationFigures ReplicatedStore::Figures() const {
  ReplicationFigures f;
  f.groups = impl_->groups.load();
  f.records = impl_->records.load();
  f.bytes = impl_->bytes.load();
  f.last_seq = impl_->last_seq.load();
  f.fenced = impl_->fenced.load();
  f.etcd_seconds = static_cast<double>(impl_->etcd_us.load()) / 1e6;
  f.local_seconds = static_cast<double>(impl_->local_us.load()) / 1e6;
  return f;
}

}  // namespace gsched::ha
