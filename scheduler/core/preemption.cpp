#include "scheduler/core/preemption.h"

#include <algorithm>
#include <numeric>

namespace gsched::core {

PreemptionPlanner::PreemptionPlanner(const Snapshot& snapshot, const PolicyConfig& config,
                                     Timestamp now, std::vector<double> running_priority)
    : snapshot_(snapshot), config_(config), now_(now), priority_(std::move(running_priority)) {
  const size_t n = snapshot.nodes.size();
  node_start_.assign(n + 1, 0);
  for (const RunningJobInfo& j : snapshot.running) {
    for (const NodeAllocation& a : j.allocation)
      ++node_start_[a.node + 1];
  }
  std::partial_sum(node_start_.begin(), node_start_.end(), node_start_.begin());
  node_jobs_.resize(node_start_[n]);
  std::vector<uint32_t> fill(node_start_.begin(), node_start_.end() - 1);
  for (uint32_t r = 0; r < snapshot.running.size(); ++r) {
    for (const NodeAllocation& a : snapshot.running[r].allocation)
      node_jobs_[fill[a.node]++] = r;
  }
  taken_.assign(snapshot.running.size(), 0);
  taken_per_account_.assign(snapshot.accounts.size(), 0);
}

int64_t PreemptionPlanner::WorkLostMs(uint32_t r) const {
  const RunningJobInfo& j = snapshot_.running[r];
  Timestamp since = j.start_time;
  if (j.last_checkpoint && *j.last_checkpoint > since)
    since = *j.last_checkpoint;
  return std::max<int64_t>(0, (now_ - since).count());
}

int64_t PreemptionPlanner::LostGpuMs(uint32_t r) const {
  int64_t gpus = 0;
  for (const NodeAllocation& a : snapshot_.running[r].allocation)
    gpus += Popcount(a.gpus);
  return WorkLostMs(r) * gpus;
}

bool PreemptionPlanner::Eligible(uint32_t r, uint32_t preemptor_account) const {
  const RunningJobInfo& j = snapshot_.running[r];
  if (taken_[r] || j.terminating_deadline || j.account == preemptor_account)
    return false;
  if (!j.borrowing && !j.preemptible && j.priority_class != api::PriorityClass::kPreemptible)
    return false;
  if (now_ - j.start_time < config_.preemption.min_runtime)
    return false;
  const AccountInfo& acc = snapshot_.accounts[j.account];
  return acc.preemptions_last_hour + taken_per_account_[j.account] <
         config_.preemption.max_per_account_per_hour;
}

PreemptionPlanner::NodeCost PreemptionPlanner::CostOn(const NodePool& pool, uint32_t node,
                                                      const Shape& shape,
                                                      uint32_t preemptor_account) const {
  NodeCost cost;
  cost.ready = now_;
  cost.jobs_begin = static_cast<uint32_t>(victims_.size());
  int32_t gpus = pool.UsableGpus(node);
  int32_t cpus = pool.FreeCpus(node);
  int64_t mem = pool.FreeMemory(node);
  std::vector<uint32_t>& options = options_;
  options.clear();
  // Per option (parallel to `options`): the GPUs it frees here and the work it loses in all.
  std::vector<std::pair<int64_t, int64_t>>& option_cost = option_cost_;
  option_cost.clear();
  for (uint32_t k = node_start_[node]; k < node_start_[node + 1]; ++k) {
    const uint32_t r = node_jobs_[k];
    const RunningJobInfo& j = snapshot_.running[r];
    const NodeAllocation* a = nullptr;
    for (const NodeAllocation& x : j.allocation) {
      if (x.node == node)
        a = &x;
    }
    if (j.terminating_deadline) {
      gpus += Popcount(a->gpus & pool.HealthyMask(node));
      cpus += a->cpus;
      mem += a->memory_mib;
      cost.ready = std::max(cost.ready, *j.terminating_deadline);
    } else if (Eligible(r, preemptor_account)) {
      options.push_back(r);
    }
  }
  for (uint32_t r : options) {
    int64_t here = 0;
    for (const NodeAllocation& x : snapshot_.running[r].allocation)
      here += x.node == node ? Popcount(x.gpus) : 0;
    option_cost.emplace_back(std::max<int64_t>(1, here), LostGpuMs(r));
  }
  std::vector<uint32_t>& order = option_order_;
  order.resize(options.size());
  std::iota(order.begin(), order.end(), 0U);
  auto fits = [&] {
    return gpus >= shape.gpus_per_node && cpus >= shape.cpus_per_node &&
           mem >= shape.memory_mib_per_node;
  };
  // Least lost work per GPU freed here: lost_x / here_x < lost_y / here_y, in integers (lost work
  // stays below 2^50 GPU-ms, GPUs on a node below 2^10).
  std::sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) {
    const auto [here_x, lost_x] = option_cost[x];
    const auto [here_y, lost_y] = option_cost[y];
    if (lost_x * here_y != lost_y * here_x)
      return lost_x * here_y < lost_y * here_x;
    const uint32_t rx = options[x], ry = options[y];
    if (priority_[rx] != priority_[ry])
      return priority_[rx] < priority_[ry];
    return snapshot_.running[rx].id < snapshot_.running[ry].id;
  });
  for (uint32_t k : order) {
    if (fits())
      break;
    const uint32_t r = options[k];
    const RunningJobInfo& j = snapshot_.running[r];
    for (const NodeAllocation& x : j.allocation) {
      if (x.node == node) {
        gpus += Popcount(x.gpus & pool.HealthyMask(node));
        cpus += x.cpus;
        mem += x.memory_mib;
      }
    }
    victims_.push_back(r);
    ++cost.victims;
    cost.lost_gpu_ms += option_cost[k].second;
    cost.ready = std::max(cost.ready, now_ + j.grace_period);
  }
  cost.feasible = fits();
  if (!cost.feasible)
    victims_.resize(cost.jobs_begin);
  return cost;
}

std::optional<VictimChoice> PreemptionPlanner::Choose(const NodePool& pool, const Shape& shape,
                                                      uint32_t type,
                                                      uint32_t preemptor_account) const {
  struct Scored {
    uint32_t node;
    NodeCost cost;
  };
  std::vector<Scored> scored;
  victims_.clear();
  for (uint32_t n = 0; n < pool.node_count(); ++n) {
    if (!pool.Matches(n, type, shape))
      continue;
    NodeCost c = CostOn(pool, n, shape, preemptor_account);
    if (c.feasible)
      scored.push_back({n, std::move(c)});
  }
  const size_t want = static_cast<size_t>(shape.nodes);
  if (scored.size() < want)
    return std::nullopt;
  auto cheaper = [](const Scored& x, const Scored& y) {
    if (x.cost.lost_gpu_ms != y.cost.lost_gpu_ms)
      return x.cost.lost_gpu_ms < y.cost.lost_gpu_ms;
    if (x.cost.victims != y.cost.victims)
      return x.cost.victims < y.cost.victims;
    return x.node < y.node;
  };
  // Choose the cheapest `want` nodes inside one domain when the topology asks for it.
  std::vector<const Scored*> chosen;
  if (shape.topology == api::Topology::kAny || want == 1) {
    std::partial_sort(scored.begin(), scored.begin() + static_cast<ptrdiff_t>(want), scored.end(),
                      cheaper);
    for (size_t i = 0; i < want; ++i)
      chosen.push_back(&scored[i]);
  } else {
    std::sort(scored.begin(), scored.end(), cheaper);
    const bool by_block = shape.topology == api::Topology::kBlock;
    const size_t domains = by_block ? pool.block_count() : pool.site_count();
    std::vector<std::vector<const Scored*>> per(domains);
    for (const Scored& s : scored) {
      auto& d = per[by_block ? pool.Block(s.node) : pool.Site(s.node)];
      if (d.size() < want)
        d.push_back(&s);
    }
    int64_t best_lost = -1;
    for (auto& d : per) {
      if (d.size() < want)
        continue;
      int64_t lost = 0;
      for (const Scored* s : d)
        lost += s->cost.lost_gpu_ms;
      if (best_lost < 0 || lost < best_lost) {
        best_lost = lost;
        chosen = d;
      }
    }
    if (chosen.empty())
      return std::nullopt;
  }
  VictimChoice out;
  out.ready_at = now_;
  for (const Scored* s : chosen) {
    out.nodes.push_back(s->node);
    out.ready_at = std::max(out.ready_at, s->cost.ready);
    for (uint32_t k = 0; k < static_cast<uint32_t>(s->cost.victims); ++k) {
      const uint32_t r = victims_[s->cost.jobs_begin + k];
      if (std::find(out.victims.begin(), out.victims.end(), r) == out.victims.end()) {
        out.victims.push_back(r);
        out.lost_gpu_ms += LostGpuMs(r);
      }
    }
  }
  if (victims_this_cycle_ + static_cast<int32_t>(out.victims.size()) >
      config_.preemption.max_per_cycle)
    return std::nullopt;
  // The per-account cap is checked per victim; several victims of one account in one choice may
  // still exceed it, so re-check the totals.
  std::vector<int32_t> extra(snapshot_.accounts.size(), 0);
  for (uint32_t r : out.victims) {
    const uint32_t a = snapshot_.running[r].account;
    if (snapshot_.accounts[a].preemptions_last_hour + taken_per_account_[a] + ++extra[a] >
        config_.preemption.max_per_account_per_hour)
      return std::nullopt;
  }
  return out;
}

void PreemptionPlanner::Commit(const VictimChoice& choice) {
  for (uint32_t r : choice.victims) {
    taken_[r] = 1;
    ++taken_per_account_[snapshot_.running[r].account];
    ++victims_this_cycle_;
  }
}

}  // namespace gsched::core
