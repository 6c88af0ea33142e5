// `IdentityResolver`: the POSIX identity a user's jobs run under on this node (DESIGN.md
// section 11, worker config `identity`).
//
// Modes: `nss` asks the node's user database (getpwnam_r, getgrouplist), `map` reads a file of
// `user: uid:gid[,group...]` lines (re-read when it changes; it must belong to root or the
// worker and be writable by no one else), `pool` hands each user a block of
// `pool.ids_per_user` ids on first use, kept in a file so that a user keeps their ids across
// restarts and no two users ever share one.
//
// Invariants of every identity returned: uid and gid are not 0 and not below `min_uid` (gids: not
// 0), no supplementary group is 0 - unless `run_as_root` (development) is set, which returns the
// worker's own ids. A worker that is not root cannot switch users: it returns its own ids
// (`switch_user` false) and every job runs as the worker's user.
//
// Threading: `Resolve` is thread-safe (one mutex).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "config/worker_config.h"
#include "scheduler/common/status.h"

namespace gsched::worker {

struct JobIdentity {
  uint32_t uid = 0;  // On the host.
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  // Supplementary groups.
  // Pool mode: container ids 0..userns_size-1 are host ids uid..uid+userns_size-1 (a user
  // namespace, container root being `uid`); 0 means no user namespace.
  uint32_t userns_size = 0;
  // Whether the job must change to these ids (false: they are the worker's own).
  bool switch_user = true;

  friend bool operator==(const JobIdentity&, const JobIdentity&) = default;
};

class IdentityResolver {
 public:
  // `pool_file` keeps pool assignments (`work_dir/identities`).
  IdentityResolver(config::IdentityConfig config, std::string pool_file);

  // The identity of `user`'s jobs; FailedPrecondition with a message a user can act on when the
  // user has none on this node.
  Result<JobIdentity> Resolve(const std::string& user);

  // One line for the worker's start-up log: the mode, and what it means here.
  std::string Describe() const;

 private:
  Result<JobIdentity> FromNss(const std::string& user) const;
  Result<JobIdentity> FromMap(const std::string& user);
  Result<JobIdentity> FromPool(const std::string& user);
  Status Check(const std::string& user, const JobIdentity& id) const;

  const config::IdentityConfig config_;
  const std::string pool_file_;
  std::mutex mu_;
  // `map` mode: the file's entries and the (mtime, size) they were read at.
  std::map<std::string, JobIdentity> map_;
  std::pair<int64_t, int64_t> map_version_{-1, -1};
  // `pool` mode: user -> block index, loaded on first use.
  std::map<std::string, int64_t> pool_;
  bool pool_loaded_ = false;
};

// Parses a map file's text: `user: uid:gid[,group...]` per line, `#` comments, blank lines.
// Errors name the line.
Result<std::map<std::string, JobIdentity>> ParseIdentityMap(std::string_view text);

}  // namespace gsched::worker
