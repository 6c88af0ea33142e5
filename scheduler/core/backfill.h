// Backfill (DESIGN.md section 3, phase 6): the `Timeline` of future frees and the earliest
// reservation for a blocked job.
//
// The timeline holds one event per (running job, node): at `start + time_limit` (or the deadline
// of a job already being preempted; never before `now`) the job's healthy GPUs, CPUs and memory on
// that node come back. Jobs started in this pass are added as they start. `Earliest` replays the
// events in time order over the pool's usable capacity (free minus GPUs already reserved for
// higher jobs) and returns the first time at which the shape fits, with the nodes it would take
// (same domain rules as placement: a block, a site or anywhere). Reservations are counted as
// held from their start on, never released: conservative, so an `estimated_start` may be late but
// a reservation is never promised capacity that is not there. Single-threaded; one pass.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "scheduler/core/placement.h"

namespace gsched::core {

struct FreeEvent {
  int64_t at_ms = 0;
  uint32_t node = 0;
  int32_t gpus = 0;
  int32_t cpus = 0;
  int64_t memory_mib = 0;
};

struct ReservedNode {
  uint32_t node = 0;
  int32_t gpus = 0;
};

struct Reservation {
  JobId job;
  uint32_t gpu_type = 0;
  Timestamp start;
  std::vector<ReservedNode> nodes;
};

class Timeline {
 public:
  Timeline(const Snapshot& snapshot, Timestamp now);
  void AddStart(const std::vector<NodeAllocation>& allocation, Timestamp end, const NodePool& pool);
  std::optional<Reservation> Earliest(const NodePool& pool, const Shape& shape, uint32_t type,
                                      JobId job) const;
  size_t size() const { return events_.size() + added_count_; }

 private:
  int64_t now_ms_;
  std::vector<FreeEvent> events_;  // Sorted by time.
  std::map<int64_t, std::vector<FreeEvent>> added_;
  size_t added_count_ = 0;
};

}  // namespace gsched::core
