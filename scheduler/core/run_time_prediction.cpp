#include "scheduler/core/run_time_prediction.h"

#include <algorithm>

namespace gsched::core {

void RunTimeHistory::Record(const std::string& user, Duration run_time, Duration time_limit) {
  if (time_limit.count() <= 0)
    return;
  const double ratio = std::clamp(
      static_cast<double>(run_time.count()) / static_cast<double>(time_limit.count()), 0.0, 1.0);
  Recent& r = users_[user];
  r.ratios[r.count % kRunTimeHistoryJobs] = ratio;
  ++r.count;
}

double RunTimeHistory::Ratio(const std::string& user) const {
  auto it = users_.find(user);
  if (it == users_.end() || it->second.count == 0)
    return 1.0;
  const size_t n = std::min<size_t>(it->second.count, kRunTimeHistoryJobs);
  double sum = 0;
  for (size_t i = 0; i < n; ++i)
    sum += it->second.ratios[i];
  // A job that ends at once would predict 0: keep predictions strictly positive.
  return std::clamp(sum / static_cast<double>(n), 1e-6, 1.0);
}

Duration PredictedRunTime(Duration time_limit, double ratio) {
  if (ratio >= 1.0 || time_limit.count() <= 1)
    return time_limit;
  const auto predicted =
      static_cast<int64_t>(static_cast<double>(time_limit.count()) * std::max(ratio, 0.0));
  return Duration(std::clamp<int64_t>(predicted, 1, time_limit.count()));
}

Timestamp PredictedEnd(Timestamp start, Duration time_limit, double ratio, Timestamp now) {
  const Timestamp limit_end = start + time_limit;
  const Timestamp predicted = start + PredictedRunTime(time_limit, ratio);
  if (predicted > now)
    return predicted;
  if (limit_end <= now)
    return now;
  // Outlived its prediction: halfway to the limit.
  return now + (limit_end - now) / 2;
}

Duration PredictedRunTime(const Snapshot& s, const PendingJobInfo& job, Duration time_limit) {
  if (job.known_run_time.count() > 0)
    return std::clamp(job.known_run_time, Duration(1), std::max(time_limit, Duration(1)));
  return PredictedRunTime(time_limit, UserRunTimeRatio(s, job.user));
}

Timestamp PredictedEnd(const Snapshot& s, const RunningJobInfo& job, Timestamp now) {
  if (job.known_run_time.count() > 0)
    return std::max(now, job.start_time + std::min(job.known_run_time, job.time_limit));
  return PredictedEnd(job.start_time, job.time_limit, UserRunTimeRatio(s, job.user), now);
}

}  // namespace gsched::core
