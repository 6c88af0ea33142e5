// Estimated starts (DESIGN.md section 3, phase 8): when a blocked job is likely to start, on a
// timeline of predicted ends (run_time_prediction.h) rather than of time limits.
//
// The backfill reservations stay on time limits: they are promises, and a promise may only count
// on what is certain. An estimate is a forecast, and a forecast built on limits is late by about
// the slack users leave in them. So after the pass, the jobs that got a reservation (and only
// those: they are the ones that get an estimate at all, at most `backfill.depth` per pass) are
// placed again, in priority order, on a second timeline: the pool as the pass leaves it (its
// starts committed, no reservations), running jobs and this pass's starts freeing at their
// predicted ends, and each job holding what it would take from now until its own predicted end
// (as a reservation holds GPUs from now on, but released when the job is predicted to end, where
// a reservation is never released). The estimate is the earlier of that start and the
// reservation's: the reservation is a bound that the job is promised.
//
// Cost: a pool and a heap of the running jobs' predicted ends, built only when some job got a
// reservation, plus one search per such job; the same order as the backfill phase itself.
// Pure and single-threaded.
#pragma once

#include <optional>
#include <span>
#include <vector>

#include "scheduler/core/model.h"
#include "scheduler/core/placement.h"

namespace gsched::core {

// A job started in this pass: where, and when it is predicted to end.
struct StartedAllocation {
  uint32_t gpu_type = 0;
  std::span<const NodeAllocation> nodes;
  Timestamp predicted_end;
};

// A job that got a reservation, in priority order.
struct EstimateRequest {
  Shape shape;
  TypeMask types = 0;  // The GPU types it may start on.
  Duration predicted_run{0};
  Timestamp reserved_start;  // The reservation's start: the estimate is never later.
};

// One estimate per request, in the same order. `use`: the running jobs' use per node
// (`SumRunning(snapshot).nodes`).
std::vector<Timestamp> EstimateStarts(const Snapshot& snapshot, const std::vector<NodeUse>& use,
                                      std::span<const StartedAllocation> started,
                                      std::span<const EstimateRequest> requests, Timestamp now);

}  // namespace gsched::core
