// The default of every scheduling-policy knob, in one place: `config::SchedulerConfig` (what the
// daemon and `gsched-sim --config` read from `scheduler.yaml`) and `core::PolicyConfig` (what the
// core, the simulator without `--config`, the scenario tests and the benchmarks start from) both
// take their defaults from here, so the two cannot drift apart. `config/scheduler.yaml` documents
// the same values; tests/sim/policy_defaults_test.cpp checks that the daemon's defaults, the
// simulator's and the documented ones are equal.
//
// Header-only constants; no threading concerns.
#pragma once

#include <cstdint>

#include "scheduler/common/clock.h"

namespace gsched::policy_defaults {

// `priority.weights`.
inline constexpr int64_t kWeightFairshare = 10'000;
inline constexpr int64_t kWeightAge = 1'000;
inline constexpr int64_t kWeightSize = 1'000;
inline constexpr int64_t kWeightClass = 5'000;
// `priority.age_max`, `fairshare.half_life`.
inline constexpr Duration kAgeMax = Seconds(7 * 86400);
inline constexpr Duration kHalfLife = Seconds(7 * 86400);
// `scheduling.backfill`, `scheduling.max_starts_per_cycle`.
inline constexpr bool kBackfillEnabled = true;
inline constexpr int64_t kBackfillDepth = 100;
inline constexpr int64_t kMaxStartsPerCycle = 100'000;
// `preemption`.
inline constexpr bool kPreemptionEnabled = true;
inline constexpr Duration kPreemptionMinRuntime = Seconds(600);
inline constexpr double kPreemptionUsageCharge = 0.0;
inline constexpr int64_t kPreemptionMaxPerCycle = 64;
inline constexpr int64_t kPreemptionMaxPerAccountPerHour = 256;
inline constexpr double kPreemptionReclaimWaitFactor = 1.0;
inline constexpr Duration kPreemptionMaxReclaimWait = Seconds(1800);
// `priority.classes`: default and maximum time limits of `high`, `normal` and `preemptible`.
struct ClassLimits {
  Duration default_limit;
  Duration max_limit;
};
inline constexpr ClassLimits kHighLimits{Seconds(3600), Seconds(2 * 86400)};
inline constexpr ClassLimits kNormalLimits{Seconds(4 * 3600), Seconds(7 * 86400)};
inline constexpr ClassLimits kPreemptibleLimits{Seconds(4 * 3600), Seconds(7 * 86400)};

// Not configurable: how the daemon coalesces requests for a pass, which the simulator replays. A
// pass starts `kPassCoalesce` after the first request and at least `kPassMinGap` after the previous
// pass ended, so that a stream of submissions costs a few passes per second rather than one
// snapshot per submission.
inline constexpr Duration kPassCoalesce = std::chrono::milliseconds(10);
inline constexpr Duration kPassMinGap = std::chrono::milliseconds(100);

}  // namespace gsched::policy_defaults
