// Run-time predictions and the estimated starts built on them (run_time_prediction.h,
// estimate.h), with the arithmetic in the comments.
#include "scheduler/core/run_time_prediction.h"

#include <gtest/gtest.h>

#include <vector>

#include "scheduler/core/estimate.h"
#include "scheduler/core/schedule.h"
#include "tests/testutil/builders.h"

namespace gsched::core {
namespace {

using testutil::ClusterBuilder;
using testutil::kT0;
using testutil::MakeJob;
using testutil::MakeNode;

const Duration kHour = Seconds(3600);
const Duration kMinute = Seconds(60);

TEST(RunTimeHistoryTest, MeanOfTheLastJobsRatios) {
  RunTimeHistory h;
  EXPECT_EQ(h.Ratio("alice"), 1.0);            // No history: the limit.
  h.Record("alice", 30 * kMinute, 2 * kHour);  // 0.25
  EXPECT_DOUBLE_EQ(h.Ratio("alice"), 0.25);
  h.Record("alice", kHour, 2 * kHour);  // 0.5: (0.25 + 0.5) / 2
  EXPECT_DOUBLE_EQ(h.Ratio("alice"), 0.375);
  h.Record("alice", kHour, 2 * kHour);      // 0.5
  h.Record("alice", kHour, 2 * kHour);      // 0.5
  h.Record("alice", 3 * kHour, 2 * kHour);  // over the limit: 1
  // The last four: 0.5, 0.5, 0.5, 1 -> 2.5 / 4; the first (0.25) has dropped out.
  EXPECT_DOUBLE_EQ(h.Ratio("alice"), 0.625);
  EXPECT_EQ(h.Ratio("bob"), 1.0);       // Per user.
  h.Record("bob", kHour, Duration(0));  // No limit: nothing to learn.
  EXPECT_EQ(h.Ratio("bob"), 1.0);
  h.Record("bob", Duration(0), kHour);  // Ended at once: kept strictly positive.
  EXPECT_GT(h.Ratio("bob"), 0.0);
  EXPECT_LT(h.Ratio("bob"), 1e-5);
}

TEST(RunTimeHistoryTest, LimitClassesDouble) {
  EXPECT_EQ(RunTimeLimitClass(Duration(0)), 0u);
  EXPECT_EQ(RunTimeLimitClass(15 * kMinute), 0u);
  EXPECT_EQ(RunTimeLimitClass(30 * kMinute), 1u);  // [30 min, 1 h)
  EXPECT_EQ(RunTimeLimitClass(45 * kMinute), 1u);
  EXPECT_EQ(RunTimeLimitClass(kHour), 2u);  // [1 h, 2 h)
  EXPECT_EQ(RunTimeLimitClass(2 * kHour), 3u);
  EXPECT_EQ(RunTimeLimitClass(7 * 24 * kHour), 9u);  // 168 h in [128 h, 256 h): 30 min x 2^8
  EXPECT_EQ(RunTimeLimitClass(10000 * kHour), kRunTimeLimitClasses - 1);  // Open-ended.
}

TEST(RunTimeHistoryTest, RatiosPerLimitClassFallBackToTheUsers) {
  RunTimeHistory h;
  EXPECT_EQ(h.LimitRatios("alice")[0], 0.0f);    // Nothing yet.
  h.Record("alice", 2 * kMinute, 15 * kMinute);  // Class 0: 2/15
  h.Record("alice", 3 * kHour, 8 * kHour);       // Class 5 ([8 h, 16 h)): 0.375
  h.Record("alice", 5 * kHour, 8 * kHour);       // Class 5: 0.625
  const std::array<float, kRunTimeLimitClasses> r = h.LimitRatios("alice");
  EXPECT_FLOAT_EQ(r[0], 2.0f / 15.0f);
  EXPECT_FLOAT_EQ(r[5], 0.5f);  // (0.375 + 0.625) / 2
  EXPECT_EQ(r[3], 0.0f);
  // The user's ratio over all three: (2/15 + 0.375 + 0.625) / 3.
  EXPECT_DOUBLE_EQ(h.Ratio("alice"), (2.0 / 15.0 + 1.0) / 3.0);

  Snapshot s = ClusterBuilder().Add(MakeNode("n0")).Build();
  s.users = {"alice", "bob"};
  s.user_run_time_ratio = {h.Ratio("alice")};
  s.user_limit_run_time_ratio = {r};
  EXPECT_TRUE(ValidateSnapshot(s).ok());
  // A 10 h limit is in class 5: 0.5 -> 5 h. A 2 h limit (class 3, none): the user's ratio.
  PendingJobInfo j;
  j.user = 0;
  EXPECT_EQ(PredictedRunTime(s, j, 10 * kHour), 5 * kHour);
  EXPECT_DOUBLE_EQ(UserRunTimeRatio(s, 0, 2 * kHour), h.Ratio("alice"));
  // bob has nothing: his limit.
  j.user = 1;
  EXPECT_EQ(PredictedRunTime(s, j, 10 * kHour), 10 * kHour);
  s.user_limit_run_time_ratio[0][2] = 1.5f;
  EXPECT_FALSE(ValidateSnapshot(s).ok());
}

TEST(RunTimeHistoryTest, PredictedRunTimeAndEnd) {
  EXPECT_EQ(PredictedRunTime(2 * kHour, 0.375), 45 * kMinute);  // 120 min x 0.375
  EXPECT_EQ(PredictedRunTime(2 * kHour, 1.0), 2 * kHour);
  EXPECT_EQ(PredictedRunTime(2 * kHour, 1e-9), Duration(1));  // At least 1 ms.
  // Started an hour ago under 4h: 0.5 -> ends at t0 - 1h + 2h = t0 + 1h.
  EXPECT_EQ(PredictedEnd(kT0 - kHour, 4 * kHour, 0.5, kT0), kT0 + kHour);
  // 0.2 -> t0 - 1h + 48 min, already past: halfway from t0 to the limit at t0 + 3h.
  EXPECT_EQ(PredictedEnd(kT0 - kHour, 4 * kHour, 0.2, kT0), kT0 + 90 * kMinute);
  // The limit itself is past: now.
  EXPECT_EQ(PredictedEnd(kT0 - 5 * kHour, 4 * kHour, 0.5, kT0), kT0);
  // Ratio 1 is the limit, as backfill assumes.
  EXPECT_EQ(PredictedEnd(kT0 - kHour, 4 * kHour, 1.0, kT0), kT0 + 3 * kHour);
}

uint32_t UserIndex(const Snapshot& s, const std::string& name) {
  for (uint32_t u = 0; u < s.users.size(); ++u) {
    if (s.users[u] == name)
      return u;
  }
  ADD_FAILURE() << "no user " << name;
  return 0;
}

void SetRatio(Snapshot& s, const std::string& user, double ratio) {
  s.user_run_time_ratio.resize(s.users.size(), 1.0);
  s.user_run_time_ratio[UserIndex(s, user)] = ratio;
}

Shape Gpus(int32_t per_node, int32_t nodes = 1) {
  Shape sh;
  sh.gpus_per_node = per_node;
  sh.nodes = nodes;
  return sh;
}

// n0: job 10 (8 GPUs, user u1, ratio 0.5) started t0 - 1h under 4h: limit end t0 + 3h,
// predicted end t0 - 1h + 2h = t0 + 1h.
// n1: job 11 (8 GPUs, user u2, no history) started t0 under 2h: ends t0 + 2h either way.
Snapshot TwoBusyNodes() {
  Snapshot s =
      ClusterBuilder()
          .Add(MakeNode("n0"))
          .Add(MakeNode("n1"))
          .AddRunning(MakeJob(10).User("u1").On("n0", 8).Started(kT0 - kHour).TimeLimit(4 * kHour))
          .AddRunning(MakeJob(11).User("u2").On("n1", 8).Started(kT0).TimeLimit(2 * kHour))
          .Build();
  SetRatio(s, "u1", 0.5);
  return s;
}

// Job 1: one whole node (8 GPUs) for at most 2 h, submitted at t0; blocked on `TwoBusyNodes`.
void AddBlockedJob(Snapshot& s) {
  PendingJobInfo& j = s.pending.emplace_back();
  j.id = JobId(1);
  j.gpus_per_node = 8;
  j.time_limit = 2 * kHour;
  j.submit_time = kT0;
}

TEST(EstimateStartsTest, PredictedEndsAndHoldsReleasedAtPredictedEnds) {
  const Snapshot s = TwoBusyNodes();
  const std::vector<EstimateRequest> requests = {
      // A: on limits n1 at t0 + 2h beats n0 at t0 + 3h; predicted, n0 at t0 + 1h. Holds n0
      // until t0 + 1h + 30 min.
      {Gpus(8), 1, 30 * kMinute, kT0 + 2 * kHour},
      // B: n0 after A at t0 + 1h30 beats n1 at t0 + 2h; holds n0 until t0 + 2h30.
      {Gpus(8), 1, kHour, kT0 + 3 * kHour},
      // C (2 x 8): n1 at t0 + 2h, n0 at t0 + 2h30 -> t0 + 2h30.
      {Gpus(8, 2), 1, kHour, kT0 + 5 * kHour},
      // D: its reservation (t0 + 1h) is earlier than any predicted fit: the reservation.
      {Gpus(8), 1, kHour, kT0 + kHour},
  };
  const std::vector<Timestamp> got = EstimateStarts(s, SumRunning(s).nodes, {}, requests, kT0);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0], kT0 + kHour);
  EXPECT_EQ(got[1], kT0 + 90 * kMinute);
  EXPECT_EQ(got[2], kT0 + 150 * kMinute);
  EXPECT_EQ(got[3], kT0 + kHour);
}

TEST(EstimateStartsTest, StartsOfThePassTakeAndGiveBackAtTheirPredictedEnds) {
  const Snapshot s = ClusterBuilder().Add(MakeNode("n0")).Build();
  // This pass started 4 GPUs of n0 (GPUs 0-3), predicted to end at t0 + 20 min.
  const std::vector<NodeAllocation> alloc = {{0, 0x0F, 0, 0}};
  const std::vector<StartedAllocation> started = {{0, alloc, kT0 + 20 * kMinute}};
  // 4 GPUs fit now (the other half); 8 only once the start ends at t0 + 20 min.
  const std::vector<EstimateRequest> requests = {{Gpus(8), 1, kHour, kT0 + kHour},
                                                 {Gpus(4), 1, kHour, kT0 + 2 * kHour}};
  const std::vector<Timestamp> got = EstimateStarts(s, SumRunning(s).nodes, started, requests, kT0);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], kT0 + 20 * kMinute);
  // The 8-GPU job holds all of n0 until t0 + 1h20, and the 4 free GPUs too: t0 + 1h20.
  EXPECT_EQ(got[1], kT0 + 80 * kMinute);
}

TEST(ScheduleEstimateTest, ReservationsOnLimitsEstimatesOnPredictions) {
  // Job 1 (8 GPUs) is blocked; both nodes busy as in `TwoBusyNodes`.
  Snapshot s = TwoBusyNodes();
  AddBlockedJob(s);
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  // The reservation counts on limits: n1 at t0 + 2h (n0's limit is t0 + 3h).
  ASSERT_EQ(plan.reservations.size(), 1u);
  EXPECT_EQ(plan.reservations[0].start, kT0 + 2 * kHour);
  // The estimate on predictions: n0 at t0 + 1h.
  EXPECT_EQ(plan.FindPending(JobId(1))->estimated_start, kT0 + kHour);
  // Without any history the estimate is the reservation, as it always was.
  s.user_run_time_ratio.clear();
  EXPECT_EQ(Schedule(s, PolicyConfig{}, kT0).FindPending(JobId(1))->estimated_start,
            kT0 + 2 * kHour);
}

TEST(ScheduleEstimateTest, KnownRunTimesReplacePredictions) {
  // No history at all, but job 11 on n1 is known to run 30 min (the simulator's
  // `--estimate-oracle`): predicted end t0 + 30 min where its limit ends at t0 + 2h.
  Snapshot s = TwoBusyNodes();
  s.user_run_time_ratio.clear();
  ASSERT_EQ(s.running[1].id, JobId(11));
  s.running[1].known_run_time = 30 * kMinute;
  AddBlockedJob(s);
  const Plan plan = Schedule(s, PolicyConfig{}, kT0);
  ASSERT_EQ(plan.reservations.size(), 1u);
  EXPECT_EQ(plan.reservations[0].start, kT0 + 2 * kHour);  // Limits, as always.
  EXPECT_EQ(plan.FindPending(JobId(1))->estimated_start, kT0 + 30 * kMinute);
  // A pending job's known run time, at most its limit; else from the history (none: the limit).
  PendingJobInfo j;
  j.known_run_time = 3 * kHour;
  EXPECT_EQ(PredictedRunTime(s, j, 2 * kHour), 2 * kHour);
  j.known_run_time = 20 * kMinute;
  EXPECT_EQ(PredictedRunTime(s, j, 2 * kHour), 20 * kMinute);
  j.known_run_time = Duration(0);
  EXPECT_EQ(PredictedRunTime(s, j, 2 * kHour), 2 * kHour);
}

TEST(ScheduleEstimateTest, SnapshotRatiosAreValidated) {
  Snapshot s = TwoBusyNodes();
  EXPECT_TRUE(ValidateSnapshot(s).ok());
  s.user_run_time_ratio[0] = 0;
  EXPECT_FALSE(ValidateSnapshot(s).ok());
  s.user_run_time_ratio[0] = 1.5;
  EXPECT_FALSE(ValidateSnapshot(s).ok());
  s.user_run_time_ratio.assign(s.users.size() + 1, 0.5);
  EXPECT_FALSE(ValidateSnapshot(s).ok());
}

}  // namespace
}  // namespace gsched::core
