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
//   Jain's index      over active leaves, x = achieved share / target share:
//                     (sum x)^2 / (n * sum x^2); 1 when every x is equal
// Pure; no threading concerns.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

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
