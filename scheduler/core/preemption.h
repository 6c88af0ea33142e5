// Preemption that reclaims guarantees (DESIGN.md section 3, phase 7).
//
// For a job within its account's guarantee that does not fit, `PreemptionPlanner::Choose` looks
// for nodes where freeing victims makes it fit. Victims are running jobs of other accounts that
// borrow or are preemptible (by flag or class), that ran at least `preemption.min_runtime`, that
// are not already being preempted, and whose account is under its hourly cap. A victim's lost work
// is its GPUs (on every node: a gang restarts whole) x its time since start or last checkpoint.
// On each node the victims are taken in order of least lost work per GPU they free there, then
// lowest priority, until the job fits; the nodes whose victims lose the least work in all (then
// the fewest victims) win. GPUs of jobs already terminating count as coming free at no cost, so a
// preemptor waiting for its victims is not given new ones.
//
// `Choose` finds the cheapest choice; whether it pays for the work it destroys is the caller's
// decision (`preemption.reclaim_wait_factor`).
//
// Gangs (simplified): each node is costed on its own and the cheapest `nodes` nodes are taken,
// inside one block or site when the job's topology asks for it; victims spanning several nodes may
// free more than needed. The preemptor does not start in the same plan: it gets a reservation on
// the chosen nodes from the moment the victims' grace periods end. Single-threaded; one pass.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "scheduler/core/placement.h"
#include "scheduler/core/policy_config.h"

namespace gsched::core {

struct VictimChoice {
  std::vector<uint32_t> victims;  // Indices into `Snapshot::running`.
  std::vector<uint32_t> nodes;
  // When the victims (and jobs already terminating there) are gone.
  Timestamp ready_at;
  // GPU-milliseconds of work the victims lose.
  int64_t lost_gpu_ms = 0;
};

class PreemptionPlanner {
 public:
  // `running_priority[i]`: priority of `snapshot.running[i]`, for ordering victims.
  PreemptionPlanner(const Snapshot& snapshot, const PolicyConfig& config, Timestamp now,
                    std::vector<double> running_priority);

  std::optional<VictimChoice> Choose(const NodePool& pool, const Shape& shape, uint32_t type,
                                     uint32_t preemptor_account) const;
  void Commit(const VictimChoice& choice);
  int32_t victims_this_cycle() const { return victims_this_cycle_; }
  bool CapReached() const { return victims_this_cycle_ >= config_.preemption.max_per_cycle; }

 private:
  struct NodeCost {
    bool feasible = false;
    int32_t victims = 0;
    int64_t lost_gpu_ms = 0;
    Timestamp ready;
    // The victims: `victims_` [jobs_begin, jobs_begin + victims).
    uint32_t jobs_begin = 0;
  };
  // Appends the node's victims to `victims_` (only when feasible).
  NodeCost CostOn(const NodePool& pool, uint32_t node, const Shape& shape,
                  uint32_t preemptor_account) const;
  bool Eligible(uint32_t r, uint32_t preemptor_account) const;
  int64_t WorkLostMs(uint32_t r) const;
  // `WorkLostMs` x the victim's GPUs on every node.
  int64_t LostGpuMs(uint32_t r) const;

  const Snapshot& snapshot_;
  const PolicyConfig& config_;
  Timestamp now_;
  std::vector<double> priority_;
  std::vector<uint32_t> node_start_, node_jobs_;  // CSR: running jobs per node.
  std::vector<uint8_t> taken_;
  // Scratch of `CostOn` and `Choose`, allocated once per pass: one node's options, and the
  // victims of every feasible node of one `Choose`.
  mutable std::vector<uint32_t> options_, option_order_, victims_;
  mutable std::vector<std::pair<int64_t, int64_t>> option_cost_;
  std::vector<int32_t> taken_per_account_;
  int32_t victims_this_cycle_ = 0;
};

}  // namespace gsched::core
