// The wire types of DESIGN.md sections 2 and 5: what the REST API, the watch feed and the state
// store exchange (jobs, nodes, accounts, events, tokens, errors). Plain structs whose field names
// are the JSON names; the codecs are in codec.h. A default-constructed struct holds the documented
// defaults (`nodes` 1, `gpus_per_node` 1, `checkpoint_signal` "SIGTERM", ...), so that a decoded
// spec and a spec built in code agree.
//
// Optional fields are `std::optional`; strings that may be absent are empty when absent.
// Timestamps are `gsched::Timestamp` (milliseconds) and travel as RFC 3339 strings.
//
// Threading: values; no shared state.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "scheduler/api/enums.h"
#include "scheduler/common/clock.h"

namespace gsched::api {

// Limits of a `JobSpec`, enforced by `DecodeJobSpec`.
inline constexpr int64_t kMaxNodes = 4096;
inline constexpr int64_t kMaxGpusPerNode = 64;
inline constexpr int64_t kMaxCpusPerNode = 4096;
inline constexpr int64_t kMaxMemoryMiB = int64_t{16} << 20;  // 16 TiB.
inline constexpr int64_t kMaxTimeLimitS = int64_t{365} * 24 * 3600;
inline constexpr int64_t kMaxGracePeriodS = 3600;
inline constexpr size_t kMaxBatchJobs = 10'000;
// The largest GPU count a quota may name; it also stands for "no limit of its own".
inline constexpr int64_t kMaxQuotaGpus = 10'000'000;

struct Dependency {
  DependencyType type = DependencyType::kAfterOk;
  uint64_t job = 0;

  friend bool operator==(const Dependency&, const Dependency&) = default;
};

struct JobSpec {
  std::string name;     // Empty when not given.
  std::string account;  // Empty: the server fills in the user's default account.
  std::string image;
  std::vector<std::string> command;  // argv.
  std::map<std::string, std::string> env;
  std::string workdir;  // Empty: the image's default.
  int32_t nodes = 1;
  int32_t gpus_per_node = 1;
  std::vector<std::string> gpu_type;    // Acceptable types; empty means any.
  int32_t cpus_per_node = 0;            // 0: derived from the GPU share of the node.
  int64_t memory_mib_per_node = 0;      // 0: derived from the GPU share of the node.
  std::optional<int64_t> time_limit_s;  // Absent: the priority class's default.
  PriorityClass priority_class = PriorityClass::kNormal;
  Topology topology = Topology::kAny;
  std::optional<std::string> array;  // Valid for `ParseArraySpec`.
  std::vector<Dependency> depends_on;
  std::string checkpoint_signal = "SIGTERM";  // Always in "SIG..." form.
  int32_t grace_period_s = 30;
  bool requeue = false;
  std::map<std::string, std::string> labels;

  friend bool operator==(const JobSpec&, const JobSpec&) = default;
};

struct Reason {
  ReasonCode code = ReasonCode::kResources;
  std::string message;
  boost::json::object details;
  std::optional<Timestamp> estimated_start;

  friend bool operator==(const Reason&, const Reason&) = default;
};

struct Allocation {
  std::string node;
  std::vector<int32_t> gpus;

  friend bool operator==(const Allocation&, const Allocation&) = default;
};

// The longest host name or address a node may report (DNS's limit).
inline constexpr size_t kMaxHostLen = 253;

// Where the processes of a running attempt meet: the rank-0 node's address and a port chosen
// for the attempt, the same on every node (`MASTER_ADDR`, `MASTER_PORT`).
struct Rendezvous {
  std::string address;
  int32_t port = 0;

  friend bool operator==(const Rendezvous&, const Rendezvous&) = default;
};

// One start of a job: where it ran and how it ended.
struct AttemptRecord {
  uint32_t attempt = 0;
  std::vector<Allocation> allocation;
  Timestamp start_time{};
  std::optional<Timestamp> end_time;  // Absent while the attempt runs.
  JobState state = JobState::kStarting;
  std::optional<int32_t> exit_code;
  // How it ended, in the worker's words ("out of memory: ...", "cannot start: ..."); may be empty.
  std::string message;

  friend bool operator==(const AttemptRecord&, const AttemptRecord&) = default;
};

struct Job {
  uint64_t id = 0;
  JobSpec spec;
  std::string user;
  JobState state = JobState::kPending;
  Timestamp submit_time{};
  std::optional<Timestamp> start_time;
  std::optional<Timestamp> end_time;
  uint32_t attempt = 0;  // 0: never started.
  std::vector<Allocation> allocation;
  std::optional<int32_t> exit_code;
  std::optional<std::string> signal;  // The signal that ended the last attempt, "SIGKILL".
  std::optional<Reason> reason;       // Why it is pending.
  std::optional<uint64_t> array_job_id;
  std::optional<uint32_t> array_index;
  bool borrowing = false;
  bool held = false;
  // Who placed the hold, and in which role: a hold placed by an admin is released only by an
  // admin, one placed by a coordinator not by the job's user. Empty when not held.
  std::string held_by;
  std::optional<Role> held_by_role;
  double priority = 0;  // Informative: the last computed priority.
  std::vector<AttemptRecord> attempts;
  std::optional<Rendezvous> rendezvous;  // While an attempt is starting or running.
  // The image that ran, by digest ("sha256:..."), as the worker of the last attempt resolved
  // `spec.image`; empty while unknown (pending, a local root file system, an older worker).
  // Submitting `image@<digest>` repeats that run exactly.
  std::string image_digest;

  friend bool operator==(const Job&, const Job&) = default;
};

struct Gpu {
  int32_t index = 0;
  std::string uuid;
  std::string type;
  GpuHealth health = GpuHealth::kHealthy;
  std::optional<int64_t> memory_mib;

  friend bool operator==(const Gpu&, const Gpu&) = default;
};

struct Node {
  std::string name;
  std::string address;  // Where the node's jobs can be reached (its worker's `address`).
  std::string site;
  std::string block;
  std::string gpu_type;
  int32_t gpu_count = 0;
  int32_t cpus = 0;
  int64_t memory_mib = 0;
  std::map<std::string, std::string> labels;
  NodeState state = NodeState::kUp;
  std::string state_reason;
  std::vector<Gpu> gpus;
  std::vector<std::pair<int32_t, int32_t>> nvlink_pairs;
  std::optional<int32_t> free_gpus;
  std::optional<Timestamp> last_heartbeat;

  friend bool operator==(const Node&, const Node&) = default;
};

struct Quota {
  int64_t guaranteed = 0;
  int64_t limit = 0;  // >= guaranteed.

  friend bool operator==(const Quota&, const Quota&) = default;
};

struct Budget {
  double gpu_hours = 0;  // Normalised GPU-hours.
  Timestamp start{};
  Timestamp end{};  // > start.

  friend bool operator==(const Budget&, const Budget&) = default;
};

struct Account {
  std::string name;    // Empty in a `PUT /v1/accounts/{name}` body: the URL names it.
  std::string parent;  // Empty for `root`.
  int64_t shares = 1;
  std::map<std::string, Quota> quotas;  // By GPU type.
  std::optional<Budget> budget;
  BudgetExhaustedPolicy on_budget_exhausted = BudgetExhaustedPolicy::kPreemptible;
  std::optional<int64_t> max_pending_jobs_per_user;
  std::optional<int64_t> max_running_gpus_per_user;
  std::optional<std::vector<std::string>> users;

  friend bool operator==(const Account&, const Account&) = default;
};

// One entry of the event log, as the watch feed sends it.
struct Event {
  uint64_t seq = 0;
  std::string type;  // "job.state", "node.state", "account.update", "resync", ...
  Timestamp time{};
  boost::json::object data;

  friend bool operator==(const Event&, const Event&) = default;
};

inline constexpr int64_t kDefaultTokenLifetimeS = int64_t{30} * 24 * 3600;
inline constexpr int64_t kMaxTokenLifetimeS = int64_t{365} * 24 * 3600;

// Node patterns of a worker token, at most this many.
inline constexpr size_t kMaxTokenNodes = 256;

// Whether a worker token's node pattern covers `node`: an exact name, a prefix ending in `*`
// (`nacc-nvl003-*`), or `*` alone for every node.
inline bool NodePatternCovers(std::string_view pattern, std::string_view node) {
  if (!pattern.empty() && pattern.back() == '*')
    return node.substr(0, pattern.size() - 1) == pattern.substr(0, pattern.size() - 1);
  return pattern == node;
}

struct TokenRequest {
  std::string user;
  Role role = Role::kUser;
  std::vector<std::string> accounts;
  int64_t expires_in_s = kDefaultTokenLifetimeS;
  // Worker tokens only, and required for them: the nodes the token may serve (see
  // `NodePatternCovers`). Serving every node takes an explicit `*`.
  std::vector<std::string> nodes;

  friend bool operator==(const TokenRequest&, const TokenRequest&) = default;
};

struct TokenAnswer {
  std::string id;
  std::string token;

  friend bool operator==(const TokenAnswer&, const TokenAnswer&) = default;
};

struct WhoAmI {
  std::string user;
  Role role = Role::kUser;
  std::vector<std::string> accounts;
  std::string token_id;
  Timestamp expires{};

  friend bool operator==(const WhoAmI&, const WhoAmI&) = default;
};

// The body of every error answer: `{"error": {"code", "message", "field"}}`.
struct ApiError {
  std::string code;  // A `StatusCodeName`: "invalid_argument", "not_found", ...
  std::string message;
  std::string field;  // The JSON path for validation errors; empty otherwise.

  friend bool operator==(const ApiError&, const ApiError&) = default;
};

}  // namespace gsched::api
