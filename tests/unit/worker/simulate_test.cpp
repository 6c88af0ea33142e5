// `--simulate`: many virtual nodes (`SimulatedJobs` + `WorkerAgent`) on one io_context thread,
// against the fake scheduler; and `gpu_health` reports.
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <set>
#include <thread>

#include "fake_scheduler.h"
#include "worker/agent.h"
#include "worker/job_backends.h"
#include "worker_test_util.h"

namespace gsched::worker {
namespace {

using testing::FakeScheduler;

class SimCluster {
 public:
  SimCluster(const std::string& url, int nodes) : work_(ioc_.get_executor()) {
    AgentOptions options;
    options.schedulers = {url};
    options.heartbeat_interval = Duration(100);
    options.reconnect = {Duration(20), Duration(100)};
    options.random = [] { return 0.5; };
    config::FakeGpuConfig fake;
    fake.count = 8;
    for (int i = 0; i < nodes; ++i) {
      NodeIdentity id;
      char name[32];
      snprintf(name, sizeof name, "sim-%04d", i);
      id.name = name;
      id.inventory = MakeFakeInventory(fake, id.name);
      sims_.push_back(std::make_unique<SimulatedJobs>(ioc_, clock_));
      agents_.push_back(std::make_unique<WorkerAgent>(ioc_, options, id, *sims_.back(), clock_));
      WorkerAgent* agent = agents_.back().get();
      sims_.back()->SetSink([agent](const api::JobUpdate& u) { agent->OnJobUpdate(u); });
      agent->Start();
    }
    io_ = std::make_unique<testing::IoThread>(ioc_);
  }
  ~SimCluster() {
    for (auto& a : agents_)
      a->Stop();
    boost::asio::post(ioc_, [this] {
      for (auto& s : sims_)
        s->CancelAll();
    });
    work_.reset();
    io_->Finish();
  }
  WorkerAgent& agent(int i) { return *agents_[static_cast<size_t>(i)]; }

 private:
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  SystemClock clock_;
  std::vector<std::unique_ptr<SimulatedJobs>> sims_;
  std::vector<std::unique_ptr<WorkerAgent>> agents_;
  std::unique_ptr<testing::IoThread> io_;
};

api::Launch SimLaunch(uint64_t job, std::string duration_s) {
  api::Launch l;
  l.job = job;
  l.attempt = 1;
  l.spec.image = "/images/none";
  l.spec.command = {"train"};
  l.env["GSCHED_SIM_DURATION_S"] = std::move(duration_s);
  return l;
}

TEST(Simulate, ManyNodesOnOneThreadRunTimedJobs) {
  FakeScheduler scheduler;
  // 64 nodes, one connection each, all on one io_context thread.
  SimCluster cluster(scheduler.url(), 64);
  ASSERT_TRUE(scheduler.WaitFor([&] { return scheduler.Of<api::Hello>().size() == 64; }));
  EXPECT_EQ(scheduler.connections(), 64);
  auto hellos = scheduler.Of<api::Hello>();
  std::set<std::string> names;
  for (const auto& h : hellos) {
    names.insert(h.node);
    EXPECT_EQ(h.gpus.size(), 8u);
  }
  EXPECT_TRUE(names.contains("sim-0000"));
  EXPECT_TRUE(names.contains("sim-0063"));

  ASSERT_TRUE(scheduler.SendTo("sim-0007", SimLaunch(1, "0.05")));
  api::Launch limited = SimLaunch(2, "30");
  limited.spec.time_limit_s = 1;  // 30 s of work, 1 s allowed: timeout after 1 s.
  ASSERT_TRUE(scheduler.SendTo("sim-0008", limited));
  ASSERT_TRUE(scheduler.SendTo("sim-0009", SimLaunch(3, "30")));
  ASSERT_TRUE(scheduler.WaitFor([&] { return scheduler.HasState(3, 1, api::JobState::kRunning); }));
  ASSERT_TRUE(scheduler.SendTo("sim-0009", api::Kill{3, 1, 30, "preempted by job 9"}));

  ASSERT_TRUE(
      scheduler.WaitFor([&] { return scheduler.HasState(1, 1, api::JobState::kCompleted); }));
  auto u1 = scheduler.UpdatesFor(1, 1);
  ASSERT_EQ(u1.size(), 3u);
  EXPECT_EQ(u1[0].state, api::JobState::kStarting);
  EXPECT_EQ(u1[1].state, api::JobState::kRunning);
  EXPECT_EQ(u1[2].exit_code, 0);
  ASSERT_TRUE(
      scheduler.WaitFor([&] { return scheduler.HasState(3, 1, api::JobState::kPreempted); }));
  ASSERT_TRUE(scheduler.WaitFor([&] { return scheduler.HasState(2, 1, api::JobState::kTimeout); }));
  EXPECT_EQ(scheduler.UpdatesFor(2, 1).back().signal, "SIGKILL");
}

TEST(Simulate, GpuHealthIsReportedWhenItChanges) {
  FakeScheduler scheduler;
  SimCluster cluster(scheduler.url(), 1);
  ASSERT_TRUE(scheduler.WaitFor([&] { return scheduler.Of<api::Hello>().size() == 1; }));
  std::vector<api::GpuHealthEntry> healthy(8);
  for (int i = 0; i < 8; ++i)
    healthy[static_cast<size_t>(i)].index = i;
  cluster.agent(0).OnHealth(healthy);
  auto sick = healthy;
  sick[3].health = api::GpuHealth::kUnhealthy;
  sick[3].xid = 79;
  sick[3].message = "XID 79";
  cluster.agent(0).OnHealth(sick);
  cluster.agent(0).OnHealth(sick);  // Unchanged: not sent again.
  ASSERT_TRUE(scheduler.WaitFor([&] { return scheduler.Of<api::GpuHealthReport>().size() == 2; }));
  // The next heartbeat shows the unchanged report was not repeated.
  size_t beats = scheduler.Of<api::Heartbeat>().size();
  ASSERT_TRUE(scheduler.WaitFor([&] { return scheduler.Of<api::Heartbeat>().size() > beats; }));
  auto reports = scheduler.Of<api::GpuHealthReport>();
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[1].node, "sim-0000");
  EXPECT_EQ(reports[1].gpus[3].xid, 79);
  EXPECT_EQ(reports[1].gpus[3].health, api::GpuHealth::kUnhealthy);
}

}  // namespace
}  // namespace gsched::worker
