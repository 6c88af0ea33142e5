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
