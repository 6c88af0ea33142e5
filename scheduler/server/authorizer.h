// `Authorizer`: every "may this caller see or do this" decision of the scheduler's state, in one
// place (DESIGN.md sections 5 and 11). Roles: `user` (own jobs; submit to own accounts),
// `coordinator` (jobs and users of its accounts' subtrees), `admin` (everything), `worker` (the
// worker channel, for the nodes its token names, and nothing else).
//
// Owns nothing: it reads the account tree of `ClusterState` (for subtrees) through a reference.
// Pure; no I/O. Threading: called on the service's state thread, like the tree it reads.
#pragma once

#include <map>
#include <string>

#include "scheduler/api/types.h"
#include "scheduler/common/status.h"
#include "scheduler/server/change.h"

namespace gsched::server {

class Authorizer {
 public:
  explicit Authorizer(const std::map<std::string, api::Account>& accounts) : accounts_(accounts) {}

  // Actions that depend on the role alone.
  enum class Action {
    kSubmit,          // Not workers (the account is checked by `MayActForAccount`).
    kChangeAccounts,  // `PUT /v1/accounts/{name}`: admins.
    kDrainNode,       // Admins.
    kResumeNode,      // Admins.
    kRevokeToken,     // Admins.
    kConnectWorker,   // The worker channel: worker tokens only.
  };
  // Ok, or `permission_denied` with the message the API answers.
  static Status Check(const Principal& who, Action action);

  // Whether `account` is `root` or below it.
  bool InSubtree(const std::string& account, const std::string& root) const;
  // Whether `who` may act on jobs of `account`: submit to it, see and stop its jobs (a user's own
  // accounts, a coordinator's subtrees, admins all).
  bool MayActForAccount(const Principal& who, const std::string& account) const;
  // Whether `who` may see `job` (and so name it anywhere: a job it may not see answers 404):
  // admins all, coordinators their subtrees', users their own.
  bool MaySeeJob(const Principal& who, const api::Job& job) const;
  // A job it may see that `who` may not stop (a coordinator's are all its own to stop; a user's
  // are only their own): the message, else empty.
  std::string MayNotStop(const Principal& who, const api::Job& job) const;
  // Whether `who` may release the hold on `job`: only someone at least as senior as whoever
  // placed it. Ok, or `permission_denied` saying who may.
  static Status MayRelease(const Principal& who, const api::Job& job);
  // Whether a hold by `who` replaces the hold already on `job` (a more senior hold takes over).
  static bool HoldTakesOver(const Principal& who, const api::Job& job);
  // Whether a worker token may speak for `node` (a stolen one cannot say hello as another node).
  static Status MayServeNode(const Principal& who, const std::string& node);

  // How much of `account` `who` may read: all of it, an outline (no members, no budget: the
  // accounts below and above a user's own, the ancestors of a coordinator's subtrees), or none.
  enum class AccountView { kNone, kOutline, kWhole };
  AccountView ViewOfAccount(const Principal& who, const std::string& account) const;
  // Whether `who` may see the usage of `user` in `account` (admins all, coordinators their
  // subtrees, users their own).
  bool MaySeeUsage(const Principal& who, const std::string& account, const std::string& user) const;

 private:
  const std::map<std::string, api::Account>& accounts_;
};

}  // namespace gsched::server
