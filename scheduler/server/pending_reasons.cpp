#include "scheduler/server/pending_reasons.h"

#include <algorithm>

#include "scheduler/common/quantity.h"

namespace gsched::server {
namespace json = boost::json;
using api::JobState;

void PendingReasons::Update(const core::Plan& plan, const JobRecords& jobs, const EventLog& events,
                            Change& change) {
  reasons_ = plan.pending;
  std::sort(reasons_.begin(), reasons_.end(),
            [](const core::PendingReason& a, const core::PendingReason& b) {
              return a.job.value() < b.job.value();
            });
  explanations_ = plan.explanations;
  ReportChanges(jobs, events, change);
}

api::Job PendingReasons::WithReason(const JobRecord& record) const {
  const api::Job& job = record.job;
  api::Job out = job;
  if (job.state == JobState::kStarting) {
    if (!record.starting_message.empty())
      out.reason = api::Reason{api::ReasonCode::kImagePull, record.starting_message, {}, {}};
    return out;
  }
  if (job.state != JobState::kPending)
    return out;
  auto it = std::lower_bound(
      reasons_.begin(), reasons_.end(), job.id,
      [](const core::PendingReason& r, uint64_t id) { return r.job.value() < id; });
  if (it == reasons_.end() || it->job.value() != job.id || it->explanation >= explanations_.size())
    return out;
  core::Explanation e = core::ExplanationOf(explanations_, *it);
  api::Reason reason;
  reason.code = e.code;
  reason.message = std::move(e.message);
  for (auto& d : e.details)
    std::visit([&](auto& v) { reason.details[d.key] = std::move(v); }, d.value);
  reason.estimated_start = it->estimated_start;
  out.reason = std::move(reason);
  return out;
}

void PendingReasons::ReportChanges(const JobRecords& jobs, const EventLog& events, Change& change) {
  // One merge of two id-sorted lists: O(pending) per pass, events only for what changed.
  auto news = [](const Reported& before, const Reported& now) {
    if (before.code != now.code ||
        before.estimated_start.has_value() != now.estimated_start.has_value())
      return true;
    if (!now.estimated_start)
      return false;
    Duration moved = *now.estimated_start > *before.estimated_start
                         ? *now.estimated_start - *before.estimated_start
                         : *before.estimated_start - *now.estimated_start;
    return moved >= kStartStep;
  };
  std::vector<Reported> next;
  next.reserve(reasons_.size());
  size_t emitted = 0;
  auto old = reported_.begin();
  for (const core::PendingReason& r : reasons_) {
    if (r.explanation >= explanations_.size())
      continue;
    uint64_t id = r.job.value();
    while (old != reported_.end() && old->job < id)
      ++old;  // No longer pending: its `job.state` event told.
    const Reported* before = old != reported_.end() && old->job == id ? &*old : nullptr;
    Reported now{id, explanations_[r.explanation].code, r.estimated_start};
    if (before && !news(*before, now)) {
      next.push_back(*before);  // The baseline stays, so that slow drift adds up to news.
      continue;
    }
    const JobRecord* job = jobs.Find(id);
    // Cancelled or started while the pass ran: nothing pending to report on.
    bool gone = job == nullptr || job->job.state != JobState::kPending;
    if (!baselined_ || gone || emitted >= kMaxEventsPerPass) {
      // Not reported (yet): a later pass sees the same difference.
      if (before)
        next.push_back(*before);
      else if (!baselined_)
        next.push_back(now);
      continue;
    }
    core::Explanation e = core::ExplanationOf(explanations_, r);
    json::object data = JobEventData(job->job);
    data["code"] = std::string(api::ToString(now.code));
    data["message"] = std::move(e.message);
    if (before)
      data["previous_code"] = std::string(api::ToString(before->code));
    if (now.estimated_start)
      data["estimated_start"] = FormatTimestamp(*now.estimated_start);
    change.ephemeral.push_back(events.Ephemeral("job.reason", std::move(data)));
    ++emitted;
    next.push_back(now);
  }
  reported_ = std::move(next);
  baselined_ = true;
}

}  // namespace gsched::server
