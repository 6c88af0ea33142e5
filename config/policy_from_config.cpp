#include "config/policy_from_config.h"

namespace gsched::config {

core::PolicyConfig PolicyFromConfig(const SchedulerConfig& config) {
  core::PolicyConfig p;
  p.weights.fairshare = static_cast<double>(config.priority.weights.fairshare);
  p.weights.age = static_cast<double>(config.priority.weights.age);
  p.weights.size = static_cast<double>(config.priority.weights.size);
  p.weights.priority_class = static_cast<double>(config.priority.weights.job_class);
  p.age_max = config.priority.age_max;
  p.half_life = config.fairshare.half_life;
  p.backfill.enabled = config.scheduling.backfill.enabled;
  p.backfill.depth = static_cast<int32_t>(config.scheduling.backfill.depth);
  p.preemption.enabled = config.preemption.enabled;
  p.preemption.min_runtime = config.preemption.min_runtime;
  p.preemption.usage_charge = config.preemption.usage_charge;
  p.preemption.max_per_cycle = static_cast<int32_t>(config.preemption.max_per_cycle);
  p.preemption.max_per_account_per_hour =
      static_cast<int32_t>(config.preemption.max_per_account_per_hour);
  p.preemption.reclaim_wait_factor = config.preemption.reclaim_wait_factor;
  p.preemption.max_reclaim_wait = config.preemption.max_reclaim_wait;
  for (size_t c = 0; c < 3; ++c) {
    p.class_limits[c].default_limit = config.priority.classes[c].default_time_limit;
    p.class_limits[c].max_limit = config.priority.classes[c].max_time_limit;
  }
  p.max_starts_per_cycle = static_cast<int32_t>(config.scheduling.max_starts_per_cycle);
  return p;
}

}  // namespace gsched::config
