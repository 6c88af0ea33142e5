#include "scheduler/server/metrics.h"

#include <gtest/gtest.h>

namespace gsched::server {
namespace {

TEST(MetricsTest, RendersPrometheusText) {
  Histogram h({0.001, 0.01, 0.1});
  h.Observe(0.0005);  // <= 0.001
  h.Observe(0.005);   // <= 0.01
  h.Observe(0.005);
  h.Observe(5);  // +Inf
  PrometheusWriter w;
  w.Family("gsched_jobs", "gauge", "Jobs by state.");
  w.Sample("gsched_jobs", {{"state", "pending"}}, 3);
  w.Sample("gsched_jobs", {{"state", "say \"hi\""}}, 1.5);
  w.Family("gsched_cycle_seconds", "histogram", "Cycle time.");
  w.HistogramSamples("gsched_cycle_seconds", {}, h);
  EXPECT_EQ(w.text(),
            "# HELP gsched_jobs Jobs by state.\n"
            "# TYPE gsched_jobs gauge\n"
            "gsched_jobs{state=\"pending\"} 3\n"
            "gsched_jobs{state=\"say \\\"hi\\\"\"} 1.5\n"
            "# HELP gsched_cycle_seconds Cycle time.\n"
            "# TYPE gsched_cycle_seconds histogram\n"
            "gsched_cycle_seconds_bucket{le=\"0.001\"} 1\n"
            "gsched_cycle_seconds_bucket{le=\"0.01\"} 3\n"
            "gsched_cycle_seconds_bucket{le=\"0.1\"} 3\n"
            "gsched_cycle_seconds_bucket{le=\"+Inf\"} 4\n"
            // 0.0005 + 0.005 + 0.005 + 5 = 5.0105
            "gsched_cycle_seconds_sum 5.0105\n"
            "gsched_cycle_seconds_count 4\n");
}

}  // namespace
}  // namespace gsched::server
