// `PolicyConfig`: every knob of the scheduling pass (DESIGN.md sections 3 and 9), as a plain struct
// with defaults. A loader outside `scheduler/core` fills it from `scheduler.yaml`; the core never
// parses anything. Immutable once handed to `Schedule()`. Every default comes from
// scheduler/common/policy_defaults.h, as the daemon's `config::SchedulerConfig` does.
#pragma once

#include <array>
#include <cstdint>

#include "scheduler/common/clock.h"
#include "scheduler/common/policy_defaults.h"

namespace gsched::core {

// Weights of the multifactor priority; each factor lies in [0, 1].
struct PriorityWeights {
  double fairshare = policy_defaults::kWeightFairshare;
  double age = policy_defaults::kWeightAge;
  // The size factor favours large jobs (requested GPUs / cluster GPUs), as Slurm's default does:
  // without it a wide gang keeps losing to the many small jobs submitted after it.
  double size = policy_defaults::kWeightSize;
  double priority_class = policy_defaults::kWeightClass;
  bool operator==(const PriorityWeights&) const = default;
};

struct BackfillConfig {
  bool enabled = policy_defaults::kBackfillEnabled;
  // How many of the highest blocked jobs get a reservation per pass.
  int32_t depth = policy_defaults::kBackfillDepth;
  bool operator==(const BackfillConfig&) const = default;
};

struct PreemptionConfig {
  bool enabled = policy_defaults::kPreemptionEnabled;
  // A running job younger than this is never a victim.
  Duration min_runtime = policy_defaults::kPreemptionMinRuntime;
  // Fraction of a preempted attempt's usage charged to its account (applied by the accountant,
  // carried here so that the whole policy lives in one struct).
  double usage_charge = policy_defaults::kPreemptionUsageCharge;
  int32_t max_per_cycle = policy_defaults::kPreemptionMaxPerCycle;
  // Per victim account, counted over the last hour (the snapshot carries the recent count).
  int32_t max_per_account_per_hour = policy_defaults::kPreemptionMaxPerAccountPerHour;
  // A reclaim must pay for the work it destroys: it goes ahead only once the reclaiming job has
  // waited, in GPU-seconds (its GPUs x the time since it was submitted), at least this factor
  // times the GPU-seconds its victims lose (each victim's GPUs x its time since start or last
  // checkpoint). 0: reclaim at once, whatever it costs.
  double reclaim_wait_factor = policy_defaults::kPreemptionReclaimWaitFactor;
  // ... but a job that has waited this long reclaims whatever it costs, and so does one for which
  // no GPUs free up within this long of its submission without a reclaim.
  Duration max_reclaim_wait = policy_defaults::kPreemptionMaxReclaimWait;
  bool operator==(const PreemptionConfig&) const = default;
};

// Per priority class (`high`, `normal`, `preemptible`, in enum order).
struct ClassTimeLimits {
  Duration default_limit = policy_defaults::kNormalLimits.default_limit;
  Duration max_limit = policy_defaults::kNormalLimits.max_limit;
  bool operator==(const ClassTimeLimits&) const = default;
};

struct PolicyConfig {
  PriorityWeights weights;
  // Waiting this long gives the full age factor.
  Duration age_max = policy_defaults::kAgeMax;
  Duration half_life = policy_defaults::kHalfLife;
  BackfillConfig backfill;
  PreemptionConfig preemption;
  std::array<ClassTimeLimits, 3> class_limits = {{
      {policy_defaults::kHighLimits.default_limit, policy_defaults::kHighLimits.max_limit},
      {policy_defaults::kNormalLimits.default_limit, policy_defaults::kNormalLimits.max_limit},
      {policy_defaults::kPreemptibleLimits.default_limit,
       policy_defaults::kPreemptibleLimits.max_limit},
  }};
  // At most this many starts per plan; 0 means unlimited.
  int32_t max_starts_per_cycle = policy_defaults::kMaxStartsPerCycle;
  bool operator==(const PolicyConfig&) const = default;
};

}  // namespace gsched::core
