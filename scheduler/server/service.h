// `SchedulerService`: the running `gsched-scheduler` - the store, the state, the scheduling loop,
// the REST API and the worker channel wired together (DESIGN.md sections 3 to 5).
//
// Threads:
//   - network threads (the HTTP server's pool) parse requests, verify token signatures and decode
//     bodies, then hand the request to the state thread;
//   - the state thread owns `ClusterState`: every read and change of the state happens there;
//   - the scheduling thread runs `core::Schedule` on a snapshot, off the state thread, and hands
//     the plan back to be re-validated and applied;
//   - the store's writer thread group-commits; its callbacks return to the state thread, which
//     only then answers clients, sends work to workers and publishes events.
#pragma once

#include <memory>
#include <string>

#include "config/scheduler_config.h"
#include "scheduler/common/status.h"

namespace gsched::server {

class SchedulerService {
 public:
  // Opens the store, loads the state, makes the signing key and the admin token on first start,
  // applies `accounts_file` when no account exists yet, and starts serving.
  static Result<std::unique_ptr<SchedulerService>> Start(config::SchedulerConfig config);
  ~SchedulerService();

  // "HOST:PORT" the API listens on.
  const std::string& address() const;
  // Stops serving and finishes outstanding commits. Idempotent.
  void Stop();

  struct Impl;

 private:
  explicit SchedulerService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gsched::server
