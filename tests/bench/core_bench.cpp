// Benchmarks of the scheduling core (DESIGN.md section 10):
//   BM_FullPass/N: one `Schedule()` over 6,250 nodes x 8 GPUs, half busy, N pending jobs of mixed
//     shapes from 1,000 users in 50 accounts. Every user has a run-time history (ratios 0.3 to
//     0.9), as in a daemon that has seen jobs finish, so the estimates on predicted ends (phase 8)
//     are part of the pass. The snapshot is built outside the timed region.
//   BM_Placements: best-fit placement decisions per second on the same cluster (find + commit).
#include <benchmark/benchmark.h>

#include <array>
#include <map>
#include <memory>

#include "scheduler/core/placement.h"
#include "scheduler/core/schedule.h"
#include "tests/testutil/synthetic.h"

namespace gsched::core {
namespace {

const Snapshot& SnapshotWith(int pending) {
  static std::map<int, std::unique_ptr<Snapshot>> cache;
  auto& slot = cache[pending];
  if (!slot) {
    testutil::SyntheticSpec spec;
    spec.pending = pending;
    slot = std::make_unique<Snapshot>(testutil::MakeSyntheticCluster(spec));
    for (size_t u = 0; u < slot->users.size(); ++u) {
      slot->user_run_time_ratio.push_back(0.3 + 0.6 * static_cast<double>(u % 7) / 6.0);
      // Per limit class too, for half of the classes (the others fall back to the user's).
      std::array<float, kRunTimeLimitClasses> by_limit{};
      for (size_t c = 0; c < kRunTimeLimitClasses; c += 2)
        by_limit[c] = 0.2f + 0.1f * static_cast<float>((u + c) % 8);
      slot->user_limit_run_time_ratio.push_back(by_limit);
    }
  }
  return *slot;
}

void BM_FullPass(benchmark::State& state) {
  const Snapshot& s = SnapshotWith(static_cast<int>(state.range(0)));
  const PolicyConfig config;
  int64_t started = 0;
  for (auto _ : state) {
    Plan plan = Schedule(s, config, testutil::kT0);
    started = plan.stats.started;
    benchmark::DoNotOptimize(plan);
  }
  state.counters["pending"] = static_cast<double>(s.pending.size());
  state.counters["nodes"] = static_cast<double>(s.nodes.size());
  state.counters["started"] = static_cast<double>(started);
}
BENCHMARK(BM_FullPass)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FullPass)->Arg(1000000)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_Placements(benchmark::State& state) {
  testutil::SyntheticSpec spec;
  spec.pending = 0;
  spec.busy_fraction = 0.0;
  const Snapshot s = testutil::MakeSyntheticCluster(spec);
  static constexpr int kSizes[] = {1, 2, 1, 4, 1, 8, 2, 1};
  auto pool = std::make_unique<NodePool>(s);
  const Timestamp end = testutil::kT0 + Seconds(3600);
  int64_t placed = 0;
  size_t k = 0;
  for (auto _ : state) {
    Shape shape;
    shape.gpus_per_node = kSizes[k++ % 8];
    shape.cpus_per_node = 4 * shape.gpus_per_node;
    shape.memory_mib_per_node = 1024;
    auto p = pool->Find(shape, static_cast<uint32_t>(k % 3), end);
    if (!p) {
      state.PauseTiming();
      pool = std::make_unique<NodePool>(s);
      state.ResumeTiming();
      continue;
    }
    pool->Commit(*p);
    ++placed;
  }
  state.counters["placements_per_s"] =
      benchmark::Counter(static_cast<double>(placed), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Placements);

}  // namespace
}  // namespace gsched::core

BENCHMARK_MAIN();
