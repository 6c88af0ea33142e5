// gsched-sim --cluster FILE --trace FILE [--accounts FILE] [--format openb|tiresias|csv]
//            [--policy fairshare|fifo|sjf-oracle] [--config scheduler.yaml] [--seed N] --out DIR
//
// Replays a job trace on virtual time with the real scheduling core (DESIGN.md section 8) and
// writes DIR/summary.json and DIR/report.html. See sim/replay.h for the rules applied to what a
// trace does not say, and sim/trace.h for the formats.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "config/accounts_config.h"
#include "config/cluster_config.h"
#include "config/scheduler_config.h"
#include "sim/replay.h"
#include "sim/report.h"
#include "sim/synthetic.h"
#include "sim/trace.h"

namespace {

using namespace gsched;

int Fail(const std::string& what, const Status& s) {
  std::cerr << "gsched-sim: " << what << (what.empty() ? "" : ": ") << s.ToString() << "\n";
  return 2;
}

// The format named by the trace's header: openb and Tiresias have distinctive columns.
sim::TraceFormat GuessFormat(const std::string& path) {
  std::ifstream in(path);
  std::string header;
  std::getline(in, header);
  if (header.find("creation_time") != std::string::npos &&
      header.find("num_gpu") != std::string::npos)
    return sim::TraceFormat::kOpenb;
  if (header.find("num_gpu") != std::string::npos &&
      header.find("submit_time") != std::string::npos)
    return sim::TraceFormat::kTiresias;
  return sim::TraceFormat::kCsv;
}

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Status WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out)
    return Status::Unavailable("cannot write " + path.string());
  return Status::Ok();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gsched-sim: replay a job trace on virtual time through the real scheduling core"};
  std::string cluster_path, trace_path, accounts_path, config_path, format_name, out_dir,
      write_trace;
  std::string policy_name = "fairshare";
  uint64_t seed = 1;
  double arrival_scale = 1.0;
  int64_t synthetic = 0;
  double load = 0.9;
  app.add_option("--cluster", cluster_path, "cluster YAML, or an openb node list CSV")->required();
  app.add_option("--trace", trace_path, "the job trace");
  app.add_option("--format", format_name,
                 "openb | tiresias | csv (default: from the trace's header)");
  app.add_option("--accounts", accounts_path, "accounts YAML (default: from the trace)");
  app.add_option("--policy", policy_name, "fairshare | fifo | sjf-oracle")->capture_default_str();
  app.add_option("--config", config_path, "scheduler.yaml (default: the built-in defaults)");
  app.add_option("--seed", seed, "seed of the rules for missing users and accounts")
      ->capture_default_str();
  app.add_option("--arrival-scale", arrival_scale,
                 "divide every submit time by this (10 = ten times the arrival rate)")
      ->capture_default_str();
  app.add_option("--synthetic", synthetic, "replay N synthetic jobs instead of --trace");
  app.add_option("--load", load, "offered load of --synthetic, x the cluster's GPUs")
      ->capture_default_str();
  app.add_option("--write-trace", write_trace, "also write the trace replayed as generic CSV");
  bool no_replay = false;
  app.add_flag("--no-replay", no_replay, "with --write-trace: write the trace and stop");
  bool estimate_oracle = false;
  app.add_flag("--estimate-oracle", estimate_oracle,
               "estimated starts assume the true run times (a bound; the schedule is the same)");
  std::string preemption_log;
  app.add_option("--preemptions", preemption_log,
                 "also write one CSV row per preemption (victim, its run time, the job it made "
                 "room for) to this file");
  app.add_option("--out", out_dir, "directory for summary.json and report.html")->required();
  int progress_s = 0;
  app.add_option("--progress", progress_s,
                 "print where the replay is to stderr every N seconds of wall time (0: never)")
      ->check(CLI::Range(0, 86400))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const auto wall_start = std::chrono::steady_clock::now();
  auto policy = sim::ParsePolicy(policy_name);
  if (!policy.ok())
    return Fail("--policy", policy.status());
  if (trace_path.empty() == (synthetic <= 0)) {
    std::cerr << "gsched-sim: give exactly one of --trace FILE and --synthetic N\n";
    return 2;
  }

  config::SchedulerConfig scheduler;
  if (!config_path.empty()) {
    auto c = config::LoadSchedulerConfig(config_path);
    if (!c.ok())
      return Fail(config_path, c.status());
    scheduler = std::move(c).value();
  }
  auto cluster = EndsWith(cluster_path, ".csv")
                     ? sim::LoadOpenbNodes(cluster_path, scheduler.gpu_types)
                     : config::LoadClusterConfig(cluster_path);
  if (!cluster.ok())
    return Fail(cluster_path, cluster.status());
  std::optional<config::AccountsConfig> accounts;
  if (!accounts_path.empty()) {
    auto a = config::LoadAccountsConfig(accounts_path);
    if (!a.ok())
      return Fail(accounts_path, a.status());
    accounts = std::move(a).value();
  }

  Result<sim::Trace> trace = Status::InvalidArgument("no trace");
  if (synthetic > 0) {
    trace = sim::SyntheticTrace(synthetic, seed, load, *cluster);
  } else {
    sim::TraceFormat format = GuessFormat(trace_path);
    if (!format_name.empty()) {
      auto f = sim::ParseTraceFormat(format_name);
      if (!f.ok())
        return Fail("--format", f.status());
      format = *f;
    }
    trace = sim::LoadTrace(trace_path, format);
  }
  if (!trace.ok())
    return Fail("", trace.status());
  if (!write_trace.empty()) {
    std::ofstream out(write_trace);
    sim::WriteCsvTrace(*trace, out);
    if (!out)
      return Fail("", Status::Unavailable("cannot write " + write_trace));
    if (no_replay)
      return 0;
  }

  sim::ReplayOptions options;
  options.policy = *policy;
  options.seed = seed;
  options.arrival_scale = arrival_scale;
  options.estimate_oracle = estimate_oracle;
  if (progress_s > 0) {
    options.progress_every = std::chrono::seconds(progress_s);
    options.progress = [](const sim::ReplayProgress& p) {
      std::fprintf(stderr,
                   "gsched-sim: %zu of %zu jobs arrived, %zu pending, %zu running; %" PRId64
                   " passes; %.0f s simulated in %.0f s\n",
                   p.arrived, p.jobs, p.pending, p.running, p.passes, p.simulated_s, p.wall_s);
    };
  }
  std::ofstream preemptions;
  if (!preemption_log.empty()) {
    preemptions.open(preemption_log, std::ios::trunc);
    if (!preemptions)
      return Fail("--preemptions", Status::Unavailable("cannot write " + preemption_log));
    options.preemption_log = &preemptions;
  }
  auto prepared =
      sim::PrepareReplay(*cluster, accounts ? &*accounts : nullptr, scheduler, *trace, options);
  if (!prepared.ok())
    return Fail("", prepared.status());
  trace = Status::InvalidArgument("released");  // The trace is not needed any more.

  sim::ReplaySummary summary = sim::RunReplay(std::move(prepared).value(), options);
  summary.wall_time_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  summary.speedup = summary.wall_time_s > 0 ? summary.simulated_s / summary.wall_time_s : 0;

  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec)
    return Fail("", Status::Unavailable("cannot create " + out_dir + ": " + ec.message()));
  const std::filesystem::path dir(out_dir);
  if (Status s = WriteFile(dir / "summary.json", sim::SummaryJson(summary)); !s.ok())
    return Fail("", s);
  const sim::ReportInputs report{synthetic > 0 ? "synthetic" : trace_path, cluster_path,
                                 accounts_path};
  if (Status s = WriteFile(dir / "report.html", sim::RenderReport(summary, report)); !s.ok())
    return Fail("", s);
  std::fprintf(stderr,
               "gsched-sim: %s: %lld jobs, makespan %.0f s, mean wait %.1f s, utilisation %.1f%%, "
               "%.2f s wall (%.0fx real time); wrote %s/summary.json and report.html\n",
               summary.policy.c_str(), static_cast<long long>(summary.jobs), summary.makespan_s,
               summary.mean_wait_s, summary.gpu_utilization * 100, summary.wall_time_s,
               summary.speedup, out_dir.c_str());
  if (summary.violations != 0) {
    std::fprintf(stderr, "gsched-sim: %lld plan violations (a GPU given twice): a core bug\n",
                 static_cast<long long>(summary.violations));
    return 1;
  }
  return 0;
}
