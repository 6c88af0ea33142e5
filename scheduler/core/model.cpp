#include "scheduler/core/model.h"

#include <string>

namespace gsched::core {

RunningSums SumRunning(const Snapshot& s) {
  RunningSums out;
  const size_t types = s.gpu_types.size();
  out.nodes.assign(s.nodes.size(), NodeUse{});
  out.account_type_gpus.assign(s.accounts.size() * types, 0);
  // Compact copies of what the walk looks up per job: reaching into the large node and account
  // records at random was most of its cost.
  std::vector<uint8_t> node_type(s.nodes.size()), capped(s.accounts.size());
  for (size_t n = 0; n < s.nodes.size(); ++n)
    node_type[n] = static_cast<uint8_t>(s.nodes[n].gpu_type);
  for (size_t a = 0; a < s.accounts.size(); ++a)
    capped[a] = s.accounts[a].max_running_gpus_per_user != kUnlimited;
  for (const RunningJobInfo& j : s.running) {
    if (j.allocation.empty())
      continue;
    int64_t gpus = 0;
    for (const NodeAllocation& a : j.allocation) {
      NodeUse& u = out.nodes[a.node];
      u.gpus |= a.gpus;
      u.cpus += a.cpus;
      u.memory_mib += a.memory_mib;
      gpus += Popcount(a.gpus);
    }
    out.account_type_gpus[j.account * types + node_type[j.allocation.front().node]] += gpus;
    if (capped[j.account])
      out.capped_user_gpus[uint64_t{j.account} << 32 | j.user] += gpus;
  }
  return out;
}

std::vector<uint32_t> AccountChain(const Snapshot& s, uint32_t account) {
  std::vector<uint32_t> chain;
  for (uint32_t a = account; a != kNoParent && chain.size() <= s.accounts.size();
       a = s.accounts[a].parent) {
    chain.push_back(a);
  }
  return chain;
}

namespace {
std::string At(const char* what, size_t i) {
  return std::string(what) + "[" + std::to_string(i) + "]";
}
}  // namespace

Status ValidateSnapshot(const Snapshot& s) {
  if (s.gpu_types.size() > 64)
    return Status::InvalidArgument("at most 64 GPU types", "gpu_types");
  if (s.labels.size() > 64)
    return Status::InvalidArgument("at most 64 labels", "labels");
  for (size_t i = 0; i < s.blocks.size(); ++i) {
    if (s.blocks[i].site >= s.sites.size())
      return Status::InvalidArgument("unknown site", At("blocks", i) + ".site");
  }
  for (size_t i = 0; i < s.nodes.size(); ++i) {
    const NodeInfo& n = s.nodes[i];
    if (n.gpu_count > 64)
      return Status::InvalidArgument("at most 64 GPUs per node", At("nodes", i) + ".gpu_count");
    if (n.gpu_type >= s.gpu_types.size())
      return Status::InvalidArgument("unknown GPU type", At("nodes", i) + ".gpu_type");
    if (n.block >= s.blocks.size() || s.blocks[n.block].site != n.site)
      return Status::InvalidArgument("unknown block or block of another site",
                                     At("nodes", i) + ".block");
    if (!n.nvlink.empty() && n.nvlink.size() != n.gpu_count)
      return Status::InvalidArgument("one NVLink mask per GPU", At("nodes", i) + ".nvlink");
  }
  for (size_t i = 0; i < s.accounts.size(); ++i) {
    const AccountInfo& a = s.accounts[i];
    if (a.parent != kNoParent && a.parent >= s.accounts.size())
      return Status::InvalidArgument("unknown parent", At("accounts", i) + ".parent");
    if (AccountChain(s, static_cast<uint32_t>(i)).size() > s.accounts.size())
      return Status::InvalidArgument("cycle in the account tree", At("accounts", i) + ".parent");
    if (!a.quota.empty() && a.quota.size() != s.gpu_types.size())
      return Status::InvalidArgument("one quota entry per GPU type", At("accounts", i) + ".quota");
  }
  if (s.user_run_time_ratio.size() > s.users.size())
    return Status::InvalidArgument("more ratios than users", "user_run_time_ratio");
  for (size_t i = 0; i < s.user_run_time_ratio.size(); ++i) {
    // Written so that NaN fails too.
    if (!(s.user_run_time_ratio[i] > 0 && s.user_run_time_ratio[i] <= 1))
      return Status::InvalidArgument("must be in (0, 1]", At("user_run_time_ratio", i));
  }
  if (s.user_limit_run_time_ratio.size() > s.users.size())
    return Status::InvalidArgument("more ratios than users", "user_limit_run_time_ratio");
  for (size_t i = 0; i < s.user_limit_run_time_ratio.size(); ++i) {
    for (float r : s.user_limit_run_time_ratio[i]) {
      // 0 (no jobs of the class) or in (0, 1]; written so that NaN fails too.
      if (!(r == 0 || (r > 0 && r <= 1)))
        return Status::InvalidArgument("must be 0 or in (0, 1]",
                                       At("user_limit_run_time_ratio", i));
    }
  }
  for (size_t i = 0; i < s.pending.size(); ++i) {
    const PendingJobInfo& j = s.pending[i];
    if (j.account >= s.accounts.size())
      return Status::InvalidArgument("unknown account", At("pending", i) + ".account");
    if (j.nodes < 1 || j.gpus_per_node < 0 || j.gpus_per_node > 64)
      return Status::InvalidArgument("bad shape", At("pending", i) + ".nodes");
  }
  for (size_t i = 0; i < s.running.size(); ++i) {
    const RunningJobInfo& j = s.running[i];
    if (j.account >= s.accounts.size())
      return Status::InvalidArgument("unknown account", At("running", i) + ".account");
    for (const NodeAllocation& a : j.allocation) {
      if (a.node >= s.nodes.size())
        return Status::InvalidArgument("unknown node", At("running", i) + ".allocation");
    }
  }
  return Status::Ok();
}

}  // namespace gsched::core
