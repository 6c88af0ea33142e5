#include "config/accounts_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "scheduler/common/quantity.h"

namespace gsched::config {
namespace {

using ::testing::HasSubstr;

std::vector<std::string> Names(const AccountsConfig& c) {
  std::vector<std::string> out;
  for (const AccountSpec& a : c.accounts)
    out.push_back(a.name);
  return out;
}

TEST(AccountsConfigTest, EmptyFileIsJustRoot) {
  Result<AccountsConfig> c = ParseAccountsConfig("", "accounts.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->accounts.size(), 1u);
  EXPECT_EQ(c->accounts[0].name, "root");
  EXPECT_EQ(c->accounts[0].parent, "");
}

TEST(AccountsConfigTest, ReadsAccountsAndOrdersParentsFirst) {
  // Children are listed before their parents; the result is a pre-order walk from root.
  Result<AccountsConfig> c = ParseAccountsConfig(R"(
accounts:
  - name: kaist-nlp
    parent: kaist
    shares: 10
    quotas:
      h100: {guaranteed: 64, limit: 128}
      b200: {guaranteed: 8}
    budget: {gpu_hours: 50000, start: 2027-01-01, end: 2027-12-31}
    on_budget_exhausted: hold
    max_pending_jobs_per_user: 100
    max_running_gpus_per_user: 32
    users: [alice, bob]
  - name: kaist
    parent: universities
    quotas: {h100: {guaranteed: 100}}
  - name: universities
  - name: startups
)",
                                                 "accounts.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(Names(*c),
            (std::vector<std::string>{"root", "universities", "kaist", "kaist-nlp", "startups"}));
  const AccountSpec* nlp = c->Find("kaist-nlp");
  ASSERT_NE(nlp, nullptr);
  EXPECT_EQ(nlp->parent, "kaist");
  EXPECT_EQ(nlp->shares, 10);
  EXPECT_EQ(nlp->quotas.at("h100"), (QuotaSpec{64, 128}));
  EXPECT_EQ(nlp->quotas.at("b200").limit, std::nullopt);
  ASSERT_TRUE(nlp->budget.has_value());
  EXPECT_EQ(nlp->budget->gpu_hours, 50000);
  EXPECT_EQ(FormatTimestamp(nlp->budget->start), "2027-01-01T00:00:00.000Z");
  EXPECT_EQ(nlp->on_budget_exhausted, api::BudgetExhaustedPolicy::kHold);
  EXPECT_EQ(nlp->max_pending_jobs_per_user, 100);
  EXPECT_EQ(nlp->max_running_gpus_per_user, 32);
  EXPECT_EQ(nlp->users, (std::vector<std::string>{"alice", "bob"}));
  const AccountSpec* startups = c->Find("startups");
  EXPECT_EQ(startups->parent, "root");
  EXPECT_EQ(startups->shares, 1);
  EXPECT_EQ(startups->on_budget_exhausted, api::BudgetExhaustedPolicy::kPreemptible);
  EXPECT_EQ(c->Children("root"), (std::vector<std::string>{"universities", "startups"}));
}

TEST(AccountsConfigTest, ToApiAccountIsWhatTheSchedulerAndTheCliPut) {
  Result<AccountsConfig> c = ParseAccountsConfig(R"(
accounts:
  - name: kaist
    shares: 10
    quotas:
      h100: {guaranteed: 64, limit: 128}
      b200: {guaranteed: 8}
    budget: {gpu_hours: 500, start: 2027-01-01, end: 2027-12-31}
    on_budget_exhausted: hold
    max_pending_jobs_per_user: 100
    users: [alice]
)",
                                                 "accounts.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  api::Account a = ToApiAccount(*c->Find("kaist"));
  EXPECT_EQ(a.name, "kaist");
  EXPECT_EQ(a.parent, "root");
  EXPECT_EQ(a.shares, 10);
  EXPECT_EQ(a.quotas.at("h100").guaranteed, 64);
  EXPECT_EQ(a.quotas.at("h100").limit, 128);
  EXPECT_EQ(a.quotas.at("b200").limit, api::kMaxQuotaGpus);  // No cap of its own.
  ASSERT_TRUE(a.budget.has_value());
  EXPECT_EQ(a.budget->gpu_hours, 500);
  EXPECT_EQ(a.on_budget_exhausted, api::BudgetExhaustedPolicy::kHold);
  EXPECT_EQ(a.max_pending_jobs_per_user, 100);
  ASSERT_TRUE(a.users.has_value());
  EXPECT_EQ(*a.users, (std::vector<std::string>{"alice"}));
  EXPECT_EQ(ToApiAccount(*c->Find("root")).parent, "");
}

TEST(AccountsConfigTest, RootMayBeListedToSetItsQuotas) {
  Result<AccountsConfig> c = ParseAccountsConfig(R"(
accounts:
  - name: a
    quotas: {h100: {guaranteed: 60}}
  - name: root
    quotas: {h100: {guaranteed: 100}}
  - name: b
    quotas: {h100: {guaranteed: 40}}
)",
                                                 "accounts.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(Names(*c), (std::vector<std::string>{"root", "a", "b"}));
  EXPECT_EQ(c->accounts[0].quotas.at("h100").guaranteed, 100);
}

struct Rejection {
  std::string yaml;
  std::string field;
  std::string fragment;
};

void PrintTo(const Rejection& r, std::ostream* os) {
  *os << r.yaml;
}

class AccountsConfigRejectionTest : public ::testing::TestWithParam<Rejection> {};

TEST_P(AccountsConfigRejectionTest, NamesPathAndReason) {
  const Rejection& r = GetParam();
  Result<AccountsConfig> c = ParseAccountsConfig(r.yaml, "accounts.yaml");
  ASSERT_FALSE(c.ok()) << r.yaml;
  EXPECT_EQ(c.status().field(), r.field) << c.status().message();
  EXPECT_THAT(c.status().message(), HasSubstr(r.fragment));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, AccountsConfigRejectionTest,
    ::testing::Values(
        Rejection{"accounts: {name: a}\n", "accounts", "must be a list (got a mapping)"},
        Rejection{"accounts: [{shares: 2}]\n", "accounts[0].name", "is required"},
        Rejection{"accounts: [{name: KAIST}]\n", "accounts[0].name", "invalid name 'KAIST'"},
        Rejection{"accounts: [{name: " + std::string(65, 'a') + "}]\n", "accounts[0].name",
                  "use 1..64 characters"},
        Rejection{"accounts: [{name: \"a b\"}]\n", "accounts[0].name", "invalid name"},
        Rejection{"accounts: [{name: a}, {name: b}, {name: a}]\n", "accounts[2].name",
                  "duplicate account 'a' (also accounts[0])"},
        Rejection{"accounts: [{name: a, shares: 0}]\n", "accounts[0].shares", "must be >= 1"},
        Rejection{"accounts: [{name: a, shares: many}]\n", "accounts[0].shares",
                  "must be an integer"},
        Rejection{"accounts: [{name: a, share: 2}]\n", "accounts[0].share",
                  "did you mean 'shares'?"},
        // Tree errors.
        Rejection{"accounts:\n  - {name: kaist-nlp}\n  - {name: a}\n  - {name: b}\n  - {name: c}\n"
                  "  - {name: x, parent: kaist}\n",
                  "accounts[4].parent", "accounts[4].parent: unknown account 'kaist'"},
        Rejection{"accounts: [{name: kaist}, {name: x, parent: kaits}]\n", "accounts[1].parent",
                  "did you mean 'kaist'?"},
        Rejection{"accounts: [{name: a, parent: a}]\n", "accounts[0].parent",
                  "cannot be its own parent"},
        Rejection{"accounts:\n  - {name: a, parent: c}\n  - {name: b, parent: a}\n"
                  "  - {name: c, parent: b}\n",
                  "accounts[0].parent", "cycle in the account tree: a -> c -> b -> a"},
        Rejection{"accounts: [{name: root, parent: x}]\n", "accounts[0].parent",
                  "root has no parent"},
        // Quotas.
        Rejection{"accounts: [{name: a, quotas: {h100: {guaranteed: 64, limit: 32}}}]\n",
                  "accounts[0].quotas.h100.limit", "must be >= guaranteed (64)"},
        Rejection{"accounts: [{name: a, quotas: {h100: {limit: 32}}}]\n",
                  "accounts[0].quotas.h100.guaranteed", "is required"},
        Rejection{"accounts: [{name: a, quotas: {h100: {guaranteed: -1}}}]\n",
                  "accounts[0].quotas.h100.guaranteed", "must be >= 0"},
        Rejection{"accounts: [{name: a, quotas: {h100: {guaranteed: 1, limt: 2}}}]\n",
                  "accounts[0].quotas.h100.limt", "did you mean 'limit'?"},
        Rejection{"accounts: [{name: a, quotas: {h100: 8}}]\n", "accounts[0].quotas.h100",
                  "must be a mapping (got a scalar)"},
        Rejection{"accounts: [{name: a, quotas: {H100: {guaranteed: 1}}}]\n",
                  "accounts[0].quotas.H100", "invalid GPU type name"},
        Rejection{"accounts:\n"
                  "  - {name: kaist, quotas: {h100: {guaranteed: 64}}}\n"
                  "  - {name: kaist-nlp, parent: kaist, quotas: {h100: {guaranteed: 48}}}\n"
                  "  - {name: kaist-cv, parent: kaist, quotas: {h100: {guaranteed: 32}}}\n",
                  "accounts[0].quotas.h100.guaranteed",
                  // 48 + 32 = 80 > 64.
                  "children of 'kaist' are guaranteed 80 h100 GPUs in total (kaist-nlp 48, "
                  "kaist-cv 32), more than its 64"},
        Rejection{"accounts:\n"
                  "  - {name: root, quotas: {b200: {guaranteed: 10}}}\n"
                  "  - {name: a, quotas: {b200: {guaranteed: 11}}}\n",
                  "accounts[0].quotas.b200.guaranteed", "more than its 10"},
        // Budgets.
        Rejection{"accounts: [{name: a, budget: {gpu_hours: 10, start: 2027-06-01, end: "
                  "2027-01-01}}]\n",
                  "accounts[0].budget.end", "must be after start (2027-06-01T00:00:00.000Z)"},
        Rejection{"accounts: [{name: a, budget: {gpu_hours: 0, start: 2027-01-01, end: "
                  "2028-01-01}}]\n",
                  "accounts[0].budget.gpu_hours", "must be > 0"},
        Rejection{"accounts: [{name: a, budget: {gpu_hours: 10, start: 2027-13-01, end: "
                  "2028-01-01}}]\n",
                  "accounts[0].budget.start", "invalid time '2027-13-01'"},
        Rejection{"accounts: [{name: a, budget: {gpu_hours: 10, end: 2028-01-01}}]\n",
                  "accounts[0].budget.start", "is required"},
        Rejection{"accounts: [{name: a, on_budget_exhausted: wait}]\n",
                  "accounts[0].on_budget_exhausted",
                  "unknown value 'wait'; (one of: preemptible, hold)"},
        // Per-user limits and users.
        Rejection{"accounts: [{name: a, max_running_gpus_per_user: 0}]\n",
                  "accounts[0].max_running_gpus_per_user", "must be >= 1"},
        Rejection{"accounts: [{name: a, max_pending_jobs_per_user: -1}]\n",
                  "accounts[0].max_pending_jobs_per_user", "must be >= 0"},
        Rejection{"accounts: [{name: a, users: [alice, alice]}]\n", "accounts[0].users[1]",
                  "user 'alice' is listed twice"},
        Rejection{"accounts: [{name: a, users: alice}]\n", "accounts[0].users",
                  "must be a list (got a scalar)"},
        Rejection{"accounts:\n  - {name: a, users: [alice]}\n  - {name: b, parent: a}\n",
                  "accounts[0].users", "users belong to leaf accounts; 'a' has child accounts (b)"},
        Rejection{"accounts:\n  - {name: a}\n  - {name: a}\n", "accounts[1].name",
                  "duplicate account"},
        Rejection{"accounts:\n  - name: a\n    name: b\n", "accounts[0].name", "duplicate key"}));

TEST(AccountsConfigTest, ReportsManyTreeErrorsTogether) {
  Result<AccountsConfig> c = ParseAccountsConfig(R"(accounts:
  - name: a
    shares: 0
  - name: b
    parent: nowhere
  - name: c
    quotas: {h100: {guaranteed: 10, limit: 5}}
)",
                                                 "accounts.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().field(), "accounts[0].shares");
  EXPECT_EQ(c.status().message(),
            "accounts[0].shares: must be >= 1 (got 0)\n"
            "accounts[1].parent: unknown account 'nowhere'\n"
            "accounts[2].quotas.h100.limit: must be >= guaranteed (10)");
}

TEST(AccountsConfigTest, ValidateAgainstACluster) {
  Result<ClusterConfig> cluster = ParseClusterConfig(R"(
sites: [{name: s, blocks: [{name: b, nodes: [
  {count: 4, name: "h{index}", gpu_type: h100, cpus: 8, memory: 1T}]}]}]
)",
                                                     "c.yaml");
  ASSERT_TRUE(cluster.ok()) << cluster.status().message();
  // 4 nodes x 8 = 32 h100.
  Result<AccountsConfig> fits = ParseAccountsConfig(
      "accounts: [{name: a, quotas: {h100: {guaranteed: 20}}}, {name: b, quotas: {h100: "
      "{guaranteed: 12}}}]\n",
      "a.yaml");
  ASSERT_TRUE(fits.ok());
  EXPECT_TRUE(ValidateAccountsForCluster(*fits, *cluster).ok());

  // 20 + 13 = 33 > 32; and the cluster has no a100.
  Result<AccountsConfig> over = ParseAccountsConfig(
      "accounts: [{name: a, quotas: {h100: {guaranteed: 20}}}, {name: b, quotas: {h100: "
      "{guaranteed: 13}, a100: {guaranteed: 1}}}]\n",
      "a.yaml");
  ASSERT_TRUE(over.ok());
  Status s = ValidateAccountsForCluster(*over, *cluster);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("accounts.b.quotas.a100: unknown GPU type 'a100'"));
  EXPECT_THAT(s.message(),
              HasSubstr("accounts.root.quotas.h100: 33 h100 GPUs are guaranteed but the cluster "
                        "has 32"));
}

}  // namespace
}  // namespace gsched::config
