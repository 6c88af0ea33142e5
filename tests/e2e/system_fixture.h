// The whole system on loopback for end-to-end tests: a real `gsched-scheduler`
// (`SchedulerProcess`), a real `gsched-worker` with eight fake h100 GPUs whose jobs are real
// processes, and the real `gsched` CLI run as a child process with its own environment, its
// stdout and stderr kept apart.
//
// Jobs that must stay up while a test looks at them wait for a file (`Go()`) rather than for
// time; their loops are bounded so that a job outliving a failed test (the worker's shim outlives
// the worker) ends by itself.
//
// Threading: one test thread.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tests/integration/scheduler_process.h"
#include "tests/testutil/subprocess.h"

namespace gsched::testing {

// The whole of a file; empty when it cannot be read.
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A `gsched-worker` process with eight fake GPUs and the process runtime (or `runtime`);
// `extra_yaml` is appended to its worker.yaml (identity, images, limits).
class WorkerProcess {
 public:
  WorkerProcess(const SchedulerProcess& s, std::string name, const std::string& token,
                std::string runtime = "process", std::string extra_yaml = {})
      : name_(std::move(name)),
        dir_(s.dir() + "/" + name_),
        runtime_(std::move(runtime)),
        extra_yaml_(std::move(extra_yaml)) {
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ + "/worker.token") << token << "\n";
    std::filesystem::permissions(dir_ + "/worker.token", std::filesystem::perms::owner_read |
                                                             std::filesystem::perms::owner_write);
    Configure(s.url());
  }

  void Configure(const std::string& url) {
    std::ofstream(dir_ + "/worker.yaml")
        << "scheduler: " << url << "\n"
        << "token_file: " << dir_ << "/worker.token\n"
        << "name: " << name_ << "\n"
        << "work_dir: " << dir_ << "/work\n"
        << "site: s0\nblock: b0\n"
        << "heartbeat_interval: 200ms\n"
        << "reconnect: {initial_backoff: 50ms, max_backoff: 200ms}\n"
        << "runtime: {type: " << runtime_ << "}\n"
        << "gpus:\n  discovery: fake\n"
        << "  fake: {count: 8, type: h100}\n"
        << extra_yaml_;
  }
  void Start() {
    process_ = std::make_unique<Subprocess>(
        std::vector<std::string>{GSCHED_WORKER_BIN, "--config", dir_ + "/worker.yaml"},
        dir_ + "/worker.log");
    ASSERT_GT(process_->pid(), 0);
  }
  void Crash() { process_->Kill(SIGKILL); }
  std::string Log() const { return process_ ? process_->Log() : ""; }
  // Each job attempt's files as the worker left them (state.json, exit, pid, stderr): for failure
  // messages.
  std::string JobFiles() const {
    std::string out;
    std::error_code ec;
    for (const auto& job : std::filesystem::directory_iterator(dir_ + "/work/jobs", ec)) {
      for (const auto& attempt : std::filesystem::directory_iterator(job.path(), ec)) {
        for (const char* name : {"state.json", "pid", "exit", "stderr"}) {
          const std::string path = (attempt.path() / name).string();
          out += "--- " + path + "\n" + ReadFile(path) + "\n";
        }
      }
    }
    return out;
  }

 private:
  std::string name_;
  std::string dir_;
  std::string runtime_;
  std::string extra_yaml_;
  std::unique_ptr<Subprocess> process_;
};

// A busybox root file system at `path` with `tools` linked to busybox (PLATFORM.md).
inline void MakeBusyboxRootfs(const std::string& path, const std::vector<std::string>& tools) {
  for (const char* d : {"bin", "proc", "sys", "dev", "tmp", "etc"})
    std::filesystem::create_directories(path + "/" + d);
  std::filesystem::copy_file("/bin/busybox", path + "/bin/busybox");
  for (const auto& tool : tools)
    std::filesystem::create_symlink("busybox", path + "/bin/" + tool);
}

// One run of the CLI: its exit code and what it printed.
struct CliResult {
  int code = -1;  // The exit code; -1 when it did not exit by itself.
  std::string out;
  std::string err;

  // Stdout as one JSON value; null (and a test failure) when it is not JSON.
  boost::json::value Json() const {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(out, ec);
    if (ec)
      ADD_FAILURE() << "not JSON (" << ec.message() << "): " << out;
    return v;
  }
  // Stdout as JSON lines.
  std::vector<boost::json::value> JsonLines() const {
    std::vector<boost::json::value> lines;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
      boost::system::error_code ec;
      boost::json::value v = boost::json::parse(line, ec);
      if (ec)
        ADD_FAILURE() << "not a JSON line: " << line;
      else
        lines.push_back(std::move(v));
    }
    return lines;
  }
  // For failure messages.
  std::string Text() const {
    return "exit " + std::to_string(code) + "\n--- stdout\n" + out + "--- stderr\n" + err;
  }
};

// A CLI process that runs while the test goes on (`logs -f`, `watch`).
class BackgroundCli {
 public:
  BackgroundCli(std::vector<std::string> argv, std::string out_path, std::string err_path,
                std::vector<std::string> env)
      : out_path_(std::move(out_path)),
        err_path_(std::move(err_path)),
        process_(std::move(argv), out_path_, {.err_path = err_path_, .env = std::move(env)}) {}

  std::string Out() const { return ReadFile(out_path_); }
  std::string Err() const { return ReadFile(err_path_); }
  bool running() const { return process_.running(); }
  // Stops it with SIGTERM (a watch without a job runs until stopped); what it printed.
  CliResult Stop() {
    int status = process_.Kill(SIGTERM);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, Out(), Err()};
  }
  // Waits for the exit (killing it after `timeout`); what it printed.
  CliResult Wait(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    int status = process_.Wait(timeout);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, Out(), Err()};
  }

 private:
  std::string out_path_;
  std::string err_path_;
  Subprocess process_;
};

class SystemTest : public ::testing::Test {
 protected:
  // The worker's runtime; a fixture for another runtime overrides it (and may skip).
  virtual std::string Runtime() const { return "process"; }
  // Appended to the worker's config. These tests are about scheduling and supervision: jobs run
  // as the worker's user (development mode); the attack tests configure real identities.
  virtual std::string WorkerExtraConfig() const { return "identity: {run_as_root: true}\n"; }

  void SetUp() override {
    alice_ = s_.Token("alice", "user", {"proj-a"});
    std::filesystem::create_directories(s_.dir() + "/home");
    worker_ = std::make_unique<WorkerProcess>(s_, "node-1", s_.Token("node-1", "worker", {}),
                                              Runtime(), WorkerExtraConfig());
    worker_->Start();
    bool up = WaitFor([&] {
      auto r = s_.Client(s_.admin_token())->Get("/v1/nodes");
      return r.ok() && r->body.find(R"("state":"up")") != std::string::npos;
    });
    EXPECT_TRUE(up) << "worker did not come up:\n" << worker_->Log() << s_.Log();
  }
  ~SystemTest() override {
    // Jobs waiting for `Go()` end now rather than at their bound; give them a moment to be seen
    // ending, so that no job process outlives the test for long.
    std::ofstream(Go()) << "";
    if (worker_) {
      WaitFor(
          [&] {
            auto r = s_.Client(s_.admin_token())->Get("/v1/jobs?state=starting,running");
            return !r.ok() || r->body.find(R"("id")") == std::string::npos;
          },
          std::chrono::seconds(5));
    }
    if (HasFailure() && worker_)
      std::cerr << "--- worker log\n"
                << worker_->Log() << worker_->JobFiles() << "--- scheduler log\n"
                << s_.Log();
  }

  // The file that jobs made by `WaitForGoCommand` wait for.
  std::string Go() const { return s_.dir() + "/go"; }
  // A shell command that prints `started`, waits until `Go()` exists (at most about a minute),
  // then prints `finished`.
  std::string WaitForGoCommand() const {
    return "echo started; n=0; while [ ! -e " + Go() +
           " ] && [ $n -lt 3000 ]; do sleep 0.02; n=$((n+1)); done; echo finished";
  }

  uint64_t Submit(const std::string& spec, const std::string& token = {}) {
    auto r = s_.Client(token.empty() ? alice_ : token)->Post("/v1/jobs", spec);
    EXPECT_TRUE(r.ok() && r->status == 201) << (r.ok() ? r->body : r.status().ToString());
    return r.ok() && r->status == 201 ? Parse(r->body).at("id").to_number<uint64_t>() : 0;
  }
  boost::json::value Job(uint64_t id) {
    auto r = s_.Client(s_.admin_token())->Get("/v1/jobs/" + std::to_string(id));
    return r.ok() && r->status == 200 ? Parse(r->body) : boost::json::value();
  }
  std::string State(uint64_t id) {
    auto j = Job(id);
    return j.is_object() ? std::string(j.at("state").as_string()) : "?";
  }
  // The whole of a stream, read chunk by chunk through the scheduler as `token` (default alice);
  // nothing while the job has not started.
  std::string Logs(uint64_t id, const std::string& stream = "stdout",
                   const std::string& token = {}) {
    auto state = State(id);
    if (state == "pending" || state == "starting")
      return "";
    std::string out;
    int64_t offset = 0;
    for (int i = 0; i < 100; ++i) {
      auto r = s_.Client(token.empty() ? alice_ : token)
                   ->Get("/v1/jobs/" + std::to_string(id) + "/logs?stream=" + stream +
                         "&offset=" + std::to_string(offset));
      if (!r.ok() || r->status != 200) {
        ADD_FAILURE() << (r.ok() ? r->body : r.status().ToString());
        return out;
      }
      auto v = Parse(r->body);
      out += v.at("data").as_string();
      offset = v.at("next_offset").to_number<int64_t>();
      if (v.at("eof").as_bool() || v.at("data").as_string().empty())
        break;
    }
    return out;
  }

  // The CLI's environment: a `HOME` of its own (so no config file of the person running the
  // tests is read), no `GSCHED_*` variables, plus `extra` ("NAME=value").
  std::vector<std::string> CliEnv(const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> env{"HOME=" + s_.dir() + "/home", "LANG=C"};
    if (const char* path = std::getenv("PATH"))
      env.push_back(std::string("PATH=") + path);
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
  }
  // A mode-0600 file holding `token`, one per distinct token.
  std::string TokenFile(const std::string& token) {
    auto [it, added] = token_files_.try_emplace(token, "");
    if (added) {
      it->second = s_.dir() + "/cli-token-" + std::to_string(token_files_.size());
      std::ofstream(it->second) << token << "\n";
      std::filesystem::permissions(
          it->second, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    }
    return it->second;
  }
  // Runs `gsched ARGS` exactly as given (no server or token unless `args` or `env` name them).
  CliResult CliRaw(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv{GSCHED_CLI_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string base = s_.dir() + "/cli-" + std::to_string(++cli_runs_);
    Subprocess cli(argv, base + ".out", {.err_path = base + ".err", .env = CliEnv(env)});
    int status = cli.Wait(std::chrono::seconds(20));
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ReadFile(base + ".out"),
            ReadFile(base + ".err")};
  }
  // Runs `gsched --server URL --token-file F ARGS` with `token`.
  CliResult CliAs(const std::string& token, const std::vector<std::string>& args) {
    std::vector<std::string> full{"--server", s_.url(), "--token-file", TokenFile(token)};
    full.insert(full.end(), args.begin(), args.end());
    return CliRaw(full);
  }
  // Runs the CLI as alice.
  CliResult Cli(const std::vector<std::string>& args) { return CliAs(alice_, args); }
  // Starts `gsched --server URL --token-file F ARGS` with `token` and returns while it runs.
  std::unique_ptr<BackgroundCli> StartCliAs(const std::string& token,
                                            const std::vector<std::string>& args) {
    std::vector<std::string> argv{GSCHED_CLI_BIN, "--server", s_.url(), "--token-file",
                                  TokenFile(token)};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string base = s_.dir() + "/cli-" + std::to_string(++cli_runs_);
    return std::make_unique<BackgroundCli>(argv, base + ".out", base + ".err", CliEnv());
  }

  SchedulerProcess s_;
  std::string alice_;
  std::unique_ptr<WorkerProcess> worker_;
  std::map<std::string, std::string> token_files_;
  int cli_runs_ = 0;
};

}  // namespace gsched::testing
