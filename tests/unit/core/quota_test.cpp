#include "scheduler/core/quota.h"

#include <gtest/gtest.h>

#include "tests/testutil/builders.h"

namespace gsched::core {
namespace {

using testutil::ClusterBuilder;
using testutil::MakeAccount;
using Outcome = QuotaCheck::Outcome;

// root > inst (limit 24) > {p1 (guaranteed 8, limit 16), p2 (guaranteed 8)}; one type h100 = 0.
Snapshot Tree() {
  return ClusterBuilder()
      .GpuType("h100", 1.0)
      .Add(MakeAccount("inst").Guaranteed("h100", 16).Limit("h100", 24))
      .Add(MakeAccount("p1").Parent("inst").Guaranteed("h100", 8).Limit("h100", 16))
      .Add(MakeAccount("p2").Parent("inst").Guaranteed("h100", 8))
      .Add(MakeAccount("p3"))
      .Build();
}
constexpr uint32_t kInst = 1, kP1 = 2, kP2 = 3, kP3 = 4;

TEST(QuotaLedgerTest, WithinGuaranteeUpTheChain) {
  const Snapshot s = Tree();
  QuotaLedger q(s);
  q.AddUsed(kP1, 0, 4);
  // p1: 4 + 4 = 8 <= 8 guaranteed; inst: 4 + 4 = 8 <= 16.
  const QuotaCheck c = q.Check(kP1, 0, 4, 100);
  EXPECT_EQ(c.outcome, Outcome::kWithinGuarantee);
  EXPECT_EQ(c.used, 4);
  EXPECT_EQ(c.guaranteed, 8);
  EXPECT_EQ(c.limit, 16);
  // Used propagates: inst holds 4.
  EXPECT_EQ(q.Used(kInst, 0), 4);
}

TEST(QuotaLedgerTest, LimitAtAnyLevelRefuses) {
  const Snapshot s = Tree();
  QuotaLedger q(s);
  q.AddUsed(kP1, 0, 12);
  // p1: 12 + 8 = 20 > 16 -> refused at p1.
  QuotaCheck c = q.Check(kP1, 0, 8, 100);
  EXPECT_EQ(c.outcome, Outcome::kAtLimit);
  EXPECT_EQ(c.account, kP1);
  EXPECT_EQ(c.used, 12);
  EXPECT_EQ(c.limit, 16);
  // p2 has no limit of its own, but inst: 12 + 14 = 26 > 24 -> refused at inst.
  c = q.Check(kP2, 0, 14, 100);
  EXPECT_EQ(c.outcome, Outcome::kAtLimit);
  EXPECT_EQ(c.account, kInst);
  EXPECT_EQ(c.used, 12);
  EXPECT_EQ(c.limit, 24);
}

TEST(QuotaLedgerTest, BorrowingOnlyFromIdleCapacityNotGuaranteedToWaitingAccounts) {
  const Snapshot s = Tree();
  QuotaLedger q(s);
  q.AddUsed(kP1, 0, 8);
  // p2 waits for 6 GPUs and has 8 guaranteed, 0 used: protected = min(6, 8 - 0) = 6.
  q.AddDemand(kP2, 0, 6);
  EXPECT_EQ(q.ProtectedTotal(0), 6);
  // p1 asks 4 more (8 + 4 > 8 guaranteed -> borrowing). Free 10: borrowable 10 - 6 = 4.
  QuotaCheck c = q.Check(kP1, 0, 4, 10);
  EXPECT_EQ(c.outcome, Outcome::kBorrowing);
  EXPECT_EQ(c.borrowable, 4);
  // Free 9: borrowable 9 - 6 = 3 < 4 -> borrow_limit.
  c = q.Check(kP1, 0, 4, 9);
  EXPECT_EQ(c.outcome, Outcome::kNoBorrowable);
  EXPECT_EQ(c.borrowable, 3);
  // p2 starting its 6 lowers the protection to min(0, 8 - 6) = 0.
  q.Charge(kP2, 0, 6);
  EXPECT_EQ(q.ProtectedTotal(0), 0);
}

TEST(QuotaLedgerTest, AccountWithoutQuotaAlwaysBorrows) {
  const Snapshot s = Tree();
  QuotaLedger q(s);
  const QuotaCheck c = q.Check(kP3, 0, 4, 4);
  EXPECT_EQ(c.outcome, Outcome::kBorrowing);
}

}  // namespace
}  // namespace gsched::core
