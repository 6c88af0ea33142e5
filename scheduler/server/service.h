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

#include <functional>
#include <memory>
#include <string>

#include "config/scheduler_config.h"
#include "scheduler/common/status.h"
#include "scheduler/net/http_types.h"
#include "scheduler/state/store.h"

namespace gsched::server {

class PrometheusWriter;

// What a service leading under high availability (DESIGN.md section 12) adds to the plain one.
struct ServiceHooks {
  // The body of `GET /healthz`; unset: `{"status":"ok","role":"leader"}`.
  std::function<std::string()> health;
  // More `/metrics` families (role, epoch, standby lag). Called on a network thread, per scrape.
  std::function<void(PrometheusWriter&)> metrics;
  // `/v1/ha/...`, after the service checked an admin token. Must not block the caller.
  std::function<void(const net::HttpRequest&, net::Responder)> ha_request;
  // The store can lose the right to write (a deposed leader): a commit failing with
  // `kUnavailable` then stops the service from answering (503) instead of stopping the process.
  bool store_may_be_deposed = false;
};

class SchedulerService {
 public:
  // Opens the store, loads the state, makes the signing key and the admin token on first start,
  // applies `accounts_file` when no account exists yet, and starts serving.
  static Result<std::unique_ptr<SchedulerService>> Start(config::SchedulerConfig config);
  // The same on a store opened by the caller (the leader's replicated store).
  static Result<std::unique_ptr<SchedulerService>> Start(config::SchedulerConfig config,
                                                         std::unique_ptr<state::Store> store,
                                                         ServiceHooks hooks);
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
