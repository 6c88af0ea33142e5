#include "scheduler/core/eligibility.h"

#include <algorithm>

namespace gsched::core {

BudgetState BudgetOf(const Snapshot& s, uint32_t account, Timestamp now) {
  BudgetState out;
  for (uint32_t a = account, steps = 0; a != kNoParent && steps <= s.accounts.size();
       a = s.accounts[a].parent, ++steps) {
    const AccountInfo& info = s.accounts[a];
    if (!info.budget)
      continue;
    const Budget& b = *info.budget;
    if (now < b.start || now >= b.end)
      continue;
    if (b.consumed_gpu_hours >= b.gpu_hours) {
      out = {true, a, b.gpu_hours, b.consumed_gpu_hours, info.on_budget_exhausted};
      return out;
    }
  }
  return out;
}

BudgetLedger::BudgetLedger(const Snapshot& s, Timestamp now)
    : s_(s), now_(now), period_end_(s.accounts.size()), remaining_(s.accounts.size(), 0.0) {
  std::vector<uint8_t> limited(s.accounts.size(), 0);
  for (uint32_t a = 0; a < s.accounts.size(); ++a) {
    const std::optional<Budget>& b = s.accounts[a].budget;
    if (!b || now < b->start || now >= b->end)
      continue;
    limited[a] = 1;
    period_end_[a] = b->end;
    remaining_[a] = b->gpu_hours - b->consumed_gpu_hours;
    active_ = true;
  }
  if (!active_)
    return;
  // Each account's budgeted ancestors (itself included), listed once: most accounts have none.
  budgeted_.resize(s.accounts.size());
  for (uint32_t a = 0; a < s.accounts.size(); ++a) {
    for (uint32_t p = a, steps = 0; p != kNoParent && steps <= s.accounts.size();
         p = s.accounts[p].parent, ++steps) {
      if (limited[p])
        budgeted_[a].push_back(p);
    }
  }
}

void BudgetLedger::CountRunning() {
  // What running attempts may still use until their time limits (or the end of their grace).
  // Done on the first question only: a pass without a budgeted job to decide never walks them.
  running_counted_ = true;
  for (const RunningJobInfo& r : s_.running) {
    if (r.allocation.empty() || budgeted_[r.account].empty())
      continue;
    int64_t gpus = 0;
    for (const NodeAllocation& a : r.allocation)
      gpus += Popcount(a.gpus);
    const double normalised =
        static_cast<double>(gpus) * s_.gpu_types[s_.nodes[r.allocation.front().node].gpu_type].cost;
    Timestamp end = r.start_time + r.time_limit;
    if (r.terminating_deadline)
      end = std::min(end, *r.terminating_deadline);
    for (uint32_t p : budgeted_[r.account])
      remaining_[p] -= normalised * HoursWithin(p, end);
  }
}

double BudgetLedger::HoursWithin(uint32_t account, Timestamp end) const {
  const Timestamp until = std::min(end, period_end_[account]);
  return until > now_ ? static_cast<double>((until - now_).count()) / 3'600'000.0 : 0.0;
}

BudgetLedger::Check BudgetLedger::Fits(uint32_t account, double normalised_gpus, Timestamp end) {
  constexpr double kSlack = 1e-9;  // GPU-hours; rounding of the sums, not policy.
  Check out;
  if (!active_ || budgeted_[account].empty())
    return out;
  if (!running_counted_)
    CountRunning();
  for (uint32_t a : budgeted_[account]) {
    const AccountInfo& info = s_.accounts[a];
    const double needed = normalised_gpus * HoursWithin(a, end);
    const bool exhausted = info.budget->consumed_gpu_hours >= info.budget->gpu_hours;
    if (exhausted || needed > remaining_[a] + kSlack) {
      return {false,
              exhausted,
              a,
              info.budget->gpu_hours,
              info.budget->consumed_gpu_hours,
              remaining_[a],
              needed,
              info.on_budget_exhausted};
    }
  }
  return out;
}

void BudgetLedger::Commit(uint32_t account, double normalised_gpus, Timestamp end) {
  if (!active_ || budgeted_[account].empty())
    return;
  if (!running_counted_)
    CountRunning();
  for (uint32_t a : budgeted_[account])
    remaining_[a] -= normalised_gpus * HoursWithin(a, end);
}

DependencyCheck CheckDependencies(const PendingJobInfo& job) {
  DependencyCheck out;
  for (const Dependency& d : job.dependencies) {
    const bool done = api::IsTerminal(d.state);
    const bool ok = d.state == api::JobState::kCompleted;
    DependencyState st = DependencyState::kSatisfied;
    switch (d.type) {
      case api::DependencyType::kAfterOk:
        st = ok ? DependencyState::kSatisfied
                : (done ? DependencyState::kNeverSatisfied : DependencyState::kWaiting);
        break;
      case api::DependencyType::kAfterAny:
        st = done ? DependencyState::kSatisfied : DependencyState::kWaiting;
        break;
      case api::DependencyType::kAfterNotOk:
        st = !done ? DependencyState::kWaiting
                   : (ok ? DependencyState::kNeverSatisfied : DependencyState::kSatisfied);
        break;
    }
    if (st == DependencyState::kNeverSatisfied ||
        (st == DependencyState::kWaiting && out.state == DependencyState::kSatisfied)) {
      out = {st, d.job, d.type};
      if (st == DependencyState::kNeverSatisfied)
        return out;
    }
  }
  return out;
}

int64_t EligibilityCounters::UserGpus(uint32_t account, uint32_t user) const {
  auto it = user_gpus_.find(Key(account, user));
  return it == user_gpus_.end() ? 0 : it->second;
}

int64_t EligibilityCounters::UserPendingSeen(uint32_t account, uint32_t user) const {
  auto it = user_pending_.find(Key(account, user));
  return it == user_pending_.end() ? 0 : it->second;
}

void EligibilityCounters::CountPending(uint32_t account, uint32_t user) {
  ++user_pending_[Key(account, user)];
}

int32_t EligibilityCounters::ArrayRunning(const PendingJobInfo& job) const {
  auto it = array_started_.find(job.array_parent.value());
  return job.array_running + (it == array_started_.end() ? 0 : it->second);
}

void EligibilityCounters::RecordStart(const PendingJobInfo& job) {
  user_gpus_[Key(job.account, job.user)] += RequestedGpus(job);
  if (job.array_parent.value() != 0)
    ++array_started_[job.array_parent.value()];
}

}  // namespace gsched::core
