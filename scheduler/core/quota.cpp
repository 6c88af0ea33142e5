#include "scheduler/core/quota.h"

#include <algorithm>

namespace gsched::core {

QuotaLedger::QuotaLedger(const Snapshot& snapshot)
    : snapshot_(snapshot), types_(static_cast<uint32_t>(snapshot.gpu_types.size())) {
  const size_t n = snapshot.accounts.size();
  chains_.reserve(n);
  for (uint32_t a = 0; a < n; ++a)
    chains_.push_back(AccountChain(snapshot, a));
  used_.assign(n * types_, 0);
  demand_.assign(n * types_, 0);
  protected_total_.assign(types_, 0);
}

int64_t QuotaLedger::ProtectedOf(uint32_t account, uint32_t type) const {
  const AccountInfo& a = snapshot_.accounts[account];
  if (a.quota.empty())
    return 0;
  const int64_t unused =
      std::max<int64_t>(0, a.quota[type].guaranteed - used_[Slot(account, type)]);
  return std::min(unused, demand_[Slot(account, type)]);
}

void QuotaLedger::Reprotect(uint32_t account, uint32_t type, int64_t before) {
  protected_total_[type] += ProtectedOf(account, type) - before;
}

void QuotaLedger::AddUsed(uint32_t account, uint32_t type, int64_t gpus) {
  for (uint32_t a : chains_[account]) {
    const int64_t before = ProtectedOf(a, type);
    used_[Slot(a, type)] += gpus;
    Reprotect(a, type, before);
  }
}

void QuotaLedger::AddDemand(uint32_t account, uint32_t type, int64_t gpus) {
  const int64_t before = ProtectedOf(account, type);
  demand_[Slot(account, type)] += gpus;
  Reprotect(account, type, before);
}

QuotaCheck QuotaLedger::Check(uint32_t account, uint32_t type, int64_t gpus,
                              int64_t free_of_type) const {
  QuotaCheck out;
  out.account = account;
  bool any_guarantee_level = false;
  bool within_guarantee = true;
  for (uint32_t a : chains_[account]) {
    const AccountInfo& info = snapshot_.accounts[a];
    if (info.quota.empty())
      continue;
    const TypeQuota& q = info.quota[type];
    const int64_t used = used_[Slot(a, type)];
    if (a == account) {
      out.used = used;
      out.guaranteed = q.guaranteed;
      out.limit = q.limit;
    }
    if (q.limit != kUnlimited && used + gpus > q.limit) {
      out.outcome = QuotaCheck::Outcome::kAtLimit;
      out.account = a;
      out.used = used;
      out.guaranteed = q.guaranteed;
      out.limit = q.limit;
      return out;
    }
    any_guarantee_level = true;
    if (used + gpus > q.guaranteed)
      within_guarantee = false;
  }
  if (!chains_[account].empty() && snapshot_.accounts[account].quota.empty()) {
    out.used = used_[Slot(account, type)];
  }
  if (any_guarantee_level && within_guarantee) {
    out.outcome = QuotaCheck::Outcome::kWithinGuarantee;
    out.borrowable = free_of_type;
    return out;
  }
  const int64_t others_protected = protected_total_[type] - ProtectedOf(account, type);
  out.borrowable = std::max<int64_t>(0, free_of_type - others_protected);
  out.outcome =
      // Refused only when the GPUs are there but promised to others; when they are simply not
      // free, placement reports `resources` or `fragmentation`.
      gpus <= out.borrowable || gpus > free_of_type ? QuotaCheck::Outcome::kBorrowing
                                                    : QuotaCheck::Outcome::kNoBorrowable;
  return out;
}

void QuotaLedger::Charge(uint32_t account, uint32_t type, int64_t gpus) {
  const int64_t before = ProtectedOf(account, type);
  demand_[Slot(account, type)] = std::max<int64_t>(0, demand_[Slot(account, type)] - gpus);
  Reprotect(account, type, before);
  AddUsed(account, type, gpus);
}

}  // namespace gsched::core
