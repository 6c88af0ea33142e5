// Synthetic clusters and job streams for benchmarks and property tests: a national-pool-shaped
// snapshot (sites > blocks of 32 nodes > nodes of 8 GPUs, three GPU types, an account tree of
// institutions > projects, many users) with a chosen fraction of the GPUs busy and a queue of
// mixed shapes. Deterministic for a given seed.
#pragma once

#include <cstdint>

#include "scheduler/core/model.h"
#include "tests/testutil/builders.h"

namespace gsched::testutil {

struct SyntheticSpec {
  int nodes = 6250;
  int gpus_per_node = 8;
  int nodes_per_block = 32;
  int sites = 4;
  int institutions = 10;
  int accounts = 50;  // Leaf projects, spread over the institutions.
  int users = 1000;
  int pending = 100000;
  double busy_fraction = 0.5;  // Of the nodes, filled with running jobs.
  bool quotas = true;          // Guarantees and limits on the projects.
  uint64_t seed = 1;
  Timestamp now = kT0;
};

core::Snapshot MakeSyntheticCluster(const SyntheticSpec& spec);

}  // namespace gsched::testutil
