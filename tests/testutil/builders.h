// Fluent builders for scheduling snapshots, shared by the core unit tests, the sim harness, the
// benchmarks and later the server tests (the Kubernetes `st.MakeNode()` / Nomad `mock.Job()` idea):
//
//   Snapshot s = ClusterBuilder()
//                    .GpuType("h100", 1.0)
//                    .Add(MakeNode("n1").Type("h100").Gpus(8).Block("b0").Site("s0"))
//                    .Add(MakeAccount("a").Shares(3).Guaranteed("h100", 8))
//                    .Add(MakeJob(1).Account("a").User("u").Gpus(8).Nodes(2))
//                    .Build();
//
// Everything is referred to by name; `Build()` assigns the dense indices of `core::Snapshot`,
// creating GPU types, sites, blocks, users and labels on first mention. An account without a
// parent hangs under `root`, which exists unless declared. Not thread-safe; test code only.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "scheduler/core/model.h"

namespace gsched::testutil {

// The fixed "now" of unit tests: 2027-01-15T08:00:00Z.
inline constexpr Timestamp kT0 = FromUnixSeconds(1'800'000'000);

class NodeBuilder {
 public:
  explicit NodeBuilder(std::string name) : name_(std::move(name)) {}
  NodeBuilder& Type(std::string t) {
    type_ = std::move(t);
    return *this;
  }
  NodeBuilder& Gpus(uint32_t n) {
    gpus_ = n;
    return *this;
  }
  NodeBuilder& Block(std::string b) {
    block_ = std::move(b);
    return *this;
  }
  NodeBuilder& Site(std::string s) {
    site_ = std::move(s);
    return *this;
  }
  NodeBuilder& Cpus(int32_t c) {
    cpus_ = c;
    return *this;
  }
  NodeBuilder& MemoryMiB(int64_t m) {
    mem_ = m;
    return *this;
  }
  NodeBuilder& State(api::NodeState s) {
    state_ = s;
    return *this;
  }
  NodeBuilder& UnhealthyGpu(int index) {
    unhealthy_ |= core::GpuMask{1} << index;
    return *this;
  }
  NodeBuilder& Label(std::string l) {
    labels_.push_back(std::move(l));
    return *this;
  }
  // NVLink pairs: each pair is linked both ways.
  NodeBuilder& NvLink(int a, int b) {
    links_.emplace_back(a, b);
    return *this;
  }

 private:
  friend class ClusterBuilder;
  std::string name_, type_ = "h100", block_ = "b0", site_ = "s0";
  uint32_t gpus_ = 8;
  int32_t cpus_ = 128;
  int64_t mem_ = 1024 * 1024;
  api::NodeState state_ = api::NodeState::kUp;
  core::GpuMask unhealthy_ = 0;
  std::vector<std::string> labels_;
  std::vector<std::pair<int, int>> links_;
};
inline NodeBuilder MakeNode(std::string name) {
  return NodeBuilder(std::move(name));
}

class AccountBuilder {
 public:
  explicit AccountBuilder(std::string name) : name_(std::move(name)) {}
  AccountBuilder& Parent(std::string p) {
    parent_ = std::move(p);
    return *this;
  }
  AccountBuilder& Shares(double s) {
    shares_ = s;
    return *this;
  }
  AccountBuilder& Guaranteed(std::string type, int32_t gpus) {
    quota_[type].guaranteed = gpus;
    return *this;
  }
  AccountBuilder& Limit(std::string type, int32_t gpus) {
    quota_[type].limit = gpus;
    return *this;
  }
  // Decayed usage in normalised GPU-hours, as of `at` (default: the build's `now`).
  AccountBuilder& UsageGpuHours(double h, std::optional<Timestamp> at = std::nullopt) {
    usage_ = h * 3600.0;
    usage_at_ = at;
    return *this;
  }
  AccountBuilder& Budget(double gpu_hours, double consumed, Timestamp start, Timestamp end) {
    budget_ = core::Budget{gpu_hours, start, end, consumed};
    return *this;
  }
  AccountBuilder& OnBudgetExhausted(api::BudgetExhaustedPolicy p) {
    on_exhausted_ = p;
    return *this;
  }
  AccountBuilder& MaxRunningGpusPerUser(int32_t n) {
    max_user_gpus_ = n;
    return *this;
  }
  AccountBuilder& MaxPendingJobsPerUser(int32_t n) {
    max_user_pending_ = n;
    return *this;
  }
  AccountBuilder& PreemptionsLastHour(int32_t n) {
    preemptions_ = n;
    return *this;
  }

 private:
  friend class ClusterBuilder;
  std::string name_, parent_;
  double shares_ = 1;
  std::map<std::string, core::TypeQuota> quota_;
  double usage_ = 0;
  std::optional<Timestamp> usage_at_;
  std::optional<core::Budget> budget_;
  api::BudgetExhaustedPolicy on_exhausted_ = api::BudgetExhaustedPolicy::kPreemptible;
  int32_t max_user_gpus_ = core::kUnlimited, max_user_pending_ = core::kUnlimited;
  int32_t preemptions_ = 0;
};
inline AccountBuilder MakeAccount(std::string name) {
  return AccountBuilder(std::move(name));
}

class JobBuilder {
 public:
  explicit JobBuilder(uint64_t id) : id_(id) {}
  JobBuilder& Account(std::string a) {
    account_ = std::move(a);
    return *this;
  }
  JobBuilder& User(std::string u) {
    user_ = std::move(u);
    return *this;
  }
  JobBuilder& Gpus(int32_t per_node) {
    gpus_ = per_node;
    return *this;
  }
  JobBuilder& Nodes(int32_t n) {
    nodes_ = n;
    return *this;
  }
  JobBuilder& Type(std::string t) {
    types_.push_back(std::move(t));
    return *this;
  }
  JobBuilder& Cpus(int32_t c) {
    cpus_ = c;
    return *this;
  }
  JobBuilder& MemoryMiB(int64_t m) {
    mem_ = m;
    return *this;
  }
  JobBuilder& TimeLimit(Duration d) {
    time_limit_ = d;
    return *this;
  }
  JobBuilder& Class(api::PriorityClass c) {
    class_ = c;
    return *this;
  }
  JobBuilder& Topology(api::Topology t) {
    topology_ = t;
    return *this;
  }
  JobBuilder& Submitted(Timestamp t) {
    submit_ = t;
    return *this;
  }
  JobBuilder& Held(bool held = true) {
    held_ = held;
    return *this;
  }
  JobBuilder& DependsOn(api::DependencyType type, uint64_t job, api::JobState state) {
    deps_.push_back({type, JobId(job), state});
    return *this;
  }
  JobBuilder& Array(uint64_t parent, int32_t max_concurrent, int32_t running) {
    array_ = {parent, max_concurrent, running};
    return *this;
  }
  JobBuilder& AdminAdjustment(double a) {
    admin_ = a;
    return *this;
  }
  JobBuilder& Label(std::string l) {
    labels_.push_back(std::move(l));
    return *this;
  }
  JobBuilder& Attempts(uint32_t a) {
    attempt_ = a;
    return *this;
  }
  JobBuilder& Grace(Duration d) {
    grace_ = d;
    return *this;
  }

  // Running-job fields (used with `ClusterBuilder::AddRunning`).
  JobBuilder& On(std::string node, int32_t gpus = -1) {
    on_.emplace_back(std::move(node), gpus);
    return *this;
  }
  JobBuilder& Started(Timestamp t) {
    started_ = t;
    return *this;
  }
  JobBuilder& Checkpointed(Timestamp t) {
    checkpoint_ = t;
    return *this;
  }
  JobBuilder& Borrowing(bool b = true) {
    borrowing_ = b;
    return *this;
  }
  JobBuilder& Preemptible(bool p = true) {
    preemptible_ = p;
    return *this;
  }
  JobBuilder& Terminating(Timestamp deadline) {
    terminating_ = deadline;
    return *this;
  }

 private:
  friend class ClusterBuilder;
  uint64_t id_;
  std::string account_ = "a", user_ = "u";
  int32_t gpus_ = 1, nodes_ = 1, cpus_ = 0;
  int64_t mem_ = 0;
  std::vector<std::string> types_;
  Duration time_limit_ = Seconds(3600);
  api::PriorityClass class_ = api::PriorityClass::kNormal;
  api::Topology topology_ = api::Topology::kAny;
  std::optional<Timestamp> submit_;
  bool held_ = false;
  std::vector<core::Dependency> deps_;
  struct ArrayInfo {
    uint64_t parent = 0;
    int32_t max = 0, running = 0;
  } array_;
  double admin_ = 0;
  std::vector<std::string> labels_;
  uint32_t attempt_ = 0;
  Duration grace_ = Seconds(60);
  std::vector<std::pair<std::string, int32_t>> on_;
  std::optional<Timestamp> started_, checkpoint_, terminating_;
  bool borrowing_ = false, preemptible_ = false;
};
inline JobBuilder MakeJob(uint64_t id) {
  return JobBuilder(id);
}

class ClusterBuilder {
 public:
  ClusterBuilder& Now(Timestamp t) {
    now_ = t;
    return *this;
  }
  ClusterBuilder& GpuType(std::string name, double cost) {
    types_.push_back({std::move(name), cost});
    return *this;
  }
  ClusterBuilder& Add(NodeBuilder n) {
    nodes_.push_back(std::move(n));
    return *this;
  }
  // `count` nodes named `prefix`0..; `nodes_per_block` per block, `blocks_per_site` per site.
  ClusterBuilder& AddNodes(int count, const std::string& prefix, const std::string& type,
                           uint32_t gpus = 8, int nodes_per_block = 32, int blocks_per_site = 1000);
  ClusterBuilder& Add(AccountBuilder a) {
    accounts_.push_back(std::move(a));
    return *this;
  }
  ClusterBuilder& Add(JobBuilder j) {
    pending_.push_back(std::move(j));
    return *this;
  }
  ClusterBuilder& AddRunning(JobBuilder j) {
    running_.push_back(std::move(j));
    return *this;
  }

  core::Snapshot Build() const;

 private:
  Timestamp now_ = kT0;
  std::vector<core::GpuTypeInfo> types_;
  std::vector<NodeBuilder> nodes_;
  std::vector<AccountBuilder> accounts_;
  std::vector<JobBuilder> pending_, running_;
};

}  // namespace gsched::testutil
