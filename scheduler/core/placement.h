// `NodePool`: the free state of every node during one pass, and placement (DESIGN.md section 3,
// phase 5).
//
// Layout: per-node state in contiguous arrays (free GPU mask, free CPUs and memory, reserved GPU
// count); schedulable nodes sit in per-(GPU type, usable free GPUs) buckets, so best fit for a
// g-GPU job is "the first non-empty bucket >= g whose node has the CPUs and memory", and every
// block keeps a histogram of its nodes' usable free GPUs so that gang search skips blocks that
// cannot hold the gang. "Usable" = free minus GPUs reserved for higher jobs (backfill); a job that
// ends before a node's earliest reservation may use the reserved GPUs too.
//
// Policy: single-node jobs take the node left with the fewest free GPUs (best fit), and among
// equally good nodes (the first `kTieBreakScan` of the bucket) the one whose block has the fewest
// free GPUs, so whole nodes and blocks stay free for gangs; gangs go all or nothing to the tightest
// block (fewest candidate nodes) that holds them, else (unless `topology: block`) the tightest
// site, else (unless `topology: site`) anywhere, always preferring the nodes with the fewest
// leftover GPUs. Inside a node, NVLink-connected GPU sets are preferred when the node reports its
// links. Integer arithmetic only. Single-threaded; lives for one pass.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "scheduler/core/model.h"

namespace gsched::core {

struct Shape {
  int32_t nodes = 1;
  int32_t gpus_per_node = 1;
  int32_t cpus_per_node = 0;
  int64_t memory_mib_per_node = 0;
  api::Topology topology = api::Topology::kAny;
  LabelMask labels = 0;
  bool operator==(const Shape&) const = default;
};

Shape ShapeOf(const PendingJobInfo& job);

struct Placement {
  uint32_t gpu_type = 0;
  std::vector<NodeAllocation> nodes;
};

// Picks `count` GPUs out of `free`: with NVLink links known, the set with the most links inside it
// (ties: lowest indices), else the lowest indices.
GpuMask ChooseGpus(GpuMask free, int count, const std::vector<GpuMask>& nvlink);

// What the cluster offers a shape, for explanations.
struct CapacityReport {
  int64_t free_total = 0;  // Free healthy GPUs of the type on schedulable nodes.
  int64_t largest_node = 0;
  int64_t largest_block = 0;
  int64_t largest_site = 0;
  // Free GPUs that are unhealthy or sit on nodes that are `down` or `unhealthy`.
  int64_t unhealthy_free = 0;
  // Nodes of the type (any state) with at least `gpus_per_node` GPUs: fewer than the job's
  // `nodes` means it cannot run on the cluster as it is.
  int64_t big_enough_nodes = 0;
};

// One change a pass made to a node: the change of its usable GPUs (free minus reserved), free
// CPUs and free memory. Starts and reservations only take, so every field is <= 0.
struct PoolChange {
  uint32_t node = 0;
  int32_t usable_gpus = 0;
  int32_t cpus = 0;
  int64_t memory_mib = 0;
};

class NodePool {
 public:
  explicit NodePool(const Snapshot& snapshot);
  // With the running jobs' use per node already summed (`SumRunning(snapshot).nodes`).
  NodePool(const Snapshot& snapshot, const std::vector<NodeUse>& use);

  // The best placement of `shape` on GPU type `type` for a job that would end at `end`; nothing
  // when it does not fit. With `respect_reservations = false` reservations are ignored.
  std::optional<Placement> Find(const Shape& shape, uint32_t type, Timestamp end,
                                bool respect_reservations = true) const;
  void Commit(const Placement& placement);
  // Holds `gpus` GPUs of `node` from `from` on for a higher job.
  void Reserve(uint32_t node, int32_t gpus, Timestamp from, JobId job);

  CapacityReport Capacity(const Shape& shape, uint32_t type) const;

  size_t node_count() const { return type_.size(); }
  bool Schedulable(uint32_t n) const { return schedulable_[n]; }
  uint32_t Type(uint32_t n) const { return type_[n]; }
  uint32_t Block(uint32_t n) const { return block_[n]; }
  uint32_t Site(uint32_t n) const { return site_[n]; }
  bool Matches(uint32_t n, uint32_t type, const Shape& s) const {
    return schedulable_[n] && type_[n] == type && (labels_[n] & s.labels) == s.labels;
  }
  int32_t FreeGpus(uint32_t n) const { return Popcount(free_mask_[n]); }
  // Free minus reserved; negative when reservations count on GPUs still busy.
  int32_t UsableGpus(uint32_t n) const { return FreeGpus(n) - reserved_[n]; }
  GpuMask FreeMask(uint32_t n) const { return free_mask_[n]; }
  int32_t FreeCpus(uint32_t n) const { return free_cpus_[n]; }
  int64_t FreeMemory(uint32_t n) const { return free_mem_[n]; }
  int32_t Reserved(uint32_t n) const { return reserved_[n]; }
  Timestamp ReservedFrom(uint32_t n) const { return FromUnixMillis(reserved_from_[n]); }
  JobId ReservedBy(uint32_t n) const { return reserved_by_[n]; }
  GpuMask HealthyMask(uint32_t n) const { return healthy_mask_[n]; }
  // Free healthy GPUs of a type on schedulable nodes, reservations not subtracted.
  int64_t FreeOfType(uint32_t type) const { return free_by_type_[type]; }
  size_t block_count() const { return block_start_.size() - 1; }
  // The nodes of block b, in index order.
  std::span<const uint32_t> BlockNodes(uint32_t b) const {
    return {block_list_.data() + block_start_[b], block_start_[b + 1] - block_start_[b]};
  }
  size_t site_count() const { return site_count_; }
  // Every `Commit` and `Reserve` so far, in order: lets a backfill search made earlier in the
  // pass catch up instead of starting over.
  const std::vector<PoolChange>& changes() const { return changes_; }

 private:
  static constexpr int kMaxGpus = 64;
  static constexpr int kTieBreakScan = 16;
  size_t BucketIndex(uint32_t type, int c) const { return size_t{type} * (kMaxGpus + 1) + c; }
  int BucketKey(uint32_t n) const;
  void Unbucket(uint32_t n);
  void Rebucket(uint32_t n);
  bool FitsHost(uint32_t n, const Shape& s) const {
    return free_cpus_[n] >= s.cpus_per_node && free_mem_[n] >= s.memory_mib_per_node;
  }
  bool Candidate(uint32_t n, uint32_t type, const Shape& s, int64_t end_ms, bool respect) const;
  std::optional<Placement> FindSingle(const Shape& s, uint32_t type, int64_t end_ms,
                                      bool respect) const;
  std::optional<Placement> FindGang(const Shape& s, uint32_t type, int64_t end_ms,
                                    bool respect) const;
  NodeAllocation Allocate(uint32_t n, const Shape& s) const;

  const Snapshot* snapshot_;
  std::vector<uint32_t> type_, block_, site_;
  std::vector<LabelMask> labels_;
  std::vector<uint8_t> schedulable_;
  std::vector<GpuMask> free_mask_, healthy_mask_;
  std::vector<int32_t> free_cpus_;
  std::vector<int64_t> free_mem_;
  std::vector<int32_t> reserved_;
  std::vector<int64_t> reserved_from_;
  std::vector<JobId> reserved_by_;
  std::vector<int64_t> free_by_type_;
  // Buckets of schedulable nodes by (type, clamped usable free GPUs).
  std::vector<std::vector<uint32_t>> buckets_;
  std::vector<int32_t> bucket_key_;  // -1: in no bucket.
  std::vector<uint32_t> bucket_pos_;
  std::vector<uint32_t> block_start_, block_list_;  // CSR: block b's nodes.
  std::vector<int32_t> block_hist_;  // blocks x 65: schedulable nodes by usable free GPUs.
  std::vector<int32_t> block_reserved_nodes_;
  std::vector<TypeMask> block_types_;
  std::vector<std::vector<uint32_t>> reserved_nodes_by_type_;
  std::vector<int64_t> block_free_;  // Free GPUs per block, for the tie-break of best fit.
  size_t site_count_ = 0;
  std::vector<PoolChange> changes_;
};

}  // namespace gsched::core
