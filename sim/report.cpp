#include "sim/report.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "sim/metrics.h"

namespace gsched::sim {

namespace {

constexpr int kWidth = 760, kHeight = 240;
constexpr int kLeft = 64, kRight = 16, kTop = 28, kBottom = 40;

std::string Escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string F(double v, int digits = 1) {
  return FormatNumber(v, digits);
}

// "3.5 h", "42 s": a duration for people.
std::string Human(double seconds) {
  if (seconds < 60)
    return F(seconds, 1) + " s";
  if (seconds < 3600)
    return F(seconds / 60, 1) + " min";
  if (seconds < 2 * 86400)
    return F(seconds / 3600, 1) + " h";
  return F(seconds / 86400, 1) + " d";
}

// A rounded axis maximum above `v`: 1, 2 or 5 times a power of ten.
double NiceMax(double v) {
  if (v <= 0)
    return 1;
  const double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * p >= v)
      return m * p;
  }
  return 10 * p;
}

std::string SvgOpen(const std::string& title) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(kWidth) +
         "\" height=\"" + std::to_string(kHeight) + "\" viewBox=\"0 0 " + std::to_string(kWidth) +
         " " + std::to_string(kHeight) + "\" role=\"img\" aria-label=\"" + Escape(title) +
         "\"><text x=\"" + std::to_string(kLeft) + "\" y=\"18\" class=\"t\">" + Escape(title) +
         "</text>";
}

// The frame of a chart against time: title, grid, axis labels.
std::string TimeFrame(const std::string& title, double x_max, double y_max,
                      const std::string& y_unit, bool percent) {
  std::string svg = SvgOpen(title);
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  // Horizontal grid and y labels.
  for (int i = 0; i <= 4; ++i) {
    const double y = kTop + plot_h - plot_h * i / 4;
    const double label = y_max * i / 4;
    svg += "<line x1=\"" + F(kLeft) + "\" x2=\"" + F(kLeft + plot_w) + "\" y1=\"" + F(y) +
           "\" y2=\"" + F(y) + "\" class=\"g\"/><text x=\"" + F(kLeft - 6) + "\" y=\"" + F(y + 4) +
           "\" class=\"yl\">" + (percent ? F(label * 100, 0) + "%" : F(label, 0)) + "</text>";
  }
  // X labels in hours or days.
  const bool days = x_max > 3 * 86400;
  const double unit = days ? 86400 : 3600;
  for (int i = 0; i <= 5; ++i) {
    const double x = kLeft + plot_w * i / 5;
    svg += "<text x=\"" + F(x) + "\" y=\"" + F(kTop + plot_h + 16) + "\" class=\"xl\">" +
           F(x_max * i / 5 / unit, 1) + "</text>";
  }
  svg += "<text x=\"" + F(kLeft + plot_w / 2) + "\" y=\"" + F(kHeight - 6) + "\" class=\"xl\">" +
         std::string(days ? "days" : "hours") + " since the start of the trace" +
         (y_unit.empty() ? "" : "; " + Escape(y_unit)) + "</text>";
  return svg;
}

// A step line of `values` (one per bucket of `bucket_s` seconds), drawn with CSS class `cls`.
std::string StepLine(const std::vector<double>& values, double bucket_s, double x_max, double y_max,
                     const char* cls) {
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  std::string points;
  for (size_t i = 0; i < values.size(); ++i) {
    const double y = kTop + plot_h - plot_h * std::clamp(values[i] / y_max, 0.0, 1.0);
    const double x0 = kLeft + plot_w * static_cast<double>(i) * bucket_s / x_max;
    const double x1 = kLeft + plot_w * static_cast<double>(i + 1) * bucket_s / x_max;
    points += F(x0) + "," + F(y) + " " + F(x1) + "," + F(y) + " ";
  }
  return "<polyline points=\"" + points + "\" class=\"" + cls + "\"/>";
}

double SeriesSpan(const std::vector<double>& values, double bucket_s) {
  return std::max(1.0, static_cast<double>(values.size()) * bucket_s);
}

std::string LineChart(const std::string& title, const std::vector<double>& values, double bucket_s,
                      double y_max, const std::string& y_unit, bool percent) {
  const double x_max = SeriesSpan(values, bucket_s);
  return TimeFrame(title, x_max, y_max, y_unit, percent) +
         StepLine(values, bucket_s, x_max, y_max, "l") + "</svg>";
}

// One account: the normalised GPUs it held against those it was entitled to.
std::string EntitlementChart(const std::string& account, const std::vector<double>& allocated,
                             const std::vector<double>& entitled, double bucket_s) {
  double y_max = 0;
  for (double v : allocated)
    y_max = std::max(y_max, v);
  for (double v : entitled)
    y_max = std::max(y_max, v);
  y_max = NiceMax(y_max);
  const double x_max = SeriesSpan(allocated, bucket_s);
  return TimeFrame(account + ": allocated (solid) and entitled (dashed) normalised GPUs", x_max,
                   y_max, "", false) +
         StepLine(entitled, bucket_s, x_max, y_max, "e") +
         StepLine(allocated, bucket_s, x_max, y_max, "l") + "</svg>";
}

std::string ShareChart(const ReplaySummary& s) {
  const int row = 22;
  const int height = kTop + row * static_cast<int>(s.accounts.size()) + kBottom;
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(kWidth) +
                    "\" height=\"" + std::to_string(height) +
                    "\" role=\"img\" aria-label=\"account shares\"><text x=\"8\" y=\"18\" "
                    "class=\"t\">Share of delivered GPU-hours (normalised) against target</text>";
  const double left = 200, plot_w = kWidth - left - 80;
  double max_share = 0;
  for (const AccountSummary& a : s.accounts)
    max_share = std::max({max_share, a.target_share, a.achieved_share});
  max_share = NiceMax(max_share);
  for (size_t i = 0; i < s.accounts.size(); ++i) {
    const AccountSummary& a = s.accounts[i];
    const double y = kTop + row * static_cast<double>(i);
    svg += "<text x=\"" + F(left - 6) + "\" y=\"" + F(y + 14) + "\" class=\"yl\">" +
           Escape(a.name) + "</text>";
    svg += "<rect x=\"" + F(left) + "\" y=\"" + F(y + 3) + "\" width=\"" +
           F(plot_w * a.achieved_share / max_share) + "\" height=\"14\" class=\"b\"/>";
    const double tx = left + plot_w * a.target_share / max_share;
    svg += "<line x1=\"" + F(tx) + "\" x2=\"" + F(tx) + "\" y1=\"" + F(y) + "\" y2=\"" + F(y + 20) +
           "\" class=\"tg\"/>";
    svg += "<text x=\"" + F(left + plot_w + 6) + "\" y=\"" + F(y + 14) + "\" class=\"v\">" +
           F(a.achieved_share * 100, 1) + "% / " + F(a.target_share * 100, 1) + "%</text>";
  }
  const double axis_y = kTop + row * static_cast<double>(s.accounts.size()) + 14;
  svg += "<text x=\"" + F(left) + "\" y=\"" + F(axis_y) +
         "\" class=\"xl\">bar: achieved share; tick: target share; 0 to " + F(max_share * 100, 0) +
         "%</text></svg>";
  return svg;
}

std::string WaitHistogram(const std::vector<double>& waits) {
  struct Bin {
    const char* label;
    double upto;
  };
  const std::array<Bin, 9> bins = {{{"0 s", 0.0005},
                                    {"< 10 s", 10},
                                    {"< 1 min", 60},
                                    {"< 10 min", 600},
                                    {"< 1 h", 3600},
                                    {"< 6 h", 6 * 3600},
                                    {"< 1 d", 86400},
                                    {"< 7 d", 7 * 86400},
                                    {">= 7 d", 1e300}}};
  std::array<int64_t, 9> count{};
  for (double w : waits) {
    size_t b = 0;
    while (b + 1 < bins.size() && w >= bins[b].upto)
      ++b;
    ++count[b];
  }
  std::string svg = SvgOpen("Wait before the first start (jobs per bin)");
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  const double n = std::max<double>(1, static_cast<double>(waits.size()));
  const double max_count =
      std::max<double>(1, static_cast<double>(*std::max_element(count.begin(), count.end())));
  const double slot = plot_w / static_cast<double>(bins.size());
  for (size_t b = 0; b < bins.size(); ++b) {
    const double h = plot_h * static_cast<double>(count[b]) / max_count;
    const double x = kLeft + slot * static_cast<double>(b);
    svg += "<rect x=\"" + F(x + 6) + "\" y=\"" + F(kTop + plot_h - h) + "\" width=\"" +
           F(slot - 12) + "\" height=\"" + F(h) + "\" class=\"b\"/>";
    svg += "<text x=\"" + F(x + slot / 2) + "\" y=\"" + F(kTop + plot_h - h - 4) +
           "\" class=\"xl\">" + std::to_string(count[b]) + " (" +
           F(100.0 * static_cast<double>(count[b]) / n, 1) + "%)</text>";
    svg += "<text x=\"" + F(x + slot / 2) + "\" y=\"" + F(kTop + plot_h + 16) + "\" class=\"xl\">" +
           Escape(bins[b].label) + "</text>";
  }
  svg += "</svg>";
  return svg;
}

}  // namespace

std::string RenderReport(const ReplaySummary& s, const ReportInputs& in) {
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<title>gsched-sim report</title><style>"
      "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:820px}"
      "table{border-collapse:collapse;margin:8px 0 16px}td,th{padding:3px 10px;text-align:left;"
      "border-bottom:1px solid #ddd}td.n{text-align:right;font-variant-numeric:tabular-nums}"
      "svg{display:block;margin:12px 0 20px}.t{font-size:14px;font-weight:600}"
      ".g{stroke:#e3e3e3}.yl{font-size:11px;text-anchor:end}.xl{font-size:11px;"
      "text-anchor:middle}.v{font-size:11px}.l{fill:none;stroke:#2b6cb0;stroke-width:1.5}"
      ".b{fill:#4a90d9}.tg{stroke:#c0392b;stroke-width:2}"
      ".e{fill:none;stroke:#c0392b;stroke-width:1.5;stroke-dasharray:5 3}"
      "</style></head><body>\n";
  h += "<h1>gsched-sim: " + Escape(s.policy) + "</h1>\n<p>Trace <code>" + Escape(in.trace) +
       "</code> on <code>" + Escape(in.cluster) + "</code> (" + std::to_string(s.nodes) +
       " nodes, " + std::to_string(s.gpus) + " GPUs), accounts <code>" +
       Escape(in.accounts.empty() ? "(from the trace)" : in.accounts) + "</code>, seed " +
       std::to_string(s.seed) + ", arrivals x" + F(s.arrival_scale, 2) + ".</p>\n<table>";
  auto row = [&](const std::string& k, const std::string& v) {
    h += "<tr><th>" + Escape(k) + "</th><td class=\"n\">" + Escape(v) + "</td></tr>";
  };
  row("jobs (completed / timeouts / never started)",
      std::to_string(s.jobs) + " (" + std::to_string(s.completed) + " / " +
          std::to_string(s.timeouts) + " / " + std::to_string(s.unstarted) + ")");
  int64_t skipped = 0;
  for (const auto& [reason, n] : s.skipped)
    skipped += n;
  row("trace rows skipped", std::to_string(skipped));
  row("makespan", Human(s.makespan_s));
  row("wait: mean / p50 / p95 / p99", Human(s.mean_wait_s) + " / " + Human(s.p50_wait_s) + " / " +
                                          Human(s.p95_wait_s) + " / " + Human(s.p99_wait_s));
  row("job completion time: mean / p50", Human(s.mean_jct_s) + " / " + Human(s.p50_jct_s));
  row("mean bounded slowdown (10 s)", F(s.mean_bounded_slowdown, 2));
  row("GPU utilisation", F(s.gpu_utilization * 100, 1) + "%");
  row("fragmentation (free GPUs the head job cannot use)", F(s.fragmentation * 100, 2) + "%");
  row("Jain's fairness over allocated / entitled", F(s.jain_fairness, 3));
  row("fair-share error (while jobs waited / while every account had a backlog)",
      F(s.fair_share_error, 4) + " / " + F(s.fair_share_error_backlogged, 4));
  row("time with jobs waiting / every account backlogged",
      Human(s.contended_s) + " / " + Human(s.backlogged_s));
  row("GPUs idle while a waiting job could use them", F(s.idle_while_waiting * 100, 2) + "%");
  for (const TypeUtilization& t : s.utilization_by_type)
    row("utilisation of " + t.name + " (" + std::to_string(t.gpus) + " GPUs)",
        F(t.utilization * 100, 1) + "%");
  row("GPU-hours delivered / lost to preemption",
      F(s.delivered_gpu_hours, 1) + " / " + F(s.preempted_gpu_hours, 1) + " (" +
          F(s.delivered_gpu_hours > 0 ? 100 * s.preempted_gpu_hours / s.delivered_gpu_hours : 0,
            2) +
          "%)");
  row("estimated starts: given / median error / p90 error / within 20% / too late",
      F(s.estimates, 0) + " / " + Human(s.estimate_p50_error_s) + " / " +
          Human(s.estimate_p90_error_s) + " / " + F(s.estimates_within_20pct * 100, 1) + "% / " +
          F(s.estimates_late * 100, 1) + "%");
  row("preemptions", std::to_string(s.preemptions));
  row("scheduling passes", std::to_string(s.passes));
  row("wall time / speed-up over real time", F(s.wall_time_s, 2) + " s / " + F(s.speedup, 0) + "x");
  h += "</table>\n";
  const double bucket_s = static_cast<double>(s.series_width_ms) / 1000.0;
  h += LineChart("GPU utilisation", s.utilization_series, bucket_s, 1.0, "", true);
  double max_queue = 0;
  for (double q : s.queue_series)
    max_queue = std::max(max_queue, q);
  h += LineChart("Queue length (pending jobs, mean per interval)", s.queue_series, bucket_s,
                 NiceMax(max_queue), "", false);
  h += ShareChart(s);
  for (size_t k = 0; k < s.accounts.size() && k < s.allocated_series.size(); ++k)
    h +=
        EntitlementChart(s.accounts[k].name, s.allocated_series[k], s.entitled_series[k], bucket_s);
  h += WaitHistogram(s.waits_s);
  h += "<table><tr><th>size class</th><th>jobs</th><th>p50 wait</th><th>p95 wait</th>"
       "<th>p99 wait</th><th>max wait</th></tr>";
  for (const SizeClassWaits& c : s.waits_by_size) {
    h += "<tr><td>" + Escape(c.name) + "</td><td class=\"n\">" + std::to_string(c.jobs) +
         "</td><td class=\"n\">" + Human(c.p50_wait_s) + "</td><td class=\"n\">" +
         Human(c.p95_wait_s) + "</td><td class=\"n\">" + Human(c.p99_wait_s) +
         "</td><td class=\"n\">" + Human(c.max_wait_s) + "</td></tr>";
  }
  h += "</table>\n";
  h += "<table><tr><th>account</th><th>jobs</th><th>target</th><th>achieved</th>"
       "<th>mean wait</th><th>GPU-hours</th><th>allocated</th><th>entitled</th></tr>";
  for (const AccountSummary& a : s.accounts) {
    h += "<tr><td>" + Escape(a.name) + "</td><td class=\"n\">" + std::to_string(a.jobs) +
         "</td><td class=\"n\">" + F(a.target_share * 100, 1) + "%</td><td class=\"n\">" +
         F(a.achieved_share * 100, 1) + "%</td><td class=\"n\">" + Human(a.mean_wait_s) +
         "</td><td class=\"n\">" + F(a.gpu_hours, 1) + "</td><td class=\"n\">" +
         F(a.allocated_gpus, 1) + "</td><td class=\"n\">" + F(a.entitled_gpus, 1) + "</td></tr>";
  }
  h += "</table>\n</body></html>\n";
  return h;
}

}  // namespace gsched::sim
