// Seeded property tests: thousands of random clusters and queues, one pass each, checked against
// the invariants of a plan. A failure prints its seed; rerun one case with
// `GSCHED_SEED=<seed> unit_core --gtest_filter='SchedulePropertyTest.*'`.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>
#include <set>

#include "scheduler/core/schedule.h"
#include "tests/testutil/builders.h"

namespace gsched::core {
namespace {

using testutil::kT0;

struct Case {
  Snapshot snapshot;
  PolicyConfig config;
};

Case RandomCase(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Case c;
  Snapshot& s = c.snapshot;
  const int types = pick(1, 3);
  for (int t = 0; t < types; ++t)
    s.gpu_types.push_back({"t" + std::to_string(t), 0.5 * (t + 1)});
  const int sites = pick(1, 2);
  for (int i = 0; i < sites; ++i)
    s.sites.push_back("s" + std::to_string(i));
  const int blocks = pick(1, 5);
  for (int b = 0; b < blocks; ++b)
    s.blocks.push_back({"b" + std::to_string(b), static_cast<uint32_t>(b % sites)});
  const int nodes = pick(1, 24);
  for (int i = 0; i < nodes; ++i) {
    NodeInfo n;
    n.name = "n" + std::to_string(i);
    n.block = static_cast<uint32_t>(pick(0, blocks - 1));
    n.site = s.blocks[n.block].site;
    n.gpu_type = static_cast<uint32_t>(pick(0, types - 1));
    n.gpu_count = static_cast<uint32_t>(pick(0, 3) == 0 ? 4 : 8);
    n.cpus = pick(16, 64);
    n.memory_mib = pick(64, 512) * 1024;
    if (pick(0, 9) == 0)
      n.unhealthy_gpus = GpuMask{1} << pick(0, static_cast<int>(n.gpu_count) - 1);
    const int st = pick(0, 19);
    n.state = st == 0 ? api::NodeState::kDown
                      : (st == 1 ? api::NodeState::kDraining : api::NodeState::kUp);
    if (pick(0, 3) == 0) {
      n.nvlink.assign(n.gpu_count, 0);
      for (uint32_t g = 0; g + 1 < n.gpu_count; g += 2) {
        n.nvlink[g] |= GpuMask{1} << (g + 1);
        n.nvlink[g + 1] |= GpuMask{1} << g;
      }
    }
    s.nodes.push_back(std::move(n));
  }
  s.accounts.push_back({.name = "root"});
  const int accounts = pick(1, 5);
  for (int a = 0; a < accounts; ++a) {
    AccountInfo acc;
    acc.name = "a" + std::to_string(a);
    acc.parent = a > 0 && pick(0, 2) == 0 ? 1 : 0;
    acc.shares = pick(1, 4);
    acc.usage = {static_cast<double>(pick(0, 100000)), kT0};
    if (pick(0, 1)) {
      acc.quota.resize(types);
      for (auto& q : acc.quota) {
        q.guaranteed = pick(0, 16);
        q.limit = pick(0, 2) == 0 ? kUnlimited : q.guaranteed + pick(0, 32);
      }
    }
    if (pick(0, 6) == 0)
      acc.max_running_gpus_per_user = pick(1, 16);
    if (pick(0, 9) == 0)
      acc.budget = Budget{10, kT0 - Seconds(3600), kT0 + Seconds(3600), pick(0, 1) ? 20.0 : 1.0};
    acc.on_budget_exhausted =
        pick(0, 1) ? api::BudgetExhaustedPolicy::kHold : api::BudgetExhaustedPolicy::kPreemptible;
    s.accounts.push_back(std::move(acc));
  }
  for (int u = 0; u < 4; ++u)
    s.users.push_back("u" + std::to_string(u));
  // Running jobs: random partial allocations of free GPUs.
  uint64_t id = 1;
  std::vector<GpuMask> used(s.nodes.size(), 0);
  std::vector<int32_t> used_cpus(s.nodes.size(), 0);
  const int running = pick(0, nodes * 2);
  for (int r = 0; r < running; ++r) {
    const uint32_t n = static_cast<uint32_t>(pick(0, nodes - 1));
    const NodeInfo& node = s.nodes[n];
    const int want = pick(1, static_cast<int>(node.gpu_count));
    GpuMask m = 0;
    for (uint32_t g = 0; g < node.gpu_count && Popcount(m) < want; ++g) {
      if (!(used[n] >> g & 1))
        m |= GpuMask{1} << g;
    }
    if (m == 0 || used_cpus[n] + 4 > node.cpus)
      continue;
    used[n] |= m;
    used_cpus[n] += 4;
    RunningJobInfo j;
    j.id = JobId(id++);
    j.attempt = Attempt(1);
    j.account = static_cast<uint32_t>(pick(1, accounts));
    j.user = static_cast<uint32_t>(pick(0, 3));
    j.allocation.push_back({n, m, 4, 1024});
    j.start_time = kT0 - Seconds(pick(0, 7200));
    j.time_limit = Seconds(pick(1, 8) * 1800);
    if (pick(0, 5) == 0)
      j.last_checkpoint = j.start_time + Seconds(pick(0, 600));
    j.borrowing = pick(0, 1);
    j.preemptible = pick(0, 4) == 0;
    j.grace_period = Seconds(pick(0, 120));
    if (pick(0, 15) == 0)
      j.terminating_deadline = kT0 + Seconds(pick(0, 60));
    s.running.push_back(std::move(j));
  }
  const int pending = pick(0, 40);
  for (int p = 0; p < pending; ++p) {
    PendingJobInfo j;
    j.id = JobId(id++);
    j.account = static_cast<uint32_t>(pick(1, accounts));
    j.user = static_cast<uint32_t>(pick(0, 3));
    j.nodes = pick(0, 4) == 0 ? pick(2, 4) : 1;
    j.gpus_per_node = pick(0, 8);
    j.gpu_types = static_cast<TypeMask>(pick(1, (1 << types) - 1));
    j.cpus_per_node = pick(0, 8);
    j.memory_mib_per_node = pick(0, 64) * 1024;
    j.time_limit = Seconds(pick(0, 8) * 1800);
    j.priority_class = static_cast<api::PriorityClass>(pick(0, 2));
    j.topology = static_cast<api::Topology>(pick(0, 2));
    j.submit_time = kT0 - Seconds(pick(0, 86400));
    j.held = pick(0, 19) == 0;
    if (pick(0, 9) == 0)
      j.dependencies.push_back({static_cast<api::DependencyType>(pick(0, 2)), JobId(999),
                                static_cast<api::JobState>(pick(0, 8))});
    if (pick(0, 9) == 0) {
      j.array_parent = JobId(5000 + pick(0, 2));
      j.array_max_concurrent = pick(1, 3);
      j.array_running = pick(0, 2);
    }
    s.pending.push_back(std::move(j));
  }
  c.config.backfill.depth = pick(0, 8);
  c.config.preemption.min_runtime = Seconds(pick(0, 3600));
  c.config.preemption.max_per_cycle = pick(0, 4);
  c.config.max_starts_per_cycle = pick(0, 3) == 0 ? pick(1, 5) : 0;
  return c;
}

// Returns an empty string when the plan is sound, else what is wrong.
std::string CheckPlan(const Snapshot& s, const PolicyConfig& config, const Plan& plan,
                      Timestamp now) {
  const size_t n = s.nodes.size();
  std::vector<GpuMask> taken(n, 0);
  std::vector<int64_t> cpus(n, 0), mem(n, 0);
  auto all_gpus = [&](uint32_t node) {
    return s.nodes[node].gpu_count >= 64 ? ~GpuMask{0}
                                         : (GpuMask{1} << s.nodes[node].gpu_count) - 1;
  };
  for (const RunningJobInfo& r : s.running) {
    for (const NodeAllocation& a : r.allocation) {
      taken[a.node] |= a.gpus;
      cpus[a.node] += a.cpus;
      mem[a.node] += a.memory_mib;
    }
  }
  std::map<uint64_t, const PendingJobInfo*> pending;
  for (const PendingJobInfo& j : s.pending)
    pending[j.id.value()] = &j;
  std::set<uint64_t> seen;
  // Account usage per (account, type) after the plan, for the limit check.
  const size_t types = s.gpu_types.size();
  std::vector<int64_t> before(s.accounts.size() * types, 0), after;
  auto charge = [&](std::vector<int64_t>& v, uint32_t account, uint32_t type, int64_t g) {
    for (uint32_t a : AccountChain(s, account))
      v[a * types + type] += g;
  };
  for (const RunningJobInfo& r : s.running) {
    if (!r.allocation.empty())
      charge(before, r.account, s.nodes[r.allocation[0].node].gpu_type, [&] {
        int64_t g = 0;
        for (const auto& a : r.allocation)
          g += Popcount(a.gpus);
        return g;
      }());
  }
  after = before;
  for (const JobStart& st : plan.starts) {
    const PendingJobInfo* job = pending.count(st.job.value()) ? pending[st.job.value()] : nullptr;
    if (job == nullptr)
      return "start of unknown job " + std::to_string(st.job.value());
    if (!seen.insert(st.job.value()).second)
      return "job started twice";
    if (st.attempt.value() != job->attempt.value() + 1)
      return "bad attempt";
    if (static_cast<int32_t>(st.nodes.size()) != job->nodes)
      return "wrong node count for job " + std::to_string(st.job.value());
    if (!(job->gpu_types >> st.gpu_type & 1))
      return "unacceptable GPU type";
    std::set<uint32_t> gang_nodes, gang_blocks, gang_sites;
    for (const NodeAllocation& a : st.nodes) {
      const NodeInfo& node = s.nodes[a.node];
      if (!gang_nodes.insert(a.node).second)
        return "node used twice by one gang";
      gang_blocks.insert(node.block);
      gang_sites.insert(node.site);
      if (node.state != api::NodeState::kUp)
        return "start on a node that is not up";
      if (node.gpu_type != st.gpu_type)
        return "node of another type";
      if (Popcount(a.gpus) != job->gpus_per_node)
        return "wrong GPU count";
      if (a.gpus & taken[a.node])
        return "GPU given twice on node " + node.name;
      if (a.gpus & (node.unhealthy_gpus | ~all_gpus(a.node)))
        return "unhealthy or missing GPU given";
      taken[a.node] |= a.gpus;
      cpus[a.node] += a.cpus;
      mem[a.node] += a.memory_mib;
      if (cpus[a.node] > node.cpus || mem[a.node] > node.memory_mib)
        return "node over-committed: " + node.name;
    }
    if (job->topology == api::Topology::kBlock && gang_blocks.size() > 1)
      return "gang spans blocks";
    if (job->topology == api::Topology::kSite && gang_sites.size() > 1)
      return "gang spans sites";
    charge(after, job->account, st.gpu_type, RequestedGpus(*job));
    if (job->held)
      return "held job started";
  }
  for (size_t a = 0; a < s.accounts.size(); ++a) {
    if (s.accounts[a].quota.empty())
      continue;
    for (size_t t = 0; t < types; ++t) {
      const int64_t limit = s.accounts[a].quota[t].limit;
      if (after[a * types + t] > before[a * types + t] && after[a * types + t] > limit)
        return "account " + s.accounts[a].name + " above its limit";
    }
  }
  for (const PendingReason& r : plan.pending) {
    if (!seen.insert(r.job.value()).second)
      return "job both started and pending, or two reasons";
    if (r.explanation >= plan.explanations.size())
      return "dangling explanation";
  }
  if (seen.size() != s.pending.size())
    return "a pending job got neither a start nor a reason";
  if (config.max_starts_per_cycle > 0 &&
      plan.starts.size() > static_cast<size_t>(config.max_starts_per_cycle))
    return "too many starts";
  if (plan.preemptions.size() > static_cast<size_t>(std::max(0, config.preemption.max_per_cycle)))
    return "too many preemptions";
  // Reservations are never delayed: at each reservation's start, the healthy GPUs of each of its
  // nodes cover what is still running then plus every reservation already begun there.
  std::map<uint64_t, Timestamp> victim_end;
  for (const PlannedPreemption& p : plan.preemptions)
    victim_end[p.victim.value()] = now + p.grace;
  for (const Reservation& res : plan.reservations) {
    const Timestamp t = res.start;
    for (const ReservedNode& rn : res.nodes) {
      const uint32_t node = rn.node;
      const GpuMask healthy = all_gpus(node) & ~s.nodes[node].unhealthy_gpus;
      int64_t busy = 0;
      for (const RunningJobInfo& r : s.running) {
        Timestamp end = std::max(now, r.start_time + r.time_limit);
        if (r.terminating_deadline)
          end = std::min(end, std::max(now, *r.terminating_deadline));
        if (victim_end.count(r.id.value()))
          end = std::min(end, victim_end[r.id.value()]);
        if (end <= t)
          continue;
        for (const NodeAllocation& a : r.allocation) {
          if (a.node == node)
            busy += Popcount(a.gpus & healthy);
        }
      }
      for (const JobStart& st : plan.starts) {
        if (st.end <= t)
          continue;
        for (const NodeAllocation& a : st.nodes) {
          if (a.node == node)
            busy += Popcount(a.gpus);
        }
      }
      int64_t reserved = 0;
      for (const Reservation& other : plan.reservations) {
        if (other.start > t)
          continue;
        for (const ReservedNode& o : other.nodes) {
          if (o.node == node)
            reserved += o.gpus;
        }
      }
      if (Popcount(healthy) - busy < reserved)
        return "reservation of job " + std::to_string(res.job.value()) + " delayed on node " +
               s.nodes[node].name;
    }
  }
  return "";
}

TEST(SchedulePropertyTest, RandomClustersKeepEveryInvariant) {
  uint64_t first = 1, count = 3000;
  if (const char* env = std::getenv("GSCHED_SEED")) {
    first = std::strtoull(env, nullptr, 10);
    count = 1;
  }
  int64_t started = 0, reserved = 0, preempted = 0;
  for (uint64_t seed = first; seed < first + count; ++seed) {
    const Case c = RandomCase(seed);
    ASSERT_TRUE(ValidateSnapshot(c.snapshot).ok()) << "seed=" << seed;
    const Plan plan = Schedule(c.snapshot, c.config, kT0);
    const std::string problem = CheckPlan(c.snapshot, c.config, plan, kT0);
    ASSERT_EQ(problem, "") << "seed=" << seed;
    started += plan.stats.started;
    reserved += plan.stats.reserved;
    preempted += plan.stats.preempted;
  }
  // The generator must exercise every mechanism, or the invariants prove little.
  EXPECT_GT(started, 1000);
  EXPECT_GT(reserved, 100);
  EXPECT_GT(preempted, 10);
}

TEST(SchedulePropertyTest, SamePlanForTheSameSnapshot) {
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    const Case c = RandomCase(seed);
    const Plan a = Schedule(c.snapshot, c.config, kT0);
    const Plan b = Schedule(c.snapshot, c.config, kT0);
    ASSERT_EQ(a.starts.size(), b.starts.size()) << "seed=" << seed;
    for (size_t i = 0; i < a.starts.size(); ++i) {
      ASSERT_EQ(a.starts[i].job, b.starts[i].job) << "seed=" << seed;
      ASSERT_EQ(a.starts[i].nodes.size(), b.starts[i].nodes.size()) << "seed=" << seed;
      for (size_t k = 0; k < a.starts[i].nodes.size(); ++k)
        ASSERT_EQ(a.starts[i].nodes[k].gpus, b.starts[i].nodes[k].gpus) << "seed=" << seed;
    }
  }
}

}  // namespace
}  // namespace gsched::core
