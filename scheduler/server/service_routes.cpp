#include "scheduler/server/service_impl.h"

namespace gsched::server {
void SchedulerService::Impl::Handle(HttpRequest&& req, Responder respond) {
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
    r.headers.push_back({"Retry-After", std::to_string(limiter->RetryAfterSeconds(who->token_id))});
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

Status SchedulerService::Impl::Revoked(const Principal& who) const {
  if (state->IsRevoked(who.token_id))
    return Status::Unauthenticated("token revoked");
  return Status::Ok();
}

bool SchedulerService::Impl::Backlogged() const {
  state::CommitStats cs = store->Stats();
  return cs.failing || cs.queue_depth > kMaxCommitBacklog;
}

HttpResponse SchedulerService::Impl::DiskRefusing() {
  HttpResponse r = Error(Status::Unavailable(
      "the scheduler cannot write to its disk (full or failing); nothing was changed; retry"));
  r.headers.push_back({"Retry-After", "5"});
  return r;
}

Status SchedulerService::Impl::AddRoutes() {
  Status added = Status::Ok();
  // A route given twice is a programming error: the scheduler does not start with it.
  auto add = [this, &added](std::string method, std::string_view pattern, RouteHandler h) {
    if (Status s = routes.Add(std::move(method), pattern, std::move(h)); !s.ok() && added.ok())
      added = std::move(s);
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
  add("POST", "/v1/tokens", [this](const RouteCall& c) { CreateToken(c.who, c.body, c.respond); });
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
  return added;
}

void SchedulerService::Impl::Route(const Principal& who, const HttpRequest& req,
                                   const std::optional<json::value>& body, Responder respond) {
  auto match = routes.Find(req.method, req.path);
  if (!match)
    return respond(Error(Status(StatusCode::kNotFound, "no route " + req.method + " " + req.path)));
  (*match->handler)(RouteCall{who, req, body, match->params, respond});
}

void SchedulerService::Impl::JobAction(const RouteCall& c,
                                       const std::function<Result<Change>(uint64_t)>& change) {
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

void SchedulerService::Impl::NodeAction(const RouteCall& c, bool drain) {
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

void SchedulerService::Impl::ListJobs(const Principal& who, const HttpRequest& req,
                                      const Responder& respond) {
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

void SchedulerService::Impl::Usage(const Principal& who, const HttpRequest& req,
                                   const Responder& respond) {
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

void SchedulerService::Impl::ReadLogs(const Principal& who, uint64_t id, const HttpRequest& req,
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
  const std::vector<api::Allocation>& allocation = attempt ? attempt->allocation : job->allocation;
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

void SchedulerService::Impl::CreateToken(const Principal& who,
                                         const std::optional<json::value>& body,
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

json::object SchedulerService::Impl::Cluster(const Principal& who) {
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

}  // namespace gsched::server
