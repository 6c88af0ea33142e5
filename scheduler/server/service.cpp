#include "scheduler/server/service_impl.h"

namespace gsched::server {
void SchedulerService::Impl::Commit(Change change, std::function<void(Status)> then) {
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
        spdlog::critical("commit failed: {}; stopping so that a restart reloads the durable state",
                         s.ToString());
        std::abort();
      }
      Deliver(*events);
      if (then)
        then(Status::Ok());
    });
  });
}

void SchedulerService::Impl::Deliver(const Change& change) {
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

void SchedulerService::Impl::Finish(Result<Change> result, Responder respond,
                                    std::function<HttpResponse()> ok) {
  if (!result.ok())
    return respond(Error(result.status()));
  Commit(std::move(result).value(), [respond = std::move(respond), ok = std::move(ok)](Status s) {
    respond(s.ok() ? ok() : Error(s));
  });
}

void SchedulerService::Impl::Kick() {
  if (stopped)
    return;
  if (std::optional<Timestamp> at = pass_trigger.Request())
    ArmPassTimer(*at);
}

void SchedulerService::Impl::ArmPassTimer(Timestamp at) {
  if (stopped)
    return;
  pass_timer->expires_at(SteadyClock::ToSteady(at));
  pass_timer->async_wait([this](boost::system::error_code ec) {
    if (ec) {
      pass_trigger.Defer();  // Cancelled: the service stops.
      return;
    }
    RunPass();
  });
}

void SchedulerService::Impl::RunPass() {
  // No new placements while commits cannot land: the request stays, and the tick asks again.
  if (stopped || store->Stats().failing) {
    pass_trigger.Defer();
    return;
  }
  if (!pass_trigger.Begin())
    return;
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
      // 4. Requests that arrived meanwhile schedule the next pass.
      if (std::optional<Timestamp> at = pass_trigger.End())
        ArmPassTimer(*at);
    });
  });
}

void SchedulerService::Impl::OnTick() {
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

void SchedulerService::Impl::OnSummaryTick() {
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

std::vector<json::object> SchedulerService::Impl::AccountUsage() const {
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

Result<Principal> SchedulerService::Impl::Authenticate(const HttpRequest& req) {
  std::string_view auth = req.Header("authorization");
  if (auth.empty())
    return Status::Unauthenticated("missing Authorization: Bearer token");
  if (auth.substr(0, 7) != "Bearer ")
    return Status::Unauthenticated("Authorization must be 'Bearer TOKEN'");
  return Verify(auth.substr(7));
}

Result<Principal> SchedulerService::Impl::Verify(std::string_view token) {
  ASSIGN_OR_RETURN(TokenClaims claims, authority->Verify(token, clock.Now()));
  return Principal{claims.user, claims.role,    claims.accounts,
                   claims.id,   claims.expires, claims.nodes};
}

Status SchedulerService::Impl::Open() {
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

Status SchedulerService::Impl::FirstStart() {
  std::string token_path = config.data_dir + "/admin.token";
  if (!std::filesystem::exists(token_path)) {
    TokenClaims claims{
        NewTokenId(), "admin", api::Role::kAdmin, {}, clock.Now() + Seconds(int64_t{365} * 86400)};
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

Status SchedulerService::Impl::Serve() {
  RETURN_IF_ERROR(AddRoutes());
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
      [this](HttpRequest&& req, Responder respond) { Handle(std::move(req), std::move(respond)); },
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
  RETURN_IF_ERROR(
      WriteFileAtomic(config.data_dir + "/scheduler.addr", scheme + "://" + address + "\n", 0644));
  return Status::Ok();
}

void SchedulerService::Impl::Shutdown() {
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
