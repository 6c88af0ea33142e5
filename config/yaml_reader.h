// The one place where gsched reads YAML: a typed, path-tracking reader over `YAML::Node` that
// collects every error instead of stopping at the first.
//
// A loader parses a document with `ParseYamlDocument` (which turns yaml-cpp exceptions into a
// `Status` with file, line and column, rejects oversized input and reports duplicate mapping keys),
// then walks it with `YamlMap` / `YamlValue`. Every read records its errors in a shared
// `Diagnostics` as `path: message` lines (`scheduling.backfill.depth: must be >= 0`) and returns
// `std::nullopt` for a bad or absent value, so the loader can fall back to the default and go on.
// At the end, `Diagnostics::ToStatus()` joins all errors, one per line; `field()` holds the first
// path.
//
// Invariants:
//   - A `YamlMap` knows which keys its owner asked for. When it is finished (explicitly with
//     `Finish()` or in its destructor) every other key of the mapping is reported as
//     `path.key: unknown key; did you mean '...'?`. Loaders must therefore ask for every key they
//     accept, on every path, even when the value is not needed.
//   - Absent and `null` (`key:` or `key: ~`) values are the same: "not set".
//   - Numbers and booleans must be plain (unquoted) scalars: `depth: "10"` is an error, so that
//     what looks like a number in the file is one. Durations, sizes and strings may be quoted.
//   - The readers touch yaml-cpp only through `const` accessors that do not throw; `DecodeYaml`
//     still catches whatever might escape, so a loader never throws.
//
// Threading: a `Diagnostics` and the readers that share it belong to one thread.
#pragma once

#include <yaml-cpp/yaml.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scheduler/api/enums.h"
#include "scheduler/common/clock.h"
#include "scheduler/common/status.h"

namespace gsched::config {

// Config files larger than this are rejected before parsing.
inline constexpr size_t kMaxConfigFileBytes = size_t{64} << 20;
// Longest free-form string value (paths, URLs, label values) unless a field says otherwise.
inline constexpr size_t kMaxStringLength = 4096;
// Most errors kept in one `Diagnostics`; the rest are counted.
inline constexpr size_t kMaxReportedErrors = 200;

struct FieldError {
  std::string path;
  std::string message;
  // 1-based line in the source; 0 when the error is not about one place (cross-field rules).
  int line = 0;
};

// The error list of one load. Not copyable: readers keep a pointer to it.
class Diagnostics {
 public:
  Diagnostics() = default;
  Diagnostics(const Diagnostics&) = delete;
  Diagnostics& operator=(const Diagnostics&) = delete;

  void Add(std::string path, std::string message, int line = 0);
  bool ok() const { return total_ == 0; }
  // True once `kMaxReportedErrors` are kept: further errors are only counted.
  bool full() const { return errors_.size() >= kMaxReportedErrors; }
  size_t count() const { return total_; }
  const std::vector<FieldError>& errors() const { return errors_; }

  // OK when there are no errors; otherwise `InvalidArgument` whose message has one `path: message`
  // line per error, in document order (errors without a line last, in the order found), and whose
  // `field()` is the first of them.
  Status ToStatus() const;

 private:
  std::vector<FieldError> errors_;
  size_t total_ = 0;
};

// `parent.key`, or `key` at the top level.
std::string JoinPath(std::string_view parent, std::string_view key);
// `parent[index]`.
std::string IndexPath(std::string_view parent, size_t index);

// The closest of `candidates` to `word` when it is close enough to be a likely typo.
std::optional<std::string> DidYouMean(std::string_view word,
                                      std::span<const std::string> candidates);

// Bytes: a bare integer is bytes; suffixes K/M/G/T (powers of 1024) with optional "i" and "B"
// ("8MiB", "16K", "1G"). At most 1 TiB.
Result<int64_t> ParseSizeBytes(std::string_view text);

// Names of accounts, GPU types, partitions, sites and blocks: 1..`max_length` characters of
// `[a-z0-9._-]`, starting with a letter or digit.
bool IsValidName(std::string_view name, size_t max_length = 64);

class YamlMap;

// One value of the document with its path. Cheap to copy (yaml-cpp nodes are handles).
class YamlValue {
 public:
  YamlValue(Diagnostics* diagnostics, YAML::Node node, std::string path)
      : diagnostics_(diagnostics), node_(std::move(node)), path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  const YAML::Node& node() const { return node_; }
  // Set: defined and not null.
  bool present() const;
  // 1-based line of the value in the source, 0 when unknown.
  int line() const;

  // Records `path: message`.
  void Error(std::string message) const;

  // Each reader returns the value, or `std::nullopt` when the value is absent (no error) or invalid
  // (error recorded).
  std::optional<int64_t> Int(int64_t min, int64_t max) const;
  std::optional<double> Double(double min, double max, bool min_exclusive = false) const;
  std::optional<bool> Bool() const;
  std::optional<std::string> String(size_t max_length = kMaxStringLength) const;
  // A non-empty string that satisfies `IsValidName`.
  std::optional<std::string> Name(size_t max_length = 64) const;
  std::optional<Duration> Dur(Duration min, Duration max) const;
  std::optional<int64_t> SizeMiB(int64_t min, int64_t max) const;
  std::optional<int64_t> SizeBytes(int64_t min, int64_t max) const;
  std::optional<Timestamp> Time() const;
  // The index of the scalar in `names` (enums whose values are 0..n-1 in that order).
  std::optional<size_t> EnumIndex(std::span<const std::string_view> names) const;
  template <typename E, size_t N>
  std::optional<E> Enum(const std::array<std::string_view, N>& names) const {
    auto index = EnumIndex(std::span<const std::string_view>(names.data(), names.size()));
    if (!index)
      return std::nullopt;
    return static_cast<E>(*index);
  }
  // An enum of the wire contract (`scheduler/api/enums.h`), by its wire names.
  template <typename E>
  std::optional<E> Enum() const {
    return Enum<E>(api::EnumTraits<E>::kNames);
  }

  // A mapping reader. An absent value gives an empty mapping; a non-mapping value records an error
  // and also gives an empty mapping.
  YamlMap Map() const;
  // The items of a sequence (absent: none). A non-sequence or more than `max_items` items records
  // an error.
  std::vector<YamlValue> List(size_t max_items) const;
  // The entries of a mapping whose keys are data (labels, quotas per GPU type), in document order.
  // Keys must be scalars. An absent value gives no entries.
  std::vector<std::pair<std::string, YamlValue>> Entries(size_t max_entries) const;
  // A list of strings, each at most `max_length` characters.
  std::optional<std::vector<std::string>> StringList(size_t max_items,
                                                     size_t max_length = kMaxStringLength) const;
  // Labels: string keys (1..128 chars of `[A-Za-z0-9._/-]`) to string values (<= 256 chars).
  std::optional<std::map<std::string, std::string>> Labels() const;

 private:
  // The scalar text of a plain (unquoted) scalar, or an error naming `what`.
  std::optional<std::string> PlainScalar(std::string_view what) const;
  // The text of any scalar (quoted or not), or an error naming `what`.
  std::optional<std::string> AnyScalar(std::string_view what) const;

  Diagnostics* diagnostics_;
  YAML::Node node_;
  std::string path_;
};

// A mapping of known keys. Not copyable; moving transfers the unknown-key check.
class YamlMap {
 public:
  YamlMap(Diagnostics* diagnostics, YAML::Node node, std::string path);
  YamlMap(const YamlMap&) = delete;
  YamlMap& operator=(const YamlMap&) = delete;
  YamlMap(YamlMap&& other) noexcept;
  YamlMap& operator=(YamlMap&&) = delete;
  ~YamlMap() { Finish(); }

  const std::string& path() const { return path_; }
  Diagnostics* diagnostics() const { return diagnostics_; }
  // The value of `key` (possibly absent); marks `key` as known.
  YamlValue Get(std::string_view key);
  // Like `Get`, and records `key: is required` when the value is absent.
  YamlValue Required(std::string_view key);
  // Marks `key` as known and tells whether it is set.
  bool Has(std::string_view key);
  // Records `path: message` for the mapping itself.
  void Error(std::string message) const;

  // Shorthands that apply a default when the value is absent or invalid.
  int64_t Int(std::string_view key, int64_t fallback, int64_t min, int64_t max) {
    return Get(key).Int(min, max).value_or(fallback);
  }
  bool Bool(std::string_view key, bool fallback) { return Get(key).Bool().value_or(fallback); }
  std::string String(std::string_view key, std::string fallback,
                     size_t max_length = kMaxStringLength) {
    return Get(key).String(max_length).value_or(std::move(fallback));
  }
  Duration Dur(std::string_view key, Duration fallback, Duration min, Duration max) {
    return Get(key).Dur(min, max).value_or(fallback);
  }

  // Reports every key that was not asked for. Runs once; the destructor calls it too.
  void Finish();

 private:
  YAML::Node Lookup(std::string_view key) const;

  Diagnostics* diagnostics_;
  YAML::Node node_;
  std::string path_;
  std::vector<std::string> known_;
  bool finished_ = false;
};

// A parsed document. `root` is a mapping, or null for an empty document.
struct YamlDocument {
  YAML::Node root;
};

// Parses `text` (named `source_name` in messages). Syntax errors come back as
// `InvalidArgument("SOURCE:LINE:COLUMN: message")`; oversized input, a non-mapping top level and
// alias bombs are errors too. Duplicate mapping keys are recorded in `diagnostics` (the first
// occurrence is the one the readers see) so that they are reported together with the other errors.
Result<YamlDocument> ParseYamlDocument(std::string_view text, std::string_view source_name,
                                       Diagnostics* diagnostics);

// Reads a config file, rejecting files over `kMaxConfigFileBytes`.
Result<std::string> ReadConfigFile(const std::string& path);

// `path` made absolute against `base_dir` when it is relative and `base_dir` is set; empty stays
// empty.
std::string ResolveRelativePath(const std::string& path,
                                const std::optional<std::filesystem::path>& base_dir);

// The directory of a config file, for `ResolveRelativePath`.
std::filesystem::path ConfigDirectory(const std::string& config_path);

// The common frame of every loader: parse `text`, run `decode(YamlMap& root)` (which returns a `T`
// and records errors), report unknown top-level keys, and turn the collected errors into the
// result. A yaml-cpp exception that escapes `decode` becomes an error, never a crash.
template <typename T, typename Decode>
Result<T> DecodeYaml(std::string_view text, std::string_view source_name, Decode&& decode) {
  Diagnostics diagnostics;
  ASSIGN_OR_RETURN(YamlDocument doc, ParseYamlDocument(text, source_name, &diagnostics));
  std::optional<T> value;
  try {
    YamlMap root(&diagnostics, doc.root, "");
    value.emplace(decode(root));
    root.Finish();
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string(source_name) + ": cannot read YAML: " + e.what());
  }
  RETURN_IF_ERROR(diagnostics.ToStatus());
  return std::move(*value);
}

// `DecodeYaml` over a file: `decode(YamlMap& root, const std::filesystem::path& dir)` gets the
// file's directory for relative paths.
template <typename T, typename Decode>
Result<T> DecodeYamlFile(const std::string& path, Decode&& decode) {
  ASSIGN_OR_RETURN(std::string text, ReadConfigFile(path));
  std::filesystem::path dir = ConfigDirectory(path);
  return DecodeYaml<T>(text, path, [&](YamlMap& root) { return decode(root, dir); });
}

}  // namespace gsched::config
