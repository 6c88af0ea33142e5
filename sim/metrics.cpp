#include "sim/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace gsched::sim {

double Percentile(std::span<const double> sorted, double p) {
  if (sorted.empty())
    return 0;
  const double n = static_cast<double>(sorted.size());
  const auto rank = static_cast<size_t>(std::ceil(std::clamp(p, 0.0, 100.0) / 100.0 * n));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

double Mean(std::span<const double> values) {
  if (values.empty())
    return 0;
  double sum = 0;
  for (double v : values)
    sum += v;
  return sum / static_cast<double>(values.size());
}

double BoundedSlowdown(double jct_s, double run_s, double threshold_s) {
  return std::max(1.0, jct_s / std::max(run_s, threshold_s));
}

double JainIndex(std::span<const double> values) {
  double sum = 0, squares = 0;
  for (double v : values) {
    sum += v;
    squares += v * v;
  }
  if (values.empty() || squares == 0)
    return 1.0;
  return sum * sum / (static_cast<double>(values.size()) * squares);
}

std::vector<double> TargetShares(const std::vector<core::AccountInfo>& accounts,
                                 std::vector<bool> active) {
  const size_t n = accounts.size();
  // Activate ancestors (parents may come in any order: walk up from each account).
  for (size_t a = 0; a < n; ++a) {
    if (!active[a])
      continue;
    for (uint32_t p = accounts[a].parent; p != core::kNoParent && !active[p];
         p = accounts[p].parent)
      active[p] = true;
  }
  std::vector<double> active_sibling_shares(n, 0.0);  // Indexed by parent.
  for (size_t a = 0; a < n; ++a) {
    if (active[a] && accounts[a].parent != core::kNoParent)
      active_sibling_shares[accounts[a].parent] += accounts[a].shares;
  }
  std::vector<double> target(n, -1.0);
  // Memoised walk from each account up to a root.
  auto resolve = [&](auto&& self, uint32_t a) -> double {
    if (target[a] >= 0)
      return target[a];
    if (!active[a])
      return target[a] = 0.0;
    const uint32_t p = accounts[a].parent;
    if (p == core::kNoParent)
      return target[a] = 1.0;
    const double siblings = active_sibling_shares[p];
    return target[a] = siblings > 0 ? self(self, p) * accounts[a].shares / siblings : 0.0;
  };
  for (uint32_t a = 0; a < n; ++a)
    resolve(resolve, a);
  return target;
}

double FairShareError(std::span<const double> allocated, std::span<const double> entitled,
                      double capacity) {
  if (!(capacity > 0))
    return 0;
  double sum = 0;
  for (size_t a = 0; a < allocated.size(); ++a)
    sum += std::abs(allocated[a] - entitled[a]);
  return sum / (2 * capacity);
}

SizeClass SizeClassOf(int32_t nodes, int32_t gpus_per_node) {
  if (nodes >= 8)
    return SizeClass::kManyNodes;
  if (nodes >= 2)
    return SizeClass::kFewNodes;
  return gpus_per_node <= 1 ? SizeClass::kOneGpu : SizeClass::kOneNode;
}

const char* SizeClassName(SizeClass c) {
  switch (c) {
    case SizeClass::kOneGpu:
      return "1 GPU";
    case SizeClass::kOneNode:
      return "2-8 GPUs";
    case SizeClass::kFewNodes:
      return "2-7 nodes";
    case SizeClass::kManyNodes:
      return ">= 8 nodes";
  }
  return "?";
}

bool EstimateWithin(Timestamp given, Timestamp estimate, Timestamp started, double fraction) {
  const double error = std::abs(static_cast<double>((estimate - started).count()));
  const double remaining = std::max(0.0, static_cast<double>((started - given).count()));
  return error <= fraction * remaining;
}

void EstimateSamples::Add(Timestamp given, Timestamp estimate) {
  if (seen_ % stride_ == 0) {
    if (kept_.size() == kKept) {
      // Keep positions 0, 2, 4, ...: every (2 x stride)-th estimate from the first.
      for (size_t k = 0; k < kKept / 2; ++k)
        kept_[k] = kept_[2 * k];
      kept_.resize(kKept / 2);
      stride_ *= 2;
    }
    if (seen_ % stride_ == 0)
      kept_.emplace_back(given, estimate);
  }
  ++seen_;
}

std::vector<EstimateSamples::Sample> EstimateSamples::Weighted() const {
  std::vector<Sample> out;
  for (size_t k = 0; k < kept_.size(); ++k) {
    // Kept estimate k is number k x stride and stands for those up to the next kept one.
    const uint64_t first = k * stride_;
    const uint64_t upto = std::min<uint64_t>(seen_, first + stride_);
    out.push_back({kept_[k].first, kept_[k].second, static_cast<double>(upto - first)});
  }
  return out;
}

double WeightedPercentile(std::vector<std::pair<double, double>> value_weight, double p) {
  if (value_weight.empty())
    return 0;
  std::sort(value_weight.begin(), value_weight.end());
  double total = 0;
  for (const auto& [v, w] : value_weight)
    total += w;
  const double target = std::clamp(p, 0.0, 100.0) / 100.0 * total;
  double cumulative = 0;
  for (const auto& [v, w] : value_weight) {
    cumulative += w;
    if (cumulative >= target && cumulative > 0)
      return v;
  }
  return value_weight.back().first;
}

StepSeries::StepSeries(int64_t origin_ms, int64_t first_width_ms, size_t values)
    : origin_ms_(origin_ms),
      width_ms_(std::max<int64_t>(1, first_width_ms)),
      values_(values),
      integral_(kBuckets * values, 0.0) {}

void StepSeries::Add(int64_t from_ms, int64_t to_ms, std::span<const double> v) {
  from_ms = std::max(from_ms, origin_ms_);
  if (to_ms <= from_ms)
    return;
  // Widen until `to_ms` falls inside the last bucket: bucket i absorbs buckets 2i and 2i+1.
  while (to_ms - origin_ms_ > width_ms_ * static_cast<int64_t>(kBuckets)) {
    for (size_t i = 0; i < kBuckets; ++i) {
      for (size_t k = 0; k < values_; ++k) {
        const size_t a = 2 * i, b = 2 * i + 1;
        integral_[i * values_ + k] = (a < kBuckets ? integral_[a * values_ + k] : 0.0) +
                                     (b < kBuckets ? integral_[b * values_ + k] : 0.0);
      }
    }
    width_ms_ *= 2;
  }
  int64_t t = from_ms;
  while (t < to_ms) {
    const size_t bucket = static_cast<size_t>((t - origin_ms_) / width_ms_);
    const int64_t bucket_end = origin_ms_ + static_cast<int64_t>(bucket + 1) * width_ms_;
    const int64_t upto = std::min(bucket_end, to_ms);
    const double dt = static_cast<double>(upto - t);
    for (size_t k = 0; k < values_; ++k)
      integral_[bucket * values_ + k] += v[k] * dt;
    t = upto;
  }
}

std::vector<double> StepSeries::Means(size_t k, int64_t end_ms) const {
  std::vector<double> out;
  for (size_t i = 0; i < kBuckets; ++i) {
    const int64_t from = origin_ms_ + static_cast<int64_t>(i) * width_ms_;
    if (from >= end_ms)
      break;
    const int64_t to = std::min(end_ms, from + width_ms_);
    out.push_back(integral_[i * values_ + k] / static_cast<double>(to - from));
  }
  return out;
}

std::string FormatNumber(double v, int digits) {
  if (!std::isfinite(v))
    return "null";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  std::string s = buf;
  if (s == "-0" || s.find_first_not_of("-0.") == std::string::npos)
    s = digits > 0 ? "0." + std::string(static_cast<size_t>(digits), '0') : "0";
  return s;
}

}  // namespace gsched::sim
