// `UsageBook`: the daemon's usage ledger (DESIGN.md sections 2 and 3): each account's decayed
// fair-share usage, what its budget period has used, and the hourly ledger of ended attempts
// behind `GET /v1/usage`. The arithmetic is `core/usage.h`'s, the same as the simulator's.
//
// Owns: the per-account usage and budget records (memory, written through `Change` batches to the
// `usage` family) and the ledger's key layout in that family. I/O: `Load` reads the store at
// start and `ReadLedger` reads it for a report; nothing else touches it.
// Threading: not thread-safe; owned by `ClusterState`, on the service's state thread.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <tuple>

#include "scheduler/api/types.h"
#include "scheduler/common/clock.h"
#include "scheduler/common/status.h"
#include "scheduler/core/model.h"
#include "scheduler/server/change.h"
#include "scheduler/state/store.h"

namespace gsched::server {

// One row of `GET /v1/usage`: normalised GPU-hours (GPU-hours x the type's cost, preempted
// attempts at `preemption.usage_charge`) of one user in one account on one GPU type.
struct UsageRow {
  std::string account;
  std::string user;
  std::string gpu_type;
  double gpu_hours = 0;
};

struct UsageQuery {
  std::string account;  // This account and its subtree; empty: all.
  Timestamp since{};
  Timestamp until{};
};

// Normalised GPU-seconds as of `at`.
using UsageEntry = core::UsageRecord;

class UsageBook {
 public:
  // A record that does not decode: (key, value, why). Returns whether to go on.
  using Quarantine =
      std::function<bool(std::string_view key, std::string_view value, std::string why)>;
  // (account, user, GPU type) -> normalised GPU-hours.
  using Sums = std::map<std::tuple<std::string, std::string, std::string>, double>;

  explicit UsageBook(Duration half_life) : half_life_(half_life) {}

  // Reads the accounts' usage records (not the ledger) from the `usage` family.
  Status Load(const state::Store& store, const Quarantine& quarantine);

  // One ended attempt of `job`: `gpus` GPUs of `gpu_type` (cost `cost`) over [start, end) at
  // `rate` (1, or `preemption.usage_charge` when preempted). Decays and adds the account's usage,
  // charges the budgets on its chain in `accounts`, and writes the ledger rows of every hour the
  // attempt spanned.
  void ChargeAttempt(Change& change, const std::map<std::string, api::Account>& accounts,
                     const api::Job& job, const std::string& gpu_type, double cost, double gpus,
                     Timestamp start, Timestamp end, double rate);

  // The account's decayed usage as of `now`, normalised GPU-seconds (ended attempts only).
  double DecayedSeconds(const std::string& account, Timestamp now) const;
  // What the account's ended attempts used of its budget period, normalised GPU-hours.
  double BudgetUsed(const std::string& account) const;

  // Adds the ledger rows of ended attempts in [since, until) (whole hours: `since` rounds down
  // and `until` up) that `visible(account, user)` lets through to `sums`. Fails when the ledger
  // cannot be read.
  static Status ReadLedger(
      const state::Store& store, Timestamp since, Timestamp until,
      const std::function<bool(const std::string&, const std::string&)>& visible, Sums& sums);

 private:
  // Charges to the budget of `account` and of every ancestor (the part within each period),
  // writing the ancestors' usage records; returns what `account` has used of its own budget.
  double ChargeBudgets(const std::map<std::string, api::Account>& accounts,
                       const std::string& account, double normalised_gpus, Timestamp from,
                       Timestamp to, Change& change);

  Duration half_life_;
  std::map<std::string, UsageEntry> usage_;
  std::map<std::string, double> budget_used_;  // Normalised GPU-hours in the budget period.
};

}  // namespace gsched::server
