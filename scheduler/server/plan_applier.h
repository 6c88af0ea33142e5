// `PlanApplier`: plan -> validate -> apply (DESIGN.md section 3, STYLE.md "the shape"). The plan
// is the truth about what to start and how: each start runs on the nodes and GPUs, with the CPUs
// and memory, under the time limit and on the GPU type the plan names. What the applier checks is
// only whether that still holds now, since the state moved on while the core decided: the job
// still pending, not held, on the attempt the plan expects; every node still connected and `up`,
// with the plan's GPU type, the planned GPUs present, healthy and free, and the CPUs and memory
// free. A start that no longer holds is dropped whole (the next pass places the job again); a
// preemption whose victim already ended or is already being stopped likewise.
//
// Owns only the record of recent preemptions (for the per-account hourly cap in the snapshot);
// changes jobs and nodes through their parts. No I/O. Threading: not thread-safe; owned by
// `ClusterState`, on the service's state thread.
#pragma once

#include <deque>
#include <string>
#include <utility>

#include "scheduler/common/clock.h"
#include "scheduler/core/model.h"
#include "scheduler/core/schedule.h"
#include "scheduler/server/change.h"
#include "scheduler/server/event_log.h"
#include "scheduler/server/job_records.h"
#include "scheduler/server/node_registry.h"

namespace gsched::server {

class PlanApplier {
 public:
  PlanApplier(JobRecords& jobs, NodeRegistry& nodes, EventLog& events)
      : jobs_(jobs), nodes_(nodes), events_(events) {}

  // Applies the starts and preemptions of `plan` (decided over `snapshot`) that still hold at
  // `now`: starts become `starting` with their launch messages, preemptions become kills.
  Change Apply(const core::Snapshot& snapshot, const core::Plan& plan, Timestamp now);

  // (time, account) of the preemptions of the last hour.
  const std::deque<std::pair<Timestamp, std::string>>& recent_preemptions() const {
    return recent_preemptions_;
  }

 private:
  // Empty when `start` still holds, else why not.
  std::string WhyStale(const core::Snapshot& snapshot, const core::JobStart& start) const;
  void Start(Change& change, const core::Snapshot& snapshot, const core::JobStart& start,
             Timestamp now);
  void Preempt(Change& change, const core::PlannedPreemption& p, Timestamp now);

  JobRecords& jobs_;
  NodeRegistry& nodes_;
  EventLog& events_;
  std::deque<std::pair<Timestamp, std::string>> recent_preemptions_;
};

}  // namespace gsched::server
