// A synthetic trace for scale runs of `gsched-sim` (`--synthetic N`), seeded and documented:
//
//   shape         1 GPU 60%, 2 GPUs 10%, 4 GPUs 10%, 8 GPUs 15%, 2 x 8 3%, 8 x 8 1.5%,
//                 32 x 8 0.5% (mean 5.12 GPUs per job)
//   run time      exponential, mean 1 h, clamped to [1 min, 3 d]
//   GPU type      any type for half of the jobs; otherwise one type, drawn in proportion to the
//                 cluster's GPUs of each type
//   arrivals      Poisson at the rate that offers `load` x the cluster's GPUs:
//                 rate = load x GPUs / (5.12 x 3600 s)
//   account, user and time limit: left empty for the replay's rules (sim/replay.h).
//
// Job k draws from SplitMix64 of (seed, k), so a trace is the same for the same seed and count.
#pragma once

#include <cstdint>
#include <ostream>

#include "config/cluster_config.h"
#include "sim/trace.h"

namespace gsched::sim {

Trace SyntheticTrace(int64_t jobs, uint64_t seed, double load,
                     const config::ClusterConfig& cluster);

// Writes `trace` in the generic `csv` format (for inspection or reuse with `--trace`).
void WriteCsvTrace(const Trace& trace, std::ostream& out);

}  // namespace gsched::sim
