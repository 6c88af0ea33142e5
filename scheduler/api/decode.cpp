#include "scheduler/api/decode.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <cmath>
#include <cstdio>
#include <limits>

#include "scheduler/api/image.h"
#include "scheduler/common/quantity.h"
#include "scheduler/common/text.h"

namespace gsched::api::internal {
namespace {

bool IsPlainKey(std::string_view key) {
  if (key.empty())
    return false;
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

bool InCharset(char c, Charset charset, bool first) {
  bool lower = c >= 'a' && c <= 'z';
  bool upper = c >= 'A' && c <= 'Z';
  bool digit = c >= '0' && c <= '9';
  switch (charset) {
    case Charset::kAny:
      return c != '\0';
    case Charset::kName:
      return lower || upper || digit || c == '.' || c == '_' || c == '-';
    case Charset::kGpuType:
      return lower || digit || c == '.' || c == '_' || c == '-';
    case Charset::kEnvKey:
      return lower || upper || c == '_' || (digit && !first);
    case Charset::kLabelKey:
      return lower || upper || digit || c == '.' || c == '_' || c == '-' || c == '/';
    case Charset::kUser:
      return lower || upper || digit || c == '.' || c == '_' || c == '-' || c == '@';
    case Charset::kHost:
      return lower || upper || digit || c == '.' || c == ':' || c == '-';
  }
  return false;
}

std::string_view CharsetDescription(Charset charset) {
  switch (charset) {
    case Charset::kAny:
      return "must not contain NUL characters";
    case Charset::kName:
      return "may only contain A-Z a-z 0-9 . _ -";
    case Charset::kGpuType:
      return "may only contain a-z 0-9 . _ -";
    case Charset::kEnvKey:
      return "must match [A-Za-z_][A-Za-z0-9_]*";
    case Charset::kLabelKey:
      return "may only contain A-Z a-z 0-9 . _ - /";
    case Charset::kUser:
      return "may only contain A-Z a-z 0-9 . _ - @";
    case Charset::kHost:
      return "must be a host name or an IP address (A-Z a-z 0-9 . : -)";
  }
  return "";
}

std::string JsonKind(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
      return "an integer";
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "unknown";
}

}  // namespace

void AppendKeyToPath(std::string& path, std::string_view key) {
  // Long keys are cut (by `Printable`), so that an error never echoes megabytes of input.
  if (key.size() <= 64 && IsPlainKey(key)) {
    if (!path.empty())
      path += '.';
    path += key;
    return;
  }
  path += "[\"";
  path += Printable(key);
  path += "\"]";
}

void AppendIndexToPath(std::string& path, size_t index) {
  path += '[';
  path += std::to_string(index);
  path += ']';
}

std::string KeyPath(std::string_view key) {
  std::string path;
  AppendKeyToPath(path, key);
  return path;
}

std::string IndexPath(size_t index) {
  std::string path;
  AppendIndexToPath(path, index);
  return path;
}

std::string Printable(std::string_view text) {
  constexpr size_t kMax = 64;
  std::string out;
  for (size_t i = 0; i < text.size() && i < kMax; ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > kMax)
    out += "...";
  return out;
}

std::optional<std::string_view> Suggest(std::string_view word,
                                        std::initializer_list<std::string_view> candidates) {
  std::optional<std::string_view> best;
  // Field names are short; comparing a huge key would cost time for nothing.
  if (word.size() > 64)
    return best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  // A typo of a few letters, proportional to the word's length.
  size_t threshold = std::max<size_t>(2, word.size() / 3);
  for (std::string_view c : candidates) {
    size_t d = EditDistance(word, c);
    // "gpus" for "gpus_per_node": a prefix of a field is as good as a small typo.
    if (word.size() >= 3 && (c.starts_with(word) || word.starts_with(c)))
      d = std::min<size_t>(d, 1);
    if (d <= threshold && d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

Status CheckString(std::string_view s, const StringRule& rule) {
  if (s.size() < rule.min_len) {
    if (rule.min_len == 1)
      return Status::InvalidArgument("must not be empty");
    return Status::InvalidArgument("must be at least " + std::to_string(rule.min_len) +
                                   " bytes long");
  }
  if (s.size() > rule.max_len) {
    return Status::InvalidArgument("must be at most " + std::to_string(rule.max_len) +
                                   " bytes long (got " + std::to_string(s.size()) + ")");
  }
  for (size_t i = 0; i < s.size(); ++i) {
    if (!InCharset(s[i], rule.charset, i == 0))
      return Status::InvalidArgument(std::string(CharsetDescription(rule.charset)));
  }
  return Status::Ok();
}

Result<int64_t> DecodeInt(const json::value& v, int64_t lo, int64_t hi) {
  int64_t i = 0;
  if (const int64_t* p = v.if_int64()) {
    i = *p;
  } else if (const uint64_t* u = v.if_uint64()) {
    // The parser stores only values above INT64_MAX as uint64, but values built in code may hold
    // small unsigned numbers.
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return Status::InvalidArgument("must be " + std::to_string(lo) + ".." + std::to_string(hi));
    i = static_cast<int64_t>(*u);
  } else {
    return Status::InvalidArgument("must be an integer, not " + JsonKind(v));
  }
  if (i < lo || i > hi)
    return Status::InvalidArgument("must be " + std::to_string(lo) + ".." + std::to_string(hi));
  return i;
}

Result<uint64_t> DecodeUint64(const json::value& v, uint64_t lo, uint64_t hi) {
  uint64_t u = 0;
  if (const int64_t* p = v.if_int64()) {
    if (*p < 0)
      return Status::InvalidArgument("must be " + std::to_string(lo) + ".." + std::to_string(hi));
    u = static_cast<uint64_t>(*p);
  } else if (const uint64_t* q = v.if_uint64()) {
    u = *q;
  } else {
    return Status::InvalidArgument("must be an integer, not " + JsonKind(v));
  }
  if (u < lo || u > hi)
    return Status::InvalidArgument("must be " + std::to_string(lo) + ".." + std::to_string(hi));
  return u;
}

Result<double> DecodeNumber(const json::value& v, double lo, double hi) {
  double d = 0;
  if (const int64_t* p = v.if_int64()) {
    d = static_cast<double>(*p);
  } else if (const uint64_t* u = v.if_uint64()) {
    d = static_cast<double>(*u);
  } else if (const double* q = v.if_double()) {
    d = *q;
  } else {
    return Status::InvalidArgument("must be a number, not " + JsonKind(v));
  }
  if (!std::isfinite(d) || d < lo || d > hi) {
    char buf[96];
    std::snprintf(buf, sizeof(buf), "must be %g..%g", lo, hi);
    return Status::InvalidArgument(buf);
  }
  return d;
}

Result<bool> DecodeBool(const json::value& v) {
  if (const bool* b = v.if_bool())
    return *b;
  return Status::InvalidArgument("must be true or false, not " + JsonKind(v));
}

Result<std::string> DecodeString(const json::value& v, const StringRule& rule) {
  const json::string* s = v.if_string();
  if (s == nullptr)
    return Status::InvalidArgument("must be a string, not " + JsonKind(v));
  std::string_view sv(s->data(), s->size());
  RETURN_IF_ERROR(CheckString(sv, rule));
  return std::string(sv);
}

Result<std::string> ImageDigest(const json::value& v) {
  const json::string* s = v.if_string();
  if (s == nullptr || !IsImageDigest(std::string_view(s->data(), s->size())))
    return Status::InvalidArgument("must be \"sha256:\" and 64 lowercase hex digits");
  return std::string(s->data(), s->size());
}

Result<Timestamp> DecodeTime(const json::value& v) {
  const json::string* s = v.if_string();
  if (s == nullptr)
    return Status::InvalidArgument("must be an RFC 3339 time string, not " + JsonKind(v));
  // The quantity parsers quote their input in errors; nothing valid is this long.
  if (s->size() > 64)
    return Status::InvalidArgument("must be an RFC 3339 time string (too long)");
  return ParseTimestamp(std::string_view(s->data(), s->size()));
}

Result<int64_t> DecodeSeconds(const json::value& v, int64_t lo, int64_t hi) {
  auto range = [&] {
    return Status::InvalidArgument("must be " + std::to_string(lo) + ".." + std::to_string(hi) +
                                   " seconds");
  };
  if (const json::string* s = v.if_string()) {
    if (s->size() > 64)
      return Status::InvalidArgument("must be an integer or a duration string (too long)");
    ASSIGN_OR_RETURN(Duration d, ParseDuration(std::string_view(s->data(), s->size())));
    if (d.count() % 1000 != 0)
      return Status::InvalidArgument("must be whole seconds");
    int64_t seconds = d.count() / 1000;
    if (seconds < lo || seconds > hi)
      return range();
    return seconds;
  }
  if (!v.is_int64() && !v.is_uint64())
    return Status::InvalidArgument("must be an integer or a duration string, not " + JsonKind(v));
  auto r = DecodeInt(v, lo, hi);
  if (!r.ok())
    return range();
  return r;
}

Result<const json::object*> DecodeObject(const json::value& v) {
  if (const json::object* o = v.if_object())
    return o;
  return Status::InvalidArgument("must be an object, not " + JsonKind(v));
}

Result<const json::array*> DecodeArray(const json::value& v, size_t max_size) {
  const json::array* a = v.if_array();
  if (a == nullptr)
    return Status::InvalidArgument("must be an array, not " + JsonKind(v));
  if (a->size() > max_size) {
    return Status::InvalidArgument("must have at most " + std::to_string(max_size) +
                                   " elements (got " + std::to_string(a->size()) + ")");
  }
  return a;
}

Result<Fields> Fields::Open(const json::value& v, std::initializer_list<std::string_view> known,
                            Unknown unknown) {
  ASSIGN_OR_RETURN(const json::object* o, DecodeObject(v));
  if (unknown == Unknown::kReject) {
    for (const auto& kv : *o) {
      std::string_view key(kv.key().data(), kv.key().size());
      if (std::find(known.begin(), known.end(), key) != known.end())
        continue;
      std::string message = "unknown field";
      if (std::optional<std::string_view> s = Suggest(key, known))
        message += "; did you mean '" + std::string(*s) + "'?";
      return Status::InvalidArgument(std::move(message), KeyPath(key));
    }
  }
  return Fields(o);
}

const json::value* Fields::Find(std::string_view key) const {
  const json::value* v = o_->if_contains(json::string_view(key.data(), key.size()));
  if (v == nullptr || v->is_null())
    return nullptr;
  return v;
}

json::value TimeValue(Timestamp t) {
  return json::value(FormatTimestamp(t));
}

json::value OptionalTime(const std::optional<Timestamp>& t) {
  if (!t)
    return nullptr;
  return TimeValue(*t);
}

json::value NumberValue(double d) {
  constexpr double kExact = 9007199254740992.0;  // 2^53.
  if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < kExact)
    return json::value(static_cast<int64_t>(d));
  return json::value(d);
}

json::value StringMap(const std::map<std::string, std::string>& m) {
  json::object o;
  o.reserve(m.size());
  for (const auto& [k, v] : m)
    o.emplace(k, v);
  return o;
}

json::value StringArray(const std::vector<std::string>& v) {
  json::array a;
  a.reserve(v.size());
  for (const std::string& s : v)
    a.emplace_back(s);
  return a;
}

}  // namespace gsched::api::internal
