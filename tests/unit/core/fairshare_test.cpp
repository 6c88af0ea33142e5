#include "scheduler/core/fairshare.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/testutil/builders.h"

namespace gsched::core {
namespace {

using testutil::ClusterBuilder;
using testutil::kT0;
using testutil::MakeAccount;

constexpr Duration kWeek = Seconds(7 * 24 * 3600);

TEST(DecayTest, HalvesEveryHalfLife) {
  const UsageRecord u{1000.0, kT0};
  // 1000 * 2^(-0) = 1000
  EXPECT_DOUBLE_EQ(DecayedUsage(u, kT0, kWeek), 1000.0);
  // 1000 * 2^(-1) = 500
  EXPECT_DOUBLE_EQ(DecayedUsage(u, kT0 + kWeek, kWeek), 500.0);
  // 1000 * 2^(-3) = 125
  EXPECT_DOUBLE_EQ(DecayedUsage(u, kT0 + 3 * kWeek, kWeek), 125.0);
  // Half a half-life: 1000 * 2^(-0.5) = 707.10678...
  EXPECT_NEAR(DecayedUsage(u, kT0 + kWeek / 2, kWeek), 707.10678, 1e-4);
}

TEST(DecayTest, NeverGrowsBackwardsInTimeAndZeroHalfLifeKeepsValue) {
  const UsageRecord u{1000.0, kT0};
  EXPECT_DOUBLE_EQ(DecayedUsage(u, kT0 - kWeek, kWeek), 1000.0);
  EXPECT_DOUBLE_EQ(DecayedUsage(u, kT0 + kWeek, Duration(0)), 1000.0);
}

TEST(DecayTest, AddUsageDecaysThenAdds) {
  // 800 at t0, one half-life later: 800/2 + 100 = 500, stamped t0 + week.
  const UsageRecord u = AddUsage({800.0, kT0}, 100.0, kT0 + kWeek, kWeek);
  EXPECT_DOUBLE_EQ(u.value, 500.0);
  EXPECT_EQ(u.at, kT0 + kWeek);
}

TEST(AttemptUsageTest, ChargesNormalisedGpuSecondsAtTheRate) {
  // 4 GPUs x cost 1.2 x 1,800 s = 8,640; preempted at usage_charge 0.25: 2,160.
  EXPECT_DOUBLE_EQ(AttemptUsage(4, 1.2, kT0, kT0 + Seconds(1800)), 8640.0);
  EXPECT_DOUBLE_EQ(AttemptUsage(4, 1.2, kT0, kT0 + Seconds(1800), 0.25), 2160.0);
  // Milliseconds count: 2 GPUs x cost 1.0 x 0.5 s = 1.
  EXPECT_DOUBLE_EQ(AttemptUsage(2, 1.0, kT0, kT0 + Duration(500)), 1.0);
  // An interval that ends before it starts is charged nothing.
  EXPECT_DOUBLE_EQ(AttemptUsage(8, 1.0, kT0 + Seconds(10), kT0), 0.0);
}

TEST(FairShareTreeTest, RanksSiblingsBySharesOverUsage) {
  // Siblings under root, usage in GPU-hours:
  //   a: shares 1, usage 10 -> norm shares 1/4, norm usage 10/40 -> 0.25/0.25 = 1.0
  //   b: shares 3, usage 30 -> 3/4 / 30/40 = 1.0  (tie with a: by name, a first)
  //   c: shares 0 (counted in the sum), usage 0 -> infinite, ranks first
  // Shares sum = 4; leaves in order c, a, b; factors (3-0)/3, (3-1)/3, (3-2)/3.
  const Snapshot s = ClusterBuilder()
                         .Add(MakeAccount("a").Shares(1).UsageGpuHours(10))
                         .Add(MakeAccount("b").Shares(3).UsageGpuHours(30))
                         .Add(MakeAccount("c").Shares(0))
                         .Build();
  const FairShareTree t = FairShareTree::Build(s.accounts, testutil::kT0, kWeek);
  ASSERT_EQ(t.LeafOrder().size(), 3u);
  EXPECT_EQ(s.accounts[t.LeafOrder()[0]].name, "c");
  EXPECT_EQ(s.accounts[t.LeafOrder()[1]].name, "a");
  EXPECT_EQ(s.accounts[t.LeafOrder()[2]].name, "b");
  EXPECT_DOUBLE_EQ(t.Factor(t.LeafOrder()[0]), 1.0);
  EXPECT_DOUBLE_EQ(t.Factor(t.LeafOrder()[1]), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(t.Factor(t.LeafOrder()[2]), 1.0 / 3.0);
}

TEST(FairShareTreeTest, UnderservedAccountRanksFirst) {
  // a: shares 1, usage 30 -> (1/4)/(30/40) = 0.333
  // b: shares 3, usage 10 -> (3/4)/(10/40) = 3.0   -> b first.
  const Snapshot s = ClusterBuilder()
                         .Add(MakeAccount("a").Shares(1).UsageGpuHours(30))
                         .Add(MakeAccount("b").Shares(3).UsageGpuHours(10))
                         .Build();
  const FairShareTree t = FairShareTree::Build(s.accounts, kT0, kWeek);
  EXPECT_EQ(s.accounts[t.LeafOrder()[0]].name, "b");
  EXPECT_DOUBLE_EQ(t.Factor(t.LeafOrder()[0]), 1.0);  // (2-0)/2
  EXPECT_DOUBLE_EQ(t.Factor(t.LeafOrder()[1]), 0.5);  // (2-1)/2
}

TEST(FairShareTreeTest, DepthFirstWalkKeepsSubtreesTogether) {
  // Institutions i1 (shares 1, subtree usage 10) and i2 (shares 1, subtree usage 30):
  //   i1: 0.5 / (10/40) = 2.0, i2: 0.5 / (30/40) = 0.667 -> i1 first.
  // Under i1: p1 (usage 10) and p2 (usage 0 -> infinite): p2, p1. Under i2: p3 only.
  // Leaves: p2, p1, p3 even though p3 alone would compare well with p1.
  const Snapshot s = ClusterBuilder()
                         .Add(MakeAccount("i1"))
                         .Add(MakeAccount("i2"))
                         .Add(MakeAccount("p1").Parent("i1").UsageGpuHours(10))
                         .Add(MakeAccount("p2").Parent("i1"))
                         .Add(MakeAccount("p3").Parent("i2").UsageGpuHours(30))
                         .Build();
  const FairShareTree t = FairShareTree::Build(s.accounts, kT0, kWeek);
  ASSERT_EQ(t.LeafOrder().size(), 3u);
  EXPECT_EQ(s.accounts[t.LeafOrder()[0]].name, "p2");
  EXPECT_EQ(s.accounts[t.LeafOrder()[1]].name, "p1");
  EXPECT_EQ(s.accounts[t.LeafOrder()[2]].name, "p3");
  // i1's subtree usage: 10 GPU-hours = 36000 normalised GPU-seconds.
  EXPECT_DOUBLE_EQ(t.SubtreeUsage(1), 36000.0);
  // An inner account gets its best leaf's factor: i1 -> p2 = 1.0.
  EXPECT_DOUBLE_EQ(t.Factor(1), 1.0);
}

TEST(FairShareTreeTest, DecayChangesTheOrder) {
  // a used 40 GPU-hours two half-lives ago -> 10 now; b used 20 now.
  // a: (1/2)/(10/30) = 1.5, b: (1/2)/(20/30) = 0.75 -> a first.
  const Snapshot s = ClusterBuilder()
                         .Add(MakeAccount("a").UsageGpuHours(40, kT0 - 2 * kWeek))
                         .Add(MakeAccount("b").UsageGpuHours(20))
                         .Build();
  const FairShareTree t = FairShareTree::Build(s.accounts, kT0, kWeek);
  EXPECT_EQ(s.accounts[t.LeafOrder()[0]].name, "a");
}

TEST(FairShareTreeTest, AccountsBelowTheirEntitlementRankFirst) {
  // Usage alone: a (usage 0, infinite) first, then b (1/3 / (10/40) = 1.33), c (1/3 / (30/40) =
  // 0.44). Held / entitled now (normalised GPUs):
  //   a: 50 of 40 -> owed nothing; b: 20 of 40 -> 0.5; c: 10 of 40 -> 0.25.
  // Owed first, furthest below first: c (0.25), b (0.5), then a by usage.
  const Snapshot s = ClusterBuilder()
                         .Add(MakeAccount("a"))
                         .Add(MakeAccount("b").UsageGpuHours(10))
                         .Add(MakeAccount("c").UsageGpuHours(30))
                         .Build();
  // Index 0 is the builder's `root`.
  const std::vector<double> held = {0, 50, 20, 10}, entitled = {0, 40, 40, 40};
  const FairShareTree by_usage = FairShareTree::Build(s.accounts, kT0, kWeek);
  EXPECT_EQ(s.accounts[by_usage.LeafOrder()[0]].name, "a");
  EXPECT_EQ(s.accounts[by_usage.LeafOrder()[2]].name, "c");
  const FairShareTree t = FairShareTree::Build(s.accounts, kT0, kWeek, held, entitled);
  ASSERT_EQ(t.LeafOrder().size(), 3u);
  EXPECT_EQ(s.accounts[t.LeafOrder()[0]].name, "c");
  EXPECT_EQ(s.accounts[t.LeafOrder()[1]].name, "b");
  EXPECT_EQ(s.accounts[t.LeafOrder()[2]].name, "a");
  // Holding exactly the entitlement is owed nothing: b at 40 of 40 falls back behind a (usage).
  const std::vector<double> held2 = {0, 50, 40, 10};
  const FairShareTree t2 = FairShareTree::Build(s.accounts, kT0, kWeek, held2, entitled);
  EXPECT_EQ(s.accounts[t2.LeafOrder()[0]].name, "c");
  EXPECT_EQ(s.accounts[t2.LeafOrder()[1]].name, "a");
  EXPECT_EQ(s.accounts[t2.LeafOrder()[2]].name, "b");
}

TEST(FairShareTreeTest, AllocationIsComparedPerSubtree) {
  // i1 {p1: held 30 of 20, p2: held 0 of 10} holds 30 of 30: owed nothing as a subtree.
  // i2 {p3: held 10 of 20}: 0.5 -> i2 first although p2 alone is further below (0).
  // Under i1, p2 (0 of 10) comes before p1.
  const Snapshot s = ClusterBuilder()
                         .Add(MakeAccount("i1"))
                         .Add(MakeAccount("i2"))
                         .Add(MakeAccount("p1").Parent("i1"))
                         .Add(MakeAccount("p2").Parent("i1"))
                         .Add(MakeAccount("p3").Parent("i2"))
                         .Build();
  // Index 0 is the builder's `root`.
  const std::vector<double> held = {0, 0, 0, 30, 0, 10}, entitled = {0, 0, 0, 20, 10, 20};
  const FairShareTree t = FairShareTree::Build(s.accounts, kT0, kWeek, held, entitled);
  ASSERT_EQ(t.LeafOrder().size(), 3u);
  EXPECT_EQ(s.accounts[t.LeafOrder()[0]].name, "p3");
  EXPECT_EQ(s.accounts[t.LeafOrder()[1]].name, "p2");
  EXPECT_EQ(s.accounts[t.LeafOrder()[2]].name, "p1");
}

}  // namespace
}  // namespace gsched::core
