// Every "may this caller see or do this" of the scheduler's state, as one table: roles (user,
// coordinator, admin, worker) x actions x whose the thing is.
#include "scheduler/server/authorizer.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace gsched::server {
namespace {

// root > inst > {lab, other-lab}; elsewhere below root.
std::map<std::string, api::Account> Tree() {
  std::map<std::string, api::Account> t;
  for (auto [name, parent] : {std::pair{"root", ""},
                              {"inst", "root"},
                              {"lab", "inst"},
                              {"other-lab", "inst"},
                              {"elsewhere", "root"}}) {
    api::Account a;
    a.name = name;
    a.parent = parent;
    t[name] = a;
  }
  return t;
}

const Principal kUser{"alice", api::Role::kUser, {"lab"}, "tok_u", {}};
const Principal kCoordinator{"carol", api::Role::kCoordinator, {"inst"}, "tok_c", {}};
const Principal kAdmin{"root", api::Role::kAdmin, {}, "tok_a", {}};
const Principal kWorker{"w", api::Role::kWorker, {}, "tok_w", {}, {"gpu-a*"}};

api::Job JobOf(const std::string& user, const std::string& account) {
  api::Job j;
  j.id = 7;
  j.user = user;
  j.spec.account = account;
  return j;
}

TEST(AuthorizerTest, RoleActions) {
  using A = Authorizer::Action;
  struct Row {
    A action;
    bool user, coordinator, admin, worker;
  };
  const std::vector<Row> table = {
      {A::kSubmit, true, true, true, false},        {A::kChangeAccounts, false, false, true, false},
      {A::kDrainNode, false, false, true, false},   {A::kResumeNode, false, false, true, false},
      {A::kRevokeToken, false, false, true, false}, {A::kConnectWorker, false, false, false, true},
  };
  for (const Row& r : table) {
    SCOPED_TRACE(static_cast<int>(r.action));
    EXPECT_EQ(Authorizer::Check(kUser, r.action).ok(), r.user);
    EXPECT_EQ(Authorizer::Check(kCoordinator, r.action).ok(), r.coordinator);
    EXPECT_EQ(Authorizer::Check(kAdmin, r.action).ok(), r.admin);
    EXPECT_EQ(Authorizer::Check(kWorker, r.action).ok(), r.worker);
    if (!r.user) {
      EXPECT_EQ(Authorizer::Check(kUser, r.action).code(), StatusCode::kPermissionDenied);
    }
  }
}

TEST(AuthorizerTest, JobsByOwnership) {
  const auto tree = Tree();
  const Authorizer auth(tree);
  // Whose job: own in own account, another user's in own account, another user's in a sibling
  // account of the coordinator's subtree, another user's outside it.
  struct Row {
    const char* name;
    api::Job job;
    // MaySeeJob (and act on its account) for user, coordinator, admin, worker.
    bool user, coordinator, admin, worker;
    bool user_may_stop;  // Of those the user may see.
  };
  const std::vector<Row> table = {
      {"own", JobOf("alice", "lab"), true, true, true, false, true},
      {"colleague's", JobOf("bob", "lab"), false, true, true, false, false},
      {"in the subtree", JobOf("bob", "other-lab"), false, true, true, false, false},
      {"outside", JobOf("bob", "elsewhere"), false, false, true, false, false},
  };
  for (const Row& r : table) {
    SCOPED_TRACE(r.name);
    EXPECT_EQ(auth.MaySeeJob(kUser, r.job), r.user);
    EXPECT_EQ(auth.MaySeeJob(kCoordinator, r.job), r.coordinator);
    EXPECT_EQ(auth.MaySeeJob(kAdmin, r.job), r.admin);
    EXPECT_EQ(auth.MaySeeJob(kWorker, r.job), r.worker);
    EXPECT_EQ(auth.MayNotStop(kUser, r.job).empty(), r.user_may_stop);
    EXPECT_TRUE(auth.MayNotStop(kCoordinator, r.job).empty());
    EXPECT_TRUE(auth.MayNotStop(kAdmin, r.job).empty());
  }
}

TEST(AuthorizerTest, AccountsByRole) {
  const auto tree = Tree();
  const Authorizer auth(tree);
  using V = Authorizer::AccountView;
  struct Row {
    const char* account;
    bool user_acts, coordinator_acts;  // Submit to it, act on its jobs.
    V user, coordinator;
  };
  const std::vector<Row> table = {
      {"lab", true, true, V::kWhole, V::kWhole},
      {"other-lab", false, true, V::kNone, V::kWhole},
      {"inst", false, true, V::kOutline, V::kWhole},
      {"root", false, false, V::kOutline, V::kOutline},
      {"elsewhere", false, false, V::kNone, V::kNone},
  };
  for (const Row& r : table) {
    SCOPED_TRACE(r.account);
    EXPECT_EQ(auth.MayActForAccount(kUser, r.account), r.user_acts);
    EXPECT_EQ(auth.MayActForAccount(kCoordinator, r.account), r.coordinator_acts);
    EXPECT_TRUE(auth.MayActForAccount(kAdmin, r.account));
    EXPECT_FALSE(auth.MayActForAccount(kWorker, r.account));
    EXPECT_EQ(auth.ViewOfAccount(kUser, r.account), r.user);
    EXPECT_EQ(auth.ViewOfAccount(kCoordinator, r.account), r.coordinator);
    EXPECT_EQ(auth.ViewOfAccount(kAdmin, r.account), V::kWhole);
    EXPECT_EQ(auth.ViewOfAccount(kWorker, r.account), V::kNone);
  }
  // A user's outline reaches below their own accounts too.
  const Principal inst_user{"ivan", api::Role::kUser, {"inst"}, "tok_i", {}};
  EXPECT_EQ(auth.ViewOfAccount(inst_user, "lab"), V::kOutline);
  EXPECT_EQ(auth.ViewOfAccount(inst_user, "inst"), V::kWhole);
}

TEST(AuthorizerTest, UsageByRoleAndOwnership) {
  const auto tree = Tree();
  const Authorizer auth(tree);
  struct Row {
    const char* account;
    const char* user;
    bool as_user, as_coordinator;
  };
  const std::vector<Row> table = {
      {"lab", "alice", true, true},
      {"lab", "bob", false, true},
      {"other-lab", "alice", true, true},  // A user's own usage wherever it was.
      {"elsewhere", "bob", false, false},
  };
  for (const Row& r : table) {
    SCOPED_TRACE(std::string(r.account) + "/" + r.user);
    EXPECT_EQ(auth.MaySeeUsage(kUser, r.account, r.user), r.as_user);
    EXPECT_EQ(auth.MaySeeUsage(kCoordinator, r.account, r.user), r.as_coordinator);
    EXPECT_TRUE(auth.MaySeeUsage(kAdmin, r.account, r.user));
    EXPECT_FALSE(auth.MaySeeUsage(kWorker, r.account, r.user));
  }
}

TEST(AuthorizerTest, HoldsAreReleasedOnlyByTheSameRankOrHigher) {
  // Placed by (rows) x released by (columns: user, coordinator, admin).
  struct Row {
    std::optional<api::Role> placed;
    bool user, coordinator, admin;
  };
  const std::vector<Row> table = {
      {std::nullopt, true, true, true},  // Not held by anyone recorded.
      {api::Role::kUser, true, true, true},
      {api::Role::kCoordinator, false, true, true},
      {api::Role::kAdmin, false, false, true},
  };
  for (const Row& r : table) {
    SCOPED_TRACE(r.placed ? std::string(api::ToString(*r.placed)) : "none");
    api::Job job = JobOf("alice", "lab");
    job.held = true;
    job.held_by_role = r.placed;
    EXPECT_EQ(Authorizer::MayRelease(kUser, job).ok(), r.user);
    EXPECT_EQ(Authorizer::MayRelease(kCoordinator, job).ok(), r.coordinator);
    EXPECT_EQ(Authorizer::MayRelease(kAdmin, job).ok(), r.admin);
    // A hold by someone more senior than the placer takes the hold over.
    EXPECT_EQ(Authorizer::HoldTakesOver(kAdmin, job), !r.placed || *r.placed != api::Role::kAdmin);
  }
}

TEST(AuthorizerTest, WorkersServeOnlyTheirNodes) {
  EXPECT_TRUE(Authorizer::MayServeNode(kWorker, "gpu-a01").ok());
  Status other = Authorizer::MayServeNode(kWorker, "gpu-b01");
  EXPECT_EQ(other.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(other.field(), "node");
  for (const Principal* p : {&kUser, &kCoordinator, &kAdmin})
    EXPECT_EQ(Authorizer::MayServeNode(*p, "gpu-a01").code(), StatusCode::kPermissionDenied);
}

TEST(AuthorizerTest, SubtreesFollowParentsAndStopAtUnknownAccounts) {
  const auto tree = Tree();
  const Authorizer auth(tree);
  EXPECT_TRUE(auth.InSubtree("lab", "root"));
  EXPECT_TRUE(auth.InSubtree("lab", "inst"));
  EXPECT_TRUE(auth.InSubtree("lab", "lab"));
  EXPECT_FALSE(auth.InSubtree("inst", "lab"));
  EXPECT_FALSE(auth.InSubtree("elsewhere", "inst"));
  EXPECT_FALSE(auth.InSubtree("nowhere", "root"));
}

}  // namespace
}  // namespace gsched::server
