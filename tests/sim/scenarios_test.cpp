// Scenario tests: the real core and loop on a ManualClock with fake workers (sim/simulation.h),
// scenarios in tests/sim/scenarios/*.yaml.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "tests/sim/scenario.h"
#include "tests/testutil/builders.h"

namespace gsched::sim {
namespace {

const Timestamp kStart = testutil::kT0;

Scenario Load(const std::string& name) {
  auto sc = LoadScenario(std::string(GSCHED_SIM_SCENARIOS_DIR) + "/" + name, kStart);
  EXPECT_TRUE(sc.ok()) << sc.status().ToString();
  return std::move(sc).value();
}

TEST(SimScenarioTest, GangIsNotStarvedByAStreamOfOneGpuJobs) {
  Scenario sc = Load("gang_not_starved.yaml");
  sc.simulation->RunUntil(kStart + sc.run_for);
  const SimJob& gang = sc.simulation->Job(JobId(1));
  ASSERT_TRUE(gang.first_start) << "the gang never started";
  // Submitted at 60 s; every 1-GPU job running then ends by 60 + 900 = 960 s; plus one cycle.
  EXPECT_LE(*gang.first_start, kStart + Seconds(960 + 30));
  EXPECT_GT(*gang.first_start, kStart + Seconds(60));  // The cluster was full when it arrived.
  EXPECT_EQ(sc.simulation->stats().violations, 0);
  // The stream filled the cluster before the gang and flows again after it (512 GPUs).
  int before = 0, after = 0;
  for (const auto& [id, job] : sc.simulation->jobs()) {
    if (id >= 1000 && job.first_start) {
      before += *job.first_start < *gang.first_start;
      after += *job.first_start > *gang.first_start;
    }
  }
  EXPECT_GE(before, 512);
  EXPECT_GT(after, 0);
}

TEST(SimScenarioTest, WithoutBackfillStrictOrderHoldsTheStreamBehindTheGang) {
  // The control experiment: same scenario, reservations off. The order is then strict: the gang
  // (account a has no usage, so it ranks first) blocks every later job until the cluster has
  // drained for it, and no 1-GPU job starts in between.
  std::ifstream in(std::string(GSCHED_SIM_SCENARIOS_DIR) + "/gang_not_starved.yaml");
  std::stringstream text;
  text << in.rdbuf();
  std::string yaml = text.str();
  const std::string on = "backfill_depth: 16";
  yaml.replace(yaml.find(on), on.size(), "backfill: false");
  auto sc = ParseScenario(yaml, kStart);
  ASSERT_TRUE(sc.ok()) << sc.status().ToString();
  sc->simulation->RunUntil(kStart + sc->run_for);
  const SimJob& gang = sc->simulation->Job(JobId(1));
  ASSERT_TRUE(gang.first_start) << "the gang never started";
  int jumped_ahead = 0;
  for (const auto& [id, job] : sc->simulation->jobs()) {
    if (id >= 1000 && job.first_start && *job.first_start > kStart + Seconds(60) &&
        *job.first_start < *gang.first_start) {
      ++jumped_ahead;
    }
  }
  EXPECT_EQ(jumped_ahead, 0);
  EXPECT_EQ(sc->simulation->stats().violations, 0);
}

TEST(SimScenarioTest, SharesOneToThreeConvergeToAOneToThreeSplit) {
  Scenario sc = Load("shares_1_3.yaml");
  Simulation& sim = *sc.simulation;
  const uint32_t a = sim.AccountIndex("a"), b = sim.AccountIndex("b");
  sim.RunUntil(kStart + Seconds(7200));
  const double a0 = sim.GpuSeconds()[a], b0 = sim.GpuSeconds()[b];
  sim.RunUntil(kStart + sc.run_for);
  const double da = sim.GpuSeconds()[a] - a0, db = sim.GpuSeconds()[b] - b0;
  // Second half of the run: the cluster is saturated (32 GPUs x 7200 s = 230,400 GPU-s) and b's
  // part should be 3 / (1 + 3) = 0.75 of it.
  EXPECT_NEAR(da + db, 32.0 * 7200, 32.0 * 7200 * 0.02);
  EXPECT_NEAR(db / (da + db), 0.75, 0.04) << "a=" << da << " b=" << db;
  EXPECT_EQ(sim.stats().violations, 0);
}

TEST(SimScenarioTest, GuaranteeIsReclaimedWithinTheGraceTime) {
  Scenario sc = Load("guarantee_reclaim.yaml");
  sc.simulation->RunUntil(kStart + sc.run_for);
  for (uint64_t id = 1; id <= 4; ++id) {
    const SimJob& job = sc.simulation->Job(JobId(id));
    ASSERT_TRUE(job.first_start) << "job " << id << " never started";
    // Submitted at 1200 s: the submit triggers a cycle that preempts; the victims have 60 s.
    EXPECT_LE(*job.first_start, kStart + Seconds(1200 + 60)) << "job " << id;
    EXPECT_FALSE(job.borrowing);
  }
  EXPECT_EQ(sc.simulation->stats().preemptions, 4);
  int requeued = 0;
  for (const auto& [id, job] : sc.simulation->jobs())
    requeued += job.preemptions > 0 && job.state == SimJob::State::kPending;
  EXPECT_EQ(requeued, 4);
  EXPECT_EQ(sc.simulation->stats().violations, 0);
}

TEST(SimScenarioTest, SpentBudgetRunsAsPreemptibleOrWaits) {
  Scenario sc = Load("budget.yaml");
  sc.simulation->RunUntil(kStart + sc.run_for);
  const SimJob& c = sc.simulation->Job(JobId(1));
  ASSERT_TRUE(c.first_start);
  EXPECT_TRUE(c.runs_as_preemptible);
  const SimJob& d = sc.simulation->Job(JobId(2));
  EXPECT_FALSE(d.first_start);
  ASSERT_TRUE(d.last_reason);
  EXPECT_EQ(d.last_reason->code, api::ReasonCode::kBudget);
}

TEST(SimScenarioTest, FragmentedClusterAnswersFragmentation) {
  Scenario sc = Load("fragmentation.yaml");
  sc.simulation->RunUntil(kStart + sc.run_for);
  const SimJob& job = sc.simulation->Job(JobId(10));
  EXPECT_FALSE(job.first_start);
  ASSERT_TRUE(job.last_reason);
  EXPECT_EQ(job.last_reason->code, api::ReasonCode::kFragmentation);
  EXPECT_EQ(job.last_reason->Int("free_total"), 8);  // 4 nodes x (8 - 6)
  EXPECT_EQ(job.last_reason->Int("free_largest_node"), 2);
}

TEST(SimScenarioTest, BadScenarioNamesTheField) {
  auto sc = ParseScenario("jobs: [{id: 1, account: nobody}]\n", kStart);
  ASSERT_FALSE(sc.ok());
  EXPECT_EQ(sc.status().field(), "jobs[0].account");
}

// Property: whatever the cluster size, grace periods and timing, a guarantee borrowed by others
// is reclaimed within one cycle plus the grace time.
TEST(SimPropertyTest, GuaranteeReclaimedWithinOneCyclePlusGrace) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    std::mt19937_64 rng(seed);
    auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    const int nodes = pick(2, 8);
    const int guaranteed_nodes = pick(1, nodes);
    const Duration interval = Seconds(pick(5, 60));
    const Duration min_runtime = Seconds(pick(0, 900));
    const core::Snapshot cluster =
        testutil::ClusterBuilder()
            .Now(kStart)
            .AddNodes(nodes, "n", "h100", 8, pick(1, 4))
            .Add(testutil::MakeAccount("a").Guaranteed("h100", 8 * guaranteed_nodes))
            .Add(testutil::MakeAccount("b"))
            .Add(testutil::MakeJob(0).Account("a").User("alice"))
            .Add(testutil::MakeJob(0).Account("b").User("bob"))
            .Build();
    SimConfig config;
    config.interval = interval;
    config.policy.preemption.min_runtime = min_runtime;
    Simulation sim(cluster, config, kStart);
    Duration max_grace{0};
    // b borrows every GPU with long 1- to 8-GPU jobs.
    uint64_t id = 100;
    for (int n = 0; n < nodes; ++n) {
      for (int left = 8; left > 0;) {
        const int g = std::min(left, 1 << pick(0, 3));
        left -= g;
        core::PendingJobInfo j;
        j.id = JobId(id++);
        j.account = 2;  // root = 0, a = 1, b = 2
        j.user = 1;
        j.gpus_per_node = g;
        j.time_limit = Seconds(86400);
        j.submit_time = kStart;
        j.grace_period = Seconds(pick(0, 120));
        max_grace = std::max(max_grace, j.grace_period);
        sim.Submit(j, Seconds(86400));
      }
    }
    const Timestamp arrival = kStart + min_runtime + Seconds(pick(1, 600));
    const int a_jobs = pick(1, guaranteed_nodes);
    for (int k = 0; k < a_jobs; ++k) {
      core::PendingJobInfo j;
      j.id = JobId(1 + k);
      j.account = 1;
      j.user = 0;
      j.gpus_per_node = 8;
      j.time_limit = Seconds(3600);
      j.submit_time = arrival;
      sim.Submit(j, Seconds(3600));
    }
    sim.RunUntil(arrival + interval + max_grace + Seconds(1));
    for (int k = 0; k < a_jobs; ++k) {
      const SimJob& job = sim.Job(JobId(1 + k));
      ASSERT_TRUE(job.first_start) << "seed=" << seed << " job " << k + 1 << " not started";
      EXPECT_LE(*job.first_start, arrival + interval + max_grace) << "seed=" << seed;
    }
    ASSERT_EQ(sim.stats().violations, 0) << "seed=" << seed;
  }
}

}  // namespace
}  // namespace gsched::sim
