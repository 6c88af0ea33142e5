#include "tests/testutil/synthetic.h"

#include <algorithm>
#include <random>
#include <string>

namespace gsched::testutil {

core::Snapshot MakeSyntheticCluster(const SyntheticSpec& spec) {
  std::mt19937_64 rng(spec.seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  core::Snapshot s;
  s.gpu_types = {{"h100", 1.0}, {"b200", 2.0}, {"rtx-pro-6000", 0.5}};
  for (int i = 0; i < spec.sites; ++i)
    s.sites.push_back("site" + std::to_string(i));
  const int blocks = (spec.nodes + spec.nodes_per_block - 1) / spec.nodes_per_block;
  for (int b = 0; b < blocks; ++b)
    s.blocks.push_back({"block" + std::to_string(b), static_cast<uint32_t>(b % spec.sites)});
  s.nodes.reserve(spec.nodes);
  for (int i = 0; i < spec.nodes; ++i) {
    core::NodeInfo n;
    n.name = "node" + std::to_string(i);
    n.block = static_cast<uint32_t>(i / spec.nodes_per_block);
    n.site = s.blocks[n.block].site;
    // Blocks are homogeneous: 50% h100, 30% b200, 20% rtx.
    const int kind = static_cast<int>(n.block % 10);
    n.gpu_type = kind < 5 ? 0 : (kind < 8 ? 1 : 2);
    n.gpu_count = static_cast<uint32_t>(spec.gpus_per_node);
    n.cpus = 128;
    n.memory_mib = 1024 * 1024;
    s.nodes.push_back(std::move(n));
  }
  // Accounts: root > institutions > projects.
  s.accounts.push_back({.name = "root"});
  for (int i = 0; i < spec.institutions; ++i) {
    core::AccountInfo a;
    a.name = "inst" + std::to_string(i);
    a.parent = 0;
    a.shares = 1 + i % 3;
    s.accounts.push_back(std::move(a));
  }
  const int64_t cluster_gpus = int64_t{spec.nodes} * spec.gpus_per_node;
  const uint32_t first_project = static_cast<uint32_t>(s.accounts.size());
  for (int p = 0; p < spec.accounts; ++p) {
    core::AccountInfo a;
    a.name = "proj" + std::to_string(p);
    a.parent = 1 + static_cast<uint32_t>(p % spec.institutions);
    a.shares = 1 + p % 5;
    a.usage = {static_cast<double>(uniform(0, 1000000)), spec.now - Seconds(uniform(0, 86400))};
    if (spec.quotas) {
      a.quota.resize(s.gpu_types.size());
      for (auto& q : a.quota) {
        // Guarantees add up to about 60% of a type's share of the cluster; limits to 3x that.
        q.guaranteed = static_cast<int32_t>(cluster_gpus * 6 / 10 / 3 / spec.accounts);
        q.limit = q.guaranteed * 3 + 8;
      }
    }
    s.accounts.push_back(std::move(a));
  }
  for (int u = 0; u < spec.users; ++u)
    s.users.push_back("user" + std::to_string(u));
  auto account_of_user = [&](uint32_t u) { return first_project + u % spec.accounts; };

  // Running jobs fill `busy_fraction` of the nodes with whole-node or partial jobs.
  uint64_t next_id = 1;
  for (uint32_t n = 0; n < s.nodes.size(); ++n) {
    if (std::uniform_real_distribution<double>(0, 1)(rng) >= spec.busy_fraction)
      continue;
    int free = spec.gpus_per_node;
    int gpu = 0;
    while (free > 0) {
      const int g = std::min(free, 1 << uniform(0, 3));
      core::RunningJobInfo r;
      r.id = JobId(next_id++);
      r.attempt = Attempt(1);
      r.user = static_cast<uint32_t>(uniform(0, spec.users - 1));
      r.account = account_of_user(r.user);
      core::GpuMask m = 0;
      for (int k = 0; k < g; ++k)
        m |= core::GpuMask{1} << (gpu + k);
      gpu += g;
      free -= g;
      r.allocation.push_back({n, m, 4 * g, 32 * 1024 * g});
      r.start_time = spec.now - Seconds(uniform(60, 86400));
      r.time_limit = Seconds(3600 * uniform(1, 48));
      if (r.start_time + r.time_limit <= spec.now)
        r.time_limit = (spec.now - r.start_time) + Seconds(uniform(60, 7200));
      r.borrowing = uniform(0, 3) == 0;
      r.priority_class =
          uniform(0, 9) == 0 ? api::PriorityClass::kPreemptible : api::PriorityClass::kNormal;
      s.running.push_back(std::move(r));
    }
  }
  // Pending jobs of mixed shapes: mostly single-node 1/2/4/8 GPUs, some gangs.
  s.pending.reserve(spec.pending);
  static constexpr int kLimitsH[] = {1, 2, 4, 12, 24};
  for (int i = 0; i < spec.pending; ++i) {
    core::PendingJobInfo j;
    j.id = JobId(next_id++);
    j.user = static_cast<uint32_t>(uniform(0, spec.users - 1));
    j.account = account_of_user(j.user);
    const int shape = uniform(0, 99);
    if (shape < 40) {
      j.gpus_per_node = 1;
    } else if (shape < 60) {
      j.gpus_per_node = 2;
    } else if (shape < 75) {
      j.gpus_per_node = 4;
    } else if (shape < 92) {
      j.gpus_per_node = 8;
    } else {
      j.gpus_per_node = 8;
      j.nodes = 1 << uniform(1, 4);  // 2..16 nodes
      j.topology = uniform(0, 1) ? api::Topology::kBlock : api::Topology::kAny;
    }
    j.cpus_per_node = 4 * j.gpus_per_node;
    j.memory_mib_per_node = int64_t{32} * 1024 * j.gpus_per_node;
    const int t = uniform(0, 9);
    j.gpu_types = t < 5 ? core::TypeMask{1} : (t < 8 ? core::TypeMask{2} : core::TypeMask{7});
    j.time_limit = Seconds(3600 * kLimitsH[uniform(0, 4)]);
    j.priority_class =
        uniform(0, 19) == 0 ? api::PriorityClass::kHigh : api::PriorityClass::kNormal;
    j.submit_time = spec.now - Seconds(uniform(0, 7 * 86400));
    s.pending.push_back(std::move(j));
  }
  return s;
}

}  // namespace gsched::testutil
