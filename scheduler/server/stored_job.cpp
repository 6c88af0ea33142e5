#include "scheduler/server/stored_job.h"

#include <boost/json.hpp>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "scheduler/api/codec.h"
#include "scheduler/api/image.h"
#include "scheduler/state/store.h"

namespace gsched::server {
namespace json = boost::json;

namespace {

// How errors name a record: "job record 42", or the key's bytes when it is not a job key.
std::string RecordName(std::string_view key) {
  if (auto id = state::ParseU64Key(key); id.ok())
    return "job record " + std::to_string(*id);
  std::string hex;
  for (unsigned char c : key) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", c);
    hex += b;
  }
  return "job record with key 0x" + hex;
}

// ---------------------------------------------------------------------------------------------
// Binary writing.

class Writer {
 public:
  Writer() {
    out_.reserve(256);
    out_ += kStoredJobBinaryV3;
  }
  void U64(uint64_t v) {
    while (v >= 0x80) {
      out_ += static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    out_ += static_cast<char>(v);
  }
  void I64(int64_t v) {  // Zigzag: small negative numbers stay short.
    U64((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  void Bool(bool v) { out_ += v ? '\x01' : '\x00'; }
  void Str(std::string_view s) {
    U64(s.size());
    out_ += s;
  }
  void Double(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    for (int i = 0; i < 8; ++i)
      out_ += static_cast<char>(bits >> (8 * i));
  }
  void Time(Timestamp t) { I64(ToUnixMillis(t)); }
  template <typename E>
  void Enum(E e) {
    Str(api::ToString(e));
  }
  template <typename T, typename F>
  void Optional(const std::optional<T>& v, F write) {
    Bool(v.has_value());
    if (v)
      write(*v);
  }
  void Strings(const std::vector<std::string>& v) {
    U64(v.size());
    for (const auto& s : v)
      Str(s);
  }
  void StringMap(const std::map<std::string, std::string>& m) {
    U64(m.size());
    for (const auto& [k, v] : m) {
      Str(k);
      Str(v);
    }
  }
  void Allocations(const std::vector<api::Allocation>& v) {
    U64(v.size());
    for (const auto& a : v) {
      Str(a.node);
      U64(a.gpus.size());
      for (int32_t g : a.gpus)
        I64(g);
    }
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

void WriteSpec(Writer& w, const api::JobSpec& s) {
  w.Str(s.name);
  w.Str(s.account);
  w.Str(s.image);
  w.Strings(s.command);
  w.StringMap(s.env);
  w.Str(s.workdir);
  w.I64(s.nodes);
  w.I64(s.gpus_per_node);
  w.Strings(s.gpu_type);
  w.I64(s.cpus_per_node);
  w.I64(s.memory_mib_per_node);
  w.Optional(s.time_limit_s, [&](int64_t v) { w.I64(v); });
  w.Enum(s.priority_class);
  w.Enum(s.topology);
  w.Optional(s.array, [&](const std::string& v) { w.Str(v); });
  w.U64(s.depends_on.size());
  for (const auto& d : s.depends_on) {
    w.Enum(d.type);
    w.U64(d.job);
  }
  w.Str(s.checkpoint_signal);
  w.I64(s.grace_period_s);
  w.Bool(s.requeue);
  w.StringMap(s.labels);
}

// ---------------------------------------------------------------------------------------------
// Binary reading. Every read is bounds-checked; the first failure is kept (with the field it
// was reading) and later reads return defaults, so that decoding code reads straight through and
// checks once at the end.

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  bool failed() const { return field_ != nullptr; }
  const char* field() const { return field_; }
  size_t offset() const { return failed_at_; }
  std::string_view problem() const { return problem_; }
  bool at_end() const { return pos_ == data_.size(); }

  uint64_t U64(const char* field) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (failed() || pos_ >= data_.size())
        return Fail(field, "truncated"), 0;
      auto byte = static_cast<unsigned char>(data_[pos_++]);
      if (shift == 63 && byte > 1)
        return Fail(field, "varint overflows 64 bits"), 0;
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0)
        return v;
    }
    return Fail(field, "varint longer than 10 bytes"), 0;
  }
  int64_t I64(const char* field) {
    uint64_t z = U64(field);
    return static_cast<int64_t>(z >> 1) ^ -static_cast<int64_t>(z & 1);
  }
  int32_t I32(const char* field) {
    int64_t v = I64(field);
    if (v < INT32_MIN || v > INT32_MAX)
      return Fail(field, "out of range"), 0;
    return static_cast<int32_t>(v);
  }
  uint32_t U32(const char* field) {
    uint64_t v = U64(field);
    if (v > UINT32_MAX)
      return Fail(field, "out of range"), 0;
    return static_cast<uint32_t>(v);
  }
  bool Bool(const char* field) {
    if (failed() || pos_ >= data_.size())
      return Fail(field, "truncated"), false;
    char c = data_[pos_++];
    if (c != '\x00' && c != '\x01')
      return Fail(field, "not a boolean"), false;
    return c == '\x01';
  }
  std::string_view View(const char* field) {
    uint64_t n = U64(field);
    if (failed())
      return {};
    if (n > data_.size() - pos_)
      return Fail(field, "length beyond the record"), std::string_view();
    std::string_view s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string Str(const char* field) { return std::string(View(field)); }
  double Double(const char* field) {
    if (failed() || data_.size() - pos_ < 8)
      return Fail(field, "truncated"), 0.0;
    uint64_t bits = 0;
    for (int i = 0; i < 8; ++i)
      bits |= static_cast<uint64_t>(static_cast<unsigned char>(data_[pos_++])) << (8 * i);
    double v;
    std::memcpy(&v, &bits, sizeof v);
    if (!std::isfinite(v))
      return Fail(field, "not a finite number"), 0.0;
    return v;
  }
  Timestamp Time(const char* field) { return FromUnixMillis(I64(field)); }
  template <typename E>
  E Enum(const char* field) {
    std::string_view name = View(field);
    if (failed())
      return E{};
    auto e = api::ParseEnum<E>(name);
    if (!e)
      return Fail(field, "unknown name"), E{};
    return *e;
  }
  // A count of things that take at least one byte each: never more than the bytes left, so that
  // a garbled count cannot make a huge allocation.
  size_t Count(const char* field) {
    uint64_t n = U64(field);
    if (!failed() && n > data_.size() - pos_)
      return Fail(field, "count beyond the record"), 0;
    return failed() ? 0 : static_cast<size_t>(n);
  }
  template <typename T, typename F>
  std::optional<T> Optional(const char* field, F read) {
    if (!Bool(field))
      return std::nullopt;
    T v = read();
    if (failed())
      return std::nullopt;
    return v;
  }
  std::vector<std::string> Strings(const char* field) {
    std::vector<std::string> v(Count(field));
    for (auto& s : v)
      s = Str(field);
    return v;
  }
  std::map<std::string, std::string> StringMap(const char* field) {
    std::map<std::string, std::string> m;
    size_t n = Count(field);
    for (size_t i = 0; i < n && !failed(); ++i) {
      std::string k = Str(field);
      m[std::move(k)] = Str(field);
    }
    return m;
  }
  std::vector<api::Allocation> Allocations(const char* field) {
    std::vector<api::Allocation> v(Count(field));
    for (auto& a : v) {
      a.node = Str(field);
      a.gpus.resize(Count(field));
      for (int32_t& g : a.gpus)
        g = I32(field);
    }
    return v;
  }
  void Fail(const char* field, const char* problem) {
    if (failed())
      return;
    field_ = field;
    problem_ = problem;
    failed_at_ = pos_;
  }

 private:
  std::string_view data_;
  size_t pos_ = 1;  // After the format byte.
  const char* field_ = nullptr;
  const char* problem_ = "";
  size_t failed_at_ = 0;
};

api::JobSpec ReadSpec(Reader& r) {
  api::JobSpec s;
  s.name = r.Str("spec.name");
  s.account = r.Str("spec.account");
  s.image = r.Str("spec.image");
  s.command = r.Strings("spec.command");
  s.env = r.StringMap("spec.env");
  s.workdir = r.Str("spec.workdir");
  s.nodes = r.I32("spec.nodes");
  s.gpus_per_node = r.I32("spec.gpus_per_node");
  s.gpu_type = r.Strings("spec.gpu_type");
  s.cpus_per_node = r.I32("spec.cpus_per_node");
  s.memory_mib_per_node = r.I64("spec.memory_mib_per_node");
  s.time_limit_s =
      r.Optional<int64_t>("spec.time_limit_s", [&] { return r.I64("spec.time_limit_s"); });
  s.priority_class = r.Enum<api::PriorityClass>("spec.priority_class");
  s.topology = r.Enum<api::Topology>("spec.topology");
  s.array = r.Optional<std::string>("spec.array", [&] { return r.Str("spec.array"); });
  s.depends_on.resize(r.Count("spec.depends_on"));
  for (auto& d : s.depends_on) {
    d.type = r.Enum<api::DependencyType>("spec.depends_on");
    d.job = r.U64("spec.depends_on");
  }
  s.checkpoint_signal = r.Str("spec.checkpoint_signal");
  s.grace_period_s = r.I32("spec.grace_period_s");
  s.requeue = r.Bool("spec.requeue");
  s.labels = r.StringMap("spec.labels");
  return s;
}

Result<StoredJobRecord> DecodeBinary(std::string_view key, std::string_view value,
                                     StoredJobDetail detail) {
  const char version = value[0];
  Reader r(value);
  StoredJobRecord rec;
  api::Job& j = rec.job;
  j.state = r.Enum<api::JobState>("state");
  j.id = r.U64("id");
  if (!r.failed() && detail == StoredJobDetail::kStateIfFinished && api::IsTerminal(j.state))
    return rec;
  j.user = r.Str("user");
  j.submit_time = r.Time("submit_time");
  j.start_time = r.Optional<Timestamp>("start_time", [&] { return r.Time("start_time"); });
  j.end_time = r.Optional<Timestamp>("end_time", [&] { return r.Time("end_time"); });
  j.attempt = r.U32("attempt");
  j.allocation = r.Allocations("allocation");
  j.exit_code = r.Optional<int32_t>("exit_code", [&] { return r.I32("exit_code"); });
  j.signal = r.Optional<std::string>("signal", [&] { return r.Str("signal"); });
  j.reason = r.Optional<api::Reason>("reason", [&] {
    api::Reason reason;
    reason.code = r.Enum<api::ReasonCode>("reason.code");
    reason.message = r.Str("reason.message");
    std::string_view details = r.View("reason.details");
    if (!r.failed() && !details.empty()) {
      boost::system::error_code ec;
      json::value v = json::parse(details, ec);
      if (ec || !v.is_object())
        r.Fail("reason.details", "not a JSON object");
      else
        reason.details = std::move(v.get_object());
    }
    reason.estimated_start = r.Optional<Timestamp>(
        "reason.estimated_start", [&] { return r.Time("reason.estimated_start"); });
    return reason;
  });
  j.array_job_id = r.Optional<uint64_t>("array_job_id", [&] { return r.U64("array_job_id"); });
  j.array_index = r.Optional<uint32_t>("array_index", [&] { return r.U32("array_index"); });
  j.borrowing = r.Bool("borrowing");
  j.held = r.Bool("held");
  j.priority = r.Double("priority");
  j.attempts.resize(r.Count("attempts"));
  for (auto& a : j.attempts) {
    a.attempt = r.U32("attempts.attempt");
    a.allocation = r.Allocations("attempts.allocation");
    a.start_time = r.Time("attempts.start_time");
    a.end_time =
        r.Optional<Timestamp>("attempts.end_time", [&] { return r.Time("attempts.end_time"); });
    a.state = r.Enum<api::JobState>("attempts.state");
    a.exit_code =
        r.Optional<int32_t>("attempts.exit_code", [&] { return r.I32("attempts.exit_code"); });
    if (version >= kStoredJobBinaryV2)
      a.message = r.Str("attempts.message");
  }
  j.spec = ReadSpec(r);
  rec.checkpoint = r.Optional<Timestamp>("checkpoint", [&] { return r.Time("checkpoint"); });
  rec.preemptible = r.Bool("preemptible");
  if (version >= kStoredJobBinaryV2) {
    j.held_by = r.Str("held_by");
    j.held_by_role =
        r.Optional<api::Role>("held_by_role", [&] { return r.Enum<api::Role>("held_by_role"); });
  }
  if (version >= kStoredJobBinaryV3) {
    j.rendezvous = r.Optional<api::Rendezvous>("rendezvous", [&] {
      api::Rendezvous rv;
      rv.address = r.Str("rendezvous.address");
      rv.port = static_cast<int32_t>(r.U32("rendezvous.port"));
      if (rv.port < 1 || rv.port > 65535)
        r.Fail("rendezvous.port", "not a port");
      return rv;
    });
    rec.gang.parts_ended = r.Strings("gang.parts_ended");
    rec.gang.failure = r.Optional<PartEnd>("gang.failure", [&] {
      PartEnd e;
      e.state = r.Enum<api::JobState>("gang.failure.state");
      e.exit_code = r.Optional<int32_t>("gang.failure.exit_code",
                                        [&] { return r.I32("gang.failure.exit_code"); });
      e.signal = r.Optional<std::string>("gang.failure.signal",
                                         [&] { return r.Str("gang.failure.signal"); });
      e.message = r.Str("gang.failure.message");
      return e;
    });
    j.image_digest = r.Str("image_digest");
    if (!r.failed() && !j.image_digest.empty() && !api::IsImageDigest(j.image_digest))
      r.Fail("image_digest", "not sha256: and 64 lowercase hex digits");
  }
  if (!r.failed() && !r.at_end())
    r.Fail("end", "bytes after the record");
  if (r.failed()) {
    return Status::Internal(RecordName(key) + ": malformed at '" + r.field() + "' (byte " +
                            std::to_string(r.offset()) + " of " + std::to_string(value.size()) +
                            "): " + std::string(r.problem()));
  }
  return rec;
}

std::optional<GangProgress> DecodeGangJson(const json::value& v) {
  const json::object* o = v.if_object();
  const json::value* ended = o ? o->if_contains("parts_ended") : nullptr;
  if (!ended || !ended->is_array())
    return std::nullopt;
  GangProgress gang;
  for (const json::value& n : ended->get_array()) {
    if (!n.is_string())
      return std::nullopt;
    gang.parts_ended.emplace_back(n.get_string());
  }
  if (const json::value* f = o->if_contains("failure")) {
    const json::object* fo = f->if_object();
    const json::value* state = fo ? fo->if_contains("state") : nullptr;
    const json::value* message = fo ? fo->if_contains("message") : nullptr;
    auto parsed = state && state->is_string() ? api::ParseEnum<api::JobState>(state->get_string())
                                              : std::nullopt;
    if (!parsed || !message || !message->is_string())
      return std::nullopt;
    PartEnd e;
    e.state = *parsed;
    e.message = message->get_string();
    if (const json::value* c = fo->if_contains("exit_code")) {
      if (!c->is_int64() || c->get_int64() < INT32_MIN || c->get_int64() > INT32_MAX)
        return std::nullopt;
      e.exit_code = static_cast<int32_t>(c->get_int64());
    }
    if (const json::value* sig = fo->if_contains("signal")) {
      if (!sig->is_string())
        return std::nullopt;
      e.signal = std::string(sig->get_string());
    }
    gang.failure = std::move(e);
  }
  return gang;
}

Result<StoredJobRecord> DecodeJson(std::string_view key, std::string_view value,
                                   StoredJobDetail detail) {
  // One arena for the parse: no malloc and free per JSON node.
  unsigned char arena[8192];
  json::monotonic_resource mr(arena, sizeof arena);
  boost::system::error_code ec;
  json::value v = json::parse(value, ec, &mr);
  const json::value* job = !ec && v.is_object() ? v.get_object().if_contains("job") : nullptr;
  if (!job || !job->is_object())
    return Status::Internal(RecordName(key) + ": malformed JSON");
  if (detail == StoredJobDetail::kStateIfFinished) {
    const json::value* st = job->get_object().if_contains("state");
    const json::value* id = job->get_object().if_contains("id");
    auto state =
        st && st->is_string() ? api::ParseEnum<api::JobState>(st->get_string()) : std::nullopt;
    if (!state)
      return Status::Internal(RecordName(key) + ": no valid state");
    if (api::IsTerminal(*state)) {
      StoredJobRecord rec;
      rec.job.state = *state;
      rec.job.id = id && id->is_uint64()  ? id->get_uint64()
                   : id && id->is_int64() ? static_cast<uint64_t>(id->get_int64())
                                          : 0;
      return rec;
    }
  }
  auto decoded = api::DecodeJob(*job);
  if (!decoded.ok())
    return Status::Internal(RecordName(key) + ": " + decoded.status().ToString());
  StoredJobRecord rec;
  rec.job = std::move(decoded).value();
  const json::object& o = v.get_object();
  if (const auto* cp = o.if_contains("checkpoint"); cp && cp->is_int64())
    rec.checkpoint = FromUnixMillis(cp->get_int64());
  if (const auto* p = o.if_contains("preemptible"); p && p->is_bool())
    rec.preemptible = p->get_bool();
  if (const auto* g = o.if_contains("gang")) {
    auto gang = DecodeGangJson(*g);
    if (!gang)
      return Status::Internal(RecordName(key) + ": malformed 'gang'");
    rec.gang = std::move(*gang);
  }
  return rec;
}

}  // namespace

std::string EncodeStoredJob(const api::Job& j, std::optional<Timestamp> checkpoint,
                            bool preemptible, const GangProgress& gang) {
  Writer w;
  // The state first: `StoredJobDetail::kStateIfFinished` reads no more of a finished job.
  w.Enum(j.state);
  w.U64(j.id);
  w.Str(j.user);
  w.Time(j.submit_time);
  w.Optional(j.start_time, [&](Timestamp t) { w.Time(t); });
  w.Optional(j.end_time, [&](Timestamp t) { w.Time(t); });
  w.U64(j.attempt);
  w.Allocations(j.allocation);
  w.Optional(j.exit_code, [&](int32_t v) { w.I64(v); });
  w.Optional(j.signal, [&](const std::string& v) { w.Str(v); });
  w.Optional(j.reason, [&](const api::Reason& r) {
    w.Enum(r.code);
    w.Str(r.message);
    w.Str(r.details.empty() ? std::string() : json::serialize(r.details));
    w.Optional(r.estimated_start, [&](Timestamp t) { w.Time(t); });
  });
  w.Optional(j.array_job_id, [&](uint64_t v) { w.U64(v); });
  w.Optional(j.array_index, [&](uint32_t v) { w.U64(v); });
  w.Bool(j.borrowing);
  w.Bool(j.held);
  w.Double(j.priority);
  w.U64(j.attempts.size());
  for (const auto& a : j.attempts) {
    w.U64(a.attempt);
    w.Allocations(a.allocation);
    w.Time(a.start_time);
    w.Optional(a.end_time, [&](Timestamp t) { w.Time(t); });
    w.Enum(a.state);
    w.Optional(a.exit_code, [&](int32_t v) { w.I64(v); });
    w.Str(a.message);
  }
  WriteSpec(w, j.spec);
  w.Optional(checkpoint, [&](Timestamp t) { w.Time(t); });
  w.Bool(preemptible);
  // Since V2.
  w.Str(j.held_by);
  w.Optional(j.held_by_role, [&](api::Role role) { w.Enum(role); });
  // Since V3.
  w.Optional(j.rendezvous, [&](const api::Rendezvous& r) {
    w.Str(r.address);
    w.U64(static_cast<uint64_t>(r.port));
  });
  w.Strings(gang.parts_ended);
  w.Optional(gang.failure, [&](const PartEnd& e) {
    w.Enum(e.state);
    w.Optional(e.exit_code, [&](int32_t v) { w.I64(v); });
    w.Optional(e.signal, [&](const std::string& v) { w.Str(v); });
    w.Str(e.message);
  });
  w.Str(j.image_digest);
  return w.Take();
}

std::string EncodeStoredJobJson(const StoredJobRecord& record) {
  json::object o;
  o["job"] = api::Encode(record.job);
  if (record.checkpoint)
    o["checkpoint"] = ToUnixMillis(*record.checkpoint);
  if (record.preemptible)
    o["preemptible"] = true;
  if (record.gang != GangProgress{}) {
    json::array ended;
    for (const auto& n : record.gang.parts_ended)
      ended.emplace_back(n);
    json::object gang{{"parts_ended", std::move(ended)}};
    if (const auto& f = record.gang.failure) {
      json::object failure{{"state", api::ToString(f->state)}, {"message", f->message}};
      if (f->exit_code)
        failure["exit_code"] = *f->exit_code;
      if (f->signal)
        failure["signal"] = *f->signal;
      gang["failure"] = std::move(failure);
    }
    o["gang"] = std::move(gang);
  }
  return json::serialize(o);
}

Result<StoredJobRecord> DecodeStoredJob(std::string_view key, std::string_view value,
                                        StoredJobDetail detail) {
  if (value.empty())
    return Status::Internal(RecordName(key) + ": empty");
  if (value[0] == kStoredJobBinaryV1 || value[0] == kStoredJobBinaryV2 ||
      value[0] == kStoredJobBinaryV3)
    return DecodeBinary(key, value, detail);
  if (value[0] == '{')
    return DecodeJson(key, value, detail);
  char b[8];
  std::snprintf(b, sizeof b, "0x%02x", static_cast<unsigned char>(value[0]));
  return Status::Internal(RecordName(key) + ": unknown format byte " + b);
}

}  // namespace gsched::server
