// `PendingReasons`: why each pending job waits, as the last pass explained it (DESIGN.md section
// 3, phase 8), and the `job.reason` events that tell watchers when that changed.
//
// Owns the last pass's reasons and explanations (memory only, apart from the jobs: a million
// pending jobs do not each carry a copy, and they are recomputed every pass) and what the last
// `job.reason` event said of each job. No I/O. Threading: not thread-safe; owned by
// `ClusterState`, on the service's state thread.
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

#include "scheduler/api/types.h"
#include "scheduler/core/schedule.h"
#include "scheduler/server/change.h"
#include "scheduler/server/event_log.h"
#include "scheduler/server/job_records.h"

namespace gsched::server {

class PendingReasons {
 public:
  // `job.reason` events a pass emits at most; further changes wait for the next passes, so that a
  // change that moves every pending job's estimate reaches watchers as a bounded stream.
  static constexpr size_t kMaxEventsPerPass = 1000;
  // An estimated start that moved less than this since the last `job.reason` is no news.
  static constexpr Duration kStartStep = Seconds(60);

  // Takes the reasons of a pass's plan, and adds to `change` (as ephemeral events) the
  // `job.reason` of every pending job whose reason is news. The first pass after a start records
  // what it finds without events: the feed reports changes, and a restart is not one.
  void Update(const core::Plan& plan, const JobRecords& jobs, const EventLog& events,
              Change& change);

  // A copy of `job` with its reason: the last pass's for a pending job, the worker's progress
  // (`starting_message`) for a starting one.
  api::Job WithReason(const JobRecord& record) const;

 private:
  struct Reported {
    uint64_t job = 0;
    api::ReasonCode code = api::ReasonCode::kResources;
    std::optional<Timestamp> estimated_start;
  };
  void ReportChanges(const JobRecords& jobs, const EventLog& events, Change& change);

  // Sorted by job id; `explanation` indexes `explanations_`.
  std::vector<core::PendingReason> reasons_;
  std::vector<core::Explanation> explanations_;
  std::vector<Reported> reported_;  // Sorted by job id.
  bool baselined_ = false;
};

}  // namespace gsched::server
