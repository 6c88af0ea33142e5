#include "scheduler/core/usage.h"

#include <algorithm>
#include <cmath>

namespace gsched::core {

double DecayedUsage(const UsageRecord& u, Timestamp now, Duration half_life) {
  if (half_life.count() <= 0 || now <= u.at)
    return u.value;
  const double halvings =
      static_cast<double>((now - u.at).count()) / static_cast<double>(half_life.count());
  return u.value * std::exp2(-halvings);
}

UsageRecord AddUsage(const UsageRecord& u, double amount, Timestamp now, Duration half_life) {
  return {DecayedUsage(u, now, half_life) + amount, std::max(now, u.at)};
}

double AttemptUsage(double gpus, double cost, Timestamp from, Timestamp to, double rate) {
  const double seconds = std::max(0.0, std::chrono::duration<double>(to - from).count());
  return NormalisedGpuSeconds(gpus, cost, seconds) * rate;
}

double BudgetCharge(double normalised_gpus, Timestamp from, Timestamp to, Timestamp start,
                    Timestamp end) {
  const Timestamp lo = std::max(from, start), hi = std::min(to, end);
  if (hi <= lo)
    return 0.0;
  return normalised_gpus * static_cast<double>((hi - lo).count()) / 3'600'000.0;
}

}  // namespace gsched::core
