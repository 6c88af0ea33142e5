#include "tests/testutil/builders.h"

#include <stdexcept>
#include <unordered_map>

namespace gsched::testutil {

namespace {
// Interns names into dense indices.
class Names {
 public:
  explicit Names(std::vector<std::string>* out) : out_(out) {}
  uint32_t Get(const std::string& name) {
    auto [it, inserted] = index_.try_emplace(name, static_cast<uint32_t>(out_->size()));
    if (inserted)
      out_->push_back(name);
    return it->second;
  }
  bool Has(const std::string& name) const { return index_.contains(name); }

 private:
  std::vector<std::string>* out_;
  std::unordered_map<std::string, uint32_t> index_;
};
}  // namespace

ClusterBuilder& ClusterBuilder::AddNodes(int count, const std::string& prefix,
                                         const std::string& type, uint32_t gpus,
                                         int nodes_per_block, int blocks_per_site) {
  for (int i = 0; i < count; ++i) {
    const int block = i / nodes_per_block;
    const int site = block / blocks_per_site;
    nodes_.push_back(MakeNode(prefix + std::to_string(i))
                         .Type(type)
                         .Gpus(gpus)
                         .Block(prefix + "b" + std::to_string(block))
                         .Site(prefix + "s" + std::to_string(site)));
  }
  return *this;
}

core::Snapshot ClusterBuilder::Build() const {
  core::Snapshot s;
  s.gpu_types = types_;
  std::unordered_map<std::string, uint32_t> type_index;
  for (uint32_t t = 0; t < s.gpu_types.size(); ++t)
    type_index[s.gpu_types[t].name] = t;
  auto type_of = [&](const std::string& name) {
    auto [it, inserted] = type_index.try_emplace(name, static_cast<uint32_t>(s.gpu_types.size()));
    if (inserted)
      s.gpu_types.push_back({name, 1.0});
    return it->second;
  };
  std::vector<std::string> block_names;
  Names sites(&s.sites), blocks(&block_names), users(&s.users), labels(&s.labels);
  std::unordered_map<std::string, uint32_t> node_index;
  for (const NodeBuilder& nb : nodes_) {
    core::NodeInfo n;
    n.name = nb.name_;
    n.site = sites.Get(nb.site_);
    const bool new_block = !blocks.Has(nb.block_);
    n.block = blocks.Get(nb.block_);
    if (new_block)
      s.blocks.push_back({nb.block_, n.site});
    n.gpu_type = type_of(nb.type_);
    n.gpu_count = nb.gpus_;
    n.unhealthy_gpus = nb.unhealthy_;
    n.cpus = nb.cpus_;
    n.memory_mib = nb.mem_;
    n.state = nb.state_;
    for (const std::string& l : nb.labels_)
      n.labels |= core::LabelMask{1} << labels.Get(l);
    if (!nb.links_.empty()) {
      n.nvlink.assign(n.gpu_count, 0);
      for (auto [a, b] : nb.links_) {
        n.nvlink[a] |= core::GpuMask{1} << b;
        n.nvlink[b] |= core::GpuMask{1} << a;
      }
    }
    node_index[n.name] = static_cast<uint32_t>(s.nodes.size());
    s.nodes.push_back(std::move(n));
  }
  // Accounts: declared ones, `root` if not declared, parents resolved by name.
  std::unordered_map<std::string, uint32_t> account_index;
  bool has_root = false;
  for (const AccountBuilder& a : accounts_)
    has_root |= a.name_ == "root";
  std::vector<const AccountBuilder*> decl;
  AccountBuilder root("root");
  if (!has_root)
    decl.push_back(&root);
  for (const AccountBuilder& a : accounts_)
    decl.push_back(&a);
  // Jobs may name accounts that were never declared: they become leaves under root.
  std::vector<AccountBuilder> implicit;
  auto declared = [&](const std::string& n) {
    for (const AccountBuilder* a : decl) {
      if (a->name_ == n)
        return true;
    }
    for (const AccountBuilder& a : implicit) {
      if (a.name_ == n)
        return true;
    }
    return false;
  };
  for (const auto* list : {&pending_, &running_}) {
    for (const JobBuilder& j : *list) {
      if (!declared(j.account_))
        implicit.emplace_back(j.account_);
    }
  }
  for (const AccountBuilder& a : implicit)
    decl.push_back(&a);
  for (const AccountBuilder* a : decl)
    account_index[a->name_] = static_cast<uint32_t>(account_index.size());
  for (const AccountBuilder* a : decl) {
    core::AccountInfo info;
    info.name = a->name_;
    if (a->name_ != "root") {
      const std::string parent = a->parent_.empty() ? "root" : a->parent_;
      auto it = account_index.find(parent);
      if (it == account_index.end())
        throw std::invalid_argument("unknown parent account " + parent);
      info.parent = it->second;
    }
    info.shares = a->shares_;
    if (!a->quota_.empty()) {
      for (const auto& [t, q] : a->quota_)
        type_of(t);
    }
    info.budget = a->budget_;
    info.on_budget_exhausted = a->on_exhausted_;
    info.max_running_gpus_per_user = a->max_user_gpus_;
    info.max_pending_jobs_per_user = a->max_user_pending_;
    info.usage = {a->usage_, a->usage_at_.value_or(now_)};
    info.preemptions_last_hour = a->preemptions_;
    s.accounts.push_back(std::move(info));
  }
  for (size_t i = 0; i < decl.size(); ++i) {
    if (decl[i]->quota_.empty())
      continue;
    s.accounts[i].quota.assign(s.gpu_types.size(), core::TypeQuota{});
    for (const auto& [t, q] : decl[i]->quota_)
      s.accounts[i].quota[type_of(t)] = q;
  }
  auto type_mask = [&](const JobBuilder& j) {
    if (j.types_.empty())
      return core::kAnyType;
    core::TypeMask m = 0;
    for (const std::string& t : j.types_)
      m |= core::TypeMask{1} << type_of(t);
    return m;
  };
  for (const JobBuilder& j : pending_) {
    core::PendingJobInfo p;
    p.id = JobId(j.id_);
    p.account = account_index.at(j.account_);
    p.user = users.Get(j.user_);
    p.nodes = j.nodes_;
    p.gpus_per_node = j.gpus_;
    p.gpu_types = type_mask(j);
    p.cpus_per_node = j.cpus_;
    p.memory_mib_per_node = j.mem_;
    p.time_limit = j.time_limit_;
    p.priority_class = j.class_;
    p.topology = j.topology_;
    p.submit_time = j.submit_.value_or(now_);
    p.held = j.held_;
    p.dependencies = j.deps_;
    p.array_parent = JobId(j.array_.parent);
    p.array_max_concurrent = j.array_.max;
    p.array_running = j.array_.running;
    p.admin_adjustment = j.admin_;
    for (const std::string& l : j.labels_)
      p.required_labels |= core::LabelMask{1} << labels.Get(l);
    p.attempt = Attempt(j.attempt_);
    p.grace_period = j.grace_;
    s.pending.push_back(std::move(p));
  }
  // Running jobs take the lowest free GPUs of the nodes they name.
  std::vector<core::GpuMask> used(s.nodes.size(), 0);
  for (const JobBuilder& j : running_) {
    core::RunningJobInfo r;
    r.id = JobId(j.id_);
    r.attempt = Attempt(std::max<uint32_t>(1, j.attempt_));
    r.account = account_index.at(j.account_);
    r.user = users.Get(j.user_);
    for (const auto& [name, gpus] : j.on_) {
      const uint32_t n = node_index.at(name);
      const int want = gpus < 0 ? j.gpus_ : gpus;
      core::GpuMask m = 0;
      for (uint32_t g = 0; g < s.nodes[n].gpu_count && core::Popcount(m) < want; ++g) {
        if (!(used[n] >> g & 1))
          m |= core::GpuMask{1} << g;
      }
      used[n] |= m;
      r.allocation.push_back({n, m, j.cpus_, j.mem_});
    }
    r.start_time = j.started_.value_or(now_ - Seconds(3600));
    r.time_limit = j.time_limit_;
    r.last_checkpoint = j.checkpoint_;
    r.priority_class = j.class_;
    r.borrowing = j.borrowing_;
    r.preemptible = j.preemptible_;
    r.grace_period = j.grace_;
    r.terminating_deadline = j.terminating_;
    s.running.push_back(std::move(r));
  }
  // Types named only by jobs came last: every quota table covers every type.
  for (core::AccountInfo& a : s.accounts) {
    if (!a.quota.empty())
      a.quota.resize(s.gpu_types.size());
  }
  return s;
}

}  // namespace gsched::testutil
