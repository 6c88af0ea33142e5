#include "scheduler/api/worker_messages.h"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <limits>

#include "scheduler/api/array_spec.h"
#include "scheduler/api/codec.h"
#include "scheduler/api/decode.h"
#include "scheduler/api/json.h"

namespace gsched::api {
namespace {

namespace json = boost::json;
using internal::Bool;
using internal::Charset;
using internal::DecodeArrayOf;
using internal::DecodeMapOf;
using internal::Enum;
using internal::Fields;
using internal::ImageDigest;
using internal::IntIn;
using internal::OptionalTime;
using internal::StringArray;
using internal::StringMap;
using internal::StringOf;
using internal::StringRule;
using internal::Time;
using internal::TimeValue;
using internal::Uint64In;

constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();
constexpr int64_t kMaxU32 = std::numeric_limits<uint32_t>::max();
constexpr int64_t kMinI32 = std::numeric_limits<int32_t>::min();
constexpr int64_t kMaxI32 = std::numeric_limits<int32_t>::max();
constexpr int64_t kMaxFileOffset = int64_t{1} << 50;
constexpr Fields::Unknown kIgnore = Fields::Unknown::kIgnore;

auto NodeName() {
  return StringOf(1, 128, Charset::kName);
}
auto Message() {
  return StringOf(0, 4096);
}
Result<std::string> DecodeSignalName(const json::value& v) {
  ASSIGN_OR_RETURN(std::string s, internal::DecodeString(v, StringRule{1, 16, Charset::kName}));
  return NormalizeSignal(s);
}

Result<RunningAttempt> DecodeRunningAttempt(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {}, kIgnore));
  RunningAttempt r;
  ASSIGN_OR_RETURN(r.job, f.Required("job", Uint64In(1, kMaxU64)));
  ASSIGN_OR_RETURN(r.attempt, f.Required("attempt", IntIn(1, kMaxU32)));
  ASSIGN_OR_RETURN(r.state, f.OrDefault("state", Enum<JobState>, JobState::kRunning));
  return r;
}

auto RunningList() {
  return [](const json::value& v) { return DecodeArrayOf(v, 100'000, DecodeRunningAttempt); };
}

json::value RunningValue(const std::vector<RunningAttempt>& running) {
  json::array a;
  a.reserve(running.size());
  for (const RunningAttempt& r : running) {
    a.push_back(json::object{{"job", r.job},
                             {"attempt", static_cast<int64_t>(r.attempt)},
                             {"state", ToString(r.state)}});
  }
  return a;
}

template <typename T>
json::value OptionalValue(const std::optional<T>& v) {
  if (!v)
    return nullptr;
  return json::value(*v);
}

auto Address(size_t min_len) {
  return StringOf(min_len, kMaxHostLen, Charset::kHost);
}

Result<PortRange> DecodePortRange(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {"first", "last"}, Fields::Unknown::kReject));
  PortRange r;
  ASSIGN_OR_RETURN(r.first, f.Required("first", IntIn(1, 65535)));
  ASSIGN_OR_RETURN(r.last, f.Required("last", IntIn(1, 65535)));
  if (r.last < r.first)
    return Status::InvalidArgument("must not be below first", "last");
  return r;
}

Result<Hello> DecodeHello(const Fields& f) {
  Hello h;
  ASSIGN_OR_RETURN(h.node, f.Required("node", NodeName()));
  ASSIGN_OR_RETURN(h.address, f.OrDefault("address", Address(0), ""));
  ASSIGN_OR_RETURN(h.rendezvous_ports, f.Optional("rendezvous_ports", DecodePortRange));
  ASSIGN_OR_RETURN(h.site, f.OrDefault("site", StringOf(0, 128, Charset::kName), ""));
  ASSIGN_OR_RETURN(h.block, f.OrDefault("block", StringOf(0, 128, Charset::kName), ""));
  ASSIGN_OR_RETURN(
      h.labels,
      f.OrDefault(
          "labels",
          [](const json::value& v) {
            return DecodeMapOf(v, 64, StringRule{1, 128, Charset::kLabelKey}, StringOf(0, 256));
          },
          {}));
  ASSIGN_OR_RETURN(h.cpus, f.OrDefault("cpus", IntIn(0, 1'000'000), 0));
  ASSIGN_OR_RETURN(h.memory_mib, f.OrDefault("memory_mib", IntIn(0, int64_t{1} << 40), 0));
  ASSIGN_OR_RETURN(
      h.gpus,
      f.OrDefault("gpus", [](const json::value& v) { return DecodeArrayOf(v, 1024, DecodeGpu); },
                  {}));
  ASSIGN_OR_RETURN(h.nvlink_pairs, f.OrDefault("nvlink_pairs", internal::DecodeNvlinkPairs, {}));
  ASSIGN_OR_RETURN(h.running, f.OrDefault("running", RunningList(), {}));
  ASSIGN_OR_RETURN(h.worker_version, f.OrDefault("worker_version", StringOf(0, 128), ""));
  return h;
}

Result<Heartbeat> DecodeHeartbeat(const Fields& f) {
  Heartbeat h;
  ASSIGN_OR_RETURN(h.node, f.Required("node", NodeName()));
  ASSIGN_OR_RETURN(h.time, f.Required("time", Time));
  ASSIGN_OR_RETURN(h.running, f.OrDefault("running", RunningList(), {}));
  return h;
}

Result<JobUpdate> DecodeJobUpdate(const Fields& f) {
  JobUpdate u;
  ASSIGN_OR_RETURN(u.job, f.Required("job", Uint64In(1, kMaxU64)));
  ASSIGN_OR_RETURN(u.attempt, f.Required("attempt", IntIn(1, kMaxU32)));
  ASSIGN_OR_RETURN(u.state, f.Required("state", Enum<JobState>));
  ASSIGN_OR_RETURN(u.exit_code, f.Optional("exit_code", IntIn(kMinI32, kMaxI32)));
  // Any signal may end a job, not only the ones a spec may ask for: keep the name as reported.
  ASSIGN_OR_RETURN(u.signal, f.Optional("signal", StringOf(1, 32, Charset::kName)));
  ASSIGN_OR_RETURN(u.message, f.OrDefault("message", Message(), ""));
  ASSIGN_OR_RETURN(u.checkpoint_time, f.Optional("checkpoint_time", Time));
  ASSIGN_OR_RETURN(u.image_digest, f.OrDefault("image_digest", ImageDigest, ""));
  return u;
}

Result<GpuHealthEntry> DecodeGpuHealthEntry(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {}, kIgnore));
  GpuHealthEntry e;
  ASSIGN_OR_RETURN(e.index, f.Required("index", IntIn(0, 1023)));
  ASSIGN_OR_RETURN(e.health, f.Required("health", Enum<GpuHealth>));
  ASSIGN_OR_RETURN(e.message, f.OrDefault("message", Message(), ""));
  ASSIGN_OR_RETURN(e.xid, f.Optional("xid", IntIn(0, kMaxI32)));
  return e;
}

Result<GpuHealthReport> DecodeGpuHealthReport(const Fields& f) {
  GpuHealthReport r;
  ASSIGN_OR_RETURN(r.node, f.Required("node", NodeName()));
  ASSIGN_OR_RETURN(r.gpus, f.Required("gpus", [](const json::value& v) {
    return DecodeArrayOf(v, 1024, DecodeGpuHealthEntry);
  }));
  return r;
}

Result<Launch> DecodeLaunch(const Fields& f) {
  Launch l;
  ASSIGN_OR_RETURN(l.job, f.Required("job", Uint64In(1, kMaxU64)));
  ASSIGN_OR_RETURN(l.attempt, f.Required("attempt", IntIn(1, kMaxU32)));
  ASSIGN_OR_RETURN(l.spec, f.Required("spec", [](const json::value& v) {
    return internal::DecodeJobSpecFields(v, kIgnore);
  }));
  ASSIGN_OR_RETURN(l.user, f.OrDefault("user", StringOf(0, 64, Charset::kUser), ""));
  ASSIGN_OR_RETURN(
      std::vector<int64_t> gpus,
      f.OrDefault("gpus",
                  [](const json::value& v) { return DecodeArrayOf(v, 1024, IntIn(0, 1023)); }, {}));
  l.gpus.assign(gpus.begin(), gpus.end());
  ASSIGN_OR_RETURN(l.env, f.OrDefault("env",
                                      [](const json::value& v) {
                                        return DecodeMapOf(v, 1024,
                                                           StringRule{1, 256, Charset::kEnvKey},
                                                           StringOf(0, 64 * 1024));
                                      },
                                      {}));
  ASSIGN_OR_RETURN(l.array_index, f.Optional("array_index", IntIn(0, kMaxArrayIndex)));
  ASSIGN_OR_RETURN(l.array_job_id, f.Optional("array_job_id", Uint64In(1, kMaxU64)));
  ASSIGN_OR_RETURN(l.node_rank, f.Optional("node_rank", IntIn(0, 4095)));
  ASSIGN_OR_RETURN(
      l.nodes,
      f.OrDefault("nodes", [](const json::value& v) { return DecodeArrayOf(v, 4096, NodeName()); },
                  {}));
  ASSIGN_OR_RETURN(l.rendezvous, f.Optional("rendezvous", internal::DecodeRendezvous));
  if (l.node_rank && !l.nodes.empty() && static_cast<size_t>(*l.node_rank) >= l.nodes.size())
    return Status::InvalidArgument("must be less than the number of nodes", "node_rank");
  return l;
}

Result<Signal> DecodeSignal(const Fields& f) {
  Signal s;
  ASSIGN_OR_RETURN(s.job, f.Required("job", Uint64In(1, kMaxU64)));
  ASSIGN_OR_RETURN(s.attempt, f.Required("attempt", IntIn(1, kMaxU32)));
  ASSIGN_OR_RETURN(s.signal, f.Required("signal", DecodeSignalName));
  return s;
}

Result<Kill> DecodeKill(const Fields& f) {
  Kill k;
  ASSIGN_OR_RETURN(k.job, f.Required("job", Uint64In(1, kMaxU64)));
  ASSIGN_OR_RETURN(k.attempt, f.Required("attempt", IntIn(1, kMaxU32)));
  ASSIGN_OR_RETURN(k.grace_s, f.OrDefault("grace_s", IntIn(0, kMaxGracePeriodS), 30));
  ASSIGN_OR_RETURN(k.reason, f.OrDefault("reason", Message(), ""));
  return k;
}

Result<Drain> DecodeDrain(const Fields& f) {
  Drain d;
  ASSIGN_OR_RETURN(d.reason, f.OrDefault("reason", Message(), ""));
  return d;
}

Result<LogStream> DecodeLogStream(const json::value& v) {
  ASSIGN_OR_RETURN(std::string s, internal::DecodeString(v, StringRule{1, 16, Charset::kName}));
  if (s == "stdout")
    return LogStream::kStdout;
  if (s == "stderr")
    return LogStream::kStderr;
  return Status::InvalidArgument("must be stdout or stderr");
}

Result<ReadLog> DecodeReadLog(const Fields& f) {
  ReadLog r;
  ASSIGN_OR_RETURN(r.request, f.Required("request", Uint64In(0, kMaxU64)));
  ASSIGN_OR_RETURN(r.job, f.Required("job", Uint64In(1, kMaxU64)));
  ASSIGN_OR_RETURN(r.attempt, f.Required("attempt", IntIn(1, kMaxU32)));
  ASSIGN_OR_RETURN(r.stream, f.OrDefault("stream", DecodeLogStream, LogStream::kStdout));
  ASSIGN_OR_RETURN(r.offset, f.OrDefault("offset", IntIn(0, kMaxFileOffset), 0));
  ASSIGN_OR_RETURN(r.limit, f.OrDefault("limit", IntIn(1, kMaxLogChunkBytes), kMaxLogChunkBytes));
  return r;
}

Result<Ack> DecodeAck(const Fields& f) {
  Ack a;
  ASSIGN_OR_RETURN(a.job, f.Required("job", Uint64In(1, kMaxU64)));
  ASSIGN_OR_RETURN(a.attempt, f.Required("attempt", IntIn(1, kMaxU32)));
  return a;
}

Result<LogChunk> DecodeLogChunk(const Fields& f) {
  LogChunk c;
  ASSIGN_OR_RETURN(c.request, f.Required("request", Uint64In(0, kMaxU64)));
  ASSIGN_OR_RETURN(c.job, f.Required("job", Uint64In(1, kMaxU64)));
  ASSIGN_OR_RETURN(c.attempt, f.Required("attempt", IntIn(1, kMaxU32)));
  ASSIGN_OR_RETURN(c.stream, f.OrDefault("stream", DecodeLogStream, LogStream::kStdout));
  ASSIGN_OR_RETURN(c.offset, f.OrDefault("offset", IntIn(0, kMaxFileOffset), 0));
  ASSIGN_OR_RETURN(c.data, f.OrDefault("data", StringOf(0, 4 * kMaxLogChunkBytes), ""));
  ASSIGN_OR_RETURN(c.next_offset, f.OrDefault("next_offset", IntIn(0, kMaxFileOffset), c.offset));
  ASSIGN_OR_RETURN(c.size, f.OrDefault("size", IntIn(0, kMaxFileOffset), 0));
  ASSIGN_OR_RETURN(c.eof, f.OrDefault("eof", Bool, false));
  ASSIGN_OR_RETURN(c.error, f.OrDefault("error", Message(), ""));
  if (c.next_offset < c.offset)
    return Status::InvalidArgument("must not be less than offset", "next_offset");
  return c;
}

Result<std::string> TypeOf(const Fields& f) {
  return f.Required("type", StringOf(1, 64));
}

// Not inlined: inlined into the decoders, GCC 12 at -O2 warns that a string of the message variant
// "may be used uninitialized" (a false positive of its variant analysis), which fails a release
// build with warnings as errors.
template <typename Out, typename T>
[[gnu::noinline]] Result<Out> Wrap(Result<T> r) {
  if (!r.ok())
    return std::move(r).status();
  return Out(std::move(r).value());
}

json::value Encode(const Hello& h) {
  json::object o;
  o.emplace("type", "hello");
  o.emplace("node", h.node);
  if (!h.address.empty())
    o.emplace("address", h.address);
  if (h.rendezvous_ports) {
    o.emplace("rendezvous_ports", json::object{{"first", h.rendezvous_ports->first},
                                               {"last", h.rendezvous_ports->last}});
  }
  o.emplace("site", h.site);
  o.emplace("block", h.block);
  o.emplace("labels", StringMap(h.labels));
  o.emplace("cpus", h.cpus);
  o.emplace("memory_mib", h.memory_mib);
  json::array gpus;
  for (const Gpu& g : h.gpus)
    gpus.push_back(api::Encode(g));
  o.emplace("gpus", std::move(gpus));
  o.emplace("nvlink_pairs", internal::NvlinkPairsValue(h.nvlink_pairs));
  o.emplace("running", RunningValue(h.running));
  o.emplace("worker_version", h.worker_version);
  return o;
}

json::value Encode(const Heartbeat& h) {
  json::object o;
  o.emplace("type", "heartbeat");
  o.emplace("node", h.node);
  o.emplace("time", TimeValue(h.time));
  o.emplace("running", RunningValue(h.running));
  return o;
}

json::value Encode(const JobUpdate& u) {
  json::object o;
  o.emplace("type", "job_update");
  o.emplace("job", u.job);
  o.emplace("attempt", static_cast<int64_t>(u.attempt));
  o.emplace("state", ToString(u.state));
  o.emplace("exit_code", OptionalValue(u.exit_code));
  o.emplace("signal", OptionalValue(u.signal));
  o.emplace("message", u.message);
  o.emplace("checkpoint_time", OptionalTime(u.checkpoint_time));
  if (!u.image_digest.empty())
    o.emplace("image_digest", u.image_digest);
  return o;
}

json::value Encode(const GpuHealthReport& r) {
  json::object o;
  o.emplace("type", "gpu_health");
  o.emplace("node", r.node);
  json::array gpus;
  for (const GpuHealthEntry& e : r.gpus) {
    gpus.push_back(json::object{{"index", e.index},
                                {"health", ToString(e.health)},
                                {"message", e.message},
                                {"xid", OptionalValue(e.xid)}});
  }
  o.emplace("gpus", std::move(gpus));
  return o;
}

json::value Encode(const Launch& l) {
  json::object o;
  o.emplace("type", "launch");
  o.emplace("job", l.job);
  o.emplace("attempt", static_cast<int64_t>(l.attempt));
  o.emplace("spec", api::Encode(l.spec));
  o.emplace("user", l.user);
  json::array gpus;
  for (int32_t g : l.gpus)
    gpus.emplace_back(g);
  o.emplace("gpus", std::move(gpus));
  o.emplace("env", StringMap(l.env));
  o.emplace("array_index",
            l.array_index ? json::value(static_cast<int64_t>(*l.array_index)) : json::value());
  o.emplace("array_job_id", OptionalValue(l.array_job_id));
  o.emplace("node_rank", OptionalValue(l.node_rank));
  o.emplace("nodes", StringArray(l.nodes));
  if (l.rendezvous)
    o.emplace("rendezvous", internal::RendezvousValue(l.rendezvous));
  return o;
}

json::value Encode(const Signal& s) {
  return json::object{{"type", "signal"},
                      {"job", s.job},
                      {"attempt", static_cast<int64_t>(s.attempt)},
                      {"signal", s.signal}};
}

json::value Encode(const Kill& k) {
  return json::object{{"type", "kill"},
                      {"job", k.job},
                      {"attempt", static_cast<int64_t>(k.attempt)},
                      {"grace_s", k.grace_s},
                      {"reason", k.reason}};
}

json::value Encode(const Drain& d) {
  return json::object{{"type", "drain"}, {"reason", d.reason}};
}

json::value Encode(const ReadLog& r) {
  return json::object{{"type", "read_log"},
                      {"request", r.request},
                      {"job", r.job},
                      {"attempt", static_cast<int64_t>(r.attempt)},
                      {"stream", ToString(r.stream)},
                      {"offset", r.offset},
                      {"limit", r.limit}};
}

json::value Encode(const Ack& a) {
  return json::object{
      {"type", "ack"}, {"job", a.job}, {"attempt", static_cast<int64_t>(a.attempt)}};
}

json::value Encode(const LogChunk& c) {
  return json::object{{"type", "log_chunk"},
                      {"request", c.request},
                      {"job", c.job},
                      {"attempt", static_cast<int64_t>(c.attempt)},
                      {"stream", ToString(c.stream)},
                      {"offset", c.offset},
                      {"data", c.data},
                      {"next_offset", c.next_offset},
                      {"size", c.size},
                      {"eof", c.eof},
                      {"error", c.error}};
}

}  // namespace

std::string_view ToString(LogStream s) {
  return s == LogStream::kStderr ? "stderr" : "stdout";
}

Result<WorkerMessage> DecodeWorkerMessageValue(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {}, kIgnore));
  ASSIGN_OR_RETURN(std::string type, TypeOf(f));
  if (type == "hello")
    return Wrap<WorkerMessage>(DecodeHello(f));
  if (type == "heartbeat")
    return Wrap<WorkerMessage>(DecodeHeartbeat(f));
  if (type == "job_update")
    return Wrap<WorkerMessage>(DecodeJobUpdate(f));
  if (type == "gpu_health")
    return Wrap<WorkerMessage>(DecodeGpuHealthReport(f));
  if (type == "log_chunk")
    return Wrap<WorkerMessage>(DecodeLogChunk(f));
  return Status::InvalidArgument(
      "must be one of hello, heartbeat, job_update, gpu_health, log_chunk", "type");
}

Result<SchedulerMessage> DecodeSchedulerMessageValue(const json::value& v) {
  ASSIGN_OR_RETURN(Fields f, Fields::Open(v, {}, kIgnore));
  ASSIGN_OR_RETURN(std::string type, TypeOf(f));
  if (type == "launch")
    return Wrap<SchedulerMessage>(DecodeLaunch(f));
  if (type == "signal")
    return Wrap<SchedulerMessage>(DecodeSignal(f));
  if (type == "kill")
    return Wrap<SchedulerMessage>(DecodeKill(f));
  if (type == "drain")
    return Wrap<SchedulerMessage>(DecodeDrain(f));
  if (type == "read_log")
    return Wrap<SchedulerMessage>(DecodeReadLog(f));
  if (type == "ack")
    return Wrap<SchedulerMessage>(DecodeAck(f));
  return Status::InvalidArgument("must be one of launch, signal, kill, drain, read_log, ack",
                                 "type");
}

Result<WorkerMessage> DecodeWorkerMessage(std::string_view text) {
  ASSIGN_OR_RETURN(json::value v, ParseJson(text));
  return DecodeWorkerMessageValue(v);
}

Result<SchedulerMessage> DecodeSchedulerMessage(std::string_view text) {
  ASSIGN_OR_RETURN(json::value v, ParseJson(text));
  return DecodeSchedulerMessageValue(v);
}

json::value EncodeMessage(const WorkerMessage& message) {
  return std::visit([](const auto& m) { return Encode(m); }, message);
}

json::value EncodeMessage(const SchedulerMessage& message) {
  return std::visit([](const auto& m) { return Encode(m); }, message);
}

std::string SerializeMessage(const WorkerMessage& message) {
  return json::serialize(EncodeMessage(message));
}

std::string SerializeMessage(const SchedulerMessage& message) {
  return json::serialize(EncodeMessage(message));
}

std::string_view MessageType(const WorkerMessage& message) {
  static constexpr std::string_view kNames[] = {"hello", "heartbeat", "job_update", "gpu_health",
                                                "log_chunk"};
  return kNames[message.index()];
}

std::string_view MessageType(const SchedulerMessage& message) {
  static constexpr std::string_view kNames[] = {"launch", "signal",   "kill",
                                                "drain",  "read_log", "ack"};
  return kNames[message.index()];
}

}  // namespace gsched::api
