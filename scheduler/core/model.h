// The snapshot the scheduling core decides over (DESIGN.md section 2): topology, GPU types, the
// account tree and the pending and running jobs. Index-based: nodes, blocks, sites, accounts,
// users, labels and GPU types refer to each other by dense `uint32_t` indices into the vectors of
// the `Snapshot`; names are kept for output only. The server builds a snapshot from its state, the
// simulator from its virtual cluster; the core only reads it.
//
// Invariants (checked by `ValidateSnapshot`): every index is in range, a node has at most 64 GPUs
// (GPU sets are `uint64_t` masks), there are at most 64 GPU types and 64 labels, and the account
// tree has no cycle (parents may appear in any order). The GPUs, CPUs and memory in use on a node
// are derived from the running jobs' allocations, so the two can never disagree.
//
// Threading: plain values; a snapshot is immutable once handed to `Schedule()` and may be read
// from several threads.
#pragma once

#include <array>
#include <boost/container/small_vector.hpp>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "scheduler/api/enums.h"
#include "scheduler/common/clock.h"
#include "scheduler/common/ids.h"
#include "scheduler/common/status.h"

namespace gsched::core {

using GpuMask = uint64_t;    // Bit i = GPU index i of one node.
using TypeMask = uint64_t;   // Bit t = GPU type index t of the snapshot.
using LabelMask = uint64_t;  // Bit l = label index l of the snapshot.

inline constexpr uint32_t kNoParent = std::numeric_limits<uint32_t>::max();
inline constexpr int32_t kUnlimited = std::numeric_limits<int32_t>::max();
inline constexpr TypeMask kAnyType = ~TypeMask{0};

struct GpuTypeInfo {
  std::string name;
  // Normalised GPU-hours per GPU-hour (b200 = 2.0, h100 = 1.0).
  double cost = 1.0;
};

struct BlockInfo {
  std::string name;
  uint32_t site = 0;
};

struct NodeInfo {
  std::string name;
  uint32_t site = 0;
  uint32_t block = 0;
  uint32_t gpu_type = 0;
  uint32_t gpu_count = 8;
  GpuMask unhealthy_gpus = 0;
  int32_t cpus = 64;
  int64_t memory_mib = 512 * 1024;
  api::NodeState state = api::NodeState::kUp;
  // `nvlink[i]` = GPUs linked to GPU i by NVLink; empty when the worker did not report it.
  std::vector<GpuMask> nvlink;
  LabelMask labels = 0;
};

struct TypeQuota {
  int32_t guaranteed = 0;
  int32_t limit = kUnlimited;
};

struct Budget {
  double gpu_hours = 0;  // Normalised GPU-hours granted for [start, end).
  Timestamp start;
  Timestamp end;
  double consumed_gpu_hours = 0;  // Consumed in the period so far.
};

// Normalised GPU-seconds as of `at`; decayed on read with the half-life.
struct UsageRecord {
  double value = 0;
  Timestamp at;
};

struct AccountInfo {
  std::string name;
  uint32_t parent = kNoParent;
  double shares = 1;
  // Indexed by GPU type. Empty: this level neither limits nor guarantees anything.
  std::vector<TypeQuota> quota;
  std::optional<Budget> budget;
  api::BudgetExhaustedPolicy on_budget_exhausted = api::BudgetExhaustedPolicy::kPreemptible;
  int32_t max_running_gpus_per_user = kUnlimited;
  int32_t max_pending_jobs_per_user = kUnlimited;
  // The account's own usage; a parent's fair-share usage is the sum over its subtree.
  UsageRecord usage;
  // Jobs of this account preempted in the last hour (for the per-account cap).
  int32_t preemptions_last_hour = 0;
};

struct Dependency {
  api::DependencyType type = api::DependencyType::kAfterOk;
  JobId job;
  api::JobState state = api::JobState::kPending;  // Current state of `job`.
};

struct PendingJobInfo {
  JobId id;
  uint32_t account = 0;
  uint32_t user = 0;
  int32_t nodes = 1;
  int32_t gpus_per_node = 1;
  TypeMask gpu_types = kAnyType;  // Acceptable GPU types.
  int32_t cpus_per_node = 0;
  int64_t memory_mib_per_node = 0;
  Duration time_limit{0};  // 0: the class default.
  api::PriorityClass priority_class = api::PriorityClass::kNormal;
  api::Topology topology = api::Topology::kAny;
  Timestamp submit_time;
  bool held = false;
  std::vector<Dependency> dependencies;
  JobId array_parent;                // 0: not an array task.
  int32_t array_max_concurrent = 0;  // 0: unthrottled.
  int32_t array_running = 0;         // Tasks of the array running now.
  double admin_adjustment = 0;
  LabelMask required_labels = 0;
  Attempt attempt;  // Previous attempts; a start gets `attempt + 1`.
  Duration grace_period = Seconds(60);
  // When positive, the run time the estimated starts assume for this job instead of a prediction
  // (run_time_prediction.h). Only the simulator sets it (`--estimate-oracle`: the true run time),
  // to measure what estimates with perfect run-time knowledge would achieve.
  Duration known_run_time{0};
};

struct NodeAllocation {
  uint32_t node = 0;
  GpuMask gpus = 0;
  int32_t cpus = 0;
  int64_t memory_mib = 0;
};

struct RunningJobInfo {
  JobId id;
  Attempt attempt;
  uint32_t account = 0;
  uint32_t user = 0;
  // Inline for a one-node job (most of them): a pass walks every running job's allocation
  // several times, and one heap block per job scattered over a large heap made those walks
  // mostly cache misses.
  boost::container::small_vector<NodeAllocation, 1> allocation;
  Timestamp start_time;
  Duration time_limit{0};
  std::optional<Timestamp> last_checkpoint;
  api::PriorityClass priority_class = api::PriorityClass::kNormal;
  bool borrowing = false;
  bool preemptible = false;
  Duration grace_period = Seconds(60);
  // Set once a preemption was sent: the job is gone by then and is not chosen again.
  std::optional<Timestamp> terminating_deadline;
  Duration known_run_time{0};  // As `PendingJobInfo::known_run_time`.
};

// Time-limit classes of the run-time predictions (run_time_prediction.h): a limit under 30 min,
// under 1 h, under 2 h, ... doubling, the last class open-ended.
inline constexpr size_t kRunTimeLimitClasses = 12;

struct Snapshot {
  std::vector<GpuTypeInfo> gpu_types;
  std::vector<std::string> sites;
  std::vector<BlockInfo> blocks;
  std::vector<NodeInfo> nodes;
  std::vector<AccountInfo> accounts;
  std::vector<std::string> users;
  // Per user (indexed like `users`; may be shorter): the fraction of their time limits that the
  // user's recent jobs used, in (0, 1], for the estimated starts (run_time_prediction.h). A user
  // without an entry is predicted to run to the limit.
  std::vector<double> user_run_time_ratio;
  // The same per user and time-limit class (`RunTimeLimitClass`): the ratio of the user's recent
  // jobs whose limit fell in that class, 0 where the user has none (then `user_run_time_ratio`
  // stands). Indexed like `users`; may be shorter.
  std::vector<std::array<float, kRunTimeLimitClasses>> user_limit_run_time_ratio;
  std::vector<std::string> labels;
  std::vector<PendingJobInfo> pending;
  std::vector<RunningJobInfo> running;
};

inline int Popcount(uint64_t m) {
  return __builtin_popcountll(m);
}

// Total GPUs a job asks for.
inline int64_t RequestedGpus(const PendingJobInfo& j) {
  return int64_t{j.nodes} * j.gpus_per_node;
}

// What the running jobs hold on one node.
struct NodeUse {
  GpuMask gpus = 0;
  int32_t cpus = 0;
  int64_t memory_mib = 0;
};

// The running jobs' allocations summed in one walk over them: a pass needs these sums in several
// places, and with thousands of running jobs the walks, not the sums, are what costs.
struct RunningSums {
  std::vector<NodeUse> nodes;              // Per node.
  std::vector<int64_t> account_type_gpus;  // accounts x GPU types, row-major.
  // (account << 32 | user) -> running GPUs, for the accounts that cap a user's running GPUs.
  std::unordered_map<uint64_t, int64_t> capped_user_gpus;
};
RunningSums SumRunning(const Snapshot& s);

// The account chain of `account`, leaf first, root last.
std::vector<uint32_t> AccountChain(const Snapshot& s, uint32_t account);

// Checks the invariants listed at the top of this file; the error names the offending field.
Status ValidateSnapshot(const Snapshot& s);

}  // namespace gsched::core
