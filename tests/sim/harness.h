// The deterministic simulation harness: the real scheduling core on a `ManualClock`, with fake
// workers that finish each job after its run time (or its time limit, whichever comes first) and
// honour preemptions after the grace period. Cycles are triggered like the daemon's: on submits
// and finishes (coalesced to one cycle per instant) and at least every `interval`. Usage is
// accrued per account (decayed with the policy's half-life) and budgets are consumed, so fair
// share and budgets evolve as in production. The usage of a preempted attempt is charged at
// `preemption.usage_charge` (the rest is taken back when the victim exits).
//
// Reused by the scenario tests and, later, by `gsched-sim`. Single-threaded and deterministic:
// the same inputs give the same run.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "scheduler/common/clock.h"
#include "scheduler/core/model.h"
#include "scheduler/core/policy_config.h"
#include "scheduler/core/schedule.h"

namespace gsched::sim {

struct SimConfig {
  core::PolicyConfig policy;
  Duration interval = Seconds(30);
  bool requeue_preempted = true;
};

struct SimJob {
  core::PendingJobInfo spec;  // id, account, user, shape, time limit, class, submit time...
  Duration run_time{0};       // How long the fake worker runs it.

  enum class State : uint8_t { kFuture, kPending, kRunning, kTerminating, kDone };
  State state = State::kFuture;
  api::JobState final_state = api::JobState::kPending;
  std::vector<core::NodeAllocation> allocation;
  uint32_t gpu_type = 0;
  Timestamp started;
  Timestamp ends;      // When the worker reports it finished (run time or time limit).
  Timestamp deadline;  // For a preempted job: end of its grace period.
  std::optional<Timestamp> first_start;
  std::optional<Timestamp> finished;
  bool borrowing = false;
  bool runs_as_preemptible = false;
  uint32_t attempts = 0;
  double attempt_usage = 0;  // Normalised GPU-seconds of the current attempt.
  uint32_t preemptions = 0;
  std::optional<core::Explanation> last_reason;
};

struct SimStats {
  int64_t cycles = 0;
  int64_t starts = 0;
  int64_t preemptions = 0;
  int64_t completed = 0;
  // Plans that gave a GPU already in use or over-committed a node: must stay 0.
  int64_t violations = 0;
};

class Simulation {
 public:
  // `cluster`: GPU types, topology, accounts and users; its job lists are ignored.
  Simulation(core::Snapshot cluster, SimConfig config, Timestamp start);

  // Queues a job that arrives at `job.spec.submit_time` (which may be in the past: now).
  void Submit(core::PendingJobInfo spec, Duration run_time);

  // Advances virtual time, running cycles, until `until`.
  void RunUntil(Timestamp until);
  // Until no job is pending or running, or `limit`.
  void RunUntilIdle(Timestamp limit);

  Timestamp Now() const { return clock_.Now(); }
  const SimJob& Job(JobId id) const { return jobs_.at(id.value()); }
  const std::map<uint64_t, SimJob>& jobs() const { return jobs_; }
  const SimStats& stats() const { return stats_; }
  // Raw GPU-seconds delivered to each account (not decayed, not normalised), since the start.
  const std::vector<double>& GpuSeconds() const { return gpu_seconds_; }
  const core::Snapshot& cluster() const { return cluster_; }
  uint32_t AccountIndex(const std::string& name) const;

  // Called after every cycle with the plan (for traces and tests).
  std::function<void(const core::Plan&, Timestamp)> on_plan;

 private:
  core::Snapshot BuildSnapshot() const;
  void Cycle();
  void Accrue(Timestamp to);
  void FinishDue();
  Timestamp NextEvent() const;

  core::Snapshot cluster_;
  SimConfig config_;
  ManualClock clock_;
  std::map<uint64_t, SimJob> jobs_;
  std::multimap<int64_t, uint64_t> arrivals_;                      // submit time -> job id
  std::deque<std::pair<Timestamp, uint32_t>> recent_preemptions_;  // (time, account)
  std::vector<double> gpu_seconds_;
  Timestamp last_cycle_;
  bool dirty_ = true;
  SimStats stats_;
};

}  // namespace gsched::sim
