// Budgets in a pass (`BudgetLedger`, scheduler/core/eligibility.h, and phase 3 of `Schedule`):
// running attempts count against their account's and every ancestor's budget up to their time
// limits, a job that may overrun what is left waits with reason `budget` (or runs as preemptible,
// as the account says), and the jobs of one pass are counted together. All times are fixed: the
// pass reads no clock. GPU-hours are normalised (h100 costs 1.0 here).
#include <gtest/gtest.h>

#include "scheduler/core/eligibility.h"
#include "scheduler/core/schedule.h"
#include "tests/testutil/builders.h"
#include "tests/unit/core/reason_of.h"

namespace gsched::core {
namespace {

using api::BudgetExhaustedPolicy;
using api::ReasonCode;
using testutil::ClusterBuilder;
using testutil::kT0;
using testutil::MakeAccount;
using testutil::MakeJob;
using testutil::MakeNode;

const Duration kHour = Seconds(3600);

// Account `a` with 20 GPU-hours for [t0 - 1h, t0 + 10h), 6 consumed (running usage included), and
// a running job of 4 GPUs started at t0 - 1h with a 3 h limit: it may use 4 x 2 h = 8 more.
// Left: 20 - 6 - 8 = 6 GPU-hours.
ClusterBuilder SixLeft(BudgetExhaustedPolicy policy) {
  ClusterBuilder b;
  b.Add(MakeNode("n0"))
      .Add(MakeAccount("a").Budget(20, 6, kT0 - kHour, kT0 + 10 * kHour).OnBudgetExhausted(policy))
      .AddRunning(MakeJob(100).Account("a").On("n0", 4).Started(kT0 - kHour).TimeLimit(3 * kHour));
  return b;
}

TEST(BudgetLedgerTest, RunningAttemptsCountUpToTheirTimeLimits) {
  const Snapshot s = SixLeft(BudgetExhaustedPolicy::kHold).Build();
  BudgetLedger ledger(s, kT0);
  ASSERT_TRUE(ledger.active());
  // 2 GPUs for 3 h = 6 <= 6: fits exactly. 2 GPUs for 3.5 h = 7 > 6: does not.
  EXPECT_TRUE(ledger.Fits(1, 2, kT0 + 3 * kHour).fits);
  const BudgetLedger::Check over = ledger.Fits(1, 2, kT0 + 3 * kHour + kHour / 2);
  EXPECT_FALSE(over.fits);
  EXPECT_FALSE(over.exhausted);
  EXPECT_DOUBLE_EQ(over.remaining, 6);
  EXPECT_DOUBLE_EQ(over.needed, 7);
  // After committing 1 GPU for 2 h, 4 are left.
  ledger.Commit(1, 1, kT0 + 2 * kHour);
  EXPECT_FALSE(ledger.Fits(1, 2, kT0 + 3 * kHour).fits);
  EXPECT_TRUE(ledger.Fits(1, 2, kT0 + 2 * kHour).fits);
}

TEST(BudgetLedgerTest, OnlyThePartWithinThePeriodCounts) {
  // The period ends at t0 + 10h: a job of 1 GPU until t0 + 20h needs only 10 of its 20 hours.
  const Snapshot s = ClusterBuilder()
                         .Add(MakeNode("n0"))
                         .Add(MakeAccount("a").Budget(10, 0, kT0 - kHour, kT0 + 10 * kHour))
                         .Build();
  BudgetLedger ledger(s, kT0);
  EXPECT_TRUE(ledger.Fits(1, 1, kT0 + 20 * kHour).fits);
  EXPECT_FALSE(ledger.Fits(1, 2, kT0 + 20 * kHour).fits);  // 2 x 10 = 20 > 10.
}

TEST(BudgetScheduleTest, AJobThatWouldOverrunWaitsWithReasonBudget) {
  // Job 1: 2 GPUs, 4 h limit -> 8 > 6 left: waits. Job 2: 1 GPU, 4 h -> 4 <= 6: starts.
  const Snapshot s = SixLeft(BudgetExhaustedPolicy::kHold)
                         .Add(MakeJob(1).Account("a").Gpus(2).TimeLimit(4 * kHour))
                         .Add(MakeJob(2).Account("a").Gpus(1).TimeLimit(4 * kHour))
                         .Build();
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  ASSERT_EQ(plan.starts.size(), 1u);
  EXPECT_EQ(plan.starts[0].job, JobId(2));
  EXPECT_FALSE(plan.starts[0].runs_as_preemptible);
  const Explanation why = ReasonOf(plan, 1);
  EXPECT_EQ(why.code, ReasonCode::kBudget);
  EXPECT_EQ(why.Text("account"), "a");
  EXPECT_NE(why.message.find("would be overrun"), std::string::npos) << why.message;
}

TEST(BudgetScheduleTest, OrRunsAsPreemptibleWhenTheAccountSaysSo) {
  const Snapshot s = SixLeft(BudgetExhaustedPolicy::kPreemptible)
                         .Add(MakeJob(1).Account("a").Gpus(2).TimeLimit(4 * kHour))
                         .Build();
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  ASSERT_EQ(plan.starts.size(), 1u);
  EXPECT_TRUE(plan.starts[0].runs_as_preemptible);
}

TEST(BudgetScheduleTest, TheStartsOfOnePassAreCountedTogether) {
  // Three jobs of 1 GPU for 2.5 h = 2.5 each against 6 left: two start (5), the third would
  // bring it to 7.5 and waits.
  const Snapshot s = SixLeft(BudgetExhaustedPolicy::kHold)
                         .Add(MakeJob(1).Account("a").Gpus(1).TimeLimit(5 * kHour / 2))
                         .Add(MakeJob(2).Account("a").Gpus(1).TimeLimit(5 * kHour / 2))
                         .Add(MakeJob(3).Account("a").Gpus(1).TimeLimit(5 * kHour / 2))
                         .Build();
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  EXPECT_EQ(plan.starts.size(), 2u);
  EXPECT_EQ(ReasonOf(plan, 3).code, ReasonCode::kBudget);
}

TEST(BudgetScheduleTest, AParentsBudgetBindsItsChildren) {
  // inst: 10 GPU-hours, 2 consumed; its child p has no budget of its own. A running job of p
  // (2 GPUs, 1 h left) takes 2 more: 6 left for inst's subtree. p's job of 2 GPUs x 4 h = 8
  // waits on inst's budget; a job of 1 GPU x 4 h = 4 of sibling q starts.
  const Snapshot s =
      ClusterBuilder()
          .Add(MakeNode("n0"))
          .Add(MakeAccount("inst")
                   .Budget(10, 2, kT0 - kHour, kT0 + 10 * kHour)
                   .OnBudgetExhausted(BudgetExhaustedPolicy::kHold))
          .Add(MakeAccount("p").Parent("inst"))
          .Add(MakeAccount("q").Parent("inst"))
          .AddRunning(
              MakeJob(100).Account("p").On("n0", 2).Started(kT0 - kHour).TimeLimit(2 * kHour))
          .Add(MakeJob(1).Account("p").Gpus(2).TimeLimit(4 * kHour))
          .Add(MakeJob(2).Account("q").Gpus(1).TimeLimit(4 * kHour))
          .Build();
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  ASSERT_EQ(plan.starts.size(), 1u);
  EXPECT_EQ(plan.starts[0].job, JobId(2));
  EXPECT_EQ(ReasonOf(plan, 1).code, ReasonCode::kBudget);
  EXPECT_EQ(ReasonOf(plan, 1).Text("account"), "inst");
}

TEST(BudgetScheduleTest, ASpentBudgetSaysSo) {
  const Snapshot s = ClusterBuilder()
                         .Add(MakeNode("n0"))
                         .Add(MakeAccount("a")
                                  .Budget(10, 10, kT0 - kHour, kT0 + kHour)
                                  .OnBudgetExhausted(BudgetExhaustedPolicy::kHold))
                         .Add(MakeJob(1).Account("a").Gpus(1).TimeLimit(kHour / 60))
                         .Build();
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  EXPECT_TRUE(plan.starts.empty());
  EXPECT_NE(ReasonOf(plan, 1).message.find("is spent"), std::string::npos);
}

}  // namespace
}  // namespace gsched::core
