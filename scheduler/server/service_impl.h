// Internal to the service: `SchedulerService::Impl`, the one object the daemon runs on, and the
// helpers its parts share. Included by service.cpp (plumbing, the scheduling loop, start and stop),
// service_routes.cpp (HTTP requests and the route table), service_channels.cpp (the worker channel
// and the watch feed) and service_metrics.cpp (/metrics), nowhere else.
#pragma once

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
#include "scheduler/common/pass_trigger.h"
#include "scheduler/common/policy_defaults.h"
#include "scheduler/common/quantity.h"
#include "scheduler/common/steady_clock.h"
#include "scheduler/net/http_server.h"
#include "scheduler/server/cluster_state.h"
#include "scheduler/server/connection_limits.h"
#include "scheduler/server/log_relay.h"
#include "scheduler/server/metrics.h"
#include "scheduler/server/rate_limiter.h"
#include "scheduler/server/router.h"
#include "scheduler/server/service.h"
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

// Commits waiting for the disk beyond which new writes are refused with 503 rather than queued.
inline constexpr uint64_t kMaxCommitBacklog = 100'000;
// Stored jobs looked at per tick for history pruning: a few milliseconds of the state thread.
inline constexpr size_t kPruneRowsPerTick = 2000;

inline int HttpStatus(StatusCode code) {
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

inline HttpResponse Error(const Status& s) {
  return {HttpStatus(s.code()), json::serialize(api::ErrorBody(s))};
}
inline HttpResponse Json(int status, const json::value& v) {
  return {status, json::serialize(v)};
}

inline Result<uint64_t> ParseId(std::string_view text, std::string_view field) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v == 0) {
    return Status::InvalidArgument(
        "must be a positive integer, got '" + std::string(text.substr(0, 32)) + "'",
        std::string(field));
  }
  return v;
}

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
  void Commit(Change change, std::function<void(Status)> then);

  void Deliver(const Change& change);

  // Applies `result` (a change or an error) and answers through `respond` once durable.
  void Finish(Result<Change> result, Responder respond, std::function<HttpResponse()> ok);

  // ---- The scheduling loop -------------------------------------------------------------------
  // When passes run: `PassTrigger`, the rule `gsched-sim` replays, on the monotonic clock (state
  // thread). `pass_timer` waits for the wake-ups it schedules.
  SteadyClock loop_clock;
  PassTrigger pass_trigger{loop_clock, policy_defaults::kPassCoalesce,
                           policy_defaults::kPassMinGap};

  // Asks for a pass (coalesced by `pass_trigger`).
  void Kick();

  // Arms `pass_timer` for the wake-up at `at` (a `loop_clock` time).
  void ArmPassTimer(Timestamp at);

  // The wake-up: runs a pass if one is wanted and none runs.
  void RunPass();

  void OnTick();

  // The periodic ephemeral events of the watch feed, made only while someone takes them.
  void OnSummaryTick();

  // One `account.usage` body per account but `root`: decayed fair-share usage and what runs and
  // waits there now. One pass over the jobs in memory.
  std::vector<json::object> AccountUsage() const;

  // ---- Authentication ------------------------------------------------------------------------
  // Verifies the bearer token's signature and expiry (any thread); revocation is checked on the
  // state thread, where the revocation set lives.
  Result<Principal> Authenticate(const HttpRequest& req);
  Result<Principal> Verify(std::string_view token);

  // ---- The watch feed ------------------------------------------------------------------------
  // `GET /v1/watch`: checks the token and the query here (network thread), so that a bad request
  // gets its 4xx before the upgrade; the subscription itself starts on the state thread.
  std::variant<HttpResponse, net::WsHandlers> UpgradeWatch(const HttpRequest& req,
                                                           std::shared_ptr<net::WsConnection> conn);

  // ---- HTTP ----------------------------------------------------------------------------------
  void Handle(HttpRequest&& req, Responder respond);

  Status Revoked(const Principal& who) const;

  bool Backlogged() const;

  static HttpResponse DiskRefusing();

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
  Status AddRoutes();

  // State thread.
  void Route(const Principal& who, const HttpRequest& req, const std::optional<json::value>& body,
             Responder respond);

  // Calls `f` with the route's job id, or answers 400 naming `id`.
  template <typename F>
  void WithJobId(const RouteCall& c, F&& f) {
    auto id = ParseId(c.params.Get("id"), "id");
    if (!id.ok())
      return c.respond(Error(id.status()));
    f(*id);
  }

  // cancel, hold, release: `change(id)` once the caller may see the job; answers with the job.
  void JobAction(const RouteCall& c, const std::function<Result<Change>(uint64_t)>& change);

  void NodeAction(const RouteCall& c, bool drain);

  void ListJobs(const Principal& who, const HttpRequest& req, const Responder& respond);

  // `GET /v1/usage?account=&since=&until=`: normalised GPU-hours by account, user and GPU type;
  // the last 30 days by default.
  void Usage(const Principal& who, const HttpRequest& req, const Responder& respond);

  // `GET /v1/jobs/{id}/logs?offset=&limit=&stream=&attempt=&node=`: asks the node that ran the
  // attempt (rank 0 of a gang unless `node` says otherwise) and answers with what it sends back.
  void ReadLogs(const Principal& who, uint64_t id, const HttpRequest& req,
                const Responder& respond);

  void CreateToken(const Principal& who, const std::optional<json::value>& body,
                   const Responder& respond);

  // Totals, and the fair-share standings of the accounts `who` may see.
  json::object Cluster(const Principal& who);

  // Each GPU in one state, by type: `busy` (allocated), else `down` (its node is), else
  // `unhealthy`, else `idle`. One count for `GET /v1/cluster`, `cluster.summary` and `/metrics`.
  struct GpuStates {
    int64_t total = 0, busy = 0, down = 0, unhealthy = 0, idle = 0;
  };
  std::map<std::string, GpuStates> GpuStatesByType() const;

  // GPUs by type and state, nodes, and the queue: `GET /v1/cluster` and `cluster.summary`.
  json::object ClusterTotals() const;

  // `/metrics` needs no token, so a flood of it must not take the state thread. Counters are
  // rendered per request; the state's gauges (jobs, nodes, GPUs, workers, watch feeds) come from a
  // rendering made at every tick, or by the state thread for a scrape that finds it older than
  // `kStateMetricsMaxAge`: then requests share the one queued refresh. A flood therefore costs the
  // state thread at most one rendering per `kStateMetricsMaxAge`, and the gauges are at most that
  // old plus the wait (`gsched_metrics_state_age_seconds`).
  void ServeMetrics(Responder respond);

  HttpResponse MetricsAnswer();

  // The state's part of `/metrics`. State thread (or before it runs).
  void RefreshStateMetrics();

  // The counters' part of `/metrics`: atomics and thread-safe figures only. Any thread.
  void RenderCounters(PrometheusWriter& w);

  // ---- The worker channel --------------------------------------------------------------------
  std::variant<HttpResponse, net::WsHandlers> UpgradeWorker(
      const HttpRequest& req, std::shared_ptr<net::WsConnection> conn);

  // Closes every WebSocket (worker channel and watch feed) whose token was revoked or expired.
  // State thread; runs every `kTokenSweep`, and at once for a revocation.
  void SweepTokens(std::optional<std::string_view> revoked_id);

  void OnTokenSweepTick();

  void OnWorkerMessage(const Principal& who, const std::shared_ptr<std::string>& node,
                       const std::weak_ptr<net::WsConnection>& weak, api::WorkerMessage msg);

  // ---- Start and stop ------------------------------------------------------------------------
  Status Open();

  // The admin token and the initial account tree, made once.
  Status FirstStart();

  Status Serve();

  void Shutdown();
};

}  // namespace gsched::server
