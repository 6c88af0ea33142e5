// Scenarios in YAML for the simulation (sim/simulation.h) (Kueue's `generator.yaml` is the model):
// the cluster, the account tree, the policy and the jobs, explicit or as streams. Times are seconds
// from the start of the run.
//
//   name: gang-not-starved
//   config: {interval_s: 10, backfill_depth: 64, half_life_s: 3600,
//            preemption: {enabled: true, min_runtime_s: 600, max_per_cycle: 64}}
//   gpu_types: [{name: h100, cost: 1.0}]
//   nodes: [{prefix: n, count: 64, gpus: 8, type: h100, nodes_per_block: 64}]
//   accounts: [{name: a, shares: 1, guaranteed: {h100: 8}, limit: {h100: 16},
//               budget: {gpu_hours: 10, consumed: 10, start_s: -3600, end_s: 86400},
//               on_budget_exhausted: hold}]
//   jobs: [{id: 1, account: a, user: u, nodes: 64, gpus: 8, time_limit_s: 3600, run_s: 1800,
//           submit_s: 60, class: normal, topology: block}]
//   streams: [{first_id: 1000, count: 5000, every_s: 1, start_s: 0, account: b, user: v,
//              gpus: 1, time_limit_s: 900, run_s: 600, run_jitter_s: 120}]
//   run_s: 3600
//
// Policy keys left out take the policy defaults (scheduler/common/policy_defaults.h).
// Errors name the offending field (`jobs[3].account: unknown account`).
#pragma once

#include <memory>
#include <string>

#include "scheduler/common/status.h"
#include "sim/simulation.h"

namespace gsched::sim {

struct Scenario {
  std::string name;
  Duration run_for{0};
  std::unique_ptr<Simulation> simulation;  // Loaded, jobs submitted, not yet run.
};

Result<Scenario> LoadScenario(const std::string& path, Timestamp start);
Result<Scenario> ParseScenario(const std::string& yaml_text, Timestamp start);

}  // namespace gsched::sim
