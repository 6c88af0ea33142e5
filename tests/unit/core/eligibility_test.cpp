#include "scheduler/core/eligibility.h"

#include <gtest/gtest.h>

#include "tests/testutil/builders.h"

namespace gsched::core {
namespace {

using api::DependencyType;
using api::JobState;
using testutil::ClusterBuilder;
using testutil::kT0;
using testutil::MakeAccount;

TEST(DependencyTest, TableOfTypesAndStates) {
  struct Row {
    DependencyType type;
    JobState state;
    DependencyState want;
  };
  const Row rows[] = {
      {DependencyType::kAfterOk, JobState::kRunning, DependencyState::kWaiting},
      {DependencyType::kAfterOk, JobState::kCompleted, DependencyState::kSatisfied},
      {DependencyType::kAfterOk, JobState::kFailed, DependencyState::kNeverSatisfied},
      {DependencyType::kAfterAny, JobState::kPending, DependencyState::kWaiting},
      {DependencyType::kAfterAny, JobState::kCancelled, DependencyState::kSatisfied},
      {DependencyType::kAfterNotOk, JobState::kTimeout, DependencyState::kSatisfied},
      {DependencyType::kAfterNotOk, JobState::kCompleted, DependencyState::kNeverSatisfied},
      {DependencyType::kAfterNotOk, JobState::kStarting, DependencyState::kWaiting},
  };
  for (const Row& r : rows) {
    PendingJobInfo job;
    job.dependencies.push_back({r.type, JobId(7), r.state});
    EXPECT_EQ(CheckDependencies(job).state, r.want)
        << api::ToString(r.type) << " on " << api::ToString(r.state);
  }
}

TEST(DependencyTest, NeverSatisfiedWinsOverWaiting) {
  PendingJobInfo job;
  job.dependencies.push_back({DependencyType::kAfterOk, JobId(1), JobState::kRunning});
  job.dependencies.push_back({DependencyType::kAfterOk, JobId(2), JobState::kFailed});
  const DependencyCheck c = CheckDependencies(job);
  EXPECT_EQ(c.state, DependencyState::kNeverSatisfied);
  EXPECT_EQ(c.blocking, JobId(2));
}

TEST(BudgetTest, SpentOnlyInsideThePeriodAndUpTheChain) {
  const Snapshot s = ClusterBuilder()
                         // inst: 100 GPU-hours for [t0 - 1h, t0 + 1h), 100 consumed -> spent.
                         .Add(MakeAccount("inst")
                                  .Budget(100, 100, kT0 - Seconds(3600), kT0 + Seconds(3600))
                                  .OnBudgetExhausted(api::BudgetExhaustedPolicy::kHold))
                         .Add(MakeAccount("p").Parent("inst").Budget(50, 10, kT0 - Seconds(3600),
                                                                     kT0 + Seconds(3600)))
                         .Build();
  // p itself has 50 - 10 = 40 left, but its parent is spent.
  BudgetState b = BudgetOf(s, 2, kT0);
  EXPECT_TRUE(b.exhausted);
  EXPECT_EQ(b.account, 1u);
  EXPECT_EQ(b.policy, api::BudgetExhaustedPolicy::kHold);
  // After the period ends, the budget no longer applies.
  b = BudgetOf(s, 2, kT0 + Seconds(3600));
  EXPECT_FALSE(b.exhausted);
}

}  // namespace
}  // namespace gsched::core
