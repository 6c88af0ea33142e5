#include "client/commands.h"

#include <unistd.h>

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "client/directives.h"
#include "client/output.h"
#include "config/accounts_config.h"
#include "scheduler/api/codec.h"
#include "scheduler/api/event_types.h"
#include "scheduler/api/json.h"
#include "scheduler/common/quantity.h"

namespace gsched::client {
namespace json = boost::json;

namespace {

std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ',') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

bool IsJobId(std::string_view s) {
  if (s.empty() || s.size() > 20)
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A list answer: `{"KEY": [...]}` or a bare array.
const json::array* ListOf(const json::value& body, std::string_view key) {
  if (body.is_array())
    return &body.get_array();
  if (body.is_object()) {
    if (const json::value* v = body.get_object().if_contains(key); v && v->is_array())
      return &v->get_array();
  }
  return nullptr;
}

std::string StringField(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v)
    return "";
  if (v->is_string())
    return std::string(v->get_string());
  if (v->is_null())
    return "";
  if (v->is_double()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v->get_double());
    return buf;
  }
  return json::serialize(*v);
}

std::string Join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty())
      out += sep;
    out += p;
  }
  return out;
}

std::string GpuTypes(const api::JobSpec& spec) {
  return spec.gpu_type.empty() ? "any" : Join(spec.gpu_type, "|");
}

std::string NodeList(const std::vector<api::Allocation>& allocation) {
  std::vector<std::string> names;
  for (const auto& a : allocation)
    names.push_back(a.node);
  return Join(names, ",");
}

std::string Sentence(std::string s) {
  if (!s.empty() && s.back() != '.')
    s += '.';
  return s;
}

// Where `ids` came from: `ReadFile` errors name the path.
Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Status::InvalidArgument("cannot read '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Running jobs first, then pending ones by priority and age, then the rest by id (squeue's order).
int StateRank(api::JobState s) {
  switch (s) {
    case api::JobState::kRunning:
    case api::JobState::kStarting:
      return 0;
    case api::JobState::kPending:
      return 1;
    default:
      return 2;
  }
}

}  // namespace

std::string QueryString(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string q;
  for (const auto& [k, v] : params) {
    if (v.empty())
      continue;
    q += q.empty() ? "?" : "&";
    q += k + "=" + UrlEncode(v);
  }
  return q;
}

Session::Session(std::ostream& out, std::ostream& err, const Env& env, CliConfig config)
    : out_(out), err_(err), env_(env), config_(std::move(config)), connector_(NetConnector()) {
  // One connector for the whole run, so that the HTTP requests and the watch feed share the
  // scheduler that answered last; a test may replace either part.
  if (env_.connector.http)
    connector_.http = env_.connector.http;
  if (env_.connector.watch)
    connector_.watch = env_.connector.watch;
}

std::string Session::Unreachable(const Status& status) const {
  // Several schedulers: the message says what each of them said.
  if (config_.servers.size() > 1)
    return "cannot reach the leading scheduler: " + status.message();
  return "cannot reach " + config_.server + ": " + status.message();
}

Session::~Session() = default;

int Session::Fail(int code, const std::string& message) {
  err_ << "gsched: " << message << error_context_ << "\n";
  return code;
}

Timestamp Session::Now() const {
  return env_.now ? *env_.now : SystemClock().Now();
}

void Session::PrintJson(const json::value& v) {
  out_ << json::serialize(v) << "\n";
}

Session::Answer Session::Call(std::string_view method, const std::string& target,
                              std::string body) {
  if (config_.server.empty()) {
    return {Fail(kExitUsage,
                 "no server configured: use --server URL, GSCHED_SERVER or 'server:' "
                 "in " +
                     (config_.config_path.empty() ? std::string("the config file")
                                                  : config_.config_path)),
            {}};
  }
  if (!transport_) {
    auto t = connector_.http(config_);
    if (!t.ok()) {
      bool usage = t.status().code() == StatusCode::kInvalidArgument;
      return {Fail(usage ? kExitUsage : kExitUnreachable,
                   usage ? "bad server URL '" + config_.server + "' (from " +
                               config_.server_source + "): " + t.status().message()
                         : Unreachable(t.status())),
              {}};
    }
    transport_ = std::move(t).value();
  }
  auto r = transport_->Request(method, target, std::move(body));
  if (!r.ok()) {
    if (r.status().code() == StatusCode::kInvalidArgument)
      return {Fail(kExitUsage, r.status().ToString()), {}};
    return {Fail(kExitUnreachable, Unreachable(r.status())), {}};
  }
  json::value parsed;
  if (r->status < 400 && r->content_type.starts_with("text/")) {
    Answer text;
    text.raw = std::move(r->body);
    text.is_text = true;
    return text;
  }
  if (!r->body.empty()) {
    auto p = api::ParseJson(r->body);
    if (p.ok())
      parsed = std::move(p).value();
    else if (r->status < 400)
      return {Fail(kExitServerSaidNo, "the server's answer to " + std::string(method) + " " +
                                          target + " is not JSON: " + p.status().message()),
              {}};
  }
  if (r->status >= 400) {
    auto e = api::DecodeApiError(parsed);
    if (e.ok()) {
      std::string msg = e->field.empty() ? e->message : e->field + ": " + e->message;
      return {Fail(kExitServerSaidNo, msg), {}};
    }
    std::string text = r->body.substr(0, 200);
    std::replace(text.begin(), text.end(), '\n', ' ');
    return {Fail(kExitServerSaidNo,
                 "HTTP " + std::to_string(r->status) + (text.empty() ? "" : ": " + text)),
            {}};
  }
  return {kExitOk, std::move(parsed)};
}

std::pair<int, std::string> Session::CurrentUser() {
  Answer a = Call("GET", "/v1/whoami");
  if (a.exit_code != kExitOk)
    return {a.exit_code, ""};
  auto who = api::DecodeWhoAmI(a.body);
  if (!who.ok())
    return {Fail(kExitServerSaidNo, "bad whoami answer: " + who.status().ToString()), ""};
  return {kExitOk, who->user};
}

int Session::NoServer() {
  return Fail(kExitUsage, "no server configured: use --server URL, GSCHED_SERVER or 'server:' in " +
                              (config_.config_path.empty() ? std::string("the config file")
                                                           : config_.config_path));
}

// --- submit ---------------------------------------------------------------------------------

int Session::Submit(const SubmitArgs& args) {
  DirectiveContext ctx;
  ctx.partitions = config_.partitions;
  ctx.getenv = [this](const std::string& name) -> std::optional<std::string> {
    auto it = env_.vars.find(name);
    if (it == env_.vars.end())
      return std::nullopt;
    return it->second;
  };
  SubmitOptions flags;
  for (const auto& [name, value] : args.flags) {
    if (Status s = ApplyGschedOption(name, value, ctx, flags); !s.ok())
      return Fail(kExitUsage, name + ": " + s.message());
  }
  SubmitOptions options;
  std::vector<std::string> command;
  if (args.script) {
    auto text = ReadFile(*args.script);
    if (!text.ok())
      return Fail(kExitUsage, text.status().message());
    std::string name = args.script->substr(args.script->rfind('/') + 1);
    auto parsed = ParseScript(*text, *args.script, ctx);
    if (!parsed.ok())
      return Fail(kExitUsage, parsed.status().message());
    for (const std::string& w : parsed->warnings)
      err_ << "gsched: warning: " << w << "\n";
    options = MergeOptions(parsed->options, flags);
    command = ScriptCommand(*parsed, *text, name, args.script_args);
  } else if (!args.command.empty()) {
    options = flags;
    command = args.command;
  } else {
    return Fail(kExitUsage,
                "nothing to run: give a job script (gsched submit job.sh) or a command after "
                "'--' (gsched submit --gpus 1 -- python train.py)");
  }
  if (!options.image && !config_.image.empty())
    options.image = config_.image;
  api::JobSpec spec = BuildJobSpec(options, std::move(command));
  // Where the job was submitted from, as Slurm tells its jobs (unless the job sets them).
  if (char host[256] = {}; gethostname(host, sizeof host - 1) == 0 && host[0])
    spec.env.try_emplace("SLURM_SUBMIT_HOST", host);
  std::error_code ec;
  if (std::filesystem::path cwd = std::filesystem::current_path(ec); !ec)
    spec.env.try_emplace("SLURM_SUBMIT_DIR", cwd.string());
  json::value encoded = api::Encode(spec);
  // The server's own decoder, so that local errors read exactly like the server's.
  Status check = api::DecodeJobSpec(encoded).status();
  if (check.ok())
    check = api::CheckNewJobSpec(spec);
  if (!check.ok()) {
    std::string msg = check.ToString();
    if (check.field() == "image")
      msg += " (use --image, '#GSCHED --image' or 'image:' in the config file)";
    return Fail(kExitUsage, msg);
  }
  if (args.dry_run) {
    PrintJson(encoded);
    return kExitOk;
  }
  Answer a = Call("POST", "/v1/jobs", json::serialize(encoded));
  if (a.exit_code != kExitOk)
    return a.exit_code;
  if (args.json) {
    PrintJson(a.body);
    return kExitOk;
  }
  std::vector<std::string> ids;
  if (a.body.is_object()) {
    const json::object& o = a.body.get_object();
    if (const json::value* id = o.if_contains("id"))
      ids.push_back(json::serialize(*id));
    if (const json::value* list = o.if_contains("ids"); list && list->is_array()) {
      for (const json::value& id : list->get_array())
        ids.push_back(json::serialize(id));
    }
  }
  if (ids.empty())
    return Fail(kExitServerSaidNo,
                "the server's answer names no job id: " + json::serialize(a.body));
  if (args.parsable) {
    for (const auto& id : ids)
      out_ << id << "\n";
  } else if (ids.size() == 1) {
    out_ << "Submitted job " << ids[0] << "\n";
  } else {
    out_ << "Submitted " << ids.size() << " jobs: " << ids.front() << " .. " << ids.back() << "\n";
  }
  return kExitOk;
}

// --- queue and show -------------------------------------------------------------------------

int Session::Queue(const QueueArgs& args) {
  std::string user = args.user;
  if (!args.all && user.empty()) {
    auto [code, me] = CurrentUser();
    if (code != kExitOk)
      return code;
    user = me;
  }
  // Like squeue: active jobs unless states are asked for; `all` means every state.
  std::string states = args.state.empty() ? "pending,starting,running" : args.state;
  if (states == "all")
    states.clear();
  if (!states.empty()) {
    std::string_view rest = states;
    while (true) {
      size_t comma = rest.find(',');
      std::string one(rest.substr(0, comma));
      if (!api::ParseEnum<api::JobState>(one))
        return Fail(kExitUsage, "--state: unknown state '" + one + "'; one of " +
                                    api::EnumNames<api::JobState>());
      if (comma == std::string_view::npos)
        break;
      rest.remove_prefix(comma + 1);
    }
  }
  std::string target =
      "/v1/jobs" + QueryString({{"user", user},
                                {"account", args.account},
                                {"state", states},
                                {"limit", args.limit > 0 ? std::to_string(args.limit) : ""}});
  Answer a = Call("GET", target);
  if (a.exit_code != kExitOk)
    return a.exit_code;
  if (args.json) {
    PrintJson(a.body);
    return kExitOk;
  }
  const json::array* list = ListOf(a.body, "jobs");
  if (!list)
    return Fail(kExitServerSaidNo, "the job list answer has no 'jobs' array");
  std::vector<api::Job> jobs;
  for (size_t i = 0; i < list->size(); ++i) {
    auto job = api::DecodeJob((*list)[i]);
    if (!job.ok())
      return Fail(kExitServerSaidNo, "bad job in the answer: jobs[" + std::to_string(i) + "]." +
                                         job.status().ToString());
    jobs.push_back(std::move(job).value());
  }
  std::stable_sort(jobs.begin(), jobs.end(), [](const api::Job& a, const api::Job& b) {
    int ra = StateRank(a.state), rb = StateRank(b.state);
    if (ra != rb)
      return ra < rb;
    if (ra == 1) {
      if (a.priority != b.priority)
        return a.priority > b.priority;
      if (a.submit_time != b.submit_time)
        return a.submit_time < b.submit_time;
    }
    return a.id < b.id;
  });
  Timestamp now = Now();
  Table table({"ID", "NAME", "USER", "ACCOUNT", "STATE", "GPUS", "TYPE", "TIME", "NODES(REASON)"});
  for (const api::Job& j : jobs) {
    std::string id = std::to_string(j.id);
    if (j.array_job_id && j.array_index)
      id = std::to_string(*j.array_job_id) + "_" + std::to_string(*j.array_index) + " (" + id + ")";
    std::string state(api::ToString(j.state));
    if (j.held && j.state == api::JobState::kPending)
      state += " (held)";
    std::string time = "-";
    if (j.start_time && !api::IsTerminal(j.state) && j.state != api::JobState::kPending)
      time = HumanDuration(now - *j.start_time);
    else if (j.start_time && j.end_time)
      time = HumanDuration(*j.end_time - *j.start_time);
    std::string where;
    if (j.state == api::JobState::kPending && j.reason) {
      where = "(" + std::string(api::ToString(j.reason->code)) + ")";
      if (j.reason->estimated_start)
        where += " start " + Relative(*j.reason->estimated_start, now);
    } else {
      where = NodeList(j.allocation);
    }
    int64_t gpus = int64_t{j.spec.nodes} * j.spec.gpus_per_node;
    table.AddRow({id, j.spec.name.empty() ? "-" : j.spec.name, j.user,
                  j.spec.account.empty() ? "-" : j.spec.account, state, std::to_string(gpus),
                  GpuTypes(j.spec), time, where.empty() ? "-" : where});
  }
  table.Print(out_);
  return kExitOk;
}

int Session::Show(const std::string& id, bool json_out) {
  if (!IsJobId(id))
    return Fail(kExitUsage, "invalid job id '" + id + "'");
  Answer a = Call("GET", "/v1/jobs/" + id);
  if (a.exit_code != kExitOk)
    return a.exit_code;
  if (json_out) {
    PrintJson(a.body);
    return kExitOk;
  }
  auto decoded = api::DecodeJob(a.body);
  if (!decoded.ok())
    return Fail(kExitServerSaidNo, "bad job answer: " + decoded.status().ToString());
  const api::Job& j = *decoded;
  const api::JobSpec& s = j.spec;
  Timestamp now = Now();
  out_ << "Job " << j.id;
  if (!s.name.empty())
    out_ << " (" << s.name << ")";
  out_ << "\n";
  Table t({"", ""});
  auto row = [&](std::string k, std::string v) { t.AddRow({std::move(k) + ":", std::move(v)}); };
  row("User", j.user + (s.account.empty() ? "" : ", account " + s.account));
  std::string state(api::ToString(j.state));
  if (j.held)
    state += " (held)";
  if (j.borrowing)
    state += " (borrowing idle GPUs; may be preempted)";
  if (j.exit_code)
    state += ", exit code " + std::to_string(*j.exit_code);
  if (j.signal)
    state += ", signal " + *j.signal;
  row("State", state);
  if (j.state == api::JobState::kPending && j.reason) {
    std::string why = "Pending (" + std::string(api::ToString(j.reason->code)) +
                      "): " + Sentence(j.reason->message);
    if (j.reason->estimated_start)
      why += " Estimated start: " + RelativeAndAbsolute(*j.reason->estimated_start, now) + ".";
    else
      why += " Estimated start: unknown.";
    row("Reason", why);
  }
  if (j.state == api::JobState::kStarting && j.reason && !j.reason->message.empty())
    row("Starting", Sentence(j.reason->message));
  if (j.array_job_id)
    row("Array", "element " + (j.array_index ? std::to_string(*j.array_index) : "?") + " of job " +
                     std::to_string(*j.array_job_id));
  if (s.array)
    row("Array", *s.array);
  row("Resources",
      std::to_string(s.nodes) + " node(s) x " + std::to_string(s.gpus_per_node) + " GPU(s), type " +
          GpuTypes(s) + (s.cpus_per_node ? ", " + std::to_string(s.cpus_per_node) + " CPUs" : "") +
          (s.memory_mib_per_node ? ", " + std::to_string(s.memory_mib_per_node) + " MiB" : "") +
          " per node");
  row("Time limit", s.time_limit_s ? FormatDuration(Seconds(*s.time_limit_s)) : "class default");
  row("Class", std::string(api::ToString(s.priority_class)) + ", topology " +
                   std::string(api::ToString(s.topology)) +
                   (s.requeue ? ", requeue" : ", no requeue"));
  row("Image", s.image);
  if (!j.image_digest.empty())
    row("Image digest", j.image_digest);
  std::string cmd = Join(s.command, " ");
  if (cmd.size() > 120 || cmd.find('\n') != std::string::npos) {
    std::string first = cmd.substr(0, std::min(cmd.find('\n'), size_t{100}));
    cmd = first + " ... (" + std::to_string(cmd.size()) + " bytes)";
  }
  row("Command", cmd);
  if (!s.depends_on.empty()) {
    std::vector<std::string> deps;
    for (const auto& d : s.depends_on)
      deps.push_back(std::string(api::ToString(d.type)) + ":" + std::to_string(d.job));
    row("Depends on", Join(deps, ", "));
  }
  row("Submitted", RelativeAndAbsolute(j.submit_time, now));
  if (j.start_time)
    row("Started", RelativeAndAbsolute(*j.start_time, now));
  if (j.end_time)
    row("Ended", RelativeAndAbsolute(*j.end_time, now));
  else if (j.start_time && s.time_limit_s && j.state == api::JobState::kRunning)
    row("Time left", HumanDuration(*j.start_time + Seconds(*s.time_limit_s) - now));
  for (const auto& alloc : j.allocation) {
    std::vector<std::string> gpus;
    for (int32_t g : alloc.gpus)
      gpus.push_back(std::to_string(g));
    row("Allocation", alloc.node + " GPUs " + Join(gpus, ","));
  }
  if (j.rendezvous) {
    row("Rendezvous", j.rendezvous->address + ":" + std::to_string(j.rendezvous->port) +
                          " (MASTER_ADDR:MASTER_PORT)");
  }
  std::ostringstream head;
  t.Print(head);
  // Drop the empty header line of the key/value table.
  std::string text = head.str();
  out_ << text.substr(text.find('\n') + 1);
  if (!j.attempts.empty()) {
    out_ << "Attempts:\n";
    Table at({"  #", "STATE", "START", "DURATION", "EXIT", "NODES", "MESSAGE"});
    for (const auto& a : j.attempts) {
      at.AddRow({"  " + std::to_string(a.attempt), std::string(api::ToString(a.state)),
                 Absolute(a.start_time),
                 HumanDuration((a.end_time ? *a.end_time : now) - a.start_time),
                 a.exit_code ? std::to_string(*a.exit_code) : "-", NodeList(a.allocation),
                 a.message.empty() ? "-" : a.message});
    }
    at.Print(out_);
  }
  return kExitOk;
}

int Session::JobAction(const std::string& verb, const std::vector<std::string>& ids) {
  for (const auto& id : ids) {
    if (!IsJobId(id))
      return Fail(kExitUsage, "invalid job id '" + id + "'");
  }
  std::string done = verb == "cancel" ? "cancelled" : verb == "hold" ? "held" : "released";
  int worst = kExitOk;
  for (const auto& id : ids) {
    Answer a = Call("POST", "/v1/jobs/" + id + "/" + verb, "{}");
    if (a.exit_code == kExitUnreachable)
      return a.exit_code;
    if (a.exit_code != kExitOk) {
      worst = std::max(worst, a.exit_code);
      continue;
    }
    out_ << done << " job " << id << "\n";
  }
  return worst;
}

// --- logs and watch -------------------------------------------------------------------------

int Session::Logs(const LogsArgs& args) {
  if (!IsJobId(args.id))
    return Fail(kExitUsage, "invalid job id '" + args.id + "'");
  constexpr int64_t kChunk = 1 << 20;
  if (args.follow && args.attempt == 0) {
    // A job that has not started has no output yet (the server says 409): `logs -f` right after
    // `submit` waits for it to start rather than fail. A job that ends without starting falls
    // through to the server's answer.
    while (true) {
      Answer job = Call("GET", "/v1/jobs/" + args.id);
      if (job.exit_code != kExitOk)
        return job.exit_code;
      std::string state =
          job.body.is_object() ? StringField(job.body.get_object(), "state") : std::string();
      if (state != "pending" && state != "starting")
        break;
      std::this_thread::sleep_for(env_.poll_interval);
    }
  }
  int64_t offset = 0;
  while (true) {
    std::string target =
        "/v1/jobs/" + args.id + "/logs" +
        QueryString({{"offset", std::to_string(offset)},
                     {"limit", std::to_string(kChunk)},
                     {"stream", args.stderr_stream ? "stderr" : ""},
                     {"attempt", args.attempt > 0 ? std::to_string(args.attempt) : ""},
                     {"node", args.node}});
    Answer a = Call("GET", target);
    if (a.exit_code != kExitOk)
      return a.exit_code;
    // JSON `{"data": "...", "next_offset": N, "eof": bool}` (`eof`: the job ended and nothing
    // more will come), or the bytes themselves as `text/plain`.
    std::string data;
    bool ended = false;
    int64_t before = offset;
    if (a.is_text) {
      data = std::move(a.raw);
      offset += static_cast<int64_t>(data.size());
    } else {
      if (!a.body.is_object())
        return Fail(kExitServerSaidNo, "the logs answer is not an object");
      const json::object& o = a.body.get_object();
      data = StringField(o, "data");
      const json::value* next = o.if_contains("next_offset");
      offset =
          next && next->is_int64() ? next->get_int64() : offset + static_cast<int64_t>(data.size());
      const json::value* eof = o.if_contains("eof");
      ended = eof && eof->is_bool() && eof->get_bool();
    }
    out_ << data << std::flush;
    if (ended)
      return kExitOk;
    // The server may serve less than asked: go on while answers move forward.
    bool more =
        a.is_text ? static_cast<int64_t>(data.size()) >= kChunk : !data.empty() && offset > before;
    if (more)
      continue;
    if (!args.follow)
      return kExitOk;
    if (data.empty()) {
      // Without an `eof` flag, ask the job itself whether it is over.
      Answer job = Call("GET", "/v1/jobs/" + args.id);
      if (job.exit_code != kExitOk)
        return job.exit_code;
      if (job.body.is_object()) {
        auto state = api::ParseEnum<api::JobState>(StringField(job.body.get_object(), "state"));
        if (state && api::IsTerminal(*state))
          return kExitOk;
      }
      std::this_thread::sleep_for(env_.poll_interval);
    }
  }
}

int Session::Watch(const WatchArgs& args) {
  if (!args.job.empty() && !IsJobId(args.job))
    return Fail(kExitUsage, "invalid job id '" + args.job + "'");
  if (config_.server.empty())
    return NoServer();
  // The feed resumes from the last event seen: after a dropped connection the CLI reconnects
  // with `since` (up to `kMaxReconnects` times in a row) and skips events it already printed.
  constexpr int kMaxReconnects = 5;
  int64_t last_seq = args.since;
  int failures = 0;
  // `watch JOB`: the job's state once the feed is open. The feed alone would stay silent
  // forever for a job that does not exist, that the token may not see, or that ended before it
  // opened.
  bool job_checked = false;
  std::optional<std::string> job_ended;
  std::unique_ptr<WatchStream> stream;
  while (true) {
    if (!stream) {
      std::string topics = args.topics;
      if (args.ephemeral && topics == WatchArgs().topics)
        topics += ",cluster";  // cluster.summary has a topic of its own.
      std::string target =
          "/v1/watch" + QueryString({{"topics", topics},
                                     {"since", last_seq >= 0 ? std::to_string(last_seq) : ""},
                                     {"job", args.job},
                                     {"ephemeral", args.ephemeral ? "1" : ""}});
      auto opened = connector_.watch(config_, target);
      if (!opened.ok()) {
        const Status& st = opened.status();
        bool transient =
            st.code() == StatusCode::kUnavailable || st.code() == StatusCode::kDeadlineExceeded;
        if (transient && failures > 0 && failures < kMaxReconnects) {
          ++failures;
          std::this_thread::sleep_for(env_.poll_interval * failures);
          continue;
        }
        if (transient)
          return Fail(kExitUnreachable, Unreachable(st));
        // "upgrade refused with 403: {error body}" is the server saying no; anything else is ours.
        std::string_view msg = st.message();
        if (msg.starts_with("upgrade refused")) {
          size_t colon = msg.find(": ");
          if (colon != std::string_view::npos) {
            if (auto body = api::ParseJson(msg.substr(colon + 2)); body.ok()) {
              if (auto e = api::DecodeApiError(*body); e.ok())
                return Fail(kExitServerSaidNo,
                            e->field.empty() ? e->message : e->field + ": " + e->message);
            }
          }
          return Fail(kExitServerSaidNo, std::string(msg));
        }
        return Fail(kExitUsage, st.ToString());
      }
      stream = std::move(opened).value();
      if (!args.job.empty() && !job_checked) {
        // Asked only now: the server subscribed the feed before it answered the upgrade, so a
        // job that this answer shows alive sends its end over the feed.
        job_checked = true;
        Answer job = Call("GET", "/v1/jobs/" + args.job);
        if (job.exit_code != kExitOk)
          return job.exit_code;
        std::string state =
            job.body.is_object() ? StringField(job.body.get_object(), "state") : std::string();
        if (auto s = api::ParseEnum<api::JobState>(state); s && api::IsTerminal(*s))
          job_ended = state;
      }
    }
    // A job that has ended may still have its last events in flight (or in a replay): they
    // come at once, so a short quiet spell means that nothing more will.
    auto msg = stream->Read(job_ended ? env_.poll_interval : env_.watch_idle_timeout);
    if (!msg.ok()) {
      if (job_ended && msg.status().code() == StatusCode::kDeadlineExceeded) {
        err_ << "gsched: job " << args.job << " has ended (" << *job_ended
             << "); no more events will come\n";
        return kExitOk;
      }
      if (msg.status().code() == StatusCode::kDeadlineExceeded) {
        // A quiet feed, or a connection that died silently: reconnect from where we are.
        stream.reset();
        continue;
      }
      if (++failures >= kMaxReconnects)
        return Fail(kExitUnreachable, "watch feed closed: " + msg.status().message());
      stream.reset();
      continue;
    }
    failures = 0;
    auto parsed = api::ParseJson(*msg);
    if (!parsed.ok())
      return Fail(kExitServerSaidNo, "bad event: " + parsed.status().message());
    auto event = api::DecodeEvent(*parsed);
    if (!event.ok())
      return Fail(kExitServerSaidNo, "bad event: " + event.status().ToString());
    // Ephemeral events repeat the seq of the last logged event they follow.
    const bool ephemeral = api::IsEphemeralEvent(event->type);
    if (static_cast<int64_t>(event->seq) <= last_seq && event->type != "resync" && !ephemeral)
      continue;  // Seen before the reconnect.
    last_seq = static_cast<int64_t>(event->seq);
    if (args.json) {
      out_ << json::serialize(*parsed) << "\n" << std::flush;  // One event per line.
    } else {
      // Fields as DESIGN.md section 5 gives them: `job.state` carries `job`, `from`, `to`,
      // `reason`, `node`, `attempt`; `node.state` carries `node`, `from`, `to`, `reason`.
      const json::object& d = event->data;
      std::string what;
      std::string_view type = event->type;
      if (type == "resync") {
        what = "missed events are gone: " + StringField(d, "reason") + "; resuming after " +
               StringField(d, "resumes_after");
      } else if (type == "job.reason") {
        what = "job " + StringField(d, "job") + " waits: " + StringField(d, "code");
        if (std::string m = StringField(d, "message"); !m.empty())
          what += " - " + m;
        if (std::string est = StringField(d, "estimated_start"); !est.empty())
          what += " (estimated start " + est + ")";
      } else if (type.starts_with("job.")) {
        what = "job " + StringField(d, "job") + " ";
        what += type == "job.state" ? StringField(d, "to") : std::string(type.substr(4));
        if (std::string node = StringField(d, "node"); !node.empty())
          what += " on " + node;
        if (std::string r = StringField(d, "reason"); !r.empty())
          what += ": " + r;
      } else if (type == "node.state") {
        what = "node " + StringField(d, "node") + " " + StringField(d, "to");
        if (std::string r = StringField(d, "reason"); !r.empty())
          what += " (" + r + ")";
      } else if (type == "node.health") {
        what = "node " + StringField(d, "node") + " gpu " + StringField(d, "gpu") + " " +
               StringField(d, "health");
        if (std::string m = StringField(d, "message"); !m.empty())
          what += ": " + m;
      } else if (type.starts_with("account.")) {
        what = "account " + StringField(d, "account");
        if (std::string by = StringField(d, "by"); !by.empty())
          what += " changed by " + by;
      } else {
        what = json::serialize(d);
      }
      std::string time = FormatTimestamp(event->time).substr(11, 8);
      out_ << time << "  " << event->type << "  " << what << "\n" << std::flush;
    }
    // `watch JOB` ends with the job.
    if (!args.job.empty() && event->type == "job.state" &&
        StringField(event->data, "job") == args.job) {
      auto state = api::ParseEnum<api::JobState>(StringField(event->data, "to"));
      if (state && api::IsTerminal(*state))
        return kExitOk;
    }
  }
}

// --- nodes ----------------------------------------------------------------------------------

int Session::Nodes(bool json_out) {
  Answer a = Call("GET", "/v1/nodes");
  if (a.exit_code != kExitOk)
    return a.exit_code;
  if (json_out) {
    PrintJson(a.body);
    return kExitOk;
  }
  const json::array* list = ListOf(a.body, "nodes");
  if (!list)
    return Fail(kExitServerSaidNo, "the node list answer has no 'nodes' array");
  Timestamp now = Now();
  Table t({"NAME", "STATE", "TYPE", "FREE/GPUS", "SITE", "BLOCK", "HEARTBEAT", "REASON"});
  for (size_t i = 0; i < list->size(); ++i) {
    auto n = api::DecodeNode((*list)[i]);
    if (!n.ok())
      return Fail(kExitServerSaidNo, "bad node in the answer: nodes[" + std::to_string(i) + "]." +
                                         n.status().ToString());
    std::string free = n->free_gpus ? std::to_string(*n->free_gpus) : "?";
    int unhealthy =
        static_cast<int>(std::count_if(n->gpus.begin(), n->gpus.end(), [](const auto& g) {
          return g.health == api::GpuHealth::kUnhealthy;
        }));
    std::string gpus = free + "/" + std::to_string(n->gpu_count) +
                       (unhealthy ? " (" + std::to_string(unhealthy) + " unhealthy)" : "");
    t.AddRow({n->name, std::string(api::ToString(n->state)), n->gpu_type, gpus, n->site, n->block,
              n->last_heartbeat ? Relative(*n->last_heartbeat, now) : "-",
              n->state_reason.empty() ? "-" : n->state_reason});
  }
  t.Print(out_);
  return kExitOk;
}

int Session::Drain(const std::string& node, const std::string& reason) {
  json::object body;
  body["reason"] = reason;
  Answer a = Call("POST", "/v1/nodes/" + UrlEncode(node) + "/drain", json::serialize(body));
  if (a.exit_code != kExitOk)
    return a.exit_code;
  out_ << "node " << node << " draining: it finishes its jobs and takes no new ones\n";
  return kExitOk;
}

int Session::Resume(const std::string& node) {
  Answer a = Call("POST", "/v1/nodes/" + UrlEncode(node) + "/resume", "{}");
  if (a.exit_code != kExitOk)
    return a.exit_code;
  out_ << "node " << node << " resumed\n";
  return kExitOk;
}

// --- accounts, quotas, usage ----------------------------------------------------------------

int Session::Accounts(bool json_out) {
  Answer a = Call("GET", "/v1/accounts");
  if (a.exit_code != kExitOk)
    return a.exit_code;
  if (json_out) {
    PrintJson(a.body);
    return kExitOk;
  }
  const json::array* list = ListOf(a.body, "accounts");
  if (!list)
    return Fail(kExitServerSaidNo, "the account list answer has no 'accounts' array");
  // Read leniently: the server may add usage figures to each account (`running_gpus` by GPU type,
  // `fair_share` in [0, 1], `usage_gpu_hours`), which the strict `DecodeAccount` would refuse.
  struct Row {
    std::string name, parent;
    const json::object* o;
  };
  std::vector<Row> rows;
  for (const auto& v : *list) {
    if (!v.is_object())
      return Fail(kExitServerSaidNo, "bad account in the answer");
    const json::object& o = v.get_object();
    rows.push_back({StringField(o, "name"), StringField(o, "parent"), &o});
  }
  Table t({"ACCOUNT", "SHARES", "GPU TYPE", "IN USE", "GUARANTEED", "LIMIT", "FAIR SHARE",
           "USAGE (GPU-H)"});
  // Depth-first from the roots (accounts whose parent is not listed), children in answer order.
  std::function<void(const std::string&, int)> walk = [&](const std::string& parent, int depth) {
    for (const Row& r : rows) {
      bool is_root = parent.empty() && std::none_of(rows.begin(), rows.end(), [&](const Row& x) {
                       return x.name == r.parent && !r.parent.empty();
                     });
      if (!(is_root || (!parent.empty() && r.parent == parent)))
        continue;
      if (depth > 32)
        return;
      const json::object& o = *r.o;
      std::string indent(static_cast<size_t>(depth) * 2, ' ');
      std::string fair = StringField(o, "fair_share");
      std::string usage = StringField(o, "usage_gpu_hours");
      const json::object* running = nullptr;
      if (const json::value* rg = o.if_contains("running_gpus"); rg && rg->is_object())
        running = &rg->get_object();
      std::vector<std::vector<std::string>> quota_rows;
      if (const json::value* q = o.if_contains("quotas"); q && q->is_object()) {
        for (const auto& [type, quota] : q->get_object()) {
          if (!quota.is_object())
            continue;
          std::string in_use = running ? StringField(*running, type) : "";
          quota_rows.push_back({std::string(type), in_use.empty() ? "-" : in_use,
                                StringField(quota.get_object(), "guaranteed"),
                                StringField(quota.get_object(), "limit")});
        }
      }
      std::sort(quota_rows.begin(), quota_rows.end());
      if (quota_rows.empty())
        quota_rows.push_back({"-", "-", "-", "-"});
      for (size_t i = 0; i < quota_rows.size(); ++i) {
        const auto& q = quota_rows[i];
        bool first = i == 0;
        t.AddRow({first ? indent + r.name : "", first ? StringField(o, "shares") : "", q[0], q[1],
                  q[2], q[3], first && !fair.empty() ? fair : (first ? "-" : ""),
                  first && !usage.empty() ? usage : (first ? "-" : "")});
      }
      walk(r.name, depth + 1);
    }
  };
  walk("", 0);
  t.Print(out_);
  return kExitOk;
}

int Session::AccountsApply(const std::string& file, bool dry_run) {
  auto loaded = config::LoadAccountsConfig(file);
  if (!loaded.ok()) {
    // The loader's message already starts with the field path (one line per error).
    std::string msg = loaded.status().message();
    return Fail(kExitUsage, msg.starts_with(file) ? msg : file + ": " + msg);
  }
  // Pre-order: every parent is PUT before its children.
  std::vector<std::string> applied;
  for (const config::AccountSpec& spec : loaded->accounts) {
    // The loader adds `root` when the file does not list it; it exists on every server.
    if (spec.name == config::kRootAccount && spec.quotas.empty() && !spec.budget &&
        spec.shares == 1)
      continue;
    api::Account account = config::ToApiAccount(spec);
    std::string target = "/v1/accounts/" + UrlEncode(spec.name);
    std::string body = json::serialize(api::Encode(account));
    if (dry_run) {
      out_ << "PUT " << target << " " << body << "\n";
      continue;
    }
    // The server's field path is one of this account's: its error names the account, and what
    // was applied before it, in the same line.
    error_context_ = " (account '" + spec.name + "'" +
                     (applied.empty() ? "" : "; applied before it: " + Join(applied, ", ")) + ")";
    Answer a = Call("PUT", target, body);
    error_context_.clear();
    if (a.exit_code != kExitOk)
      return a.exit_code;
    applied.push_back(spec.name);
    out_ << "applied " << spec.name << "\n";
  }
  return kExitOk;
}

int Session::QuotaSet(const QuotaArgs& args) {
  if (Status s = api::CheckGpuTypeName(args.gpu_type); !s.ok())
    return Fail(kExitUsage, "--gpu-type: " + s.message());
  if (args.guaranteed < 0 && args.limit < 0)
    return Fail(kExitUsage, "give --guaranteed N, --limit M or both");
  Answer a = Call("GET", "/v1/accounts");
  if (a.exit_code != kExitOk)
    return a.exit_code;
  const json::array* list = ListOf(a.body, "accounts");
  if (!list)
    return Fail(kExitServerSaidNo, "the account list answer has no 'accounts' array");
  const json::object* found = nullptr;
  for (const auto& v : *list) {
    if (v.is_object() && StringField(v.get_object(), "name") == args.account)
      found = &v.get_object();
  }
  if (!found)
    return Fail(kExitServerSaidNo, "no account '" + args.account + "'");
  // Only the fields a PUT takes: the list may carry usage figures.
  json::object body;
  for (std::string_view key : {"parent", "shares", "quotas", "budget", "on_budget_exhausted",
                               "max_pending_jobs_per_user", "max_running_gpus_per_user", "users"}) {
    if (const json::value* v = found->if_contains(key); v && !v->is_null())
      body[key] = *v;
  }
  auto account = api::DecodeAccount(body);
  if (!account.ok())
    return Fail(kExitServerSaidNo, "bad account in the answer: " + account.status().ToString());
  api::Quota& q = account->quotas[args.gpu_type];
  if (args.guaranteed >= 0)
    q.guaranteed = args.guaranteed;
  if (args.limit >= 0)
    q.limit = args.limit;
  else
    q.limit = std::max(q.limit, q.guaranteed);
  if (q.limit < q.guaranteed)
    return Fail(kExitUsage, "--limit (" + std::to_string(q.limit) + ") must be >= --guaranteed (" +
                                std::to_string(q.guaranteed) + ")");
  account->name.clear();
  Answer put = Call("PUT", "/v1/accounts/" + UrlEncode(args.account),
                    json::serialize(api::Encode(*account)));
  if (put.exit_code != kExitOk)
    return put.exit_code;
  out_ << args.account << " " << args.gpu_type << ": guaranteed " << q.guaranteed << ", limit "
       << q.limit << "\n";
  return kExitOk;
}

int Session::Usage(const std::string& account, const std::string& since, const std::string& until,
                   bool json_out) {
  auto when = [&](const std::string& text, std::string_view flag) -> Result<std::string> {
    if (text.empty())
      return std::string();
    if (auto d = ParseDuration(text); d.ok())
      return FormatTimestamp(Now() - *d);  // "30d": that long ago.
    auto t = ParseTimestamp(text);
    if (!t.ok())
      return Status::InvalidArgument(std::string(flag) + ": use a duration (30d) or a date (" +
                                     "2027-01-01), got '" + text + "'");
    return FormatTimestamp(*t);
  };
  auto from = when(since, "--since");
  if (!from.ok())
    return Fail(kExitUsage, from.status().message());
  auto to = when(until, "--until");
  if (!to.ok())
    return Fail(kExitUsage, to.status().message());
  Answer a = Call(
      "GET", "/v1/usage" + QueryString({{"account", account}, {"since", *from}, {"until", *to}}));
  if (a.exit_code != kExitOk)
    return a.exit_code;
  if (json_out) {
    PrintJson(a.body);
    return kExitOk;
  }
  // Rows `{"account", "user", "gpu_type", "gpu_hours"}` under "usage".
  const json::array* list = ListOf(a.body, "usage");
  if (!list)
    return Fail(kExitServerSaidNo, "the usage answer has no 'usage' array");
  Table t({"ACCOUNT", "USER", "GPU TYPE", "GPU-HOURS"});
  for (const auto& v : *list) {
    if (!v.is_object())
      continue;
    const json::object& o = v.get_object();
    std::string hours = StringField(o, "gpu_hours");
    if (const json::value* h = o.if_contains("gpu_hours"); h && h->is_number()) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1f", h->to_number<double>());
      hours = buf;
    }
    t.AddRow(
        {StringField(o, "account"), StringField(o, "user"), StringField(o, "gpu_type"), hours});
  }
  t.Print(out_);
  return kExitOk;
}

// --- tokens and identity --------------------------------------------------------------------

int Session::TokenCreate(const TokenCreateArgs& args) {
  api::TokenRequest req;
  req.user = args.user;
  auto role = api::ParseEnum<api::Role>(args.role);
  if (!role)
    return Fail(kExitUsage, "--role: must be one of " + api::EnumNames<api::Role>());
  req.role = *role;
  req.accounts = args.accounts;
  req.nodes = args.nodes;
  auto d = ParseDuration(args.expires);
  if (!d.ok())
    return Fail(kExitUsage, "--expires: " + d.status().message());
  req.expires_in_s = std::chrono::duration_cast<std::chrono::seconds>(*d).count();
  json::value encoded = api::Encode(req);
  if (auto check = api::DecodeTokenRequest(encoded); !check.ok())
    return Fail(kExitUsage, check.status().ToString());
  Answer a = Call("POST", "/v1/tokens", json::serialize(encoded));
  if (a.exit_code != kExitOk)
    return a.exit_code;
  if (args.json) {
    PrintJson(a.body);
    return kExitOk;
  }
  auto answer = api::DecodeTokenAnswer(a.body);
  if (!answer.ok())
    return Fail(kExitServerSaidNo, "bad token answer: " + answer.status().ToString());
  // The token alone on stdout, so that `gsched token create ... > file` stores just it.
  err_ << "token " << answer->id << " for " << args.user << " (" << args.role << "), expires "
       << RelativeAndAbsolute(Now() + Seconds(req.expires_in_s), Now()) << "\n";
  out_ << answer->token << "\n";
  return kExitOk;
}

int Session::TokenRevoke(const std::string& id) {
  Answer a = Call("DELETE", "/v1/tokens/" + UrlEncode(id));
  if (a.exit_code != kExitOk)
    return a.exit_code;
  out_ << "revoked token " << id << "\n";
  return kExitOk;
}

int Session::WhoAmI(bool json_out) {
  Answer a = Call("GET", "/v1/whoami");
  if (a.exit_code != kExitOk)
    return a.exit_code;
  if (json_out) {
    PrintJson(a.body);
    return kExitOk;
  }
  auto who = api::DecodeWhoAmI(a.body);
  if (!who.ok())
    return Fail(kExitServerSaidNo, "bad whoami answer: " + who.status().ToString());
  out_ << who->user << " (" << api::ToString(who->role) << ")\n";
  out_ << "accounts: " << (who->accounts.empty() ? "-" : Join(who->accounts, ", ")) << "\n";
  out_ << "token:    " << who->token_id << ", expires " << RelativeAndAbsolute(who->expires, Now())
       << "\n";
  std::string answered = transport_ ? transport_->server() : std::string();
  out_ << "server:   " << (answered.empty() ? config_.server : answered) << "\n";
  return kExitOk;
}

}  // namespace gsched::client
