// The arithmetic of `gsched-sim`'s summary (DESIGN.md section 8), as small pure functions so that
// each is tested with its numbers written out, plus `StepSeries`, the bounded-memory time series
// behind the report's charts.
//
// Definitions:
//   wait              first start - submit (a requeued job's later waits count in its JCT only)
//   JCT               finish - submit
//   bounded slowdown  max(1, JCT / max(run, 10 s)), run = the job's own run time (its duration,
//                     or its time limit when it ran into it)
//   percentiles       nearest rank: the p-th percentile of n sorted values is the value at
//                     1-based rank ceil(p / 100 * n)
//   target share      the product down the account tree of shares / (sum of the shares of the
//                     siblings that had jobs): accounts without demand give their part away
//   Jain's index      (sum x)^2 / (n * sum x^2); 1 when every x is equal
//   entitlement       at a pass with jobs waiting: the hierarchical max-min split of the capacity
//                     (normalised GPUs) by shares, each account capped at its demand (running +
//                     pending, normalised GPUs); what one account leaves goes to its siblings
//   fair-share error  sum over demanding accounts of |allocated - entitled| / (2 x capacity):
//                     0 when every account holds its entitlement, 1 at worst
//   size classes      `1 GPU`, `2-8 GPUs` (one node), `2-7 nodes`, `>= 8 nodes`
//   estimate error    |estimated start - real start|; within 20% when that error is at most
//                     0.2 x (real start - the time the estimate was given)
// Pure; no threading concerns.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "scheduler/core/entitlement.h"
#include "scheduler/core/model.h"

namespace gsched::sim {

// Nearest-rank percentile of `sorted` (ascending), p in [0, 100]; 0 for an empty list.
double Percentile(std::span<const double> sorted, double p);

double Mean(std::span<const double> values);

inline constexpr double kSlowdownThresholdS = 10.0;
double BoundedSlowdown(double jct_s, double run_s, double threshold_s = kSlowdownThresholdS);

// 1 for an empty list or when every value is 0.
double JainIndex(std::span<const double> values);

// Each account's target share of the cluster: 0 for accounts outside the active subtrees, and
// for an active leaf the product of `shares / active sibling shares` from the root down. `active`
// marks the accounts that had jobs (ancestors are activated here).
std::vector<double> TargetShares(const std::vector<core::AccountInfo>& accounts,
                                 std::vector<bool> active);

// The demand-aware entitlement (one definition for the policy and this metric).
using core::EntitlementSplit;
using core::MaxMinSplit;

// sum |allocated - entitled| / (2 x capacity); 0 when the capacity is 0.
double FairShareError(std::span<const double> allocated, std::span<const double> entitled,
                      double capacity);

enum class SizeClass : uint8_t { kOneGpu, kOneNode, kFewNodes, kManyNodes };
inline constexpr size_t kSizeClasses = 4;
SizeClass SizeClassOf(int32_t nodes, int32_t gpus_per_node);
const char* SizeClassName(SizeClass c);

// Whether an estimate given at `given` for a job that really started at `started` was within
// `fraction` of the wait that remained: |estimate - started| <= fraction x (started - given).
bool EstimateWithin(Timestamp given, Timestamp estimate, Timestamp started, double fraction);

// At most `kKept` of the estimates one job was given, spread evenly over them: every estimate is
// kept until the buffer is full, then every other one is dropped and only every `stride`-th
// estimate is kept from then on, each standing for `stride` of them (so every estimate given is
// counted once, by weight).
class EstimateSamples {
 public:
  static constexpr size_t kKept = 8;
  struct Sample {
    Timestamp given;
    Timestamp estimate;
    double weight;
  };
  void Add(Timestamp given, Timestamp estimate);
  // The kept estimates with their weights (adding up to the number given).
  std::vector<Sample> Weighted() const;

 private:
  std::vector<std::pair<Timestamp, Timestamp>> kept_;
  uint64_t stride_ = 1;
  uint64_t seen_ = 0;
};

// Weighted nearest-rank percentile: the smallest value whose cumulative weight reaches
// p / 100 x the total weight; `values` need not be sorted. 0 for no values.
double WeightedPercentile(std::vector<std::pair<double, double>> value_weight, double p);

// Piecewise-constant values integrated over time into at most `kBuckets` equal buckets from
// `origin`; when time runs past the last bucket, the bucket width doubles (pairs merge), so
// memory stays bounded for any run length.
class StepSeries {
 public:
  static constexpr size_t kBuckets = 512;

  StepSeries(int64_t origin_ms, int64_t first_width_ms, size_t values);

  // `v[k]` held over [from_ms, to_ms).
  void Add(int64_t from_ms, int64_t to_ms, std::span<const double> v);

  // Time-weighted mean of value `k` in each bucket up to `end_ms` (the last one partial).
  std::vector<double> Means(size_t k, int64_t end_ms) const;
  int64_t width_ms() const { return width_ms_; }
  int64_t origin_ms() const { return origin_ms_; }

 private:
  int64_t origin_ms_;
  int64_t width_ms_;
  size_t values_;
  std::vector<double> integral_;  // kBuckets x values, value-milliseconds.
};

// Fixed-point text for JSON and HTML: `digits` decimals, "null" for NaN or infinity.
std::string FormatNumber(double v, int digits);

}  // namespace gsched::sim
