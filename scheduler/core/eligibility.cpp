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
