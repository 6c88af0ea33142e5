#include "sim/synthetic.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "sim/metrics.h"
#include "sim/replay.h"

namespace gsched::sim {

namespace {

struct ShapeWeight {
  int32_t nodes;
  int32_t gpus_per_node;
  double weight;
};
constexpr std::array<ShapeWeight, 7> kShapes = {{{1, 1, 0.60},
                                                 {1, 2, 0.10},
                                                 {1, 4, 0.10},
                                                 {1, 8, 0.15},
                                                 {2, 8, 0.03},
                                                 {8, 8, 0.015},
                                                 {32, 8, 0.005}}};
constexpr double kMeanRunS = 3600;

// A uniform double in (0, 1) from 53 random bits.
double Unit(uint64_t bits) {
  return (static_cast<double>(bits >> 11) + 0.5) / 9007199254740992.0;
}

}  // namespace

Trace SyntheticTrace(int64_t jobs, uint64_t seed, double load,
                     const config::ClusterConfig& cluster) {
  Trace trace;
  trace.source = "synthetic(" + std::to_string(jobs) + ", seed " + std::to_string(seed) + ")";
  double mean_gpus = 0;
  for (const ShapeWeight& s : kShapes)
    mean_gpus += s.weight * s.nodes * s.gpus_per_node;
  const std::map<std::string, int64_t> by_type = cluster.GpusByType();
  const double total_gpus = static_cast<double>(cluster.TotalGpus());
  // Mean seconds between arrivals: offered GPU-seconds per second = load x GPUs.
  const double gap_s = mean_gpus * kMeanRunS / std::max(1.0, load * total_gpus);
  const uint64_t base = SplitMix64(seed ^ 0x5157'4e54'4845'5449ull);
  double now_s = 0;
  trace.jobs.reserve(static_cast<size_t>(std::max<int64_t>(0, jobs)));
  for (int64_t k = 0; k < jobs; ++k) {
    uint64_t state = base + static_cast<uint64_t>(k) * 0x9e3779b97f4a7c15ull;
    auto draw = [&] { return Unit(SplitMix64(state++)); };
    TraceJob j;
    j.line = k + 2;
    now_s += -std::log(draw()) * gap_s;
    j.submit_ms = static_cast<int64_t>(now_s * 1000.0);
    const double run_s = std::clamp(-std::log(draw()) * kMeanRunS, 60.0, 3.0 * 86400);
    j.duration_ms = static_cast<int64_t>(run_s * 1000.0);
    double pick = draw();
    for (const ShapeWeight& s : kShapes) {
      j.nodes = s.nodes;
      j.gpus_per_node = s.gpus_per_node;
      if (pick < s.weight)
        break;
      pick -= s.weight;
    }
    if (draw() >= 0.5 && total_gpus > 0) {
      double at = draw() * total_gpus;
      for (const auto& [type, gpus] : by_type) {
        if (at < static_cast<double>(gpus)) {
          j.gpu_types = {type};
          break;
        }
        at -= static_cast<double>(gpus);
      }
    }
    trace.jobs.push_back(std::move(j));
  }
  return trace;
}

void WriteCsvTrace(const Trace& trace, std::ostream& out) {
  out << "submit_s,duration_s,gpus,nodes,gpu_type,account,user,time_limit_s,class\n";
  for (const TraceJob& j : trace.jobs) {
    std::string types;
    for (const std::string& t : j.gpu_types)
      types += (types.empty() ? "" : "|") + t;
    out << FormatNumber(static_cast<double>(j.submit_ms) / 1000.0, 3) << ','
        << FormatNumber(static_cast<double>(j.duration_ms) / 1000.0, 3) << ',' << j.gpus_per_node
        << ',' << j.nodes << ',' << types << ',' << j.account << ',' << j.user << ','
        << (j.time_limit_ms ? FormatNumber(static_cast<double>(*j.time_limit_ms) / 1000.0, 3)
                            : std::string())
        << ',' << api::ToString(j.priority_class) << '\n';
  }
}

}  // namespace gsched::sim
