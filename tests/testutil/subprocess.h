// A child process for integration tests: spawned with posix_spawn, stdout and stderr to a file
// (or stderr to a file of its own), stopped by PID only (SIGTERM or SIGKILL) and always reaped.
// The destructor kills what is left.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

#include "tests/testutil/wait.h"

namespace gsched {

struct SpawnOptions {
  // Where stderr goes; empty: into the log with stdout.
  std::string err_path;
  // The child's whole environment as "NAME=value" entries; absent: this process's.
  std::optional<std::vector<std::string>> env;
};

class Subprocess {
 public:
  Subprocess(std::vector<std::string> argv, const std::string& log_path, SpawnOptions options = {})
      : log_path_(log_path) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (options.err_path.empty()) {
      posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    } else {
      posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, options.err_path.c_str(),
                                       O_WRONLY | O_CREAT | O_APPEND, 0644);
    }
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(a.data());
    args.push_back(nullptr);
    std::vector<char*> envp;
    if (options.env) {
      for (auto& e : *options.env)
        envp.push_back(e.data());
      envp.push_back(nullptr);
    }
    if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(),
                    options.env ? envp.data() : environ) != 0)
      pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Subprocess() {
    if (running())
      Kill(SIGKILL);
  }
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !exit_status_; }

  // Sends `sig` and waits for the exit; returns the wait status.
  int Kill(int sig) {
    if (!running())
      return exit_status_.value_or(-1);
    ::kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    exit_status_ = status;
    return status;
  }

  // Waits up to `timeout` for the process to exit by itself, then kills it; the wait status.
  int Wait(std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
      int status = 0;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || r < 0) {
        exit_status_ = r == pid_ ? status : -1;
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline)
        return Kill(SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return exit_status_.value_or(-1);
  }

  std::string Log() const {
    std::ifstream in(log_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<int> exit_status_;
};

}  // namespace gsched
