// `SchedulerConfig`: everything `gsched-scheduler` reads from `scheduler.yaml` (DESIGN.md sections
// 3, 4, 5 and 9). `config/scheduler.yaml` documents every key with its default; the scheduling
// policy's defaults come from scheduler/common/policy_defaults.h, shared with the core.
//
// Configuration flows one way: YAML -> defaults -> validation -> this struct, which is then handed
// by `const&` to the constructors that need a part of it. Nothing reads it through a global. A
// default-constructed `SchedulerConfig` is the documented default configuration and is valid.
//
// Invariants of a loaded config (checked by the loader, so consumers need not re-check):
//   - `tls.cert` and `tls.key` are both set or both empty;
//   - `nodes.lost_timeout > nodes.heartbeat_timeout`;
//   - for every priority class `default_time_limit <= max_time_limit`;
//   - `gpu_types` names are unique; every GPU type in `partitions` is one of them;
//   - all counts and durations are within the ranges documented in `config/scheduler.yaml`;
//   - relative `data_dir`, `accounts_file`, `tls.cert` and `tls.key` were resolved against the
//     config file's directory when the config came from a file - the default `data_dir` too, so
//     that a file that spells out a default behaves exactly like one that leaves it out.
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

#include "config/gpu_types.h"
#include "scheduler/api/enums.h"
#include "scheduler/common/clock.h"
#include "scheduler/common/policy_defaults.h"
#include "scheduler/common/status.h"

namespace gsched::config {

enum class LogLevel : uint8_t { kTrace, kDebug, kInfo, kWarn, kError, kCritical, kOff };
inline constexpr std::array<std::string_view, 7> kLogLevelNames = {
    "trace", "debug", "info", "warn", "error", "critical", "off"};
std::string_view ToString(LogLevel level);

struct TlsConfig {
  // PEM certificate chain and private key. Both or neither; neither means plain HTTP.
  std::string cert;
  std::string key;
  // PEM CA certificates of the workers' client certificates (mutual TLS). When set, a worker must
  // present one signed by it, and may say hello only as a node its certificate names.
  std::string client_ca;

  bool enabled() const { return !cert.empty(); }
};

// Per-connection limits of the HTTP and WebSocket server.
struct HttpLimits {
  int64_t max_body_bytes = int64_t{8} << 20;
  int64_t max_header_bytes = int64_t{16} << 10;
  Duration request_timeout = Seconds(30);
  Duration idle_timeout = Seconds(120);
  int64_t max_connections = 10'000;
  // Open connections one token may hold (HTTP; the watch feeds have their own limit, and the worker
  // channel is bounded by the nodes a worker token serves); 0: no limit.
  int64_t max_connections_per_token = 64;
  int64_t ws_max_message_bytes = int64_t{1} << 20;
  // A submission's size once expanded: the sum over its specs of the spec's encoded bytes times
  // its array tasks. Bounds the memory one request can take (each task holds its own spec).
  int64_t max_submit_expanded_bytes = int64_t{64} << 20;
  // Pending jobs per user and account where the account sets no `max_pending_jobs_per_user`;
  // 0: no limit.
  int64_t max_pending_jobs_per_user = 100'000;
  // The longest window one `GET /v1/usage` may ask for: the report's cost follows its window.
  Duration max_usage_window = Seconds(int64_t{3660} * 86400);  // Ten years.
};

// Token bucket per bearer token.
struct RateLimitConfig {
  int64_t requests_per_s = 500;
  int64_t burst = 1000;
  // Per worker-channel connection: messages beyond this close the connection (the worker
  // reconnects and its hello reconciles).
  int64_t worker_messages_per_s = 200;
  int64_t worker_message_burst = 2000;
};

struct BackfillConfig {
  // How many of the highest-priority blocked jobs get a reservation; 0 reserves nothing.
  int64_t depth = policy_defaults::kBackfillDepth;
  bool enabled = policy_defaults::kBackfillEnabled;
};

struct SchedulingConfig {
  // A cycle runs at least this often (and on every relevant event).
  Duration interval = Seconds(1);
  BackfillConfig backfill;
  int64_t max_starts_per_cycle = policy_defaults::kMaxStartsPerCycle;
};

struct FairShareConfig {
  Duration half_life = policy_defaults::kHalfLife;
};

// `priority = fairshare*F + age*A + size*S + job_class*C` with factors in [0, 1].
struct PriorityWeights {
  int64_t fairshare = policy_defaults::kWeightFairshare;
  int64_t age = policy_defaults::kWeightAge;
  int64_t size = policy_defaults::kWeightSize;
  // YAML key `class` (a C++ keyword).
  int64_t job_class = policy_defaults::kWeightClass;
};

struct ClassTimeLimits {
  // Applied when a job gives no `time_limit_s`.
  Duration default_time_limit;
  // A job asking for more is rejected at submission.
  Duration max_time_limit;
};

struct PriorityConfig {
  PriorityWeights weights;
  // A job's age factor reaches 1 after this long pending.
  Duration age_max = policy_defaults::kAgeMax;
  // Indexed by `api::PriorityClass`; use `Limits()`.
  std::array<ClassTimeLimits, 3> classes = {{
      {policy_defaults::kHighLimits.default_limit, policy_defaults::kHighLimits.max_limit},
      {policy_defaults::kNormalLimits.default_limit, policy_defaults::kNormalLimits.max_limit},
      {policy_defaults::kPreemptibleLimits.default_limit,
       policy_defaults::kPreemptibleLimits.max_limit},
  }};

  const ClassTimeLimits& Limits(api::PriorityClass c) const {
    return classes[static_cast<size_t>(c)];
  }
};

struct PreemptionConfig {
  bool enabled = policy_defaults::kPreemptionEnabled;
  // A job younger than this is never a victim.
  Duration min_runtime = policy_defaults::kPreemptionMinRuntime;
  // Fraction of a preempted attempt's usage that is charged, 0..1.
  double usage_charge = policy_defaults::kPreemptionUsageCharge;
  int64_t max_per_cycle = policy_defaults::kPreemptionMaxPerCycle;
  int64_t max_per_account_per_hour = policy_defaults::kPreemptionMaxPerAccountPerHour;
  // A reclaim goes ahead once the job's waited GPU-seconds reach this x the victims' lost ones.
  double reclaim_wait_factor = policy_defaults::kPreemptionReclaimWaitFactor;
  // ... and at the latest once it has waited this long.
  Duration max_reclaim_wait = policy_defaults::kPreemptionMaxReclaimWait;
  // Grace between the checkpoint signal and the kill when a job sets no `grace_period_s`.
  Duration default_grace_period = Seconds(60);
};

struct NodesConfig {
  // No heartbeat for this long: the node is `down`.
  Duration heartbeat_timeout = Seconds(30);
  // Down for this long: its jobs become `node_fail`. Greater than `heartbeat_timeout`.
  Duration lost_timeout = Seconds(300);
};

struct HistoryConfig {
  // Finished jobs are pruned after this.
  Duration retention = Seconds(30 * 86400);
};

struct EventsConfig {
  Duration retention = Seconds(7 * 86400);
  int64_t max_events = 10'000'000;
};

struct WatchConfig {
  // Messages queued per subscriber before a slow one is dropped.
  int64_t queue_limit = 4096;
  Duration ping_interval = Seconds(20);
  // The newest events kept in memory for replays (`since`); older ones are read from the store.
  int64_t memory_events = 100'000;
  // How often `cluster.summary` and `account.usage` are sent to subscribers that take ephemeral
  // events (none are made while nobody does).
  Duration summary_interval = Seconds(10);
  // Open feeds per token; more are closed at once. 0: no limit.
  int64_t max_feeds_per_token = 64;
};

// High availability (DESIGN.md section 12): schedulers that share an etcd cluster, one leading.
// Without endpoints it is off: one scheduler and its own RocksDB, as always.
struct HaConfig {
  std::vector<std::string> etcd_endpoints;  // http(s)://HOST:PORT of the etcd members.
  std::string etcd_ca_file;                 // For https endpoints: the CA of their certificates.
  std::string etcd_prefix = "/gsched/";     // Every key gsched keeps in etcd starts with it.
  Duration lease_ttl = Seconds(5);          // The leader's lease; failover takes about this long.
  // How workers, clients and the other schedulers reach this one ("http://10.0.0.5:8600").
  // Empty: the scheme and `listen` (its bound port when `listen` asks for port 0); required when
  // `listen` is a wildcard address.
  std::string advertise_url;
  // This scheduler among its peers (standby lag is reported by name). Empty: advertise HOST:PORT.
  std::string name;

  bool enabled() const { return !etcd_endpoints.empty(); }
};

struct SchedulerConfig {
  // HOST:PORT; port 0 takes a free port.
  std::string listen = "127.0.0.1:8600";
  std::string data_dir = "./gsched-data";
  // Commits wait (writes are answered 503) while the disk under `data_dir` would have less free.
  int64_t min_free_disk_bytes = int64_t{64} << 20;
  LogLevel log_level = LogLevel::kInfo;
  TlsConfig tls;
  HaConfig ha;
  HttpLimits limits;
  RateLimitConfig rate_limit;
  SchedulingConfig scheduling;
  FairShareConfig fairshare;
  PriorityConfig priority;
  PreemptionConfig preemption;
  NodesConfig nodes;
  HistoryConfig history;
  EventsConfig events;
  WatchConfig watch;
  std::vector<GpuTypeSpec> gpu_types = DefaultGpuTypes();
  // An accounts YAML applied at first start (empty: none).
  std::string accounts_file;
  // Partition name -> acceptable GPU types, for `#SBATCH --partition`.
  std::map<std::string, std::vector<std::string>> partitions;
};

// Loads `path`; relative paths inside are resolved against the file's directory.
Result<SchedulerConfig> LoadSchedulerConfig(const std::string& path);
// Parses YAML text; `source_name` names it in syntax errors. Relative paths are kept as written.
Result<SchedulerConfig> ParseSchedulerConfig(std::string_view yaml_text,
                                             std::string_view source_name);

}  // namespace gsched::config
