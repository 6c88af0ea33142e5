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
//
// Cost: a pass that reserves nothing never looks at the running jobs. The first `Earliest` heaps
// their events (linear), one heap per GPU type since a search replays one type only, and every
// call sorts only as far into the future as it has to look, so a pass pays O(R + k log R) for R
// running allocations and the k earliest frees it needed, not a full sort of every running job
// (once a search has taken a quarter of a type's events, the rest are sorted at once, which is
// cheaper than popping them one by one). A search keeps its replay state, and the next search for
// the same shape on the same type in the pass resumes where it stopped, after applying what the
// pass changed since (`NodePool::changes`, starts added). That is exact: starts and reservations
// only take capacity at every future time (a start gives back at its end no more than it took), so
// the next fit of the shape is never earlier than the previous one. With a deep queue of a few
// shapes, the pass replays the frees about once per shape instead of once per reservation.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
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
  // With running job r's resources coming back at `running_end_ms[r]` (one entry per running
  // job) instead of at its time limit: the timeline of predicted ends that estimates use
  // (estimate.h). A job being preempted still frees at its deadline when that is earlier.
  Timeline(const Snapshot& snapshot, Timestamp now, std::vector<int64_t> running_end_ms);
  ~Timeline();
  Timeline(const Timeline&) = delete;
  Timeline& operator=(const Timeline&) = delete;
  void AddStart(const std::vector<NodeAllocation>& allocation, Timestamp end, const NodePool& pool);
  // `gpus` GPUs of `node` come back at `at` (>= now): the end of a hold that `NodePool::Reserve`
  // took, so that the hold lasts until `at` only. Takes nothing, like the end of a start.
  void AddRelease(uint32_t node, int32_t gpus, Timestamp at);
  // The earliest reservation for `shape` on `type`; nothing when it never fits, or not at or
  // before `until` (a caller that already holds a reservation at T asks only up to T - 1).
  // `pool` is the pass's pool, the same object on every call, changed only by `Commit` and
  // `Reserve` between calls.
  std::optional<Reservation> Earliest(const NodePool& pool, const Shape& shape, uint32_t type,
                                      JobId job, Timestamp until = Timestamp::max()) const;

 private:
  // The replay of one (pool, type, shape) search, stopped at its cursor: the last event applied.
  struct Search;
  static constexpr size_t kMaxSearches = 16;

  // Reads node types and healthy GPUs from the pool's compact arrays, not the snapshot's nodes.
  void Build(const NodePool& pool) const;
  // The i-th running event on nodes of `type` in time order, sorting on as far as needed; nullptr
  // past the last.
  const FreeEvent* Event(const NodePool& pool, uint32_t type, size_t i) const;
  // The kept search for (pool, type, shape), caught up with the pool's changes and the starts
  // added since it last ran; else a new one at `now` (replacing the least recently used).
  Search& SearchFor(const NodePool& pool, const Shape& shape, uint32_t type) const;
  void CatchUp(Search& s, const NodePool& pool) const;

  const Snapshot* snapshot_;
  int64_t now_ms_;
  std::vector<int64_t> running_end_ms_;  // Empty: at the time limits.
  mutable bool built_ = false;
  // Per GPU type (a search replays the frees of one type only): the earliest events in time
  // order, and the rest in a min-heap.
  mutable std::vector<std::vector<FreeEvent>> sorted_, heap_;
  std::map<int64_t, std::vector<FreeEvent>> added_;
  std::vector<FreeEvent> added_log_;  // The same events, in the order they were added.
  mutable std::vector<std::unique_ptr<Search>> searches_;
  mutable uint64_t search_clock_ = 0;
};

}  // namespace gsched::core
