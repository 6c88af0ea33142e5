#include "scheduler/core/estimate.h"

#include <algorithm>
#include <chrono>

#include "scheduler/core/backfill.h"
#include "scheduler/core/run_time_prediction.h"

namespace gsched::core {

std::vector<Timestamp> EstimateStarts(const Snapshot& snapshot, const std::vector<NodeUse>& use,
                                      std::span<const StartedAllocation> started,
                                      std::span<const EstimateRequest> requests, Timestamp now) {
  std::vector<Timestamp> out;
  out.reserve(requests.size());
  if (requests.empty())
    return out;
  // 1. The pool as the pass leaves it, without its reservations.
  NodePool pool(snapshot, use);
  for (const StartedAllocation& st : started)
    pool.Commit(Placement{st.gpu_type, {st.nodes.begin(), st.nodes.end()}});
  // 2. Running jobs free at their predicted ends, this pass's starts too.
  std::vector<int64_t> ends;
  ends.reserve(snapshot.running.size());
  for (const RunningJobInfo& job : snapshot.running)
    ends.push_back(ToUnixMillis(PredictedEnd(snapshot, job, now)));
  Timeline timeline(snapshot, now, std::move(ends));
  for (const StartedAllocation& st : started)
    timeline.AddStart({st.nodes.begin(), st.nodes.end()}, st.predicted_end, pool);
  // 3. The reserved jobs in priority order, each holding its nodes until its predicted end.
  for (const EstimateRequest& req : requests) {
    std::optional<Reservation> best;
    for (TypeMask m = req.types; m; m &= m - 1) {
      const uint32_t t = static_cast<uint32_t>(__builtin_ctzll(m));
      const Timestamp until =
          best ? best->start - std::chrono::milliseconds(1) : req.reserved_start;
      if (auto r = timeline.Earliest(pool, req.shape, t, JobId(), until);
          r && (!best || r->start < best->start))
        best = std::move(r);
    }
    if (!best) {
      // Not before the reservation on this timeline (possible: the holds differ); the
      // reservation's start it is, holding nothing here.
      out.push_back(req.reserved_start);
      continue;
    }
    out.push_back(best->start);
    for (const ReservedNode& rn : best->nodes) {
      pool.Reserve(rn.node, rn.gpus, best->start, JobId());
      timeline.AddRelease(rn.node, rn.gpus, best->start + req.predicted_run);
    }
  }
  return out;
}

}  // namespace gsched::core
