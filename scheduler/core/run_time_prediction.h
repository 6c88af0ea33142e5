// Run-time predictions for the estimated starts shown to users (DESIGN.md section 3, phase 8).
//
// Backfill reservations must assume that every running job runs to its time limit: that is what
// makes a reservation a promise. But users ask for generous limits (replays give twice the run
// time, rounded up to a quarter hour), so a timeline built on limits tells a waiting user a start
// that is hours late. The estimates come from a second timeline on predicted ends instead, and
// the predictions come from each user's own record, as in Tsafrir, Etsion and Feitelson,
// "Backfilling using system-generated predictions rather than user runtime estimates" (IEEE TPDS
// 2007): a job is predicted to use the mean fraction of its limit (run time / time limit, each at
// most 1) that its user's last `kRunTimeHistoryJobs` finished jobs with a limit of the same class
// used, times its own limit; without such jobs, the mean over the user's last jobs of any limit.
// The classes (`RunTimeLimitClass`: under 30 min, under 1 h, under 2 h, ... doubling) keep a
// user's short tests from shrinking the prediction of their day-long runs and the other way
// round: how much of its limit a job uses depends on the limit (a quarter-hour limit is often a
// floor that a 2-minute job rounds up to, a week is often a cap). A user with no finished job yet
// is predicted to run to the limit, so without history the estimates are the reservations'
// starts, as before.
//
// A running job that outlives its prediction is predicted to end halfway between now and its
// limit: it proved the prediction wrong, and the limit is the only bound left.
//
// `RunTimeHistory` is plain data kept by whoever sees jobs finish (the daemon's `ClusterState`,
// the simulator); it hands the core, per user, one ratio (`Snapshot::user_run_time_ratio`) and
// one per limit class (`Snapshot::user_limit_run_time_ratio`).
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
  // Per limit class, the mean ratio of the user's last `kRunTimeHistoryJobs` jobs of that class;
  // 0 for a class without any (all 0 when the user has none).
  std::array<float, kRunTimeLimitClasses> LimitRatios(const std::string& user) const;
  size_t users() const { return users_.size(); }

 private:
  struct Recent {
    std::array<double, kRunTimeHistoryJobs> ratios{};
    uint32_t count = 0;  // Jobs recorded, ever; the last min(count, N) entries are valid.
    void Add(double ratio);
    double Mean() const;  // Of the valid entries, in (0, 1]; 1 without any.
  };
  struct User {
    Recent all;
    std::array<Recent, kRunTimeLimitClasses> by_limit;
  };
  std::unordered_map<std::string, User> users_;
};

// The class of a time limit: 0 under 30 min, 1 under 1 h, 2 under 2 h, ..., the last open-ended.
size_t RunTimeLimitClass(Duration time_limit);

// The ratio of `user` in the snapshot: 1 (run to the limit) when the snapshot carries none.
inline double UserRunTimeRatio(const Snapshot& s, uint32_t user) {
  return user < s.user_run_time_ratio.size() ? s.user_run_time_ratio[user] : 1.0;
}
// The ratio of `user` for a job under `time_limit`: its limit class's when the snapshot has one,
// else the user's.
double UserRunTimeRatio(const Snapshot& s, uint32_t user, Duration time_limit);

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
