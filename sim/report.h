// report.html for `gsched-sim`: one self-contained page (inline CSS and SVG, nothing fetched from
// the network) with the summary figures and these charts: GPU utilisation over time, queue length
// over time, each account's achieved share against its target, each account's allocated against
// entitled GPUs over time, the distribution of waits and the waits by size class.
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
