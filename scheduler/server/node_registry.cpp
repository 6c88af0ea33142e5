#include "scheduler/server/node_registry.h"

#include <algorithm>
#include <boost/json.hpp>

#include "scheduler/api/codec.h"
#include "scheduler/api/decode.h"
#include "scheduler/api/json.h"
#include "scheduler/common/quantity.h"

namespace gsched::server {
namespace json = boost::json;

namespace {

// A node as stored: its wire form plus what only the scheduler keeps (`state_before_down`, so
// that a drained node that was down when the scheduler restarted comes back drained).
std::string StoredNode(const NodeRecord& rec) {
  json::value v = api::Encode(rec.node);
  v.as_object()["state_before_down"] = api::ToString(rec.state_before_down);
  return json::serialize(v);
}

}  // namespace

Status NodeRegistry::Load(const state::Store& store, const Quarantine& quarantine) {
  return store.Scan(state::Family::kNodes, {}, {}, [&](auto key, auto value) {
    auto v = api::ParseJson(value);
    if (!v.ok())
      return quarantine(key, value, v.status().ToString());
    auto n = api::DecodeNode(*v);
    if (!n.ok())
      return quarantine(key, value, n.status().ToString());
    NodeRecord rec;
    rec.node = std::move(n).value();
    if (const auto* b = v->as_object().if_contains("state_before_down"); b && b->is_string()) {
      if (auto st = api::ParseEnum<api::NodeState>(b->get_string()))
        rec.state_before_down = *st;
    }
    // Nobody is connected after a restart; workers say hello again.
    rec.connected = false;
    rec.last_heartbeat = clock_.Now();
    nodes_[rec.node.name] = std::move(rec);
    return true;
  });
}

NodeRecord* NodeRegistry::Find(const std::string& name) {
  auto it = nodes_.find(name);
  return it == nodes_.end() ? nullptr : &it->second;
}

const NodeRecord* NodeRegistry::Find(const std::string& name) const {
  auto it = nodes_.find(name);
  return it == nodes_.end() ? nullptr : &it->second;
}

std::vector<api::Node> NodeRegistry::Nodes() const {
  std::vector<api::Node> out;
  for (const auto& [name, rec] : nodes_) {
    api::Node n = rec.node;
    n.free_gpus = n.gpu_count - __builtin_popcountll(rec.used_gpus);
    out.push_back(std::move(n));
  }
  return out;
}

void NodeRegistry::Persist(Change& change, const NodeRecord& rec) {
  change.batch.Put(state::Family::kNodes, rec.node.name, StoredNode(rec));
}

void NodeRegistry::SetState(Change& change, NodeRecord& rec, api::NodeState to, std::string reason,
                            std::string by) {
  api::NodeState from = rec.node.state;
  // Remember what an admin asked for across an outage: a drained node that comes back stays
  // drained.
  if (to == api::NodeState::kDown && from != api::NodeState::kDown)
    rec.state_before_down = from;
  rec.node.state = to;
  rec.node.state_reason = to == api::NodeState::kUp ? "" : reason;
  Persist(change, rec);
  json::object data{{"node", rec.node.name},
                    {"from", std::string(api::ToString(from))},
                    {"to", std::string(api::ToString(to))},
                    {"reason", std::move(reason)}};
  if (!by.empty())
    data["by"] = std::move(by);
  events_.Add(change, "node.state", std::move(data));
  change.reschedule = true;
}

void NodeRegistry::BackFromDown(Change& change, NodeRecord& rec, std::string reason) {
  api::NodeState to = rec.state_before_down;
  if (to == api::NodeState::kDown || to == api::NodeState::kUnhealthy)
    to = api::NodeState::kUp;
  if (to == api::NodeState::kDraining && rec.used_gpus == 0)
    to = api::NodeState::kDrained;
  SetState(change, rec, to, std::move(reason));
}

NodeRecord& NodeRegistry::Hello(Change& change, const api::Hello& hello) {
  Timestamp now = clock_.Now();
  NodeRecord& rec = nodes_[hello.node];
  bool is_new = rec.node.name.empty();
  rec.node.name = hello.node;
  rec.node.address = hello.address;
  rec.rendezvous_ports = hello.rendezvous_ports.value_or(api::kDefaultRendezvousPorts);
  rec.node.site = hello.site.empty() ? "default" : hello.site;
  rec.node.block = hello.block.empty() ? rec.node.site + "-default" : hello.block;
  rec.node.labels = hello.labels;
  rec.node.cpus = hello.cpus;
  rec.node.memory_mib = hello.memory_mib;
  rec.node.gpus = hello.gpus;
  rec.node.gpu_count = static_cast<int32_t>(hello.gpus.size());
  rec.node.gpu_type = hello.gpus.empty() ? "" : hello.gpus.front().type;
  rec.node.nvlink_pairs = hello.nvlink_pairs;
  rec.connected = true;
  rec.last_heartbeat = now;
  rec.node.last_heartbeat = now;
  // Unhealthy GPUs are left out of placement through their own health, not the node's state.
  if (is_new) {
    rec.node.state = api::NodeState::kDown;
    rec.state_before_down = api::NodeState::kUp;
  }
  if (rec.node.state == api::NodeState::kDown) {
    BackFromDown(change, rec, "worker connected");
  } else {
    Persist(change, rec);
  }
  return rec;
}

Result<Change> NodeRegistry::Heartbeat(const api::Heartbeat& hb) {
  NodeRecord* rec = Find(hb.node);
  if (rec == nullptr)
    return Status::FailedPrecondition("heartbeat before hello");
  Change change;
  rec->last_heartbeat = clock_.Now();
  rec->node.last_heartbeat = rec->last_heartbeat;
  if (rec->node.state == api::NodeState::kDown)
    BackFromDown(change, *rec, "heartbeat");
  return change;
}

Result<Change> NodeRegistry::GpuHealth(const api::GpuHealthReport& report) {
  NodeRecord* rec = Find(report.node);
  if (rec == nullptr)
    return Status::FailedPrecondition("gpu_health before hello");
  Change change;
  bool changed = false;
  for (const auto& g : report.gpus) {
    for (auto& gpu : rec->node.gpus) {
      if (gpu.index != g.index || gpu.health == g.health)
        continue;
      gpu.health = g.health;
      changed = true;
      events_.Add(change, "node.health",
                  {{"node", report.node},
                   {"gpu", g.index},
                   {"health", std::string(api::ToString(g.health))},
                   {"message", g.message}});
    }
  }
  // A report that changes nothing writes nothing: a worker repeating its health costs no commit.
  if (!changed)
    return change;
  Persist(change, *rec);
  change.reschedule = true;
  return change;
}

void NodeRegistry::Disconnected(const std::string& node) {
  // The node goes `down` only when its heartbeats stop for `nodes.heartbeat_timeout`: a worker
  // that reconnects at once keeps its jobs and state.
  if (NodeRecord* rec = Find(node))
    rec->connected = false;
}

std::set<std::string> NodeRegistry::CheckTimeouts(Change& change) {
  Timestamp now = clock_.Now();
  std::set<std::string> lost;
  for (auto& [name, rec] : nodes_) {
    Duration silent = now - rec.last_heartbeat;
    if (rec.node.state != api::NodeState::kDown && silent >= config_.nodes.heartbeat_timeout) {
      SetState(change, rec, api::NodeState::kDown, "no heartbeat for " + FormatDuration(silent));
    }
    if (rec.node.state == api::NodeState::kDown && silent >= config_.nodes.lost_timeout)
      lost.insert(name);
  }
  return lost;
}

Result<Change> NodeRegistry::Drain(const Principal& who, const std::string& node,
                                   const std::string& reason) {
  NodeRecord* rec = Find(node);
  if (rec == nullptr)
    return Status::NotFound("no node '" + node + "'");
  Change change;
  api::NodeState to = rec->used_gpus != 0 ? api::NodeState::kDraining : api::NodeState::kDrained;
  if (rec->node.state == api::NodeState::kDown) {
    // Applied when the node is back.
    rec->state_before_down = to;
    rec->node.state_reason = reason;
    Persist(change, *rec);
  } else {
    SetState(change, *rec, to, reason, who.user);
  }
  if (rec->connected)
    change.dispatches.push_back({node, api::Drain{reason}});
  return change;
}

Result<Change> NodeRegistry::Resume(const Principal& who, const std::string& node) {
  NodeRecord* rec = Find(node);
  if (rec == nullptr)
    return Status::NotFound("no node '" + node + "'");
  Change change;
  if (rec->node.state == api::NodeState::kDown) {
    rec->state_before_down = api::NodeState::kUp;
    return change;
  }
  if (rec->node.state != api::NodeState::kDraining && rec->node.state != api::NodeState::kDrained)
    return change;
  SetState(change, *rec, api::NodeState::kUp, "", who.user);
  return change;
}

void NodeRegistry::Hold(const api::Job& job, int32_t cpus, int64_t memory_mib) {
  for (const auto& a : job.allocation) {
    NodeRecord* rec = Find(a.node);
    if (rec == nullptr)
      continue;
    for (int g : a.gpus)
      rec->used_gpus |= uint64_t{1} << g;
    rec->used_cpus += cpus;
    rec->used_memory_mib += memory_mib;
    rec->jobs.insert(job.id);
    if (job.rendezvous)
      rec->rendezvous_in_use.insert(job.rendezvous->port);
  }
}

void NodeRegistry::Release(const api::Job& job, int32_t cpus, int64_t memory_mib) {
  for (const auto& a : job.allocation) {
    NodeRecord* rec = Find(a.node);
    if (rec == nullptr)
      continue;
    for (int g : a.gpus)
      rec->used_gpus &= ~(uint64_t{1} << g);
    rec->used_cpus -= cpus;
    rec->used_memory_mib -= memory_mib;
    rec->jobs.erase(job.id);
    if (job.rendezvous)
      rec->rendezvous_in_use.erase(job.rendezvous->port);
  }
}

void NodeRegistry::DrainedIfIdle(Change& change, const std::string& node) {
  NodeRecord* rec = Find(node);
  if (rec != nullptr && rec->node.state == api::NodeState::kDraining && rec->used_gpus == 0)
    SetState(change, *rec, api::NodeState::kDrained, rec->node.state_reason);
}

std::string NodeRegistry::WhyNotFits(const std::string& node, const std::string& gpu_type,
                                     uint64_t gpus, int32_t cpus, int64_t memory_mib) const {
  const NodeRecord* rec = Find(node);
  if (rec == nullptr)
    return "node " + node + " is gone";
  if (!rec->connected || rec->node.state != api::NodeState::kUp)
    return "node " + node + " is not up";
  if (gpus != 0 && rec->node.gpu_type != gpu_type)
    return "node " + node + " now has " + rec->node.gpu_type + " GPUs";
  uint64_t healthy = 0;
  for (const auto& g : rec->node.gpus) {
    if (g.index >= 0 && g.index < 64 && g.health == api::GpuHealth::kHealthy)
      healthy |= uint64_t{1} << g.index;
  }
  const int32_t count = rec->node.gpu_count;
  healthy &= count >= 64 ? ~uint64_t{0} : (uint64_t{1} << count) - 1;
  if ((gpus & ~healthy) != 0)
    return "GPUs of node " + node + " are gone or unhealthy";
  if ((gpus & rec->used_gpus) != 0)
    return "GPUs of node " + node + " are taken";
  // As the core's placement: what the node has, less what the attempts there asked for.
  if (rec->node.cpus - rec->used_cpus < cpus)
    return "not enough CPUs left on node " + node;
  if (rec->node.memory_mib - rec->used_memory_mib < memory_mib)
    return "not enough memory left on node " + node;
  return {};
}

std::optional<api::Rendezvous> NodeRegistry::ChooseRendezvous(const std::vector<std::string>& nodes,
                                                              uint64_t job,
                                                              uint32_t attempt) const {
  if (nodes.empty())
    return std::nullopt;
  const NodeRecord* first = Find(nodes.front());
  if (first == nullptr)
    return std::nullopt;
  const api::PortRange range = first->rendezvous_ports;
  const uint64_t size = static_cast<uint64_t>(range.last - range.first) + 1;
  // Start at a place of the range given by the attempt rather than at its first free port: a
  // port that the previous attempt left moments ago (still in TIME_WAIT on some node) is then the
  // last to be chosen again, not the first.
  const uint64_t start = (job * 7919 + attempt) % size;
  for (uint64_t i = 0; i < size; ++i) {
    const auto port = static_cast<int32_t>(range.first + (start + i) % size);
    bool free = std::none_of(nodes.begin(), nodes.end(), [&](const std::string& name) {
      const NodeRecord* rec = Find(name);
      return rec != nullptr && rec->rendezvous_in_use.contains(port);
    });
    if (free)
      return api::Rendezvous{first->node.address.empty() ? first->node.name : first->node.address,
                             port};
  }
  return std::nullopt;
}

}  // namespace gsched::server
