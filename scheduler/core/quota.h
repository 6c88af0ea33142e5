// `QuotaLedger`: GPUs held per account and GPU type, up the whole account chain (DESIGN.md section
// 3, phase 4), and the admission rule:
//   - at every level with a quota, used + request <= limit, else `kAtLimit` (reason `quota`);
//   - if used + request <= guaranteed at every level with a quota (and at least one level has one),
//     the request is `kWithinGuarantee`;
//   - otherwise it borrows idle capacity: allowed when the free GPUs of that type, minus the unused
//     guarantees of other accounts that have pending demand for that type, still cover it
//     (`kBorrowing`); else `kNoBorrowable` (reason `borrow_limit`). When fewer GPUs than requested
//     are free at all, the request is not refused here: placement gives the better reason.
// The protected amount of an account is min(pending demand, guaranteed - used) at the account the
// demand was registered for (the job's own account): guarantees of inner accounts bound their
// children but do not by themselves protect idle capacity. A ledger lives for one pass; single
// threaded.
#pragma once

#include <cstdint>
#include <vector>

#include "scheduler/core/model.h"

namespace gsched::core {

struct QuotaCheck {
  enum class Outcome : uint8_t { kWithinGuarantee, kBorrowing, kAtLimit, kNoBorrowable };
  Outcome outcome = Outcome::kWithinGuarantee;
  // For `kAtLimit`: the level that refused; otherwise the job's account.
  uint32_t account = 0;
  int64_t used = 0;
  int64_t guaranteed = 0;
  int64_t limit = kUnlimited;
  // GPUs of the type that may be borrowed now (for `kBorrowing` / `kNoBorrowable`).
  int64_t borrowable = 0;
  bool admitted() const {
    return outcome == Outcome::kWithinGuarantee || outcome == Outcome::kBorrowing;
  }
};

class QuotaLedger {
 public:
  QuotaLedger(const Snapshot& snapshot);

  // A running job's GPUs (charged to its account and every ancestor).
  void AddUsed(uint32_t account, uint32_t type, int64_t gpus);
  // Pending demand that makes the account's unused guarantee of `type` off limits to borrowers.
  void AddDemand(uint32_t account, uint32_t type, int64_t gpus);

  // `free_of_type`: free GPUs of the type in the cluster now.
  QuotaCheck Check(uint32_t account, uint32_t type, int64_t gpus, int64_t free_of_type) const;

  // Records a start: used grows up the chain, the account's demand shrinks.
  void Charge(uint32_t account, uint32_t type, int64_t gpus);

  int64_t Used(uint32_t account, uint32_t type) const { return used_[Slot(account, type)]; }
  int64_t ProtectedTotal(uint32_t type) const { return protected_total_[type]; }

 private:
  size_t Slot(uint32_t account, uint32_t type) const { return size_t{account} * types_ + type; }
  int64_t ProtectedOf(uint32_t account, uint32_t type) const;
  void Reprotect(uint32_t account, uint32_t type, int64_t before);

  const Snapshot& snapshot_;
  uint32_t types_;
  std::vector<std::vector<uint32_t>> chains_;
  std::vector<int64_t> used_;
  std::vector<int64_t> demand_;
  std::vector<int64_t> protected_total_;
};

}  // namespace gsched::core
