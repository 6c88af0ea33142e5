#include "worker/job_backends.h"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>

namespace gsched::worker {
namespace asio = boost::asio;

namespace {
// Commands queued for the supervisor thread before new ones are refused.
constexpr size_t kCommandQueueLimit = 10'000;
}  // namespace

SupervisedJobs::SupervisedJobs(std::unique_ptr<JobSupervisor> supervisor, Duration tick,
                               std::function<void()> health_check, Duration health_interval)
    : supervisor_(std::move(supervisor)),
      tick_(tick),
      health_check_(std::move(health_check)),
      health_interval_(health_interval),
      thread_([this] { Loop(); }) {}

SupervisedJobs::~SupervisedJobs() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void SupervisedJobs::Post(std::function<void()> command) {
  {
    std::lock_guard lock(mu_);
    if (commands_.size() >= kCommandQueueLimit) {
      spdlog::error("job command queue full ({} commands): dropping one", commands_.size());
      return;
    }
    commands_.push_back(std::move(command));
  }
  cv_.notify_all();
}

void SupervisedJobs::Launch(const api::Launch& launch) {
  Post([this, launch] { supervisor_->Launch(launch); });
}
void SupervisedJobs::Signal(const api::Signal& signal) {
  Post([this, signal] { supervisor_->Signal(signal); });
}
void SupervisedJobs::Kill(const api::Kill& kill) {
  Post([this, kill] { supervisor_->Kill(kill); });
}
std::vector<api::RunningAttempt> SupervisedJobs::Running() const {
  return supervisor_->Running();
}
void SupervisedJobs::MarkReported(uint64_t job, uint32_t attempt) {
  Post([this, job, attempt] { supervisor_->MarkReported(job, attempt); });
}

void SupervisedJobs::ReadLog(const api::ReadLog& request, LogAnswer answer) {
  // On the supervisor's thread: a slow disk never holds up the network thread.
  Post([this, request, answer = std::move(answer)] { answer(supervisor_->ReadLog(request)); });
}

void SupervisedJobs::Loop() {
  // The first check after one tick, once the owner has wired the health sink up.
  auto next_health = std::chrono::steady_clock::now() + tick_;
  for (;;) {
    std::deque<std::function<void()>> batch;
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, tick_, [this] { return stop_ || !commands_.empty(); });
      if (stop_)
        return;
      batch.swap(commands_);
    }
    for (auto& command : batch)
      command();
    supervisor_->Tick();
    if (health_check_ && std::chrono::steady_clock::now() >= next_health) {
      health_check_();
      next_health = std::chrono::steady_clock::now() + health_interval_;
    }
  }
}

struct SimulatedJobs::Job {
  explicit Job(asio::io_context& ioc) : timer(ioc) {}
  asio::steady_timer timer;
  api::JobState state = api::JobState::kRunning;
};

SimulatedJobs::SimulatedJobs(asio::io_context& ioc, const Clock& clock)
    : ioc_(ioc), clock_(clock) {}

SimulatedJobs::~SimulatedJobs() {
  CancelAll();
}

void SimulatedJobs::CancelAll() {
  for (auto& [k, job] : jobs_)
    job->timer.cancel();
}

namespace {
std::optional<double> SimDuration(const std::map<std::string, std::string>& env) {
  auto it = env.find("GSCHED_SIM_DURATION_S");
  if (it == env.end())
    return std::nullopt;
  double value = 0;
  auto [ptr, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), value);
  if (ec != std::errc() || value < 0)
    return std::nullopt;
  return value;
}
}  // namespace

void SimulatedJobs::Launch(const api::Launch& launch) {
  auto key = std::make_pair(launch.job, launch.attempt);
  if (jobs_.contains(key))
    return;
  for (const auto& [k, j] : jobs_)
    if (k.first == launch.job && k.second > launch.attempt)
      return;
  auto job = std::make_shared<Job>(ioc_);
  jobs_[key] = job;
  api::JobUpdate u;
  u.job = launch.job;
  u.attempt = launch.attempt;
  u.state = api::JobState::kStarting;
  sink_(u);
  u.state = api::JobState::kRunning;
  sink_(u);
  double duration = SimDuration(launch.env).value_or(SimDuration(launch.spec.env).value_or(1.0));
  bool timeout =
      launch.spec.time_limit_s && duration > static_cast<double>(*launch.spec.time_limit_s);
  if (timeout)
    duration = static_cast<double>(*launch.spec.time_limit_s);
  job->timer.expires_after(std::chrono::milliseconds(static_cast<int64_t>(duration * 1000)));
  uint64_t id = launch.job;
  uint32_t attempt = launch.attempt;
  int64_t limit = launch.spec.time_limit_s.value_or(0);
  job->timer.async_wait([this, id, attempt, timeout, limit](boost::system::error_code ec) {
    if (ec)
      return;
    if (timeout)
      End(id, attempt, api::JobState::kTimeout, std::nullopt, "SIGKILL",
          "time limit of " + std::to_string(limit) + " s reached");
    else
      End(id, attempt, api::JobState::kCompleted, 0, std::nullopt, "");
  });
}

void SimulatedJobs::End(uint64_t job, uint32_t attempt, api::JobState state,
                        std::optional<int32_t> exit_code, std::optional<std::string> signal,
                        std::string message) {
  auto it = jobs_.find({job, attempt});
  if (it == jobs_.end() || api::IsTerminal(it->second->state))
    return;
  it->second->state = state;
  it->second->timer.cancel();
  api::JobUpdate u;
  u.job = job;
  u.attempt = attempt;
  u.state = state;
  u.exit_code = exit_code;
  u.signal = std::move(signal);
  u.message = std::move(message);
  sink_(u);
}

void SimulatedJobs::Signal(const api::Signal& signal) {
  if (signal.signal == "SIGKILL" || signal.signal == "SIGTERM" || signal.signal == "SIGINT")
    End(signal.job, signal.attempt, api::JobState::kFailed, std::nullopt, signal.signal,
        "killed by " + signal.signal);
}

void SimulatedJobs::Kill(const api::Kill& kill) {
  bool preempt = kill.reason.find("preempt") != std::string::npos;
  End(kill.job, kill.attempt, preempt ? api::JobState::kPreempted : api::JobState::kCancelled,
      std::nullopt, "SIGTERM", kill.reason);
}

std::vector<api::RunningAttempt> SimulatedJobs::Running() const {
  std::vector<api::RunningAttempt> out;
  for (const auto& [k, j] : jobs_)
    if (!api::IsTerminal(j->state))
      out.push_back({k.first, k.second, j->state});
  return out;
}

void SimulatedJobs::ReadLog(const api::ReadLog& request, LogAnswer answer) {
  api::LogChunk chunk;
  chunk.request = request.request;
  chunk.job = request.job;
  chunk.attempt = request.attempt;
  chunk.stream = request.stream;
  chunk.offset = chunk.next_offset = request.offset;
  chunk.error = "a simulated node keeps no job output";
  answer(std::move(chunk));
}

}  // namespace gsched::worker
