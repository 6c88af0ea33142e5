#include "sim/replay.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <limits>
#include <set>
#include <tuple>
#include <unordered_map>

#include "config/policy_from_config.h"
#include "scheduler/common/policy_defaults.h"
#include "scheduler/core/user_interner.h"
#include "sim/metrics.h"

namespace gsched::sim {

namespace {

constexpr int64_t kLimitQuantumMs = 15 * 60 * 1000;
// Synthetic users per leaf account that lists none.
constexpr int kSyntheticUsers = 4;
// A replay ends at the latest this long after its start (a guard; stalls end it much earlier).
constexpr Duration kMaxReplay = Seconds(int64_t{100} * 365 * 86400);

struct AccountTree {
  std::vector<config::AccountSpec> accounts;  // Pre-order, root first.
  std::vector<uint32_t> leaves;
  std::vector<std::vector<std::string>> users;  // Per account (leaves only).
};

// The accounts of the replay, following the rules in replay.h.
Result<AccountTree> BuildAccounts(const config::AccountsConfig* given, const Trace& trace) {
  AccountTree tree;
  if (given != nullptr) {
    tree.accounts = given->accounts;
  } else {
    tree.accounts.push_back({.name = std::string(config::kRootAccount), .parent = ""});
    std::set<std::string> seen;
    for (const TraceJob& j : trace.jobs) {
      if (!j.account.empty() && seen.insert(j.account).second)
        tree.accounts.push_back({.name = j.account});
    }
    if (seen.empty())
      tree.accounts.push_back({.name = "default"});
  }
  if (tree.accounts.size() == 1)
    tree.accounts.push_back({.name = "default"});
  std::set<std::string> parents;
  for (const config::AccountSpec& a : tree.accounts)
    parents.insert(a.parent);
  tree.users.resize(tree.accounts.size());
  for (uint32_t a = 0; a < tree.accounts.size(); ++a) {
    const config::AccountSpec& spec = tree.accounts[a];
    if (spec.name == config::kRootAccount || parents.contains(spec.name))
      continue;
    tree.leaves.push_back(a);
    tree.users[a] = spec.users;
    if (tree.users[a].empty()) {
      for (int u = 1; u <= kSyntheticUsers; ++u)
        tree.users[a].push_back(spec.name + "-u" + std::to_string(u));
    }
  }
  return tree;
}

// Whether `shape` fits an empty cluster: enough nodes of an acceptable type, each with the GPUs,
// CPUs and memory one gang member asks for.
class FitCheck {
 public:
  explicit FitCheck(const core::Snapshot& s) : s_(s) {}
  bool Fits(const core::PendingJobInfo& j) {
    const auto key = std::make_tuple(j.gpu_types, j.nodes, j.gpus_per_node, j.cpus_per_node,
                                     j.memory_mib_per_node);
    auto [it, fresh] = cache_.try_emplace(key, false);
    if (!fresh)
      return it->second;
    int64_t hosts = 0;
    for (const core::NodeInfo& n : s_.nodes) {
      if ((j.gpu_types >> n.gpu_type & 1) != 0 &&
          static_cast<int64_t>(n.gpu_count) >= j.gpus_per_node && n.cpus >= j.cpus_per_node &&
          n.memory_mib >= j.memory_mib_per_node)
        ++hosts;
    }
    return it->second = hosts >= j.nodes;
  }

 private:
  const core::Snapshot& s_;
  std::map<std::tuple<core::TypeMask, int32_t, int32_t, int32_t, int64_t>, bool> cache_;
};

}  // namespace

Result<Policy> ParsePolicy(std::string_view name) {
  if (name == "fairshare")
    return Policy::kFairshare;
  if (name == "fifo")
    return Policy::kFifo;
  if (name == "sjf-oracle")
    return Policy::kSjfOracle;
  return Status::InvalidArgument("unknown policy \"" + std::string(name) +
                                 "\" (one of: fairshare, fifo, sjf-oracle)");
}

std::string_view PolicyName(Policy p) {
  switch (p) {
    case Policy::kFairshare:
      return "fairshare";
    case Policy::kFifo:
      return "fifo";
    case Policy::kSjfOracle:
      return "sjf-oracle";
  }
  return "?";
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

core::PolicyConfig PolicyFor(Policy policy, const config::SchedulerConfig& config) {
  core::PolicyConfig p = config::PolicyFromConfig(config);
  if (policy == Policy::kFairshare)
    return p;
  // Baselines: equal priority everywhere, so ties (earlier submit, then lower id) or the admin
  // adjustment decide; nothing is reclaimed.
  p.weights = {.fairshare = 0, .age = 0, .size = 0, .priority_class = 0};
  p.preemption.enabled = false;
  if (policy == Policy::kFifo)
    p.backfill.enabled = false;
  return p;
}

Result<PreparedReplay> PrepareReplay(const config::ClusterConfig& cluster,
                                     const config::AccountsConfig* accounts,
                                     const config::SchedulerConfig& scheduler, const Trace& trace,
                                     const ReplayOptions& options) {
  if (!(options.arrival_scale > 0) || !std::isfinite(options.arrival_scale))
    return Status::InvalidArgument("must be > 0", "arrival_scale");
  if (accounts != nullptr)
    RETURN_IF_ERROR(config::ValidateAccountsForCluster(*accounts, cluster));
  PreparedReplay out;
  out.trace_source = trace.source;
  out.skipped = trace.skipped;
  core::Snapshot& s = out.cluster;

  // 1. Topology, as the server's `BuildSnapshot` does (blocks are keyed by site and name here:
  // block names are unique only within their site).
  std::unordered_map<std::string, uint32_t> type_index;
  for (const config::GpuTypeSpec& t : cluster.gpu_types) {
    if (s.gpu_types.size() == 64)
      return Status::InvalidArgument("more than 64 GPU types", "gpu_types");
    type_index[t.name] = static_cast<uint32_t>(s.gpu_types.size());
    s.gpu_types.push_back({t.name, t.cost});
  }
  size_t next_node = 0;
  for (const config::SiteSpec& site : cluster.sites) {
    const uint32_t site_index = static_cast<uint32_t>(s.sites.size());
    s.sites.push_back(site.name);
    for (const config::BlockSpec& block : site.blocks) {
      const uint32_t block_index = static_cast<uint32_t>(s.blocks.size());
      s.blocks.push_back({site.name + "/" + block.name, site_index});
      for (size_t k = 0; k < block.node_count; ++k, ++next_node) {
        const config::NodeSpec& n = cluster.nodes.at(next_node);
        core::NodeInfo info;
        info.name = n.name;
        info.site = site_index;
        info.block = block_index;
        info.gpu_type = type_index.at(n.gpu_type);
        info.gpu_count = static_cast<uint32_t>(n.gpus);
        info.cpus = static_cast<int32_t>(n.cpus);
        info.memory_mib = n.memory_mib;
        s.nodes.push_back(std::move(info));
      }
    }
  }

  // 2. Accounts and users.
  ASSIGN_OR_RETURN(AccountTree tree, BuildAccounts(accounts, trace));
  std::unordered_map<std::string, uint32_t> account_index;
  for (uint32_t a = 0; a < tree.accounts.size(); ++a)
    account_index[tree.accounts[a].name] = a;
  for (const config::AccountSpec& spec : tree.accounts) {
    core::AccountInfo info;
    info.name = spec.name;
    info.parent = spec.parent.empty() ? core::kNoParent : account_index.at(spec.parent);
    info.shares = static_cast<double>(spec.shares);
    if (!spec.quotas.empty()) {
      info.quota.assign(s.gpu_types.size(), core::TypeQuota{0, core::kUnlimited});
      for (const auto& [type, q] : spec.quotas) {
        info.quota[type_index.at(type)] = {
            static_cast<int32_t>(q.guaranteed),
            q.limit ? static_cast<int32_t>(*q.limit) : core::kUnlimited};
      }
    }
    if (spec.budget)
      info.budget = core::Budget{spec.budget->gpu_hours, spec.budget->start, spec.budget->end, 0};
    info.on_budget_exhausted = spec.on_budget_exhausted;
    if (spec.max_running_gpus_per_user)
      info.max_running_gpus_per_user = static_cast<int32_t>(*spec.max_running_gpus_per_user);
    if (spec.max_pending_jobs_per_user)
      info.max_pending_jobs_per_user = static_cast<int32_t>(*spec.max_pending_jobs_per_user);
    info.usage = {0, kReplayStart};
    s.accounts.push_back(std::move(info));
  }
  core::UserInterner user_ids(s.users);
  std::unordered_map<std::string, uint32_t> user_home;  // First leaf listing a user.
  for (uint32_t leaf : tree.leaves) {
    for (const std::string& u : tree.users[leaf])
      user_home.try_emplace(u, leaf);
  }
  std::vector<bool> is_leaf(tree.accounts.size(), false);
  for (uint32_t leaf : tree.leaves)
    is_leaf[leaf] = true;
  RETURN_IF_ERROR(core::ValidateSnapshot(s));

  // 3. Policy and passes, as the daemon runs them.
  out.config.policy = PolicyFor(options.policy, scheduler);
  out.config.interval = scheduler.scheduling.interval;
  // The daemon's coalescing.
  out.config.coalesce = policy_defaults::kPassCoalesce;
  out.config.min_gap = policy_defaults::kPassMinGap;
  out.config.requeue_preempted = true;
  out.config.record_reasons = false;

  // 4. Jobs.
  const uint64_t seed_base = SplitMix64(options.seed);
  FitCheck fit(s);
  out.jobs.reserve(trace.jobs.size());
  out.run_times.reserve(trace.jobs.size());
  for (size_t i = 0; i < trace.jobs.size(); ++i) {
    const TraceJob& t = trace.jobs[i];
    const uint64_t h = SplitMix64(seed_base + i);
    core::PendingJobInfo p;
    p.nodes = t.nodes;
    p.gpus_per_node = t.gpus_per_node;
    if (!t.gpu_types.empty()) {
      p.gpu_types = 0;
      for (const std::string& name : t.gpu_types) {
        auto it = type_index.find(name);
        if (it == type_index.end()) {
          std::string known;
          for (const core::GpuTypeInfo& g : s.gpu_types)
            known += (known.empty() ? "" : ", ") + g.name;
          return TraceError(trace.source, t.line, trace.gpu_type_column, "gpu_type",
                            "unknown GPU type \"" + name + "\" (the cluster has: " + known + ")");
        }
        p.gpu_types |= core::TypeMask{1} << it->second;
      }
    }
    p.cpus_per_node = t.cpus_per_node;
    p.memory_mib_per_node = t.memory_mib_per_node;
    p.priority_class = t.priority_class;
    // Account, then user.
    uint32_t account = 0;
    if (!t.account.empty()) {
      auto it = account_index.find(t.account);
      if (it == account_index.end()) {
        return TraceError(trace.source, t.line, trace.account_column, "account",
                          "unknown account \"" + t.account + "\"");
      }
      if (!is_leaf[it->second]) {
        return TraceError(trace.source, t.line, trace.account_column, "account",
                          "\"" + t.account + "\" is not a leaf account");
      }
      account = it->second;
    } else if (auto home = user_home.find(t.user); !t.user.empty() && home != user_home.end()) {
      account = home->second;
    } else {
      account = tree.leaves[h % tree.leaves.size()];
    }
    p.account = account;
    const std::vector<std::string>& users = tree.users[account];
    p.user = user_ids.Intern(t.user.empty() ? users[(h >> 32) % users.size()] : t.user);
    // Time limit.
    const core::ClassTimeLimits& limits =
        out.config.policy.class_limits[static_cast<size_t>(t.priority_class)];
    if (t.time_limit_ms) {
      if (Duration(*t.time_limit_ms) > limits.max_limit) {
        ++out.skipped["time limit above the class maximum (rejected at submission)"];
        continue;
      }
      p.time_limit = Duration(*t.time_limit_ms);
    } else {
      const int64_t quanta =
          std::max<int64_t>(1, (2 * t.duration_ms + kLimitQuantumMs - 1) / kLimitQuantumMs);
      p.time_limit = std::min(Duration(quanta * kLimitQuantumMs), limits.max_limit);
    }
    if (!fit.Fits(p)) {
      ++out.skipped["does not fit any node set of the cluster"];
      continue;
    }
    p.id = JobId(out.jobs.size() + 1);
    p.submit_time = kReplayStart + Duration(static_cast<int64_t>(std::llround(
                                       static_cast<double>(t.submit_ms) / options.arrival_scale)));
    p.grace_period = scheduler.preemption.default_grace_period;
    if (options.policy == Policy::kSjfOracle)
      p.admin_adjustment = -static_cast<double>(t.duration_ms) / 1000.0;
    if (options.estimate_oracle)
      p.known_run_time = Duration(std::max<int64_t>(t.duration_ms, 1));
    out.jobs.push_back(std::move(p));
    out.run_times.push_back(Duration(t.duration_ms));
  }
  return out;
}

namespace {

struct IdleCount {
  int64_t stranded = 0;
  int64_t usable = 0;
};

// Free GPUs after a pass that left an eligible job waiting, two ways. Stranded: those the
// highest-ranked blocked job cannot use (on nodes of another type, down, or with fewer free GPUs,
// CPUs or memory than one of its gang members needs). Usable: those on a node where the shape of
// a job waiting for capacity fits (type, GPUs, CPUs and memory per node), counting a gang's nodes
// only when enough nodes fit it. A job waiting for capacity is one whose reason is not `held`,
// `dependency`, `budget`, `user_limit`, `quota` or `borrow_limit`: GPUs that only a job at its
// account's limit could use are idle by the administrators' choice, not the policy's. One walk
// over the nodes; per node with free GPUs, the one-node shapes until one fits; then per gang
// shape, the free nodes. Buffers are kept between passes.
class IdleGpuMeter {
 public:
  IdleCount Measure(const Simulation& sim, const core::Plan& plan) {
    IdleCount out;
    if (plan.pending.empty())
      return out;
    const core::PendingReason* head = nullptr;
    shapes_.clear();
    for (const core::PendingReason& r : plan.pending) {
      const api::ReasonCode code = plan.explanations[r.explanation].code;
      if (code == api::ReasonCode::kHeld || code == api::ReasonCode::kDependency ||
          code == api::ReasonCode::kBudget || code == api::ReasonCode::kUserLimit)
        continue;
      if (head == nullptr || r.jobs_ahead < head->jobs_ahead)
        head = &r;
      if (code != api::ReasonCode::kQuota && code != api::ReasonCode::kBorrowLimit)
        shapes_.push_back(ShapeOfPending(sim.Job(r.job).spec));
    }
    // Nothing eligible waits (every pending job is held, or waits on a dependency, its budget or
    // a per-user limit), or no GPU is free: nothing to count. Usable idle GPUs are counted only
    // for the jobs that wait for capacity.
    if (head == nullptr || sim.BusyGpus() >= sim.TotalGpus())
      return out;
    std::sort(shapes_.begin(), shapes_.end());
    shapes_.erase(std::unique(shapes_.begin(), shapes_.end()), shapes_.end());
    const core::Snapshot& s = sim.cluster();
    const std::vector<NodeUse>& use = sim.node_use();
    singles_.clear();
    gangs_.clear();
    for (const PendingShape& shape : shapes_)
      (shape.nodes == 1 ? singles_ : gangs_).push_back(&shape);
    free_.clear();
    const core::PendingJobInfo* job = &sim.Job(head->job).spec;
    for (uint32_t n = 0; n < s.nodes.size(); ++n) {
      const core::NodeInfo& node = s.nodes[n];
      const core::GpuMask all =
          node.gpu_count >= 64 ? ~core::GpuMask{0} : (core::GpuMask{1} << node.gpu_count) - 1;
      const int free = core::Popcount(all & ~(use[n].gpus | node.unhealthy_gpus));
      if (free == 0)
        continue;
      const bool up = node.state == api::NodeState::kUp;
      if (!(up && Fits(node, use[n], free, job->gpu_types, job->gpus_per_node, job->cpus_per_node,
                       job->memory_mib_per_node)))
        out.stranded += free;
      if (!up)
        continue;
      bool usable = false;
      for (const PendingShape* p : singles_) {
        if (Fits(node, use[n], free, p->gpu_types, p->gpus_per_node, p->cpus_per_node,
                 p->memory_mib_per_node)) {
          usable = true;
          break;
        }
      }
      free_.push_back({n, free, usable});
    }
    for (const PendingShape* p : gangs_) {
      int64_t fitting = 0;
      for (const FreeNode& f : free_) {
        fitting += Fits(s.nodes[f.node], use[f.node], f.free, p->gpu_types, p->gpus_per_node,
                        p->cpus_per_node, p->memory_mib_per_node);
        if (fitting >= p->nodes)
          break;
      }
      if (fitting < p->nodes)
        continue;
      for (FreeNode& f : free_) {
        f.usable = f.usable || Fits(s.nodes[f.node], use[f.node], f.free, p->gpu_types,
                                    p->gpus_per_node, p->cpus_per_node, p->memory_mib_per_node);
      }
    }
    for (const FreeNode& f : free_)
      out.usable += f.usable ? f.free : 0;
    return out;
  }

 private:
  struct FreeNode {
    uint32_t node;
    int free;
    bool usable;
  };
  static bool Fits(const core::NodeInfo& node, const NodeUse& use, int free, core::TypeMask types,
                   int32_t gpus, int32_t cpus, int64_t memory_mib) {
    return (types >> node.gpu_type & 1) && free >= gpus && node.cpus - use.cpus >= cpus &&
           node.memory_mib - use.memory_mib >= memory_mib;
  }
  std::vector<PendingShape> shapes_;
  std::vector<const PendingShape*> singles_, gangs_;
  std::vector<FreeNode> free_;
};

double SecondsBetween(Timestamp from, Timestamp to) {
  return static_cast<double>((to - from).count()) / 1000.0;
}

void LogPreemptions(std::ostream& out, const Simulation& sim, const core::Plan& plan,
                    Timestamp now) {
  const std::vector<core::AccountInfo>& accounts = sim.cluster().accounts;
  for (const core::PlannedPreemption& p : plan.preemptions) {
    const SimJob& victim = sim.Job(p.victim);
    const SimJob& preemptor = sim.Job(p.for_job);
    out << SecondsBetween(kReplayStart, now) << ',' << p.victim.value() << ','
        << accounts[victim.spec.account].name << ',' << victim.gpus << ','
        << SecondsBetween(victim.started, now) << ',' << (victim.borrowing ? 1 : 0) << ','
        << p.for_job.value() << ',' << accounts[preemptor.spec.account].name << ','
        << preemptor.spec.nodes * preemptor.spec.gpus_per_node << ','
        << SecondsBetween(preemptor.spec.submit_time, now) << '\n';
  }
}

}  // namespace

ReplaySummary RunReplay(PreparedReplay replay, const ReplayOptions& options) {
  ReplaySummary out;
  out.policy = std::string(PolicyName(options.policy));
  out.seed = options.seed;
  out.arrival_scale = options.arrival_scale;
  out.skipped = replay.skipped;
  out.nodes = static_cast<int64_t>(replay.cluster.nodes.size());

  Timestamp first_submit = Timestamp::max();
  for (const core::PendingJobInfo& j : replay.jobs)
    first_submit = std::min(first_submit, j.submit_time);
  if (replay.jobs.empty())
    first_submit = kReplayStart;

  Simulation sim(std::move(replay.cluster), replay.config, kReplayStart);
  out.gpus = sim.TotalGpus();
  for (size_t i = 0; i < replay.jobs.size(); ++i)
    sim.Submit(std::move(replay.jobs[i]), replay.run_times[i]);
  out.jobs = static_cast<int64_t>(replay.jobs.size());
  replay.jobs = {};

  // Accounts with jobs: the report charts them, the summary lists them.
  const size_t account_count = sim.cluster().accounts.size();
  std::vector<int64_t> account_jobs(account_count, 0);
  for (const auto& [id, job] : sim.jobs())
    ++account_jobs[job.spec.account];
  std::vector<uint32_t> listed;
  for (uint32_t a = 0; a < account_count; ++a) {
    if (account_jobs[a] > 0)
      listed.push_back(a);
  }
  double capacity = 0;  // Normalised GPUs.
  for (const core::NodeInfo& n : sim.cluster().nodes)
    capacity += static_cast<double>(n.gpu_count) * sim.cluster().gpu_types[n.gpu_type].cost;
  const EntitlementSplit split(sim.cluster().accounts);

  // Time series: busy GPUs, pending jobs, stranded GPUs, then each listed account's allocation
  // and entitlement; each held between events.
  constexpr size_t kFixedSeries = 3;
  StepSeries series(ToUnixMillis(kReplayStart), 1000, kFixedSeries + 2 * listed.size());
  std::vector<double> series_values(kFixedSeries + 2 * listed.size(), 0.0);
  // What the last pass measured, held until the next one.
  double stranded_now = 0, usable_idle_now = 0, error_now = 0, overheld_now = 0;
  double stranded_integral = 0, usable_idle_integral = 0;  // GPU-milliseconds.
  double error_integral = 0, backlogged_error_integral = 0, contended_ms = 0, backlogged_ms = 0;
  double backlogged_overheld_integral = 0;
  // Contended: the last pass left jobs waiting (a job that just arrived and waits only for the
  // next pass, 10 ms away, does not count). Backlogged: every account asking for GPUs had a job
  // waiting.
  bool contended_now = false, backlogged_now = false;
  std::vector<double> demand(account_count, 0.0), held(account_count, 0.0),
      entitled_now(account_count, 0.0);
  // Per account, normalised GPU-milliseconds while jobs waited: delivered (the achieved share),
  // and allocated and entitled (time-averaged later).
  std::vector<double> contended(account_count, 0.0), entitled(account_count, 0.0);
  IdleGpuMeter idle_meter;
  std::unordered_map<uint64_t, EstimateSamples> estimates;
  std::vector<std::pair<double, double>> estimate_errors;  // (|error| s, weight)
  double estimate_weight = 0, estimate_within = 0, estimate_late = 0;
  // By lead (start - given): < 10 min, 10-60 min, 1-4 h, >= 4 h; weight, within, late.
  constexpr std::array<int64_t, 3> kLeadBoundsMs = {600'000, 3'600'000, 14'400'000};
  std::array<std::array<double, 3>, 4> by_lead{};
  double reasons_given = 0, reasons_with_estimate = 0;
  const auto wall_start = std::chrono::steady_clock::now();
  auto next_progress = wall_start + options.progress_every;
  if (options.preemption_log != nullptr)
    *options.preemption_log << "time_s,victim,victim_account,victim_gpus,victim_run_s,borrowing,"
                               "for_job,for_account,for_gpus,for_wait_s\n";
  sim.on_plan = [&](const core::Plan& plan, Timestamp now) {
    if (options.preemption_log != nullptr)
      LogPreemptions(*options.preemption_log, sim, plan, now);
    const auto [stranded, usable] = idle_meter.Measure(sim, plan);
    stranded_now = static_cast<double>(stranded);
    usable_idle_now = static_cast<double>(usable);
    contended_now = !plan.pending.empty();
    backlogged_now = contended_now;
    for (uint32_t a = 0; a < account_count; ++a) {
      held[a] = sim.RunningNormalisedGpus(a);
      demand[a] = held[a] + sim.PendingNormalisedGpus(a);
      if (demand[a] > 0 && sim.PendingNormalisedGpus(a) <= 0)
        backlogged_now = false;
    }
    if (contended_now) {
      entitled_now = split.Split(demand, capacity);
      error_now = FairShareError(held, entitled_now, capacity);
      overheld_now = 0;
      for (uint32_t a = 0; a < account_count; ++a)
        overheld_now += std::max(0.0, held[a] - entitled_now[a]);
      overheld_now = capacity > 0 ? overheld_now / (2 * capacity) : 0;
    } else {
      entitled_now = held;
      error_now = 0;
      overheld_now = 0;
    }
    // Estimates: every one given, then weighed against the start that follows.
    reasons_given += static_cast<double>(plan.pending.size());
    for (const core::PendingReason& r : plan.pending) {
      if (r.estimated_start) {
        estimates[r.job.value()].Add(now, *r.estimated_start);
        ++reasons_with_estimate;
      }
    }
    for (const core::JobStart& st : plan.starts) {
      auto it = estimates.find(st.job.value());
      if (it == estimates.end())
        continue;
      for (const EstimateSamples::Sample& e : it->second.Weighted()) {
        estimate_errors.emplace_back(
            std::abs(static_cast<double>((e.estimate - now).count())) / 1000.0, e.weight);
        estimate_weight += e.weight;
        const bool within = EstimateWithin(e.given, e.estimate, now, 0.2);
        if (within)
          estimate_within += e.weight;
        if (e.estimate > now)
          estimate_late += e.weight;
        const int64_t lead_ms = (now - e.given).count();
        const size_t bucket = static_cast<size_t>(
            std::upper_bound(kLeadBoundsMs.begin(), kLeadBoundsMs.end(), lead_ms) -
            kLeadBoundsMs.begin());
        by_lead[bucket][0] += e.weight;
        by_lead[bucket][1] += within ? e.weight : 0;
        by_lead[bucket][2] += e.estimate > now ? e.weight : 0;
      }
      estimates.erase(it);
    }
    if (options.progress && (sim.stats().cycles & 63) == 0) {
      const auto wall = std::chrono::steady_clock::now();
      if (wall >= next_progress) {
        next_progress = wall + options.progress_every;
        options.progress({sim.ArrivedCount(), sim.jobs().size(), sim.PendingCount(),
                          sim.RunningCount(), sim.stats().cycles,
                          static_cast<double>((sim.Now() - kReplayStart).count()) / 1000.0,
                          std::chrono::duration<double>(wall - wall_start).count()});
      }
    }
  };
  sim.on_advance = [&](Timestamp from, Timestamp to) {
    series_values[0] = static_cast<double>(sim.BusyGpus());
    series_values[1] = static_cast<double>(sim.PendingCount());
    series_values[2] = stranded_now;
    for (size_t k = 0; k < listed.size(); ++k) {
      const double now_held = sim.RunningNormalisedGpus(listed[k]);
      series_values[kFixedSeries + 2 * k] = now_held;
      series_values[kFixedSeries + 2 * k + 1] = contended_now ? entitled_now[listed[k]] : now_held;
    }
    series.Add(ToUnixMillis(from), ToUnixMillis(to), series_values);
    const double dt = static_cast<double>((to - from).count());
    stranded_integral += stranded_now * dt;
    usable_idle_integral += usable_idle_now * dt;
    if (contended_now) {
      contended_ms += dt;
      error_integral += error_now * dt;
      if (backlogged_now) {
        backlogged_ms += dt;
        backlogged_error_integral += error_now * dt;
        backlogged_overheld_integral += overheld_now * dt;
      }
      for (uint32_t a = 0; a < account_count; ++a) {
        contended[a] += sim.RunningNormalisedGpus(a) * dt;
        entitled[a] += entitled_now[a] * dt;
      }
    }
  };
  sim.RunUntilIdle(kReplayStart + kMaxReplay);
  const Timestamp end = sim.Now();

  // Per job.
  Timestamp last_finish = first_submit;
  std::vector<double> waits, jcts, slowdowns;
  std::array<std::vector<double>, kSizeClasses> class_waits;
  const core::Snapshot& s = sim.cluster();
  std::vector<double> account_wait(s.accounts.size(), 0.0);
  std::vector<int64_t> account_started(s.accounts.size(), 0);
  for (const auto& [id, job] : sim.jobs()) {
    if (!job.first_start) {
      ++out.unstarted;
      continue;
    }
    const double wait =
        static_cast<double>((*job.first_start - job.spec.submit_time).count()) / 1000.0;
    waits.push_back(wait);
    class_waits[static_cast<size_t>(SizeClassOf(job.spec.nodes, job.spec.gpus_per_node))].push_back(
        wait);
    account_wait[job.spec.account] += wait;
    ++account_started[job.spec.account];
    if (!job.finished)
      continue;
    last_finish = std::max(last_finish, *job.finished);
    const double jct = static_cast<double>((*job.finished - job.spec.submit_time).count()) / 1000.0;
    const double run =
        static_cast<double>(
            std::min(job.run_time, core::EffectiveTimeLimit(job.spec, replay.config.policy))
                .count()) /
        1000.0;
    jcts.push_back(jct);
    slowdowns.push_back(BoundedSlowdown(jct, run));
  }
  out.completed = sim.stats().completed;
  out.timeouts = sim.stats().timeouts;
  out.preemptions = sim.stats().preemptions;
  out.passes = sim.stats().cycles;
  out.violations = sim.stats().violations;
  out.makespan_s = static_cast<double>((last_finish - first_submit).count()) / 1000.0;
  out.simulated_s = static_cast<double>((end - kReplayStart).count()) / 1000.0;
  std::sort(waits.begin(), waits.end());
  std::sort(jcts.begin(), jcts.end());
  out.mean_wait_s = Mean(waits);
  out.p50_wait_s = Percentile(waits, 50);
  out.p95_wait_s = Percentile(waits, 95);
  out.p99_wait_s = Percentile(waits, 99);
  out.max_wait_s = waits.empty() ? 0 : waits.back();
  out.mean_jct_s = Mean(jcts);
  out.p50_jct_s = Percentile(jcts, 50);
  out.mean_bounded_slowdown = Mean(slowdowns);
  for (size_t c = 0; c < kSizeClasses; ++c) {
    std::vector<double>& w = class_waits[c];
    std::sort(w.begin(), w.end());
    out.waits_by_size.push_back({SizeClassName(static_cast<SizeClass>(c)),
                                 static_cast<int64_t>(w.size()), Percentile(w, 50),
                                 Percentile(w, 95), Percentile(w, 99), w.empty() ? 0 : w.back()});
  }

  // Utilisation, fragmentation and idle GPUs over [first submit, last finish].
  double busy_gpu_s = 0;
  for (double g : sim.GpuSeconds())
    busy_gpu_s += g;
  const double capacity_s = static_cast<double>(out.gpus) * out.makespan_s;
  out.gpu_utilization = capacity_s > 0 ? busy_gpu_s / capacity_s : 0;
  out.fragmentation = capacity_s > 0 ? stranded_integral / 1000.0 / capacity_s : 0;
  out.idle_while_waiting = capacity_s > 0 ? usable_idle_integral / 1000.0 / capacity_s : 0;
  std::vector<int64_t> type_gpus(s.gpu_types.size(), 0);
  for (const core::NodeInfo& n : s.nodes)
    type_gpus[n.gpu_type] += n.gpu_count;
  for (uint32_t t = 0; t < s.gpu_types.size(); ++t) {
    if (type_gpus[t] == 0)
      continue;
    const double type_capacity_s = static_cast<double>(type_gpus[t]) * out.makespan_s;
    out.utilization_by_type.push_back(
        {s.gpu_types[t].name, type_gpus[t],
         type_capacity_s > 0 ? sim.TypeGpuSeconds()[t] / type_capacity_s : 0});
  }
  out.delivered_gpu_hours = busy_gpu_s / 3600.0;
  out.preempted_gpu_hours = sim.stats().preempted_gpu_seconds / 3600.0;
  out.estimates = estimate_weight;
  out.estimate_p50_error_s = WeightedPercentile(estimate_errors, 50);
  out.estimate_p90_error_s = WeightedPercentile(std::move(estimate_errors), 90);
  out.estimates_within_20pct = estimate_weight > 0 ? estimate_within / estimate_weight : 0;
  out.estimates_late = estimate_weight > 0 ? estimate_late / estimate_weight : 0;
  constexpr std::array<const char*, 4> kLeadNames = {"< 10 min", "10-60 min", "1-4 h", ">= 4 h"};
  for (size_t b = 0; b < by_lead.size(); ++b) {
    const double w = by_lead[b][0];
    out.estimates_by_lead.push_back({kLeadNames[b], estimate_weight > 0 ? w / estimate_weight : 0,
                                     w > 0 ? by_lead[b][1] / w : 0, w > 0 ? by_lead[b][2] / w : 0});
  }
  out.estimate_coverage = reasons_given > 0 ? reasons_with_estimate / reasons_given : 0;

  // Fairness while jobs waited.
  out.contended_s = contended_ms / 1000.0;
  out.backlogged_s = backlogged_ms / 1000.0;
  out.fair_share_error = contended_ms > 0 ? error_integral / contended_ms : 0;
  out.fair_share_error_backlogged =
      backlogged_ms > 0 ? backlogged_error_integral / backlogged_ms : 0;
  out.fair_share_error_overheld =
      backlogged_ms > 0 ? backlogged_overheld_integral / backlogged_ms : 0;
  // Shares: normalised GPU-seconds of each active leaf against its target.
  std::vector<bool> active(s.accounts.size(), false);
  for (uint32_t a = 0; a < s.accounts.size(); ++a)
    active[a] = account_jobs[a] > 0;
  const std::vector<double> target = TargetShares(s.accounts, active);
  std::vector<double> delivered = contended;
  double total_delivered = 0;
  for (double u : delivered)
    total_delivered += u;
  if (total_delivered == 0) {
    // Nobody ever waited: every account got all it asked for, when it asked.
    delivered = sim.NormalisedGpuSeconds();
    for (double u : delivered)
      total_delivered += u;
  }
  std::vector<double> ratios;
  for (uint32_t a : listed) {
    AccountSummary acc;
    acc.name = s.accounts[a].name;
    acc.jobs = account_jobs[a];
    acc.target_share = target[a];
    acc.achieved_share = total_delivered > 0 ? delivered[a] / total_delivered : 0;
    acc.mean_wait_s =
        account_started[a] > 0 ? account_wait[a] / static_cast<double>(account_started[a]) : 0;
    acc.gpu_hours = sim.GpuSeconds()[a] / 3600.0;
    if (contended_ms > 0) {
      acc.allocated_gpus = contended[a] / contended_ms;
      acc.entitled_gpus = entitled[a] / contended_ms;
      if (acc.entitled_gpus > 0)
        ratios.push_back(acc.allocated_gpus / acc.entitled_gpus);
    }
    out.accounts.push_back(std::move(acc));
  }
  out.jain_fairness = JainIndex(ratios);

  // Report series.
  out.waits_s = std::move(waits);
  out.series_origin_ms = series.origin_ms();
  out.series_width_ms = series.width_ms();
  const int64_t end_ms = ToUnixMillis(std::max(end, kReplayStart + Duration(1)));
  out.utilization_series = series.Means(0, end_ms);
  for (double& u : out.utilization_series)
    u = out.gpus > 0 ? u / static_cast<double>(out.gpus) : 0;
  out.queue_series = series.Means(1, end_ms);
  for (size_t k = 0; k < listed.size(); ++k) {
    out.allocated_series.push_back(series.Means(kFixedSeries + 2 * k, end_ms));
    out.entitled_series.push_back(series.Means(kFixedSeries + 2 * k + 1, end_ms));
  }
  return out;
}

std::string SummaryJson(const ReplaySummary& s) {
  std::string o = "{\n";
  auto field = [&](const char* key, const std::string& value) {
    o += "  \"";
    o += key;
    o += "\": " + value + ",\n";
  };
  auto quoted = [](const std::string& v) {
    std::string q = "\"";
    for (char c : v) {
      if (c == '"' || c == '\\') {
        q += '\\';
        q += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\u%04x", c);
        q += buf;
      } else {
        q += c;
      }
    }
    return q + "\"";
  };
  auto num = [](double v, int digits) { return FormatNumber(v, digits); };
  auto integer = [](int64_t v) { return std::to_string(v); };
  field("policy", quoted(s.policy));
  field("seed", std::to_string(s.seed));
  field("arrival_scale", num(s.arrival_scale, 3));
  field("nodes", integer(s.nodes));
  field("gpus", integer(s.gpus));
  field("jobs", integer(s.jobs));
  field("completed", integer(s.completed));
  field("timeouts", integer(s.timeouts));
  field("unstarted", integer(s.unstarted));
  std::string skipped = "{";
  for (const auto& [reason, n] : s.skipped)
    skipped += (skipped.size() > 1 ? ", " : "") + quoted(reason) + ": " + integer(n);
  field("skipped", skipped + "}");
  field("makespan_s", num(s.makespan_s, 3));
  field("mean_wait_s", num(s.mean_wait_s, 3));
  field("p50_wait_s", num(s.p50_wait_s, 3));
  field("p95_wait_s", num(s.p95_wait_s, 3));
  field("p99_wait_s", num(s.p99_wait_s, 3));
  field("max_wait_s", num(s.max_wait_s, 3));
  field("mean_jct_s", num(s.mean_jct_s, 3));
  field("p50_jct_s", num(s.p50_jct_s, 3));
  field("mean_bounded_slowdown", num(s.mean_bounded_slowdown, 4));
  field("gpu_utilization", num(s.gpu_utilization, 6));
  field("fragmentation", num(s.fragmentation, 6));
  field("jain_fairness", num(s.jain_fairness, 6));
  field("fair_share_error", num(s.fair_share_error, 6));
  field("fair_share_error_backlogged", num(s.fair_share_error_backlogged, 6));
  field("fair_share_error_overheld", num(s.fair_share_error_overheld, 6));
  field("contended_s", num(s.contended_s, 3));
  field("backlogged_s", num(s.backlogged_s, 3));
  std::string sizes = "{";
  for (const SizeClassWaits& c : s.waits_by_size) {
    sizes += (sizes.size() > 1 ? ",\n    " : "\n    ") + quoted(c.name) +
             ": {\"jobs\": " + integer(c.jobs) + ", \"p50_wait_s\": " + num(c.p50_wait_s, 3) +
             ", \"p95_wait_s\": " + num(c.p95_wait_s, 3) +
             ", \"p99_wait_s\": " + num(c.p99_wait_s, 3) +
             ", \"max_wait_s\": " + num(c.max_wait_s, 3) + "}";
  }
  field("waits_by_size", sizes + (s.waits_by_size.empty() ? "}" : "\n  }"));
  field("idle_while_waiting", num(s.idle_while_waiting, 6));
  std::string types = "{";
  for (const TypeUtilization& t : s.utilization_by_type) {
    types += (types.size() > 1 ? ", " : "") + quoted(t.name) + ": {\"gpus\": " + integer(t.gpus) +
             ", \"utilization\": " + num(t.utilization, 6) + "}";
  }
  field("utilization_by_type", types + "}");
  field("delivered_gpu_hours", num(s.delivered_gpu_hours, 3));
  field("preempted_gpu_hours", num(s.preempted_gpu_hours, 3));
  field("preempted_fraction",
        num(s.delivered_gpu_hours > 0 ? s.preempted_gpu_hours / s.delivered_gpu_hours : 0, 6));
  field("estimates", num(s.estimates, 0));
  field("estimate_p50_error_s", num(s.estimate_p50_error_s, 3));
  field("estimate_p90_error_s", num(s.estimate_p90_error_s, 3));
  field("estimates_within_20pct", num(s.estimates_within_20pct, 6));
  field("estimates_late", num(s.estimates_late, 6));
  std::string leads = "{";
  for (const ReplaySummary::EstimateLead& l : s.estimates_by_lead) {
    leads += (leads.size() > 1 ? ",\n    " : "\n    ") + quoted(l.name) +
             ": {\"share\": " + num(l.share, 6) + ", \"within_20pct\": " + num(l.within_20pct, 6) +
             ", \"late\": " + num(l.late, 6) + "}";
  }
  field("estimates_by_lead", leads + (s.estimates_by_lead.empty() ? "}" : "\n  }"));
  field("estimate_coverage", num(s.estimate_coverage, 6));
  field("preemptions", integer(s.preemptions));
  field("passes", integer(s.passes));
  field("violations", integer(s.violations));
  std::string accounts = "{";
  for (const AccountSummary& a : s.accounts) {
    accounts +=
        (accounts.size() > 1 ? ",\n    " : "\n    ") + quoted(a.name) +
        ": {\"jobs\": " + integer(a.jobs) + ", \"target_share\": " + num(a.target_share, 6) +
        ", \"achieved_share\": " + num(a.achieved_share, 6) +
        ", \"mean_wait_s\": " + num(a.mean_wait_s, 3) + ", \"gpu_hours\": " + num(a.gpu_hours, 3) +
        ", \"allocated_gpus\": " + num(a.allocated_gpus, 3) +
        ", \"entitled_gpus\": " + num(a.entitled_gpus, 3) + "}";
  }
  field("accounts", accounts + (s.accounts.empty() ? "}" : "\n  }"));
  field("simulated_s", num(s.simulated_s, 3));
  field("wall_time_s", num(s.wall_time_s, 3));
  o += "  \"speedup\": " + num(s.speedup, 1) + "\n}\n";
  return o;
}

}  // namespace gsched::sim
