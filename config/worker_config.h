// `WorkerConfig`: what `gsched-worker` reads from `worker.yaml` (DESIGN.md section 6).
// `config/worker.yaml` documents every key with its default.
//
// Loaded once, validated, then handed by `const&` to the worker's parts (scheduler link, GPU
// inventory, runtime, supervisor). Command-line flags (`--scheduler`, `--name`, ...) override
// fields after loading; the caller does that, not this unit.
//
// Invariants of a loaded config:
//   - `scheduler` is an `http://` or `https://` URL;
//   - `reconnect.initial_backoff <= reconnect.max_backoff`;
//   - `gpus.fake.count` is 0..64 and the fake GPU type is a valid name;
//   - relative `token_file`, `work_dir`, `runtime.root` and `gpus.fake.fault_file` were resolved
//     against the config file's directory when the config came from a file (the default
//     `work_dir` too);
//   - `name` may be empty: the caller substitutes the host name.
//
// Threading: the loaders are reentrant (no globals); a loaded config is a plain value, safe to
// share as `const` between threads.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "scheduler/common/clock.h"
#include "scheduler/common/status.h"

namespace gsched::config {

enum class RuntimeType : uint8_t { kRunc, kCrun, kPodman, kDocker, kProcess };
inline constexpr std::array<std::string_view, 5> kRuntimeTypeNames = {"runc", "crun", "podman",
                                                                      "docker", "process"};
std::string_view ToString(RuntimeType type);

enum class GpuDiscovery : uint8_t { kFake, kNvidiaSmi };
inline constexpr std::array<std::string_view, 2> kGpuDiscoveryNames = {"fake", "nvidia-smi"};
std::string_view ToString(GpuDiscovery discovery);

// NVLink wiring of a fake inventory: none, neighbour pairs (0-1, 2-3, ...) or all-to-all
// (NVSwitch).
enum class NvlinkTopology : uint8_t { kNone, kPairs, kAll };
inline constexpr std::array<std::string_view, 3> kNvlinkTopologyNames = {"none", "pairs", "all"};
std::string_view ToString(NvlinkTopology topology);

struct ReconnectConfig {
  Duration initial_backoff = Duration(500);
  Duration max_backoff = Seconds(30);
};

struct RuntimeConfig {
  RuntimeType type = RuntimeType::kRunc;
  // The runtime's executable; empty: looked up on PATH by its type's name.
  std::string binary;
  // The runtime's state directory (`runc --root`); empty: the runtime's default.
  std::string root;
  // Extra arguments passed to the runtime before its subcommand.
  std::vector<std::string> extra_args;
};

struct FakeGpuConfig {
  int64_t count = 8;
  std::string type = "h100";
  int64_t memory_mib = 81920;
  NvlinkTopology nvlink = NvlinkTopology::kAll;
  // When set, faults are injected by writing to this file (e.g. "3 xid 79").
  std::string fault_file;
};

struct GpuConfig {
  GpuDiscovery discovery = GpuDiscovery::kNvidiaSmi;
  // The `nvidia-smi` executable, for `discovery: nvidia-smi`.
  std::string nvidia_smi = "nvidia-smi";
  FakeGpuConfig fake;
};

struct WorkerLogsConfig {
  // Each of a job's stdout and stderr is cut off after this many bytes.
  int64_t max_bytes_per_stream = int64_t{100} << 20;
};

struct WorkerConfig {
  std::string scheduler = "http://127.0.0.1:8600";
  std::string token_file;
  // Node name; empty: the host name (resolved by the caller).
  std::string name;
  std::string work_dir = "./gsched-worker";
  std::string site;
  std::string block;
  std::map<std::string, std::string> labels;
  // 0: detect.
  int64_t cpus = 0;
  // 0: detect.
  int64_t memory_mib = 0;
  Duration heartbeat_interval = Seconds(5);
  Duration health_check_interval = Seconds(30);
  ReconnectConfig reconnect;
  RuntimeConfig runtime;
  GpuConfig gpus;
  WorkerLogsConfig logs;
  // Drain the node when a GPU turns unhealthy.
  bool drain_on_unhealthy = true;
  // On start, re-adopt containers of a previous run instead of killing them.
  bool adopt_running_jobs = true;
};

// Loads `path`; relative paths inside are resolved against the file's directory.
Result<WorkerConfig> LoadWorkerConfig(const std::string& path);
// Parses YAML text; `source_name` names it in syntax errors. Relative paths are kept as written.
Result<WorkerConfig> ParseWorkerConfig(std::string_view yaml_text, std::string_view source_name);

}  // namespace gsched::config
