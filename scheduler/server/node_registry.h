// `NodeRegistry`: the nodes and their workers (DESIGN.md sections 2 and 5): what each worker
// said in its hello, whether it is connected, heartbeats and timeouts, GPU health, drains, and
// what the starting and running attempts hold on each node (GPUs, CPUs, memory, rendezvous
// ports).
//
// Owns: the `NodeRecord`s, written to the `nodes` family through `Change` batches, and the
// `node.state` / `node.health` events (through the `EventLog`). It knows jobs only as the ids and
// allocations it is handed: what a node's loss or a worker's reconnection does to jobs is
// `ClusterState`'s. I/O: `Load` reads the store once at start; nothing else touches it.
// Threading: not thread-safe; owned by `ClusterState`, on the service's state thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/scheduler_config.h"
#include "scheduler/api/types.h"
#include "scheduler/api/worker_messages.h"
#include "scheduler/common/clock.h"
#include "scheduler/common/status.h"
#include "scheduler/core/model.h"
#include "scheduler/server/change.h"
#include "scheduler/server/event_log.h"
#include "scheduler/state/store.h"

namespace gsched::server {

struct NodeRecord {
  api::Node node;
  bool connected = false;
  Timestamp last_heartbeat{};
  uint64_t used_gpus = 0;  // Bitmask derived from running allocations.
  // The starting and running jobs with a part on this node, kept with `used_gpus`: a hello or a
  // lost node looks at these instead of every running job.
  std::set<uint64_t> jobs;
  // The state to return to when a `down` node is heard from again (an admin's drain survives).
  api::NodeState state_before_down = api::NodeState::kUp;
  // What the starting and running attempts with a part here asked for per node (their specs'
  // `cpus_per_node` and `memory_mib_per_node`), kept with `used_gpus`.
  int32_t used_cpus = 0;
  int64_t used_memory_mib = 0;
  // The ports the worker lends to rendezvous (`hello.rendezvous_ports`; the worker's default when
  // it does not say), and those that attempts with a part here hold.
  api::PortRange rendezvous_ports = api::kDefaultRendezvousPorts;
  std::set<int32_t> rendezvous_in_use;
};

class NodeRegistry {
 public:
  using Quarantine =
      std::function<bool(std::string_view key, std::string_view value, std::string why)>;

  NodeRegistry(const config::SchedulerConfig& config, const Clock& clock, EventLog& events)
      : config_(config), clock_(clock), events_(events) {}

  // Reads the stored nodes; nobody is connected after a restart (workers say hello again).
  Status Load(const state::Store& store, const Quarantine& quarantine);

  const std::map<std::string, NodeRecord>& all() const { return nodes_; }
  NodeRecord* Find(const std::string& name);
  const NodeRecord* Find(const std::string& name) const;
  std::vector<api::Node> Nodes() const;  // The wire form, with `free_gpus`.

  // --- What workers say (the caller has checked that the token serves the node) ------------
  // Records the node as the hello describes it, connected; a node back from `down` returns to
  // the state it had (an admin's drain survives).
  NodeRecord& Hello(Change& change, const api::Hello& hello);
  Result<Change> Heartbeat(const api::Heartbeat& hb);
  Result<Change> GpuHealth(const api::GpuHealthReport& report);
  void Disconnected(const std::string& node);
  // Marks nodes silent for `nodes.heartbeat_timeout` `down`; returns those down for
  // `nodes.lost_timeout`, whose jobs are lost.
  std::set<std::string> CheckTimeouts(Change& change);

  // --- What admins ask (the caller has checked the role) ------------------------------------
  Result<Change> Drain(const Principal& who, const std::string& node, const std::string& reason);
  Result<Change> Resume(const Principal& who, const std::string& node);

  // --- What attempts hold -------------------------------------------------------------------
  // Takes (gives back) the GPUs, CPUs, memory and rendezvous port of a starting or running job on
  // its nodes. `cpus` and `memory_mib` are per node.
  void Hold(const api::Job& job, int32_t cpus, int64_t memory_mib);
  void Release(const api::Job& job, int32_t cpus, int64_t memory_mib);
  // After an attempt ended on `node`: a draining node with nothing left on it is drained.
  void DrainedIfIdle(Change& change, const std::string& node);
  // Whether a part of a new attempt fits on `node` now: the worker connected, the node `up`,
  // its GPUs of type `gpu_type`, `gpus` present, healthy and free, and `cpus` and `memory_mib`
  // within what the attempts there leave free. Empty when it fits, else why not.
  std::string WhyNotFits(const std::string& node, const std::string& gpu_type, uint64_t gpus,
                         int32_t cpus, int64_t memory_mib) const;
  // Where a new attempt on `nodes` (rank order) meets: rank 0's address and a port of its range
  // that no attempt with a part on any of `nodes` holds. Absent when every port is held.
  std::optional<api::Rendezvous> ChooseRendezvous(const std::vector<std::string>& nodes,
                                                  uint64_t job, uint32_t attempt) const;

 private:
  // Moves a node to `to`, persists it and records a `node.state` event.
  void SetState(Change& change, NodeRecord& rec, api::NodeState to, std::string reason,
                std::string by = {});
  void BackFromDown(Change& change, NodeRecord& rec, std::string reason);
  static void Persist(Change& change, const NodeRecord& rec);

  const config::SchedulerConfig& config_;
  const Clock& clock_;
  EventLog& events_;
  std::map<std::string, NodeRecord> nodes_;
};

}  // namespace gsched::server
