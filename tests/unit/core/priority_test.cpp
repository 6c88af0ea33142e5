#include "scheduler/core/priority.h"

#include <gtest/gtest.h>

#include "tests/testutil/builders.h"

namespace gsched::core {
namespace {

using testutil::kT0;

TEST(PriorityTest, WeightedSumOfFactors) {
  PendingJobInfo job;
  job.nodes = 2;
  job.gpus_per_node = 8;
  job.submit_time = kT0 - Seconds(3600 * 12);
  // fairshare 0.5; age 12h / 24h = 0.5; size 16 / 64 = 0.25; class normal = 0.5.
  const PriorityFactors f =
      ComputeFactors(job, 0.5, 64, api::PriorityClass::kNormal, kT0, Seconds(24 * 3600));
  EXPECT_DOUBLE_EQ(f.fairshare, 0.5);
  EXPECT_DOUBLE_EQ(f.age, 0.5);
  EXPECT_DOUBLE_EQ(f.size, 0.25);
  EXPECT_DOUBLE_EQ(f.priority_class, 0.5);
  // 10000*0.5 + 1000*0.5 + 1000*0.25 + 5000*0.5 + 7 = 5000 + 500 + 250 + 2500 + 7 = 8257
  EXPECT_DOUBLE_EQ(WeightedPriority(f, PriorityWeights{}, 7), 8257.0);
}

TEST(PriorityTest, AgeIsCappedAndClassesOrdered) {
  PendingJobInfo job;
  job.submit_time = kT0 - Seconds(100 * 24 * 3600);
  const PriorityFactors f =
      ComputeFactors(job, 0, 8, api::PriorityClass::kHigh, kT0, Seconds(7 * 24 * 3600));
  EXPECT_DOUBLE_EQ(f.age, 1.0);  // min(1, 100d / 7d)
  EXPECT_DOUBLE_EQ(ClassFactor(api::PriorityClass::kHigh), 1.0);
  EXPECT_DOUBLE_EQ(ClassFactor(api::PriorityClass::kNormal), 0.5);
  EXPECT_DOUBLE_EQ(ClassFactor(api::PriorityClass::kPreemptible), 0.0);
}

TEST(PriorityTest, TiesGoToEarlierSubmitThenLowerId) {
  const QueueKey a{100, kT0, JobId(5)};
  const QueueKey b{100, kT0 + Seconds(1), JobId(1)};
  const QueueKey c{100, kT0, JobId(6)};
  const QueueKey d{101, kT0 + Seconds(9), JobId(9)};
  EXPECT_TRUE(RanksBefore(d, a));  // Higher priority first.
  EXPECT_TRUE(RanksBefore(a, b));  // Same priority: earlier submit.
  EXPECT_TRUE(RanksBefore(a, c));  // Same submit: lower id.
  EXPECT_FALSE(RanksBefore(a, a));
}

}  // namespace
}  // namespace gsched::core
