// The agent against a fake scheduler: hello, heartbeats, launch -> job_update, kill, bad input,
// reconnect with re-sent final states, and re-adoption (of an agent object and of a real
// `gsched-worker` process killed with SIGKILL).
#include "worker/agent.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "fake_scheduler.h"
#include "tests/testutil/fake_standby.h"
#include "worker/job_backends.h"
#include "worker_test_util.h"

namespace gsched::worker {
namespace {

using testing::FakeScheduler;
using testing::TempDir;

api::Launch ShLaunch(uint64_t job, uint32_t attempt, std::string script) {
  api::Launch l;
  l.job = job;
  l.attempt = attempt;
  l.spec.image = "/";  // The process runtime runs on the host.
  l.spec.command = {"/bin/sh", "-c", std::move(script)};
  return l;
}

TEST(Backoff, ExponentialWithJitterAndCap) {
  config::ReconnectConfig r{Duration(500), Seconds(30)};
  // n = 0: b = 500 -> [250, 500).
  EXPECT_EQ(WorkerAgent::Backoff(r, 0, 0.0), Duration(250));
  EXPECT_EQ(WorkerAgent::Backoff(r, 0, 0.5), Duration(375));
  // n = 3: b = 500 * 8 = 4000 -> 2000 + 0.25 * 2000 = 2500.
  EXPECT_EQ(WorkerAgent::Backoff(r, 3, 0.25), Duration(2500));
  // n = 10: 500 * 1024 > 30000 -> capped: 15000 + 0.999 * 15000.
  EXPECT_EQ(WorkerAgent::Backoff(r, 10, 0.0), Duration(15000));
  EXPECT_LE(WorkerAgent::Backoff(r, 60, 0.999), Seconds(30));
}

// One agent on its own io_context thread with a real supervisor (process runtime).
class AgentHarness {
 public:
  AgentHarness(const config::WorkerConfig& cfg, const std::string& url, bool adopt = false)
      : AgentHarness(cfg, std::vector<std::string>{url}, adopt) {}
  AgentHarness(const config::WorkerConfig& cfg, std::vector<std::string> urls, bool adopt = false)
      : work_(ioc_.get_executor()) {
    auto supervisor = std::make_unique<JobSupervisor>(
        cfg, MakeRuntime(cfg.runtime, testing::ShimBinary(), PolicyFromConfig(cfg)), clock_,
        [this](const api::JobUpdate& u) {
          if (agent_)
            agent_->OnJobUpdate(u);
        });
    JobSupervisor* sup = supervisor.get();
    jobs_ = std::make_unique<SupervisedJobs>(std::move(supervisor), Duration(20), nullptr,
                                             Seconds(3600));
    AgentOptions options;
    options.schedulers = std::move(urls);
    options.token = "worker-token";
    options.heartbeat_interval = Duration(100);
    options.reconnect = {Duration(20), Duration(100)};
    options.random = [] { return 0.5; };
    NodeIdentity id;
    id.name = "node-a";
    id.site = "kr";
    id.block = "b07";
    id.labels = {{"rack", "r1"}};
    id.cpus = 64;
    id.memory_mib = 512000;
    config::FakeGpuConfig fake;
    fake.count = 4;
    fake.nvlink = config::NvlinkTopology::kPairs;
    id.inventory = MakeFakeInventory(fake, id.name);
    agent_ = std::make_unique<WorkerAgent>(ioc_, options, id, *jobs_, clock_);
    if (adopt)
      sup->AdoptAll();
    agent_->Start();
    io_ = std::make_unique<testing::IoThread>(ioc_);
  }
  ~AgentHarness() {
    // The agent winds down on its io_context first, then the backend goes (its thread joins;
    // jobs keep running), then the agent.
    agent_->Stop();
    work_.reset();
    io_->Finish();
    jobs_.reset();
    agent_.reset();
  }
  WorkerAgent& agent() { return *agent_; }

 private:
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  SystemClock clock_;
  std::unique_ptr<SupervisedJobs> jobs_;
  std::unique_ptr<WorkerAgent> agent_;
  std::unique_ptr<testing::IoThread> io_;
};

class AgentTest : public ::testing::Test {
 protected:
  AgentTest() {
    cfg_.work_dir = dir_.path();
    cfg_.runtime.type = config::RuntimeType::kProcess;
    cfg_.identity.run_as_root = true;
  }
  std::string JobDir(uint64_t job, uint32_t attempt) {
    return dir_.path() + "/jobs/" + std::to_string(job) + "/" + std::to_string(attempt);
  }
  TempDir dir_;
  config::WorkerConfig cfg_;
  FakeScheduler scheduler_;
};

// --- several schedulers (DESIGN.md section 12) ---------------------------------------------

TEST_F(AgentTest, AStandbysLeaderHintSendsTheWorkerStraightToTheLeader) {
  // Two standbys first, both naming the leader: the first one's hint skips the second.
  gsched::testing::FakeStandby first(scheduler_.url());
  gsched::testing::FakeStandby second(scheduler_.url());
  AgentHarness h(cfg_, std::vector<std::string>{first.url(), second.url(), scheduler_.url()});
  ASSERT_TRUE(scheduler_.WaitFor([&] { return !scheduler_.Of<api::Hello>().empty(); }));
  EXPECT_EQ(scheduler_.auth(), "Bearer worker-token");
  EXPECT_EQ(first.upgrades(), 1);
  EXPECT_EQ(second.upgrades(), 0);
  AgentCounters c = h.agent().counters();
  EXPECT_EQ(c.leader_hints_followed, 1u);
  EXPECT_EQ(c.scheduler, scheduler_.url());
}

TEST_F(AgentTest, ADeadSchedulerIsPassedOverForTheNextOne) {
  // Port 1 on loopback: nothing listens, the connection is refused.
  AgentHarness h(cfg_, std::vector<std::string>{"http://127.0.0.1:1", scheduler_.url()});
  ASSERT_TRUE(scheduler_.WaitFor([&] { return !scheduler_.Of<api::Hello>().empty(); }));
  EXPECT_EQ(h.agent().counters().scheduler, scheduler_.url());
}

TEST_F(AgentTest, ALeaderHintOutsideTheListIsIgnored) {
  // The standby names another scheduler that is not in the worker's list: the worker's token
  // must not go there. It goes on to the next URL of its own list instead.
  FakeScheduler elsewhere;
  gsched::testing::FakeStandby standby(elsewhere.url());
  AgentHarness h(cfg_, std::vector<std::string>{standby.url(), scheduler_.url()});
  ASSERT_TRUE(scheduler_.WaitFor([&] { return !scheduler_.Of<api::Hello>().empty(); }));
  EXPECT_EQ(elsewhere.connections(), 0);
  EXPECT_GE(h.agent().counters().leader_hints_ignored, 1u);
  EXPECT_EQ(h.agent().counters().leader_hints_followed, 0u);
}

TEST_F(AgentTest, WhenTheLeaderGoesTheWorkerSaysHelloToTheNextOne) {
  FakeScheduler next;
  AgentHarness h(cfg_, std::vector<std::string>{scheduler_.url(), next.url()});
  ASSERT_TRUE(scheduler_.WaitFor([&] { return !scheduler_.Of<api::Hello>().empty(); }));
  // The leader steps down: it refuses upgrades (503, no leader named) and drops the link.
  scheduler_.Refuse(true);
  scheduler_.Drop();
  ASSERT_TRUE(next.WaitFor([&] { return !next.Of<api::Hello>().empty(); }));
  EXPECT_EQ(next.Of<api::Hello>()[0].node, "node-a");
  EXPECT_TRUE(next.WaitFor([&] { return h.agent().counters().scheduler == next.url(); }));
}

TEST_F(AgentTest, HelloHeartbeatLaunchKillAndBadInput) {
  AgentHarness h(cfg_, scheduler_.url());
  ASSERT_TRUE(scheduler_.WaitFor([&] { return !scheduler_.Of<api::Hello>().empty(); }));
  api::Hello hello = scheduler_.Of<api::Hello>()[0];
  EXPECT_EQ(scheduler_.auth(), "Bearer worker-token");
  EXPECT_EQ(hello.node, "node-a");
  EXPECT_EQ(hello.site, "kr");
  EXPECT_EQ(hello.block, "b07");
  EXPECT_EQ(hello.labels.at("rack"), "r1");
  EXPECT_EQ(hello.cpus, 64);
  EXPECT_EQ(hello.memory_mib, 512000);
  ASSERT_EQ(hello.gpus.size(), 4u);
  EXPECT_EQ(hello.gpus[2].uuid, "GPU-fake-node-a-2");
  EXPECT_EQ(hello.nvlink_pairs, (std::vector<std::pair<int32_t, int32_t>>{{0, 1}, {2, 3}}));
  EXPECT_TRUE(hello.running.empty());
  EXPECT_FALSE(hello.worker_version.empty());
  ASSERT_TRUE(scheduler_.WaitFor([&] { return !scheduler_.Of<api::Heartbeat>().empty(); }));
  EXPECT_EQ(scheduler_.Of<api::Heartbeat>()[0].node, "node-a");

  // Bad input first: logged and ignored.
  ASSERT_TRUE(scheduler_.SendRaw("{not json"));
  ASSERT_TRUE(scheduler_.SendRaw(R"({"type": "launch", "job": "seven"})"));
  ASSERT_TRUE(scheduler_.SendRaw(R"({"type": "reboot"})"));

  ASSERT_TRUE(scheduler_.Send(ShLaunch(1, 1, "echo hi")));
  ASSERT_TRUE(
      scheduler_.WaitFor([&] { return scheduler_.HasState(1, 1, api::JobState::kCompleted); }));
  auto updates = scheduler_.UpdatesFor(1, 1);
  ASSERT_EQ(updates.size(), 3u);
  EXPECT_EQ(updates[0].state, api::JobState::kStarting);
  EXPECT_EQ(updates[1].state, api::JobState::kRunning);
  EXPECT_EQ(updates[2].exit_code, 0);
  EXPECT_EQ(h.agent().counters().bad_messages, 3u);

  ASSERT_TRUE(scheduler_.Send(ShLaunch(2, 1, "sleep 30")));
  ASSERT_TRUE(
      scheduler_.WaitFor([&] { return scheduler_.HasState(2, 1, api::JobState::kRunning); }));
  // Heartbeats list the running attempt.
  ASSERT_TRUE(scheduler_.WaitFor([&] {
    auto hbs = scheduler_.Of<api::Heartbeat>();
    return !hbs.empty() && hbs.back().running.size() == 1 && hbs.back().running[0].job == 2;
  }));
  ASSERT_TRUE(scheduler_.Send(api::Kill{2, 1, 5, "cancelled by alice"}));
  ASSERT_TRUE(
      scheduler_.WaitFor([&] { return scheduler_.HasState(2, 1, api::JobState::kCancelled); }));
  auto killed = scheduler_.UpdatesFor(2, 1).back();
  EXPECT_EQ(killed.signal, "SIGTERM");  // `sleep` dies of the checkpoint signal.
  // Kill of an unknown attempt: harmless.
  ASSERT_TRUE(scheduler_.Send(api::Kill{77, 1, 0, "x"}));
  ASSERT_TRUE(scheduler_.Send(api::Drain{"maintenance"}));
  ASSERT_TRUE(scheduler_.Send(ShLaunch(3, 1, "exit 3")));
  ASSERT_TRUE(
      scheduler_.WaitFor([&] { return scheduler_.HasState(3, 1, api::JobState::kFailed); }));
  EXPECT_EQ(scheduler_.UpdatesFor(3, 1).back().exit_code, 3);
}

TEST_F(AgentTest, MissingImageFailsWithAClearMessage) {
  cfg_.runtime.type = config::RuntimeType::kRunc;
  cfg_.images.roots = {dir_.path()};
  AgentHarness h(cfg_, scheduler_.url());
  ASSERT_TRUE(scheduler_.WaitFor([&] { return scheduler_.Connected(); }));
  api::Launch l = ShLaunch(5, 1, "true");
  l.spec.image = dir_.path() + "/no-such-image";
  ASSERT_TRUE(scheduler_.Send(l));
  ASSERT_TRUE(
      scheduler_.WaitFor([&] { return scheduler_.HasState(5, 1, api::JobState::kFailed); }));
  auto failed = scheduler_.UpdatesFor(5, 1).back();
  EXPECT_NE(failed.message.find("no-such-image"), std::string::npos) << failed.message;
  EXPECT_NE(failed.message.find("not a rootfs directory"), std::string::npos) << failed.message;
}

TEST_F(AgentTest, ReconnectsAndResendsFinalStatesMissedWhileDisconnected) {
  AgentHarness h(cfg_, scheduler_.url());
  ASSERT_TRUE(scheduler_.WaitFor([&] { return scheduler_.Of<api::Hello>().size() == 1; }));
  ASSERT_TRUE(scheduler_.Send(ShLaunch(6, 1, "while [ ! -e go ]; do sleep 0.02; done")));
  ASSERT_TRUE(
      scheduler_.WaitFor([&] { return scheduler_.HasState(6, 1, api::JobState::kRunning); }));
  // Drop the connection and refuse new ones while the job ends.
  scheduler_.Refuse(true);
  scheduler_.Drop();
  ASSERT_TRUE(scheduler_.WaitFor([&] { return !scheduler_.Connected(); }));
  std::ofstream(JobDir(6, 1) + "/job/go") << "";
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(JobDir(6, 1) + "/exit"); },
                      std::chrono::seconds(10)));
  EXPECT_FALSE(scheduler_.HasState(6, 1, api::JobState::kCompleted));
  scheduler_.Refuse(false);
  // The agent keeps retrying (backoff 20..100 ms) and says hello again, then the final state.
  ASSERT_TRUE(scheduler_.WaitFor([&] { return scheduler_.Of<api::Hello>().size() == 2; }));
  // The hello lists the attempt - as running if the supervisor has not seen the exit yet, else
  // with its final state - so that the scheduler does not take it for lost.
  api::Hello again = scheduler_.Of<api::Hello>()[1];
  EXPECT_EQ(
      std::count_if(again.running.begin(), again.running.end(),
                    [](const api::RunningAttempt& r) { return r.job == 6 && r.attempt == 1; }),
      1);
  ASSERT_TRUE(
      scheduler_.WaitFor([&] { return scheduler_.HasState(6, 1, api::JobState::kCompleted); }));
  EXPECT_GE(scheduler_.connections(), 2);
}

// A final update the scheduler has not acknowledged (it may have died before storing it) is sent
// again on the next connection, and no more once acknowledged.
TEST_F(AgentTest, AFinalUpdateIsSentAgainUntilTheSchedulerAcknowledgesIt) {
  scheduler_.Acknowledge(false);
  AgentHarness h(cfg_, scheduler_.url());
  ASSERT_TRUE(scheduler_.WaitFor([&] { return scheduler_.Of<api::Hello>().size() == 1; }));
  ASSERT_TRUE(scheduler_.Send(ShLaunch(11, 1, "exit 0")));
  auto finals = [&] {
    auto updates = scheduler_.UpdatesFor(11, 1);
    return std::count_if(updates.begin(), updates.end(),
                         [](const api::JobUpdate& u) { return api::IsTerminal(u.state); });
  };
  ASSERT_TRUE(scheduler_.WaitFor([&] { return finals() == 1; }));
  // Not acknowledged: a new connection carries it again.
  scheduler_.Drop();
  ASSERT_TRUE(scheduler_.WaitFor([&] { return scheduler_.Of<api::Hello>().size() == 2; }));
  ASSERT_TRUE(scheduler_.WaitFor([&] { return finals() == 2; }));
  // Acknowledged this time: the next connection does not.
  scheduler_.Acknowledge(true);
  scheduler_.Drop();
  ASSERT_TRUE(scheduler_.WaitFor([&] { return scheduler_.Of<api::Hello>().size() == 3; }));
  ASSERT_TRUE(scheduler_.WaitFor([&] { return finals() == 3; }));
  // The worker took the ack: it records the attempt as reported.
  ASSERT_TRUE(WaitFor(
      [&] {
        return ReadJobFile(JobDir(11, 1) + "/state.json").find(R"("reported":true)") !=
               std::string::npos;
      },
      std::chrono::seconds(10)));
  scheduler_.Drop();
  ASSERT_TRUE(scheduler_.WaitFor([&] { return scheduler_.Of<api::Hello>().size() == 4; }));
  // A heartbeat on the fourth connection shows it is live; still three finals.
  size_t beats = scheduler_.Of<api::Heartbeat>().size();
  ASSERT_TRUE(scheduler_.WaitFor([&] { return scheduler_.Of<api::Heartbeat>().size() > beats; }));
  EXPECT_EQ(finals(), 3);
}

TEST_F(AgentTest, ReadoptsARunningJobAfterTheAgentIsRecreated) {
  {
    AgentHarness h(cfg_, scheduler_.url());
    ASSERT_TRUE(scheduler_.WaitFor([&] { return scheduler_.Connected(); }));
    ASSERT_TRUE(scheduler_.Send(ShLaunch(7, 2, "while [ ! -e go ]; do sleep 0.02; done; exit 9")));
    ASSERT_TRUE(
        scheduler_.WaitFor([&] { return scheduler_.HasState(7, 2, api::JobState::kRunning); }));
  }
  AgentHarness h(cfg_, scheduler_.url(), /*adopt=*/true);
  ASSERT_TRUE(scheduler_.WaitFor([&] { return scheduler_.Of<api::Hello>().size() == 2; }));
  auto hello = scheduler_.Of<api::Hello>()[1];
  ASSERT_EQ(hello.running.size(), 1u);
  EXPECT_EQ(hello.running[0].job, 7u);
  EXPECT_EQ(hello.running[0].attempt, 2u);
  std::ofstream(JobDir(7, 2) + "/job/go") << "";
  ASSERT_TRUE(
      scheduler_.WaitFor([&] { return scheduler_.HasState(7, 2, api::JobState::kFailed); }));
  EXPECT_EQ(scheduler_.UpdatesFor(7, 2).back().exit_code, 9);
}

// A real `gsched-worker` process, started and stopped by pid.
class WorkerProcess {
 public:
  explicit WorkerProcess(const std::string& config_path) {
    std::string bin = testing::ShimBinary();
    pid_ = fork();
    if (pid_ == 0) {
      execl(bin.c_str(), bin.c_str(), "--config", config_path.c_str(), "--log-level", "warn",
            static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~WorkerProcess() { Stop(SIGTERM); }
  void Stop(int sig) {
    if (pid_ <= 0)
      return;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

TEST_F(AgentTest, JobSurvivesKill9OfTheWorkerAndItsEndIsReportedOnce) {
  std::string config_path = dir_.path() + "/worker.yaml";
  std::ofstream(dir_.path() + "/token") << "tok-123\n";
  std::ofstream(config_path) << "scheduler: \"" << scheduler_.url() << "\"\n"
                             << "token_file: " << dir_.path() << "/token\n"
                             << "name: real-node\n"
                             << "work_dir: " << dir_.path() << "\n"
                             << "heartbeat_interval: 100ms\n"
                             << "reconnect:\n  initial_backoff: 20ms\n  max_backoff: 100ms\n"
                             << "runtime:\n  type: process\n"
                             << "identity: {run_as_root: true}\n"
                             << "gpus:\n  discovery: fake\n  fake:\n    count: 2\n";
  {
    WorkerProcess first(config_path);
    ASSERT_TRUE(scheduler_.WaitFor([&] { return scheduler_.Connected(); }));
    EXPECT_EQ(scheduler_.auth(), "Bearer tok-123");
    ASSERT_TRUE(scheduler_.Send(ShLaunch(8, 1, "while [ ! -e go ]; do sleep 0.02; done")));
    ASSERT_TRUE(
        scheduler_.WaitFor([&] { return scheduler_.HasState(8, 1, api::JobState::kRunning); }));
    first.Stop(SIGKILL);
  }
  ASSERT_TRUE(scheduler_.WaitFor([&] { return !scheduler_.Connected(); }));
  WorkerProcess second(config_path);
  ASSERT_TRUE(scheduler_.WaitFor([&] { return scheduler_.Of<api::Hello>().size() == 2; }));
  auto hello = scheduler_.Of<api::Hello>()[1];
  ASSERT_EQ(hello.running.size(), 1u);
  EXPECT_EQ(hello.running[0].job, 8u);
  EXPECT_EQ(hello.running[0].attempt, 1u);
  std::ofstream(JobDir(8, 1) + "/job/go") << "";
  ASSERT_TRUE(
      scheduler_.WaitFor([&] { return scheduler_.HasState(8, 1, api::JobState::kCompleted); }));
  // Three more heartbeats: still exactly one final update.
  size_t beats = scheduler_.Of<api::Heartbeat>().size();
  ASSERT_TRUE(
      scheduler_.WaitFor([&] { return scheduler_.Of<api::Heartbeat>().size() >= beats + 3; }));
  int completed = 0;
  for (const auto& u : scheduler_.UpdatesFor(8, 1))
    completed += u.state == api::JobState::kCompleted;
  EXPECT_EQ(completed, 1);
}

}  // namespace
}  // namespace gsched::worker
