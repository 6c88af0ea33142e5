// Eligibility (DESIGN.md section 3, phase 3): the checks that do not depend on free capacity.
// Static ones (`CheckStatic`: hold, dependencies, budget) run once per job before the queue is
// ordered; the per-pass counters (array throttles, per-user limits) live in `EligibilityCounters`
// and change as the pass starts jobs. Pure; one pass.
#pragma once

#include <boost/container/small_vector.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

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

// The budgets of one pass. For each account whose budget period covers `now`, what is left:
// granted - consumed (the snapshot's `consumed_gpu_hours` already counts what running attempts
// have used so far) - what the running attempts of its subtree may still use until their time
// limits - what this pass starts. A job fits when what it may use until its own time limit fits
// what is left at every level of its chain; all of it counted within each budget's period, in
// normalised GPU-hours. Exact in the sense that matters: with every running attempt counted up to
// its time limit, jobs started within budget can never overrun it together.
class BudgetLedger {
 public:
  BudgetLedger(const Snapshot& s, Timestamp now);

  struct Check {
    bool fits = true;
    bool exhausted = false;  // Nothing left at all (consumed >= granted).
    uint32_t account = 0;    // The account whose budget does not fit.
    double granted = 0;
    double consumed = 0;
    double remaining = 0;  // After running attempts and this pass's starts.
    double needed = 0;     // What the job may use within that budget's period.
    api::BudgetExhaustedPolicy policy = api::BudgetExhaustedPolicy::kPreemptible;
  };
  // A job of `account` holding `normalised_gpus` (GPUs x their type's cost) from now to `end`.
  Check Fits(uint32_t account, double normalised_gpus, Timestamp end);
  void Commit(uint32_t account, double normalised_gpus, Timestamp end);
  // Whether any budget applies at all (most clusters have none: then every check passes).
  bool active() const { return active_; }

 private:
  double HoursWithin(uint32_t account, Timestamp end) const;
  void CountRunning();

  const Snapshot& s_;
  Timestamp now_;
  std::vector<Timestamp> period_end_;  // Per account with a budget covering `now`.
  std::vector<double> remaining_;
  // Per account: the accounts of its chain (itself first) whose budget covers `now`.
  std::vector<boost::container::small_vector<uint32_t, 2>> budgeted_;
  bool active_ = false;
  bool running_counted_ = false;
};

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
