#include "scheduler/api/codec.h"

#include <algorithm>
#include <array>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <cctype>
#include <limits>

#include "scheduler/api/array_spec.h"
#include "scheduler/api/decode.h"
#include "scheduler/api/image.h"
#include "scheduler/common/quantity.h"

namespace gsched::api {
namespace {

namespace json = boost::json;
using internal::Bool;
using internal::Charset;
using internal::DecodeArrayOf;
using internal::DecodeMapOf;
using internal::DecodeNvlinkPairs;
using internal::Enum;
using internal::Fields;
using internal::ImageDigest;
using internal::IntIn;
using internal::NumberIn;
using internal::NumberValue;
using internal::NvlinkPairsValue;
using internal::OptionalTime;
using internal::SecondsIn;
using internal::StringArray;
using internal::StringMap;
using internal::StringOf;
using internal::StringRule;
using internal::Time;
using internal::TimeValue;
using internal::Uint64In;

constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();
constexpr uint32_t kMaxU32 = std::numeric_limits<uint32_t>::max();
constexpr int64_t kMinI32 = std::numeric_limits<int32_t>::min();
constexpr int64_t kMaxI32 = std::numeric_limits<int32_t>::max();

constexpr size_t kMaxNameLen = 128;
constexpr size_t kMaxPathLen = 4096;
constexpr size_t kMaxArgs = 1024;
constexpr size_t kMaxArgBytes = 64 * 1024;
constexpr size_t kMaxEnv = 1024;
constexpr size_t kMaxEnvKeyLen = 256;
constexpr size_t kMaxEnvValueBytes = 64 * 1024;
constexpr size_t kMaxLabels = 64;
constexpr size_t kMaxLabelKeyLen = 128;
constexpr size_t kMaxLabelValueLen = 256;
constexpr size_t kMaxDependencies = 1024;
constexpr size_t kMaxGpuTypes = 16;
constexpr size_t kMaxMessageBytes = 4096;
constexpr int64_t kMaxShares = 1'000'000;

constexpr size_t kMaxAccounts = 256;

constexpr std::array<std::string_view, 7> kSignals = {"SIGTERM", "SIGINT",  "SIGUSR1", "SIGUSR2",
                                                      "SIGHUP",  "SIGQUIT", "SIGKILL"};

auto NameString() {
  return StringOf(1, kMaxNameLen, Charset::kName);
}
auto AnyString(size_t max_len) {
  return StringOf(0, max_len, Charset::kAny);
}
auto LabelsMap() {
  return [](const json::value& v) {
    return DecodeMapOf(v, kMaxLabels, StringRule{1, kMaxLabelKeyLen, Charset::kLabelKey},
                       AnyString(kMaxLabelValueLen));
  };
}
auto IntArray(size_t max_size, int64_t lo, int64_t hi) {
  return [=](const json::value& v) -> Result<std::vector<int32_t>> {
    ASSIGN_OR_RETURN(auto wide, DecodeArrayOf(v, max_size, IntIn(lo, hi)));
    return std::vector<int32_t>(wide.begin(), wide.end());
  };
}
auto NameArray(size_t max_size) {
  return [=](const json::value& v) { return DecodeArrayOf(v, max_size, NameString()); };
}

Result<std::string> DecodeSignal(const json::value& v) {
  ASSIGN_OR_RETURN(std::string s, internal::DecodeString(v, StringRule{1, 16, Charset::kName}));
  return NormalizeSignal(s);
}

Result<std::string> DecodeGpuTypeName(const json::value& v) {
  return internal::DecodeString(v, StringRule{1, 64, Charset::kGpuType});
}

// A single name or a list of names.
Result<std::vector<std::string>> DecodeGpuTypes(const json::value& v) {
  if (v.is_string()) {
    ASSIGN_OR_RETURN(std::string s, DecodeGpuTypeName(v));
    return std::vector<std::string>{std::move(s)};
  }
  if (!v.is_array())
    return Status::InvalidArgument("must be a GPU type name or an array of them");
  return DecodeArrayOf(v, kMaxGpuTypes, DecodeGpuTypeName);
}

Result<int64_t> DecodeMemoryMiB(const json::value& v) {
  std::string range = "must be 0.." + std::to_string(kMaxMemoryMiB) + " MiB (16T)";
  if (const json::string* s = v.if_string()) {
    if (s->size() > 64)
      return Status::InvalidArgument("must be an integer (MiB) or a size string (too long)");
    ASSIGN_OR_RETURN(int64_t mib, ParseSizeMiB(std::string_view(s->data(), s->size())));
    if (mib > kMaxMemoryMiB)
      return Status::InvalidArgument(range);
    return mib;
  }
  if (!v.is_int64() && !v.is_uint64())
    return Status::InvalidArgument("must be an integer (MiB) or a size string such as \"16G\"");
  auto r = internal::DecodeInt(v, 0, kMaxMemoryMiB);
  if (!r.ok())
    return Status::InvalidArgument(range);
  return r;
}

Result<std::string> DecodeArrayField(const json::value& v) {
  ASSIGN_OR_RETURN(std::string s, internal::DecodeString(v, StringRule{1, 4096, Charset::kAny}));
  RETURN_IF_ERROR(ValidateArraySpec(s));
  return s;
}

json::value GpuTypesValue(const std::vector<std::string>& types) {
  if (types.size() == 1)
    return json::value(types.front());
  return StringArray(types);
}

json::value AllocationsValue(const std::vector<Allocation>& allocation) {
  json::array a;
  a.reserve(allocation.size());
  for (const Allocation& x : allocation)
    a.push_back(Encode(x));
  return a;
}

template <typename T>
json::value OptionalValue(const std::optional<T>& v) {
  if (!v)
    return nullptr;
  return json::value(*v);
}

}  // namespace

Result<std::string> NormalizeSignal(std::string_view name) {
  std::string upper;
  for (char c : name)
    upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (!upper.starts_with("SIG"))
    upper = "SIG" + upper;
  if (std::find(kSignals.begin(), kSignals.end(), upper) == kSignals.end()) {
    return Status::InvalidArgument(
        "must be one of SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP, SIGQUIT, SIGKILL");
  }
  return upper;
}

Status CheckGpuTypeName(std::string_view name) {
  return internal::CheckString(name, StringRule{1, 64, Charset::kGpuType});
}

namespace internal {

Result<JobSpec> DecodeJobSpecFields(const json::value& v, Fields::Unknown unknown) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v,
                                          {"name",
                                           "account",
                                           "image",
                                           "command",
                                           "env",
                                           "workdir",
                                           "nodes",
                                           "gpus_per_node",
                                           "gpu_type",
                                           "cpus_per_node",
                                           "memory_mib_per_node",
                                           "time_limit_s",
                                           "priority_class",
                                           "topology",
                                           "array",
                                           "depends_on",
                                           "checkpoint_signal",
                                           "grace_period_s",
                                           "requeue",
                                           "labels"},
                                          unknown));
  JobSpec s;
  ASSIGN_OR_RETURN(s.name, f.OrDefault("name", NameString(), ""));
  ASSIGN_OR_RETURN(s.account, f.OrDefault("account", NameString(), ""));
  ASSIGN_OR_RETURN(s.image, f.Required("image", StringOf(1, kMaxPathLen)));
  ASSIGN_OR_RETURN(s.command, f.Required("command", [](const json::value& c) {
    return DecodeArrayOf(c, kMaxArgs, StringOf(0, kMaxArgBytes));
  }));
  if (s.command.empty())
    return Status::InvalidArgument("must not be empty", "command");
  if (s.command.front().empty())
    return Status::InvalidArgument("must not be empty", "command[0]");
  ASSIGN_OR_RETURN(s.env, f.OrDefault("env",
                                      [](const json::value& e) {
                                        return DecodeMapOf(
                                            e, kMaxEnv,
                                            StringRule{1, kMaxEnvKeyLen, Charset::kEnvKey},
                                            StringOf(0, kMaxEnvValueBytes));
                                      },
                                      {}));
  ASSIGN_OR_RETURN(s.workdir, f.OrDefault("workdir", StringOf(1, kMaxPathLen), ""));
  ASSIGN_OR_RETURN(s.nodes, f.OrDefault("nodes", IntIn(1, kMaxNodes), 1));
  ASSIGN_OR_RETURN(s.gpus_per_node, f.OrDefault("gpus_per_node", IntIn(0, kMaxGpusPerNode), 1));
  ASSIGN_OR_RETURN(s.gpu_type, f.OrDefault("gpu_type", DecodeGpuTypes, {}));
  ASSIGN_OR_RETURN(s.cpus_per_node, f.OrDefault("cpus_per_node", IntIn(0, kMaxCpusPerNode), 0));
  ASSIGN_OR_RETURN(s.memory_mib_per_node, f.OrDefault("memory_mib_per_node", DecodeMemoryMiB, 0));
  ASSIGN_OR_RETURN(s.time_limit_s, f.Optional("time_limit_s", SecondsIn(1, kMaxTimeLimitS)));
  ASSIGN_OR_RETURN(s.priority_class,
                   f.OrDefault("priority_class", Enum<PriorityClass>, PriorityClass::kNormal));
  ASSIGN_OR_RETURN(s.topology, f.OrDefault("topology", Enum<Topology>, Topology::kAny));
  ASSIGN_OR_RETURN(s.array, f.Optional("array", DecodeArrayField));
  ASSIGN_OR_RETURN(s.depends_on, f.OrDefault("depends_on",
                                             [](const json::value& d) {
                                               return DecodeArrayOf(d, kMaxDependencies,
                                                                    DecodeDependency);
                                             },
                                             {}));
  ASSIGN_OR_RETURN(s.checkpoint_signal,
                   f.OrDefault("checkpoint_signal", DecodeSignal, std::string("SIGTERM")));
  ASSIGN_OR_RETURN(s.grace_period_s, f.OrDefault("grace_period_s", IntIn(0, kMaxGracePeriodS), 30));
  ASSIGN_OR_RETURN(s.requeue, f.OrDefault("requeue", Bool, false));
  ASSIGN_OR_RETURN(s.labels, f.OrDefault("labels", LabelsMap(), {}));
  return s;
}

}  // namespace internal

Result<JobSpec> DecodeJobSpec(const json::value& v) {
  return internal::DecodeJobSpecFields(v, Fields::Unknown::kReject);
}

Status CheckNewJobSpec(const JobSpec& spec) {
  RETURN_IF_ERROR(CheckImage(spec.image));
  for (const auto& [name, value] : spec.env) {
    if (IsLoaderVariable(name)) {
      std::string field = "env";
      internal::AppendKeyToPath(field, name);
      return Status::InvalidArgument(
          "loader variables (LD_*, GCONV_PATH, ...) may not be set for a job; set them in the "
          "job's command or script instead",
          field);
    }
  }
  return Status::Ok();
}

namespace {
Result<JobSpec> DecodeNewJobSpec(const json::value& v) {
  ASSIGN_OR_RETURN(JobSpec spec, DecodeJobSpec(v));
  RETURN_IF_ERROR(CheckNewJobSpec(spec));
  return spec;
}
}  // namespace

Result<std::vector<JobSpec>> DecodeSubmitBody(const json::value& v) {
  const json::object* o = v.if_object();
  if (o == nullptr || !o->contains("jobs")) {
    ASSIGN_OR_RETURN(JobSpec spec, DecodeNewJobSpec(v));
    std::vector<JobSpec> out;
    out.push_back(std::move(spec));
    return out;
  }
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {"jobs"}, Fields::Unknown::kReject));
  ASSIGN_OR_RETURN(std::vector<JobSpec> jobs, f.Required("jobs", [](const json::value& a) {
    return DecodeArrayOf(a, kMaxBatchJobs, DecodeNewJobSpec);
  }));
  if (jobs.empty())
    return Status::InvalidArgument("must hold 1..10000 job specs", "jobs");
  return jobs;
}

Result<Dependency> DecodeDependency(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {"type", "job"}, Fields::Unknown::kReject));
  Dependency d;
  ASSIGN_OR_RETURN(d.type, f.Required("type", Enum<DependencyType>));
  ASSIGN_OR_RETURN(d.job, f.Required("job", Uint64In(1, kMaxU64)));
  return d;
}

Result<Reason> DecodeReason(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {}, Fields::Unknown::kIgnore));
  Reason r;
  ASSIGN_OR_RETURN(r.code, f.Required("code", Enum<ReasonCode>));
  ASSIGN_OR_RETURN(r.message, f.OrDefault("message", AnyString(kMaxMessageBytes), ""));
  if (const json::value* d = f.Find("details")) {
    if (!d->is_object())
      return Status::InvalidArgument("must be an object", "details");
    r.details = d->get_object();
  }
  ASSIGN_OR_RETURN(r.estimated_start, f.Optional("estimated_start", Time));
  return r;
}

Result<Allocation> DecodeAllocation(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {}, Fields::Unknown::kIgnore));
  Allocation a;
  ASSIGN_OR_RETURN(a.node, f.Required("node", NameString()));
  ASSIGN_OR_RETURN(a.gpus, f.OrDefault("gpus", IntArray(1024, 0, 1023), {}));
  return a;
}

Result<AttemptRecord> DecodeAttemptRecord(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {}, Fields::Unknown::kIgnore));
  AttemptRecord a;
  ASSIGN_OR_RETURN(a.attempt, f.Required("attempt", IntIn(1, kMaxU32)));
  ASSIGN_OR_RETURN(a.allocation, f.OrDefault("allocation",
                                             [](const json::value& x) {
                                               return DecodeArrayOf(x, kMaxNodes, DecodeAllocation);
                                             },
                                             {}));
  ASSIGN_OR_RETURN(a.start_time, f.Required("start_time", Time));
  ASSIGN_OR_RETURN(a.end_time, f.Optional("end_time", Time));
  ASSIGN_OR_RETURN(a.state, f.Required("state", Enum<JobState>));
  ASSIGN_OR_RETURN(a.exit_code, f.Optional("exit_code", IntIn(kMinI32, kMaxI32)));
  ASSIGN_OR_RETURN(a.message, f.OrDefault("message", AnyString(kMaxMessageBytes), ""));
  return a;
}

Result<Job> DecodeJob(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {}, Fields::Unknown::kIgnore));
  Job j;
  ASSIGN_OR_RETURN(j.id, f.Required("id", Uint64In(1, kMaxU64)));
  ASSIGN_OR_RETURN(j.spec, f.Required("spec", DecodeJobSpec));
  ASSIGN_OR_RETURN(j.user, f.Required("user", StringOf(1, 64, Charset::kUser)));
  ASSIGN_OR_RETURN(j.state, f.Required("state", Enum<JobState>));
  ASSIGN_OR_RETURN(j.submit_time, f.Required("submit_time", Time));
  ASSIGN_OR_RETURN(j.start_time, f.Optional("start_time", Time));
  ASSIGN_OR_RETURN(j.end_time, f.Optional("end_time", Time));
  ASSIGN_OR_RETURN(j.attempt, f.OrDefault("attempt", IntIn(0, kMaxU32), 0));
  ASSIGN_OR_RETURN(j.allocation, f.OrDefault("allocation",
                                             [](const json::value& x) {
                                               return DecodeArrayOf(x, kMaxNodes, DecodeAllocation);
                                             },
                                             {}));
  ASSIGN_OR_RETURN(j.exit_code, f.Optional("exit_code", IntIn(kMinI32, kMaxI32)));
  ASSIGN_OR_RETURN(j.signal, f.Optional("signal", StringOf(1, 32, Charset::kName)));
  ASSIGN_OR_RETURN(j.reason, f.Optional("reason", DecodeReason));
  ASSIGN_OR_RETURN(j.array_job_id, f.Optional("array_job_id", Uint64In(1, kMaxU64)));
  ASSIGN_OR_RETURN(j.array_index, f.Optional("array_index", IntIn(0, kMaxArrayIndex)));
  ASSIGN_OR_RETURN(j.borrowing, f.OrDefault("borrowing", Bool, false));
  ASSIGN_OR_RETURN(j.held, f.OrDefault("held", Bool, false));
  ASSIGN_OR_RETURN(j.held_by, f.OrDefault("held_by", StringOf(0, 64, Charset::kUser), ""));
  ASSIGN_OR_RETURN(j.held_by_role, f.Optional("held_by_role", Enum<Role>));
  ASSIGN_OR_RETURN(j.priority, f.OrDefault("priority", NumberIn(-1e300, 1e300), 0.0));
  ASSIGN_OR_RETURN(j.image_digest, f.OrDefault("image_digest", ImageDigest, ""));
  ASSIGN_OR_RETURN(j.attempts, f.OrDefault("attempts",
                                           [](const json::value& x) {
                                             return DecodeArrayOf(x, 100'000, DecodeAttemptRecord);
                                           },
                                           {}));
  ASSIGN_OR_RETURN(j.rendezvous, f.Optional("rendezvous", internal::DecodeRendezvous));
  return j;
}

Result<Gpu> DecodeGpu(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {}, Fields::Unknown::kIgnore));
  Gpu g;
  ASSIGN_OR_RETURN(g.index, f.Required("index", IntIn(0, 1023)));
  ASSIGN_OR_RETURN(g.uuid, f.OrDefault("uuid", AnyString(128), ""));
  // Empty: the node's type.
  ASSIGN_OR_RETURN(g.type, f.OrDefault("type", StringOf(0, 64, Charset::kGpuType), ""));
  ASSIGN_OR_RETURN(g.health, f.OrDefault("health", Enum<GpuHealth>, GpuHealth::kHealthy));
  ASSIGN_OR_RETURN(g.memory_mib, f.Optional("memory_mib", IntIn(0, kMaxMemoryMiB)));
  return g;
}

namespace internal {

Result<std::vector<std::pair<int32_t, int32_t>>> DecodeNvlinkPairs(const json::value& v) {
  return DecodeArrayOf(v, 1024 * 1024,
                       [](const json::value& p) -> Result<std::pair<int32_t, int32_t>> {
                         ASSIGN_OR_RETURN(std::vector<int32_t> pair, IntArray(2, 0, 1023)(p));
                         if (pair.size() != 2)
                           return Status::InvalidArgument("must be a pair of GPU indices [a, b]");
                         return std::pair<int32_t, int32_t>(pair[0], pair[1]);
                       });
}

Result<Rendezvous> DecodeRendezvous(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {"address", "port"}, Fields::Unknown::kReject));
  Rendezvous r;
  ASSIGN_OR_RETURN(r.address, f.Required("address", StringOf(1, kMaxHostLen, Charset::kHost)));
  ASSIGN_OR_RETURN(r.port, f.Required("port", IntIn(1, 65535)));
  return r;
}

json::value RendezvousValue(const std::optional<Rendezvous>& r) {
  if (!r)
    return nullptr;
  return json::object{{"address", r->address}, {"port", r->port}};
}

json::value NvlinkPairsValue(const std::vector<std::pair<int32_t, int32_t>>& pairs) {
  json::array a;
  a.reserve(pairs.size());
  for (const auto& [x, y] : pairs)
    a.push_back(json::array{x, y});
  return a;
}

}  // namespace internal

namespace {

json::value GpusValue(const std::vector<Gpu>& gpus) {
  json::array a;
  a.reserve(gpus.size());
  for (const Gpu& g : gpus)
    a.push_back(Encode(g));
  return a;
}

}  // namespace

Result<Node> DecodeNode(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {}, Fields::Unknown::kIgnore));
  Node n;
  ASSIGN_OR_RETURN(n.name, f.Required("name", NameString()));
  ASSIGN_OR_RETURN(n.address, f.OrDefault("address", StringOf(0, kMaxHostLen, Charset::kHost), ""));
  ASSIGN_OR_RETURN(n.site, f.OrDefault("site", StringOf(0, kMaxNameLen, Charset::kName), ""));
  ASSIGN_OR_RETURN(n.block, f.OrDefault("block", StringOf(0, kMaxNameLen, Charset::kName), ""));
  ASSIGN_OR_RETURN(n.gpu_type, f.OrDefault("gpu_type", StringOf(0, 64, Charset::kGpuType), ""));
  ASSIGN_OR_RETURN(n.gpu_count, f.OrDefault("gpu_count", IntIn(0, 1024), 0));
  ASSIGN_OR_RETURN(n.cpus, f.OrDefault("cpus", IntIn(0, 1'000'000), 0));
  ASSIGN_OR_RETURN(n.memory_mib, f.OrDefault("memory_mib", IntIn(0, int64_t{1} << 40), 0));
  ASSIGN_OR_RETURN(n.labels, f.OrDefault("labels", LabelsMap(), {}));
  ASSIGN_OR_RETURN(n.state, f.OrDefault("state", Enum<NodeState>, NodeState::kUp));
  ASSIGN_OR_RETURN(n.state_reason, f.OrDefault("state_reason", AnyString(kMaxMessageBytes), ""));
  ASSIGN_OR_RETURN(
      n.gpus,
      f.OrDefault("gpus", [](const json::value& x) { return DecodeArrayOf(x, 1024, DecodeGpu); },
                  {}));
  ASSIGN_OR_RETURN(n.nvlink_pairs, f.OrDefault("nvlink_pairs", DecodeNvlinkPairs, {}));
  ASSIGN_OR_RETURN(n.free_gpus, f.Optional("free_gpus", IntIn(0, 1024)));
  ASSIGN_OR_RETURN(n.last_heartbeat, f.Optional("last_heartbeat", Time));
  return n;
}

Result<Quota> DecodeQuota(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {"guaranteed", "limit"}, Fields::Unknown::kReject));
  Quota q;
  ASSIGN_OR_RETURN(q.guaranteed, f.OrDefault("guaranteed", IntIn(0, kMaxQuotaGpus), 0));
  // Without a limit, the account holds its guarantee and borrows nothing.
  ASSIGN_OR_RETURN(q.limit, f.OrDefault("limit", IntIn(0, kMaxQuotaGpus), q.guaranteed));
  if (q.limit < q.guaranteed) {
    return Status::InvalidArgument("must be >= guaranteed (" + std::to_string(q.guaranteed) + ")",
                                   "limit");
  }
  return q;
}

Result<Budget> DecodeBudget(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f,
                   Fields::Open(v, {"gpu_hours", "start", "end"}, Fields::Unknown::kReject));
  Budget b;
  ASSIGN_OR_RETURN(b.gpu_hours, f.Required("gpu_hours", NumberIn(0, 1e12)));
  ASSIGN_OR_RETURN(b.start, f.Required("start", Time));
  ASSIGN_OR_RETURN(b.end, f.Required("end", Time));
  if (b.end <= b.start)
    return Status::InvalidArgument("must be after start", "end");
  return b;
}

Result<Account> DecodeAccount(const json::value& v) {
  ASSIGN_OR_RETURN(
      Fields f, Fields::Open(v,
                             {"name", "parent", "shares", "quotas", "budget", "on_budget_exhausted",
                              "max_pending_jobs_per_user", "max_running_gpus_per_user", "users"},
                             Fields::Unknown::kReject));
  Account a;
  ASSIGN_OR_RETURN(a.name, f.OrDefault("name", NameString(), ""));
  ASSIGN_OR_RETURN(a.parent, f.OrDefault("parent", NameString(), ""));
  if (!a.name.empty() && a.parent == a.name)
    return Status::InvalidArgument("must not be the account itself", "parent");
  ASSIGN_OR_RETURN(a.shares, f.OrDefault("shares", IntIn(1, kMaxShares), 1));
  ASSIGN_OR_RETURN(
      a.quotas,
      f.OrDefault("quotas",
                  [](const json::value& q) {
                    return DecodeMapOf(q, 64, StringRule{1, 64, Charset::kGpuType}, DecodeQuota);
                  },
                  {}));
  ASSIGN_OR_RETURN(a.budget, f.Optional("budget", DecodeBudget));
  ASSIGN_OR_RETURN(a.on_budget_exhausted,
                   f.OrDefault("on_budget_exhausted", Enum<BudgetExhaustedPolicy>,
                               BudgetExhaustedPolicy::kPreemptible));
  ASSIGN_OR_RETURN(a.max_pending_jobs_per_user,
                   f.Optional("max_pending_jobs_per_user", IntIn(0, 10'000'000)));
  ASSIGN_OR_RETURN(a.max_running_gpus_per_user,
                   f.Optional("max_running_gpus_per_user", IntIn(0, kMaxQuotaGpus)));
  ASSIGN_OR_RETURN(a.users, f.Optional("users", [](const json::value& u) {
    return DecodeArrayOf(u, 100'000, StringOf(1, 64, Charset::kUser));
  }));
  return a;
}

Result<Event> DecodeEvent(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {}, Fields::Unknown::kIgnore));
  Event e;
  ASSIGN_OR_RETURN(e.seq, f.Required("seq", Uint64In(0, kMaxU64)));
  ASSIGN_OR_RETURN(e.type, f.Required("type", StringOf(1, 64, Charset::kName)));
  ASSIGN_OR_RETURN(e.time, f.Required("time", Time));
  if (const json::value* d = f.Find("data")) {
    if (!d->is_object())
      return Status::InvalidArgument("must be an object", "data");
    e.data = d->get_object();
  }
  return e;
}

// A node pattern of a worker token: `*`, or a node name optionally ending in `*`.
static Result<std::string> DecodeNodePattern(const json::value& v) {
  const char* rule = "must be a node name, a name prefix ending in '*', or '*'";
  const json::string* s = v.if_string();
  if (s == nullptr || s->empty() || s->size() > 129)
    return Status::InvalidArgument(rule);
  std::string_view text(s->data(), s->size());
  if (text == "*")
    return std::string(text);
  std::string_view name = text.back() == '*' ? text.substr(0, text.size() - 1) : text;
  if (!internal::CheckString(name, StringRule{1, 128, Charset::kName}).ok())
    return Status::InvalidArgument(std::string(rule) + ", got '" + internal::Printable(text) + "'");
  return std::string(text);
}

Result<TokenRequest> DecodeTokenRequest(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {"user", "role", "accounts", "expires_in_s", "nodes"},
                                          Fields::Unknown::kReject));
  TokenRequest t;
  ASSIGN_OR_RETURN(t.user, f.Required("user", StringOf(1, 64, Charset::kUser)));
  ASSIGN_OR_RETURN(t.role, f.OrDefault("role", Enum<Role>, Role::kUser));
  ASSIGN_OR_RETURN(t.accounts, f.OrDefault("accounts", NameArray(kMaxAccounts), {}));
  ASSIGN_OR_RETURN(t.expires_in_s, f.OrDefault("expires_in_s", SecondsIn(1, kMaxTokenLifetimeS),
                                               kDefaultTokenLifetimeS));
  ASSIGN_OR_RETURN(t.nodes, f.OrDefault("nodes",
                                        [](const json::value& n) {
                                          return DecodeArrayOf(n, kMaxTokenNodes,
                                                               DecodeNodePattern);
                                        },
                                        {}));
  // A worker token names what it serves; other roles serve no node.
  if (t.role == Role::kWorker && t.nodes.empty()) {
    return Status::InvalidArgument(
        "required for worker tokens: the node names or name prefixes ending in '*' it may serve "
        "('*' for every node)",
        "nodes");
  }
  if (t.role != Role::kWorker && !t.nodes.empty())
    return Status::InvalidArgument("only worker tokens serve nodes", "nodes");
  return t;
}

Result<TokenAnswer> DecodeTokenAnswer(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {}, Fields::Unknown::kIgnore));
  TokenAnswer t;
  ASSIGN_OR_RETURN(t.id, f.Required("id", NameString()));
  ASSIGN_OR_RETURN(t.token, f.Required("token", StringOf(1, 4096)));
  return t;
}

Result<WhoAmI> DecodeWhoAmI(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {}, Fields::Unknown::kIgnore));
  WhoAmI w;
  ASSIGN_OR_RETURN(w.user, f.Required("user", StringOf(1, 64, Charset::kUser)));
  ASSIGN_OR_RETURN(w.role, f.Required("role", Enum<Role>));
  ASSIGN_OR_RETURN(w.accounts, f.OrDefault("accounts", NameArray(kMaxAccounts), {}));
  ASSIGN_OR_RETURN(w.token_id, f.OrDefault("token_id", StringOf(0, kMaxNameLen), ""));
  ASSIGN_OR_RETURN(w.expires, f.Required("expires", Time));
  return w;
}

Result<ApiError> DecodeApiError(const json::value& v) {
  ASSIGN_OR_RETURN(Fields outer, Fields::Open(v, {}, Fields::Unknown::kIgnore));
  return outer.Required("error", [](const json::value& e) -> Result<ApiError> {
    ASSIGN_OR_RETURN(Fields f, Fields::Open(e, {}, Fields::Unknown::kIgnore));
    ApiError a;
    ASSIGN_OR_RETURN(a.code, f.Required("code", StringOf(1, 64)));
    ASSIGN_OR_RETURN(a.message, f.OrDefault("message", AnyString(64 * 1024), ""));
    ASSIGN_OR_RETURN(a.field, f.OrDefault("field", AnyString(4096), ""));
    return a;
  });
}

// Encoders. Fields go out in the order of DESIGN.md; maps in key order.

json::value Encode(const JobSpec& s) {
  json::object o;
  o.reserve(20);
  if (!s.name.empty())
    o.emplace("name", s.name);
  if (!s.account.empty())
    o.emplace("account", s.account);
  o.emplace("image", s.image);
  o.emplace("command", StringArray(s.command));
  o.emplace("env", StringMap(s.env));
  if (!s.workdir.empty())
    o.emplace("workdir", s.workdir);
  o.emplace("nodes", s.nodes);
  o.emplace("gpus_per_node", s.gpus_per_node);
  if (!s.gpu_type.empty())
    o.emplace("gpu_type", GpuTypesValue(s.gpu_type));
  o.emplace("cpus_per_node", s.cpus_per_node);
  o.emplace("memory_mib_per_node", s.memory_mib_per_node);
  if (s.time_limit_s)
    o.emplace("time_limit_s", *s.time_limit_s);
  o.emplace("priority_class", ToString(s.priority_class));
  o.emplace("topology", ToString(s.topology));
  if (s.array)
    o.emplace("array", *s.array);
  json::array deps;
  deps.reserve(s.depends_on.size());
  for (const Dependency& d : s.depends_on)
    deps.push_back(Encode(d));
  o.emplace("depends_on", std::move(deps));
  o.emplace("checkpoint_signal", s.checkpoint_signal);
  o.emplace("grace_period_s", s.grace_period_s);
  o.emplace("requeue", s.requeue);
  o.emplace("labels", StringMap(s.labels));
  return o;
}

json::value Encode(const Dependency& d) {
  return json::object{{"type", ToString(d.type)}, {"job", d.job}};
}

json::value Encode(const Reason& r) {
  json::object o;
  o.emplace("code", ToString(r.code));
  o.emplace("message", r.message);
  o.emplace("details", r.details);
  o.emplace("estimated_start", OptionalTime(r.estimated_start));
  return o;
}

json::value Encode(const Allocation& a) {
  json::array gpus;
  gpus.reserve(a.gpus.size());
  for (int32_t g : a.gpus)
    gpus.emplace_back(g);
  return json::object{{"node", a.node}, {"gpus", std::move(gpus)}};
}

json::value Encode(const AttemptRecord& a) {
  json::object o;
  o.emplace("attempt", static_cast<int64_t>(a.attempt));
  o.emplace("allocation", AllocationsValue(a.allocation));
  o.emplace("start_time", TimeValue(a.start_time));
  o.emplace("end_time", OptionalTime(a.end_time));
  o.emplace("state", ToString(a.state));
  o.emplace("exit_code", OptionalValue(a.exit_code));
  o.emplace("message", a.message);
  return o;
}

json::value Encode(const Job& j) {
  json::object o;
  o.reserve(20);
  o.emplace("id", j.id);
  o.emplace("spec", Encode(j.spec));
  o.emplace("user", j.user);
  o.emplace("state", ToString(j.state));
  o.emplace("submit_time", TimeValue(j.submit_time));
  o.emplace("start_time", OptionalTime(j.start_time));
  o.emplace("end_time", OptionalTime(j.end_time));
  o.emplace("attempt", static_cast<int64_t>(j.attempt));
  o.emplace("allocation", AllocationsValue(j.allocation));
  o.emplace("exit_code", OptionalValue(j.exit_code));
  o.emplace("signal", OptionalValue(j.signal));
  o.emplace("reason", j.reason ? Encode(*j.reason) : json::value(nullptr));
  o.emplace("array_job_id", OptionalValue(j.array_job_id));
  o.emplace("array_index",
            j.array_index ? json::value(static_cast<int64_t>(*j.array_index)) : json::value());
  o.emplace("borrowing", j.borrowing);
  o.emplace("held", j.held);
  if (!j.held_by.empty())
    o.emplace("held_by", j.held_by);
  if (j.held_by_role)
    o.emplace("held_by_role", ToString(*j.held_by_role));
  o.emplace("priority", NumberValue(j.priority));
  if (!j.image_digest.empty())
    o.emplace("image_digest", j.image_digest);
  json::array attempts;
  attempts.reserve(j.attempts.size());
  for (const AttemptRecord& a : j.attempts)
    attempts.push_back(Encode(a));
  o.emplace("attempts", std::move(attempts));
  o.emplace("rendezvous", internal::RendezvousValue(j.rendezvous));
  return o;
}

json::value Encode(const Gpu& g) {
  json::object o;
  o.emplace("index", g.index);
  o.emplace("uuid", g.uuid);
  o.emplace("type", g.type);
  o.emplace("health", ToString(g.health));
  o.emplace("memory_mib", OptionalValue(g.memory_mib));
  return o;
}

json::value Encode(const Node& n) {
  json::object o;
  o.reserve(15);
  o.emplace("name", n.name);
  o.emplace("address", n.address);
  o.emplace("site", n.site);
  o.emplace("block", n.block);
  o.emplace("gpu_type", n.gpu_type);
  o.emplace("gpu_count", n.gpu_count);
  o.emplace("cpus", n.cpus);
  o.emplace("memory_mib", n.memory_mib);
  o.emplace("labels", StringMap(n.labels));
  o.emplace("state", ToString(n.state));
  o.emplace("state_reason", n.state_reason);
  o.emplace("gpus", GpusValue(n.gpus));
  o.emplace("nvlink_pairs", NvlinkPairsValue(n.nvlink_pairs));
  o.emplace("free_gpus", OptionalValue(n.free_gpus));
  o.emplace("last_heartbeat", OptionalTime(n.last_heartbeat));
  return o;
}

json::value Encode(const Quota& q) {
  return json::object{{"guaranteed", q.guaranteed}, {"limit", q.limit}};
}

json::value Encode(const Budget& b) {
  json::object o;
  o.emplace("gpu_hours", NumberValue(b.gpu_hours));
  o.emplace("start", TimeValue(b.start));
  o.emplace("end", TimeValue(b.end));
  return o;
}

json::value Encode(const Account& a) {
  json::object o;
  o.reserve(9);
  if (!a.name.empty())
    o.emplace("name", a.name);
  if (!a.parent.empty())
    o.emplace("parent", a.parent);
  o.emplace("shares", a.shares);
  json::object quotas;
  for (const auto& [type, q] : a.quotas)
    quotas.emplace(type, Encode(q));
  o.emplace("quotas", std::move(quotas));
  if (a.budget)
    o.emplace("budget", Encode(*a.budget));
  o.emplace("on_budget_exhausted", ToString(a.on_budget_exhausted));
  if (a.max_pending_jobs_per_user)
    o.emplace("max_pending_jobs_per_user", *a.max_pending_jobs_per_user);
  if (a.max_running_gpus_per_user)
    o.emplace("max_running_gpus_per_user", *a.max_running_gpus_per_user);
  if (a.users)
    o.emplace("users", StringArray(*a.users));
  return o;
}

json::value Encode(const Event& e) {
  json::object o;
  o.emplace("seq", e.seq);
  o.emplace("type", e.type);
  o.emplace("time", TimeValue(e.time));
  o.emplace("data", e.data);
  return o;
}

json::value Encode(const TokenRequest& t) {
  json::object o;
  o.emplace("user", t.user);
  o.emplace("role", ToString(t.role));
  o.emplace("accounts", StringArray(t.accounts));
  o.emplace("expires_in_s", t.expires_in_s);
  if (!t.nodes.empty())
    o.emplace("nodes", StringArray(t.nodes));
  return o;
}

json::value Encode(const TokenAnswer& t) {
  return json::object{{"id", t.id}, {"token", t.token}};
}

json::value Encode(const WhoAmI& w) {
  json::object o;
  o.emplace("user", w.user);
  o.emplace("role", ToString(w.role));
  o.emplace("accounts", StringArray(w.accounts));
  o.emplace("token_id", w.token_id);
  o.emplace("expires", TimeValue(w.expires));
  return o;
}

json::value Encode(const ApiError& e) {
  json::object inner;
  inner.emplace("code", e.code);
  inner.emplace("message", e.message);
  if (!e.field.empty())
    inner.emplace("field", e.field);
  return json::object{{"error", std::move(inner)}};
}

json::value ErrorBody(const Status& status) {
  return Encode(
      ApiError{std::string(StatusCodeName(status.code())), status.message(), status.field()});
}

}  // namespace gsched::api
