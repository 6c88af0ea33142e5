#include "scheduler/core/run_time_prediction.h"

#include <algorithm>

namespace gsched::core {

void RunTimeHistory::Recent::Add(double ratio) {
  ratios[count % kRunTimeHistoryJobs] = ratio;
  ++count;
}

double RunTimeHistory::Recent::Mean() const {
  if (count == 0)
    return 1.0;
  const size_t n = std::min<size_t>(count, kRunTimeHistoryJobs);
  double sum = 0;
  for (size_t i = 0; i < n; ++i)
    sum += ratios[i];
  // A job that ends at once would predict 0: keep predictions strictly positive.
  return std::clamp(sum / static_cast<double>(n), 1e-6, 1.0);
}

void RunTimeHistory::Record(const std::string& user, Duration run_time, Duration time_limit) {
  if (time_limit.count() <= 0)
    return;
  const double ratio = std::clamp(
      static_cast<double>(run_time.count()) / static_cast<double>(time_limit.count()), 0.0, 1.0);
  User& u = users_[user];
  u.all.Add(ratio);
  u.by_limit[RunTimeLimitClass(time_limit)].Add(ratio);
}

double RunTimeHistory::Ratio(const std::string& user) const {
  auto it = users_.find(user);
  return it == users_.end() ? 1.0 : it->second.all.Mean();
}

std::array<float, kRunTimeLimitClasses> RunTimeHistory::LimitRatios(const std::string& user) const {
  std::array<float, kRunTimeLimitClasses> out{};
  auto it = users_.find(user);
  if (it == users_.end())
    return out;
  for (size_t c = 0; c < kRunTimeLimitClasses; ++c) {
    const Recent& r = it->second.by_limit[c];
    // As a float, still strictly positive and at most 1.
    out[c] = r.count == 0 ? 0.0f : std::clamp(static_cast<float>(r.Mean()), 1e-6f, 1.0f);
  }
  return out;
}

size_t RunTimeLimitClass(Duration time_limit) {
  size_t c = 0;
  for (Duration bound = Seconds(30 * 60); c + 1 < kRunTimeLimitClasses && time_limit >= bound;
       bound *= 2)
    ++c;
  return c;
}

double UserRunTimeRatio(const Snapshot& s, uint32_t user, Duration time_limit) {
  if (user < s.user_limit_run_time_ratio.size()) {
    const float r = s.user_limit_run_time_ratio[user][RunTimeLimitClass(time_limit)];
    if (r > 0)
      return r;
  }
  return UserRunTimeRatio(s, user);
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
  return PredictedRunTime(time_limit, UserRunTimeRatio(s, job.user, time_limit));
}

Timestamp PredictedEnd(const Snapshot& s, const RunningJobInfo& job, Timestamp now) {
  if (job.known_run_time.count() > 0)
    return std::max(now, job.start_time + std::min(job.known_run_time, job.time_limit));
  return PredictedEnd(job.start_time, job.time_limit, UserRunTimeRatio(s, job.user, job.time_limit),
                      now);
}

}  // namespace gsched::core
