// The summary arithmetic of gsched-sim (sim/metrics.h), with the numbers written out.
#include "sim/metrics.h"

#include <gtest/gtest.h>

#include <limits>
#include <vector>

namespace gsched::sim {
namespace {

TEST(PercentileTest, NearestRank) {
  const std::vector<double> v = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  // p50: rank ceil(0.50 * 10) = 5 -> 5; p95: ceil(9.5) = 10 -> 10; p10: ceil(1.0) = 1 -> 1.
  EXPECT_EQ(Percentile(v, 50), 5);
  EXPECT_EQ(Percentile(v, 95), 10);
  EXPECT_EQ(Percentile(v, 10), 1);
  // p0 clamps to the first rank, p100 is the maximum.
  EXPECT_EQ(Percentile(v, 0), 1);
  EXPECT_EQ(Percentile(v, 100), 10);
  // Three values, p50: ceil(1.5) = 2 -> the middle one.
  const std::vector<double> w = {0.0, 40.0, 100.0};
  EXPECT_EQ(Percentile(w, 50), 40);
  // p99 of 3 values: ceil(2.97) = 3 -> 100.
  EXPECT_EQ(Percentile(w, 99), 100);
  EXPECT_EQ(Percentile(std::vector<double>{}, 50), 0);
}

TEST(MeanTest, Arithmetic) {
  // (0 + 40 + 100) / 3 = 46.67
  const std::vector<double> w = {0.0, 40.0, 100.0};
  EXPECT_NEAR(Mean(w), 46.6667, 1e-4);
  EXPECT_EQ(Mean(std::vector<double>{}), 0);
}

TEST(BoundedSlowdownTest, ThresholdKeepsShortJobsFromDominating) {
  // Waited 100 s, ran 100 s: JCT 200 / max(100, 10) = 2.
  EXPECT_DOUBLE_EQ(BoundedSlowdown(200, 100), 2.0);
  // Ran 1 s after waiting 49 s: JCT 50 / max(1, 10) = 5 (not 50).
  EXPECT_DOUBLE_EQ(BoundedSlowdown(50, 1), 5.0);
  // Ran 2 s without waiting: 2 / 10 = 0.2, bounded below by 1.
  EXPECT_DOUBLE_EQ(BoundedSlowdown(2, 2), 1.0);
}

TEST(JainIndexTest, EqualIsOneAndOneWinnerIsOneOverN) {
  // x = (1, 1, 1, 1): (4)^2 / (4 * 4) = 1.
  EXPECT_DOUBLE_EQ(JainIndex(std::vector<double>{1, 1, 1, 1}), 1.0);
  // x = (1, 0, 0, 0): 1^2 / (4 * 1) = 0.25.
  EXPECT_DOUBLE_EQ(JainIndex(std::vector<double>{1, 0, 0, 0}), 0.25);
  // x = (1, 2): (3)^2 / (2 * (1 + 4)) = 9 / 10 = 0.9.
  EXPECT_DOUBLE_EQ(JainIndex(std::vector<double>{1, 2}), 0.9);
  // x = (0.5, 1.5, 1.0): 3^2 / (3 * (0.25 + 2.25 + 1)) = 9 / 10.5 = 0.857.
  EXPECT_NEAR(JainIndex(std::vector<double>{0.5, 1.5, 1.0}), 0.857143, 1e-6);
  EXPECT_DOUBLE_EQ(JainIndex(std::vector<double>{}), 1.0);
}

std::vector<core::AccountInfo> Tree() {
  // root > uni (shares 3) > {a (1), b (3)}; root > lab (1) > {c (1)}; root > idle (4).
  std::vector<core::AccountInfo> t(6);
  t[0].name = "root";
  t[1] = {.name = "uni", .parent = 0, .shares = 3};
  t[2] = {.name = "a", .parent = 1, .shares = 1};
  t[3] = {.name = "b", .parent = 1, .shares = 3};
  t[4] = {.name = "lab", .parent = 0, .shares = 1};
  t[5] = {.name = "c", .parent = 4, .shares = 1};
  t.push_back({.name = "idle", .parent = 0, .shares = 4});
  return t;
}

TEST(TargetSharesTest, ProductOfActiveSiblingShares) {
  // Active leaves a, b, c; `idle` had no jobs, so root's children that count are uni (3) and
  // lab (1):
  //   a = 3/4 * 1/4 = 0.1875, b = 3/4 * 3/4 = 0.5625, c = 1/4 * 1/1 = 0.25 (sum 1).
  std::vector<bool> active = {false, false, true, true, false, true, false};
  const std::vector<double> t = TargetShares(Tree(), active);
  EXPECT_DOUBLE_EQ(t[2], 0.1875);
  EXPECT_DOUBLE_EQ(t[3], 0.5625);
  EXPECT_DOUBLE_EQ(t[5], 0.25);
  EXPECT_DOUBLE_EQ(t[6], 0.0);
  EXPECT_DOUBLE_EQ(t[1], 0.75);
}

TEST(TargetSharesTest, InactiveSiblingGivesItsPartAway) {
  // Only a and c active: uni's active children are a alone, so a = 3/4 * 1/1 = 0.75, c = 0.25.
  std::vector<bool> active = {false, false, true, false, false, true, false};
  const std::vector<double> t = TargetShares(Tree(), active);
  EXPECT_DOUBLE_EQ(t[2], 0.75);
  EXPECT_DOUBLE_EQ(t[3], 0.0);
  EXPECT_DOUBLE_EQ(t[5], 0.25);
}

TEST(MaxMinSplitTest, SmallDemandsAreFilledAndTheRestSplitByWeight) {
  // Capacity 10, equal weights, demands (1, 3, 8): level 10 / 3 = 3.33 covers 1; then 9 left
  // for two: level 4.5 covers 3; the last gets 6. (1, 3, 6), sum 10.
  const std::vector<double> e =
      MaxMinSplit(std::vector<double>{1, 3, 8}, std::vector<double>{1, 1, 1}, 10);
  EXPECT_DOUBLE_EQ(e[0], 1);
  EXPECT_DOUBLE_EQ(e[1], 3);
  EXPECT_DOUBLE_EQ(e[2], 6);
}

TEST(MaxMinSplitTest, WeightsScaleTheLevel) {
  // Capacity 12, weights (1, 2), both demand 100: 12 x 1/3 = 4 and 12 x 2/3 = 8.
  const std::vector<double> a =
      MaxMinSplit(std::vector<double>{100, 100}, std::vector<double>{1, 2}, 12);
  EXPECT_DOUBLE_EQ(a[0], 4);
  EXPECT_DOUBLE_EQ(a[1], 8);
  // Weights (1, 2), demands (6, 3): demand per weight 6 and 1.5, so the second is filled first
  // (3 <= 12 x 2/3), the first takes the remaining 9, capped at its demand 6. Sum 9 < 12: no one
  // asked for the rest.
  const std::vector<double> b =
      MaxMinSplit(std::vector<double>{6, 3}, std::vector<double>{1, 2}, 12);
  EXPECT_DOUBLE_EQ(b[0], 6);
  EXPECT_DOUBLE_EQ(b[1], 3);
  // No demand, nothing: a zero-demand sibling gets 0 and gives its part away.
  const std::vector<double> c =
      MaxMinSplit(std::vector<double>{0, 50}, std::vector<double>{5, 1}, 12);
  EXPECT_DOUBLE_EQ(c[0], 0);
  EXPECT_DOUBLE_EQ(c[1], 12);
}

TEST(EntitlementSplitTest, HierarchicalMaxMinCappedAtDemand) {
  // root > uni (3) > {a (1), b (3)}; root > lab (1) > {c (1)}; root > idle (4); capacity 100.
  // Demands: a 50, b 10, c 80, idle 0.
  //   root level: idle asks nothing; uni (demand 60, weight 3) and lab (80, weight 1): level
  //   100 / 4 = 25 -> uni 75 > 60, lab 25; demand per weight uni 20, lab 80: uni is filled
  //   first with 60, lab takes the remaining 40.
  //   uni's 60: a (50, weight 1), b (10, weight 3): b filled with 10, a takes 50.
  //   lab's 40: c alone -> 40.
  const EntitlementSplit split(Tree());
  const std::vector<double> demand = {0, 0, 50, 10, 0, 80, 0};
  const std::vector<double> e = split.Split(demand, 100);
  EXPECT_DOUBLE_EQ(e[2], 50);
  EXPECT_DOUBLE_EQ(e[3], 10);
  EXPECT_DOUBLE_EQ(e[5], 40);
  EXPECT_DOUBLE_EQ(e[6], 0);
  // Capacity 40: root level 40 / 4 = 10 per share: uni 30 (< 60), lab 10 (< 80).
  //   uni's 30: a (50, w 1), b (10, w 3): level 30 / 4 = 7.5 -> b 22.5 > 10, so b gets 10 and
  //   a the remaining 20.
  const std::vector<double> f = split.Split(demand, 40);
  EXPECT_DOUBLE_EQ(f[2], 20);
  EXPECT_DOUBLE_EQ(f[3], 10);
  EXPECT_DOUBLE_EQ(f[5], 10);
}

TEST(FairShareErrorTest, HalfTheSumOfDeviationsOverCapacity) {
  // Capacity 10; allocated (8, 2), entitled (5, 5): (3 + 3) / (2 x 10) = 0.3.
  EXPECT_DOUBLE_EQ(FairShareError(std::vector<double>{8, 2}, std::vector<double>{5, 5}, 10), 0.3);
  // One account holds everything the other was entitled to: (10 + 10) / 20 = 1.
  EXPECT_DOUBLE_EQ(FairShareError(std::vector<double>{10, 0}, std::vector<double>{0, 10}, 10), 1.0);
  EXPECT_DOUBLE_EQ(FairShareError(std::vector<double>{1}, std::vector<double>{0}, 0), 0.0);
}

TEST(SizeClassTest, ByNodesThenGpus) {
  EXPECT_EQ(SizeClassOf(1, 1), SizeClass::kOneGpu);
  EXPECT_EQ(SizeClassOf(1, 2), SizeClass::kOneNode);
  EXPECT_EQ(SizeClassOf(1, 8), SizeClass::kOneNode);
  EXPECT_EQ(SizeClassOf(2, 1), SizeClass::kFewNodes);
  EXPECT_EQ(SizeClassOf(7, 8), SizeClass::kFewNodes);
  EXPECT_EQ(SizeClassOf(8, 8), SizeClass::kManyNodes);
  EXPECT_STREQ(SizeClassName(SizeClass::kManyNodes), ">= 8 nodes");
}

TEST(EstimateTest, WithinTwentyPercentOfTheRemainingWait) {
  const Timestamp t0 = FromUnixSeconds(1000);
  // Given at 1000 s, real start 2000 s (1000 s away): 20% is 200 s. 2150 is off by 150: within;
  // 1750 is off by 250: not.
  EXPECT_TRUE(EstimateWithin(t0, FromUnixSeconds(2150), FromUnixSeconds(2000), 0.2));
  EXPECT_FALSE(EstimateWithin(t0, FromUnixSeconds(1750), FromUnixSeconds(2000), 0.2));
  EXPECT_TRUE(EstimateWithin(t0, FromUnixSeconds(1800), FromUnixSeconds(2000), 0.2));
}

TEST(EstimateTest, SamplesKeepAnEvenSpreadAndWeighEveryEstimate) {
  EstimateSamples s;
  const Timestamp t0 = FromUnixSeconds(0);
  // 20 estimates, the i-th given at i s. Kept: 0..7 (stride 1); the 9th compacts to 0, 2, 4, 6
  // (stride 2) and keeps 8, 10, 12, 14; the 17th compacts to 0, 4, 8, 12 (stride 4) and keeps
  // 16. Weights: 4 each for 0, 4, 8, 12, then 16..19 -> 4. Sum 20.
  for (int i = 0; i < 20; ++i)
    s.Add(t0 + Seconds(i), t0 + Seconds(100));
  const std::vector<EstimateSamples::Sample> w = s.Weighted();
  ASSERT_EQ(w.size(), 5u);
  double total = 0;
  for (size_t k = 0; k < w.size(); ++k) {
    EXPECT_EQ(w[k].given, t0 + Seconds(4 * static_cast<int64_t>(k)));
    EXPECT_DOUBLE_EQ(w[k].weight, 4);
    total += w[k].weight;
  }
  EXPECT_DOUBLE_EQ(total, 20);
  // 21st estimate: number 20 is a multiple of the stride 4, kept; it stands for itself alone.
  s.Add(t0 + Seconds(20), t0 + Seconds(100));
  EXPECT_EQ(s.Weighted().size(), 6u);
  EXPECT_DOUBLE_EQ(s.Weighted().back().weight, 1);
}

TEST(WeightedPercentileTest, CumulativeWeightReachesTheRank) {
  // Values 10 (weight 1), 20 (weight 3), 30 (weight 1): total 5. p50: 2.5 reached at 20; p90:
  // 4.5 reached at 30; p20: 1 reached at 10.
  const std::vector<std::pair<double, double>> v = {{30, 1}, {10, 1}, {20, 3}};
  EXPECT_EQ(WeightedPercentile(v, 50), 20);
  EXPECT_EQ(WeightedPercentile(v, 90), 30);
  EXPECT_EQ(WeightedPercentile(v, 20), 10);
  EXPECT_EQ(WeightedPercentile({}, 50), 0);
}

TEST(StepSeriesTest, TimeWeightedMeansPerBucket) {
  // Buckets of 10 ms from 0. Value 4 over [0, 15), then 2 over [15, 20):
  //   bucket 0 = 4; bucket 1 = (4 * 5 + 2 * 5) / 10 = 3.
  StepSeries s(0, 10, 1);
  const double four[1] = {4}, two[1] = {2};
  s.Add(0, 15, four);
  s.Add(15, 20, two);
  const std::vector<double> m = s.Means(0, 20);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_DOUBLE_EQ(m[0], 4.0);
  EXPECT_DOUBLE_EQ(m[1], 3.0);
}

TEST(StepSeriesTest, WidensByMergingPairsWhenTimeRunsPastTheLastBucket) {
  // 512 buckets of 1 ms cover [0, 512). Value 1 over [0, 512), then 3 over [512, 1023): the
  // width doubles to 2 ms, bucket 0 = [0, 2) holds 1 and bucket 256 = [512, 514) holds 3. The
  // last bucket, [1022, 1024), is partial: 1 ms of value 3 up to 1023 -> mean 3.
  StepSeries s(0, 1, 1);
  const double one[1] = {1}, three[1] = {3};
  s.Add(0, 512, one);
  s.Add(512, 1023, three);
  EXPECT_EQ(s.width_ms(), 2);
  const std::vector<double> m = s.Means(0, 1023);
  ASSERT_EQ(m.size(), 512u);
  EXPECT_DOUBLE_EQ(m[0], 1.0);
  EXPECT_DOUBLE_EQ(m[255], 1.0);
  EXPECT_DOUBLE_EQ(m[256], 3.0);
  EXPECT_DOUBLE_EQ(m[511], 3.0);
}

TEST(FormatNumberTest, FixedDecimalsAndNullForNonFinite) {
  EXPECT_EQ(FormatNumber(1.23456, 3), "1.235");
  EXPECT_EQ(FormatNumber(-0.0001, 2), "0.00");
  EXPECT_EQ(FormatNumber(2.5, 0), "2");  // Round half to even, as printf does.
  EXPECT_EQ(FormatNumber(std::numeric_limits<double>::infinity(), 2), "null");
}

}  // namespace
}  // namespace gsched::sim
