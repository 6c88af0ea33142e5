#include "scheduler/core/priority.h"

#include <algorithm>

namespace gsched::core {

double ClassFactor(api::PriorityClass c) {
  switch (c) {
    case api::PriorityClass::kHigh:
      return 1.0;
    case api::PriorityClass::kNormal:
      return 0.5;
    case api::PriorityClass::kPreemptible:
      return 0.0;
  }
  return 0.0;
}

PriorityFactors ComputeFactors(const PendingJobInfo& job, double fairshare_factor,
                               int64_t cluster_gpus, api::PriorityClass effective_class,
                               Timestamp now, Duration age_max) {
  PriorityFactors f;
  f.fairshare = fairshare_factor;
  const int64_t waited = std::max<int64_t>(0, (now - job.submit_time).count());
  f.age = age_max.count() > 0
              ? std::min(1.0, static_cast<double>(waited) / static_cast<double>(age_max.count()))
              : 1.0;
  f.size = cluster_gpus > 0 ? std::min(1.0, static_cast<double>(RequestedGpus(job)) /
                                                static_cast<double>(cluster_gpus))
                            : 0.0;
  f.priority_class = ClassFactor(effective_class);
  return f;
}

double WeightedPriority(const PriorityFactors& f, const PriorityWeights& w, double admin) {
  return w.fairshare * f.fairshare + w.age * f.age + w.size * f.size +
         w.priority_class * f.priority_class + admin;
}

}  // namespace gsched::core
