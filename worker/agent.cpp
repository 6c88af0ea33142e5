#include "worker/agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <mutex>
#include <utility>

#include "scheduler/net/server_list.h"
#include "scheduler/net/ws_async_client.h"

namespace gsched::worker {
namespace asio = boost::asio;

struct WorkerAgent::Impl : std::enable_shared_from_this<WorkerAgent::Impl> {
  Impl(asio::io_context& io, AgentOptions opts, NodeIdentity id, JobBackend& jobs, const Clock& clk)
      : ioc(io),
        options(std::move(opts)),
        identity(std::move(id)),
        backend(jobs),
        clock(clk),
        servers(options.schedulers.empty() ? std::vector<std::string>{""} : options.schedulers),
        heartbeat_timer(io),
        reconnect_timer(io) {}

  asio::io_context& ioc;
  AgentOptions options;
  NodeIdentity identity;
  JobBackend& backend;
  const Clock& clock;
  net::FailoverList servers;
  // The leader named by the refusal of the attempt under way (empty: none).
  std::string refusal_leader;
  asio::steady_timer heartbeat_timer;
  asio::steady_timer reconnect_timer;
  std::shared_ptr<net::AsyncWsClient> ws;
  bool open = false;
  bool stopped = false;
  int failures = 0;
  uint64_t connection = 0;  // Generation of the current connection.
  // Final updates not acknowledged yet, by (job, attempt).
  std::map<std::pair<uint64_t, uint32_t>, api::JobUpdate> outbox;
  std::optional<std::vector<api::GpuHealthEntry>> last_health;
  mutable std::mutex counters_mu;
  AgentCounters counters;

  void Count(uint64_t AgentCounters::*field) {
    std::lock_guard lock(counters_mu);
    ++(counters.*field);
  }

  bool SendMessage(const api::WorkerMessage& m) {
    if (!open || !ws)
      return false;
    if (!ws->Send(api::SerializeMessage(m)))
      return false;
    Count(&AgentCounters::messages_out);
    return true;
  }

  void Connect() {
    if (stopped)
      return;
    ++connection;
    uint64_t generation = connection;
    auto self = shared_from_this();
    net::AsyncWsOptions ws_options;
    ws_options.token = options.token;
    ws_options.ca_file = options.ca_file;
    ws_options.cert_file = options.cert_file;
    ws_options.key_file = options.key_file;
    net::AsyncWsCallbacks cb;
    cb.on_open = [self, generation] {
      if (generation == self->connection)
        self->OnOpen();
    };
    cb.on_message = [self, generation](std::string text) {
      if (generation == self->connection)
        self->OnMessage(text);
    };
    cb.on_close = [self, generation](std::string reason) {
      if (generation == self->connection)
        self->OnClose(std::move(reason));
    };
    cb.on_refused = [self, generation](const net::HttpResponse& answer) {
      if (generation == self->connection && answer.status == 503)
        self->refusal_leader = net::LeaderHeader(answer.headers);
    };
    refusal_leader.clear();
    auto client = net::AsyncWsClient::Connect(ioc, servers.current(), "/v1/workers/connect",
                                              std::move(ws_options), std::move(cb));
    if (!client.ok()) {
      spdlog::error("{}: {}: {}", identity.name, servers.current(), client.status().ToString());
      NextAttempt();
      return;
    }
    ws = *client;
  }

  // The attempt at `servers.current()` failed (it never opened): on to the next scheduler, at
  // once while the round lasts, else after the backoff.
  void NextAttempt() {
    std::string failed = servers.current();
    std::string leader = std::exchange(refusal_leader, {});
    net::FailoverList::Step step = servers.Failed(leader);
    if (step.leader_not_listed) {
      Count(&AgentCounters::leader_hints_ignored);
      spdlog::warn(
          "{}: {} names {} as the leader, which is not in this worker's scheduler list; "
          "ignored",
          identity.name, failed, leader);
    }
    if (step.followed_leader) {
      Count(&AgentCounters::leader_hints_followed);
      spdlog::info("{}: {} is a standby; trying the leader {}", identity.name, failed,
                   servers.current());
    }
    if (step.round_over) {
      ScheduleReconnect();
      return;
    }
    asio::post(ioc, [self = shared_from_this()] { self->Connect(); });
  }

  void OnOpen() {
    open = true;
    servers.Succeeded();
    Count(&AgentCounters::connects);
    {
      std::lock_guard lock(counters_mu);
      // Said once per change of scheduler (the first connection included) when there is a
      // choice; a single scheduler is named in the start-up line already.
      if (counters.scheduler != servers.current()) {
        if (servers.size() > 1)
          spdlog::info("{}: connected to {}", identity.name, servers.current());
        counters.scheduler = servers.current();
      }
    }
    api::Hello hello;
    hello.node = identity.name;
    hello.address = identity.address;
    hello.rendezvous_ports = identity.rendezvous_ports;
    hello.site = identity.site;
    hello.block = identity.block;
    hello.labels = identity.labels;
    hello.cpus = identity.cpus;
    hello.memory_mib = identity.memory_mib;
    hello.gpus = identity.inventory.gpus;
    hello.nvlink_pairs = identity.inventory.nvlink_pairs;
    hello.running = backend.Running();
    // Attempts that ended while no connection carried their final update are listed with that
    // final state, so that the scheduler does not take them for lost before the update, sent
    // right after the hello, arrives.
    for (const auto& [key, final_update] : outbox) {
      bool listed = std::any_of(hello.running.begin(), hello.running.end(), [&](const auto& r) {
        return r.job == key.first && r.attempt == key.second;
      });
      if (!listed)
        hello.running.push_back({key.first, key.second, final_update.state});
    }
    hello.worker_version = identity.version;
    SendMessage(hello);
    failures = 0;
    if (last_health) {
      api::GpuHealthReport report{identity.name, *last_health};
      SendMessage(report);
    }
    // Final updates not acknowledged yet: again, on this connection.
    for (const auto& [key, final_update] : outbox)
      SendMessage(final_update);
    ScheduleHeartbeat();
  }

  void OnMessage(const std::string& text) {
    Count(&AgentCounters::messages_in);
    auto message = api::DecodeSchedulerMessage(text);
    if (!message.ok()) {
      Count(&AgentCounters::bad_messages);
      spdlog::warn("{}: ignoring a malformed message from the scheduler: {}", identity.name,
                   message.status().ToString());
      return;
    }
    std::visit(
        [this](const auto& m) {
          using T = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<T, api::Launch>) {
            backend.Launch(m);
          } else if constexpr (std::is_same_v<T, api::Signal>) {
            backend.Signal(m);
          } else if constexpr (std::is_same_v<T, api::Kill>) {
            backend.Kill(m);
          } else if constexpr (std::is_same_v<T, api::Drain>) {
            spdlog::info("{}: drained by the scheduler: {}", identity.name, m.reason);
          } else if constexpr (std::is_same_v<T, api::Ack>) {
            // The scheduler stored the attempt's end: it need not be sent again, even after a
            // restart of this worker.
            if (outbox.erase({m.job, m.attempt}) > 0)
              backend.MarkReported(m.job, m.attempt);
          } else if constexpr (std::is_same_v<T, api::ReadLog>) {
            // The answer goes back on the connection that asked; after a reconnect the
            // scheduler has already failed the request.
            uint64_t generation = connection;
            backend.ReadLog(m, [self = shared_from_this(), generation](api::LogChunk chunk) {
              asio::post(self->ioc, [self, generation, chunk = std::move(chunk)] {
                if (generation == self->connection && self->open)
                  self->SendMessage(chunk);
              });
            });
          }
        },
        *message);
  }

  void OnClose(std::string reason) {
    bool was_open = open;
    open = false;
    ws.reset();
    heartbeat_timer.cancel();
    if (was_open)
      Count(&AgentCounters::disconnects);
    if (stopped)
      return;
    spdlog::info("{}: connection to {} ended: {}", identity.name, servers.current(), reason);
    if (was_open) {
      // The scheduler that worked is tried again first, after the backoff.
      ScheduleReconnect();
      return;
    }
    NextAttempt();
  }

  void ScheduleReconnect() {
    if (stopped)
      return;
    double r = options.random ? options.random() : 0.5;
    Duration delay = Backoff(options.reconnect, failures, r);
    ++failures;
    reconnect_timer.expires_after(delay);
    reconnect_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec)
        self->Connect();
    });
  }

  void ScheduleHeartbeat() {
    heartbeat_timer.expires_after(options.heartbeat_interval);
    uint64_t generation = connection;
    heartbeat_timer.async_wait(
        [self = shared_from_this(), generation](boost::system::error_code ec) {
          if (ec || generation != self->connection || !self->open)
            return;
          self->Heartbeat();
        });
  }

  void Heartbeat() {
    api::Heartbeat hb;
    hb.node = identity.name;
    hb.time = clock.Now();
    hb.running = backend.Running();
    SendMessage(hb);
    ScheduleHeartbeat();
  }

  void Update(const api::JobUpdate& update) {
    SendMessage(update);
    // Kept until acknowledged, whether or not a connection took it now.
    if (api::IsTerminal(update.state))
      outbox[{update.job, update.attempt}] = update;
  }

  void Health(std::vector<api::GpuHealthEntry> health) {
    if (last_health == health)
      return;
    last_health = health;
    for (auto& gpu : identity.inventory.gpus)
      for (const auto& e : health)
        if (e.index == gpu.index)
          gpu.health = e.health;
    api::GpuHealthReport report{identity.name, std::move(health)};
    SendMessage(report);
  }

  void DoStop() {
    if (stopped)
      return;
    stopped = true;
    heartbeat_timer.cancel();
    reconnect_timer.cancel();
    if (ws)
      ws->Close();
  }
};

WorkerAgent::WorkerAgent(asio::io_context& ioc, AgentOptions options, NodeIdentity identity,
                         JobBackend& backend, const Clock& clock)
    : impl_(std::make_shared<Impl>(ioc, std::move(options), std::move(identity), backend, clock)) {}

WorkerAgent::~WorkerAgent() = default;

void WorkerAgent::Start() {
  asio::post(impl_->ioc, [impl = impl_] { impl->Connect(); });
}

void WorkerAgent::Stop() {
  asio::post(impl_->ioc, [impl = impl_] { impl->DoStop(); });
}

void WorkerAgent::OnJobUpdate(const api::JobUpdate& update) {
  asio::post(impl_->ioc, [impl = impl_, update] { impl->Update(update); });
}

void WorkerAgent::OnHealth(std::vector<api::GpuHealthEntry> health) {
  asio::post(impl_->ioc, [impl = impl_, health = std::move(health)]() mutable {
    impl->Health(std::move(health));
  });
}

Duration WorkerAgent::Backoff(const config::ReconnectConfig& reconnect, int n, double random) {
  int64_t base = reconnect.initial_backoff.count();
  int64_t cap = std::max<int64_t>(reconnect.max_backoff.count(), 1);
  for (int i = 0; i < n && base < cap; ++i)
    base *= 2;
  base = std::min(base, cap);
  random = std::clamp(random, 0.0, 1.0);
  return Duration(base / 2 + static_cast<int64_t>(random * static_cast<double>(base - base / 2)));
}

AgentCounters WorkerAgent::counters() const {
  std::lock_guard lock(impl_->counters_mu);
  return impl_->counters;
}

}  // namespace gsched::worker
