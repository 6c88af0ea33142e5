// Multi-node jobs end to end: two real workers whose "nodes" listen on different loopback
// addresses (127.0.0.2 and 127.0.0.3), a real scheduler and CLI. Rank 0 listens on
// MASTER_ADDR:MASTER_PORT and rank 1 connects and they swap a line; each node's environment is
// checked field by field; an `#SBATCH` script's `srun` runs four tasks over the two nodes; a rank
// that fails ends the gang on the other node. Each runs with the process runtime, and with runc
// where it runs (root, runc and busybox present).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "tests/e2e/system_fixture.h"

namespace gsched::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

// A TCP port free on `address` right now; 0 when none can be had.
int FreePortOn(const char* address) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  inet_pton(AF_INET, address, &sa.sin_addr);
  socklen_t len = sizeof sa;
  int port = 0;
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0)
    port = ntohs(sa.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

class GangSystemTest : public ::testing::TestWithParam<std::string> {
 protected:
  bool Runc() const { return GetParam() == "runc"; }

  void SetUp() override {
    if (Runc() && (geteuid() != 0 || !fs::exists("/usr/sbin/runc") || !fs::exists("/bin/busybox")))
      GTEST_SKIP() << "needs root, /usr/sbin/runc and /bin/busybox";
    // Tests run side by side (ctest -j) and their rank 0s all listen on 127.0.0.2: each cluster
    // lends a port of its own, one the kernel has just handed out as free.
    port_ = FreePortOn("127.0.0.2");
    ASSERT_GT(port_, 0);
    std::string extra =
        "rendezvous_ports: " + std::to_string(port_) + "-" + std::to_string(port_) + "\n";
    if (Runc()) {
      image_ = s_.dir() + "/images/rootfs";
      MakeBusyboxRootfs(image_, {"sh", "echo", "sleep", "cat", "env", "true"});
      fs::copy_file(GSCHED_RENDEZVOUS_BIN, image_ + "/bin/rendezvous");
      probe_ = "/bin/rendezvous";
      std::ofstream(s_.dir() + "/identities.map") << "alice: 60001:60001\n";
      extra += "identity: {mode: map, map_file: " + s_.dir() + "/identities.map}\n" +
               "images: {roots: [" + s_.dir() + "/images]}\n";
    } else {
      image_ = "/";
      probe_ = GSCHED_RENDEZVOUS_BIN;
      extra += "identity: {run_as_root: true}\n";
    }
    alice_ = s_.Token("alice", "user", {"proj-a"});
    for (const auto& [name, address] :
         {std::pair{"gpu-n01", "127.0.0.2"}, {"gpu-n02", "127.0.0.3"}}) {
      workers_.push_back(std::make_unique<WorkerProcess>(s_, name, s_.Token(name, "worker", {}),
                                                         GetParam(),
                                                         extra + "address: " + address + "\n"));
      workers_.back()->Start();
    }
    bool up = WaitFor([&] {
      auto r = s_.Client(s_.admin_token())->Get("/v1/nodes");
      if (!r.ok())
        return false;
      size_t n = 0;
      for (size_t at = 0; (at = r->body.find(R"("state":"up")", at)) != std::string::npos; ++at)
        ++n;
      return n == 2;
    });
    ASSERT_TRUE(up) << "workers did not come up:\n" << Logs();
  }
  ~GangSystemTest() override {
    if (HasFailure())
      std::cerr << Logs();
  }
  std::string Logs() const {
    std::string out;
    for (const auto& w : workers_)
      out += "--- worker log\n" + w->Log() + w->JobFiles();
    return out + "--- scheduler log\n" + s_.Log();
  }

  // `gsched ARGS` as alice.
  CliResult Cli(const std::vector<std::string>& args) {
    std::vector<std::string> argv{GSCHED_CLI_BIN, "--server", s_.url()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string base = s_.dir() + "/cli-" + std::to_string(++cli_runs_);
    Subprocess cli(
        argv, base + ".out",
        {.err_path = base + ".err",
         .env = std::vector<std::string>{"HOME=" + s_.dir(), "LANG=C", "GSCHED_TOKEN=" + alice_}});
    int status = cli.Wait(std::chrono::seconds(20));
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ReadFile(base + ".out"),
            ReadFile(base + ".err")};
  }

  // A two-node job of 8 GPUs per node running `script` with `sh -c`.
  uint64_t SubmitGang(const std::string& script, const std::string& name = "gang") {
    json::object spec{{"name", name},        {"image", image_},
                      {"gpu_type", "h100"},  {"nodes", 2},
                      {"gpus_per_node", 8},  {"time_limit_s", 120},
                      {"grace_period_s", 2}, {"command", json::array{"sh", "-c", script}}};
    auto r = s_.Client(alice_)->Post("/v1/jobs", json::serialize(spec));
    EXPECT_TRUE(r.ok() && r->status == 201) << (r.ok() ? r->body : r.status().ToString());
    return r.ok() && r->status == 201 ? Parse(r->body).at("id").to_number<uint64_t>() : 0;
  }
  json::value Job(uint64_t id) {
    auto r = s_.Client(s_.admin_token())->Get("/v1/jobs/" + std::to_string(id));
    return r.ok() && r->status == 200 ? Parse(r->body) : json::value();
  }
  std::string State(uint64_t id) {
    auto j = Job(id);
    return j.is_object() ? std::string(j.at("state").as_string()) : "?";
  }
  // One node's stdout of the job (the whole of it: these outputs are small).
  std::string NodeLog(uint64_t id, const std::string& node) {
    auto r = s_.Client(alice_)->Get("/v1/jobs/" + std::to_string(id) +
                                    "/logs?stream=stdout&node=" + node);
    if (!r.ok() || r->status != 200)
      return "(" + (r.ok() ? r->body : r.status().ToString()) + ")";
    return std::string(Parse(r->body).at("data").as_string());
  }
  // "KEY=value" words of the line that starts with `prefix`.
  static std::map<std::string, std::string> Fields(const std::string& log,
                                                   const std::string& prefix) {
    std::map<std::string, std::string> out;
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);) {
      if (!line.starts_with(prefix))
        continue;
      std::istringstream words(line.substr(prefix.size()));
      for (std::string w; words >> w;) {
        size_t eq = w.find('=');
        if (eq != std::string::npos)
          out[w.substr(0, eq)] = w.substr(eq + 1);
      }
    }
    return out;
  }

  SchedulerProcess s_;
  std::string alice_;
  std::string image_;
  std::string probe_;
  std::vector<std::unique_ptr<WorkerProcess>> workers_;
  int cli_runs_ = 0;
  int port_ = 0;  // The workers' one rendezvous port.
};

TEST_P(GangSystemTest, TwoNodesMeetAtRankZeroAndKnowTheirGang) {
  std::string env_line = "echo ENV";
  for (const char* v :
       {"GSCHED_NODELIST", "GSCHED_NUM_NODES", "GSCHED_NODE_RANK", "GSCHED_GPUS_PER_NODE",
        "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "SLURM_JOB_ID", "SLURM_JOB_NAME",
        "SLURM_JOB_NODELIST", "SLURM_NNODES", "SLURM_JOB_NUM_NODES", "SLURM_NODEID",
        "SLURM_GPUS_ON_NODE", "CUDA_VISIBLE_DEVICES", "GSCHED_JOB_ID"}) {
    env_line += std::string(" ") + v + "=$" + v;
  }
  uint64_t id = SubmitGang(env_line + "; exec " + probe_, "meet");
  ASSERT_TRUE(WaitFor([&] { return State(id) == "completed"; }, std::chrono::seconds(60)))
      << State(id) << "\n"
      << NodeLog(id, "gpu-n01") << NodeLog(id, "gpu-n02");
  const std::string rank0 = NodeLog(id, "gpu-n01"), rank1 = NodeLog(id, "gpu-n02");
  auto e0 = Fields(rank0, "ENV "), e1 = Fields(rank1, "ENV ");
  const std::string job = std::to_string(id);
  // The same on every node.
  for (const auto* e : {&e0, &e1}) {
    EXPECT_EQ(e->at("GSCHED_NODELIST"), "gpu-n01,gpu-n02");
    EXPECT_EQ(e->at("GSCHED_NUM_NODES"), "2");
    EXPECT_EQ(e->at("GSCHED_GPUS_PER_NODE"), "8");
    EXPECT_EQ(e->at("WORLD_SIZE"), "16");
    EXPECT_EQ(e->at("MASTER_ADDR"), "127.0.0.2");  // Rank 0's worker `address`.
    EXPECT_EQ(e->at("SLURM_JOB_ID"), job);
    EXPECT_EQ(e->at("GSCHED_JOB_ID"), job);
    EXPECT_EQ(e->at("SLURM_JOB_NAME"), "meet");
    EXPECT_EQ(e->at("SLURM_JOB_NODELIST"), "gpu-n[01-02]");
    EXPECT_EQ(e->at("SLURM_NNODES"), "2");
    EXPECT_EQ(e->at("SLURM_JOB_NUM_NODES"), "2");
    EXPECT_EQ(e->at("SLURM_GPUS_ON_NODE"), "8");
    EXPECT_EQ(e->at("CUDA_VISIBLE_DEVICES"), "0,1,2,3,4,5,6,7");
  }
  EXPECT_EQ(e0.at("GSCHED_NODE_RANK"), "0");
  EXPECT_EQ(e1.at("GSCHED_NODE_RANK"), "1");
  EXPECT_EQ(e0.at("SLURM_NODEID"), "0");
  EXPECT_EQ(e1.at("SLURM_NODEID"), "1");
  // One port for the attempt, from the workers' range, the same on both nodes.
  EXPECT_EQ(e0.at("MASTER_PORT"), e1.at("MASTER_PORT"));
  int port = std::stoi(e0.at("MASTER_PORT"));
  EXPECT_EQ(port, port_);
  // They met: rank 0 listened on 127.0.0.2 and heard rank 1, and rank 1 heard back.
  EXPECT_NE(rank0.find("rank 0 listening on 127.0.0.2:" + std::to_string(port)), std::string::npos)
      << rank0;
  EXPECT_NE(rank0.find("rank 0 got 'hello from rank 1'"), std::string::npos) << rank0;
  EXPECT_NE(rank1.find("rank 1 got 'welcome from rank 0'"), std::string::npos) << rank1;
  // The CLI reads each node's output.
  CliResult logs = Cli({"logs", std::to_string(id), "--node", "gpu-n02"});
  EXPECT_EQ(logs.out, rank1) << logs.Text();
  // The nodes show their addresses.
  auto nodes = s_.Client(alice_)->Get("/v1/nodes");
  ASSERT_TRUE(nodes.ok());
  EXPECT_NE(nodes->body.find(R"("address":"127.0.0.3")"), std::string::npos) << nodes->body;
}

TEST_P(GangSystemTest, AnSbatchScriptRunsItsSrunTasksOverBothNodes) {
  std::string script = s_.dir() + "/train.sh";
  std::ofstream(script) << "#!/bin/sh\n"
                        << "#SBATCH --job-name=tasks\n"
                        << "#SBATCH --nodes=2\n"
                        << "#SBATCH --gres=gpu:h100:8\n"
                        << "#SBATCH --ntasks-per-node=2\n"
                        << "#SBATCH --time=00:05:00\n"
                        << "srun --gpus-per-task=4 sh -c 'echo task $SLURM_PROCID of "
                           "$SLURM_NTASKS local $SLURM_LOCALID node $SLURM_NODEID gpus "
                           "$CUDA_VISIBLE_DEVICES rank $RANK'\n"
                        << "echo submitted from $SLURM_SUBMIT_HOST\n";
  CliResult submitted = Cli({"submit", "--parsable", "--image", image_, script});
  ASSERT_EQ(submitted.code, 0) << submitted.Text();
  uint64_t id = std::stoull(submitted.out);
  ASSERT_TRUE(WaitFor([&] { return State(id) == "completed"; }, std::chrono::seconds(60)))
      << State(id);
  std::string out = NodeLog(id, "gpu-n01") + NodeLog(id, "gpu-n02");
  for (const char* want : {"task 0 of 4 local 0 node 0 gpus 0,1,2,3 rank 0\n",
                           "task 1 of 4 local 1 node 0 gpus 4,5,6,7 rank 1\n",
                           "task 2 of 4 local 0 node 1 gpus 0,1,2,3 rank 2\n",
                           "task 3 of 4 local 1 node 1 gpus 4,5,6,7 rank 3\n"}) {
    EXPECT_NE(out.find(want), std::string::npos) << "missing: " << want << "in:\n" << out;
  }
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  EXPECT_NE(out.find("submitted from " + std::string(host) + "\n"), std::string::npos) << out;
}

TEST_P(GangSystemTest, ARankThatFailsEndsTheGangOnTheOtherNode) {
  // Rank 1 fails at once; rank 0 would wait two minutes, but is stopped with its grace.
  uint64_t id = SubmitGang(
      "if [ \"$GSCHED_NODE_RANK\" = 1 ]; then echo failing; exit 7; fi; echo waiting; "
      "n=0; while [ $n -lt 1200 ]; do sleep 0.1; n=$((n+1)); done; echo never",
      "fails");
  ASSERT_TRUE(WaitFor([&] { return State(id) == "failed"; }, std::chrono::seconds(30)))
      << State(id);
  auto job = Job(id);
  EXPECT_EQ(job.at("exit_code").as_int64(), 7) << json::serialize(job);
  const auto& attempt = job.at("attempts").as_array().back().as_object();
  EXPECT_NE(std::string(attempt.at("message").as_string()).find("node gpu-n02"), std::string::npos)
      << json::serialize(job);
  EXPECT_EQ(NodeLog(id, "gpu-n01").find("never"), std::string::npos);
  // Both nodes are free again: the next gang starts.
  uint64_t next = SubmitGang("true", "next");
  EXPECT_TRUE(WaitFor([&] { return State(next) == "completed"; }, std::chrono::seconds(30)))
      << State(next);
}

INSTANTIATE_TEST_SUITE_P(Runtimes, GangSystemTest, ::testing::Values("process", "runc"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace gsched::testing
