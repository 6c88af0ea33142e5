#include "scheduler/core/backfill.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "tests/testutil/builders.h"

namespace gsched::core {
namespace {

using testutil::ClusterBuilder;
using testutil::kT0;
using testutil::MakeJob;
using testutil::MakeNode;

const Duration kHour = Seconds(3600);

Shape Gpus(int32_t per_node, int32_t nodes = 1) {
  Shape s;
  s.gpus_per_node = per_node;
  s.nodes = nodes;
  return s;
}

// n0: job 10 (4 GPUs) ends at t0 + 1h, job 11 (4 GPUs) at t0 + 3h.
// n1: job 12 (8 GPUs) ends at t0 + 2h.
Snapshot Busy() {
  return ClusterBuilder()
      .Add(MakeNode("n0"))
      .Add(MakeNode("n1"))
      .AddRunning(MakeJob(10).On("n0", 4).Started(kT0 - kHour).TimeLimit(2 * kHour))
      .AddRunning(MakeJob(11).On("n0", 4).Started(kT0).TimeLimit(3 * kHour))
      .AddRunning(MakeJob(12).On("n1", 8).Started(kT0 - kHour).TimeLimit(3 * kHour))
      .Build();
}

TEST(TimelineTest, EarliestSingleNodeFit) {
  const Snapshot s = Busy();
  NodePool pool(s);
  Timeline timeline(s, kT0);
  // 4 GPUs: n0 frees 4 at t0 + 1h (job 10: t0 - 1h + 2h).
  auto r = timeline.Earliest(pool, Gpus(4), 0, JobId(1));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->start, kT0 + kHour);
  EXPECT_EQ(s.nodes[r->nodes[0].node].name, "n0");
  // 8 GPUs: n1 at t0 + 2h beats n0 at t0 + 3h.
  r = timeline.Earliest(pool, Gpus(8), 0, JobId(1));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->start, kT0 + 2 * kHour);
  EXPECT_EQ(s.nodes[r->nodes[0].node].name, "n1");
  // 2 x 8 GPUs: both nodes whole at max(t0 + 2h, t0 + 3h) = t0 + 3h.
  r = timeline.Earliest(pool, Gpus(8, 2), 0, JobId(1));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->start, kT0 + 3 * kHour);
  EXPECT_EQ(r->nodes.size(), 2u);
  // 3 nodes never fit on a 2-node cluster.
  EXPECT_FALSE(timeline.Earliest(pool, Gpus(1, 3), 0, JobId(1)));
}

TEST(TimelineTest, EarliestLooksNoFurtherThanUntil) {
  const Snapshot s = Busy();
  NodePool pool(s);
  Timeline timeline(s, kT0);
  // 8 GPUs fit at t0 + 2h: found up to exactly then, not up to a millisecond before.
  auto r = timeline.Earliest(pool, Gpus(8), 0, JobId(1), kT0 + 2 * kHour);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->start, kT0 + 2 * kHour);
  EXPECT_FALSE(timeline.Earliest(pool, Gpus(8), 0, JobId(1),
                                 kT0 + 2 * kHour - std::chrono::milliseconds(1)));
  // A fit now is found up to now, and nothing is before now.
  EXPECT_TRUE(timeline.Earliest(pool, Gpus(0), 0, JobId(1), kT0));
  EXPECT_FALSE(timeline.Earliest(pool, Gpus(0), 0, JobId(1), kT0 - std::chrono::milliseconds(1)));
  // The calls share their scratch state: a later call without a bound still sees everything.
  r = timeline.Earliest(pool, Gpus(8, 2), 0, JobId(1));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->start, kT0 + 3 * kHour);
  r = timeline.Earliest(pool, Gpus(4), 0, JobId(1));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->start, kT0 + kHour);
}

TEST(TimelineTest, ReservationsAreHeldAndStartsAreReplayed) {
  const Snapshot s = Busy();
  NodePool pool(s);
  Timeline timeline(s, kT0);
  // Job 1 reserves n1 (8 GPUs) from t0 + 2h. The next 8-GPU job must wait for n0 at t0 + 3h.
  pool.Reserve(1, 8, kT0 + 2 * kHour, JobId(1));
  auto r = timeline.Earliest(pool, Gpus(8), 0, JobId(2));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->start, kT0 + 3 * kHour);
  // Jobs started in this pass are replayed too: on an empty node, a 4-GPU start ending at
  // t0 + 5h leaves 4 free, so an 8-GPU job fits at t0 + 5h.
  const Snapshot empty = ClusterBuilder().Add(MakeNode("m0")).Build();
  NodePool e(empty);
  Timeline te(empty, kT0);
  auto placed = e.Find(Gpus(4), 0, kT0 + 5 * kHour);
  ASSERT_TRUE(placed);
  e.Commit(*placed);
  te.AddStart(placed->nodes, kT0 + 5 * kHour, e);
  // m0 now has 4 free; 8 GPUs fit when the started job ends at t0 + 5h.
  r = te.Earliest(e, Gpus(8), 0, JobId(3));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->start, kT0 + 5 * kHour);
}

TEST(TimelineTest, OverdueJobsFreeNow) {
  // A job past its time limit (ended t0 - 1h on paper) is counted as freeing at `now`.
  const Snapshot s =
      ClusterBuilder()
          .Add(MakeNode("n0"))
          .AddRunning(MakeJob(10).On("n0", 8).Started(kT0 - 3 * kHour).TimeLimit(2 * kHour))
          .Build();
  NodePool pool(s);
  Timeline timeline(s, kT0);
  auto r = timeline.Earliest(pool, Gpus(8), 0, JobId(1));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->start, kT0);
}

std::string Describe(const std::optional<Reservation>& r) {
  if (!r)
    return "none";
  std::string out = std::to_string(ToUnixMillis(r->start) - ToUnixMillis(kT0)) + " ms on";
  for (const ReservedNode& n : r->nodes)
    out += " " + std::to_string(n.node) + "x" + std::to_string(n.gpus);
  return out;
}

// Searches for a shape resume where the previous one for that shape stopped. Whatever the pass
// did in between (starts, reservations, other shapes, other bounds), each answer must be the one
// a fresh replay of the same pool and starts gives.
TEST(TimelineTest, ResumedSearchesAgreeWithFreshReplays) {
  const std::vector<Shape> shapes = [] {
    std::vector<Shape> v = {Gpus(1), Gpus(4), Gpus(8), Gpus(8, 3), Gpus(2, 5), Gpus(8, 4)};
    v[4].topology = api::Topology::kSite;
    v[5].topology = api::Topology::kBlock;
    v.push_back(Gpus(2));
    v.back().cpus_per_node = 48;  // Nodes have 128 CPUs: at most two such slices each.
    return v;
  }();
  int compared = 0, found = 0, resumed_with_changes = 0;
  for (uint64_t seed = 1; seed <= 25; ++seed) {
    std::mt19937_64 rng(seed);
    auto below = [&](uint64_t n) { return static_cast<int64_t>(rng() % n); };
    // 24 nodes, 4 per block, 3 blocks per site; each busy with jobs ending on a half-hour grid
    // (so frees share times, running and started ones alike).
    ClusterBuilder b;
    b.AddNodes(24, "n", "h100", 8, 4, 3);
    uint64_t id = 100;
    for (int n = 0; n < 24; ++n) {
      for (int left = 8; left > 0;) {
        const int32_t g = static_cast<int32_t>(std::min<int64_t>(left, 1 + below(8)));
        left -= g;
        if (below(5) == 0)
          continue;  // Leaves these GPUs free.
        b.AddRunning(MakeJob(id++)
                         .On("n" + std::to_string(n), g)
                         .Cpus(static_cast<int32_t>(below(3)) * 16)
                         .Started(kT0 - kHour)
                         .TimeLimit(kHour + Seconds(1800) * (1 + below(12))));
      }
    }
    const Snapshot s = b.Build();
    NodePool pool(s);
    Timeline timeline(s, kT0);
    std::vector<std::pair<std::vector<NodeAllocation>, Timestamp>> starts;
    size_t changes_at_last_query = 0;
    for (int step = 0; step < 80; ++step) {
      const Shape& shape = shapes[static_cast<size_t>(below(shapes.size()))];
      const JobId job(1000 + static_cast<uint64_t>(step));
      switch (below(3)) {
        case 0: {  // A start that ends on the grid.
          const Timestamp end = kT0 + Seconds(1800) * (1 + below(12));
          if (auto p = pool.Find(shape, 0, end)) {
            pool.Commit(*p);
            timeline.AddStart(p->nodes, end, pool);
            starts.emplace_back(p->nodes, end);
          }
          break;
        }
        default: {  // A search, bounded or not; half of the found ones are reserved.
          const Timestamp until = below(2) == 0 ? Timestamp::max() : kT0 + Seconds(900) * below(30);
          Timeline fresh(s, kT0);
          for (const auto& [nodes, end] : starts)
            fresh.AddStart(nodes, end, pool);
          const auto want = fresh.Earliest(pool, shape, 0, job, until);
          const auto got = timeline.Earliest(pool, shape, 0, job, until);
          ASSERT_EQ(Describe(got), Describe(want)) << "seed " << seed << " step " << step;
          ++compared;
          found += got ? 1 : 0;
          resumed_with_changes += pool.changes().size() > changes_at_last_query ? 1 : 0;
          changes_at_last_query = pool.changes().size();
          if (got && below(2) == 0) {
            for (const ReservedNode& rn : got->nodes)
              pool.Reserve(rn.node, rn.gpus, got->start, job);
          }
        }
      }
    }
  }
  // The cases above happened, not just empty searches.
  EXPECT_GT(found, compared / 4);
  EXPECT_GT(resumed_with_changes, compared / 4);
}

}  // namespace
}  // namespace gsched::core
