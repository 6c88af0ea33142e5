// Whole replays (sim/replay.h): the rules for what traces lack, the policies compared on a case
// small enough to work out by hand, determinism, and gsched-sim end to end on the Tiresias trace.
#include "sim/replay.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/accounts_config.h"
#include "config/cluster_config.h"
#include "tests/testutil/temp_dir.h"

namespace gsched::sim {
namespace {

using ::testing::HasSubstr;

const std::string kSource = GSCHED_SOURCE_DIR;
const std::string kTiresias = std::string(GSCHED_TRACES_DIR) + "/tiresias_60_job.csv";

Trace CsvTrace(const std::string& text) {
  std::istringstream in(text);
  auto t = ReadTrace(in, TraceFormat::kCsv, "t.csv");
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? *t : Trace{};
}

// One node of 8 H100s.
config::ClusterConfig OneNode() {
  config::ClusterConfig c;
  c.sites.push_back({"s", {{"b", 1}}});
  c.nodes.push_back({.name = "n0",
                     .site = "s",
                     .block = "b",
                     .gpu_type = "h100",
                     .gpus = 8,
                     .cpus = 64,
                     .memory_mib = 1 << 20});
  return c;
}

ReplaySummary Replay(const config::ClusterConfig& cluster, const config::AccountsConfig* accounts,
                     const Trace& trace, ReplayOptions options) {
  auto prepared = PrepareReplay(cluster, accounts, config::SchedulerConfig{}, trace, options);
  EXPECT_TRUE(prepared.ok()) << prepared.status().ToString();
  return RunReplay(std::move(prepared).value(), options);
}

TEST(ReplayRulesTest, TimeLimitIsTwiceTheRunTimeInQuarterHoursCappedAtTheClassMaximum) {
  const Trace trace = CsvTrace(
      "submit_s,duration_s,gpus,time_limit_s\n"
      "0,100,1,\n"         // 2 x 100 s = 200 s -> one quarter hour: 900 s
      "0,1000,1,\n"        // 2000 s -> ceil(2000 / 900) = 3 quarters: 2700 s
      "0,432000,1,\n"      // 5 d -> 10 d, capped at normal's max_time_limit 7 d
      "0,60,1,120\n"       // given: kept
      "0,60,1,864000\n");  // 10 d given, above the 7 d maximum: rejected, skipped
  auto p = PrepareReplay(OneNode(), nullptr, config::SchedulerConfig{}, trace, ReplayOptions{});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ(p->jobs.size(), 4u);
  EXPECT_EQ(p->jobs[0].time_limit, Seconds(900));
  EXPECT_EQ(p->jobs[1].time_limit, Seconds(2700));
  EXPECT_EQ(p->jobs[2].time_limit, Seconds(7 * 86400));
  EXPECT_EQ(p->jobs[3].time_limit, Seconds(120));
  EXPECT_EQ(p->skipped.at("time limit above the class maximum (rejected at submission)"), 1);
}

TEST(ReplayRulesTest, AccountsAndUsersFollowTheSeededRule) {
  auto accounts = config::ParseAccountsConfig(
      "accounts:\n"
      "  - {name: a, users: [ann, al]}\n"
      "  - {name: b}\n",
      "accounts.yaml");
  ASSERT_TRUE(accounts.ok()) << accounts.status().ToString();
  std::string text = "submit_s,duration_s,gpus,user\n";
  for (int i = 0; i < 40; ++i)
    text += "0,60,1,\n";
  text += "0,60,1,al\n";  // Names a user listed by `a`: goes to `a`.
  const Trace trace = CsvTrace(text);
  ReplayOptions options;
  options.seed = 7;
  auto p = PrepareReplay(OneNode(), &*accounts, config::SchedulerConfig{}, trace, options);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  // Leaves in file order: a (index 1), b (index 2). Job i draws
  // h = SplitMix64(SplitMix64(7) + i): leaf h mod 2, user (h >> 32) mod 2 of that leaf.
  int to_a = 0;
  for (size_t i = 0; i < 40; ++i) {
    const uint64_t h = SplitMix64(SplitMix64(7) + i);
    const core::PendingJobInfo& j = p->jobs[i];
    EXPECT_EQ(j.account, 1 + h % 2) << "job " << i;
    const std::string& user = p->cluster.users[j.user];
    const std::vector<std::string> users =
        h % 2 == 0 ? std::vector<std::string>{"ann", "al"}
                   : std::vector<std::string>{"b-u1", "b-u2", "b-u3", "b-u4"};
    EXPECT_EQ(user, users[(h >> 32) % users.size()]) << "job " << i;
    to_a += j.account == 1;
  }
  EXPECT_GT(to_a, 10);
  EXPECT_LT(to_a, 30);
  EXPECT_EQ(p->jobs[40].account, 1u);
  EXPECT_EQ(p->cluster.users[p->jobs[40].user], "al");
}

TEST(ReplayRulesTest, AJobTheClusterCanNeverHoldIsSkipped) {
  const Trace trace = CsvTrace("submit_s,duration_s,gpus,nodes\n0,60,8,1\n0,60,8,2\n0,60,1,\n");
  auto p = PrepareReplay(OneNode(), nullptr, config::SchedulerConfig{}, trace, ReplayOptions{});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->jobs.size(), 2u);
  EXPECT_EQ(p->skipped.at("does not fit any node set of the cluster"), 1);
}

// Job 1 holds the only node for 1000 s; jobs 2 (500 s) and 3 (100 s) arrive at t = 1 s.
// Passes run 10 ms after a trigger, so job 1 starts at 0.01 s and ends at 1000.01 s; a tick at
// 1000 s asks for a pass at 1000.01 s, which sees job 1 gone.
constexpr char kQueue[] =
    "submit_s,duration_s,gpus\n"
    "0,1000,8\n"
    "1,500,8\n"
    "1,100,8\n";

TEST(ReplayPolicyTest, FifoRunsInSubmitOrder) {
  const ReplaySummary s = Replay(OneNode(), nullptr, CsvTrace(kQueue), {.policy = Policy::kFifo});
  // Waits: job 1 0.01; job 2 starts at 1000.01 -> 999.01; job 3 at 1500.01 -> 1499.01.
  // Mean (0.01 + 999.01 + 1499.01) / 3 = 832.677; p50 = 999.01; makespan 1600.01.
  EXPECT_NEAR(s.mean_wait_s, 832.677, 1e-3);
  EXPECT_NEAR(s.p50_wait_s, 999.01, 1e-3);
  EXPECT_NEAR(s.p99_wait_s, 1499.01, 1e-3);
  EXPECT_NEAR(s.makespan_s, 1600.01, 1e-3);
  // GPU-seconds 8 x 1600 over 8 GPUs x 1600.01 s.
  EXPECT_NEAR(s.gpu_utilization, 1600.0 / 1600.01, 1e-6);
  // JCTs 1000.01, 1499.01, 1599.01: mean 1366.01, p50 1499.01.
  EXPECT_NEAR(s.mean_jct_s, 1366.01, 1e-3);
  EXPECT_NEAR(s.p50_jct_s, 1499.01, 1e-3);
  // Bounded slowdowns 1000.01/1000, 1499.01/500, 1599.01/100: mean (1.00001 + 2.99802 +
  // 15.9901) / 3 = 6.66271.
  EXPECT_NEAR(s.mean_bounded_slowdown, 6.66271, 1e-4);
  EXPECT_EQ(s.jobs, 3);
  EXPECT_EQ(s.completed, 3);
  EXPECT_EQ(s.violations, 0);
}

TEST(ReplayPolicyTest, SjfOracleRunsTheShortJobFirst) {
  const ReplaySummary s =
      Replay(OneNode(), nullptr, CsvTrace(kQueue), {.policy = Policy::kSjfOracle});
  // Job 3 starts at 1000.01 (wait 999.01) and ends at 1100.01; job 2 then waits 1099.01.
  // Mean (0.01 + 999.01 + 1099.01) / 3 = 699.343.
  EXPECT_NEAR(s.mean_wait_s, 699.343, 1e-3);
  EXPECT_NEAR(s.makespan_s, 1600.01, 1e-3);
}

TEST(ReplayPolicyTest, FairShareFavoursTheAccountBelowItsTarget) {
  // Two accounts with equal shares; `a` floods the node first, then both queue work. Under fair
  // share, `b` (no usage yet) goes ahead of a's earlier jobs; under FIFO it waits its turn.
  auto accounts =
      config::ParseAccountsConfig("accounts:\n  - {name: a}\n  - {name: b}\n", "accounts.yaml");
  ASSERT_TRUE(accounts.ok());
  const Trace trace = CsvTrace(
      "submit_s,duration_s,gpus,account\n"
      "0,1000,8,a\n"
      "1,1000,8,a\n"
      "2,1000,8,a\n"
      "3,1000,8,b\n");
  const ReplaySummary fair = Replay(OneNode(), &*accounts, trace, {});
  const ReplaySummary fifo = Replay(OneNode(), &*accounts, trace, {.policy = Policy::kFifo});
  ASSERT_EQ(fair.accounts.size(), 2u);
  // FIFO: b starts third in line at 3000.01 -> waits 2997.01. Fair share: b starts second, at
  // 1000.01 -> waits 997.01.
  EXPECT_NEAR(fifo.accounts[1].mean_wait_s, 2997.01, 1e-3);
  EXPECT_NEAR(fair.accounts[1].mean_wait_s, 997.01, 1e-3);
  // Targets 1/2 each. While jobs waited (from the pass at 1.01 s that left job 2 pending to
  // 3000.01 s), fair share gave the node to a for 1000.01 - 1.01 = 999 s, then to b for 1000 s,
  // then to a for 1000 s: a = 1999 / 2999 of it, b = 1000 / 2999.
  EXPECT_NEAR(fair.accounts[1].achieved_share, 1000.0 / 2999.0, 1e-6);
  // Entitlements (capacity 8): until b arrives at 3 s only a asks (a 8). While both ask, equal
  // shares split the node 4 / 4 (both ask for at least 8). After b's job, a asks alone again.
  // Fair share: a holds 8 for 2 + 997 s and 1000 s, b holds 8 for 1000 s:
  //   a: held 8 x 1999 = 15992, entitled 8 x 2 + 4 x 1997 + 8 x 1000 = 16004 -> 0.99925;
  //   b: held 8 x 1000 = 8000, entitled 4 x 1997 = 7988 -> 1.0015. Jain ~ 1.
  //   Error: |8 - 4| + |0 - 4| = 8 over 2 x 8 = 0.5 for the 1997 s both asked, else 0:
  //   0.5 x 1997 / 2999 = 0.333.
  EXPECT_GT(fair.jain_fairness, 0.9999);
  EXPECT_NEAR(fair.fair_share_error, 0.5 * 1997 / 2999, 1e-3);
  EXPECT_NEAR(fair.accounts[1].entitled_gpus, 4.0 * 1997 / 2999, 1e-2);
  // FIFO: a holds the node all 2999 s while b's 4 waits from 3 s: a 23992 / 12004 = 1.9987,
  // b 0 / 11988 = 0; Jain = 2^2 / (2 x 4) = 0.5 (to 1e-3); error 0.5 x 2997 / 2999.
  EXPECT_NEAR(fifo.jain_fairness, 0.5, 1e-3);
  EXPECT_NEAR(fifo.fair_share_error, 0.5 * 2997 / 2999, 1e-3);
  // The node is always held in full and entitlements add up to it, so what a holds above its
  // entitlement is what b is owed: half of the error is GPUs held above entitlements.
  EXPECT_GT(fifo.fair_share_error_backlogged, 0.4);
  EXPECT_NEAR(fifo.fair_share_error_overheld, fifo.fair_share_error_backlogged / 2, 1e-9);
}

TEST(ReplayMetricsTest, GpusOnlyAJobAtItsLimitCouldUseAreNotIdleWhileWaiting) {
  // a may hold 4 GPUs: its second 4-GPU job waits at that limit while 4 GPUs are free. b's 8-GPU
  // job waits for capacity, but the 4 free GPUs cannot hold it. Nothing waiting for capacity
  // could use them: idle by the administrators' choice, not the policy's.
  auto accounts = config::ParseAccountsConfig(
      "accounts:\n"
      "  - {name: a, quotas: {h100: {guaranteed: 0, limit: 4}}}\n"
      "  - {name: b}\n",
      "accounts.yaml");
  ASSERT_TRUE(accounts.ok()) << accounts.status().ToString();
  const ReplaySummary limited = Replay(OneNode(), &*accounts,
                                       CsvTrace("submit_s,duration_s,gpus,account\n"
                                                "0,1000,4,a\n"
                                                "1,1000,4,a\n"
                                                "1,1000,8,b\n"),
                                       {});
  EXPECT_EQ(limited.idle_while_waiting, 0.0);
  EXPECT_GT(limited.mean_wait_s, 0.0);

  // Without the limit, b's 8-GPU job holds a backfill reservation for when a's first job reaches
  // its time limit (2000 s), and a's 3000 s job, which would delay it, waits for capacity beside
  // 4 free GPUs it fits: from the pass at 1.01 s until a's first job ends at 1000 s, 4 of 8
  // GPUs over a makespan of 5000 s: about 0.1.
  auto open = config::ParseAccountsConfig("accounts:\n  - {name: a}\n  - {name: b}\n", "a.yaml");
  ASSERT_TRUE(open.ok());
  const ReplaySummary held = Replay(OneNode(), &*open,
                                    CsvTrace("submit_s,duration_s,gpus,account\n"
                                             "0,1000,4,a\n"
                                             "1,1000,8,b\n"
                                             "2,3000,4,a\n"),
                                    {});
  EXPECT_NEAR(held.idle_while_waiting, 4.0 * 998 / (8 * held.makespan_s), 0.01);
  EXPECT_GT(held.idle_while_waiting, 0.05);
}

TEST(ReplayDeterminismTest, SameInputsAndSeedGiveTheSameSummary) {
  auto trace = LoadTrace(kTiresias, TraceFormat::kTiresias);
  ASSERT_TRUE(trace.ok()) << trace.status().ToString();
  auto cluster = config::LoadClusterConfig(kSource + "/config/cluster-demo.yaml");
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  auto accounts = config::LoadAccountsConfig(kSource + "/sim/examples/accounts-openb.yaml");
  ASSERT_TRUE(accounts.ok()) << accounts.status().ToString();
  // Five times the arrival rate, so that jobs queue and the policy has choices to make.
  const ReplayOptions options{.seed = 42, .arrival_scale = 5};
  const std::string first = SummaryJson(Replay(*cluster, &*accounts, *trace, options));
  const std::string second = SummaryJson(Replay(*cluster, &*accounts, *trace, options));
  EXPECT_EQ(first, second);
  EXPECT_THAT(first, HasSubstr("\"jobs\": 60,"));
  const std::string other_seed =
      SummaryJson(Replay(*cluster, &*accounts, *trace, {.seed = 43, .arrival_scale = 5}));
  EXPECT_NE(first, other_seed);
}

TEST(ReplayProgressTest, ALongReplaySaysWhereItIsWithoutChangingTheResult) {
  auto trace = LoadTrace(kTiresias, TraceFormat::kTiresias);
  ASSERT_TRUE(trace.ok()) << trace.status().ToString();
  auto cluster = config::LoadClusterConfig(kSource + "/config/cluster-demo.yaml");
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  ReplayOptions options{.seed = 42, .arrival_scale = 5};
  const std::string quiet = SummaryJson(Replay(*cluster, nullptr, *trace, options));
  std::vector<ReplayProgress> seen;
  options.progress = [&](const ReplayProgress& p) { seen.push_back(p); };
  options.progress_every = std::chrono::milliseconds(0);  // Every 64th pass.
  const ReplaySummary summary = Replay(*cluster, nullptr, *trace, options);
  EXPECT_EQ(SummaryJson(summary), quiet);
  ASSERT_GE(summary.passes, 128);
  ASSERT_EQ(seen.size(), static_cast<size_t>(summary.passes / 64));
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].passes, static_cast<int64_t>(64 * (i + 1)));
    EXPECT_EQ(seen[i].jobs, 60u);
    EXPECT_LE(seen[i].arrived, 60u);
    EXPECT_LE(seen[i].pending + seen[i].running, seen[i].arrived);
    if (i > 0) {
      EXPECT_GE(seen[i].arrived, seen[i - 1].arrived);
      EXPECT_GT(seen[i].simulated_s, seen[i - 1].simulated_s);
    }
  }
}

// gsched-sim end to end.

struct SimRun {
  int exit_code = -1;
  std::string err;
};

SimRun Sim(const std::string& args, const std::string& dir) {
  const std::string err = dir + "/stderr.txt";
  const int status =
      std::system((std::string(GSCHED_SIM_BINARY) + " " + args + " 2>" + err).c_str());
  std::ifstream in(err);
  std::stringstream text;
  text << in.rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.str()};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// summary.json without its two timing lines.
std::string WithoutTiming(const std::string& summary) {
  std::istringstream in(summary);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.find("\"wall_time_s\"") == std::string::npos &&
        line.find("\"speedup\"") == std::string::npos)
      out += line + "\n";
  }
  return out;
}

TEST(GschedSimTest, ReplaysTheTiresiasTraceTwiceIdentically) {
  TempDir dir;
  const std::string args = "--cluster " + kSource + "/config/cluster-demo.yaml --trace " +
                           kTiresias + " --accounts " + kSource +
                           "/sim/examples/accounts-openb.yaml --arrival-scale 5 --seed 3 --out ";
  const SimRun a = Sim(args + dir.path() + "/a", dir.path());
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const SimRun b = Sim(args + dir.path() + "/b", dir.path());
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const std::string summary = ReadFile(dir.path() + "/a/summary.json");
  EXPECT_EQ(WithoutTiming(summary), WithoutTiming(ReadFile(dir.path() + "/b/summary.json")));
  for (const char* field : {"jobs",
                            "makespan_s",
                            "mean_wait_s",
                            "p50_wait_s",
                            "p95_wait_s",
                            "p99_wait_s",
                            "mean_jct_s",
                            "p50_jct_s",
                            "mean_bounded_slowdown",
                            "gpu_utilization",
                            "fragmentation",
                            "jain_fairness",
                            "preemptions",
                            "accounts",
                            "target_share",
                            "achieved_share",
                            "wall_time_s",
                            "speedup",
                            "fair_share_error",
                            "fair_share_error_overheld",
                            "waits_by_size",
                            "2-7 nodes",
                            "idle_while_waiting",
                            "utilization_by_type",
                            "preempted_gpu_hours",
                            "delivered_gpu_hours",
                            "estimate_p50_error_s",
                            "estimate_p90_error_s",
                            "estimates_within_20pct",
                            "estimates_by_lead",
                            "estimate_coverage",
                            "entitled_gpus",
                            "allocated_gpus"}) {
    EXPECT_THAT(summary, HasSubstr("\"" + std::string(field) + "\": ")) << field;
  }
  EXPECT_THAT(summary, HasSubstr("\"jobs\": 60,"));
  const std::string report = ReadFile(dir.path() + "/a/report.html");
  // Four charts plus one of allocated against entitled GPUs per account with jobs (the trace's
  // 60 jobs are spread over the seven leaves), and nothing fetched: the only URL is the SVG
  // namespace.
  size_t charts = 0;
  for (size_t at = report.find("<svg"); at != std::string::npos; at = report.find("<svg", at + 1))
    ++charts;
  EXPECT_EQ(charts, 4u + 7u);
  EXPECT_THAT(report, HasSubstr("univ-a: allocated (solid) and entitled (dashed)"));
  EXPECT_THAT(report, HasSubstr("<th>size class</th>"));
  std::string stripped = report;
  for (size_t at; (at = stripped.find("http://www.w3.org/2000/svg")) != std::string::npos;)
    stripped.erase(at, 26);
  EXPECT_EQ(stripped.find("http"), std::string::npos);
  EXPECT_EQ(stripped.find("src="), std::string::npos);
  // Text is escaped: no bare `<` other than tags.
  for (size_t at = report.find('<'); at != std::string::npos; at = report.find('<', at + 1)) {
    EXPECT_TRUE(std::isalpha(static_cast<unsigned char>(report[at + 1])) || report[at + 1] == '/' ||
                report[at + 1] == '!')
        << report.substr(at, 40);
  }
}

TEST(GschedSimTest, BadTraceIsRejectedNamingLineAndColumn) {
  TempDir dir;
  std::ofstream(dir.path() + "/bad.csv") << "job_id,num_gpu,submit_time,duration\n0,1,0,10\n"
                                            "1,1,-4,10\n";
  const SimRun r = Sim("--cluster " + kSource + "/config/cluster-demo.yaml --trace " + dir.path() +
                           "/bad.csv --out " + dir.path() + "/out",
                       dir.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("bad.csv: line 3, column 3 (submit_time): must be >= 0, got -4"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/out/summary.json"));
}

}  // namespace
}  // namespace gsched::sim
