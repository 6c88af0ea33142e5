// Eligibility (DESIGN.md section 3, phase 3): the checks that do not depend on free capacity.
// Static ones (`CheckStatic`: hold, dependencies, budget) run once per job before the queue is
// ordered; the per-pass counters (array throttles, per-user limits) live in `EligibilityCounters`
// and change as the pass starts jobs. Pure; one pass.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "scheduler/core/model.h"

namespace gsched::core {

// Budget state of an account chain at `now`.
struct BudgetState {
  bool exhausted = false;
  uint32_t account = 0;  // The account whose budget is spent.
  double granted = 0;
  double consumed = 0;
  api::BudgetExhaustedPolicy policy = api::BudgetExhaustedPolicy::kPreemptible;
};
BudgetState BudgetOf(const Snapshot& s, uint32_t account, Timestamp now);

enum class DependencyState : uint8_t { kSatisfied, kWaiting, kNeverSatisfied };
struct DependencyCheck {
  DependencyState state = DependencyState::kSatisfied;
  JobId blocking;  // The first dependency not satisfied.
  api::DependencyType type = api::DependencyType::kAfterOk;
};
DependencyCheck CheckDependencies(const PendingJobInfo& job);

// Per-pass counters: running GPUs per (account, user), pending jobs considered per (account,
// user), running tasks per array.
class EligibilityCounters {
 public:
  // `user_gpus`: `RunningSums::capped_user_gpus`.
  explicit EligibilityCounters(std::unordered_map<uint64_t, int64_t> user_gpus)
      : user_gpus_(std::move(user_gpus)) {}
  int64_t UserGpus(uint32_t account, uint32_t user) const;
  int64_t UserPendingSeen(uint32_t account, uint32_t user) const;
  void CountPending(uint32_t account, uint32_t user);
  int32_t ArrayRunning(const PendingJobInfo& job) const;
  void RecordStart(const PendingJobInfo& job);

 private:
  static uint64_t Key(uint32_t account, uint32_t user) { return uint64_t{account} << 32 | user; }
  std::unordered_map<uint64_t, int64_t> user_gpus_;
  std::unordered_map<uint64_t, int64_t> user_pending_;
  std::unordered_map<uint64_t, int32_t> array_started_;
};

}  // namespace gsched::core
