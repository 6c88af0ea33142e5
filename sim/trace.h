// Job traces for `gsched-sim` (DESIGN.md section 8): readers for the openb pod list, the Tiresias
// job list and a documented generic CSV, and the openb node list as a cluster.
//
// Every reader takes a header line and checks that the columns it needs are there; a bad value is
// rejected with its line (1 = the header) and column (1-based), e.g.
//   `trace.csv: line 12, column 2 (duration_s): must be >= 0, got "-5"`.
// Readers keep what the trace says; the rules for what a trace lacks (users and accounts, time
// limits) are applied by the replay (sim/replay.h), which knows the accounts and the policy.
//
// Formats (times in seconds; decimals allowed where noted):
//
// `openb` (alibaba/clusterdata cluster-trace-gpu-v2023 pod list): name, cpu_milli, memory_mib,
//   num_gpu, gpu_milli, gpu_spec, qos, pod_phase, creation_time, deletion_time, scheduled_time.
//   Arrival = creation_time; run time = deletion_time - scheduled_time; one node, num_gpu GPUs
//   (a GPU-sharing pod, gpu_milli < 1000, takes one whole GPU); CPUs = ceil(cpu_milli / 1000);
//   memory = memory_mib; gpu_spec = acceptable GPU models separated by `|` (lower-cased; empty:
//   any); qos `BE` (best effort) runs as `preemptible`, every other qos as `normal`.
//   Skipped (counted in `Trace::skipped`): pods without GPUs (num_gpu 0) and pods that were never
//   scheduled in the original cluster (empty scheduled_time: no run time is known).
//
// `tiresias` (SymbioticLab/Tiresias simulator job list): job_id, num_gpu, submit_time,
//   iterations, model_name, duration, interval. Arrival = submit_time, run time = duration;
//   num_gpu <= 8 is one node, more is a gang of num_gpu / 8 nodes of 8 GPUs (num_gpu must then be
//   a multiple of 8).
//
// `csv` (the generic format): a header naming the columns, in any order.
//   submit_s      required  arrival, seconds from the start of the trace (decimals allowed)
//   duration_s    required  run time in seconds (decimals allowed)
//   gpus          required  GPUs per node, 1..64
//   nodes         optional  nodes of the gang (default 1)
//   gpu_type      optional  acceptable GPU types separated by `|` (empty: any)
//   account       optional  leaf account (empty: assigned by the replay's rule)
//   user          optional  user name (empty: assigned by the replay's rule)
//   time_limit_s  optional  time limit in seconds (empty: the replay's rule)
//   cpus          optional  CPUs per node (default 0)
//   memory_mib    optional  memory per node in MiB (default 0)
//   class         optional  high | normal | preemptible (default normal)
//   Unknown columns are errors (a misspelt optional column would otherwise be silently ignored).
//
// Threading: the readers are reentrant; a `Trace` is a plain value.
#pragma once

#include <cstdint>
#include <istream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/cluster_config.h"
#include "scheduler/api/enums.h"
#include "scheduler/common/status.h"

namespace gsched::sim {

enum class TraceFormat : uint8_t { kOpenb, kTiresias, kCsv };

Result<TraceFormat> ParseTraceFormat(std::string_view name);

struct TraceJob {
  int64_t line = 0;  // Line in the trace file (the header is line 1).
  int64_t submit_ms = 0;
  int64_t duration_ms = 0;
  int32_t nodes = 1;
  int32_t gpus_per_node = 1;
  std::vector<std::string> gpu_types;  // Acceptable types; empty: any.
  int32_t cpus_per_node = 0;
  int64_t memory_mib_per_node = 0;
  std::string account;  // Empty: assigned by the replay's rule.
  std::string user;     // Empty: assigned by the replay's rule.
  std::optional<int64_t> time_limit_ms;
  api::PriorityClass priority_class = api::PriorityClass::kNormal;
};

struct Trace {
  std::string source;  // File name, for messages.
  std::vector<TraceJob> jobs;
  // Rows not replayed, by reason (e.g. "no GPU": 1088).
  std::map<std::string, int64_t> skipped;
  // 1-based columns of the fields checked after reading (against the cluster and the accounts),
  // so that those errors name a line and a column too; 0 when the format has no such column.
  int32_t gpu_type_column = 0;
  int32_t account_column = 0;
  int32_t time_limit_column = 0;
};

// Reads a trace; `source` names it in errors.
Result<Trace> ReadTrace(std::istream& in, TraceFormat format, std::string_view source);
Result<Trace> LoadTrace(const std::string& path, TraceFormat format);

// The openb node list (sn, cpu_milli, memory_mib, gpu, model) as a cluster: one site `openb`, one
// block per GPU model (nodes in file order within it), GPU type names are the models lower-cased,
// CPUs = cpu_milli / 1000 (rounded down). Each model's cost comes from `gpu_types` when it names
// it, else 1.0.
Result<config::ClusterConfig> ReadOpenbNodes(std::istream& in, std::string_view source,
                                             const std::vector<config::GpuTypeSpec>& gpu_types);
Result<config::ClusterConfig> LoadOpenbNodes(const std::string& path,
                                             const std::vector<config::GpuTypeSpec>& gpu_types);

// A `line N, column C (NAME): message` error of `source`.
Status TraceError(std::string_view source, int64_t line, int32_t column, std::string_view name,
                  std::string_view message);

}  // namespace gsched::sim
