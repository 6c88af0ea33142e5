#include "scheduler/server/service.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "config/accounts_config.h"
#include "scheduler/api/codec.h"
#include "scheduler/api/json.h"
#include "scheduler/api/worker_messages.h"
#include "scheduler/common/files.h"
#include "scheduler/common/policy_defaults.h"
#include "scheduler/common/quantity.h"
#include "scheduler/net/http_server.h"
#include "scheduler/server/cluster_state.h"
#include "scheduler/server/connection_limits.h"
#include "scheduler/server/log_relay.h"
#include "scheduler/server/metrics.h"
#include "scheduler/server/rate_limiter.h"
#include "scheduler/server/router.h"
#include "scheduler/server/token.h"
#include "scheduler/server/ui_assets.h"
#include "scheduler/server/watch_hub.h"
#include "scheduler/state/rocksdb_store.h"

namespace gsched::server {
namespace asio = boost::asio;
namespace json = boost::json;
using net::HttpRequest;
using net::HttpResponse;
using net::Responder;

namespace {

// Commits waiting for the disk beyond which new writes are refused with 503 rather than queued.
constexpr uint64_t kMaxCommitBacklog = 100'000;
// Stored jobs looked at per tick for history pruning: a few milliseconds of the state thread.
constexpr size_t kPruneRowsPerTick = 2000;

int HttpStatus(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
      return 409;
    case StatusCode::kResourceExhausted:
      return 429;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kDeadlineExceeded:
      return 504;
    case StatusCode::kInternal:
      return 500;
  }
  return 500;
}

HttpResponse Error(const Status& s) {
  return {HttpStatus(s.code()), json::serialize(api::ErrorBody(s))};
}
HttpResponse Json(int status, const json::value& v) {
  return {status, json::serialize(v)};
}

Result<uint64_t> ParseId(std::string_view text, std::string_view field) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v == 0) {
    return Status::InvalidArgument(
        "must be a positive integer, got '" + std::string(text.substr(0, 32)) + "'",
        std::string(field));
  }
  return v;
}

}  // namespace

struct SchedulerService::Impl {
  config::SchedulerConfig config;
  SystemClock clock;
  std::unique_ptr<state::Store> store;
  ServiceHooks hooks;
  // A commit failed because the store lost the right to write: nothing is answered any more.
  std::atomic<bool> deposed{false};
  std::optional<TokenAuthority> authority;
  std::unique_ptr<ClusterState> state;
  std::unique_ptr<RateLimiter> limiter;
  std::unique_ptr<RateLimiter> worker_limiter;  // Per worker-channel connection.
  // Shared with the HTTP server's end-of-connection callback, which may outlive a request.
  std::shared_ptr<ConnectionLimits> connections;
  std::atomic<uint64_t> connections_refused{0};
  std::atomic<uint64_t> next_worker_connection{1};
  std::atomic<uint64_t> worker_rate_limited{0};
  std::unique_ptr<net::HttpServer> http;
  std::unique_ptr<WatchHub> watch;  // The watch feed's subscribers; state thread.
  std::string address;

  // The state thread and the scheduling thread.
  asio::io_context state_ioc{1};
  asio::io_context sched_ioc{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> state_work, sched_work;
  std::thread state_thread, sched_thread;
  std::optional<asio::steady_timer> tick;
  std::optional<asio::steady_timer> pass_timer;
  std::optional<asio::steady_timer> summary_timer;
  bool pass_timer_armed = false;
  std::chrono::steady_clock::time_point last_pass_end{};
  std::atomic<bool> stopped{false};

  // State-thread only.
  std::unordered_map<std::string, std::shared_ptr<net::WsConnection>> workers;
  // Every open worker-channel connection, hello or not, for the revocation and expiry sweep.
  struct WorkerSocket {
    std::weak_ptr<net::WsConnection> connection;
    std::string token_id;
    Timestamp expires{};
  };
  std::unordered_map<const net::WsConnection*, WorkerSocket> worker_sockets;
  // Open WebSockets are checked against revocations and expiry this often ("within a second").
  static constexpr auto kTokenSweep = std::chrono::milliseconds(250);
  std::optional<asio::steady_timer> token_sweep_timer;
  LogRelay log_reads{Seconds(10), 1024};
  bool pass_running = false;
  bool pass_wanted = false;
  std::atomic<uint64_t> passes{0};

  // Metrics.
  Histogram cycle_seconds{{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}};
  Histogram snapshot_seconds{{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}};
  Histogram submit_seconds{{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}};
  Histogram commit_batch{{1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096}};
  std::atomic<uint64_t> jobs_submitted{0};
  std::atomic<uint64_t> rate_limited{0};
  std::atomic<uint64_t> hello_refused{0};
  // The part of `/metrics` that walks the state (jobs, nodes, GPUs, workers, watch feeds), rendered
  // on the state thread at every tick and at most every `kStateMetricsMaxAge` for scrapes; the rest
  // is rendered per request from counters.
  static constexpr auto kStateMetricsMaxAge = std::chrono::milliseconds(100);
  std::mutex metrics_mu;
  std::shared_ptr<const std::string> state_metrics;
  std::chrono::steady_clock::time_point state_metrics_at;
  std::vector<Responder> metrics_waiters;  // Waiting for the one queued refresh.
  std::atomic<uint64_t> state_metric_renders{0};
  std::atomic<uint64_t> feeds_refused{0};
  std::atomic<uint64_t> worker_updates_ignored{0};
  std::atomic<uint64_t> worker_tokens_closed{0};

  // ---- Plumbing ------------------------------------------------------------------------------
  template <typename F>
  void OnState(F&& f) {
    asio::post(state_ioc, std::forward<F>(f));
  }

  // Commits `change`; once durable, sends its messages, then calls `then`. State thread.
  void Commit(Change change, std::function<void(Status)> then) {
    if (change.reschedule)
      Kick();
    if (change.batch.empty()) {
      Deliver(change);
      if (then)
        then(Status::Ok());
      return;
    }
    commit_batch.Observe(static_cast<double>(change.batch.size()));
    auto events = std::make_shared<Change>(std::move(change));
    state::WriteBatch batch = std::move(events->batch);
    store->CommitAsync(std::move(batch), [this, events, then = std::move(then)](Status s) mutable {
      OnState([this, events, then = std::move(then), s = std::move(s)]() mutable {
        if (s.code() == StatusCode::kUnavailable && hooks.store_may_be_deposed) {
          // Deposed: this change was not acknowledged and never will be. The caller gets 503;
          // what memory holds beyond the disk is dropped with the service (the new leader and
          // this scheduler, as a standby, both follow the log).
          if (!deposed.exchange(true))
            spdlog::error("commit refused, no longer the leader: {}", s.ToString());
          if (then)
            then(s);
          return;
        }
        if (!s.ok()) {
          // A full disk or an I/O error does not get here: the store holds commits until they
          // are durable (writes are refused with 503 meanwhile). What does is a full commit
          // queue, a batch the database refuses, or a store closing. Memory is ahead of the disk
          // and the disk will not catch up: the only consistent state left is the one on disk.
          // Stop here; a restart loads it.
          spdlog::critical(
              "commit failed: {}; stopping so that a restart reloads the durable state",
              s.ToString());
          std::abort();
        }
        Deliver(*events);
        if (then)
          then(Status::Ok());
      });
    });
  }

  void Deliver(const Change& change) {
    if (watch && !change.events.empty())
      watch->Publish(change.events);
    if (watch && !change.ephemeral.empty() && watch->WantsEphemeral())
      watch->PublishEphemeral(change.ephemeral);
    for (const Dispatch& d : change.dispatches) {
      auto it = workers.find(d.node);
      if (it == workers.end())
        continue;  // Reconciled when the worker says hello again.
      it->second->Send(api::SerializeMessage(d.message));
    }
  }

  // Applies `result` (a change or an error) and answers through `respond` once durable.
  void Finish(Result<Change> result, Responder respond, std::function<HttpResponse()> ok) {
    if (!result.ok())
      return respond(Error(result.status()));
    Commit(std::move(result).value(), [respond = std::move(respond), ok = std::move(ok)](Status s) {
      respond(s.ok() ? ok() : Error(s));
    });
  }

  // ---- The scheduling loop -------------------------------------------------------------------
  // Asks for a pass. Kicks are coalesced (`policy_defaults::kPassCoalesce`, `kPassMinGap`).
  static constexpr auto kCoalesce = policy_defaults::kPassCoalesce;
  static constexpr auto kMinGap = policy_defaults::kPassMinGap;

  void Kick() {
    pass_wanted = true;
    if (pass_running || pass_timer_armed || stopped)
      return;
    auto at = std::max(std::chrono::steady_clock::now() + kCoalesce, last_pass_end + kMinGap);
    pass_timer_armed = true;
    pass_timer->expires_at(at);
    pass_timer->async_wait([this](boost::system::error_code ec) {
      pass_timer_armed = false;
      if (!ec)
        RunPass();
    });
  }

  void RunPass() {
    if (pass_running || !pass_wanted || stopped)
      return;
    // No new placements while commits cannot land: the tick asks again.
    if (store->Stats().failing)
      return;
    pass_wanted = false;
    pass_running = true;
    // 1. Snapshot the state (state thread).
    auto s0 = std::chrono::steady_clock::now();
    auto snapshot = std::make_shared<core::Snapshot>(state->BuildSnapshot());
    snapshot_seconds.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count());
    Timestamp now = clock.Now();
    // 2. Decide (scheduling thread): the pure core, as in the simulator.
    asio::post(sched_ioc, [this, snapshot, now] {
      auto t0 = std::chrono::steady_clock::now();
      auto plan = std::make_shared<core::Plan>(core::Schedule(*snapshot, state->policy(), now));
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      cycle_seconds.Observe(seconds);
      // 3. Re-validate and apply, commit, then dispatch (state thread).
      OnState([this, snapshot, plan] {
        ++passes;
        Commit(state->ApplyPlan(*snapshot, *plan), nullptr);
        pass_running = false;
        last_pass_end = std::chrono::steady_clock::now();
        if (pass_wanted)
          Kick();
      });
    });
  }

  void OnTick() {
    if (stopped)
      return;
    Commit(state->CheckNodeTimeouts(), nullptr);
    Commit(state->EnforceDeadlines(), nullptr);
    log_reads.Expire(clock.Now());
    Commit(state->PruneHistory(*store, kPruneRowsPerTick), nullptr);
    Commit(state->PruneEvents(), nullptr);
    RefreshStateMetrics();
    Kick();
    tick->expires_after(std::chrono::milliseconds(config.scheduling.interval.count()));
    tick->async_wait([this](boost::system::error_code ec) {
      if (!ec)
        OnTick();
    });
  }

  // The periodic ephemeral events of the watch feed, made only while someone takes them.
  void OnSummaryTick() {
    if (stopped)
      return;
    if (watch->WantsEphemeral()) {
      std::vector<api::Event> events;
      events.push_back(state->EphemeralEvent("cluster.summary", ClusterTotals()));
      for (auto& usage : AccountUsage())
        events.push_back(state->EphemeralEvent("account.usage", std::move(usage)));
      watch->PublishEphemeral(std::move(events));
    }
    summary_timer->expires_after(config.watch.summary_interval);
    summary_timer->async_wait([this](boost::system::error_code ec) {
      if (!ec)
        OnSummaryTick();
    });
  }

  // One `account.usage` body per account but `root`: decayed fair-share usage and what runs and
  // waits there now. One pass over the jobs in memory.
  std::vector<json::object> AccountUsage() const {
    struct Load {
      int64_t running_jobs = 0, running_gpus = 0, pending_jobs = 0;
    };
    std::map<std::string, Load> load;
    for (const auto& [id, rec] : state->jobs()) {
      Load& l = load[rec.job.spec.account];
      if (rec.job.state == api::JobState::kPending) {
        ++l.pending_jobs;
      } else {
        ++l.running_jobs;
        for (const auto& a : rec.job.allocation)
          l.running_gpus += static_cast<int64_t>(a.gpus.size());
      }
    }
    std::vector<json::object> out;
    for (const auto& [name, account] : state->account_map()) {
      if (name == "root")
        continue;
      Load l = load.contains(name) ? load.at(name) : Load{};
      out.push_back({{"account", name},
                     {"usage_gpu_hours", state->UsageGpuHours(name)},
                     {"running_jobs", l.running_jobs},
                     {"running_gpus", l.running_gpus},
                     {"pending_jobs", l.pending_jobs}});
    }
    return out;
  }

  // ---- Authentication ------------------------------------------------------------------------
  // Verifies the bearer token's signature and expiry (any thread); revocation is checked on the
  // state thread, where the revocation set lives.
  Result<Principal> Authenticate(const HttpRequest& req) {
    std::string_view auth = req.Header("authorization");
    if (auth.empty())
      return Status::Unauthenticated("missing Authorization: Bearer token");
    if (auth.substr(0, 7) != "Bearer ")
      return Status::Unauthenticated("Authorization must be 'Bearer TOKEN'");
    return Verify(auth.substr(7));
  }
  Result<Principal> Verify(std::string_view token) {
    ASSIGN_OR_RETURN(TokenClaims claims, authority->Verify(token, clock.Now()));
    return Principal{claims.user, claims.role,    claims.accounts,
                     claims.id,   claims.expires, claims.nodes};
  }

  // ---- The watch feed ------------------------------------------------------------------------
  // `GET /v1/watch`: checks the token and the query here (network thread), so that a bad request
  // gets its 4xx before the upgrade; the subscription itself starts on the state thread.
  std::variant<HttpResponse, net::WsHandlers> UpgradeWatch(
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

  // ---- HTTP ----------------------------------------------------------------------------------
  void Handle(HttpRequest&& req, Responder respond) {
    if (req.path == "/healthz") {
      if (hooks.health)
        return respond({200, hooks.health()});
      return respond({200, R"({"status":"ok","role":"leader"})"});
    }
    if (deposed.load()) {
      return respond(
          Error(Status::Unavailable("this scheduler lost the lead and is becoming a standby")));
    }
    // The dashboard's static files; the page signs in itself, against the API.
    if (req.path == "/ui" || req.path.starts_with("/ui/"))
      return respond(ServeUi(req));
    if (req.path == "/metrics")
      return ServeMetrics(std::move(respond));
    auto who = Authenticate(req);
    if (!who.ok())
      return respond(Error(who.status()));
    if (req.connection != 0 && !connections->Admit(who->token_id, req.connection)) {
      // One token cannot hold every connection slot: this connection is answered and closed.
      connections_refused.fetch_add(1, std::memory_order_relaxed);
      HttpResponse r = Error(Status::ResourceExhausted(
          "this token holds " + std::to_string(config.limits.max_connections_per_token) +
          " open connections already (limits.max_connections_per_token); reuse one"));
      r.headers.push_back({"Retry-After", "1"});
      r.close = true;
      return respond(std::move(r));
    }
    if (!limiter->Allow(who->token_id)) {
      rate_limited.fetch_add(1, std::memory_order_relaxed);
      HttpResponse r = Error(Status::ResourceExhausted(
          "rate limit of " + std::to_string(config.rate_limit.requests_per_s) +
          " requests/s exceeded"));
      r.headers.push_back(
          {"Retry-After", std::to_string(limiter->RetryAfterSeconds(who->token_id))});
      return respond(std::move(r));
    }
    auto parts = PathSegments(req.path);
    if (parts.empty() || parts[0] != "v1")
      return respond(Error(Status::NotFound("no route " + req.path)));
    if (parts.size() >= 2 && parts[1] == "ha" && hooks.ha_request) {
      if (who->role != api::Role::kAdmin)
        return respond(Error(Status::PermissionDenied("/v1/ha/ is for admins and schedulers")));
      return hooks.ha_request(req, std::move(respond));
    }
    // While the disk is full the store holds commits until there is room; writes are refused at
    // once rather than queued behind them, reads go on.
    if (req.method != "GET" && store->Stats().failing)
      return respond(DiskRefusing());
    // Bodies are parsed here, on the network thread, so that the state thread only decides.
    if (parts.size() == 2 && parts[1] == "jobs" && req.method == "POST") {
      auto body = api::ParseJson(req.body);
      if (!body.ok())
        return respond(Error(body.status()));
      auto specs = api::DecodeSubmitBody(*body);
      if (!specs.ok())
        return respond(Error(specs.status()));
      bool batch = body->is_object() && body->get_object().contains("jobs");
      auto t0 = std::chrono::steady_clock::now();
      return OnState([this, who = std::move(who).value(), specs = std::move(specs).value(), batch,
                      respond = std::move(respond), t0]() mutable {
        if (auto s = Revoked(who); !s.ok())
          return respond(Error(s));
        if (store->Stats().failing)
          return respond(DiskRefusing());
        if (Backlogged())
          return respond(Error(Status::Unavailable("the scheduler is overloaded; retry")));
        bool single = !batch && specs.size() == 1 && !specs[0].array;
        auto ids = std::make_shared<std::vector<uint64_t>>();
        auto change = state->Submit(who, std::move(specs), ids.get(), store.get());
        Finish(std::move(change), std::move(respond), [this, ids, single, t0] {
          jobs_submitted.fetch_add(ids->size(), std::memory_order_relaxed);
          submit_seconds.Observe(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
          if (single)
            return Json(201, {{"id", ids->front()}});
          json::array a;
          for (uint64_t id : *ids)
            a.push_back(id);
          return Json(201, {{"ids", std::move(a)}});
        });
      });
    }
    std::optional<json::value> body;
    if (req.method == "PUT" || (req.method == "POST" && !req.body.empty())) {
      auto parsed = api::ParseJson(req.body);
      if (!parsed.ok())
        return respond(Error(parsed.status()));
      body = std::move(parsed).value();
    }
    OnState([this, who = std::move(who).value(), req = std::move(req), body = std::move(body),
             respond = std::move(respond)]() mutable {
      if (auto s = Revoked(who); !s.ok())
        return respond(Error(s));
      Route(who, req, body, std::move(respond));
    });
  }

  Status Revoked(const Principal& who) const {
    if (state->IsRevoked(who.token_id))
      return Status::Unauthenticated("token revoked");
    return Status::Ok();
  }

  bool Backlogged() const {
    state::CommitStats cs = store->Stats();
    return cs.failing || cs.queue_depth > kMaxCommitBacklog;
  }

  static HttpResponse DiskRefusing() {
    HttpResponse r = Error(Status::Unavailable(
        "the scheduler cannot write to its disk (full or failing); nothing was changed; retry"));
    r.headers.push_back({"Retry-After", "5"});
    return r;
  }

  // ---- The route table ------------------------------------------------------------------------
  // What a route's handler gets. Handlers run on the state thread and answer through `respond`,
  // at once or once their change is durable.
  struct RouteCall {
    const Principal& who;
    const HttpRequest& req;
    const std::optional<json::value>& body;
    const RouteParams& params;
    const Responder& respond;
  };
  using RouteHandler = std::function<void(const RouteCall&)>;
  Router<RouteHandler> routes;

  // Every route of the API but `POST /v1/jobs` (parsed on the network thread, in `Handle`) and
  // `/v1/ha/` (the high-availability hooks').
  void AddRoutes() {
    auto add = [this](std::string method, std::string_view pattern, RouteHandler h) {
      if (Status s = routes.Add(std::move(method), pattern, std::move(h)); !s.ok())
        spdlog::critical("{}", s.ToString());
    };
    add("GET", "/v1/jobs", [this](const RouteCall& c) { ListJobs(c.who, c.req, c.respond); });
    add("GET", "/v1/jobs/{id}", [this](const RouteCall& c) {
      WithJobId(c, [&](uint64_t id) {
        auto job = state->GetJob(c.who, id, *store);
        c.respond(job.ok() ? Json(200, api::Encode(*job)) : Error(job.status()));
      });
    });
    add("GET", "/v1/jobs/{id}/logs", [this](const RouteCall& c) {
      WithJobId(c, [&](uint64_t id) { ReadLogs(c.who, id, c.req, c.respond); });
    });
    add("POST", "/v1/jobs/{id}/cancel", [this](const RouteCall& c) {
      JobAction(c, [this, &c](uint64_t id) { return state->Cancel(c.who, id); });
    });
    add("POST", "/v1/jobs/{id}/hold", [this](const RouteCall& c) {
      JobAction(c, [this, &c](uint64_t id) { return state->Hold(c.who, id, true); });
    });
    add("POST", "/v1/jobs/{id}/release", [this](const RouteCall& c) {
      JobAction(c, [this, &c](uint64_t id) { return state->Hold(c.who, id, false); });
    });
    add("GET", "/v1/nodes", [this](const RouteCall& c) {
      if (c.who.role == api::Role::kWorker)
        return c.respond(Error(Status::PermissionDenied("workers may not list nodes")));
      json::array a;
      for (const auto& n : state->Nodes())
        a.push_back(api::Encode(n));
      c.respond(Json(200, {{"nodes", std::move(a)}}));
    });
    add("POST", "/v1/nodes/{name}/drain", [this](const RouteCall& c) { NodeAction(c, true); });
    add("POST", "/v1/nodes/{name}/resume", [this](const RouteCall& c) { NodeAction(c, false); });
    add("GET", "/v1/accounts", [this](const RouteCall& c) {
      json::array a;
      for (const auto& acc : state->VisibleAccounts(c.who)) {
        json::value v = api::Encode(acc);
        v.as_object()["usage_gpu_hours"] = state->UsageGpuHours(acc.name);
        a.push_back(std::move(v));
      }
      c.respond(Json(200, {{"accounts", std::move(a)}}));
    });
    add("PUT", "/v1/accounts/{name}", [this](const RouteCall& c) {
      if (!c.body)
        return c.respond(Error(Status::InvalidArgument("a JSON body is required")));
      auto account = api::DecodeAccount(*c.body);
      if (!account.ok())
        return c.respond(Error(account.status()));
      std::string name(c.params.Get("name"));
      if (!account->name.empty() && account->name != name) {
        return c.respond(
            Error(Status::InvalidArgument("does not match the URL's '" + name + "'", "name")));
      }
      account->name = name;
      Finish(state->PutAccount(c.who, std::move(account).value()), c.respond,
             [this, name] { return Json(200, api::Encode(state->account_map().at(name))); });
    });
    add("GET", "/v1/whoami", [](const RouteCall& c) {
      const Principal& who = c.who;
      api::WhoAmI w{who.user, who.role, who.accounts, who.token_id, who.expires};
      c.respond(Json(200, api::Encode(w)));
    });
    add("POST", "/v1/tokens",
        [this](const RouteCall& c) { CreateToken(c.who, c.body, c.respond); });
    add("DELETE", "/v1/tokens/{id}", [this](const RouteCall& c) {
      std::string id(c.params.Get("id"));
      Finish(state->RevokeToken(c.who, id), c.respond, [this, id] {
        // Durable: the token's open feeds and worker channels end now rather than at their next
        // request.
        SweepTokens(id);
        return Json(200, {{"id", id}, {"revoked", true}});
      });
    });
    add("GET", "/v1/usage", [this](const RouteCall& c) { Usage(c.who, c.req, c.respond); });
    add("GET", "/v1/cluster", [this](const RouteCall& c) { c.respond(Json(200, Cluster(c.who))); });
  }

  // State thread.
  void Route(const Principal& who, const HttpRequest& req, const std::optional<json::value>& body,
             Responder respond) {
    auto match = routes.Find(req.method, req.path);
    if (!match)
      return respond(
          Error(Status(StatusCode::kNotFound, "no route " + req.method + " " + req.path)));
    (*match->handler)(RouteCall{who, req, body, match->params, respond});
  }

  // Calls `f` with the route's job id, or answers 400 naming `id`.
  template <typename F>
  void WithJobId(const RouteCall& c, F&& f) {
    auto id = ParseId(c.params.Get("id"), "id");
    if (!id.ok())
      return c.respond(Error(id.status()));
    f(*id);
  }

  // cancel, hold, release: `change(id)` once the caller may see the job; answers with the job.
  void JobAction(const RouteCall& c, const std::function<Result<Change>(uint64_t)>& change) {
    WithJobId(c, [&](uint64_t id) {
      // A job the caller may not see is not there for them, whether it runs or ended: the same
      // 404 as for an id never used, before anything says "already ended".
      if (auto seen = state->GetJob(c.who, id, *store); !seen.ok())
        return c.respond(Error(seen.status()));
      Finish(change(id), c.respond, [this, who = c.who, id] {
        auto job = state->GetJob(who, id, *store);
        return job.ok() ? Json(200, api::Encode(*job)) : Json(200, {{"id", id}});
      });
    });
  }

  void NodeAction(const RouteCall& c, bool drain) {
    std::string node(c.params.Get("name"));
    std::string reason = "drained by " + c.who.user;
    if (c.body && c.body->is_object()) {
      if (const auto* r = c.body->get_object().if_contains("reason")) {
        if (!r->is_string() || r->get_string().size() > 1024) {
          return c.respond(Error(
              Status::InvalidArgument("must be a string of at most 1024 characters", "reason")));
        }
        reason = std::string(r->get_string());
      }
    }
    auto ok = [this, node] {
      for (const auto& n : state->Nodes()) {
        if (n.name == node)
          return Json(200, api::Encode(n));
      }
      return Json(200, {{"node", node}});
    };
    if (drain)
      return Finish(state->DrainNode(c.who, node, reason), c.respond, ok);
    Finish(state->ResumeNode(c.who, node), c.respond, ok);
  }

  void ListJobs(const Principal& who, const HttpRequest& req, const Responder& respond) {
    JobFilter f;
    if (auto s = req.Query("state")) {
      // A comma-separated list, as `squeue -t PD,R` takes.
      std::string_view rest = *s;
      while (true) {
        size_t comma = rest.find(',');
        auto st = api::ParseEnum<api::JobState>(rest.substr(0, comma));
        if (!st) {
          return respond(Error(Status::InvalidArgument(
              "each of a comma-separated list must be one of " + api::EnumNames<api::JobState>(),
              "state")));
        }
        f.states.push_back(*st);
        if (comma == std::string_view::npos)
          break;
        rest.remove_prefix(comma + 1);
      }
    }
    if (auto u = req.Query("user"))
      f.user = std::string(*u);
    if (auto a = req.Query("account"))
      f.account = std::string(*a);
    if (auto l = req.Query("limit")) {
      auto v = ParseId(*l, "limit");
      if (!v.ok() || *v > 10000)
        return respond(Error(Status::InvalidArgument("must be 1..10000", "limit")));
      f.limit = *v;
    }
    if (auto a = req.Query("after")) {
      uint64_t v = 0;
      auto [ptr, ec] = std::from_chars(a->data(), a->data() + a->size(), v);
      if (ec != std::errc() || ptr != a->data() + a->size()) {
        return respond(Error(Status::InvalidArgument("must be a job id", "after")));
      }
      f.after = v;
    }
    json::array a;
    uint64_t last = 0;
    for (const auto& j : state->ListJobs(who, f, *store)) {
      last = j.id;
      a.push_back(api::Encode(j));
    }
    json::object out{{"jobs", std::move(a)}};
    if (out["jobs"].as_array().size() == f.limit)
      out["next_after"] = last;
    respond(Json(200, out));
  }

  // `GET /v1/usage?account=&since=&until=`: normalised GPU-hours by account, user and GPU type;
  // the last 30 days by default.
  void Usage(const Principal& who, const HttpRequest& req, const Responder& respond) {
    if (who.role == api::Role::kWorker)
      return respond(Error(Status::PermissionDenied("workers may not read usage")));
    UsageQuery q;
    q.until = clock.Now();
    q.since = q.until - Seconds(30 * 86400);
    for (auto [name, at] : {std::pair{"since", &q.since}, std::pair{"until", &q.until}}) {
      auto text = req.Query(name);
      if (!text || text->empty())
        continue;
      auto t = ParseTimestamp(*text);
      if (!t.ok()) {
        return respond(Error(
            Status::InvalidArgument("must be an RFC 3339 time or a date like 2027-01-31", name)));
      }
      *at = *t;
    }
    if (q.until <= q.since)
      return respond(Error(Status::InvalidArgument("must be after since", "until")));
    if (q.until - q.since > config.limits.max_usage_window) {
      return respond(
          Error(Status::InvalidArgument("the window from since to until may be at most " +
                                            FormatDuration(config.limits.max_usage_window) +
                                            " (limits.max_usage_window); ask for it in parts",
                                        "since")));
    }
    if (auto a = req.Query("account"); a && !a->empty()) {
      q.account = std::string(*a);
      if (!state->account_map().contains(q.account)) {
        return respond(
            Error(Status(StatusCode::kNotFound, "no account '" + q.account + "'", "account")));
      }
    }
    json::array rows;
    double total = 0;
    auto report = state->UsageReport(who, q, *store);
    if (!report.ok())
      return respond(Error(report.status()));
    for (const UsageRow& r : *report) {
      total += r.gpu_hours;
      rows.push_back(json::object{{"account", r.account},
                                  {"user", r.user},
                                  {"gpu_type", r.gpu_type},
                                  {"gpu_hours", r.gpu_hours}});
    }
    respond(Json(200, {{"since", FormatTimestamp(q.since)},
                       {"until", FormatTimestamp(q.until)},
                       {"usage", std::move(rows)},
                       {"total_gpu_hours", total}}));
  }

  // `GET /v1/jobs/{id}/logs?offset=&limit=&stream=&attempt=&node=`: asks the node that ran the
  // attempt (rank 0 of a gang unless `node` says otherwise) and answers with what it sends back.
  void ReadLogs(const Principal& who, uint64_t id, const HttpRequest& req,
                const Responder& respond) {
    auto job = state->GetJob(who, id, *store);
    if (!job.ok())
      return respond(Error(job.status()));
    api::ReadLog read;
    read.job = id;
    auto number = [&](std::string_view name, int64_t lo, int64_t hi) -> Result<int64_t> {
      auto text = req.Query(name);
      int64_t v = 0;
      auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
      if (ec != std::errc() || ptr != text->data() + text->size() || v < lo || v > hi) {
        return Status::InvalidArgument(
            "must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi),
            std::string(name));
      }
      return v;
    };
    if (req.Query("offset")) {
      auto v = number("offset", 0, int64_t{1} << 50);
      if (!v.ok())
        return respond(Error(v.status()));
      read.offset = *v;
    }
    if (req.Query("limit")) {
      // Larger asks are served in `kMaxLogChunkBytes` pieces; `next_offset` says where to go on.
      auto v = number("limit", 1, int64_t{1} << 30);
      if (!v.ok())
        return respond(Error(v.status()));
      read.limit = std::min(*v, api::kMaxLogChunkBytes);
    }
    if (auto s = req.Query("stream"); s && !s->empty()) {
      if (*s != "stdout" && *s != "stderr")
        return respond(Error(Status::InvalidArgument("must be stdout or stderr", "stream")));
      read.stream = *s == "stderr" ? api::LogStream::kStderr : api::LogStream::kStdout;
    }
    read.attempt = job->attempt;
    if (req.Query("attempt")) {
      auto v = number("attempt", 1, std::numeric_limits<uint32_t>::max());
      if (!v.ok())
        return respond(Error(v.status()));
      read.attempt = static_cast<uint32_t>(*v);
    }
    if (read.attempt == 0) {
      return respond(Error(Status::FailedPrecondition("job " + std::to_string(id) +
                                                      " has not started: no output yet")));
    }
    const api::AttemptRecord* attempt = nullptr;
    for (const auto& a : job->attempts)
      if (a.attempt == read.attempt)
        attempt = &a;
    const std::vector<api::Allocation>& allocation =
        attempt ? attempt->allocation : job->allocation;
    if ((!attempt && read.attempt != job->attempt) || allocation.empty()) {
      return respond(Error(
          Status(StatusCode::kNotFound,
                 "job " + std::to_string(id) + " has no attempt " + std::to_string(read.attempt),
                 "attempt")));
    }
    std::string node = allocation.front().node;
    if (auto n = req.Query("node"); n && !n->empty()) {
      auto it = std::find_if(allocation.begin(), allocation.end(),
                             [&](const api::Allocation& a) { return a.node == *n; });
      if (it == allocation.end())
        return respond(
            Error(Status(StatusCode::kNotFound, "the attempt did not run on that node", "node")));
      node = it->node;
    }
    auto worker = workers.find(node);
    if (worker == workers.end()) {
      return respond(
          Error(Status::Unavailable("node " + node + " is not connected: the output of job " +
                                    std::to_string(id) + " lives there and cannot be read now")));
    }
    auto request = log_reads.Start(node, clock.Now(), [respond, node](Result<api::LogChunk> c) {
      if (!c.ok())
        return respond(Error(c.status()));
      respond(Json(200, {{"job", c->job},
                         {"attempt", static_cast<int64_t>(c->attempt)},
                         {"node", node},
                         {"stream", api::ToString(c->stream)},
                         {"offset", c->offset},
                         {"data", c->data},
                         {"next_offset", c->next_offset},
                         {"size", c->size},
                         {"eof", c->eof}}));
    });
    if (!request.ok())
      return respond(Error(request.status()));
    read.request = *request;
    worker->second->Send(api::SerializeMessage(read));
  }

  void CreateToken(const Principal& who, const std::optional<json::value>& body,
                   const Responder& respond) {
    if (who.role != api::Role::kAdmin)
      return respond(Error(Status::PermissionDenied("only admins create tokens")));
    if (!body)
      return respond(Error(Status::InvalidArgument("a JSON body is required")));
    auto req = api::DecodeTokenRequest(*body);
    if (!req.ok())
      return respond(Error(req.status()));
    for (size_t i = 0; i < req->accounts.size(); ++i) {
      if (!state->account_map().contains(req->accounts[i])) {
        return respond(Error(Status::InvalidArgument("unknown account '" + req->accounts[i] + "'",
                                                     "accounts[" + std::to_string(i) + "]")));
      }
    }
    TokenClaims claims{
        NewTokenId(), req->user, req->role, req->accounts, clock.Now() + Seconds(req->expires_in_s),
        req->nodes};
    api::TokenAnswer answer{claims.id, authority->Sign(claims)};
    Commit(state->RecordToken(who, claims.id, claims.user), [respond, answer](Status s) {
      respond(s.ok() ? Json(201, api::Encode(answer)) : Error(s));
    });
  }

  // Totals, and the fair-share standings of the accounts `who` may see.
  json::object Cluster(const Principal& who) {
    json::object o = ClusterTotals();
    json::array standings;
    for (const auto& acc : state->VisibleAccounts(who)) {
      standings.push_back({{"account", acc.name},
                           {"shares", acc.shares},
                           {"usage_gpu_hours", state->UsageGpuHours(acc.name)}});
    }
    o["last_event_seq"] = state->last_event_seq();
    o["accounts"] = std::move(standings);
    return o;
  }

  // Each GPU in one state, by type: `busy` (allocated), else `down` (its node is), else
  // `unhealthy`, else `idle`. One count for `GET /v1/cluster`, `cluster.summary` and `/metrics`.
  struct GpuStates {
    int64_t total = 0, busy = 0, down = 0, unhealthy = 0, idle = 0;
  };
  std::map<std::string, GpuStates> GpuStatesByType() const {
    std::map<std::string, GpuStates> out;
    for (const auto& [name, rec] : state->nodes()) {
      GpuStates& t = out[rec.node.gpu_type.empty() ? "none" : rec.node.gpu_type];
      const bool down = !rec.connected || rec.node.state == api::NodeState::kDown;
      const int64_t used = __builtin_popcountll(rec.used_gpus);
      int64_t unhealthy_free = 0;
      for (const auto& g : rec.node.gpus) {
        bool in_use = g.index >= 0 && g.index < 64 && (rec.used_gpus >> g.index) & 1;
        unhealthy_free += !in_use && g.health != api::GpuHealth::kHealthy;
      }
      t.total += rec.node.gpu_count;
      t.busy += used;
      t.down += down ? rec.node.gpu_count - used : 0;
      t.unhealthy += down ? 0 : unhealthy_free;
      t.idle += down ? 0 : rec.node.gpu_count - used - unhealthy_free;
    }
    return out;
  }

  // GPUs by type and state, nodes, and the queue: `GET /v1/cluster` and `cluster.summary`.
  json::object ClusterTotals() const {
    json::object gpus;
    int64_t total = 0, busy = 0;
    for (const auto& [type, t] : GpuStatesByType()) {
      gpus[type] = json::object{{"total", t.total},
                                {"busy", t.busy},
                                {"down", t.down},
                                {"unhealthy", t.unhealthy},
                                {"idle", t.idle}};
      total += t.total;
      busy += t.busy;
    }
    return {{"gpus", std::move(gpus)},
            {"gpus_total", total},
            {"gpus_busy", busy},
            {"nodes", state->nodes().size()},
            {"pending", state->pending_count()},
            {"running", state->running_count()}};
  }

  // `/metrics` needs no token, so a flood of it must not take the state thread. Counters are
  // rendered per request; the state's gauges (jobs, nodes, GPUs, workers, watch feeds) come from a
  // rendering made at every tick, or by the state thread for a scrape that finds it older than
  // `kStateMetricsMaxAge`: then requests share the one queued refresh. A flood therefore costs the
  // state thread at most one rendering per `kStateMetricsMaxAge`, and the gauges are at most that
  // old plus the wait (`gsched_metrics_state_age_seconds`).
  void ServeMetrics(Responder respond) {
    {
      std::lock_guard lock(metrics_mu);
      if (state_metrics == nullptr ||
          std::chrono::steady_clock::now() - state_metrics_at >= kStateMetricsMaxAge) {
        metrics_waiters.push_back(std::move(respond));
        if (metrics_waiters.size() > 1)
          return;  // A refresh is queued; this one shares it.
        respond = nullptr;
      }
    }
    if (respond)
      return respond(MetricsAnswer());
    OnState([this] {
      RefreshStateMetrics();
      std::vector<Responder> waiters;
      {
        std::lock_guard lock(metrics_mu);
        waiters.swap(metrics_waiters);
      }
      for (auto& r : waiters)
        r(MetricsAnswer());
    });
  }

  HttpResponse MetricsAnswer() {
    std::shared_ptr<const std::string> part;
    std::chrono::steady_clock::time_point at;
    {
      std::lock_guard lock(metrics_mu);
      part = state_metrics;
      at = state_metrics_at;
    }
    PrometheusWriter w;
    RenderCounters(w);
    w.Family("gsched_metrics_state_age_seconds", "gauge",
             "Age of this answer's state gauges (jobs, nodes, GPUs, workers, watch feeds), which "
             "are rendered at most every 100 ms however often /metrics is asked.");
    w.Sample("gsched_metrics_state_age_seconds",
             std::chrono::duration<double>(std::chrono::steady_clock::now() - at).count());
    w.Family("gsched_metrics_state_renders_total", "counter",
             "Renderings of the state gauges on the state thread (every tick, and for scrapes "
             "that found them older than 100 ms).");
    w.Sample("gsched_metrics_state_renders_total",
             static_cast<double>(state_metric_renders.load(std::memory_order_relaxed)));
    return {200, *part + w.text(), "text/plain; version=0.0.4"};
  }

  // The state's part of `/metrics`. State thread (or before it runs).
  void RefreshStateMetrics() {
    PrometheusWriter w;
    // From the pending and running sets, not a walk over every job: with 1,000,000 jobs pending
    // that walk was 13% of the scheduler's samples while restart.1m polled every 10 ms, on the
    // state thread that the first pass waits for.
    std::map<api::JobState, int64_t> by_state, requeued;
    by_state[api::JobState::kPending] = static_cast<int64_t>(state->pending_count());
    for (uint64_t id : state->running_ids()) {
      const api::Job& job = state->jobs().at(id).job;
      ++by_state[job.state];
      if (!job.attempts.empty())
        ++requeued[job.state];
    }
    w.Family("gsched_jobs", "gauge", "Jobs in memory by state (pending, starting, running).");
    for (api::JobState s :
         {api::JobState::kPending, api::JobState::kStarting, api::JobState::kRunning}) {
      w.Sample("gsched_jobs", {{"state", std::string(api::ToString(s))}},
               static_cast<double>(by_state[s]));
    }
    w.Family("gsched_jobs_requeued", "gauge",
             "Starting and running jobs on a later attempt after one ended (node failure, "
             "preemption).");
    for (api::JobState s : {api::JobState::kStarting, api::JobState::kRunning}) {
      w.Sample("gsched_jobs_requeued", {{"state", std::string(api::ToString(s))}},
               static_cast<double>(requeued[s]));
    }
    std::map<std::string, int64_t> nodes_by_state;
    for (const auto& [name, rec] : state->nodes())
      ++nodes_by_state[std::string(api::ToString(rec.node.state))];
    w.Family("gsched_nodes", "gauge", "Nodes by state (up, down, draining, ...).");
    for (const auto& [st, n] : nodes_by_state)
      w.Sample("gsched_nodes", {{"state", st}}, static_cast<double>(n));
    w.Family("gsched_gpus", "gauge",
             "GPUs by type and state (busy, down, unhealthy, idle), as GET /v1/cluster counts.");
    for (const auto& [type, t] : GpuStatesByType()) {
      for (auto [st, v] : {std::pair{"busy", t.busy},
                           {"down", t.down},
                           {"unhealthy", t.unhealthy},
                           {"idle", t.idle}}) {
        w.Sample("gsched_gpus", {{"type", type}, {"state", st}}, static_cast<double>(v));
      }
    }
    w.Family("gsched_store_quarantined_records", "gauge",
             "Stored records that did not decode at start and were moved aside (this start).");
    w.Sample("gsched_store_quarantined_records", static_cast<double>(state->quarantined().size()));
    w.Family("gsched_workers_connected", "gauge", "Workers connected over the worker channel.");
    w.Sample("gsched_workers_connected", static_cast<double>(workers.size()));
    watch->RenderMetrics(w);
    auto text = std::make_shared<const std::string>(w.text());
    state_metric_renders.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(metrics_mu);
    state_metrics = std::move(text);
    state_metrics_at = std::chrono::steady_clock::now();
  }

  // The counters' part of `/metrics`: atomics and thread-safe figures only. Any thread.
  void RenderCounters(PrometheusWriter& w) {
    w.Family("gsched_jobs_submitted_total", "counter", "Jobs accepted durably.");
    w.Sample("gsched_jobs_submitted_total", static_cast<double>(jobs_submitted.load()));
    w.Family("gsched_rate_limited_total", "counter", "Requests refused with 429.");
    w.Sample("gsched_rate_limited_total", static_cast<double>(rate_limited.load()));
    w.Family("gsched_scheduling_passes_total", "counter", "Scheduling passes run.");
    w.Sample("gsched_scheduling_passes_total", static_cast<double>(passes.load()));
    w.Family("gsched_cycle_seconds", "histogram", "Time of the core scheduling pass.");
    w.HistogramSamples("gsched_cycle_seconds", {}, cycle_seconds);
    w.Family("gsched_snapshot_seconds", "histogram",
             "Time to snapshot the state for a pass (state thread).");
    w.HistogramSamples("gsched_snapshot_seconds", {}, snapshot_seconds);
    w.Family("gsched_submit_seconds", "histogram",
             "Submit latency from parsed request to durable answer.");
    w.HistogramSamples("gsched_submit_seconds", {}, submit_seconds);
    w.Family("gsched_commit_batch_mutations", "histogram", "Mutations per committed change.");
    w.HistogramSamples("gsched_commit_batch_mutations", {}, commit_batch);
    state::CommitStats cs = store->Stats();
    w.Family("gsched_store_commits_total", "counter", "Commits handed to the store.");
    w.Sample("gsched_store_commits_total", static_cast<double>(cs.commits));
    w.Family("gsched_store_failing", "gauge",
             "1 while commits wait for free disk space (min_free_disk) or for a failed write to "
             "succeed, and writes are refused with 503.");
    w.Sample("gsched_store_failing", cs.failing ? 1.0 : 0.0);
    w.Family("gsched_store_write_failures_total", "counter",
             "Commit attempts held back: the disk found too full, or a write that failed and is "
             "retried.");
    w.Sample("gsched_store_write_failures_total", static_cast<double>(cs.write_failures));
    w.Family("gsched_store_syncs_total", "counter",
             "Synced writes; commits/syncs is the group size.");
    w.Sample("gsched_store_syncs_total", static_cast<double>(cs.syncs));
    net::ServerCounters nc = http->Counters();
    w.Family("gsched_http_connections", "gauge", "Open HTTP and WebSocket connections.");
    w.Sample("gsched_http_connections", static_cast<double>(nc.connections_open));
    w.Family("gsched_http_requests_total", "counter", "HTTP requests read.");
    w.Sample("gsched_http_requests_total", static_cast<double>(nc.requests_total));
    w.Family("gsched_ws_queued_messages", "gauge",
             "Messages waiting in WebSocket queues (watch feeds and workers), those being "
             "written included.");
    w.Sample("gsched_ws_queued_messages", static_cast<double>(nc.ws_queued));
    w.Family("gsched_worker_hello_refused_total", "counter",
             "Worker hellos refused: a node the token does not serve, or a second node on one "
             "connection.");
    w.Sample("gsched_worker_hello_refused_total", static_cast<double>(hello_refused.load()));
    w.Family("gsched_worker_updates_ignored_total", "counter",
             "Job updates from a worker for attempts not placed on its node (stale or foreign).");
    w.Sample("gsched_worker_updates_ignored_total",
             static_cast<double>(worker_updates_ignored.load()));
    w.Family("gsched_connections_refused_total", "counter",
             "Requests answered 429 and their connection closed: their token held "
             "limits.max_connections_per_token open connections.");
    w.Sample("gsched_connections_refused_total", static_cast<double>(connections_refused.load()));
    w.Family("gsched_watch_feeds_refused_total", "counter",
             "Watch feeds closed at once: their token had watch.max_feeds_per_token open.");
    w.Sample("gsched_watch_feeds_refused_total", static_cast<double>(feeds_refused.load()));
    w.Family("gsched_worker_rate_limited_total", "counter",
             "Worker connections closed for sending over rate_limit.worker_messages_per_s.");
    w.Sample("gsched_worker_rate_limited_total", static_cast<double>(worker_rate_limited.load()));
    w.Family("gsched_worker_closed_token_total", "counter",
             "Worker connections closed because their token was revoked or expired.");
    w.Sample("gsched_worker_closed_token_total", static_cast<double>(worker_tokens_closed.load()));
    if (hooks.metrics)
      hooks.metrics(w);
  }

  // ---- The worker channel --------------------------------------------------------------------
  std::variant<HttpResponse, net::WsHandlers> UpgradeWorker(
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

  // Closes every WebSocket (worker channel and watch feed) whose token was revoked or expired.
  // State thread; runs every `kTokenSweep`, and at once for a revocation.
  void SweepTokens(std::optional<std::string_view> revoked_id) {
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

  void OnTokenSweepTick() {
    if (stopped)
      return;
    SweepTokens(std::nullopt);
    token_sweep_timer->expires_after(kTokenSweep);
    token_sweep_timer->async_wait([this](boost::system::error_code ec) {
      if (!ec)
        OnTokenSweepTick();
    });
  }

  void OnWorkerMessage(const Principal& who, const std::shared_ptr<std::string>& node,
                       const std::weak_ptr<net::WsConnection>& weak, api::WorkerMessage msg) {
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
                                  ? Status::PermissionDenied("this connection serves node '" +
                                                             *node + "', not '" + hello->node + "'")
                                  : state->WorkerHello(who, *hello);
      if (!change.ok()) {
        if (change.status().code() == StatusCode::kPermissionDenied) {
          spdlog::warn("worker hello from {} refused: {}", conn->remote(),
                       change.status().message());
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

  // ---- Start and stop ------------------------------------------------------------------------
  Status Open() {
    std::error_code ec;
    std::filesystem::create_directories(config.data_dir, ec);
    if (ec)
      return Status::Unavailable("cannot create data_dir " + config.data_dir + ": " + ec.message());
    if (!store) {
      ASSIGN_OR_RETURN(store, state::RocksDbStore::Open({.path = config.data_dir + "/db",
                                                         .min_free_bytes = static_cast<uint64_t>(
                                                             config.min_free_disk_bytes)}));
    }
    ASSIGN_OR_RETURN(TokenAuthority a, TokenAuthority::LoadOrCreate(config.data_dir));
    authority.emplace(std::move(a));
    state = std::make_unique<ClusterState>(config, clock);
    auto t0 = std::chrono::steady_clock::now();
    RETURN_IF_ERROR(state->Load(*store));
    spdlog::info("state loaded in {:.2f} s",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (!state->quarantined().empty()) {
      // Moved aside before serving, so that the next start does not meet them again.
      RETURN_IF_ERROR(store->Commit(state->QuarantineBatch()));
      spdlog::error("quarantined {} stored records that did not decode (meta keys quarantine/...)",
                    state->quarantined().size());
    }
    RETURN_IF_ERROR(state->BuildJobIndex(*store));
    limiter =
        std::make_unique<RateLimiter>(clock, static_cast<double>(config.rate_limit.requests_per_s),
                                      static_cast<double>(config.rate_limit.burst));
    connections = std::make_shared<ConnectionLimits>(config.limits.max_connections_per_token);
    worker_limiter = std::make_unique<RateLimiter>(
        clock, static_cast<double>(config.rate_limit.worker_messages_per_s),
        static_cast<double>(config.rate_limit.worker_message_burst));
    RETURN_IF_ERROR(FirstStart());
    return Status::Ok();
  }

  // The admin token and the initial account tree, made once.
  Status FirstStart() {
    std::string token_path = config.data_dir + "/admin.token";
    if (!std::filesystem::exists(token_path)) {
      TokenClaims claims{NewTokenId(),
                         "admin",
                         api::Role::kAdmin,
                         {},
                         clock.Now() + Seconds(int64_t{365} * 86400)};
      RETURN_IF_ERROR(WriteFileAtomic(token_path, authority->Sign(claims) + "\n", 0600));
      spdlog::info("wrote the admin token to {}", token_path);
    }
    if (!config.accounts_file.empty() && state->account_map().size() <= 1) {
      ASSIGN_OR_RETURN(config::AccountsConfig accounts,
                       config::LoadAccountsConfig(config.accounts_file));
      Principal admin{"admin", api::Role::kAdmin, {}, "bootstrap", {}};
      for (const auto& spec : accounts.accounts) {
        // What is stored must read back: check it with the decoder the store's reader uses.
        api::Account account = config::ToApiAccount(spec);
        auto check = api::DecodeAccount(api::Encode(account));
        if (!check.ok()) {
          return std::move(check).status().WithFieldPrefix(config.accounts_file + ": " + spec.name);
        }
        ASSIGN_OR_RETURN(Change change, state->PutAccount(admin, std::move(account)));
        RETURN_IF_ERROR(store->Commit(std::move(change.batch)));
      }
      spdlog::info("applied {} accounts from {}", accounts.accounts.size(), config.accounts_file);
    }
    return Status::Ok();
  }

  Status Serve() {
    AddRoutes();
    net::HttpServerOptions options;
    options.listen = config.listen;
    options.limits.max_body_bytes = static_cast<size_t>(config.limits.max_body_bytes);
    options.limits.max_header_bytes = static_cast<size_t>(config.limits.max_header_bytes);
    options.limits.request_timeout = config.limits.request_timeout;
    options.limits.idle_timeout = config.limits.idle_timeout;
    options.limits.max_connections = static_cast<size_t>(config.limits.max_connections);
    options.limits.ws_max_message_bytes = static_cast<size_t>(config.limits.ws_max_message_bytes);
    options.limits.ws_queue_limit = static_cast<size_t>(config.watch.queue_limit);
    options.limits.ws_ping_interval = config.watch.ping_interval;
    if (config.tls.enabled())
      options.tls = net::TlsFiles{config.tls.cert, config.tls.key, config.tls.client_ca};
    options.threads = 2;
    options.on_connection_end = [connections = connections](uint64_t id) {
      connections->Release(id);
    };
    watch = std::make_unique<WatchHub>(
        WatchHub::Options{.queue_limit = options.limits.ws_queue_limit}, state->recent_events(),
        *store,
        [this](const std::string& account, const std::string& root) {
          return state->InAccountSubtree(account, root);
        },
        [this](std::function<void()> f) { OnState(std::move(f)); }, state->last_event_seq(), clock);
    http = std::make_unique<net::HttpServer>(
        options,
        [this](HttpRequest&& req, Responder respond) {
          Handle(std::move(req), std::move(respond));
        },
        [this](const HttpRequest& req, std::shared_ptr<net::WsConnection> conn) {
          if (req.path == "/v1/watch")
            return UpgradeWatch(req, std::move(conn));
          return UpgradeWorker(req, std::move(conn));
        });
    RefreshStateMetrics();  // Before the state thread runs: the first scrape has the state's part.
    state_work.emplace(state_ioc.get_executor());
    sched_work.emplace(sched_ioc.get_executor());
    state_thread = std::thread([this] { state_ioc.run(); });
    sched_thread = std::thread([this] { sched_ioc.run(); });
    tick.emplace(state_ioc);
    pass_timer.emplace(state_ioc);
    summary_timer.emplace(state_ioc);
    token_sweep_timer.emplace(state_ioc);
    OnState([this] { OnTick(); });
    OnState([this] { OnTokenSweepTick(); });
    OnState([this] { OnSummaryTick(); });
    ASSIGN_OR_RETURN(address, http->Start());
    std::string scheme = config.tls.enabled() ? "https" : "http";
    RETURN_IF_ERROR(WriteFileAtomic(config.data_dir + "/scheduler.addr",
                                    scheme + "://" + address + "\n", 0644));
    return Status::Ok();
  }

  void Shutdown() {
    if (stopped.exchange(true))
      return;
    if (http)
      http->Stop();
    // Let the state thread finish what it has, and the store answer outstanding commits.
    OnState([this] {
      if (tick)
        tick->cancel();
      if (pass_timer)
        pass_timer->cancel();
      if (summary_timer)
        summary_timer->cancel();
      if (token_sweep_timer)
        token_sweep_timer->cancel();
      workers.clear();
      worker_sockets.clear();
    });
    sched_work.reset();
    if (sched_thread.joinable())
      sched_thread.join();
    state_work.reset();
    if (state_thread.joinable())
      state_thread.join();
    if (watch)
      watch->Stop();
    // Destroying the store drains its queue; their callbacks post to a stopped state thread.
    store.reset();
    http.reset();
  }
};

SchedulerService::SchedulerService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SchedulerService::~SchedulerService() {
  Stop();
}

Result<std::unique_ptr<SchedulerService>> SchedulerService::Start(config::SchedulerConfig config) {
  return Start(std::move(config), nullptr, {});
}

Result<std::unique_ptr<SchedulerService>> SchedulerService::Start(
    config::SchedulerConfig config, std::unique_ptr<state::Store> store, ServiceHooks hooks) {
  auto impl = std::make_unique<Impl>();
  impl->config = std::move(config);
  impl->store = std::move(store);
  impl->hooks = std::move(hooks);
  RETURN_IF_ERROR(impl->Open());
  RETURN_IF_ERROR(impl->Serve());
  return std::unique_ptr<SchedulerService>(new SchedulerService(std::move(impl)));
}

const std::string& SchedulerService::address() const {
  return impl_->address;
}
void SchedulerService::Stop() {
  impl_->Shutdown();
}

}  // namespace gsched::server
