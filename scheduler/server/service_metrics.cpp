#include "scheduler/server/service_impl.h"

namespace gsched::server {
std::map<std::string, SchedulerService::Impl::GpuStates> SchedulerService::Impl::GpuStatesByType()
    const {
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

json::object SchedulerService::Impl::ClusterTotals() const {
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

void SchedulerService::Impl::ServeMetrics(Responder respond) {
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

HttpResponse SchedulerService::Impl::MetricsAnswer() {
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

void SchedulerService::Impl::RefreshStateMetrics() {
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

void SchedulerService::Impl::RenderCounters(PrometheusWriter& w) {
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

}  // namespace gsched::server
