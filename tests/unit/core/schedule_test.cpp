// End-to-end tests of one pass: backfill, preemption and every reason code, through the plan.
#include "scheduler/core/schedule.h"

#include <gtest/gtest.h>

#include "tests/testutil/builders.h"
#include "tests/unit/core/reason_of.h"

namespace gsched::core {
namespace {

using api::ReasonCode;
using testutil::ClusterBuilder;
using testutil::kT0;
using testutil::MakeAccount;
using testutil::MakeJob;
using testutil::MakeNode;

const Duration kHour = Seconds(3600);

TEST(ScheduleTest, StartsInPriorityOrderWithAttemptAndAllocation) {
  const Snapshot s = ClusterBuilder()
                         .Add(MakeNode("n0"))
                         .Add(MakeJob(1).Gpus(8).Attempts(2))
                         .Add(MakeJob(2).Gpus(1))
                         .Build();
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  // Size factor favours job 1: 8/8 = 1.0 vs 1/8; it takes the whole node, job 2 waits.
  ASSERT_EQ(plan.starts.size(), 1u);
  EXPECT_EQ(plan.starts[0].job, JobId(1));
  EXPECT_EQ(plan.starts[0].attempt, Attempt(3));
  EXPECT_EQ(plan.starts[0].nodes[0].gpus, 0xFFu);
  EXPECT_EQ(plan.starts[0].end, kT0 + kHour);
  EXPECT_EQ(ReasonOf(plan, 2).code, ReasonCode::kPriority);
  EXPECT_EQ(ReasonOf(plan, 2).Int("jobs_ahead"), 1);
  EXPECT_EQ(ReasonOf(plan, 2).Int("first_ahead"), 1);
}

TEST(ScheduleTest, ClassDefaultAndMaximumTimeLimits) {
  PolicyConfig config;
  config.class_limits[1] = {Seconds(100), Seconds(200)};
  const Snapshot s = ClusterBuilder()
                         .Add(MakeNode("n0"))
                         .Add(MakeJob(1).TimeLimit(Duration(0)))
                         .Add(MakeJob(2).TimeLimit(Seconds(999)))
                         .Build();
  const Plan plan = Schedule(s, config, kT0);
  ASSERT_EQ(plan.starts.size(), 2u);
  EXPECT_EQ(plan.FindStart(JobId(1))->time_limit, Seconds(100));  // default
  EXPECT_EQ(plan.FindStart(JobId(2))->time_limit, Seconds(200));  // min(999, max 200)
}

// Two nodes; n0 is busy until t0 + 2h (job 100), n1 free. Gang job 1 (2 nodes x 8, the oldest)
// cannot start and reserves both nodes from t0 + 2h.
ClusterBuilder GangBlockedByOneNode() {
  ClusterBuilder b;
  b.Add(MakeNode("n0"))
      .Add(MakeNode("n1"))
      .AddRunning(MakeJob(100).On("n0", 8).Started(kT0 - kHour).TimeLimit(3 * kHour))
      .Add(MakeJob(1).Gpus(8).Nodes(2).Submitted(kT0 - kHour));
  return b;
}

TEST(ScheduleTest, BackfillReservesForTheBlockedGangAndLetsShortJobsIn) {
  // Job 2 (8 GPUs, 1h) ends at t0 + 1h <= t0 + 2h and backfills onto n1; job 3 (8 GPUs, 3h)
  // would end after the gang's reservation and must wait.
  const Snapshot s = GangBlockedByOneNode()
                         .Add(MakeJob(2).Gpus(8).TimeLimit(kHour))
                         .Add(MakeJob(3).Gpus(8).TimeLimit(3 * kHour).Submitted(kT0 - kHour / 2))
                         .Build();
  // Queue order: 1 (oldest), 3, 2. Job 3 is refused by the reservation; job 2 then backfills.
  // Job 3 gets no reservation of its own: both nodes are held by job 1 for ever after.
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  ASSERT_EQ(plan.reservations.size(), 1u);
  EXPECT_EQ(plan.reservations[0].job, JobId(1));
  // Running job 100 ends at (t0 - 1h) + 3h = t0 + 2h.
  EXPECT_EQ(plan.reservations[0].start, kT0 + 2 * kHour);
  EXPECT_EQ(plan.reservations[0].nodes.size(), 2u);
  ASSERT_EQ(plan.starts.size(), 1u);
  EXPECT_EQ(plan.starts[0].job, JobId(2));
  const Explanation gang = ReasonOf(plan, 1);
  EXPECT_EQ(gang.code, ReasonCode::kResources);
  EXPECT_EQ(plan.FindPending(JobId(1))->estimated_start, kT0 + 2 * kHour);
  const Explanation e3 = ReasonOf(plan, 3);
  EXPECT_EQ(e3.code, ReasonCode::kReservation);
  EXPECT_EQ(e3.Int("reserved_for"), 1);
}

TEST(ScheduleTest, AShapeThatFailedIsSearchedAgainOnlyForAnEarlierEnd) {
  // As above: n1 is free but held from t0 + 2h for job 1. Jobs 3 (3h) and 4 (4h) have one
  // shape: once 3 failed, 4 (ending later) fails without a search. Job 2 (1h, same shape, last in
  // the queue) ends before the reservation, so it is searched for and placed.
  const Snapshot s = GangBlockedByOneNode()
                         .Add(MakeJob(3).Gpus(8).TimeLimit(3 * kHour).Submitted(kT0 - kHour / 2))
                         .Add(MakeJob(4).Gpus(8).TimeLimit(4 * kHour).Submitted(kT0 - kHour / 3))
                         .Add(MakeJob(2).Gpus(8).TimeLimit(kHour))
                         .Build();
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  ASSERT_EQ(plan.starts.size(), 1u);
  EXPECT_EQ(plan.starts[0].job, JobId(2));
  // Searches: job 1, job 3, job 2; job 4 shares job 3's failure and its explanation.
  EXPECT_EQ(plan.stats.placement_attempts, 3);
  EXPECT_EQ(plan.stats.shape_cache_hits, 1);
  EXPECT_EQ(ReasonOf(plan, 4).code, ReasonCode::kReservation);
  EXPECT_EQ(ReasonOf(plan, 4).Int("reserved_for"), 1);
}

TEST(ScheduleTest, BackfillDisabledKeepsStrictPriorityOrder) {
  // Job 1 (two whole nodes) is blocked by job 100; job 3 would fit on n1 but would delay job 1, so
  // without backfill it waits behind it. Job 4 asks for another GPU type and is not held back.
  PolicyConfig config;
  config.backfill.enabled = false;
  const Snapshot s = ClusterBuilder()
                         .GpuType("h100", 1.0)
                         .GpuType("b200", 2.0)
                         .Add(MakeNode("n0"))
                         .Add(MakeNode("n1"))
                         .Add(MakeNode("b0").Type("b200"))
                         .AddRunning(MakeJob(100).On("n0", 8).TimeLimit(3 * kHour))
                         .Add(MakeJob(1).Gpus(8).Nodes(2).Type("h100"))
                         .Add(MakeJob(3).Gpus(8).Type("h100").TimeLimit(3 * kHour))
                         .Add(MakeJob(4).Gpus(8).Type("b200"))
                         .Build();
  const Plan plan = Schedule(s, config, kT0);
  EXPECT_TRUE(plan.reservations.empty());
  ASSERT_EQ(plan.starts.size(), 1u);
  EXPECT_EQ(plan.starts[0].job, JobId(4));
  const Explanation e3 = ReasonOf(plan, 3);
  EXPECT_EQ(e3.code, ReasonCode::kPriority);
  EXPECT_NE(e3.message.find("job 1"), std::string::npos) << e3.message;
}

TEST(ScheduleTest, PreemptionReclaimsGuaranteeFromTheBorrowerLosingLeastWork) {
  // a has 8 GPUs guaranteed; b borrows both nodes. Victim candidates on each node:
  //   n0: job 100 started 3h ago, checkpointed 10 min ago -> 600 s lost
  //   n1: job 101 started 2h ago, no checkpoint -> 7200 s lost
  // a's job needs 8 GPUs on one node: n0 wins, job 100 is preempted with its 30 s grace.
  const Snapshot s = ClusterBuilder()
                         .Add(MakeNode("n0"))
                         .Add(MakeNode("n1"))
                         .Add(MakeAccount("a").Guaranteed("h100", 8))
                         .Add(MakeAccount("b"))
                         .AddRunning(MakeJob(100)
                                         .Account("b")
                                         .On("n0", 8)
                                         .Started(kT0 - 3 * kHour)
                                         .Checkpointed(kT0 - Seconds(600))
                                         .Borrowing()
                                         .Grace(Seconds(30))
                                         .TimeLimit(10 * kHour))
                         .AddRunning(MakeJob(101)
                                         .Account("b")
                                         .On("n1", 8)
                                         .Started(kT0 - 2 * kHour)
                                         .Borrowing()
                                         .TimeLimit(10 * kHour))
                         .Add(MakeJob(1).Account("a").Gpus(8))
                         .Build();
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  ASSERT_EQ(plan.preemptions.size(), 1u);
  EXPECT_EQ(plan.preemptions[0].victim, JobId(100));
  EXPECT_EQ(plan.preemptions[0].for_job, JobId(1));
  EXPECT_EQ(plan.preemptions[0].grace, Seconds(30));
  EXPECT_TRUE(plan.starts.empty());  // It waits for the GPUs to be released.
  EXPECT_EQ(plan.FindPending(JobId(1))->estimated_start, kT0 + Seconds(30));
  EXPECT_EQ(ReasonOf(plan, 1).code, ReasonCode::kResources);
  EXPECT_EQ(ReasonOf(plan, 1).Int("victims"), 1);
}

TEST(ScheduleTest, PreemptionCountsTheWorkOfEveryGpuAVictimHolds) {
  // a needs one whole node. Freeing n0 takes one victim, a 2-node gang 20 min in: 16 GPUs x
  // 1200 s = 5.33 GPU-hours lost. Freeing n1 takes two 4-GPU jobs 30 min in: 2 x 4 x 1800 s = 4
  // GPU-hours. Fewer victims is not less work lost: n1 wins.
  const Snapshot s = ClusterBuilder()
                         .Add(MakeNode("n0"))
                         .Add(MakeNode("n1"))
                         .Add(MakeNode("n2"))
                         .Add(MakeAccount("a").Guaranteed("h100", 8))
                         .Add(MakeAccount("b"))
                         .AddRunning(MakeJob(100)
                                         .Account("b")
                                         .On("n0", 8)
                                         .On("n2", 8)
                                         .Started(kT0 - Seconds(1200))
                                         .Borrowing()
                                         .TimeLimit(10 * kHour))
                         .AddRunning(MakeJob(101)
                                         .Account("b")
                                         .On("n1", 4)
                                         .Started(kT0 - Seconds(1800))
                                         .Borrowing()
                                         .TimeLimit(10 * kHour))
                         .AddRunning(MakeJob(102)
                                         .Account("b")
                                         .On("n1", 4)
                                         .Started(kT0 - Seconds(1800))
                                         .Borrowing()
                                         .TimeLimit(10 * kHour))
                         .Add(MakeJob(1).Account("a").Gpus(8))
                         .Build();
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  ASSERT_EQ(plan.preemptions.size(), 2u);
  EXPECT_EQ(plan.preemptions[0].victim, JobId(101));
  EXPECT_EQ(plan.preemptions[1].victim, JobId(102));
}

// The borrower on n0 has run an hour (8 GPU-hours of work) and reaches its limit in 10 minutes.
Snapshot BorrowerNearItsEnd(Timestamp submitted) {
  return ClusterBuilder()
      .Add(MakeNode("n0"))
      .Add(MakeAccount("a").Guaranteed("h100", 8))
      .Add(MakeAccount("b"))
      .AddRunning(MakeJob(100)
                      .Account("b")
                      .On("n0", 8)
                      .Started(kT0 - kHour)
                      .Borrowing()
                      .TimeLimit(kHour + Seconds(600)))
      .Add(MakeJob(1).Account("a").Gpus(8).Submitted(submitted))
      .Build();
}

TEST(ScheduleTest, ReclaimWaitsWhenGpusFreeUpBeforeItWouldPay) {
  // Reclaiming loses 8 GPU-hours; the job has waited nothing and GPUs free up in 10 minutes,
  // before the 30 minutes it waits at most: it waits for them, with a reservation, and says why.
  const Plan plan = Schedule(BorrowerNearItsEnd(kT0), PolicyConfig{}, kT0);
  EXPECT_TRUE(plan.preemptions.empty());
  EXPECT_EQ(plan.FindPending(JobId(1))->estimated_start, kT0 + Seconds(600));
  const Explanation e = ReasonOf(plan, 1);
  EXPECT_EQ(e.code, ReasonCode::kResources);
  EXPECT_NEAR(e.Double("lost_gpu_hours").value_or(-1), 8.0, 1e-9);
  EXPECT_NEAR(e.Double("waited_gpu_hours").value_or(-1), 0.0, 1e-9);
  EXPECT_EQ(e.Int("reclaim_at_ms"), ToUnixMillis(kT0 + Seconds(1800)));
  EXPECT_NE(e.message.find("reclaiming them now would lose 8.00 GPU-hours"), std::string::npos)
      << e.message;
  EXPECT_NE(e.message.find("at the latest 30 min after its submission"), std::string::npos)
      << e.message;

  // A factor of 0 reclaims at once, whatever it costs; so does a wait bound of 0.
  PolicyConfig eager;
  eager.preemption.reclaim_wait_factor = 0;
  EXPECT_EQ(Schedule(BorrowerNearItsEnd(kT0), eager, kT0).preemptions.size(), 1u);
  PolicyConfig unbounded;
  unbounded.preemption.max_reclaim_wait = Duration(0);
  EXPECT_EQ(Schedule(BorrowerNearItsEnd(kT0), unbounded, kT0).preemptions.size(), 1u);
  // GPUs freeing up in 10 minutes do not help a job that may wait at most 5.
  PolicyConfig tight;
  tight.preemption.max_reclaim_wait = Seconds(300);
  EXPECT_EQ(Schedule(BorrowerNearItsEnd(kT0), tight, kT0).preemptions.size(), 1u);
}

TEST(ScheduleTest, ReclaimGoesAheadOnceTheWaitPays) {
  // Bounded at 2 h here. Waited 59 min: 7.87 GPU-hours < 8 lost; 61 min: 8.13 >= 8.
  PolicyConfig config;
  config.preemption.max_reclaim_wait = 2 * kHour;
  EXPECT_TRUE(
      Schedule(BorrowerNearItsEnd(kT0 - Seconds(59 * 60)), config, kT0).preemptions.empty());
  const Plan plan = Schedule(BorrowerNearItsEnd(kT0 - Seconds(61 * 60)), config, kT0);
  ASSERT_EQ(plan.preemptions.size(), 1u);
  EXPECT_EQ(plan.preemptions[0].victim, JobId(100));
}

TEST(ScheduleTest, ReclaimGoesAheadWhenGpusWouldFreeUpTooLate) {
  // By default a job within its guarantee waits at most 30 minutes. GPUs free up at t0 + 10 min:
  // in time for a job submitted 19:59 before t0, too late for one submitted 20:01 before.
  EXPECT_TRUE(
      Schedule(BorrowerNearItsEnd(kT0 - Seconds(1199)), PolicyConfig{}, kT0).preemptions.empty());
  EXPECT_EQ(
      Schedule(BorrowerNearItsEnd(kT0 - Seconds(1201)), PolicyConfig{}, kT0).preemptions.size(),
      1u);
}

TEST(ScheduleTest, AJobOfAnyTypeHeldOffTheOnlyTypeThereIsWaitsForItsLimit) {
  // The cluster has h100 nodes only (b200 is a known type without nodes). a may hold 4 h100 and
  // holds them: its next job, of any type, waits at that limit, not for b200 GPUs that no node
  // has.
  const Snapshot s = ClusterBuilder()
                         .GpuType("h100", 1.0)
                         .GpuType("b200", 2.0)
                         .Add(MakeNode("n0"))
                         .Add(MakeAccount("a").Limit("h100", 4))
                         .AddRunning(MakeJob(100).Account("a").On("n0", 4).TimeLimit(kHour))
                         .Add(MakeJob(1).Account("a").Gpus(4))
                         .Build();
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  EXPECT_TRUE(plan.starts.empty());
  const Explanation e = ReasonOf(plan, 1);
  EXPECT_TRUE(e.code == ReasonCode::kQuota || e.code == ReasonCode::kBorrowLimit) << e.message;
  EXPECT_EQ(e.message.find("b200"), std::string::npos) << e.message;
}

TEST(ScheduleTest, PreemptionSparesYoungJobsOwnAccountAndNonBorrowers) {
  PolicyConfig config;
  config.preemption.min_runtime = Seconds(600);
  const Snapshot s =
      ClusterBuilder()
          .Add(MakeNode("n0"))
          .Add(MakeNode("n1"))
          .Add(MakeNode("n2"))
          .Add(MakeAccount("a").Guaranteed("h100", 8))
          .Add(MakeAccount("b"))
          // Young borrower: 599 s < 600 s.
          .AddRunning(MakeJob(100).Account("b").On("n0", 8).Started(kT0 - Seconds(599)).Borrowing())
          // Not borrowing and not preemptible.
          .AddRunning(MakeJob(101).Account("b").On("n1", 8).Started(kT0 - kHour))
          // Same account.
          .AddRunning(MakeJob(102).Account("a").On("n2", 8).Started(kT0 - kHour).Borrowing())
          .Add(MakeJob(1).Account("a").Gpus(8))
          .Build();
  const Plan plan = Schedule(s, config, kT0);
  EXPECT_TRUE(plan.preemptions.empty());
}

TEST(ScheduleTest, PreemptionCapsPerCycleAndPerAccount) {
  ClusterBuilder c;
  c.Add(MakeAccount("a").Guaranteed("h100", 32)).Add(MakeAccount("b").PreemptionsLastHour(1));
  for (int i = 0; i < 4; ++i) {
    c.Add(MakeNode("n" + std::to_string(i)));
    c.AddRunning(MakeJob(100 + i)
                     .Account("b")
                     .On("n" + std::to_string(i), 8)
                     .Borrowing()
                     .Started(kT0 - kHour)
                     .TimeLimit(10 * kHour));
    c.Add(MakeJob(1 + i).Account("a").Gpus(8));
  }
  const Snapshot s = c.Build();
  PolicyConfig config;
  config.preemption.max_per_cycle = 3;
  config.preemption.max_per_account_per_hour = 100;
  EXPECT_EQ(Schedule(s, config, kT0).preemptions.size(), 3u);
  // b was preempted once in the last hour; a cap of 3 leaves 2.
  config.preemption.max_per_account_per_hour = 3;
  EXPECT_EQ(Schedule(s, config, kT0).preemptions.size(), 2u);
}

TEST(ScheduleTest, TerminatingVictimsAreNotPreemptedAgain) {
  // Next cycle: job 100 already got its signal (deadline t0 + 20 s). The reclaiming job waits
  // for it instead of choosing job 101.
  const Snapshot s =
      ClusterBuilder()
          .Add(MakeNode("n0"))
          .Add(MakeNode("n1"))
          .Add(MakeAccount("a").Guaranteed("h100", 8))
          .AddRunning(MakeJob(100)
                          .Account("b")
                          .On("n0", 8)
                          .Borrowing()
                          .Started(kT0 - kHour)
                          .Terminating(kT0 + Seconds(20)))
          .AddRunning(MakeJob(101).Account("b").On("n1", 8).Borrowing().Started(kT0 - kHour))
          .Add(MakeJob(1).Account("a").Gpus(8))
          .Build();
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  EXPECT_TRUE(plan.preemptions.empty());
  EXPECT_EQ(plan.FindPending(JobId(1))->estimated_start, kT0 + Seconds(20));
}

TEST(ScheduleTest, GangPreemptionStaysInOneBlockAndLosesTheLeastWork) {
  // a (16 guaranteed) wants 2 whole nodes in one block.
  //   b0: x0, x1 each held by a borrower           -> 2 victims
  //   b1: y0 free, y1 held by a borrower           -> 1 victim
  //   b2: z0 held by a borrower (one node only)    -> cannot hold the gang
  // Work lost per block (every borrower ran an hour on 8 GPUs): b0 = 16 GPU-hours, b1 = 8 -> b1,
  // victim on y1.
  const Snapshot s =
      ClusterBuilder()
          .Add(MakeNode("x0").Block("b0"))
          .Add(MakeNode("x1").Block("b0"))
          .Add(MakeNode("y0").Block("b1"))
          .Add(MakeNode("y1").Block("b1"))
          .Add(MakeNode("z0").Block("b2"))
          .Add(MakeAccount("a").Guaranteed("h100", 16))
          .AddRunning(MakeJob(100)
                          .Account("b")
                          .On("x0", 8)
                          .Borrowing()
                          .Started(kT0 - kHour)
                          .TimeLimit(10 * kHour))
          .AddRunning(MakeJob(101)
                          .Account("b")
                          .On("x1", 8)
                          .Borrowing()
                          .Started(kT0 - kHour)
                          .TimeLimit(10 * kHour))
          .AddRunning(MakeJob(102)
                          .Account("b")
                          .On("y1", 8)
                          .Borrowing()
                          .Started(kT0 - kHour)
                          .TimeLimit(10 * kHour))
          .AddRunning(MakeJob(103)
                          .Account("b")
                          .On("z0", 8)
                          .Borrowing()
                          .Started(kT0 - kHour)
                          .TimeLimit(10 * kHour))
          .Add(MakeJob(1).Account("a").Gpus(8).Nodes(2).Topology(api::Topology::kBlock))
          .Build();
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  ASSERT_EQ(plan.preemptions.size(), 1u);
  EXPECT_EQ(plan.preemptions[0].victim, JobId(102));
  ASSERT_EQ(plan.reservations.size(), 1u);
  for (const ReservedNode& n : plan.reservations[0].nodes)
    EXPECT_EQ(s.blocks[s.nodes[n.node].block].name, "b1");
}

TEST(ScheduleTest, BorrowingIsMarked) {
  const Snapshot s = ClusterBuilder()
                         .Add(MakeNode("n0"))
                         .Add(MakeAccount("a").Guaranteed("h100", 2))
                         .Add(MakeJob(1).Account("a").Gpus(2))
                         .Add(MakeJob(2).Account("a").Gpus(2))
                         .Build();
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  ASSERT_EQ(plan.starts.size(), 2u);
  // First: 0 + 2 <= 2 guaranteed. Second: 2 + 2 > 2 -> borrowing.
  EXPECT_FALSE(plan.starts[0].borrowing);
  EXPECT_TRUE(plan.starts[1].borrowing);
}

TEST(ScheduleTest, AcceptableTypesFallBackToTheNextType) {
  const Snapshot s = ClusterBuilder()
                         .GpuType("b200", 2.0)
                         .GpuType("h100", 1.0)
                         .Add(MakeNode("b").Type("b200"))
                         .Add(MakeNode("h").Type("h100"))
                         .AddRunning(MakeJob(100).On("b", 8))
                         .Add(MakeJob(1).Type("b200").Type("h100").Gpus(4))
                         .Build();
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  ASSERT_EQ(plan.starts.size(), 1u);
  EXPECT_EQ(plan.starts[0].gpu_type, 1u);
}

// ---- Reason codes, one test each. ----

TEST(ReasonTest, Held) {
  const Snapshot s = ClusterBuilder().Add(MakeNode("n0")).Add(MakeJob(1).Held()).Build();
  EXPECT_EQ(ReasonOf(Schedule(s, {}, kT0), 1).code, ReasonCode::kHeld);
}

TEST(ReasonTest, Dependency) {
  using api::DependencyType;
  using api::JobState;
  const Snapshot s =
      ClusterBuilder()
          .Add(MakeNode("n0"))
          .Add(MakeJob(1).DependsOn(DependencyType::kAfterOk, 50, JobState::kRunning))
          .Add(MakeJob(2).DependsOn(DependencyType::kAfterOk, 51, JobState::kFailed))
          .Add(MakeJob(3).DependsOn(DependencyType::kAfterAny, 51, JobState::kFailed))
          .Add(MakeJob(4).DependsOn(DependencyType::kAfterNotOk, 51, JobState::kFailed))
          .Add(MakeJob(5).DependsOn(DependencyType::kAfterNotOk, 52, JobState::kCompleted))
          .Build();
  const Plan plan = Schedule(s, {}, kT0);
  EXPECT_EQ(ReasonOf(plan, 1).code, ReasonCode::kDependency);
  EXPECT_EQ(ReasonOf(plan, 1).Int("job"), 50);
  EXPECT_EQ(ReasonOf(plan, 1).Int("never_satisfied"), 0);
  EXPECT_EQ(ReasonOf(plan, 2).Int("never_satisfied"), 1);
  EXPECT_TRUE(plan.FindStart(JobId(3)));
  EXPECT_TRUE(plan.FindStart(JobId(4)));
  EXPECT_EQ(ReasonOf(plan, 5).Int("never_satisfied"), 1);
}

TEST(ReasonTest, BudgetHoldOrPreemptible) {
  auto build = [](api::BudgetExhaustedPolicy p) {
    return ClusterBuilder()
        .Add(MakeNode("n0"))
        // 100 GPU-hours granted, 100 consumed, period around t0.
        .Add(MakeAccount("a").Budget(100, 100, kT0 - kHour, kT0 + kHour).OnBudgetExhausted(p))
        .Add(MakeJob(1).Account("a"))
        .Build();
  };
  Plan plan = Schedule(build(api::BudgetExhaustedPolicy::kHold), {}, kT0);
  EXPECT_EQ(ReasonOf(plan, 1).code, ReasonCode::kBudget);
  EXPECT_EQ(ReasonOf(plan, 1).Text("account"), "a");
  plan = Schedule(build(api::BudgetExhaustedPolicy::kPreemptible), {}, kT0);
  ASSERT_EQ(plan.starts.size(), 1u);
  EXPECT_TRUE(plan.starts[0].runs_as_preemptible);
}

TEST(ReasonTest, QuotaWithUsedGuaranteedLimit) {
  const Snapshot s = ClusterBuilder()
                         .Add(MakeNode("n0"))
                         .Add(MakeNode("n1"))
                         .Add(MakeAccount("a").Guaranteed("h100", 4).Limit("h100", 10))
                         .AddRunning(MakeJob(100).Account("a").On("n0", 8))
                         .Add(MakeJob(1).Account("a").Gpus(4))
                         .Build();
  // 8 used + 4 requested = 12 > limit 10.
  const Explanation e = ReasonOf(Schedule(s, {}, kT0), 1);
  EXPECT_EQ(e.code, ReasonCode::kQuota);
  EXPECT_EQ(e.Int("used"), 8);
  EXPECT_EQ(e.Int("guaranteed"), 4);
  EXPECT_EQ(e.Int("limit"), 10);
  EXPECT_EQ(e.Text("account"), "a");
}

TEST(ReasonTest, BorrowLimitWhenIdleCapacityIsGuaranteedToOthers) {
  // One node, 8 free. b has 8 guaranteed and a job waiting (held back by a dependency? no:
  // b's job is eligible but lower priority). a has no guarantee: borrowable = 8 - 8 = 0.
  const Snapshot s =
      ClusterBuilder()
          .Add(MakeNode("n0"))
          .Add(MakeAccount("a").UsageGpuHours(0))
          .Add(MakeAccount("b").Guaranteed("h100", 8).UsageGpuHours(100))
          .Add(MakeJob(1).Account("a").Gpus(4))
          .Add(MakeJob(2).Account("b").Gpus(8).Class(api::PriorityClass::kPreemptible))
          .Build();
  const Plan plan = Schedule(s, {}, kT0);
  const Explanation e = ReasonOf(plan, 1);
  EXPECT_EQ(e.code, ReasonCode::kBorrowLimit);
  EXPECT_EQ(e.Int("borrowable"), 0);
  EXPECT_TRUE(plan.FindStart(JobId(2)));
}

TEST(ReasonTest, ResourcesWithFreeCounts) {
  const Snapshot s = ClusterBuilder()
                         .Add(MakeNode("n0"))
                         .AddRunning(MakeJob(100).On("n0", 6))
                         .Add(MakeJob(1).Gpus(4))
                         .Build();
  const Explanation e = ReasonOf(Schedule(s, {}, kT0), 1);
  EXPECT_EQ(e.code, ReasonCode::kResources);
  EXPECT_EQ(e.Int("requested"), 4);
  EXPECT_EQ(e.Int("free_total"), 2);  // 8 - 6
}

TEST(ReasonTest, AJobLargerThanTheClusterSaysSo) {
  // Two 8-GPU nodes, one of them down: a 3-node gang can never fit, a 2-node gang could later.
  const Snapshot s = ClusterBuilder()
                         .Add(MakeNode("n0"))
                         .Add(MakeNode("n1").State(api::NodeState::kDown))
                         .Add(MakeJob(1).Gpus(8).Nodes(3))
                         .Add(MakeJob(2).Gpus(8).Nodes(2))
                         .Build();
  const Plan plan = Schedule(s, {}, kT0);
  const Explanation never = ReasonOf(plan, 1);
  EXPECT_EQ(never.code, ReasonCode::kResources);
  EXPECT_EQ(never.Int("nodes_big_enough"), 2);
  EXPECT_NE(never.message.find("cannot run on this cluster as it is"), std::string::npos)
      << never.message;
  const Explanation later = ReasonOf(plan, 2);
  EXPECT_EQ(later.message.find("cannot run"), std::string::npos) << later.message;
}

TEST(ReasonTest, FragmentationIsToldApartFromResources) {
  // Four nodes with 2 free GPUs each: 8 free in total, a 4-GPU job fits nowhere.
  ClusterBuilder c;
  for (int i = 0; i < 4; ++i) {
    c.Add(MakeNode("n" + std::to_string(i)));
    c.AddRunning(MakeJob(100 + i).On("n" + std::to_string(i), 6));
  }
  c.Add(MakeJob(1).Gpus(4));
  const Explanation e = ReasonOf(Schedule(c.Build(), {}, kT0), 1);
  EXPECT_EQ(e.code, ReasonCode::kFragmentation);
  EXPECT_EQ(e.Int("free_total"), 8);  // 4 x (8 - 6)
  EXPECT_EQ(e.Int("free_largest_node"), 2);
  EXPECT_EQ(e.Int("free_largest_block"), 8);
}

TEST(ReasonTest, Topology) {
  // Two blocks of one free node each: 2 nodes x 8 fit across blocks, not in one block.
  const Snapshot s = ClusterBuilder()
                         .Add(MakeNode("n0").Block("b0"))
                         .Add(MakeNode("n1").Block("b1"))
                         .Add(MakeJob(1).Gpus(8).Nodes(2).Topology(api::Topology::kBlock))
                         .Build();
  const Explanation e = ReasonOf(Schedule(s, {}, kT0), 1);
  EXPECT_EQ(e.code, ReasonCode::kTopology);
  EXPECT_EQ(e.Int("free_largest_block"), 8);
}

TEST(ReasonTest, NodeHealth) {
  // 8 GPUs, 3 unhealthy: an 8-GPU job would fit if they were healthy.
  const Snapshot s = ClusterBuilder()
                         .Add(MakeNode("n0").UnhealthyGpu(0).UnhealthyGpu(1).UnhealthyGpu(2))
                         .Add(MakeJob(1).Gpus(8))
                         .Build();
  const Explanation e = ReasonOf(Schedule(s, {}, kT0), 1);
  EXPECT_EQ(e.code, ReasonCode::kNodeHealth);
  EXPECT_EQ(e.Int("unhealthy"), 3);
}

TEST(ReasonTest, PriorityNamesTheFirstJobAhead) {
  const Snapshot s = ClusterBuilder()
                         .Add(MakeNode("n0"))
                         .Add(MakeJob(7).Gpus(4).Submitted(kT0 - kHour))
                         .Add(MakeJob(8).Gpus(4).Submitted(kT0 - kHour))
                         .Add(MakeJob(9).Gpus(4))
                         .Build();
  const Plan plan = Schedule(s, {}, kT0);
  const Explanation e = ReasonOf(plan, 9);
  EXPECT_EQ(e.code, ReasonCode::kPriority);
  EXPECT_EQ(e.Int("jobs_ahead"), 2);
  EXPECT_EQ(e.Int("first_ahead"), 7);
}

TEST(ReasonTest, UserLimitsAndArrayThrottle) {
  const Snapshot s = ClusterBuilder()
                         .Add(MakeNode("n0"))
                         .Add(MakeNode("n1"))
                         .Add(MakeAccount("a").MaxRunningGpusPerUser(4))
                         .Add(MakeAccount("b").MaxPendingJobsPerUser(1))
                         .AddRunning(MakeJob(100).Account("a").User("u").On("n0", 2))
                         .Add(MakeJob(1).Account("a").User("u").Gpus(4))  // 2 + 4 > 4
                         .Add(MakeJob(2).Account("a").User("v").Gpus(4))  // v: 0 + 4 <= 4
                         .Add(MakeJob(3).Account("b").User("w").Gpus(1).Submitted(kT0 - kHour))
                         .Add(MakeJob(4).Account("b").User("w").Gpus(1))  // second pending of w
                         .Add(MakeJob(5).Account("c").Gpus(1).Array(50, 2, 2))
                         .Build();
  const Plan plan = Schedule(s, {}, kT0);
  EXPECT_EQ(ReasonOf(plan, 1).code, ReasonCode::kUserLimit);
  EXPECT_EQ(ReasonOf(plan, 1).Int("used"), 2);
  EXPECT_EQ(ReasonOf(plan, 1).Int("limit"), 4);
  EXPECT_TRUE(plan.FindStart(JobId(2)));
  EXPECT_TRUE(plan.FindStart(JobId(3)));
  EXPECT_EQ(ReasonOf(plan, 4).code, ReasonCode::kUserLimit);
  EXPECT_EQ(ReasonOf(plan, 5).code, ReasonCode::kUserLimit);
  EXPECT_EQ(ReasonOf(plan, 5).Text("limit_name"), "array_max_concurrent");
}

TEST(ReasonTest, EveryPendingJobHasExactlyOneReason) {
  ClusterBuilder c;
  c.Add(MakeNode("n0"));
  for (int i = 1; i <= 20; ++i)
    c.Add(MakeJob(i).Gpus(1 + i % 8).Held(i % 5 == 0));
  const Snapshot s = c.Build();
  const Plan plan = Schedule(s, {}, kT0);
  EXPECT_EQ(plan.starts.size() + plan.pending.size(), s.pending.size());
}

// Two free nodes (16 GPUs). a asks for 4 x 4 GPUs, b for 2 x 4: max-min by equal shares gives
// each 8. a has no usage (ranks first by usage), b has some.
ClusterBuilder TwoAccountsOneOverAsking() {
  ClusterBuilder b;
  b.Add(MakeNode("n0"))
      .Add(MakeNode("n1"))
      .Add(MakeAccount("a"))
      .Add(MakeAccount("b").UsageGpuHours(10));
  for (uint64_t id = 1; id <= 4; ++id)
    b.Add(MakeJob(id).Account("a").Gpus(4));
  b.Add(MakeJob(5).Account("b").Gpus(4)).Add(MakeJob(6).Account("b").Gpus(4));
  return b;
}

TEST(ScheduleTest, AnAccountAtItsEntitlementWaitsForTheOthers) {
  const Snapshot s = TwoAccountsOneOverAsking().Build();
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  // Order: a (no usage) first: 1, 2, 3, 4, then 5, 6. After 1 and 2, a holds 8 of its 8: 3 and
  // 4 are deferred, 5 and 6 take the other node, and 3 and 4 find nothing left.
  ASSERT_EQ(plan.starts.size(), 4u);
  EXPECT_TRUE(plan.FindStart(JobId(1)));
  EXPECT_TRUE(plan.FindStart(JobId(2)));
  EXPECT_TRUE(plan.FindStart(JobId(5)));
  EXPECT_TRUE(plan.FindStart(JobId(6)));
  EXPECT_EQ(ReasonOf(plan, 3).code, ReasonCode::kPriority);
  // Deferred jobs keep their rank in the queue: 2 jobs ahead of job 3.
  EXPECT_EQ(plan.FindPending(JobId(3))->jobs_ahead, 2);
}

TEST(ScheduleTest, DeferredJobsStillTakeWhatNobodyElseWants) {
  // b's one job (4 GPUs) needs a label no node has: entitled a 12, b 4. a's fourth job is
  // deferred (a holds 12 after three), then takes the 4 GPUs b cannot use: work conserving.
  ClusterBuilder b;
  b.Add(MakeNode("n0"))
      .Add(MakeNode("n1"))
      .Add(MakeAccount("a"))
      .Add(MakeAccount("b").UsageGpuHours(10));
  for (uint64_t id = 1; id <= 4; ++id)
    b.Add(MakeJob(id).Account("a").Gpus(4));
  b.Add(MakeJob(5).Account("b").Gpus(4).Label("x"));
  const Plan plan = Schedule(b.Build(), PolicyConfig{}, kT0);
  ASSERT_EQ(plan.starts.size(), 4u);
  EXPECT_TRUE(plan.FindStart(JobId(4)));
  EXPECT_FALSE(plan.FindStart(JobId(5)));
}

TEST(ScheduleTest, PacingNeverDefersAJobWithinItsGuarantee) {
  // Three nodes, 24 GPUs; a holds n1 (job 100), b holds half of n0 (job 101, borrowing, 2h
  // old), c holds n2. Demand a 8 + 4, b 4 + 4, c 8: entitled 8 each, so a (holding 8) is at its
  // entitlement and b (4) is owed. Job 1 (a, admin +20,000) ranks first and is within a's
  // guarantee (8 + 4 <= 16). Deferred, it would let job 2 (b, within b's guarantee: 4 + 4 <= 8)
  // take n0's last 4 GPUs and then preempt b's borrowing job 101 to get in; not deferred, it
  // takes them, and job 2 finds no borrower of another account to reclaim from.
  const Snapshot s =
      ClusterBuilder()
          .Add(MakeNode("n0"))
          .Add(MakeNode("n1"))
          .Add(MakeNode("n2"))
          .Add(MakeAccount("a").Guaranteed("h100", 16))
          .Add(MakeAccount("b").Guaranteed("h100", 8).UsageGpuHours(10))
          .Add(MakeAccount("c").UsageGpuHours(10))
          .AddRunning(MakeJob(100).Account("a").On("n1", 8).Started(kT0).TimeLimit(4 * kHour))
          .AddRunning(MakeJob(101)
                          .Account("b")
                          .On("n0", 4)
                          .Borrowing()
                          .Started(kT0 - 2 * kHour)
                          .TimeLimit(3 * kHour))
          .AddRunning(MakeJob(102).Account("c").On("n2", 8).Started(kT0).TimeLimit(4 * kHour))
          .Add(MakeJob(1).Account("a").Gpus(4).AdminAdjustment(20'000))
          .Add(MakeJob(2).Account("b").Gpus(4))
          .Build();
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  ASSERT_EQ(plan.starts.size(), 1u);
  EXPECT_EQ(plan.starts[0].job, JobId(1));
  EXPECT_TRUE(plan.preemptions.empty());
}

TEST(ScheduleTest, WithoutFairShareWeightTheOrderIsNotPaced) {
  PolicyConfig config;
  config.weights = {.fairshare = 0, .age = 0, .size = 0, .priority_class = 0};
  const Plan plan = Schedule(TwoAccountsOneOverAsking().Build(), config, kT0);
  // Submit order, then id: 1-4 fill both nodes.
  ASSERT_EQ(plan.starts.size(), 4u);
  for (uint64_t id = 1; id <= 4; ++id)
    EXPECT_TRUE(plan.FindStart(JobId(id))) << id;
}

}  // namespace
}  // namespace gsched::core
