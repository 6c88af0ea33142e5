// Durable commits per second through `RocksDbStore`'s group commit: T threads, each committing one
// ~600-byte job record plus its event per call, as a submission does. Every commit is synced
// (fsync) before it returns; the group size shows how many shared one sync.
#include <benchmark/benchmark.h>

#include <atomic>
#include <memory>
#include <string>

#include "scheduler/state/rocksdb_store.h"
#include "tests/testutil/temp_dir.h"

namespace gsched::state {
namespace {

struct Shared {
  std::unique_ptr<TempDir> dir;
  std::unique_ptr<RocksDbStore> store;
  std::atomic<uint64_t> next{1};
};
Shared* shared = nullptr;

void BM_DurableCommit(benchmark::State& state) {
  if (state.thread_index() == 0) {
    shared = new Shared;
    shared->dir = std::make_unique<TempDir>();
    shared->store = std::move(RocksDbStore::Open({.path = shared->dir->path()})).value();
  }
  // Google Benchmark starts all threads' loops together after thread 0's set-up above.
  std::string job(600, 'j');
  std::string event(200, 'e');
  for (auto _ : state) {
    uint64_t id = shared->next.fetch_add(1);
    WriteBatch b;
    b.Put(Family::kJobs, U64Key(id), job);
    b.Put(Family::kEvents, U64Key(id), event);
    if (!shared->store->Commit(std::move(b)).ok())
      state.SkipWithError("commit failed");
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    CommitStats s = shared->store->Stats();
    state.counters["commits_per_sync"] =
        s.syncs ? static_cast<double>(s.commits) / static_cast<double>(s.syncs) : 0;
    delete shared;
    shared = nullptr;
  }
}
BENCHMARK(BM_DurableCommit)->Threads(1)->Threads(32)->UseRealTime()->MinTime(2.0);

}  // namespace
}  // namespace gsched::state

BENCHMARK_MAIN();
