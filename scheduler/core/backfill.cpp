#include "scheduler/core/backfill.h"

#include <algorithm>
#include <limits>

namespace gsched::core {

namespace {

// std::*_heap keep the greatest on top; this order puts the earliest event there.
bool LaterThan(const FreeEvent& x, const FreeEvent& y) {
  return x.at_ms != y.at_ms ? x.at_ms > y.at_ms : x.node > y.node;
}

}  // namespace

Timeline::Timeline(const Snapshot& snapshot, Timestamp now)
    : snapshot_(&snapshot), now_ms_(ToUnixMillis(now)) {}

void Timeline::Build() const {
  built_ = true;
  for (const RunningJobInfo& job : snapshot_->running) {
    int64_t at = ToUnixMillis(job.start_time + job.time_limit);
    if (job.terminating_deadline)
      at = std::min(at, ToUnixMillis(*job.terminating_deadline));
    at = std::max(at, now_ms_);
    for (const NodeAllocation& a : job.allocation) {
      const NodeInfo& node = snapshot_->nodes[a.node];
      const int32_t gpus = Popcount(a.gpus & ~node.unhealthy_gpus);
      heap_.push_back({at, a.node, gpus, a.cpus, a.memory_mib});
    }
  }
  std::make_heap(heap_.begin(), heap_.end(), LaterThan);
}

const FreeEvent* Timeline::Event(size_t i) const {
  if (!built_)
    Build();
  while (i >= sorted_.size() && !heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), LaterThan);
    sorted_.push_back(heap_.back());
    heap_.pop_back();
  }
  return i < sorted_.size() ? &sorted_[i] : nullptr;
}

size_t Timeline::size() const {
  if (!built_)
    Build();
  return sorted_.size() + heap_.size() + added_count_;
}

void Timeline::AddStart(const std::vector<NodeAllocation>& allocation, Timestamp end,
                        const NodePool& pool) {
  std::vector<FreeEvent>& slot = added_[ToUnixMillis(end)];
  for (const NodeAllocation& a : allocation) {
    slot.push_back({ToUnixMillis(end), a.node, Popcount(a.gpus & pool.HealthyMask(a.node)), a.cpus,
                    a.memory_mib});
    ++added_count_;
  }
}

std::optional<Reservation> Timeline::Earliest(const NodePool& pool, const Shape& shape,
                                              uint32_t type, JobId job, Timestamp until) const {
  const size_t n = pool.node_count();
  const int g = shape.gpus_per_node;
  const int32_t want = shape.nodes;
  const int64_t until_ms =
      until == Timestamp::max() ? std::numeric_limits<int64_t>::max() : ToUnixMillis(until);
  if (until_ms < now_ms_)
    return std::nullopt;
  // Every entry is written below before it is read, or is zero as assigned here.
  auto& gpus = gpus_;
  auto& cpus = cpus_;
  auto& mem = mem_;
  auto& relevant = relevant_;
  auto& cand = cand_;
  auto& per_block = per_block_;
  auto& per_site = per_site_;
  gpus.resize(n);
  cpus.resize(n);
  mem.resize(n);
  relevant.assign(n, 0);
  cand.assign(n, 0);
  per_block.assign(pool.block_count(), 0);
  per_site.assign(pool.site_count(), 0);
  int32_t global = 0;
  auto is_cand = [&](uint32_t i) {
    return gpus[i] >= g && cpus[i] >= shape.cpus_per_node && mem[i] >= shape.memory_mib_per_node;
  };
  // Which domain, if any, now holds the shape: returns the nodes chosen there.
  auto fits = [&]() -> std::optional<std::vector<uint32_t>> {
    auto pick = [&](auto in_domain) {
      std::vector<uint32_t> nodes;
      for (uint32_t i = 0; i < n; ++i) {
        if (cand[i] && in_domain(i))
          nodes.push_back(i);
      }
      std::stable_sort(nodes.begin(), nodes.end(),
                       [&](uint32_t x, uint32_t y) { return gpus[x] < gpus[y]; });
      nodes.resize(static_cast<size_t>(want));
      return nodes;
    };
    if (global < want)
      return std::nullopt;
    int32_t best_block = -1;
    for (uint32_t b = 0; b < per_block.size(); ++b) {
      if (per_block[b] >= want && (best_block < 0 || per_block[b] < per_block[best_block]))
        best_block = static_cast<int32_t>(b);
    }
    if (best_block >= 0)
      return pick([&](uint32_t i) { return pool.Block(i) == static_cast<uint32_t>(best_block); });
    if (shape.topology == api::Topology::kBlock)
      return std::nullopt;
    int32_t best_site = -1;
    for (uint32_t s = 0; s < per_site.size(); ++s) {
      if (per_site[s] >= want && (best_site < 0 || per_site[s] < per_site[best_site]))
        best_site = static_cast<int32_t>(s);
    }
    if (best_site >= 0)
      return pick([&](uint32_t i) { return pool.Site(i) == static_cast<uint32_t>(best_site); });
    if (shape.topology == api::Topology::kSite)
      return std::nullopt;
    return pick([](uint32_t) { return true; });
  };
  for (uint32_t i = 0; i < n; ++i) {
    if (!pool.Matches(i, type, shape))
      continue;  // Never read: `relevant` filters the replay.
    relevant[i] = 1;
    gpus[i] = pool.UsableGpus(i);
    cpus[i] = pool.FreeCpus(i);
    mem[i] = pool.FreeMemory(i);
    if (is_cand(i)) {
      cand[i] = 1;
      ++per_block[pool.Block(i)];
      ++per_site[pool.Site(i)];
      ++global;
    }
  }
  auto make = [&](int64_t at, const std::vector<uint32_t>& nodes) {
    Reservation r{job, type, FromUnixMillis(std::max(at, now_ms_)), {}};
    for (uint32_t i : nodes)
      r.nodes.push_back({i, g});
    return r;
  };
  if (auto now_fit = fits())
    return make(now_ms_, *now_fit);
  // Replay both event streams in time order.
  auto apply = [&](const FreeEvent& e) -> std::optional<Reservation> {
    if (!relevant[e.node])
      return std::nullopt;
    gpus[e.node] += e.gpus;
    cpus[e.node] += e.cpus;
    mem[e.node] += e.memory_mib;
    if (!cand[e.node] && is_cand(e.node)) {
      cand[e.node] = 1;
      ++per_block[pool.Block(e.node)];
      ++per_site[pool.Site(e.node)];
      ++global;
      if (auto f = fits())
        return make(e.at_ms, *f);
    }
    return std::nullopt;
  };
  size_t i = 0;
  auto added = added_.begin();
  for (const FreeEvent* e = Event(0); e || added != added_.end(); e = Event(i)) {
    const bool running_next = added == added_.end() || (e && e->at_ms <= added->first);
    if ((running_next ? e->at_ms : added->first) > until_ms)
      break;  // Everything left is later than `until`.
    if (running_next) {
      ++i;
      if (auto r = apply(*e))
        return r;
    } else {
      for (const FreeEvent& e : added->second) {
        if (auto r = apply(e))
          return r;
      }
      ++added;
    }
  }
  return std::nullopt;
}

}  // namespace gsched::core
