// `HaScheduler`: a `gsched-scheduler` that shares an etcd cluster with its peers (DESIGN.md
// section 12): at any time one of them leads and runs the whole service on a `ReplicatedStore`,
// the others are standbys that follow the log into their own RocksDB and answer 503 with the
// leader's address.
//
// One thread moves this scheduler between the roles:
//   standby: follow the log (poll etcd; apply each complete group to RocksDB with its seq), keep
//            a registration key `<prefix>standbys/<name>` alive with this scheduler's lease, and
//            campaign when the leader key is gone; a standby that is behind the start of the log
//            (or new, with an empty database) copies a RocksDB checkpoint from the leader first;
//   leader:  apply the rest of the log, open the service on a `ReplicatedStore` conditioned on the
//            epoch (the leader key's revision), keep the lease alive, trim the log up to what every
//            standby has applied, serve checkpoints; on a lost lease or a refused write, stop the
//            service (no more answers) and become a standby again.
// Every scheduler keeps one listening address across roles.
#pragma once

#include <memory>
#include <string>

#include "config/scheduler_config.h"
#include "scheduler/common/status.h"

namespace gsched::ha {

class HaScheduler {
 public:
  // Shares the token signing key through etcd, opens the local database, starts listening as a
  // standby and starts the role thread. Fails when etcd or the data directory cannot be used.
  static Result<std::unique_ptr<HaScheduler>> Start(config::SchedulerConfig config);
  ~HaScheduler();
  HaScheduler(const HaScheduler&) = delete;
  HaScheduler& operator=(const HaScheduler&) = delete;

  // "HOST:PORT" this scheduler listens on, in either role.
  const std::string& address() const;
  // Stops. A leader stops its service and revokes its lease, so that a standby takes over at once.
  void Stop();

  struct Impl;

 private:
  explicit HaScheduler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gsched::ha
