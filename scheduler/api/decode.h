// Building blocks of the strict JSON decoders of `scheduler/api` (internal to the library; other
// areas use codec.h and worker_messages.h). Each `Decode...` checks one value - its JSON type, its
// range, its length, its characters - and returns the value or a `Status` whose message says what
// is accepted ("must be 1..64", "must be one of high, normal, preemptible"). `Fields` walks an
// object: it names the field in every error and rejects unknown fields with a did-you-mean
// suggestion when the type is strict. Errors carry the JSON path of the first bad field, built
// bottom-up with `Status::WithFieldPrefix`.
//
// Integers must be JSON integers: 8.5 and 8.0 are both rejected, so that a client's float
// arithmetic never silently becomes a GPU count.
//
// Threading: stateless functions.
#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "scheduler/api/enums.h"
#include "scheduler/common/clock.h"
#include "scheduler/common/status.h"

namespace gsched::api {
struct JobSpec;
struct Rendezvous;
}  // namespace gsched::api

namespace gsched::api::internal {

namespace json = boost::json;

// Path building: `AppendKeyToPath("env", "PATH")` gives `env.PATH`; a key that is not a plain
// identifier, or longer than 64 bytes, is quoted and cut: `labels["a b"]`.
void AppendKeyToPath(std::string& path, std::string_view key);
void AppendIndexToPath(std::string& path, size_t index);
std::string KeyPath(std::string_view key);
std::string IndexPath(size_t index);

// `text` cut to 64 bytes with control characters escaped, for quoting user input in messages.
std::string Printable(std::string_view text);

// The closest of `candidates` to `word` (a prefix, or within a small edit distance), if any.
std::optional<std::string_view> Suggest(std::string_view word,
                                        std::initializer_list<std::string_view> candidates);

// Character sets for identifiers.
enum class Charset {
  kAny,       // Any UTF-8 except NUL.
  kName,      // [A-Za-z0-9._-]: job, account, node, site and block names.
  kGpuType,   // [a-z0-9._-].
  kEnvKey,    // [A-Za-z_][A-Za-z0-9_]*.
  kLabelKey,  // [A-Za-z0-9._/-].
  kUser,      // [A-Za-z0-9._@-].
  kHost,      // [A-Za-z0-9.:-]: a host name, an IPv4 or an IPv6 address.
};

struct StringRule {
  size_t min_len = 0;
  size_t max_len = 0;
  Charset charset = Charset::kAny;
};

Status CheckString(std::string_view s, const StringRule& rule);

Result<int64_t> DecodeInt(const json::value& v, int64_t lo, int64_t hi);
Result<uint64_t> DecodeUint64(const json::value& v, uint64_t lo, uint64_t hi);
Result<double> DecodeNumber(const json::value& v, double lo, double hi);
Result<bool> DecodeBool(const json::value& v);
Result<std::string> DecodeString(const json::value& v, const StringRule& rule);
// RFC 3339 or a plain date.
Result<Timestamp> DecodeTime(const json::value& v);
// Whole seconds as an integer or a duration string ("4h"), within lo..hi seconds.
Result<int64_t> DecodeSeconds(const json::value& v, int64_t lo, int64_t hi);
Result<const json::object*> DecodeObject(const json::value& v);
Result<const json::array*> DecodeArray(const json::value& v, size_t max_size);

template <typename E>
Result<E> DecodeEnum(const json::value& v) {
  const json::string* s = v.if_string();
  if (s == nullptr)
    return Status::InvalidArgument("must be one of " + EnumNames<E>());
  std::optional<E> e = ParseEnum<E>(std::string_view(s->data(), s->size()));
  if (!e)
    return Status::InvalidArgument("must be one of " + EnumNames<E>());
  return *e;
}

// Decoder factories, for `Fields::Required`/`Optional`, `DecodeArrayOf` and `DecodeMapOf`.
inline auto IntIn(int64_t lo, int64_t hi) {
  return [=](const json::value& v) { return DecodeInt(v, lo, hi); };
}
inline auto Uint64In(uint64_t lo, uint64_t hi) {
  return [=](const json::value& v) { return DecodeUint64(v, lo, hi); };
}
inline auto NumberIn(double lo, double hi) {
  return [=](const json::value& v) { return DecodeNumber(v, lo, hi); };
}
inline auto StringOf(size_t min_len, size_t max_len, Charset charset = Charset::kAny) {
  return [=](const json::value& v) {
    return DecodeString(v, StringRule{min_len, max_len, charset});
  };
}
inline auto SecondsIn(int64_t lo, int64_t hi) {
  return [=](const json::value& v) { return DecodeSeconds(v, lo, hi); };
}
inline Result<bool> Bool(const json::value& v) {
  return DecodeBool(v);
}
inline Result<Timestamp> Time(const json::value& v) {
  return DecodeTime(v);
}
template <typename E>
Result<E> Enum(const json::value& v) {
  return DecodeEnum<E>(v);
}
// An image digest, "sha256:" and 64 lowercase hex digits (`IsImageDigest`).
Result<std::string> ImageDigest(const json::value& v);

template <typename R>
struct ResultValue;
template <typename T>
struct ResultValue<Result<T>> {
  using type = T;
};
template <typename F>
using DecodedType =
    typename ResultValue<std::decay_t<std::invoke_result_t<F, const json::value&>>>::type;

// An array of at most `max_size` elements, each decoded by `decode`; errors get `[i]`.
template <typename F>
Result<std::vector<DecodedType<F>>> DecodeArrayOf(const json::value& v, size_t max_size,
                                                  F&& decode) {
  ASSIGN_OR_RETURN(const json::array* a, DecodeArray(v, max_size));
  std::vector<DecodedType<F>> out;
  out.reserve(a->size());
  for (size_t i = 0; i < a->size(); ++i) {
    auto r = decode((*a)[i]);
    if (!r.ok())
      return std::move(r).status().WithFieldPrefix(IndexPath(i));
    out.push_back(std::move(r).value());
  }
  return out;
}

// An object used as a map: at most `max_size` entries, keys checked by `key_rule`, values decoded
// by `decode`; errors get `.key`.
template <typename F>
Result<std::map<std::string, DecodedType<F>>> DecodeMapOf(const json::value& v, size_t max_size,
                                                          const StringRule& key_rule, F&& decode) {
  ASSIGN_OR_RETURN(const json::object* o, DecodeObject(v));
  if (o->size() > max_size) {
    return Status::InvalidArgument("must have at most " + std::to_string(max_size) +
                                   " entries (got " + std::to_string(o->size()) + ")");
  }
  std::map<std::string, DecodedType<F>> out;
  for (const auto& kv : *o) {
    std::string_view key(kv.key().data(), kv.key().size());
    if (Status s = CheckString(key, key_rule); !s.ok())
      return std::move(s).WithFieldPrefix(KeyPath(key));
    auto r = decode(kv.value());
    if (!r.ok())
      return std::move(r).status().WithFieldPrefix(KeyPath(key));
    out.emplace(std::string(key), std::move(r).value());
  }
  return out;
}

// Reads the fields of one JSON object.
class Fields {
 public:
  enum class Unknown { kReject, kIgnore };

  // Fails unless `v` is an object. With `Unknown::kReject`, a field not in `known` is an error:
  // `gpus: unknown field; did you mean 'gpus_per_node'?`. Types that are read by the scheduler
  // from people (job specs, accounts, token requests) reject; types the scheduler writes for
  // programs (jobs, nodes, events, worker messages) ignore, so that an older reader keeps working
  // when a newer writer adds a field, as DESIGN.md section 5 allows.
  static Result<Fields> Open(const json::value& v, std::initializer_list<std::string_view> known,
                             Unknown unknown);

  // The field's value; nullptr when it is absent or JSON null.
  const json::value* Find(std::string_view key) const;

  // A field that must be present and not null.
  template <typename F>
  Result<DecodedType<F>> Required(std::string_view key, F&& decode) const {
    const json::value* v = Find(key);
    if (v == nullptr)
      return Status::InvalidArgument("is required", KeyPath(key));
    auto r = decode(*v);
    if (!r.ok())
      return std::move(r).status().WithFieldPrefix(KeyPath(key));
    return std::move(r).value();
  }

  // A field that may be absent or null.
  template <typename F>
  Result<std::optional<DecodedType<F>>> Optional(std::string_view key, F&& decode) const {
    const json::value* v = Find(key);
    if (v == nullptr)
      return std::optional<DecodedType<F>>();
    auto r = decode(*v);
    if (!r.ok())
      return std::move(r).status().WithFieldPrefix(KeyPath(key));
    return std::optional<DecodedType<F>>(std::move(r).value());
  }

  // A field with a default for absent or null.
  template <typename F>
  Result<DecodedType<F>> OrDefault(std::string_view key, F&& decode,
                                   DecodedType<F> fallback) const {
    const json::value* v = Find(key);
    if (v == nullptr)
      return fallback;
    auto r = decode(*v);
    if (!r.ok())
      return std::move(r).status().WithFieldPrefix(KeyPath(key));
    return std::move(r).value();
  }

 private:
  explicit Fields(const json::object* o) : o_(o) {}
  const json::object* o_;
};

// `DecodeJobSpec` with a choice about unknown fields: the worker ignores them in `launch` messages
// so that a newer scheduler can add spec fields without breaking older workers.
Result<JobSpec> DecodeJobSpecFields(const json::value& v, Fields::Unknown unknown);

// `[[0, 1], [2, 3]]`: NVLink-connected GPU index pairs of a node.
Result<std::vector<std::pair<int32_t, int32_t>>> DecodeNvlinkPairs(const json::value& v);
// `{"address": "10.0.0.3", "port": 29512}`, in jobs and launches.
Result<Rendezvous> DecodeRendezvous(const json::value& v);
json::value RendezvousValue(const std::optional<Rendezvous>& r);
json::value NvlinkPairsValue(const std::vector<std::pair<int32_t, int32_t>>& pairs);

// Encoding helpers.
json::value TimeValue(Timestamp t);
json::value OptionalTime(const std::optional<Timestamp>& t);
// A whole number as a JSON integer, else a double, so that `50000` round-trips as `50000`.
json::value NumberValue(double d);
json::value StringMap(const std::map<std::string, std::string>& m);
json::value StringArray(const std::vector<std::string>& v);

}  // namespace gsched::api::internal
