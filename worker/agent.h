// `WorkerAgent`: one node's link to the scheduler (DESIGN.md section 5, worker channel).
//
// Connects to `<scheduler>/v1/workers/connect` with the worker token, sends `hello` (inventory,
// NVLink pairs, attempts it runs), a `heartbeat` every `heartbeat_interval`, a `job_update` for
// every state change its `JobBackend` reports and `gpu_health` when a health check changes
// something; hands `launch`/`signal`/`kill`/`drain` to the backend and takes `ack`s. A malformed
// message is logged and ignored.
//
// Reconnects after any close with exponential backoff and jitter: the n-th attempt waits
// `b/2 + r * b/2` with `b = min(max_backoff, initial_backoff * 2^n)` and `r` from the injected
// random source; a successful hello resets n.
//
// Several schedulers (DESIGN.md section 12): `schedulers` lists every scheduler of a
// high-availability group; `net::FailoverList` picks where each attempt goes. The first attempt
// after a drop goes to the scheduler that worked last; a failed connection or a refused upgrade
// moves on to the next URL at once, and only once every URL failed does the backoff above apply.
// A standby's refusal (503) that names a leader in its `X-Gsched-Leader` header sends the next
// attempt straight to that leader when it is one of `schedulers` (at most once per URL per round),
// and is ignored, with a warning, when it is not: the worker's token goes nowhere else. Once
// connected the worker says hello as after any reconnect, and the scheduler reconciles.
//
// Delivery of final states: a terminal `job_update` stays in an outbox until the scheduler answers
// `ack` for its attempt, which it does once the update is durable; then
// `JobBackend::MarkReported` records it. Terminal updates still in the outbox when a connection
// drops are sent again on the next one, so the final state of every attempt reaches the
// scheduler's disk at least once (it de-duplicates by attempt), even when the scheduler died
// between receiving an update and storing it.
// Non-terminal updates made while disconnected are dropped: the next hello lists running attempts.
//
// Threading: everything runs on the given io_context (one thread). `OnJobUpdate`,
// `OnHealth` and `Stop` may be called from any thread; they post. The backend's methods are
// called on the io_context thread and must not block.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/worker_config.h"
#include "scheduler/api/worker_messages.h"
#include "scheduler/common/clock.h"
#include "worker/gpu_inventory.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace gsched::worker {

// Where jobs run: the supervisor with real processes, or the simulator's timers.
class JobBackend {
 public:
  virtual ~JobBackend() = default;
  virtual void Launch(const api::Launch& launch) = 0;
  virtual void Signal(const api::Signal& signal) = 0;
  virtual void Kill(const api::Kill& kill) = 0;
  virtual std::vector<api::RunningAttempt> Running() const = 0;
  virtual void MarkReported(uint64_t job, uint32_t attempt) = 0;
  // Reads a chunk of an attempt's output and calls `answer` with it, from any thread.
  using LogAnswer = std::function<void(api::LogChunk)>;
  virtual void ReadLog(const api::ReadLog& request, LogAnswer answer) = 0;
};

// What a node says about itself in `hello`.
struct NodeIdentity {
  std::string name;
  std::string address;  // Empty: the scheduler keeps the node's name as its address.
  std::optional<api::PortRange> rendezvous_ports;
  std::string site;
  std::string block;
  std::map<std::string, std::string> labels;
  int32_t cpus = 0;
  int64_t memory_mib = 0;
  GpuInventory inventory;
  std::string version = "gsched-worker 0.1.0";
};

struct AgentOptions {
  // http://host:port or https://host:port (wss, verified), in the order to try them; not empty.
  std::vector<std::string> schedulers;
  std::string ca_file;    // For https: the CA that signs the scheduler's certificate.
  std::string cert_file;  // For https with mutual TLS: this node's certificate and key.
  std::string key_file;
  std::string token;
  Duration heartbeat_interval = Seconds(5);
  config::ReconnectConfig reconnect;
  // Uniform in [0, 1); injected so that tests are deterministic.
  std::function<double()> random;
};

struct AgentCounters {
  uint64_t connects = 0;
  uint64_t disconnects = 0;
  uint64_t messages_in = 0;
  uint64_t bad_messages = 0;
  uint64_t messages_out = 0;
  // Standbys' refusals that sent the next attempt to the leader they named, and those that named
  // a leader outside `schedulers` (ignored).
  uint64_t leader_hints_followed = 0;
  uint64_t leader_hints_ignored = 0;
  // The scheduler of the current (or last) connection; empty before the first.
  std::string scheduler;
};

class WorkerAgent {
 public:
  WorkerAgent(boost::asio::io_context& ioc, AgentOptions options, NodeIdentity identity,
              JobBackend& backend, const Clock& clock);
  ~WorkerAgent();
  WorkerAgent(const WorkerAgent&) = delete;
  WorkerAgent& operator=(const WorkerAgent&) = delete;

  // Starts connecting (posts).
  void Start();
  // Closes the connection and stops reconnecting; jobs keep running. Thread-safe.
  void Stop();

  // A job's state changed. Thread-safe.
  void OnJobUpdate(const api::JobUpdate& update);
  // The result of a health check. Sends `gpu_health` when any GPU's health or message changed.
  // Thread-safe.
  void OnHealth(std::vector<api::GpuHealthEntry> health);

  // The delay before reconnect attempt `n` (0-based) for `random` in [0, 1).
  static Duration Backoff(const config::ReconnectConfig& reconnect, int n, double random);

  AgentCounters counters() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace gsched::worker
