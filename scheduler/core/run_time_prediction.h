// Run-time predictions for the estimated starts shown to users (DESIGN.md section 3, phase 8).
//
// Backfill reservations must assume that every running job runs to its time limit: that is what
// makes a reservation a promise. But users ask for generous limits (replays give twice the run
// time, rounded up to a quarter hour), so a timeline built on limits tells a waiting user a start
// that is hours late. The estimates come from a second timeline on predicted ends instead, and
// the predictions come from each user's own record, as in Tsafrir, Etsion and Feitelson,
// "Backfilling using system-generated predictions rather than user runtime estimates" (IEEE TPDS
// 2007): a job is predicted to use the mean fraction of its limit that its user's last
// `kRunTimeHistoryJobs` finished jobs used (run time / time limit, each at most 1), times its own
// limit. A user with no finished job yet is predicted to run to the limit, so without history the
// estimates are the reservations' starts, as before.
//
// A running job that outlives its prediction is predicted to end halfway between now and its
// limit: it proved the prediction wrong, and the limit is the only bound left.
//
// `RunTimeHistory` is plain data kept by whoever sees jobs finish (the daemon's `ClusterState`,
// the simulator); it hands the core one ratio per user through `Snapshot::user_run_time_ratio`.
// Pure, no I/O; not thread-safe (owned by one thread, like the state that feeds it).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "scheduler/common/clock.h"
#include "scheduler/core/model.h"

namespace gsched::core {

// How many of a user's most recent finished jobs the prediction averages over.
inline constexpr size_t kRunTimeHistoryJobs = 4;

class RunTimeHistory {
 public:
  // A job of `user` ran `run_time` under `time_limit` and ended on its own (completed, failed,
  // cancelled or timed out; not preempted or lost with its node, which says nothing about the
  // user's estimates). Ignored when the limit is not positive.
  void Record(const std::string& user, Duration run_time, Duration time_limit);
  // The mean run time / time limit of the user's last `kRunTimeHistoryJobs` jobs, in (0, 1];
  // 1 when the user has none.
  double Ratio(const std::string& user) const;
  size_t users() const { return users_.size(); }

 private:
  struct Recent {
    std::array<double, kRunTimeHistoryJobs> ratios{};
    uint32_t count = 0;  // Jobs recorded, ever; the last min(count, N) entries are valid.
  };
  std::unordered_map<std::string, Recent> users_;
};

// The ratio of `user` in the snapshot: 1 (run to the limit) when the snapshot carries none.
inline double UserRunTimeRatio(const Snapshot& s, uint32_t user) {
  return user < s.user_run_time_ratio.size() ? s.user_run_time_ratio[user] : 1.0;
}

// `time_limit` x `ratio`, at least 1 ms (a job never ends the moment it starts) and at most the
// limit.
Duration PredictedRunTime(Duration time_limit, double ratio);

// When a job started at `start` under `time_limit` is predicted to end, seen at `now` (never
// before `now`, never after its limit unless the limit is already past).
Timestamp PredictedEnd(Timestamp start, Duration time_limit, double ratio, Timestamp now);

// The predicted run time of `job` under `time_limit` (its effective limit): its known run time
// when it has one (at most the limit), else from the snapshot's history.
Duration PredictedRunTime(const Snapshot& s, const PendingJobInfo& job, Duration time_limit);
// When the running `job` is predicted to end, seen at `now` (as `PredictedEnd`).
Timestamp PredictedEnd(const Snapshot& s, const RunningJobInfo& job, Timestamp now);

}  // namespace gsched::core
