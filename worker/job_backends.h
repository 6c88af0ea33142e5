// The two `JobBackend`s of the agent.
//
// `SupervisedJobs` runs real jobs through a `JobSupervisor` on its own thread: the agent's
// network thread only queues commands (bounded), so forks, runtime CLIs and file writes never
// block it. The thread ticks the supervisor every `tick` and runs the periodic GPU health check.
//
// `SimulatedJobs` is a virtual node for `--simulate`: nothing runs; a launched attempt reports
// starting and running at once and ends after `GSCHED_SIM_DURATION_S` seconds (from the launch's
// env, else the spec's env, else 1 s), or `timeout` at its time limit when that comes first, on a
// timer of the shared io_context.
//
// Threading: `SupervisedJobs` methods are thread-safe; `SimulatedJobs` lives on its io_context's
// thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "worker/agent.h"
#include "worker/supervisor.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace gsched::worker {

class SupervisedJobs final : public JobBackend {
 public:
  // `health_check` runs every `health_interval` on the backend's thread (may be empty).
  SupervisedJobs(std::unique_ptr<JobSupervisor> supervisor, Duration tick,
                 std::function<void()> health_check, Duration health_interval);
  ~SupervisedJobs() override;

  void Launch(const api::Launch& launch) override;
  void Signal(const api::Signal& signal) override;
  void Kill(const api::Kill& kill) override;
  std::vector<api::RunningAttempt> Running() const override;
  void MarkReported(uint64_t job, uint32_t attempt) override;
  void ReadLog(const api::ReadLog& request, LogAnswer answer) override;

  JobSupervisor& supervisor() { return *supervisor_; }

 private:
  void Post(std::function<void()> command);
  void Loop();

  std::unique_ptr<JobSupervisor> supervisor_;
  Duration tick_;
  std::function<void()> health_check_;
  Duration health_interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> commands_;
  bool stop_ = false;
  std::thread thread_;
};

class SimulatedJobs final : public JobBackend {
 public:
  using Sink = std::function<void(const api::JobUpdate&)>;
  SimulatedJobs(boost::asio::io_context& ioc, const Clock& clock);
  ~SimulatedJobs() override;
  // Set before the first launch.
  void SetSink(Sink sink) { sink_ = std::move(sink); }

  void Launch(const api::Launch& launch) override;
  void Signal(const api::Signal& signal) override;
  void Kill(const api::Kill& kill) override;
  std::vector<api::RunningAttempt> Running() const override;
  void MarkReported(uint64_t, uint32_t) override {}
  // Simulated jobs write nothing: the answer says so.
  void ReadLog(const api::ReadLog& request, LogAnswer answer) override;
  // Cancels every timer without reporting (shutdown), so that the io_context can run out of work.
  void CancelAll();

  struct Job;

 private:
  void End(uint64_t job, uint32_t attempt, api::JobState state, std::optional<int32_t> exit_code,
           std::optional<std::string> signal, std::string message);

  boost::asio::io_context& ioc_;
  const Clock& clock_;
  Sink sink_;
  std::map<std::pair<uint64_t, uint32_t>, std::shared_ptr<Job>> jobs_;
};

}  // namespace gsched::worker
