#include "scheduler/server/authorizer.h"

#include <algorithm>

namespace gsched::server {
namespace {

// Seniority of a hold's placer.
int HoldRank(api::Role role) {
  switch (role) {
    case api::Role::kAdmin:
      return 3;
    case api::Role::kCoordinator:
      return 2;
    case api::Role::kUser:
    case api::Role::kWorker:
      return 1;
  }
  return 1;
}

}  // namespace

Status Authorizer::Check(const Principal& who, Action action) {
  const bool admin = who.role == api::Role::kAdmin;
  switch (action) {
    case Action::kSubmit:
      if (who.role == api::Role::kWorker)
        return Status::PermissionDenied("workers may not submit jobs");
      return Status::Ok();
    case Action::kChangeAccounts:
      return admin ? Status::Ok() : Status::PermissionDenied("only admins change accounts");
    case Action::kDrainNode:
      return admin ? Status::Ok() : Status::PermissionDenied("only admins drain nodes");
    case Action::kResumeNode:
      return admin ? Status::Ok() : Status::PermissionDenied("only admins resume nodes");
    case Action::kRevokeToken:
      return admin ? Status::Ok() : Status::PermissionDenied("only admins revoke tokens");
    case Action::kConnectWorker:
      if (who.role != api::Role::kWorker)
        return Status::PermissionDenied("only worker tokens may connect as a worker");
      return Status::Ok();
  }
  return Status::PermissionDenied("not allowed");
}

bool Authorizer::InSubtree(const std::string& account, const std::string& root) const {
  std::string cur = account;
  for (int depth = 0; depth < 64 && !cur.empty(); ++depth) {
    if (cur == root)
      return true;
    auto it = accounts_.find(cur);
    if (it == accounts_.end())
      return false;
    cur = it->second.parent;
  }
  return false;
}

bool Authorizer::MayActForAccount(const Principal& who, const std::string& account) const {
  switch (who.role) {
    case api::Role::kAdmin:
      return true;
    case api::Role::kCoordinator:
      return std::any_of(who.accounts.begin(), who.accounts.end(),
                         [&](const std::string& a) { return InSubtree(account, a); });
    case api::Role::kUser:
      return std::find(who.accounts.begin(), who.accounts.end(), account) != who.accounts.end();
    case api::Role::kWorker:
      return false;
  }
  return false;
}

bool Authorizer::MaySeeJob(const Principal& who, const api::Job& job) const {
  if (who.role == api::Role::kAdmin)
    return true;
  if (who.role == api::Role::kCoordinator)
    return MayActForAccount(who, job.spec.account);
  return who.role == api::Role::kUser && job.user == who.user;
}

std::string Authorizer::MayNotStop(const Principal& who, const api::Job& job) const {
  if (who.role == api::Role::kUser && job.user != who.user)
    return "job " + std::to_string(job.id) + " belongs to another user";
  return {};
}

Status Authorizer::MayRelease(const Principal& who, const api::Job& job) {
  if (!job.held || !job.held_by_role || HoldRank(*job.held_by_role) <= HoldRank(who.role))
    return Status::Ok();
  return Status::PermissionDenied(
      "job " + std::to_string(job.id) + " was held by " +
      std::string(api::ToString(*job.held_by_role)) + " '" + job.held_by + "'; only " +
      (*job.held_by_role == api::Role::kAdmin ? "an admin" : "a coordinator or an admin") +
      " may release it");
}

bool Authorizer::HoldTakesOver(const Principal& who, const api::Job& job) {
  int placed = job.held && job.held_by_role ? HoldRank(*job.held_by_role) : 0;
  return HoldRank(who.role) > placed;
}

Status Authorizer::MayServeNode(const Principal& who, const std::string& node) {
  RETURN_IF_ERROR(Check(who, Action::kConnectWorker));
  if (!std::any_of(who.nodes.begin(), who.nodes.end(), [&](const std::string& pattern) {
        return api::NodePatternCovers(pattern, node);
      })) {
    return Status(StatusCode::kPermissionDenied,
                  "token " + who.token_id + " may not serve node '" + node + "'", "node");
  }
  return Status::Ok();
}

Authorizer::AccountView Authorizer::ViewOfAccount(const Principal& who,
                                                  const std::string& account) const {
  if (who.role == api::Role::kAdmin)
    return AccountView::kWhole;
  if (who.role == api::Role::kWorker)
    return AccountView::kNone;
  auto any = [&](auto pred) { return std::any_of(who.accounts.begin(), who.accounts.end(), pred); };
  // Whole: a user's own accounts, a coordinator's subtrees.
  if (any([&](const std::string& a) {
        return who.role == api::Role::kCoordinator ? InSubtree(account, a) : account == a;
      })) {
    return AccountView::kWhole;
  }
  // Outlines: below a user's own, and the ancestors of every one of them, so that the tree and
  // the quotas that bind a job can be read.
  if (any([&](const std::string& a) { return InSubtree(account, a) || InSubtree(a, account); }))
    return AccountView::kOutline;
  return AccountView::kNone;
}

bool Authorizer::MaySeeUsage(const Principal& who, const std::string& account,
                             const std::string& user) const {
  switch (who.role) {
    case api::Role::kAdmin:
      return true;
    case api::Role::kCoordinator:
      return MayActForAccount(who, account);
    case api::Role::kUser:
      return user == who.user;
    case api::Role::kWorker:
      return false;
  }
  return false;
}

}  // namespace gsched::server
