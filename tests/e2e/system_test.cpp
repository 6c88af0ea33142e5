// The whole system on loopback: a real scheduler, real workers with fake GPUs whose jobs are real
// processes, and the real CLI. Jobs run, their output is read back through the scheduler, and
// they survive `kill -9` of the worker and of the scheduler.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "tests/e2e/system_fixture.h"

namespace gsched::testing {
namespace {

namespace fs = std::filesystem;

TEST_F(SystemTest, AJobRunsOnItsGpusAndItsOutputComesBack) {
  uint64_t id = Submit(
      R"({"image": "/", "gpus_per_node": 2, "gpu_type": "h100", "time_limit_s": 60,
          "command": ["sh", "-c",
                      "echo job $GSCHED_JOB_ID attempt $GSCHED_ATTEMPT gpus $CUDA_VISIBLE_DEVICES; echo oops >&2; exit 3"]})");
  ASSERT_TRUE(WaitFor([&] { return State(id) == "failed"; })) << State(id);
  auto job = Job(id);
  EXPECT_EQ(job.at("exit_code").as_int64(), 3);
  // Best fit on an empty node with NVLink everywhere: the two lowest GPUs.
  EXPECT_EQ(Logs(id), "job " + std::to_string(id) + " attempt 1 gpus 0,1\n");
  EXPECT_EQ(Logs(id, "stderr"), "oops\n");

  // Its usage is accounted: 2 h100 GPUs (cost 1.0) for the job's run time.
  auto usage = s_.Client(s_.admin_token())->Get("/v1/usage?account=lab");
  ASSERT_EQ(usage->status, 200) << usage->body;
  auto body = Parse(usage->body);
  const auto& rows = body.at("usage").as_array();
  ASSERT_EQ(rows.size(), 1u) << usage->body;
  EXPECT_EQ(rows[0].at("account").as_string(), "proj-a");
  EXPECT_EQ(rows[0].at("user").as_string(), "alice");
  EXPECT_EQ(rows[0].at("gpu_type").as_string(), "h100");
  EXPECT_GT(rows[0].at("gpu_hours").to_number<double>(), 0.0);
  auto bad = s_.Client(alice_)->Get("/v1/usage?since=yesterday");
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(Parse(bad->body).at("error").at("field").as_string(), "since");
}

TEST_F(SystemTest, TheCliSubmitsASlurmScriptAndPrintsItsOutput) {
  std::string script = s_.dir() + "/train.sh";
  std::ofstream(script) << "#!/bin/sh\n"
                        << "#SBATCH --job-name=train\n"
                        << "#SBATCH --gres=gpu:h100:4\n"
                        << "#SBATCH --time=00:05:00\n"
                        << "echo \"training on $CUDA_VISIBLE_DEVICES\"\n";
  auto submitted = Cli({"submit", "--parsable", "--image", "/", script});
  ASSERT_EQ(submitted.code, 0) << submitted.Text();
  uint64_t id = std::stoull(submitted.out);
  ASSERT_TRUE(WaitFor([&] { return State(id) == "completed"; })) << State(id);
  auto job = Job(id);
  EXPECT_EQ(job.at("spec").at("name").as_string(), "train");
  EXPECT_EQ(job.at("spec").at("gpus_per_node").as_int64(), 4);
  EXPECT_EQ(job.at("spec").at("time_limit_s").as_int64(), 300);
  auto logs = Cli({"logs", std::to_string(id)});
  EXPECT_EQ(logs.code, 0) << logs.Text();
  EXPECT_EQ(logs.out, "training on 0,1,2,3\n");
  auto usage = Cli({"usage", "--since", "1d"});
  EXPECT_EQ(usage.code, 0) << usage.Text();
  EXPECT_NE(usage.out.find("proj-a   alice  h100"), std::string::npos) << usage.Text();
}

TEST_F(SystemTest, ARunningJobSurvivesKill9OfTheWorkerAndOfTheScheduler) {
  // The job runs until the test creates `go`: no timing is assumed anywhere.
  std::string go = s_.dir() + "/go";
  uint64_t id = Submit(R"({"image": "/", "gpu_type": "h100", "time_limit_s": 300,
                           "command": ["sh", "-c", "echo started; while [ ! -e )" +
                       go + R"( ]; do sleep 0.02; done; echo finished"]})");
  ASSERT_TRUE(WaitFor([&] { return State(id) == "running"; })) << State(id);
  ASSERT_TRUE(WaitFor([&] { return Logs(id) == "started\n"; }));

  // The worker dies: its job keeps running under its shim, and a new worker re-adopts it.
  worker_->Crash();
  worker_->Start();
  ASSERT_TRUE(WaitFor([&] { return worker_->Log().find("adopted") != std::string::npos; }))
      << worker_->Log();
  // The scheduler dies too, and comes back on the same address.
  s_.Crash();
  s_.Start(/*same_port=*/true);
  EXPECT_EQ(State(id), "running");

  std::ofstream(go) << "";
  ASSERT_TRUE(WaitFor([&] { return State(id) == "completed"; })) << boost::json::serialize(Job(id));
  auto job = Job(id);
  EXPECT_EQ(job.at("attempt").as_int64(), 1) << "the job must not have been restarted";
  EXPECT_EQ(job.at("exit_code").as_int64(), 0);
  EXPECT_EQ(Logs(id), "started\nfinished\n");
}

// The same system with jobs in real runc containers on a busybox root file system, as
// `config/worker.yaml` ships. Needs root and runc (scripts/setup installs runc and busybox-static).
class RuncSystemTest : public SystemTest {
 protected:
  std::string Runtime() const override { return "runc"; }
  void SetUp() override {
    if (geteuid() != 0 || !fs::exists("/usr/sbin/runc") || !fs::exists("/bin/busybox"))
      GTEST_SKIP() << "needs root, /usr/sbin/runc and /bin/busybox";
    rootfs_ = s_.dir() + "/images/rootfs";
    MakeBusyboxRootfs(rootfs_, {"sh", "echo", "sleep", "cat", "env", "true"});
    std::ofstream(s_.dir() + "/identities.map") << "alice: 60001:60001\n";
    SystemTest::SetUp();
  }
  // Jobs run as alice's mapped identity, from images under the test's images directory.
  std::string WorkerExtraConfig() const override {
    return "identity: {mode: map, map_file: " + s_.dir() + "/identities.map}\n" +
           "images: {roots: [" + s_.dir() + "/images]}\n";
  }
  // A job spec running `script` with `sh -c` in the rootfs.
  std::string Spec(const std::string& script, const std::string& extra) {
    boost::json::object spec{{"image", rootfs_},
                             {"gpu_type", "h100"},
                             {"command", boost::json::array{"sh", "-c", script}}};
    boost::json::value more = boost::json::parse("{" + extra + "}");
    for (const auto& [k, v] : more.as_object())
      spec[k] = v;
    return boost::json::serialize(spec);
  }
  std::string rootfs_;
};

TEST_F(RuncSystemTest, AContainerSeesItsGpusAndEnvAndItsExitCodeAndOutputComeBack) {
  uint64_t id = Submit(Spec(
      "echo gpus=$CUDA_VISIBLE_DEVICES nv=$NVIDIA_VISIBLE_DEVICES job=$GSCHED_JOB_ID foo=$FOO; "
      "echo $GSCHED_NODELIST $GSCHED_NUM_NODES $GSCHED_NODE_RANK $WORLD_SIZE $SLURM_JOB_ID "
      "$SLURM_JOB_NAME $SLURM_JOB_NODELIST $SLURM_GPUS_ON_NODE; exit 7",
      R"("name": "envcheck", "gpus_per_node": 2, "env": {"FOO": "bar"}, "time_limit_s": 60)"));
  ASSERT_TRUE(WaitFor([&] { return State(id) == "failed"; })) << State(id);
  EXPECT_EQ(Job(id).at("exit_code").as_int64(), 7);
  // The gang of one node: node-1, rank 0 of 1, 2 GPUs.
  EXPECT_EQ(Logs(id), "gpus=0,1 nv=0,1 job=" + std::to_string(id) + " foo=bar\nnode-1 1 0 2 " +
                          std::to_string(id) + " envcheck node-1 2\n");
}

// A ported Slurm script: `#SBATCH --ntasks-per-node=2` and `srun` inside a container whose image
// has only busybox's shell, submitted through the CLI.
TEST_F(RuncSystemTest, AnSbatchScriptWithSrunRunsOneTaskPerRank) {
  std::string script = s_.dir() + "/tasks.sh";
  std::ofstream(script) << "#!/bin/sh\n"
                        << "#SBATCH --job-name=tasks\n"
                        << "#SBATCH --gres=gpu:h100:2\n"
                        << "#SBATCH --ntasks-per-node=2\n"
                        << "#SBATCH --time=00:05:00\n"
                        << "srun --gpus-per-task=1 sh -c 'echo task $SLURM_PROCID of $SLURM_NTASKS "
                           "on GPU $CUDA_VISIBLE_DEVICES'\n";
  auto submitted = Cli({"submit", "--parsable", "--image", rootfs_, script});
  ASSERT_EQ(submitted.code, 0) << submitted.Text();
  uint64_t id = std::stoull(submitted.out);
  ASSERT_TRUE(WaitFor([&] { return State(id) == "completed"; })) << State(id) << "\n"
                                                                 << Logs(id, "stderr");
  std::string out = Logs(id);
  EXPECT_NE(out.find("task 0 of 2 on GPU 0\n"), std::string::npos) << out;
  EXPECT_NE(out.find("task 1 of 2 on GPU 1\n"), std::string::npos) << out;
}

TEST_F(RuncSystemTest, ATimeLimitSendsTheCheckpointSignalThenKillsAfterTheGrace) {
  // time limit 1 s, grace 1 s: TERM at 1 s (the trap prints and keeps running), KILL at 2 s.
  uint64_t id =
      Submit(Spec("trap 'echo checkpoint' TERM; echo started; while true; do sleep 0.05; done",
                  R"("time_limit_s": 1, "grace_period_s": 1)"));
  ASSERT_TRUE(WaitFor([&] { return State(id) == "timeout"; })) << State(id);
  EXPECT_EQ(Logs(id), "started\ncheckpoint\n");
}

TEST_F(RuncSystemTest, ACancelledContainerEndsWithTheSignalThatStoppedIt) {
  // The job's checkpoint signal (SIGTERM) goes to every process of the container; whatever does
  // not exit within the 1 s grace gets SIGKILL. Either way the job says which signal ended it.
  uint64_t id = Submit(Spec("echo up; sleep 300", R"("time_limit_s": 600, "grace_period_s": 1)"));
  ASSERT_TRUE(WaitFor([&] { return Logs(id) == "up\n"; })) << State(id);
  auto r = s_.Client(alice_)->Post("/v1/jobs/" + std::to_string(id) + "/cancel", "");
  ASSERT_EQ(r->status, 200) << r->body;
  ASSERT_TRUE(WaitFor([&] { return State(id) == "cancelled"; })) << State(id);
  auto job = Job(id);
  ASSERT_TRUE(job.at("signal").is_string()) << boost::json::serialize(job);
  std::string signal(job.at("signal").as_string());
  EXPECT_TRUE(signal == "SIGTERM" || signal == "SIGKILL") << signal;
}

TEST_F(RuncSystemTest, TwoClustersOnOneHostRunTheirJobOnesSideBySide) {
  // Job ids are unique only within a scheduler, while container names, runc's state and the cgroup
  // runc names after the container are global on the host: both job 1s must run, and ending one
  // must not touch the other.
  SchedulerProcess other;
  WorkerProcess other_worker(other, "node-1", other.Token("node-1", "worker", {}), "runc",
                             WorkerExtraConfig());
  other_worker.Start();
  auto other_job = [&] {
    auto r = other.Client(other.admin_token())->Get("/v1/jobs/1");
    return r.ok() && r->status == 200 ? Parse(r->body) : boost::json::value();
  };
  auto other_state = [&] {
    auto j = other_job();
    return j.is_object() ? std::string(j.at("state").as_string()) : "?";
  };
  // Each job waits for `go` in its own job directory (the container sees it as /gsched).
  std::string spec = Spec(
      "echo up; n=0; while [ ! -e /gsched/go ] && [ $n -lt 1200 ]; do "
      "sleep 0.05; n=$((n+1)); done; echo done",
      R"("time_limit_s": 120)");
  ASSERT_EQ(Submit(spec), 1u);
  auto r = other.Client(other.Token("alice", "user", {"proj-a"}))->Post("/v1/jobs", spec);
  ASSERT_TRUE(r.ok() && r->status == 201) << (r.ok() ? r->body : r.status().ToString());
  ASSERT_EQ(Parse(r->body).at("id").to_number<uint64_t>(), 1u);

  std::string other_dir = other.dir() + "/node-1/work/jobs/1/1";
  ASSERT_TRUE(WaitFor([&] { return Logs(1) == "up\n"; })) << State(1);
  ASSERT_TRUE(WaitFor([&] { return ReadFile(other_dir + "/stdout") == "up\n"; }))
      << other_state() << "\n"
      << other_worker.Log() << other.Log();
  ASSERT_TRUE(WaitFor([&] { return other_state() == "running"; })) << other_state();

  // This cluster's job ends first; the other's keeps running until its own `go`.
  std::ofstream(s_.dir() + "/node-1/work/jobs/1/1/job/go") << "";
  ASSERT_TRUE(WaitFor([&] { return State(1) == "completed"; })) << State(1);
  EXPECT_EQ(Logs(1), "up\ndone\n");
  EXPECT_EQ(other_state(), "running");
  std::ofstream(other_dir + "/job/go") << "";
  ASSERT_TRUE(WaitFor([&] { return other_state() == "completed"; }))
      << boost::json::serialize(other_job());
  EXPECT_EQ(ReadFile(other_dir + "/stdout"), "up\ndone\n");
}

}  // namespace
}  // namespace gsched::testing
