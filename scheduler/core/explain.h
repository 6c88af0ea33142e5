// Explanations (DESIGN.md section 3, phase 8): why a job is still pending, as data. Every
// explanation has a `ReasonCode`, a one-line message for people and the numbers behind it as a
// small flat list of key/value details (no JSON here; the server encodes them). Builders below
// keep the wording and the detail keys in one place. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "scheduler/api/enums.h"
#include "scheduler/core/model.h"
#include "scheduler/core/placement.h"
#include "scheduler/core/quota.h"

namespace gsched::core {

using DetailValue = std::variant<int64_t, double, std::string>;

struct Detail {
  std::string key;
  DetailValue value;
};

struct Explanation {
  api::ReasonCode code = api::ReasonCode::kResources;
  std::string message;
  std::vector<Detail> details;

  const DetailValue* Find(std::string_view key) const;
  // The integer detail `key`; nothing when absent or not an integer.
  std::optional<int64_t> Int(std::string_view key) const;
  // The floating-point detail `key`; nothing when absent or not a double.
  std::optional<double> Double(std::string_view key) const;
  std::optional<std::string> Text(std::string_view key) const;
};

Explanation ExplainHeld();
Explanation ExplainDependency(JobId blocking, api::DependencyType type, bool never);
Explanation ExplainBudget(const Snapshot& s, uint32_t account, double granted, double consumed);
// The budget is not spent, but what is left (`remaining`, after running attempts up to their time
// limits) is less than the job may use until its time limit (`needed`).
Explanation ExplainBudgetOverrun(const Snapshot& s, uint32_t account, double granted,
                                 double consumed, double remaining, double needed);
Explanation ExplainUserLimit(std::string_view what, int64_t used, int64_t request, int64_t limit);
Explanation ExplainQuota(const Snapshot& s, uint32_t type, const QuotaCheck& q, int64_t request);
// `kResources`, `kFragmentation`, `kTopology` or `kNodeHealth`, chosen by the numbers.
Explanation ExplainCapacity(const Snapshot& s, uint32_t type, const CapacityReport& c,
                            const Shape& shape, bool fits_ignoring_topology);
Explanation ExplainReservation(JobId holder);
Explanation ExplainPriority(JobId first_ahead, std::string_view why);
Explanation ExplainAwaitingVictims(int64_t victims, Timestamp ready);
// Within the guarantee, but reclaiming it now would destroy more of the borrowers' work than the
// job's wait pays for (`preemption.reclaim_wait_factor`), and GPUs free up for it before
// `reclaim_by` (submit + `preemption.max_reclaim_wait`), when it reclaims at the latest.
Explanation ExplainReclaimDeferred(int64_t lost_gpu_ms, int64_t waited_gpu_ms, Timestamp reclaim_by,
                                   Duration max_reclaim_wait);

}  // namespace gsched::core
