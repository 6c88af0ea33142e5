// report.html for `gsched-sim`: one self-contained page (inline CSS and SVG, nothing fetched from
// the network) with the summary figures and four charts: GPU utilisation over time, queue length
// over time, each account's achieved share against its target, and the distribution of waits.
// Deterministic: the same summary gives the same page. Pure; no threading concerns.
#pragma once

#include <string>

#include "sim/replay.h"

namespace gsched::sim {

struct ReportInputs {
  std::string trace;
  std::string cluster;
  std::string accounts;  // Empty: none given.
};

std::string RenderReport(const ReplaySummary& summary, const ReportInputs& inputs);

}  // namespace gsched::sim
