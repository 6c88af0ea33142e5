// `WorkerConfig`: what `gsched-worker` reads from `worker.yaml` (DESIGN.md section 6).
// `config/worker.yaml` documents every key with its default.
//
// Loaded once, validated, then handed by `const&` to the worker's parts (scheduler link, GPU
// inventory, runtime, supervisor). Command-line flags (`--scheduler`, `--name`, ...) override
// fields after loading; the caller does that, not this unit.
//
// Invariants of a loaded config:
//   - `schedulers` holds 1..16 `http://` or `https://` URLs (key `scheduler`: one URL, a
//     comma-separated list, or a YAML sequence of URLs: the schedulers of a high-availability
//     group, DESIGN.md section 12);
//   - `reconnect.initial_backoff <= reconnect.max_backoff`;
//   - `gpus.fake.count` is 0..64 and the fake GPU type is a valid name;
//   - relative `token_file`, `ca_file`, `work_dir`, `runtime.root` and `gpus.fake.fault_file` were
//   resolved
//     against the config file's directory when the config came from a file (the default
//     `work_dir` too);
//   - `name` may be empty: the caller substitutes the host name;
//   - `identity.min_uid >= 1`; a pool's ids lie at or above `min_uid` and below 2^32 - 1;
//     `identity.map_file` is set in `map` mode;
//   - `images.roots` are absolute, normalised and never `/`; registries are `host[:port]`, and
//     `images.insecure_registries` is a subset of them.
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

#include "scheduler/api/worker_messages.h"
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

// Whose POSIX identity a job runs under on the node (DESIGN.md section 11).
//   nss:  the node's user database (getpwnam/getgrouplist), as sites with LDAP/SSSD have;
//   map:  a file of `user: uid:gid[,group...]` lines (`map_file`);
//   pool: a block of `pool.ids_per_user` ids per user from `pool.first_uid`, assigned on first
//         use and kept in `work_dir/identities`; container root maps to the block's first id
//         through a user namespace.
enum class IdentityMode : uint8_t { kNss, kMap, kPool };
inline constexpr std::array<std::string_view, 3> kIdentityModeNames = {"nss", "map", "pool"};
std::string_view ToString(IdentityMode mode);

struct IdentityPoolConfig {
  int64_t first_uid = 1000000;
  // Users the pool holds; uids first_uid .. first_uid + users * ids_per_user - 1.
  int64_t users = 4096;
  // Ids mapped into each container (container 0..ids_per_user-1).
  int64_t ids_per_user = 65536;
};

struct IdentityConfig {
  IdentityMode mode = IdentityMode::kNss;
  // Uids (and gids) below this are refused; uid 0 always is.
  int64_t min_uid = 1000;
  std::string map_file;
  IdentityPoolConfig pool;
  // Development only: jobs run as the worker's own user - root when the worker runs as root -
  // without any identity. The worker says so at start.
  bool run_as_root = false;
};

// Where jobs' images may come from (DESIGN.md section 11).
struct ImagesConfig {
  // Root file systems only under these directories (resolved; never `/`).
  std::vector<std::string> roots;
  // OCI references only from these registries ("host[:port]").
  std::vector<std::string> registries;
  // Those of `registries` spoken to over plain http without TLS (tests and labs only).
  std::vector<std::string> insecure_registries;
  // Credentials per registry for pulls by runc/crun: a containers-auth.json file
  // (`{"auths": {"host:port": {"auth": "<base64 user:password>"}}}`) that must belong to the
  // worker's user and be readable by no one else (mode 0600). Empty: anonymous pulls. Never
  // passed to a job, a command line or a log.
  std::string credentials_file;
  // The node's image cache for runc/crun: one unpacked tree per digest. Empty: `work_dir/images`.
  std::string cache_dir;
  // The cache's size cap: beyond it the least recently used images no job runs from are removed.
  int64_t cache_max_bytes = int64_t{50} << 30;
  // How long one pull (resolve, download, unpack) may take before it fails.
  Duration pull_timeout = Seconds(1800);
};

// A job's network: the host's (NCCL over InfiniBand) or none (loopback only).
enum class NetworkMode : uint8_t { kHost, kNone };
inline constexpr std::array<std::string_view, 2> kNetworkModeNames = {"host", "none"};
std::string_view ToString(NetworkMode mode);

struct JobLimitsConfig {
  // Processes and threads per job (cgroup pids limit).
  int64_t pids = 4096;
};

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
  // Key `scheduler`: where to connect, in the order to try; the worker follows the leader.
  std::vector<std::string> schedulers = {"http://127.0.0.1:8600"};
  // For an https scheduler: the CA certificates (PEM) that sign its certificate; empty: the
  // system's store.
  std::string ca_file;
  // Mutual TLS (the scheduler's `tls.client_ca`): this node's certificate chain and private key
  // (PEM); the certificate names the node. Both or neither.
  std::string tls_cert;
  std::string tls_key;
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
  IdentityConfig identity;
  ImagesConfig images;
  NetworkMode network = NetworkMode::kHost;
  // Where this node's jobs can be reached by the other nodes of a gang (`MASTER_ADDR` when the
  // node is rank 0): a host name or IP address. Empty: the address this host uses to reach the
  // scheduler.
  std::string address;
  // The TCP ports handed out as `MASTER_PORT`, one per running attempt, both ends included.
  api::PortRange rendezvous_ports = api::kDefaultRendezvousPorts;
  JobLimitsConfig limits;
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
