// `AccountsConfig`: the account tree of `accounts.yaml` (DESIGN.md section 2), applied at the
// scheduler's first start (`accounts_file`) and declaratively with `gsched accounts apply -f`.
//
//   accounts:
//     - name: kaist
//       parent: universities          # default: root
//       shares: 20                    # fair-share weight among siblings, >= 1, default 1
//       quotas:
//         h100: {guaranteed: 128, limit: 512}
//       budget: {gpu_hours: 50000, start: 2027-01-01, end: 2027-12-31}
//       on_budget_exhausted: hold     # or preemptible (default)
//       max_pending_jobs_per_user: 1000
//       max_running_gpus_per_user: 64
//       users: [alice, bob]
//
// Invariants of a loaded tree:
//   - `accounts[0]` is `root` (implicit when not listed), and every account comes after its parent
//     (a pre-order walk of the tree), so consumers can build it in one pass;
//   - names are unique, 1..64 characters of `[a-z0-9._-]`; every parent exists; there is no cycle;
//   - per GPU type, `limit >= guaranteed`, and when a parent has a quota for a type the guarantees
//   of
//     its children for that type sum to at most the parent's guarantee;
//   - a budget has `gpu_hours > 0` and `end > start`;
//   - users are listed on leaf accounts only.
// `quotas` keys are GPU type names; whether the cluster has them is checked against a cluster with
// `ValidateAccountsForCluster`.
//
// Threading: the loaders are reentrant (no globals); a loaded config is a plain value, safe to
// share as `const` between threads.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/cluster_config.h"
#include "scheduler/api/enums.h"
#include "scheduler/api/types.h"
#include "scheduler/common/clock.h"
#include "scheduler/common/status.h"

namespace gsched::config {

inline constexpr std::string_view kRootAccount = "root";

struct QuotaSpec {
  // GPUs of this type the account is guaranteed (reclaimable from borrowers by preemption).
  int64_t guaranteed = 0;
  // The most GPUs of this type the account may hold, borrowing idle capacity; unset: no cap of
  // its own (its ancestors' limits still apply).
  std::optional<int64_t> limit;

  friend bool operator==(const QuotaSpec&, const QuotaSpec&) = default;
};

struct BudgetSpec {
  // Normalised GPU-hours (GPU-hours x the GPU type's cost) granted for [start, end).
  double gpu_hours = 0;
  Timestamp start;
  Timestamp end;

  friend bool operator==(const BudgetSpec&, const BudgetSpec&) = default;
};

struct AccountSpec {
  std::string name;
  // Empty for `root` only.
  std::string parent = std::string(kRootAccount);
  int64_t shares = 1;
  // GPU type -> quota.
  std::map<std::string, QuotaSpec> quotas;
  std::optional<BudgetSpec> budget;
  api::BudgetExhaustedPolicy on_budget_exhausted = api::BudgetExhaustedPolicy::kPreemptible;
  std::optional<int64_t> max_pending_jobs_per_user;
  std::optional<int64_t> max_running_gpus_per_user;
  std::vector<std::string> users;

  friend bool operator==(const AccountSpec&, const AccountSpec&) = default;
};

struct AccountsConfig {
  // Pre-order: root first, every parent before its children, siblings in file order.
  std::vector<AccountSpec> accounts;

  // The account named `name`, or nullptr.
  const AccountSpec* Find(std::string_view name) const;
  // Names of the direct children of `name`, in order.
  std::vector<std::string> Children(std::string_view name) const;
};

// The account as the API takes it (`PUT /v1/accounts/{name}`): what the scheduler applies at start
// from `accounts_file` and what `gsched accounts apply` sends. A quota without `limit` is capped
// at `api::kMaxQuotaGpus`, the largest the API takes (accounts.yaml: no cap of the account's own).
api::Account ToApiAccount(const AccountSpec& spec);

// Loads `path`.
Result<AccountsConfig> LoadAccountsConfig(const std::string& path);
// Parses YAML text; `source_name` names it in syntax errors.
Result<AccountsConfig> ParseAccountsConfig(std::string_view yaml_text,
                                           std::string_view source_name);

// Checks the tree against a cluster: every quota's GPU type exists, and for each GPU type the
// guarantees of root's children (or root's own guarantee, when set) fit the cluster's GPUs of
// that type. Errors name `accounts.NAME.quotas.TYPE`.
Status ValidateAccountsForCluster(const AccountsConfig& accounts, const ClusterConfig& cluster);

}  // namespace gsched::config
