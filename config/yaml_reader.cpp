#include "config/yaml_reader.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "scheduler/common/quantity.h"
#include "scheduler/common/text.h"

namespace gsched::config {
namespace {

// Alias expansion can make a small document enormous ("billion laughs"). The duplicate-key walk
// visits every node once per path to it, and gives up after one visit per byte of the document
// (a node takes at least two bytes, so only aliases can get there), but allows at least
// `kMinNodeVisits` for small files that reuse anchors, and at most `kMaxNodeVisits`. Readers only
// ever see documents that passed the walk, so their work is bounded too.
constexpr size_t kMinNodeVisits = size_t{1} << 20;
constexpr size_t kMaxNodeVisits = size_t{16} << 20;
// Deeper than any config needs; also bounds the walk's recursion.
constexpr int kMaxDepth = 64;

std::string Quote(std::string_view s) {
  constexpr size_t kMaxShown = 64;
  std::string out = "'";
  if (s.size() > kMaxShown) {
    out.append(s.substr(0, kMaxShown));
    out += "...";
  } else {
    out.append(s);
  }
  out += "'";
  return out;
}

std::string_view KindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return "nothing";
  }
  return "something else";
}

// Decimal integer with an optional sign and `_` between digits (`10_000_000`).
std::optional<int64_t> ParseInteger(std::string_view text) {
  std::string digits;
  digits.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '_' && i > 0 && i + 1 < text.size() &&
        std::isdigit(static_cast<unsigned char>(text[i - 1])) &&
        std::isdigit(static_cast<unsigned char>(text[i + 1]))) {
      continue;
    }
    digits.push_back(c);
  }
  if (digits.empty())
    return std::nullopt;
  const char* begin = digits.data();
  const char* end = digits.data() + digits.size();
  if (*begin == '+')
    ++begin;
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr != end || begin == end)
    return std::nullopt;
  return value;
}

std::optional<double> ParseDouble(std::string_view text) {
  if (text.empty())
    return std::nullopt;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  if (*begin == '+')
    ++begin;
  double value = 0;
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr != end || !std::isfinite(value))
    return std::nullopt;
  return value;
}

std::string FormatNumber(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

int LineOf(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull())
    return 0;
  YAML::Mark mark = node.Mark();
  return mark.is_null() ? 0 : mark.line + 1;
}

// Reports duplicate keys and non-scalar keys, and bounds alias expansion and nesting.
class DocumentWalker {
 public:
  DocumentWalker(Diagnostics* diagnostics, size_t max_visits)
      : diagnostics_(diagnostics), max_visits_(max_visits) {}

  Status Walk(const YAML::Node& node, const std::string& path, int depth) {
    if (++visits_ > max_visits_) {
      return Status::InvalidArgument("document expands to more than " +
                                     std::to_string(max_visits_) +
                                     " nodes (check anchors and aliases)");
    }
    if (depth > kMaxDepth)
      return Status::InvalidArgument("nesting deeper than " + std::to_string(kMaxDepth) +
                                     " levels");
    if (node.IsSequence()) {
      size_t i = 0;
      for (const YAML::Node& item : node) {
        RETURN_IF_ERROR(Walk(item, IndexPath(path, i++), depth + 1));
      }
    } else if (node.IsMap()) {
      std::unordered_map<std::string, int> first_line;
      for (auto it = node.begin(); it != node.end(); ++it) {
        YAML::Node key = it->first;  // A copy: `it->` yields a temporary.
        if (!key.IsScalar()) {
          diagnostics_->Add(
              path.empty() ? std::string("<root>") : path,
              "mapping keys must be plain strings (line " + std::to_string(LineOf(key)) + ")",
              LineOf(key));
          continue;
        }
        std::string child = JoinPath(path, key.Scalar());
        auto [pos, inserted] = first_line.emplace(key.Scalar(), LineOf(key));
        if (!inserted) {
          diagnostics_->Add(child,
                            "duplicate key (line " + std::to_string(LineOf(key)) +
                                "; first at line " + std::to_string(pos->second) + ")",
                            LineOf(key));
          continue;
        }
        RETURN_IF_ERROR(Walk(it->second, child, depth + 1));
      }
    }
    return Status::Ok();
  }

 private:
  Diagnostics* diagnostics_;
  size_t max_visits_;
  size_t visits_ = 0;
};

}  // namespace

void Diagnostics::Add(std::string path, std::string message, int line) {
  ++total_;
  if (errors_.size() < kMaxReportedErrors)
    errors_.push_back({std::move(path), std::move(message), line});
}

Status Diagnostics::ToStatus() const {
  if (ok())
    return Status::Ok();
  std::vector<FieldError> sorted = errors_;
  std::stable_sort(sorted.begin(), sorted.end(), [](const FieldError& a, const FieldError& b) {
    int la = a.line == 0 ? std::numeric_limits<int>::max() : a.line;
    int lb = b.line == 0 ? std::numeric_limits<int>::max() : b.line;
    return la < lb;
  });
  std::string message;
  for (const FieldError& e : sorted) {
    if (!message.empty())
      message += '\n';
    message += e.path.empty() ? e.message : e.path + ": " + e.message;
  }
  if (total_ > errors_.size())
    message += "\n... and " + std::to_string(total_ - errors_.size()) + " more errors";
  return Status::InvalidArgument(std::move(message), sorted.front().path);
}

std::string JoinPath(std::string_view parent, std::string_view key) {
  if (parent.empty())
    return std::string(key);
  std::string out;
  out.reserve(parent.size() + 1 + key.size());
  out.append(parent);
  out += '.';
  out.append(key);
  return out;
}

std::string IndexPath(std::string_view parent, size_t index) {
  std::string out(parent);
  out += '[';
  out += std::to_string(index);
  out += ']';
  return out;
}

std::optional<std::string> DidYouMean(std::string_view word,
                                      std::span<const std::string> candidates) {
  // Keys are short; anything long is not a typo of one and would only cost time.
  if (word.size() > 256)
    return std::nullopt;
  std::optional<std::string> best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (const std::string& c : candidates) {
    // A third of the longer word, at least 1 and at most 3 edits, counts as a typo:
    // "intervall" -> "interval", "blok" -> "blocks", but not "zebra" -> "size".
    size_t allowed = std::clamp<size_t>(std::max(word.size(), c.size()) / 3, 1, 3);
    size_t d = EditDistance(word, c);
    if (d <= allowed && d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

Result<int64_t> ParseSizeBytes(std::string_view text) {
  auto bad = [&] {
    return Status::InvalidArgument("invalid size " + Quote(text) +
                                   ": use bytes or a unit (64K, 8MiB, 1G)");
  };
  if (text.empty() || text.size() > 32)
    return bad();
  size_t digits_end = 0;
  while (digits_end < text.size() && text[digits_end] >= '0' && text[digits_end] <= '9')
    ++digits_end;
  if (digits_end == 0 || digits_end > 15)
    return bad();
  int64_t n = 0;
  std::from_chars(text.data(), text.data() + digits_end, n);
  std::string unit(text.substr(digits_end));
  for (char& c : unit)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (!unit.empty() && unit.back() == 'B')
    unit.pop_back();
  if (unit.size() == 2 && unit.back() == 'I')
    unit.pop_back();
  int shift = 0;
  if (unit.empty()) {
    shift = 0;
  } else if (unit == "K") {
    shift = 10;
  } else if (unit == "M") {
    shift = 20;
  } else if (unit == "G") {
    shift = 30;
  } else if (unit == "T") {
    shift = 40;
  } else {
    return bad();
  }
  constexpr int64_t kMaxBytes = int64_t{1} << 40;
  if (n > (kMaxBytes >> shift))
    return bad();
  return n << shift;
}

bool IsValidName(std::string_view name, size_t max_length) {
  if (name.empty() || name.size() > max_length)
    return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()))
    return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '-'; });
}

// --- YamlValue ---------------------------------------------------------------------------------

bool YamlValue::present() const {
  return node_.IsDefined() && !node_.IsNull();
}

int YamlValue::line() const {
  return LineOf(node_);
}

void YamlValue::Error(std::string message) const {
  diagnostics_->Add(path_, std::move(message), line());
}

std::optional<std::string> YamlValue::AnyScalar(std::string_view what) const {
  if (!present())
    return std::nullopt;
  if (!node_.IsScalar()) {
    Error("must be " + std::string(what) + " (got " + std::string(KindName(node_)) + ")");
    return std::nullopt;
  }
  return node_.Scalar();
}

std::optional<std::string> YamlValue::PlainScalar(std::string_view what) const {
  auto text = AnyScalar(what);
  if (!text)
    return std::nullopt;
  // yaml-cpp tags quoted scalars with "!": `"10"` is a string, not a number.
  if (node_.Tag() == "!") {
    Error("must be " + std::string(what) + " (got the quoted string " + Quote(*text) + ")");
    return std::nullopt;
  }
  return text;
}

std::optional<int64_t> YamlValue::Int(int64_t min, int64_t max) const {
  auto text = PlainScalar("an integer");
  if (!text)
    return std::nullopt;
  auto value = ParseInteger(*text);
  if (!value) {
    Error("must be an integer (got " + Quote(*text) + ")");
    return std::nullopt;
  }
  if (*value < min) {
    Error("must be >= " + std::to_string(min) + " (got " + std::to_string(*value) + ")");
    return std::nullopt;
  }
  if (*value > max) {
    Error("must be <= " + std::to_string(max) + " (got " + std::to_string(*value) + ")");
    return std::nullopt;
  }
  return value;
}

std::optional<double> YamlValue::Double(double min, double max, bool min_exclusive) const {
  auto text = PlainScalar("a number");
  if (!text)
    return std::nullopt;
  auto value = ParseDouble(*text);
  if (!value) {
    Error("must be a number (got " + Quote(*text) + ")");
    return std::nullopt;
  }
  if (min_exclusive ? *value <= min : *value < min) {
    Error(std::string(min_exclusive ? "must be > " : "must be >= ") + FormatNumber(min) + " (got " +
          *text + ")");
    return std::nullopt;
  }
  if (*value > max) {
    Error("must be <= " + FormatNumber(max) + " (got " + *text + ")");
    return std::nullopt;
  }
  return value;
}

std::optional<bool> YamlValue::Bool() const {
  auto text = PlainScalar("a boolean (true or false)");
  if (!text)
    return std::nullopt;
  // YAML 1.1 spellings, which yaml-cpp also accepts.
  static constexpr std::array<std::string_view, 9> kTrue = {"true", "True", "TRUE", "yes", "Yes",
                                                            "YES",  "on",   "On",   "ON"};
  static constexpr std::array<std::string_view, 9> kFalse = {"false", "False", "FALSE", "no", "No",
                                                             "NO",    "off",   "Off",   "OFF"};
  if (std::find(kTrue.begin(), kTrue.end(), *text) != kTrue.end())
    return true;
  if (std::find(kFalse.begin(), kFalse.end(), *text) != kFalse.end())
    return false;
  Error("must be a boolean (true or false), got " + Quote(*text));
  return std::nullopt;
}

std::optional<std::string> YamlValue::String(size_t max_length) const {
  auto text = AnyScalar("a string");
  if (!text)
    return std::nullopt;
  if (text->size() > max_length) {
    Error("must be at most " + std::to_string(max_length) + " characters (got " +
          std::to_string(text->size()) + ")");
    return std::nullopt;
  }
  if (text->find('\0') != std::string::npos) {
    Error("must not contain NUL characters");
    return std::nullopt;
  }
  return text;
}

std::optional<std::string> YamlValue::Name(size_t max_length) const {
  auto text = AnyScalar("a name");
  if (!text)
    return std::nullopt;
  if (!IsValidName(*text, max_length)) {
    Error("invalid name " + Quote(*text) + ": use 1.." + std::to_string(max_length) +
          " characters of [a-z0-9._-], starting with a letter or digit");
    return std::nullopt;
  }
  return text;
}

std::optional<Duration> YamlValue::Dur(Duration min, Duration max) const {
  auto text = AnyScalar("a duration");
  if (!text)
    return std::nullopt;
  Result<Duration> d = ParseDuration(*text);
  if (!d.ok()) {
    Error(d.status().message());
    return std::nullopt;
  }
  if (*d < min) {
    Error("must be >= " + FormatDuration(min) + " (got " + *text + ")");
    return std::nullopt;
  }
  if (*d > max) {
    Error("must be <= " + FormatDuration(max) + " (got " + *text + ")");
    return std::nullopt;
  }
  return *d;
}

std::optional<int64_t> YamlValue::SizeMiB(int64_t min, int64_t max) const {
  auto text = AnyScalar("a size (MiB or 512M, 16G, 2T)");
  if (!text)
    return std::nullopt;
  Result<int64_t> mib = ParseSizeMiB(*text);
  if (!mib.ok()) {
    Error(mib.status().message());
    return std::nullopt;
  }
  if (*mib < min) {
    Error("must be >= " + std::to_string(min) + " MiB (got " + *text + ")");
    return std::nullopt;
  }
  if (*mib > max) {
    Error("must be <= " + std::to_string(max) + " MiB (got " + *text + ")");
    return std::nullopt;
  }
  return *mib;
}

std::optional<int64_t> YamlValue::SizeBytes(int64_t min, int64_t max) const {
  auto text = AnyScalar("a size (bytes or 64K, 8MiB, 1G)");
  if (!text)
    return std::nullopt;
  Result<int64_t> bytes = ParseSizeBytes(*text);
  if (!bytes.ok()) {
    Error(bytes.status().message());
    return std::nullopt;
  }
  if (*bytes < min) {
    Error("must be >= " + std::to_string(min) + " bytes (got " + *text + ")");
    return std::nullopt;
  }
  if (*bytes > max) {
    Error("must be <= " + std::to_string(max) + " bytes (got " + *text + ")");
    return std::nullopt;
  }
  return *bytes;
}

std::optional<Timestamp> YamlValue::Time() const {
  auto text = AnyScalar("a date or time");
  if (!text)
    return std::nullopt;
  Result<Timestamp> t = ParseTimestamp(*text);
  if (!t.ok()) {
    Error(t.status().message());
    return std::nullopt;
  }
  return *t;
}

std::optional<size_t> YamlValue::EnumIndex(std::span<const std::string_view> names) const {
  std::string one_of;
  for (std::string_view n : names) {
    if (!one_of.empty())
      one_of += ", ";
    one_of += n;
  }
  auto text = AnyScalar("one of: " + one_of);
  if (!text)
    return std::nullopt;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == *text)
      return i;
  }
  std::vector<std::string> candidates(names.begin(), names.end());
  std::string message = "unknown value " + Quote(*text) + "; ";
  if (auto guess = DidYouMean(*text, candidates))
    message += "did you mean '" + *guess + "'? ";
  message += "(one of: " + one_of + ")";
  Error(std::move(message));
  return std::nullopt;
}

YamlMap YamlValue::Map() const {
  if (present() && !node_.IsMap()) {
    Error("must be a mapping (got " + std::string(KindName(node_)) + ")");
    return YamlMap(diagnostics_, YAML::Node(), path_);
  }
  return YamlMap(diagnostics_, node_, path_);
}

std::vector<YamlValue> YamlValue::List(size_t max_items) const {
  std::vector<YamlValue> items;
  if (!present())
    return items;
  if (!node_.IsSequence()) {
    Error("must be a list (got " + std::string(KindName(node_)) + ")");
    return items;
  }
  if (node_.size() > max_items) {
    Error("must have at most " + std::to_string(max_items) + " items (got " +
          std::to_string(node_.size()) + ")");
    return items;
  }
  items.reserve(node_.size());
  size_t i = 0;
  for (const YAML::Node& item : node_)
    items.emplace_back(diagnostics_, item, IndexPath(path_, i++));
  return items;
}

std::vector<std::pair<std::string, YamlValue>> YamlValue::Entries(size_t max_entries) const {
  std::vector<std::pair<std::string, YamlValue>> entries;
  if (!present())
    return entries;
  if (!node_.IsMap()) {
    Error("must be a mapping (got " + std::string(KindName(node_)) + ")");
    return entries;
  }
  if (node_.size() > max_entries) {
    Error("must have at most " + std::to_string(max_entries) + " entries (got " +
          std::to_string(node_.size()) + ")");
    return entries;
  }
  std::vector<std::string> seen;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    if (!it->first.IsScalar())
      continue;  // Reported by the document walk.
    std::string key = it->first.Scalar();
    // Duplicates were reported by the document walk; readers see the first occurrence.
    if (std::find(seen.begin(), seen.end(), key) != seen.end())
      continue;
    seen.push_back(key);
    entries.emplace_back(key, YamlValue(diagnostics_, it->second, JoinPath(path_, key)));
  }
  return entries;
}

std::optional<std::vector<std::string>> YamlValue::StringList(size_t max_items,
                                                              size_t max_length) const {
  if (!present())
    return std::nullopt;
  if (!node_.IsSequence()) {
    Error("must be a list of strings (got " + std::string(KindName(node_)) + ")");
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  for (const YamlValue& item : List(max_items)) {
    auto s = item.String(max_length);
    if (s) {
      out.push_back(std::move(*s));
    } else {
      if (!item.present())
        item.Error("must be a string (got nothing)");
      ok = false;
    }
  }
  if (!ok)
    return std::nullopt;
  return out;
}

std::optional<std::map<std::string, std::string>> YamlValue::Labels() const {
  if (!present())
    return std::nullopt;
  constexpr size_t kMaxLabels = 256;
  if (!node_.IsMap()) {
    Error("must be a mapping of label names to values (got " + std::string(KindName(node_)) + ")");
    return std::nullopt;
  }
  std::map<std::string, std::string> labels;
  bool ok = true;
  for (auto& [key, value] : Entries(kMaxLabels)) {
    bool key_ok =
        !key.empty() && key.size() <= 128 && std::all_of(key.begin(), key.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '/' ||
                 c == '-';
        });
    if (!key_ok) {
      value.Error("invalid label name: use 1..128 characters of [A-Za-z0-9._/-]");
      ok = false;
      continue;
    }
    auto v = value.String(256);
    if (!v) {
      if (!value.present())
        labels.emplace(key, "");
      else
        ok = false;
      continue;
    }
    labels.emplace(key, std::move(*v));
  }
  if (!ok)
    return std::nullopt;
  return labels;
}

// --- YamlMap -----------------------------------------------------------------------------------

YamlMap::YamlMap(Diagnostics* diagnostics, YAML::Node node, std::string path)
    : diagnostics_(diagnostics), node_(std::move(node)), path_(std::move(path)) {
  if (node_.IsDefined() && !node_.IsNull() && !node_.IsMap()) {
    Error("must be a mapping (got " + std::string(KindName(node_)) + ")");
    node_ = YAML::Node();
  }
}

YamlMap::YamlMap(YamlMap&& other) noexcept
    : diagnostics_(other.diagnostics_),
      node_(std::move(other.node_)),
      path_(std::move(other.path_)),
      known_(std::move(other.known_)),
      finished_(other.finished_) {
  other.finished_ = true;
}

void YamlMap::Error(std::string message) const {
  diagnostics_->Add(path_, std::move(message), LineOf(node_));
}

YAML::Node YamlMap::Lookup(std::string_view key) const {
  if (node_.IsMap()) {
    for (auto it = node_.begin(); it != node_.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == key)
        return it->second;
    }
  }
  return YAML::Node();
}

YamlValue YamlMap::Get(std::string_view key) {
  if (std::find(known_.begin(), known_.end(), key) == known_.end())
    known_.emplace_back(key);
  return YamlValue(diagnostics_, Lookup(key), JoinPath(path_, key));
}

YamlValue YamlMap::Required(std::string_view key) {
  YamlValue value = Get(key);
  if (!value.present())
    value.Error("is required");
  return value;
}

bool YamlMap::Has(std::string_view key) {
  return Get(key).present();
}

void YamlMap::Finish() {
  if (finished_)
    return;
  finished_ = true;
  if (!node_.IsMap())
    return;
  std::unordered_set<std::string> reported;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    if (!it->first.IsScalar())
      continue;
    std::string key = it->first.Scalar();
    if (std::find(known_.begin(), known_.end(), key) != known_.end() ||
        !reported.insert(key).second) {
      continue;
    }
    std::string message = "unknown key";
    if (diagnostics_->full()) {
      // Only counted from here on; spare a huge mapping of junk the suggestions.
    } else if (auto guess = DidYouMean(key, known_)) {
      message += "; did you mean '" + *guess + "'?";
    } else if (!known_.empty()) {
      message += "; known keys: ";
      for (size_t i = 0; i < known_.size(); ++i)
        message += (i ? ", " : "") + known_[i];
    }
    diagnostics_->Add(JoinPath(path_, key), std::move(message), LineOf(it->first));
  }
}

// --- Documents and files -----------------------------------------------------------------------

Result<YamlDocument> ParseYamlDocument(std::string_view text, std::string_view source_name,
                                       Diagnostics* diagnostics) {
  std::string source(source_name.empty() ? "<config>" : source_name);
  if (text.size() > kMaxConfigFileBytes) {
    return Status::InvalidArgument(source + ": " + std::to_string(text.size()) +
                                   " bytes is over the limit of 64 MiB");
  }
  YamlDocument doc;
  try {
    // `LoadAll`, so that a second document (after `---`) is an error rather than silently ignored.
    std::vector<YAML::Node> documents = YAML::LoadAll(std::string(text));
    if (documents.size() > 1) {
      return Status::InvalidArgument(source + ": holds " + std::to_string(documents.size()) +
                                     " YAML documents; a config file holds one");
    }
    if (!documents.empty())
      doc.root = documents.front();
  } catch (const YAML::Exception& e) {
    std::string where = source;
    if (!e.mark.is_null()) {
      where += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    }
    return Status::InvalidArgument(where + ": YAML syntax error: " + e.msg);
  } catch (const std::exception& e) {
    return Status::InvalidArgument(source + ": cannot parse YAML: " + e.what());
  }
  if (doc.root.IsDefined() && !doc.root.IsNull() && !doc.root.IsMap()) {
    return Status::InvalidArgument(source + ": the top level must be a mapping of keys (got " +
                                   std::string(KindName(doc.root)) + ")");
  }
  try {
    DocumentWalker walker(diagnostics, std::clamp(text.size(), kMinNodeVisits, kMaxNodeVisits));
    Status walked = walker.Walk(doc.root, "", 0);
    if (!walked.ok())
      return Status::InvalidArgument(source + ": " + walked.message());
  } catch (const std::exception& e) {
    return Status::InvalidArgument(source + ": cannot read YAML: " + e.what());
  }
  return doc;
}

Result<std::string> ReadConfigFile(const std::string& path) {
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status))
    return Status::NotFound("cannot read config " + path + ": no such file");
  if (!std::filesystem::is_regular_file(status))
    return Status::InvalidArgument("cannot read config " + path + ": not a regular file");
  auto size = std::filesystem::file_size(path, ec);
  if (ec)
    return Status::InvalidArgument("cannot read config " + path + ": " + ec.message());
  if (size > kMaxConfigFileBytes) {
    return Status::InvalidArgument(path + ": " + std::to_string(size) +
                                   " bytes is over the limit of 64 MiB");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Status::InvalidArgument("cannot open config " + path);
  std::string text;
  text.resize(size);
  in.read(text.data(), static_cast<std::streamsize>(size));
  if (in.gcount() != static_cast<std::streamsize>(size))
    return Status::InvalidArgument("cannot read config " + path + ": short read");
  return text;
}

std::string ResolveRelativePath(const std::string& path,
                                const std::optional<std::filesystem::path>& base_dir) {
  if (path.empty() || !base_dir)
    return path;
  std::filesystem::path p(path);
  if (p.is_absolute())
    return path;
  return (*base_dir / p).lexically_normal().string();
}

std::filesystem::path ConfigDirectory(const std::string& config_path) {
  std::filesystem::path p(config_path);
  std::filesystem::path dir = p.parent_path();
  if (dir.empty())
    dir = ".";
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(dir, ec);
  return ec ? dir : absolute.lexically_normal();
}

}  // namespace gsched::config
