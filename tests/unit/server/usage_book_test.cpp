// The usage book on its own: an ended attempt's charge (normalised GPU-seconds at its rate), its
// decay over the half-life, budgets charged on the account and every ancestor within each
// budget's period, the records it writes and reads back, and the hourly ledger behind
// `GET /v1/usage`. A memory store; times are whole hours from `kT0` so that the arithmetic shows.
#include "scheduler/server/usage_book.h"

#include <gtest/gtest.h>

#include "scheduler/state/memory_store.h"

namespace gsched::server {
namespace {

constexpr Duration kHalfLife = Seconds(7 * 86400);
constexpr Duration kHour = Seconds(3600);
// A whole hour (1,800,000,000 s = 500,000 h), so ledger hours start at `kT0 + n * kHour`.
constexpr Timestamp kT0 = FromUnixSeconds(1'800'000'000);

class UsageBookTest : public ::testing::Test {
 protected:
  UsageBookTest() {
    // root > inst > lab, and root > other. `inst` and `lab` have budgets; `root` has none.
    Account("root", "");
    Account("inst", "root").budget = api::Budget{1000, kT0, kT0 + 10 * kHour};
    Account("lab", "inst").budget = api::Budget{100, kT0, kT0 + 100 * kHour};
    Account("other", "root");
  }
  api::Account& Account(const std::string& name, const std::string& parent) {
    api::Account& a = accounts_[name];
    a.name = name;
    a.parent = parent;
    return a;
  }
  static api::Job Job(uint64_t id, const std::string& account, const std::string& user = "alice",
                      uint32_t attempt = 1) {
    api::Job j;
    j.id = id;
    j.spec.account = account;
    j.user = user;
    j.attempt = attempt;
    return j;
  }
  // Charges one ended attempt and commits what it wrote.
  Change Charge(const api::Job& job, double gpus, Timestamp start, Timestamp end, double rate = 1.0,
                double cost = 1.0, const std::string& type = "h100") {
    Change change;
    book_.ChargeAttempt(change, accounts_, job, type, cost, gpus, start, end, rate);
    EXPECT_TRUE(store_.Commit(change.batch).ok());
    return change;
  }
  UsageBook::Sums Ledger(Timestamp since, Timestamp until) const {
    UsageBook::Sums sums;
    EXPECT_TRUE(UsageBook::ReadLedger(
                    store_, since, until, [](const auto&, const auto&) { return true; }, sums)
                    .ok());
    return sums;
  }
  static std::vector<std::string> Keys(const Change& c) {
    std::vector<std::string> keys;
    for (const state::Mutation& m : c.batch.mutations())
      keys.push_back(m.key);
    return keys;
  }

  std::map<std::string, api::Account> accounts_;
  UsageBook book_{kHalfLife};
  state::MemoryStore store_;
};

TEST_F(UsageBookTest, AnEndedAttemptIsChargedInNormalisedGpuSecondsAtItsRate) {
  // 2 GPUs x cost 1.0 x 3600 s = 7,200.
  Charge(Job(1, "other"), 2, kT0, kT0 + kHour);
  EXPECT_DOUBLE_EQ(book_.DecayedSeconds("other", kT0 + kHour), 7200);
  // 1 GPU x cost 2.0 (b200) x 3600 s = 7,200 more.
  Charge(Job(2, "other"), 1, kT0, kT0 + kHour, 1.0, 2.0, "b200");
  EXPECT_DOUBLE_EQ(book_.DecayedSeconds("other", kT0 + kHour), 14400);
  // A preempted attempt at `usage_charge` 0.25: 4 x 1.0 x 3600 x 0.25 = 3,600 more.
  Charge(Job(3, "other"), 4, kT0, kT0 + kHour, 0.25);
  EXPECT_DOUBLE_EQ(book_.DecayedSeconds("other", kT0 + kHour), 18000);
  EXPECT_DOUBLE_EQ(book_.DecayedSeconds("nobody", kT0), 0);
}

TEST_F(UsageBookTest, UsageHalvesEveryHalfLife) {
  Charge(Job(1, "other"), 2, kT0, kT0 + kHour);  // 7,200 as of kT0 + 1 h.
  const Timestamp end = kT0 + kHour;
  EXPECT_DOUBLE_EQ(book_.DecayedSeconds("other", end + kHalfLife), 3600);
  EXPECT_DOUBLE_EQ(book_.DecayedSeconds("other", end + 2 * kHalfLife), 1800);
  // Read before it was recorded: as it is.
  EXPECT_DOUBLE_EQ(book_.DecayedSeconds("other", kT0), 7200);
  // An attempt ending one half-life later: 7,200 decays to 3,600, plus 3,600 (1 GPU, 1 h).
  Charge(Job(2, "other"), 1, end + kHalfLife - kHour, end + kHalfLife);
  EXPECT_DOUBLE_EQ(book_.DecayedSeconds("other", end + kHalfLife), 7200);
}

TEST_F(UsageBookTest, BudgetsAreChargedOnTheAccountAndEveryAncestorWithinTheirPeriods) {
  // 4 GPUs x cost 1.0 x rate 0.5 = 2 normalised GPUs held over [kT0 + 8 h, kT0 + 12 h):
  //   lab  (period 0-100 h): all 4 h -> 8 GPU-hours;
  //   inst (period 0-10 h):  only 8-10 h -> 4 GPU-hours;
  //   root has no budget.
  Change c = Charge(Job(1, "lab"), 4, kT0 + 8 * kHour, kT0 + 12 * kHour, 0.5);
  EXPECT_DOUBLE_EQ(book_.BudgetUsed("lab"), 8);
  EXPECT_DOUBLE_EQ(book_.BudgetUsed("inst"), 4);
  EXPECT_DOUBLE_EQ(book_.BudgetUsed("root"), 0);
  // Only `lab` gets fair-share usage: 4 x 1.0 x 4 h x 3600 x 0.5 = 28,800.
  EXPECT_DOUBLE_EQ(book_.DecayedSeconds("lab", kT0 + 12 * kHour), 28800);
  EXPECT_DOUBLE_EQ(book_.DecayedSeconds("inst", kT0 + 12 * kHour), 0);
  // Records written: `lab`'s, `inst`'s (an ancestor with a budget), none for `root`.
  std::vector<std::string> accounts;
  for (const std::string& k : Keys(c)) {
    if (k.rfind("!ledger/", 0) != 0)
      accounts.push_back(k);
  }
  EXPECT_EQ(accounts, (std::vector<std::string>{"inst", "lab"}));
  // Outside every period: nothing more.
  Charge(Job(2, "lab"), 4, kT0 + 200 * kHour, kT0 + 201 * kHour);
  EXPECT_DOUBLE_EQ(book_.BudgetUsed("lab"), 8);
  EXPECT_DOUBLE_EQ(book_.BudgetUsed("inst"), 4);
}

TEST_F(UsageBookTest, WhatItWroteLoadsBackAfterARestart) {
  Charge(Job(1, "lab"), 2, kT0, kT0 + 2 * kHour);  // lab: 14,400 s; budgets 4 h each.
  Charge(Job(2, "other"), 1, kT0, kT0 + kHour);    // other: 3,600 s.
  UsageBook restarted(kHalfLife);
  std::vector<std::string> quarantined;
  ASSERT_TRUE(restarted
                  .Load(store_,
                        [&](std::string_view key, std::string_view, std::string) {
                          quarantined.emplace_back(key);
                          return true;
                        })
                  .ok());
  const Timestamp now = kT0 + 2 * kHour + kHalfLife;
  EXPECT_DOUBLE_EQ(restarted.DecayedSeconds("lab", now), book_.DecayedSeconds("lab", now));
  EXPECT_DOUBLE_EQ(restarted.DecayedSeconds("lab", now), 7200);  // 14,400 halved.
  EXPECT_DOUBLE_EQ(restarted.DecayedSeconds("other", kT0 + kHour), 3600);
  EXPECT_DOUBLE_EQ(restarted.BudgetUsed("lab"), 4);
  EXPECT_DOUBLE_EQ(restarted.BudgetUsed("inst"), 4);
  // The ledger rows share the family but are not accounts.
  EXPECT_TRUE(quarantined.empty());
}

TEST_F(UsageBookTest, AMalformedRecordIsQuarantinedAndTheRestLoads) {
  Charge(Job(1, "other"), 1, kT0, kT0 + kHour);
  state::WriteBatch bad;
  bad.Put(state::Family::kUsage, "lab", R"({"value": "lots"})");
  ASSERT_TRUE(store_.Commit(std::move(bad)).ok());
  UsageBook restarted(kHalfLife);
  std::vector<std::string> quarantined;
  ASSERT_TRUE(restarted
                  .Load(store_,
                        [&](std::string_view key, std::string_view, std::string why) {
                          quarantined.push_back(std::string(key) + ": " + why);
                          return true;
                        })
                  .ok());
  EXPECT_EQ(quarantined, (std::vector<std::string>{"lab: malformed usage"}));
  EXPECT_DOUBLE_EQ(restarted.DecayedSeconds("other", kT0 + kHour), 3600);
}

TEST_F(UsageBookTest, TheLedgerSplitsAnAttemptOverTheHoursItSpanned) {
  // 1 GPU x cost 1.0 from 10:30 to 12:15 (relative to kT0): 1.75 GPU-hours, as
  // hour 10: 0.5, hour 11: 1.0, hour 12: 0.25.
  const Timestamp start = kT0 + 10 * kHour + Seconds(1800);
  const Timestamp end = kT0 + 12 * kHour + Seconds(900);
  Change c = Charge(Job(7, "lab", "alice", 2), 1, start, end);
  size_t rows = 0;
  for (const std::string& k : Keys(c))
    rows += k.rfind("!ledger/", 0) == 0 ? 1 : 0;
  EXPECT_EQ(rows, 3u);
  const auto key = std::make_tuple(std::string("lab"), std::string("alice"), std::string("h100"));
  EXPECT_DOUBLE_EQ(Ledger(kT0 + 10 * kHour, kT0 + 13 * kHour).at(key), 1.75);
  EXPECT_DOUBLE_EQ(Ledger(kT0 + 11 * kHour, kT0 + 12 * kHour).at(key), 1.0);
  // Whole hours: `since` rounds down, `until` up, so 11:20-11:40 reads hour 11.
  EXPECT_DOUBLE_EQ(
      Ledger(kT0 + 11 * kHour + Seconds(1200), kT0 + 11 * kHour + Seconds(2400)).at(key), 1.0);
  EXPECT_DOUBLE_EQ(Ledger(kT0 + 12 * kHour, kT0 + 20 * kHour).at(key), 0.25);
  EXPECT_TRUE(Ledger(kT0 + 13 * kHour, kT0 + 20 * kHour).empty());
  // A preempted attempt's rows are at its rate: 2 GPUs x 1 h x 0.5 = 1.0.
  Charge(Job(8, "lab", "bob"), 2, kT0 + 11 * kHour, kT0 + 12 * kHour, 0.5);
  EXPECT_DOUBLE_EQ(
      Ledger(kT0 + 11 * kHour, kT0 + 12 * kHour)
          .at(std::make_tuple(std::string("lab"), std::string("bob"), std::string("h100"))),
      1.0);
}

TEST_F(UsageBookTest, TheLedgerShowsOnlyWhatTheCallerMaySee) {
  Charge(Job(1, "lab", "alice"), 1, kT0, kT0 + kHour);
  Charge(Job(2, "other", "bob"), 1, kT0, kT0 + kHour);
  UsageBook::Sums sums;
  ASSERT_TRUE(UsageBook::ReadLedger(
                  store_, kT0, kT0 + kHour,
                  [](const std::string& account, const std::string&) { return account == "lab"; },
                  sums)
                  .ok());
  ASSERT_EQ(sums.size(), 1u);
  EXPECT_EQ(std::get<1>(sums.begin()->first), "alice");
  EXPECT_DOUBLE_EQ(sums.begin()->second, 1.0);
}

}  // namespace
}  // namespace gsched::server
