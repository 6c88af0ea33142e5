// Helpers shared by the worker tests: temp directories, a recording update sink and bounded
// waits that drive `JobSupervisor::Tick`.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "scheduler/api/worker_messages.h"
#include "tests/testutil/wait.h"

namespace gsched::worker::testing {

inline std::string ShimBinary() {
  return std::string(GSCHED_BIN_DIR) + "/gsched-worker";
}

// A fresh directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("gsched_worker_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    KillLeftoverJobs();
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }

 private:
  // A failed test may leave jobs waiting for a file that is about to vanish: kill every job whose
  // `pid` file is under this directory (the job's process group, then its shim), by pid.
  void KillLeftoverJobs() {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(path_, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (it->path().filename() != "pid" ||
          std::filesystem::exists(it->path().parent_path() / "exit"))
        continue;
      std::ifstream in(it->path());
      long job = 0, job_ticks = 0, shim = 0;
      if (in >> job >> job_ticks >> shim && job > 0) {
        ::kill(static_cast<pid_t>(-job), SIGKILL);
        if (shim > 0)
          ::kill(static_cast<pid_t>(shim), SIGKILL);
      }
    }
  }

  std::filesystem::path path_;
};

// Records job updates; thread-safe.
class UpdateLog {
 public:
  void Add(const api::JobUpdate& u) {
    std::lock_guard lock(mu_);
    updates_.push_back(u);
  }
  std::vector<api::JobUpdate> All() const {
    std::lock_guard lock(mu_);
    return updates_;
  }
  std::vector<api::JobUpdate> For(uint64_t job, uint32_t attempt) const {
    std::lock_guard lock(mu_);
    std::vector<api::JobUpdate> out;
    for (const auto& u : updates_)
      if (u.job == job && u.attempt == attempt)
        out.push_back(u);
    return out;
  }
  std::optional<api::JobUpdate> Terminal(uint64_t job, uint32_t attempt) const {
    for (const auto& u : For(job, attempt))
      if (api::IsTerminal(u.state))
        return u;
    return std::nullopt;
  }

 private:
  mutable std::mutex mu_;
  std::vector<api::JobUpdate> updates_;
};

// Runs an io_context on a thread until it runs out of work; `Finish` waits for that, bounded: after
// `timeout` it stops the io_context.
class IoThread {
 public:
  template <typename Ioc>
  explicit IoThread(Ioc& ioc)
      : stop_([&ioc] { ioc.stop(); }), thread_([this, &ioc] {
          ioc.run();
          std::lock_guard lock(mu_);
          done_ = true;
          cv_.notify_all();
        }) {}
  ~IoThread() { Finish(); }
  void Finish(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    if (!thread_.joinable())
      return;
    {
      std::unique_lock lock(mu_);
      if (!cv_.wait_for(lock, timeout, [this] { return done_; }))
        stop_();
    }
    thread_.join();
  }

 private:
  std::function<void()> stop_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace gsched::worker::testing
