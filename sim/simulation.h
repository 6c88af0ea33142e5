// The deterministic virtual-time simulation: the real scheduling core (`core::Schedule`) on a
// `ManualClock`, with fake workers that finish each job after its run time (or its time limit,
// whichever comes first) and honour preemptions after the grace period. Used by `gsched-sim` and
// by the scenario tests in `tests/sim/`.
//
// Passes are triggered by the daemon's own rule, `PassTrigger` (scheduler/common/pass_trigger.h),
// on the virtual clock: every submit, exit and requeue asks for a pass; requests are coalesced (a
// pass runs `coalesce` after the first request and at least `min_gap` after the previous pass);
// and a periodic tick every `interval` (at fixed phase from the start) asks for one too. A tick
// while nothing is pending is skipped: a pass over an empty queue plans nothing (no start, no
// preemption), so skipping it changes no outcome. Passes take no virtual time.
//
// Usage is accrued per account (decayed with the policy's half-life) and budgets are consumed as
// jobs run, on the account and every ancestor, so fair share and budgets evolve as in production.
// The usage of a preempted attempt is charged at `preemption.usage_charge` (the rest is taken
// back, from usage and budgets, when the victim exits). A preempted job is
// requeued (when `requeue_preempted`) and starts over from the beginning: traces carry no
// checkpoints.
//
// Cost: the snapshot handed to the core is kept up to date incrementally (pending and running
// vectors with swap-and-pop removal), and every event is found through ordered indexes, so one
// step costs O(accounts x GPU types + changed jobs) plus the pass itself, whatever the number of
// jobs already finished.
//
// Single-threaded and deterministic: the same inputs give the same run.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "scheduler/common/clock.h"
#include "scheduler/common/pass_trigger.h"
#include "scheduler/core/model.h"
#include "scheduler/core/policy_config.h"
#include "scheduler/core/run_time_prediction.h"
#include "scheduler/core/schedule.h"

namespace gsched::sim {

struct SimConfig {
  core::PolicyConfig policy;
  // A pass runs at least this often while jobs are pending (`scheduling.interval`).
  Duration interval = Seconds(30);
  // Coalescing of pass requests, as in the daemon: the pass runs `coalesce` after the first
  // request, and at least `min_gap` after the previous pass.
  Duration coalesce{0};
  Duration min_gap{0};
  bool requeue_preempted = true;
  // Keep the explanation of every job that stays pending (`SimJob::last_reason`). It costs a copy
  // per pending job per pass, so `gsched-sim` turns it off.
  bool record_reasons = true;
};

struct SimJob {
  core::PendingJobInfo spec;  // id, account, user, shape, time limit, class, submit time...
  Duration run_time{0};       // How long the fake worker runs it.

  enum class State : uint8_t { kFuture, kPending, kRunning, kTerminating, kDone };
  State state = State::kFuture;
  api::JobState final_state = api::JobState::kPending;
  std::vector<core::NodeAllocation> allocation;
  uint32_t gpu_type = 0;
  int32_t gpus = 0;  // GPUs of the current allocation.
  Timestamp started;
  Timestamp ends;      // When the worker reports it finished (run time or time limit).
  Timestamp deadline;  // For a preempted job: end of its grace period.
  std::optional<Timestamp> first_start;
  std::optional<Timestamp> finished;
  bool borrowing = false;
  bool runs_as_preemptible = false;
  uint32_t attempts = 0;
  uint32_t preemptions = 0;
  // Position in the snapshot's `pending` or `running` vector (by `state`); internal.
  uint32_t slot = 0;
  std::optional<core::Explanation> last_reason;
};

struct SimStats {
  int64_t cycles = 0;
  int64_t starts = 0;
  int64_t preemptions = 0;
  int64_t completed = 0;
  int64_t timeouts = 0;  // Completed by hitting the time limit (included in `completed`).
  // Plans that gave a GPU already in use or over-committed a node: must stay 0.
  int64_t violations = 0;
  // GPU-seconds of preempted attempts (from their start to their exit): the work lost, as a
  // preempted job starts over (traces carry no checkpoints).
  double preempted_gpu_seconds = 0;
};

// The shape of a pending job, for "could a waiting job use these free GPUs".
struct PendingShape {
  core::TypeMask gpu_types = core::kAnyType;
  int32_t nodes = 1;
  int32_t gpus_per_node = 1;
  int32_t cpus_per_node = 0;
  int64_t memory_mib_per_node = 0;
  auto operator<=>(const PendingShape&) const = default;
};
PendingShape ShapeOfPending(const core::PendingJobInfo& job);

// What is in use on one node (derived from the running jobs).
using core::NodeUse;

class Simulation {
 public:
  // `cluster`: GPU types, topology, accounts and users; its job lists are ignored.
  Simulation(core::Snapshot cluster, SimConfig config, Timestamp start);

  // Queues a job that arrives at `job.spec.submit_time` (which may be in the past: now).
  void Submit(core::PendingJobInfo spec, Duration run_time);

  // Advances virtual time, running passes, until `until`.
  void RunUntil(Timestamp until);
  // Until no job is pending or running, or `limit`, or nothing can change any more (nothing runs,
  // nothing is left to arrive and the last pass started nothing: the rest never starts).
  void RunUntilIdle(Timestamp limit);
  // Nothing left to do: no job to arrive, pending or running; or stalled (nothing runs, nothing is
  // left to arrive, and the last pass started nothing).
  bool Idle() const;

  Timestamp Now() const { return clock_.Now(); }
  const SimJob& Job(JobId id) const { return jobs_.at(id.value()); }
  const std::map<uint64_t, SimJob>& jobs() const { return jobs_; }
  const SimStats& stats() const { return stats_; }
  // Raw GPU-seconds delivered to each account (not decayed, not normalised), since the start.
  const std::vector<double>& GpuSeconds() const { return gpu_seconds_; }
  // The same in normalised GPU-seconds (x the GPU type's cost), undecayed.
  const std::vector<double>& NormalisedGpuSeconds() const { return normalised_seconds_; }
  // The snapshot the next pass will see (topology, accounts, pending and running jobs).
  const core::Snapshot& cluster() const { return snapshot_; }
  uint32_t AccountIndex(const std::string& name) const;

  int64_t TotalGpus() const { return total_gpus_; }
  int64_t BusyGpus() const { return busy_gpus_; }
  size_t PendingCount() const { return snapshot_.pending.size(); }
  // Jobs submitted whose submit time has come (pending, running or done).
  size_t ArrivedCount() const { return jobs_.size() - arrivals_.size(); }
  size_t RunningCount() const { return snapshot_.running.size(); }
  const std::vector<NodeUse>& node_use() const { return node_use_; }
  // Normalised GPUs (GPUs x cost) that `account`'s running jobs hold now.
  double RunningNormalisedGpus(uint32_t account) const;
  // Normalised GPUs that `account`'s pending jobs ask for, each at the cost of its cheapest
  // acceptable GPU type.
  double PendingNormalisedGpus(uint32_t account) const { return pending_normalised_[account]; }
  // Raw GPU-seconds delivered on each GPU type, since the start.
  const std::vector<double>& TypeGpuSeconds() const { return type_gpu_seconds_; }
  // Pending jobs by shape (count of each), kept up to date as jobs arrive and start.
  // The normalised GPUs one of `job`'s GPUs counts for while it waits (its cheapest type).
  double PendingCost(const core::PendingJobInfo& job) const;

  // Called after every pass, once its plan is applied (for metrics, traces and tests).
  std::function<void(const core::Plan&, Timestamp)> on_plan;
  // Called before the clock moves from `from` to `to`; the state stays as it is over [from, to).
  std::function<void(Timestamp from, Timestamp to)> on_advance;

 private:
  void Enqueue(SimJob& job);
  void RemovePending(SimJob& job);
  void AddRunning(SimJob& job, Duration time_limit);
  void RemoveRunning(SimJob& job);
  void SetExit(uint64_t id, const SimJob& job, std::optional<int64_t> old_key);
  void RequestPass();
  void RefreshSnapshot();
  void Cycle();
  void Run(Timestamp until, bool stop_when_idle);
  void Advance(Timestamp to);
  void FinishDue();
  // Adds `normalised_gpus` held over [from, to) to the budget of `account` and of every ancestor,
  // the part within each period (negative: a refund).
  void ChargeBudgets(uint32_t account, double normalised_gpus, Timestamp from, Timestamp to);
  Timestamp NextEvent() const;
  Timestamp NextTickAfter(Timestamp t) const;

  core::Snapshot snapshot_;
  SimConfig config_;
  ManualClock clock_;
  Timestamp start_;
  // When the next pass runs; passes take no virtual time, so none is ever running between steps.
  PassTrigger trigger_;
  std::map<uint64_t, SimJob> jobs_;
  std::multimap<int64_t, uint64_t> arrivals_;                      // submit time (ms) -> job id
  std::set<std::pair<int64_t, uint64_t>> exits_;                   // (exit time ms, job id)
  std::deque<std::pair<Timestamp, uint32_t>> recent_preemptions_;  // (time, account)
  std::unordered_map<uint64_t, int32_t> array_running_;            // array parent -> running
  std::vector<NodeUse> node_use_;
  // Running GPUs per (account, GPU type), row-major by account.
  std::vector<int64_t> running_gpus_;
  std::vector<double> gpu_seconds_;
  std::vector<double> normalised_seconds_;
  std::vector<double> pending_normalised_;
  std::vector<double> type_gpu_seconds_;
  // Users' recent run times against their limits, for the estimated starts (as the daemon keeps).
  core::RunTimeHistory run_times_;
  int64_t total_gpus_ = 0;
  int64_t busy_gpus_ = 0;
  Timestamp next_tick_;
  bool last_pass_started_ = true;
  SimStats stats_;
};

}  // namespace gsched::sim
