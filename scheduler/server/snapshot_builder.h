// `BuildSnapshot`: the core's input, built from the scheduler's state (DESIGN.md section 3: "a
// pure function over an immutable snapshot"): the nodes the core may place on, the account tree
// with usage, budgets and recent preemptions, the pending jobs in id order, the running jobs.
//
// Owns nothing: reads the parts of `ClusterState` it is handed, never writes them. No I/O.
// Threading: on the service's state thread (the snapshot it returns then goes to the scheduling
// thread by value).
#pragma once

#include <deque>
#include <map>
#include <string>
#include <utility>

#include "config/scheduler_config.h"
#include "scheduler/api/types.h"
#include "scheduler/common/clock.h"
#include "scheduler/core/model.h"
#include "scheduler/core/policy_config.h"
#include "scheduler/core/run_time_prediction.h"
#include "scheduler/server/job_records.h"
#include "scheduler/server/node_registry.h"
#include "scheduler/server/usage_book.h"

namespace gsched::server {

// The cost rate of a GPU type (1.0 for a type the configuration does not name).
double GpuCost(const config::SchedulerConfig& config, const std::string& type);
// The cost rate of the GPUs of `job`'s allocation (its first node's type; 1.0 when unknown).
double AllocationCost(const config::SchedulerConfig& config, const NodeRegistry& nodes,
                      const api::Job& job);

struct SnapshotSources {
  const config::SchedulerConfig& config;
  const core::PolicyConfig& policy;
  const std::map<std::string, api::Account>& accounts;
  const NodeRegistry& nodes;
  const JobRecords& jobs;
  const UsageBook& usage;
  const std::deque<std::pair<Timestamp, std::string>>& recent_preemptions;  // (time, account).
  const core::RunTimeHistory& run_times;  // Users' recent run times, for the estimated starts.

  double AllocationCost(const api::Job& job) const {
    return server::AllocationCost(config, nodes, job);
  }
};

core::Snapshot BuildSnapshot(const SnapshotSources& in, Timestamp now);

}  // namespace gsched::server
