#include "scheduler/server/service_impl.h"

namespace gsched::server {
std::variant<HttpResponse, net::WsHandlers> SchedulerService::Impl::UpgradeWatch(
    const HttpRequest& req, std::shared_ptr<net::WsConnection> conn) {
  // A browser cannot set headers on a WebSocket: the dashboard sends its token as the
  // `access_token` parameter instead, here only (the server logs no request targets).
  auto query = req.query;
  auto token_param = query.extract("access_token");
  if (token_param && !req.Header("authorization").empty()) {
    return Error(Status::InvalidArgument(
        "give the token in Authorization or access_token, not both", "access_token"));
  }
  auto who = token_param ? Verify(token_param.mapped()) : Authenticate(req);
  if (!who.ok())
    return Error(who.status());
  if (who->role == api::Role::kWorker)
    return Error(Status::PermissionDenied("worker tokens may not watch"));
  if (!limiter->Allow(who->token_id)) {
    rate_limited.fetch_add(1, std::memory_order_relaxed);
    return Error(Status::ResourceExhausted("rate limit exceeded; reconnect later"));
  }
  auto request = ParseWatchQuery(query, *who);
  if (!request.ok())
    return Error(request.status());
  uint64_t id = watch->NewSubscriberId();
  OnState([this, id, who = std::move(who).value(), request = std::move(request).value(),
           conn]() mutable {
    if (auto s = Revoked(who); !s.ok())
      return conn->Close(1008, "token revoked");
    // A token's feeds are bounded: a stolen token cannot make the fan-out cost without limit.
    if (int64_t limit = config.watch.max_feeds_per_token;
        limit > 0 && watch->FeedsOf(who.token_id) >= static_cast<size_t>(limit)) {
      feeds_refused.fetch_add(1, std::memory_order_relaxed);
      return conn->Close(1008, "this token has " + std::to_string(limit) +
                                   " open feeds already (watch.max_feeds_per_token)");
    }
    watch->Subscribe(id, std::move(who), std::move(request), std::move(conn));
  });
  net::WsHandlers h;
  // The feed is one-way; the transport answers pings.
  h.on_message = [](std::string) {};
  h.on_close = [this, id](std::string reason) {
    OnState([this, id, reason = std::move(reason)] { watch->Unsubscribe(id, reason); });
  };
  return h;
}

std::variant<HttpResponse, net::WsHandlers> SchedulerService::Impl::UpgradeWorker(
    const HttpRequest& req, std::shared_ptr<net::WsConnection> conn) {
  if (req.path != "/v1/workers/connect") {
    return Error(Status::NotFound("no WebSocket at " + req.path));
  }
  auto who = Authenticate(req);
  if (!who.ok())
    return Error(who.status());
  // Only a worker token speaks for a node: an admin's or a user's token, stolen or not, opens no
  // channel that receives launches (with their env) or reports jobs' ends.
  if (who->role != api::Role::kWorker) {
    return Error(Status::PermissionDenied("the worker channel needs a worker token"));
  }
  if (who->nodes.empty()) {
    return Error(Status::PermissionDenied(
        "this worker token names no nodes; make one with `gsched token create --role worker "
        "--nodes NAME-OR-PREFIX*`"));
  }
  if (!config.tls.client_ca.empty()) {
    // Mutual TLS: the connection serves only the nodes its certificate names, among those its
    // token serves. A stolen token without the node's key opens nothing.
    std::vector<std::string> nodes;
    for (const std::string& name : req.client_names) {
      if (name.find('*') == std::string::npos &&
          std::any_of(who->nodes.begin(), who->nodes.end(), [&](const std::string& pattern) {
            return api::NodePatternCovers(pattern, name);
          }))
        nodes.push_back(name);
    }
    if (nodes.empty()) {
      hello_refused.fetch_add(1, std::memory_order_relaxed);
      return Error(Status::PermissionDenied(
          req.client_names.empty()
              ? "the worker channel needs a client certificate signed by tls.client_ca"
              : "the client certificate names no node this token serves"));
    }
    who->nodes = std::move(nodes);
  }
  // The node this connection speaks for, known after `hello`; state thread only.
  auto node = std::make_shared<std::string>();
  std::weak_ptr<net::WsConnection> weak = conn;
  Principal principal = std::move(who).value();
  // Known to the revocation and expiry sweep from now on, hello or not.
  OnState([this, weak, principal, raw = conn.get()] {
    if (state->IsRevoked(principal.token_id)) {
      if (auto c = weak.lock())
        c->Close(1008, "token revoked");
      return;
    }
    worker_sockets[raw] = {weak, principal.token_id, principal.expires};
  });
  net::WsHandlers h;
  // A bucket per connection: a flood (a stolen token, a broken worker) costs the state thread no
  // more than `rate_limit.worker_messages_per_s`; beyond it the connection is closed, and a real
  // worker reconnects and reports its jobs again in its hello.
  std::string bucket = "w" + std::to_string(next_worker_connection.fetch_add(1));
  auto over = std::make_shared<std::atomic<bool>>(false);
  h.on_message = [this, node, weak, principal, bucket, over](std::string text) {
    if (!worker_limiter->Allow(bucket)) {
      if (!over->exchange(true)) {
        worker_rate_limited.fetch_add(1, std::memory_order_relaxed);
        if (auto c = weak.lock()) {
          spdlog::warn("worker connection from {} closed: over the message rate limit",
                       c->remote());
          c->Close(1008, "worker message rate limit exceeded");
        }
      }
      return;
    }
    auto msg = api::DecodeWorkerMessage(text);
    if (!msg.ok()) {
      spdlog::warn("worker {}: bad message: {}", *node, msg.status().ToString());
      return;
    }
    OnState([this, node, weak, principal, msg = std::move(msg).value()]() mutable {
      OnWorkerMessage(principal, node, weak, std::move(msg));
    });
  };
  h.on_close = [this, node, weak, raw = conn.get()](std::string reason) {
    OnState([this, node, weak, raw, reason] {
      if (auto it = worker_sockets.find(raw); it != worker_sockets.end()) {
        // The address may have been reused by a newer connection: only forget this one.
        if (it->second.connection.lock() == weak.lock())
          worker_sockets.erase(it);
      }
      if (node->empty())
        return;
      // Only the node's current connection counts: a replaced one closing changes nothing.
      auto it = workers.find(*node);
      if (it == workers.end() || it->second != weak.lock())
        return;
      workers.erase(it);
      log_reads.NodeGone(*node);
      spdlog::info("worker {} disconnected: {}", *node, reason);
      Commit(state->WorkerDisconnected(*node), nullptr);
    });
  };
  return h;
}

void SchedulerService::Impl::SweepTokens(std::optional<std::string_view> revoked_id) {
  Timestamp now = clock.Now();
  if (revoked_id)
    watch->CloseToken(*revoked_id);
  watch->CloseExpired(now);
  for (auto it = worker_sockets.begin(); it != worker_sockets.end();) {
    const WorkerSocket& ws = it->second;
    const char* why = state->IsRevoked(ws.token_id) ? "token revoked"
                      : ws.expires <= now           ? "token expired"
                                                    : nullptr;
    auto conn = ws.connection.lock();
    if (why != nullptr || !conn) {
      if (conn) {
        spdlog::warn("closing a worker connection from {}: {}", conn->remote(), why);
        conn->Close(1008, why);
        worker_tokens_closed.fetch_add(1, std::memory_order_relaxed);
      }
      it = worker_sockets.erase(it);
      continue;
    }
    ++it;
  }
}

void SchedulerService::Impl::OnTokenSweepTick() {
  if (stopped)
    return;
  SweepTokens(std::nullopt);
  token_sweep_timer->expires_after(kTokenSweep);
  token_sweep_timer->async_wait([this](boost::system::error_code ec) {
    if (!ec)
      OnTokenSweepTick();
  });
}

void SchedulerService::Impl::OnWorkerMessage(const Principal& who,
                                             const std::shared_ptr<std::string>& node,
                                             const std::weak_ptr<net::WsConnection>& weak,
                                             api::WorkerMessage msg) {
  auto conn = weak.lock();
  if (!conn)
    return;
  // Revocation ends the connection within `kTokenSweep`; nothing it says meanwhile counts.
  if (state->IsRevoked(who.token_id)) {
    conn->Close(1008, "token revoked");
    return;
  }
  if (auto* hello = std::get_if<api::Hello>(&msg)) {
    // A connection speaks for one node, and its token only for the nodes it names
    // (`WorkerHello` checks): refused before the node's state is touched.
    Result<Change> change = !node->empty() && *node != hello->node
                                ? Status::PermissionDenied("this connection serves node '" + *node +
                                                           "', not '" + hello->node + "'")
                                : state->WorkerHello(who, *hello);
    if (!change.ok()) {
      if (change.status().code() == StatusCode::kPermissionDenied) {
        spdlog::warn("worker hello from {} refused: {}", conn->remote(), change.status().message());
        hello_refused.fetch_add(1, std::memory_order_relaxed);
      }
      conn->Close(1008, change.status().message());
      return;
    }
    *node = hello->node;
    auto old = workers.find(*node);
    if (old != workers.end() && old->second != conn)
      old->second->Close(1008, "replaced by a new connection");
    workers[*node] = conn;
    spdlog::info("worker {} connected from {} with {} GPUs, reporting {} attempts", *node,
                 conn->remote(), hello->gpus.size(), hello->running.size());
    Commit(std::move(change).value(), nullptr);
    return;
  }
  if (node->empty()) {
    conn->Close(1008, "hello first");
    return;
  }
  // Only the node's current connection speaks for it: one replaced by a newer hello is closing.
  if (auto it = workers.find(*node); it == workers.end() || it->second != conn)
    return;
  Result<Change> change = Status::Internal("unhandled");
  if (auto* hb = std::get_if<api::Heartbeat>(&msg)) {
    hb->node = *node;
    change = state->WorkerHeartbeat(*hb);
  } else if (auto* u = std::get_if<api::JobUpdate>(&msg)) {
    // Updates count only for attempts placed on this connection's node; the state re-checks
    // and answers others with a kill of the stale attempt on this node.
    if (!state->AttemptPlacedOn(u->job, u->attempt, *node))
      worker_updates_ignored.fetch_add(1, std::memory_order_relaxed);
    change = state->WorkerJobUpdate(*node, *u);
  } else if (auto* g = std::get_if<api::GpuHealthReport>(&msg)) {
    g->node = *node;
    change = state->WorkerGpuHealth(*g);
  } else if (auto* chunk = std::get_if<api::LogChunk>(&msg)) {
    log_reads.Complete(*node, std::move(*chunk));
    return;
  }
  if (!change.ok()) {
    spdlog::warn("worker {}: {}", *node, change.status().ToString());
    return;
  }
  Commit(std::move(change).value(), nullptr);
}

}  // namespace gsched::server
