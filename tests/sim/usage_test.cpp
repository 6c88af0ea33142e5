// The simulator charges usage and budgets as the daemon does: with `core::AttemptUsage`, the
// function `UsageBook` charges an ended attempt with (tests/unit/server/usage_book_test.cpp pins
// the daemon's side). The simulator accrues in steps of its clock; summed, the steps come to the
// daemon's one charge for the whole attempt, up to rounding.
#include "scheduler/core/usage.h"

#include <gtest/gtest.h>

#include "sim/simulation.h"

namespace gsched::sim {
namespace {

const Timestamp kStart = FromUnixSeconds(1'800'000'000);
constexpr Duration kHour = Seconds(3600);

// One node of 2 h200 GPUs (cost 1.2) and root > lab, where `lab` has a budget for the first
// 30 minutes only.
core::Snapshot Cluster() {
  core::Snapshot s;
  s.gpu_types = {{"h200", 1.2}};
  s.sites = {"s1"};
  s.blocks = {{"b1", 0}};
  core::NodeInfo n;
  n.name = "n1";
  n.gpu_count = 2;
  s.nodes = {n};
  core::AccountInfo root;
  root.name = "root";
  core::AccountInfo lab;
  lab.name = "lab";
  lab.parent = 0;
  lab.budget = core::Budget{100, kStart, kStart + Seconds(1800), 0};
  s.accounts = {root, lab};
  s.users = {"alice"};
  return s;
}

TEST(SimulatorUsageTest, AnAttemptIsChargedAsTheDaemonChargesIt) {
  SimConfig config;
  config.policy.half_life = Duration(0);  // No decay: the sums compare directly.
  config.interval = Seconds(60);          // Ticks: the clock moves in many steps.
  Simulation sim(Cluster(), config, kStart);
  core::PendingJobInfo job;
  job.id = JobId(1);
  job.account = 1;
  job.gpus_per_node = 2;
  job.time_limit = 2 * kHour;
  job.submit_time = kStart;
  sim.Submit(job, kHour);
  sim.RunUntilIdle(kStart + 4 * kHour);
  const SimJob& done = sim.Job(JobId(1));
  ASSERT_TRUE(done.first_start && done.finished);
  // 2 GPUs x cost 1.2 x 3,600 s = 8,640 normalised GPU-seconds.
  const double daemon = core::AttemptUsage(2, 1.2, *done.first_start, *done.finished);
  EXPECT_NEAR(daemon, 8640, 1e-9);
  const core::AccountInfo& lab = sim.cluster().accounts[1];
  EXPECT_NEAR(lab.usage.value, daemon, 1e-9 * daemon);
  // The budget: 2.4 normalised GPUs over the part of the attempt inside the period, as
  // `BudgetCharge` gives the daemon. `SimConfig` coalesces nothing by default, so the job starts
  // at once: 2.4 x 0.5 h = 1.2 GPU-hours.
  EXPECT_EQ(*done.first_start, kStart);
  const double budget = core::BudgetCharge(2 * 1.2, *done.first_start, *done.finished, kStart,
                                           kStart + Seconds(1800));
  EXPECT_NEAR(lab.budget->consumed_gpu_hours, budget, 1e-9);
  EXPECT_NEAR(budget, 1.2, 1e-12);
}

}  // namespace
}  // namespace gsched::sim
