// `PolicyConfig`: every knob of the scheduling pass (DESIGN.md sections 3 and 9), as a plain struct
// with defaults. A loader outside `scheduler/core` fills it from `scheduler.yaml`; the core never
// parses anything. Immutable once handed to `Schedule()`.
#pragma once

#include <array>
#include <cstdint>

#include "scheduler/common/clock.h"

namespace gsched::core {

// Weights of the multifactor priority; each factor lies in [0, 1].
struct PriorityWeights {
  double fairshare = 10000;
  double age = 1000;
  // The size factor favours large jobs (requested GPUs / cluster GPUs), as Slurm's default does:
  // without it a wide gang keeps losing to the many small jobs submitted after it.
  double size = 1000;
  double priority_class = 5000;
};

struct BackfillConfig {
  bool enabled = true;
  // How many of the highest blocked jobs get a reservation per pass.
  int32_t depth = 64;
};

struct PreemptionConfig {
  bool enabled = true;
  // A running job younger than this is never a victim.
  Duration min_runtime = Seconds(600);
  // Fraction of a preempted attempt's usage charged to its account (applied by the accountant,
  // carried here so that the whole policy lives in one struct).
  double usage_charge = 0.0;
  int32_t max_per_cycle = 64;
  // Per victim account, counted over the last hour (the snapshot carries the recent count).
  int32_t max_per_account_per_hour = 100;
};

// Per priority class (`high`, `normal`, `preemptible`, in enum order).
struct ClassTimeLimits {
  Duration default_limit = Seconds(4 * 3600);
  Duration max_limit = Seconds(7 * 24 * 3600);
};

struct PolicyConfig {
  PriorityWeights weights;
  // Waiting this long gives the full age factor.
  Duration age_max = Seconds(7 * 24 * 3600);
  Duration half_life = Seconds(7 * 24 * 3600);
  BackfillConfig backfill;
  PreemptionConfig preemption;
  std::array<ClassTimeLimits, 3> class_limits{};
  // At most this many starts per plan; 0 means unlimited.
  int32_t max_starts_per_cycle = 0;
};

}  // namespace gsched::core
