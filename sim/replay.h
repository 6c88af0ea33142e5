// A trace replay: the inputs of `gsched-sim` (cluster, accounts, scheduler config, trace, policy,
// seed) turned into a `Simulation`, run until every job is done, and measured.
//
// Rules for what a trace does not say (all deterministic for a given `--seed`):
//   - Account and user. Job i (0-based, in trace order) draws h = SplitMix64(SplitMix64(seed) + i).
//     Without an account it goes to leaf number h mod L among the L leaf accounts (in the accounts
//     file's order); without a user, to user number (h >> 32) mod U of that leaf, where a leaf's
//     users are those listed in the accounts file, else `LEAF-u1` .. `LEAF-u4`. A job that names
//     a user but no account goes to the first leaf listing that user, else by the rule.
//     Without `--accounts`, the accounts are the ones the trace names (leaves under root, 1 share
//     each), or one account `default` when it names none.
//   - Time limit. ceil(2 x run time / 15 min) x 15 min: users ask for about twice what they
//     need, in quarter hours; capped at the class's `max_time_limit` (a job that runs longer hits
//     its limit and ends as a timeout). A trace limit above the class maximum is a submission the
//     daemon rejects: the job is skipped.
//   - Grace period: `preemption.default_grace_period`; topology `any`; no dependencies.
//   - A job no node set of the cluster can ever hold (GPU type, GPUs, CPUs or memory per node, or
//     more nodes than there are) is skipped, as the daemon would leave it pending for ever.
//
// Policies (`--policy`):
//   fairshare   the configured policy, as the daemon runs it;
//   fifo        priority = submit order (all weights 0), no backfill reservations, no preemption;
//               note that the core's `backfill.enabled: false` still starts a later job that fits
//               when an earlier one does not (greedy FIFO, not head-of-line blocking);
//   sjf-oracle  shortest run time first, known in advance (weights 0, admin adjustment = -run
//               time in seconds), backfill as configured, no preemption: a reference bound.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "config/accounts_config.h"
#include "config/cluster_config.h"
#include "config/scheduler_config.h"
#include "scheduler/core/model.h"
#include "sim/simulation.h"
#include "sim/trace.h"

namespace gsched::sim {

enum class Policy : uint8_t { kFairshare, kFifo, kSjfOracle };
Result<Policy> ParsePolicy(std::string_view name);
std::string_view PolicyName(Policy p);

uint64_t SplitMix64(uint64_t x);

// The fixed virtual start of every replay: 2027-01-15T08:00:00Z (trace time 0).
inline constexpr Timestamp kReplayStart = FromUnixSeconds(1'800'000'000);

// Where a long replay is, for a progress line.
struct ReplayProgress {
  size_t arrived = 0;
  size_t jobs = 0;
  size_t pending = 0;
  size_t running = 0;
  int64_t passes = 0;
  double simulated_s = 0;  // Virtual time since the start.
  double wall_s = 0;
};

struct ReplayOptions {
  Policy policy = Policy::kFairshare;
  uint64_t seed = 1;
  // Arrivals are divided by this (durations are kept): 10 = ten times the arrival rate.
  double arrival_scale = 1.0;
  // The estimated starts assume every job's true run time instead of predicting it (an experiment:
  // the bound that perfect run-time knowledge gives; the schedule itself does not change).
  bool estimate_oracle = false;
  // When set, one CSV row per preemption planned (header first): when, the victim (its account,
  // GPUs, how long its attempt had run, whether it was borrowing) and the job it made room for
  // (its account, GPUs, how long it had waited). For studying what reclaiming costs.
  std::ostream* preemption_log = nullptr;
  // Called after a pass at most once per `progress_every` of wall time (when set).
  std::function<void(const ReplayProgress&)> progress;
  std::chrono::milliseconds progress_every{10'000};
};

// `policy` applied on top of the configured one.
core::PolicyConfig PolicyFor(Policy policy, const config::SchedulerConfig& config);

struct PreparedReplay {
  core::Snapshot cluster;  // Topology, GPU types, accounts, users; no jobs.
  SimConfig config;
  std::vector<core::PendingJobInfo> jobs;
  std::vector<Duration> run_times;  // Parallel to `jobs`.
  std::map<std::string, int64_t> skipped;
  std::string trace_source;
};

// `accounts` may be null (see the rules above).
Result<PreparedReplay> PrepareReplay(const config::ClusterConfig& cluster,
                                     const config::AccountsConfig* accounts,
                                     const config::SchedulerConfig& scheduler, const Trace& trace,
                                     const ReplayOptions& options);

struct AccountSummary {
  std::string name;
  int64_t jobs = 0;
  double target_share = 0;  // See `TargetShares` (sim/metrics.h).
  // Share of the normalised GPU-seconds delivered while jobs waited (a pass had left at least one
  // pending): where the policy had a choice to make. (Over a whole trace every job finishes, so a
  // share of all that was delivered is only the share of the demand.) Over the whole run when
  // nobody ever waited.
  double achieved_share = 0;
  double mean_wait_s = 0;
  double gpu_hours = 0;
  // Time-averaged over the time jobs waited, in normalised GPUs: what the account held, and what
  // it was entitled to (sim/metrics.h).
  double allocated_gpus = 0;
  double entitled_gpus = 0;
};

// Waits of the jobs of one size class (sim/metrics.h `SizeClass`).
struct SizeClassWaits {
  std::string name;
  int64_t jobs = 0;  // That started.
  double p50_wait_s = 0, p95_wait_s = 0, p99_wait_s = 0, max_wait_s = 0;
};

struct TypeUtilization {
  std::string name;
  int64_t gpus = 0;
  double utilization = 0;  // Busy GPU-seconds / (GPUs x makespan).
};

struct ReplaySummary {
  // Inputs.
  std::string policy;
  uint64_t seed = 0;
  double arrival_scale = 1;
  int64_t nodes = 0;
  int64_t gpus = 0;
  std::map<std::string, int64_t> skipped;
  // Outcomes.
  int64_t jobs = 0;       // Submitted.
  int64_t completed = 0;  // Finished (timeouts included).
  int64_t timeouts = 0;
  int64_t unstarted = 0;  // Never started (stalled: they could never fit their limits).
  double makespan_s = 0;  // First submit to last finish.
  double mean_wait_s = 0, p50_wait_s = 0, p95_wait_s = 0, p99_wait_s = 0, max_wait_s = 0;
  double mean_jct_s = 0, p50_jct_s = 0;
  double mean_bounded_slowdown = 0;
  double gpu_utilization = 0;
  double fragmentation = 0;
  // Over passes that left jobs waiting, time-averaged (sim/metrics.h): Jain's index over each
  // account's allocated / entitled; the fair-share error; the same error over the time every
  // account that asked for GPUs had a job waiting (backlogged), and how long that was.
  double jain_fairness = 1;
  double fair_share_error = 0;
  double fair_share_error_backlogged = 0;
  // The part of `fair_share_error_backlogged` that is GPUs held above entitlements: held by
  // running jobs, it shrinks only as they end (or by preemption, which only restores guarantees).
  // The rest is entitlements not yet given: GPUs no waiting job of the account owed them can use
  // yet (stranded, or held by the over-entitled).
  double fair_share_error_overheld = 0;
  double contended_s = 0;
  double backlogged_s = 0;
  std::vector<SizeClassWaits> waits_by_size;
  // Time-averaged fraction of the GPUs free while a pending job whose shape fits them (type,
  // GPUs, CPUs and memory per node, enough such nodes for a gang) waits, over the makespan;
  // counted after passes that left an eligible job (not held, nor waiting on a dependency, its
  // budget or a per-user limit) waiting, and some job waiting for capacity rather than for its
  // account's quota (a job at its limit cannot use free GPUs).
  double idle_while_waiting = 0;
  std::vector<TypeUtilization> utilization_by_type;
  // GPU-hours (raw) run by all attempts, and by the attempts that were preempted (work lost).
  double delivered_gpu_hours = 0;
  double preempted_gpu_hours = 0;
  // Estimated starts given to pending jobs against their next real start (sim/metrics.h).
  double estimates = 0;  // How many were given (to jobs that then started).
  double estimate_p50_error_s = 0;
  double estimate_p90_error_s = 0;
  double estimates_within_20pct = 0;  // Fraction, 0..1.
  // Fraction of the estimates later than the real start (pessimistic: the backfill timeline
  // assumes every running job runs to its time limit).
  double estimates_late = 0;
  // The same by how long before the start an estimate was given (its lead), and the fraction of
  // the pending reasons given that carried an estimate at all (only jobs with a backfill
  // reservation get one).
  struct EstimateLead {
    std::string name;
    double share = 0;  // Of all the estimates.
    double within_20pct = 0;
    double late = 0;
  };
  std::vector<EstimateLead> estimates_by_lead;
  double estimate_coverage = 0;
  int64_t preemptions = 0;
  int64_t passes = 0;
  int64_t violations = 0;
  std::vector<AccountSummary> accounts;
  double simulated_s = 0;  // Virtual time covered (start to the end of the run).
  double wall_time_s = 0;
  double speedup = 0;

  // For the report.
  std::vector<double> waits_s;  // Sorted.
  int64_t series_origin_ms = 0;
  int64_t series_width_ms = 0;
  std::vector<double> utilization_series;  // Per bucket, 0..1.
  std::vector<double> queue_series;        // Pending jobs, per bucket.
  // Per account of `accounts` (same order), normalised GPUs per bucket: held, and entitled to
  // (equal to what it held while nobody waited).
  std::vector<std::vector<double>> allocated_series;
  std::vector<std::vector<double>> entitled_series;
};

// Runs the prepared replay to the end and measures it. `wall_time_s` and `speedup` are filled by
// the caller, who knows what it timed.
ReplaySummary RunReplay(PreparedReplay replay, const ReplayOptions& options);

// summary.json: one field per line, fixed key order and number formats, so that two runs of the
// same inputs differ only in the `wall_time_s` and `speedup` lines.
std::string SummaryJson(const ReplaySummary& s);

}  // namespace gsched::sim
