#include "client/directives.h"

#include <algorithm>
#include <array>
#include <charconv>

#include "scheduler/api/array_spec.h"
#include "scheduler/api/codec.h"
#include "scheduler/common/quantity.h"

namespace gsched::client {
namespace {

// A job script is shipped inside the spec; keep it well under the server's 8 MiB body limit.
constexpr size_t kMaxScriptBytes = size_t{1} << 20;

Result<int64_t> ParseInt(std::string_view text, int64_t min, int64_t max) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || v < min || v > max)
    return Status::InvalidArgument("must be an integer in " + std::to_string(min) + ".." +
                                   std::to_string(max) + ", got '" + std::string(text) + "'");
  return v;
}

std::vector<std::string> SplitOn(std::string_view text, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t end = text.find(sep, start);
    out.emplace_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos)
      break;
    start = end + 1;
  }
  return out;
}

Result<std::vector<std::string>> ParseGpuTypes(std::string_view text) {
  std::vector<std::string> types;
  for (std::string& t : SplitOn(text, ',')) {
    if (Status s = api::CheckGpuTypeName(t); !s.ok())
      return Status::InvalidArgument("invalid GPU type '" + t + "': " + s.message());
    types.push_back(std::move(t));
  }
  return types;
}

Result<Duration> ParseGschedTime(std::string_view text) {
  if (!text.empty() &&
      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return Status::InvalidArgument("'" + std::string(text) + "' is ambiguous: add a unit (" +
                                   std::string(text) + "m, " + std::string(text) +
                                   "h) or use HH:MM:SS");
  return ParseDuration(text);
}

// `ParseSlurmTime` takes each field as a count ("1-25:00" is 1 day and 25 hours); a person who
// writes that most likely mistyped, so fields after the first must be in range.
Result<Duration> ParseStrictSlurmTime(std::string_view text) {
  auto bad = [&] {
    return Status::InvalidArgument("invalid duration '" + std::string(text) +
                                   "': hours must be < 24 after a day, minutes and seconds < 60");
  };
  size_t dash = text.find('-');
  std::vector<std::string> fields =
      SplitOn(dash == std::string_view::npos ? text : text.substr(dash + 1), ':');
  if (fields.size() > 1 || dash != std::string_view::npos) {
    for (size_t i = 0; i < fields.size(); ++i) {
      bool first = i == 0;
      if (first && dash == std::string_view::npos)
        continue;  // The leading field may be large: "90:00" is 90 minutes.
      auto v = ParseInt(fields[i], 0, first ? 23 : 59);
      if (!v.ok())
        return bad();
    }
  }
  return ParseSlurmTime(text);
}

Status SetTimeLimit(Result<Duration> d, std::string_view text, SubmitOptions& o) {
  std::string upper(text);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (upper == "UNLIMITED" || upper == "INFINITE")
    return Status::InvalidArgument(
        "'" + std::string(text) +
        "' is not accepted: gsched needs a time limit to plan backfill; leave it out for the "
        "priority class's default");
  if (!d.ok())
    return d.status();
  int64_t s = std::chrono::duration_cast<std::chrono::seconds>(*d).count();
  if (s < 1 || s > api::kMaxTimeLimitS)
    return Status::InvalidArgument("must be between 1s and 365d");
  o.time_limit_s = s;
  return Status::Ok();
}

Status AddEnv(std::string_view text, SubmitOptions& o) {
  size_t eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0)
    return Status::InvalidArgument("expected KEY=VALUE, got '" + std::string(text) + "'");
  o.env[std::string(text.substr(0, eq))] = std::string(text.substr(eq + 1));
  return Status::Ok();
}

Status AddDependencies(api::DependencyType type, std::string_view ids, SubmitOptions& o) {
  if (!o.depends_on)
    o.depends_on.emplace();
  for (const std::string& id : SplitOn(ids, ':')) {
    auto n = ParseInt(id, 1, INT64_MAX);
    if (!n.ok())
      return Status::InvalidArgument("invalid job id '" + id + "'");
    o.depends_on->push_back({type, static_cast<uint64_t>(*n)});
  }
  return Status::Ok();
}

// Slurm's `--dependency=afterok:1:2,afterany:3`.
Status ParseSlurmDependency(std::string_view text, SubmitOptions& o) {
  if (text.find('?') != std::string_view::npos)
    return Status::InvalidArgument("'?' (any of) dependencies are not supported; use ','");
  for (const std::string& part : SplitOn(text, ',')) {
    size_t colon = part.find(':');
    std::string type = part.substr(0, colon);
    auto t = api::ParseEnum<api::DependencyType>(type);
    if (!t)
      return Status::InvalidArgument("dependency type '" + type +
                                     "' is not supported; use afterok, afterany or afternotok");
    if (colon == std::string::npos || colon + 1 == part.size())
      return Status::InvalidArgument("'" + part + "' names no job id");
    RETURN_IF_ERROR(AddDependencies(*t, std::string_view(part).substr(colon + 1), o));
  }
  return Status::Ok();
}

Status SetSignal(std::string_view text, SubmitOptions& o) {
  auto sig = api::NormalizeSignal(text);
  if (!sig.ok()) {
    // Slurm also takes signal numbers.
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kNumbers = {{
        {"1", "SIGHUP"},
        {"2", "SIGINT"},
        {"3", "SIGQUIT"},
        {"9", "SIGKILL"},
        {"10", "SIGUSR1"},
        {"12", "SIGUSR2"},
        {"15", "SIGTERM"},
    }};
    for (auto [num, name] : kNumbers) {
      if (num == text) {
        o.checkpoint_signal = std::string(name);
        return Status::Ok();
      }
    }
    return sig.status();
  }
  o.checkpoint_signal = *sig;
  return Status::Ok();
}

Status SetGrace(int64_t seconds, SubmitOptions& o) {
  if (seconds < 0 || seconds > api::kMaxGracePeriodS)
    return Status::InvalidArgument("grace period must be 0..3600 seconds");
  o.grace_period_s = static_cast<int32_t>(seconds);
  return Status::Ok();
}

constexpr std::array kGschedOptions = std::to_array<GschedOption>({
    {"--name", 'J', true, false, "NAME", "Job name."},
    {"--account", 'A', true, false, "ACCOUNT", "Account to charge (default: your default)."},
    {"--image", 0, true, false, "IMAGE", "Container image (rootfs path or image name)."},
    {"--gpus", 'G', true, false, "N", "GPUs per node (0..64)."},
    {"--nodes", 'N', true, false, "N", "Nodes (a gang: all start together)."},
    {"--gpu-type", 0, true, false, "T[,T]", "Acceptable GPU types, e.g. h100,h200."},
    {"--time", 't', true, false, "DURATION", "Time limit: 4h, 90m, 1-12:00:00."},
    {"--class", 0, true, false, "CLASS", "Priority class: high, normal or preemptible."},
    {"--topology", 0, true, false, "SCOPE", "Keep a gang inside one: any, site or block."},
    {"--array", 'a', true, false, "SPEC", "Job array, e.g. 0-99%10."},
    {"--after-ok", 0, true, true, "ID", "Start after job ID completed successfully."},
    {"--after-any", 0, true, true, "ID", "Start after job ID ended in any way."},
    {"--after-not-ok", 0, true, true, "ID", "Start after job ID failed."},
    {"--env", 'e', true, true, "KEY=VAL", "Environment variable of the job."},
    {"--label", 0, true, true, "KEY=VAL", "Label of the job."},
    {"--cpus", 'c', true, false, "N", "CPUs per node (default: the GPU share)."},
    {"--mem", 0, true, false, "SIZE", "Memory per node: 64G, 512000M."},
    {"--workdir", 'D', true, false, "DIR", "Working directory inside the job."},
    {"--signal", 0, true, false, "SIG", "Checkpoint signal before a kill (default SIGTERM)."},
    {"--grace", 0, true, false, "DURATION", "Time between the signal and the kill (<= 1h)."},
    {"--requeue", 0, false, false, "", "Requeue after preemption or node failure."},
    {"--no-requeue", 0, false, false, "", "Do not requeue (the default)."},
});

// A Slurm directive and how it maps onto `SubmitOptions`.
struct SlurmOption {
  std::string_view long_name;
  char short_name;
  bool takes_value;
  // Returns a warning (empty for none) or an error.
  std::function<Result<std::string>(std::string_view, const DirectiveContext&, SubmitOptions&)>
      apply;
};

Result<std::string> NoWarning(Status s) {
  if (!s.ok())
    return s;
  return std::string();
}

// `gpu:N`, `gpu:TYPE:N`, `gpu` (1); other generic resources are warned about.
Result<std::string> ApplyGres(std::string_view text, SubmitOptions& o) {
  std::string warning;
  for (const std::string& item : SplitOn(text, ',')) {
    std::vector<std::string> parts = SplitOn(item, ':');
    if (parts[0] != "gpu") {
      warning += (warning.empty() ? "" : "; ") + std::string("generic resource '") + item +
                 "' is not supported; ignored";
      continue;
    }
    if (parts.size() > 3)
      return Status::InvalidArgument("invalid GPU request '" + item + "'");
    int64_t n = 1;
    if (parts.size() >= 2) {
      auto count = ParseInt(parts.back(), 0, api::kMaxGpusPerNode);
      if (parts.size() == 2 && !count.ok()) {
        // `gpu:h100` means one GPU of that type.
        ASSIGN_OR_RETURN(o.gpu_type, ParseGpuTypes(parts[1]));
      } else {
        if (!count.ok())
          return Status::InvalidArgument("invalid GPU count in '" + item +
                                         "': " + count.status().message());
        n = *count;
        if (parts.size() == 3) {
          ASSIGN_OR_RETURN(o.gpu_type, ParseGpuTypes(parts[1]));
        }
      }
    }
    o.gpus_per_node = static_cast<int32_t>(n);
  }
  return warning;
}

// `N` or `TYPE:N`.
Status ApplyGpusPerNode(std::string_view text, SubmitOptions& o) {
  size_t colon = text.rfind(':');
  if (colon != std::string_view::npos) {
    ASSIGN_OR_RETURN(o.gpu_type, ParseGpuTypes(text.substr(0, colon)));
    text = text.substr(colon + 1);
  }
  ASSIGN_OR_RETURN(int64_t n, ParseInt(text, 0, api::kMaxGpusPerNode));
  o.gpus_per_node = static_cast<int32_t>(n);
  return Status::Ok();
}

Result<std::string> ApplyExport(std::string_view text, const DirectiveContext& ctx,
                                SubmitOptions& o) {
  std::string warning;
  for (const std::string& item : SplitOn(text, ',')) {
    if (item == "ALL" || item == "NIL") {
      warning = "the submit environment is not copied into jobs; pass variables as VAR=value";
    } else if (item == "NONE") {
      // gsched never copies the submit environment: nothing to do.
    } else if (item.find('=') != std::string::npos) {
      RETURN_IF_ERROR(AddEnv(item, o));
    } else {
      std::optional<std::string> v = ctx.getenv ? ctx.getenv(item) : std::nullopt;
      if (!v)
        return Status::InvalidArgument("'" + item + "' is not set in the submit environment");
      o.env[item] = *v;
    }
  }
  return warning;
}

Result<std::string> ApplyQos(std::string_view text, SubmitOptions& o) {
  std::string q(text);
  std::transform(q.begin(), q.end(), q.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (q == "high") {
    o.priority_class = api::PriorityClass::kHigh;
  } else if (q == "normal" || q == "standard") {
    o.priority_class = api::PriorityClass::kNormal;
  } else if (q == "low" || q == "scavenger" || q == "standby" || q == "preempt" ||
             q == "preemptible") {
    o.priority_class = api::PriorityClass::kPreemptible;
  } else {
    return Status::InvalidArgument(
        "unknown QOS '" + std::string(text) +
        "': use high, normal (standard) or low (scavenger, standby, preemptible)");
  }
  return std::string();
}

// `[B:|R:]SIG[@SECS]`.
Status ApplySlurmSignal(std::string_view text, SubmitOptions& o) {
  if (text.starts_with("B:") || text.starts_with("R:"))
    text.remove_prefix(2);
  else if (text.starts_with("RB:") || text.starts_with("BR:"))
    text.remove_prefix(3);
  size_t at = text.find('@');
  RETURN_IF_ERROR(SetSignal(text.substr(0, at), o));
  if (at != std::string_view::npos) {
    ASSIGN_OR_RETURN(int64_t secs, ParseInt(text.substr(at + 1), 0, api::kMaxGracePeriodS));
    RETURN_IF_ERROR(SetGrace(secs, o));
  }
  return Status::Ok();
}

const std::vector<SlurmOption>& SlurmOptions() {
  using R = Result<std::string>;
  using Ctx = DirectiveContext;
  static const std::vector<SlurmOption> kOptions = {
      {"--gres", 0, true,
       [](std::string_view v, const Ctx&, SubmitOptions& o) -> R { return ApplyGres(v, o); }},
      {"--gpus-per-node", 0, true,
       [](std::string_view v, const Ctx&, SubmitOptions& o) -> R {
         return NoWarning(ApplyGpusPerNode(v, o));
       }},
      {"--nodes", 'N', true,
       [](std::string_view v, const Ctx&, SubmitOptions& o) -> R {
         // `N-M`: gsched runs gangs of a fixed size; take the minimum.
         std::string_view min = v.substr(0, v.find('-'));
         ASSIGN_OR_RETURN(int64_t n, ParseInt(min, 1, api::kMaxNodes));
         o.nodes = static_cast<int32_t>(n);
         if (min.size() != v.size())
           return "a node range runs on its minimum, " + std::string(min) + " node(s)";
         return std::string();
       }},
      {"--time", 't', true,
       [](std::string_view v, const Ctx&, SubmitOptions& o) -> R {
         return NoWarning(SetTimeLimit(ParseStrictSlurmTime(v), v, o));
       }},
      {"--account", 'A', true,
       [](std::string_view v, const Ctx&, SubmitOptions& o) -> R {
         o.account = std::string(v);
         return std::string();
       }},
      {"--job-name", 'J', true,
       [](std::string_view v, const Ctx&, SubmitOptions& o) -> R {
         o.name = std::string(v);
         return std::string();
       }},
      {"--array", 'a', true,
       [](std::string_view v, const Ctx&, SubmitOptions& o) -> R {
         RETURN_IF_ERROR(api::ValidateArraySpec(v));
         o.array = std::string(v);
         return std::string();
       }},
      {"--dependency", 'd', true,
       [](std::string_view v, const Ctx&, SubmitOptions& o) -> R {
         return NoWarning(ParseSlurmDependency(v, o));
       }},
      {"--output", 'o', true,
       [](std::string_view v, const Ctx&, SubmitOptions&) -> R {
         return "output path '" + std::string(v) +
                "' is not used: gsched keeps stdout itself (gsched logs ID)";
       }},
      {"--error", 'e', true,
       [](std::string_view v, const Ctx&, SubmitOptions&) -> R {
         return "error path '" + std::string(v) +
                "' is not used: gsched keeps stderr itself (gsched logs --stderr ID)";
       }},
      {"--partition", 'p', true,
       [](std::string_view v, const Ctx& ctx, SubmitOptions& o) -> R {
         std::vector<std::string> types;
         for (const std::string& p : SplitOn(v, ',')) {
           auto it = ctx.partitions.find(p);
           if (it == ctx.partitions.end()) {
             std::string known;
             for (const auto& [name, _] : ctx.partitions)
               known += (known.empty() ? "" : ", ") + name;
             return Status::InvalidArgument(
                 "unknown partition '" + p + "'" +
                 (known.empty() ? std::string("; no partitions are configured (partitions: in "
                                              "~/.config/gsched/config.yaml)")
                                : "; known: " + known));
           }
           types.insert(types.end(), it->second.begin(), it->second.end());
         }
         o.gpu_type = std::move(types);
         return std::string();
       }},
      // Tasks are started by `srun` inside the job (the worker's launcher), which reads these.
      {"--ntasks-per-node", 0, true,
       [](std::string_view v, const Ctx&, SubmitOptions& o) -> R {
         ASSIGN_OR_RETURN(int64_t n, ParseInt(v, 1, 4096));
         o.env["SLURM_NTASKS_PER_NODE"] = std::to_string(n);
         return std::string();
       }},
      {"--ntasks", 'n', true,
       [](std::string_view v, const Ctx&, SubmitOptions& o) -> R {
         ASSIGN_OR_RETURN(int64_t n, ParseInt(v, 1, 1 << 20));
         o.env["SLURM_NTASKS"] = std::to_string(n);
         return std::string();
       }},
      {"--cpus-per-task", 'c', true,
       [](std::string_view v, const Ctx&, SubmitOptions& o) -> R {
         ASSIGN_OR_RETURN(int64_t n, ParseInt(v, 0, api::kMaxCpusPerNode));
         o.cpus_per_node = static_cast<int32_t>(n);
         return std::string();
       }},
      {"--mem", 0, true,
       [](std::string_view v, const Ctx&, SubmitOptions& o) -> R {
         ASSIGN_OR_RETURN(o.memory_mib_per_node, ParseSizeMiB(v));
         return std::string();
       }},
      {"--export", 0, true,
       [](std::string_view v, const Ctx& ctx, SubmitOptions& o) -> R {
         return ApplyExport(v, ctx, o);
       }},
      {"--qos", 'q', true,
       [](std::string_view v, const Ctx&, SubmitOptions& o) -> R { return ApplyQos(v, o); }},
      {"--requeue", 0, false,
       [](std::string_view, const Ctx&, SubmitOptions& o) -> R {
         o.requeue = true;
         return std::string();
       }},
      {"--no-requeue", 0, false,
       [](std::string_view, const Ctx&, SubmitOptions& o) -> R {
         o.requeue = false;
         return std::string();
       }},
      {"--signal", 0, true,
       [](std::string_view v, const Ctx&, SubmitOptions& o) -> R {
         return NoWarning(ApplySlurmSignal(v, o));
       }},
      {"--chdir", 'D', true,
       [](std::string_view v, const Ctx&, SubmitOptions& o) -> R {
         o.workdir = std::string(v);
         return std::string();
       }},
  };
  return kOptions;
}

// Whether an unknown option has its value in the next word (`--mail-user alice`, `-n 4`): when
// the option carries no value itself and the next word does not look like an option.
bool UnknownTakesValue(std::string_view word, bool is_long, const std::vector<std::string>& words,
                       size_t i) {
  bool has_own_value = is_long ? word.find('=') != std::string_view::npos : word.size() > 2;
  return !has_own_value && i + 1 < words.size() && !words[i + 1].starts_with("-");
}

}  // namespace

SubmitOptions MergeOptions(SubmitOptions base, const SubmitOptions& over) {
  auto take = [](auto& b, const auto& o) {
    if (o)
      b = o;
  };
  take(base.name, over.name);
  take(base.account, over.account);
  take(base.image, over.image);
  take(base.workdir, over.workdir);
  take(base.nodes, over.nodes);
  take(base.gpus_per_node, over.gpus_per_node);
  take(base.gpu_type, over.gpu_type);
  take(base.cpus_per_node, over.cpus_per_node);
  take(base.memory_mib_per_node, over.memory_mib_per_node);
  take(base.time_limit_s, over.time_limit_s);
  take(base.priority_class, over.priority_class);
  take(base.topology, over.topology);
  take(base.array, over.array);
  take(base.depends_on, over.depends_on);
  take(base.checkpoint_signal, over.checkpoint_signal);
  take(base.grace_period_s, over.grace_period_s);
  take(base.requeue, over.requeue);
  for (const auto& [k, v] : over.env)
    base.env[k] = v;
  for (const auto& [k, v] : over.labels)
    base.labels[k] = v;
  return base;
}

std::span<const GschedOption> GschedOptionTable() {
  return kGschedOptions;
}

Status ApplyGschedOption(std::string_view name, std::string_view value, const DirectiveContext&,
                         SubmitOptions& o) {
  auto set_int = [&](auto& field, int64_t min, int64_t max) -> Status {
    ASSIGN_OR_RETURN(int64_t n, ParseInt(value, min, max));
    field = static_cast<std::remove_reference_t<decltype(*field)>>(n);
    return Status::Ok();
  };
  if (name == "--name") {
    o.name = std::string(value);
  } else if (name == "--account") {
    o.account = std::string(value);
  } else if (name == "--image") {
    o.image = std::string(value);
  } else if (name == "--gpus") {
    return set_int(o.gpus_per_node, 0, api::kMaxGpusPerNode);
  } else if (name == "--nodes") {
    return set_int(o.nodes, 1, api::kMaxNodes);
  } else if (name == "--gpu-type") {
    ASSIGN_OR_RETURN(o.gpu_type, ParseGpuTypes(value));
  } else if (name == "--time") {
    return SetTimeLimit(ParseGschedTime(value), value, o);
  } else if (name == "--class") {
    auto c = api::ParseEnum<api::PriorityClass>(value);
    if (!c)
      return Status::InvalidArgument("must be one of " + api::EnumNames<api::PriorityClass>());
    o.priority_class = *c;
  } else if (name == "--topology") {
    auto t = api::ParseEnum<api::Topology>(value);
    if (!t)
      return Status::InvalidArgument("must be one of " + api::EnumNames<api::Topology>());
    o.topology = *t;
  } else if (name == "--array") {
    RETURN_IF_ERROR(api::ValidateArraySpec(value));
    o.array = std::string(value);
  } else if (name == "--after-ok") {
    return AddDependencies(api::DependencyType::kAfterOk, value, o);
  } else if (name == "--after-any") {
    return AddDependencies(api::DependencyType::kAfterAny, value, o);
  } else if (name == "--after-not-ok") {
    return AddDependencies(api::DependencyType::kAfterNotOk, value, o);
  } else if (name == "--env") {
    return AddEnv(value, o);
  } else if (name == "--label") {
    size_t eq = value.find('=');
    if (eq == std::string_view::npos || eq == 0)
      return Status::InvalidArgument("expected KEY=VALUE, got '" + std::string(value) + "'");
    o.labels[std::string(value.substr(0, eq))] = std::string(value.substr(eq + 1));
  } else if (name == "--cpus") {
    return set_int(o.cpus_per_node, 0, api::kMaxCpusPerNode);
  } else if (name == "--mem") {
    ASSIGN_OR_RETURN(o.memory_mib_per_node, ParseSizeMiB(value));
  } else if (name == "--workdir") {
    o.workdir = std::string(value);
  } else if (name == "--signal") {
    return SetSignal(value, o);
  } else if (name == "--grace") {
    ASSIGN_OR_RETURN(Duration d, ParseDuration(value));
    return SetGrace(std::chrono::duration_cast<std::chrono::seconds>(d).count(), o);
  } else if (name == "--requeue") {
    o.requeue = true;
  } else if (name == "--no-requeue") {
    o.requeue = false;
  } else {
    return Status::InvalidArgument("unknown option");
  }
  return Status::Ok();
}

Result<std::vector<std::string>> SplitDirectiveWords(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (char c : text) {
    if (quote) {
      if (c == quote)
        quote = 0;
      else
        word += c;
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == ' ' || c == '\t' || c == '\r') {
      if (in_word)
        words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else if (c == '#' && !in_word) {
      break;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (quote)
    return Status::InvalidArgument("unterminated quote");
  if (in_word)
    words.push_back(std::move(word));
  return words;
}

Result<ParsedScript> ParseScript(std::string_view text, std::string_view source_name,
                                 const DirectiveContext& ctx) {
  if (text.size() > kMaxScriptBytes)
    return Status::InvalidArgument(std::string(source_name) + ": script is larger than 1 MiB");
  if (text.find('\0') != std::string_view::npos)
    return Status::InvalidArgument(std::string(source_name) + ": not a text file (NUL byte)");
  ParsedScript out;
  out.interpreter = {"/bin/sh"};
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    pos = end == std::string_view::npos ? text.size() : end + 1;
    ++line_no;
    std::string where = std::string(source_name) + ":" + std::to_string(line_no) + ": ";
    if (line_no == 1 && line.starts_with("#!")) {
      ASSIGN_OR_RETURN(out.interpreter, SplitDirectiveWords(line.substr(2)));
      if (out.interpreter.empty())
        return Status::InvalidArgument(where + "empty shebang");
      std::string prog = out.interpreter.back();
      prog = prog.substr(prog.rfind('/') + 1);
      if (out.interpreter.size() > 2 ||
          (out.interpreter.size() == 2 && !out.interpreter[0].ends_with("/env")) ||
          !(prog == "sh" || prog == "bash" || prog == "dash" || prog == "zsh" || prog == "ksh"))
        return Status::InvalidArgument(where + "interpreter '" + std::string(line.substr(2)) +
                                       "' is not a shell; submit it as a command instead: "
                                       "gsched submit [flags] -- PROGRAM SCRIPT");
      continue;
    }
    size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string_view::npos)
      continue;
    if (line[first] != '#')
      break;  // Directives end at the first command, as in Slurm.
    std::string_view body = line.substr(first);
    bool gsched = body.starts_with("#GSCHED");
    bool sbatch = body.starts_with("#SBATCH");
    if (!gsched && !sbatch)
      continue;
    std::string_view prefix = gsched ? "#GSCHED" : "#SBATCH";
    body.remove_prefix(7);
    if (!body.empty() && body[0] != ' ' && body[0] != '\t')
      continue;  // `#SBATCHX`: an ordinary comment.
    auto words = SplitDirectiveWords(body);
    if (!words.ok())
      return Status::InvalidArgument(where + words.status().message());
    for (size_t i = 0; i < words->size(); ++i) {
      const std::string& word = (*words)[i];
      if (!word.starts_with("-") || word == "-" || word == "--") {
        out.warnings.push_back(where + std::string(prefix) + " '" + word +
                               "' is not an option; ignored");
        continue;
      }
      std::string name;
      std::optional<std::string> inline_value;
      bool is_long = word.starts_with("--");
      if (is_long) {
        size_t eq = word.find('=');
        name = word.substr(0, eq);
        if (eq != std::string::npos)
          inline_value = word.substr(eq + 1);
      } else {
        name = word.substr(0, 2);
        if (word.size() > 2)
          inline_value = word.substr(word[2] == '=' ? 3 : 2);
      }
      // Find the option in the table of this prefix.
      std::string long_name;
      bool takes_value = false;
      const SlurmOption* slurm = nullptr;
      if (gsched) {
        for (const GschedOption& g : kGschedOptions) {
          if ((is_long && g.long_name == name) ||
              (!is_long && g.short_name != 0 && name[1] == g.short_name)) {
            long_name = std::string(g.long_name);
            takes_value = g.takes_value;
          }
        }
      } else {
        for (const SlurmOption& s : SlurmOptions()) {
          if ((is_long && s.long_name == name) ||
              (!is_long && s.short_name != 0 && name[1] == s.short_name)) {
            long_name = std::string(s.long_name);
            takes_value = s.takes_value;
            slurm = &s;
          }
        }
      }
      if (long_name.empty()) {
        out.warnings.push_back(where + std::string(prefix) + " " + name +
                               " is not supported; ignored");
        if (UnknownTakesValue(word, is_long, *words, i))
          ++i;
        continue;
      }
      std::string value;
      if (takes_value) {
        if (inline_value) {
          value = *inline_value;
        } else if (i + 1 < words->size()) {
          value = (*words)[++i];
        } else {
          return Status::InvalidArgument(where + long_name + ": needs a value");
        }
      } else if (inline_value) {
        return Status::InvalidArgument(where + long_name + ": takes no value");
      }
      if (slurm) {
        auto warning = slurm->apply(value, ctx, out.options);
        if (!warning.ok())
          return Status::InvalidArgument(where + long_name + ": " + warning.status().message());
        if (!warning->empty())
          out.warnings.push_back(where + std::string(prefix) + " " + long_name + ": " + *warning);
      } else if (Status s = ApplyGschedOption(long_name, value, ctx, out.options); !s.ok()) {
        return Status::InvalidArgument(where + long_name + ": " + s.message());
      }
    }
  }
  return out;
}

std::vector<std::string> ScriptCommand(const ParsedScript& parsed, std::string_view script_text,
                                       std::string_view script_name,
                                       const std::vector<std::string>& args) {
  std::vector<std::string> command = parsed.interpreter;
  command.push_back("-c");
  command.emplace_back(script_text);
  // `sh -c TEXT NAME ARGS...`: NAME becomes $0 and ARGS $1...
  command.emplace_back(script_name);
  command.insert(command.end(), args.begin(), args.end());
  return command;
}

api::JobSpec BuildJobSpec(const SubmitOptions& o, std::vector<std::string> command) {
  api::JobSpec spec;
  spec.command = std::move(command);
  if (o.name)
    spec.name = *o.name;
  if (o.account)
    spec.account = *o.account;
  if (o.image)
    spec.image = *o.image;
  if (o.workdir)
    spec.workdir = *o.workdir;
  if (o.nodes)
    spec.nodes = *o.nodes;
  if (o.gpus_per_node)
    spec.gpus_per_node = *o.gpus_per_node;
  if (o.gpu_type)
    spec.gpu_type = *o.gpu_type;
  if (o.cpus_per_node)
    spec.cpus_per_node = *o.cpus_per_node;
  if (o.memory_mib_per_node)
    spec.memory_mib_per_node = *o.memory_mib_per_node;
  spec.time_limit_s = o.time_limit_s;
  if (o.priority_class)
    spec.priority_class = *o.priority_class;
  if (o.topology)
    spec.topology = *o.topology;
  spec.array = o.array;
  if (o.depends_on)
    spec.depends_on = *o.depends_on;
  if (o.checkpoint_signal)
    spec.checkpoint_signal = *o.checkpoint_signal;
  if (o.grace_period_s)
    spec.grace_period_s = *o.grace_period_s;
  if (o.requeue)
    spec.requeue = *o.requeue;
  spec.env = o.env;
  spec.labels = o.labels;
  return spec;
}

}  // namespace gsched::client
