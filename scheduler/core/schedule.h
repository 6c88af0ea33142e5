// `Schedule()`: one scheduling pass, every phase of DESIGN.md section 3 as a pure function of a
// snapshot, the policy and `now`. The daemon, the simulator and the benchmarks all call this very
// function. It reads no clock, does no I/O, and allocates only for its own bookkeeping and the
// plan. The caller validates the snapshot (`ValidateSnapshot`) once when it builds it.
//
// The plan: jobs to start (with node -> GPU allocations, the attempt number and whether they
// borrow or run as preemptible), jobs to preempt (with the grace period and for which job),
// reservations of the backfill and of reclaiming jobs, and a reason for every pending job that
// does not start. Explanations are shared between the jobs that have the same reason (a queue of
// 100,000 jobs of a few dozen shapes has a few dozen distinct reasons); `PendingReason` points at
// one and adds what is per job (`jobs_ahead`, `estimated_start`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "scheduler/core/backfill.h"
#include "scheduler/core/explain.h"
#include "scheduler/core/model.h"
#include "scheduler/core/policy_config.h"

namespace gsched::core {

struct JobStart {
  JobId job;
  Attempt attempt;  // Previous attempt + 1.
  uint32_t account = 0;
  uint32_t gpu_type = 0;
  std::vector<NodeAllocation> nodes;
  Duration time_limit{0};  // After class defaults and maxima.
  Timestamp end;           // now + time_limit.
  bool borrowing = false;
  bool runs_as_preemptible = false;  // The account's budget is spent.
};

struct PlannedPreemption {
  JobId victim;
  Attempt attempt;
  std::string reason;
  Duration grace{0};
  JobId for_job;
};

struct PendingReason {
  JobId job;
  uint32_t explanation = 0;  // Index into `Plan::explanations`.
  // Eligible jobs ranked above this one (0 for jobs that are not eligible at all).
  int64_t jobs_ahead = 0;
  std::optional<Timestamp> estimated_start;
};

struct PlanStats {
  int64_t pending = 0;
  int64_t eligible = 0;
  int64_t started = 0;
  int64_t reserved = 0;
  int64_t preempted = 0;
  int64_t placement_attempts = 0;
  int64_t shape_cache_hits = 0;
};

struct Plan {
  std::vector<JobStart> starts;
  std::vector<PlannedPreemption> preemptions;
  std::vector<Reservation> reservations;
  std::vector<Explanation> explanations;
  std::vector<PendingReason> pending;
  PlanStats stats;

  // The full explanation of one pending job; for `priority` it adds `jobs_ahead` to the details
  // and the message.
  Explanation ExplanationFor(const PendingReason& r) const;
  // Linear search; for tests and tools.
  const PendingReason* FindPending(JobId job) const;
  const JobStart* FindStart(JobId job) const;
};

// The explanation of one pending job, `r.explanation` indexing `explanations` (a plan's).
Explanation ExplanationOf(const std::vector<Explanation>& explanations, const PendingReason& r);

// The time limit a job runs under: its own, or its class default when 0, at most the class max.
Duration EffectiveTimeLimit(Duration own, api::PriorityClass priority_class,
                            const PolicyConfig& config);
inline Duration EffectiveTimeLimit(const PendingJobInfo& job, const PolicyConfig& config) {
  return EffectiveTimeLimit(job.time_limit, job.priority_class, config);
}

Plan Schedule(const Snapshot& snapshot, const PolicyConfig& config, Timestamp now);

}  // namespace gsched::core
