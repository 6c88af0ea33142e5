// The multifactor priority (DESIGN.md section 3, phase 2):
//   priority = w_fairshare*F + w_age*A + w_size*S + w_class*C + admin adjustment
// with F the account's fair-share factor, A = min(1, waited / age_max), S = requested GPUs /
// cluster GPUs (large jobs favoured, as Slurm's default, so a gang is not outranked by the small
// jobs behind it), C = 1.0 for `high`, 0.5 for `normal`, 0 for `preemptible`. Equal priorities go
// to the earlier submit, then the lower id. Pure.
#pragma once

#include <cstdint>

#include "scheduler/core/model.h"
#include "scheduler/core/policy_config.h"

namespace gsched::core {

struct PriorityFactors {
  double fairshare = 0;
  double age = 0;
  double size = 0;
  double priority_class = 0;
};

double ClassFactor(api::PriorityClass c);

PriorityFactors ComputeFactors(const PendingJobInfo& job, double fairshare_factor,
                               int64_t cluster_gpus, api::PriorityClass effective_class,
                               Timestamp now, Duration age_max);

double WeightedPriority(const PriorityFactors& f, const PriorityWeights& w, double admin);

// Strict order of the pending queue: higher priority, then earlier submit, then lower id.
struct QueueKey {
  double priority = 0;
  Timestamp submit;
  JobId id;
  friend bool RanksBefore(const QueueKey& a, const QueueKey& b) {
    if (a.priority != b.priority)
      return a.priority > b.priority;
    if (a.submit != b.submit)
      return a.submit < b.submit;
    return a.id < b.id;
  }
};

}  // namespace gsched::core
