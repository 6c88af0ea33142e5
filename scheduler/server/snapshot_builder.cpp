#include "scheduler/server/snapshot_builder.h"

#include <unordered_map>

#include "scheduler/api/array_spec.h"
#include "scheduler/core/usage.h"
#include "scheduler/core/user_interner.h"

namespace gsched::server {
using api::JobState;

double GpuCost(const config::SchedulerConfig& config, const std::string& type) {
  const auto* t = config::FindGpuType(config.gpu_types, type);
  return t ? t->cost : 1.0;
}

double AllocationCost(const config::SchedulerConfig& config, const NodeRegistry& nodes,
                      const api::Job& job) {
  const NodeRecord* node =
      job.allocation.empty() ? nullptr : nodes.Find(job.allocation.front().node);
  return node == nullptr ? 1.0 : GpuCost(config, node->node.gpu_type);
}

core::Snapshot BuildSnapshot(const SnapshotSources& in, Timestamp now) {
  core::Snapshot s;
  std::unordered_map<std::string, uint32_t> type_index;
  for (const auto& t : in.config.gpu_types) {
    type_index[t.name] = static_cast<uint32_t>(s.gpu_types.size());
    s.gpu_types.push_back({t.name, t.cost});
  }
  std::unordered_map<std::string, uint32_t> site_index, block_index, node_index;
  for (const auto& [name, rec] : in.nodes.all()) {
    const api::Node& n = rec.node;
    auto type = type_index.find(n.gpu_type);
    if (n.gpu_count > 0 && type == type_index.end())
      continue;  // A GPU type we do not schedule.
    auto [sit, snew] = site_index.try_emplace(n.site, static_cast<uint32_t>(s.sites.size()));
    if (snew)
      s.sites.push_back(n.site);
    // Block names are unique within a site only: b00 of two sites are two blocks.
    auto [bit, bnew] =
        block_index.try_emplace(n.site + '\0' + n.block, static_cast<uint32_t>(s.blocks.size()));
    if (bnew)
      s.blocks.push_back({n.block, sit->second});
    core::NodeInfo info;
    info.name = name;
    info.site = sit->second;
    info.block = bit->second;
    info.gpu_type = type == type_index.end() ? 0 : type->second;
    info.gpu_count = static_cast<uint32_t>(n.gpu_count);
    for (const auto& g : n.gpus) {
      if (g.health != api::GpuHealth::kHealthy && g.index >= 0 && g.index < 64) {
        info.unhealthy_gpus |= uint64_t{1} << g.index;
      }
    }
    info.cpus = n.cpus;
    info.memory_mib = n.memory_mib;
    info.state = rec.connected ? n.state : api::NodeState::kDown;
    if (!n.nvlink_pairs.empty()) {
      info.nvlink.assign(info.gpu_count, 0);
      for (auto [a, b] : n.nvlink_pairs) {
        if (a >= 0 && b >= 0 && a < n.gpu_count && b < n.gpu_count) {
          info.nvlink[a] |= uint64_t{1} << b;
          info.nvlink[b] |= uint64_t{1} << a;
        }
      }
    }
    node_index[name] = static_cast<uint32_t>(s.nodes.size());
    s.nodes.push_back(std::move(info));
  }
  // Accounts: parents before children is not required, only indices.
  std::unordered_map<std::string, uint32_t> account_index;
  for (const auto& [name, a] : in.accounts) {
    account_index[name] = static_cast<uint32_t>(s.accounts.size());
    s.accounts.emplace_back();
  }
  std::unordered_map<std::string, double> running_usage;
  for (uint64_t id : in.jobs.running()) {
    const JobRecord& rec = *in.jobs.Find(id);
    if (!rec.job.start_time)
      continue;
    running_usage[rec.job.spec.account] += core::AttemptUsage(
        AllocatedGpus(rec.job), in.AllocationCost(rec.job), *rec.job.start_time, now);
  }
  // What running attempts have used of every budget on their chain so far (normalised
  // GPU-hours within each period): budgets are consumed as jobs run, not when they end.
  std::unordered_map<std::string, double> running_budget;
  for (uint64_t id : in.jobs.running()) {
    const JobRecord& rec = *in.jobs.Find(id);
    if (!rec.job.start_time || rec.job.allocation.empty())
      continue;
    const double normalised = AllocatedGpus(rec.job) * in.AllocationCost(rec.job);
    std::string name = rec.job.spec.account;
    for (size_t steps = 0; !name.empty() && steps <= in.accounts.size(); ++steps) {
      auto acc = in.accounts.find(name);
      if (acc == in.accounts.end())
        break;
      if (const auto& b = acc->second.budget)
        running_budget[name] +=
            core::BudgetCharge(normalised, *rec.job.start_time, now, b->start, b->end);
      name = acc->second.parent;
    }
  }
  std::unordered_map<std::string, int32_t> preemptions;
  for (const auto& [t, account] : in.recent_preemptions) {
    if (now - t < Seconds(3600))
      ++preemptions[account];
  }
  for (const auto& [name, a] : in.accounts) {
    core::AccountInfo& info = s.accounts[account_index[name]];
    info.name = name;
    info.parent = a.parent.empty() ? core::kNoParent : account_index.at(a.parent);
    info.shares = static_cast<double>(a.shares);
    if (!a.quotas.empty()) {
      info.quota.assign(s.gpu_types.size(), core::TypeQuota{0, core::kUnlimited});
      for (const auto& [type, q] : a.quotas) {
        auto t = type_index.find(type);
        if (t == type_index.end())
          continue;
        info.quota[t->second] = {static_cast<int32_t>(q.guaranteed), static_cast<int32_t>(q.limit)};
      }
    }
    if (a.budget) {
      auto running = running_budget.find(name);
      info.budget = core::Budget{
          a.budget->gpu_hours, a.budget->start, a.budget->end,
          in.usage.BudgetUsed(name) + (running == running_budget.end() ? 0.0 : running->second)};
    }
    info.on_budget_exhausted = a.on_budget_exhausted;
    if (a.max_running_gpus_per_user)
      info.max_running_gpus_per_user = static_cast<int32_t>(*a.max_running_gpus_per_user);
    double value = in.usage.DecayedSeconds(name, now);
    if (auto r = running_usage.find(name); r != running_usage.end())
      value += r->second;
    info.usage = {value, now};
    if (auto p = preemptions.find(name); p != preemptions.end())
      info.preemptions_last_hour = p->second;
  }
  core::UserInterner user_ids(s.users);
  auto dependency_state = [&](uint64_t id) {
    if (const JobRecord* rec = in.jobs.Find(id))
      return rec->job.state;
    if (auto state = in.jobs.FinishedState(id))
      return *state;
    return JobState::kCompleted;  // Pruned history: long finished.
  };
  s.pending.reserve(in.jobs.pending().size());
  for (uint64_t id : in.jobs.pending()) {
    const JobRecord& rec = *in.jobs.Find(id);
    const api::JobSpec& spec = rec.job.spec;
    core::PendingJobInfo p;
    p.id = JobId(id);
    p.account = account_index.at(spec.account);
    p.user = user_ids.Intern(rec.job.user);
    p.nodes = spec.nodes;
    p.gpus_per_node = spec.gpus_per_node;
    if (!spec.gpu_type.empty()) {
      p.gpu_types = 0;
      for (const auto& t : spec.gpu_type) {
        if (auto it = type_index.find(t); it != type_index.end())
          p.gpu_types |= uint64_t{1} << it->second;
      }
    }
    p.cpus_per_node = spec.cpus_per_node;
    p.memory_mib_per_node = spec.memory_mib_per_node;
    p.time_limit = spec.time_limit_s ? Seconds(*spec.time_limit_s) : Duration(0);
    p.priority_class = spec.priority_class;
    p.topology = spec.topology;
    p.submit_time = rec.job.submit_time;
    p.held = rec.job.held;
    for (const auto& d : spec.depends_on) {
      p.dependencies.push_back({d.type, JobId(d.job), dependency_state(d.job)});
    }
    if (rec.job.array_job_id) {
      p.array_parent = JobId(*rec.job.array_job_id);
      if (spec.array) {
        auto a = api::ParseArraySpec(*spec.array);
        if (a.ok() && a->max_concurrent)
          p.array_max_concurrent = static_cast<int32_t>(*a->max_concurrent);
      }
      p.array_running = in.jobs.ArrayRunning(*rec.job.array_job_id);
    }
    p.attempt = Attempt(rec.job.attempt);
    p.grace_period = Seconds(spec.grace_period_s);
    s.pending.push_back(std::move(p));
  }
  for (uint64_t id : in.jobs.running()) {
    const JobRecord& rec = *in.jobs.Find(id);
    core::RunningJobInfo r;
    r.id = JobId(id);
    r.attempt = Attempt(rec.job.attempt);
    r.account = account_index.at(rec.job.spec.account);
    r.user = user_ids.Intern(rec.job.user);
    bool known = true;
    for (const auto& a : rec.job.allocation) {
      auto n = node_index.find(a.node);
      if (n == node_index.end()) {
        known = false;
        break;
      }
      core::NodeAllocation na;
      na.node = n->second;
      for (int g : a.gpus)
        na.gpus |= uint64_t{1} << g;
      na.cpus = rec.job.spec.cpus_per_node;
      na.memory_mib = rec.job.spec.memory_mib_per_node;
      r.allocation.push_back(na);
    }
    if (!known)
      continue;
    r.start_time = rec.job.start_time.value_or(now);
    r.time_limit = rec.time_limit;
    r.last_checkpoint = rec.last_checkpoint;
    r.priority_class = rec.job.spec.priority_class;
    r.borrowing = rec.job.borrowing;
    r.preemptible =
        rec.runs_as_preemptible || rec.job.spec.priority_class == api::PriorityClass::kPreemptible;
    r.grace_period = Seconds(rec.job.spec.grace_period_s);
    r.terminating_deadline = rec.terminating_deadline;
    s.running.push_back(std::move(r));
  }
  s.user_run_time_ratio.reserve(s.users.size());
  s.user_limit_run_time_ratio.reserve(s.users.size());
  for (const std::string& u : s.users) {
    s.user_run_time_ratio.push_back(in.run_times.Ratio(u));
    s.user_limit_run_time_ratio.push_back(in.run_times.LimitRatios(u));
  }
  return s;
}
}  // namespace gsched::server
