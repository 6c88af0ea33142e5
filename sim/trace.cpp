#include "sim/trace.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <set>

namespace gsched::sim {

namespace {

// Largest time accepted, in seconds (about 31,700 years): keeps millisecond arithmetic far from
// overflow.
constexpr double kMaxSeconds = 1e12;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Names of GPU types, accounts and users: 1..64 characters of [a-z0-9._-].
bool IsName(std::string_view s) {
  if (s.empty() || s.size() > 64)
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

// Splits one CSV line. Fields may be double-quoted (`"a,b"`, with `""` for a quote); quoted
// fields do not span lines.
Result<std::vector<std::string>> SplitCsv(std::string_view line, std::string_view source,
                                          int64_t line_no) {
  std::vector<std::string> fields;
  std::string field;
  size_t i = 0;
  for (;;) {
    field.clear();
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
      ++i;
    if (i < line.size() && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        field += line[i++];
      }
      if (!closed) {
        return TraceError(source, line_no, static_cast<int32_t>(fields.size() + 1), "",
                          "unterminated quoted field");
      }
      while (i < line.size() && line[i] != ',')
        ++i;
    } else {
      const size_t end = std::min(line.find(',', i), line.size());
      field = std::string(Trim(line.substr(i, end - i)));
      i = end;
    }
    fields.push_back(field);
    if (i >= line.size())
      break;
    ++i;  // The comma.
  }
  return fields;
}

// A CSV file with a header line; rows come out with their line numbers.
class CsvTable {
 public:
  CsvTable(std::istream& in, std::string_view source) : in_(in), source_(source) {}

  Status ReadHeader() {
    std::string line;
    if (!std::getline(in_, line))
      return TraceError(source_, 1, 0, "", "empty file: a header line is required");
    line_no_ = 1;
    if (line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0)
      line.erase(0, 3);  // A UTF-8 byte order mark.
    ASSIGN_OR_RETURN(header_, SplitCsv(line, source_, 1));
    for (size_t c = 0; c < header_.size(); ++c) {
      header_[c] = Lower(header_[c]);
      if (header_[c].empty())
        return TraceError(source_, 1, static_cast<int32_t>(c + 1), "", "empty column name");
      if (column_.contains(header_[c])) {
        return TraceError(source_, 1, static_cast<int32_t>(c + 1), header_[c],
                          "column named twice");
      }
      column_[header_[c]] = static_cast<int32_t>(c + 1);
    }
    return Status::Ok();
  }

  // 1-based column of `name`, 0 when absent.
  int32_t Column(const std::string& name) const {
    auto it = column_.find(name);
    return it == column_.end() ? 0 : it->second;
  }

  Status Require(std::initializer_list<const char*> names) const {
    for (const char* n : names) {
      if (Column(n) == 0) {
        return TraceError(source_, 1, static_cast<int32_t>(header_.size() + 1), n,
                          "missing column (the header has: " + Joined() + ")");
      }
    }
    return Status::Ok();
  }

  Status RejectUnknown(const std::set<std::string>& known) const {
    for (size_t c = 0; c < header_.size(); ++c) {
      if (!known.contains(header_[c])) {
        std::string all;
        for (const std::string& k : known)
          all += (all.empty() ? "" : ", ") + k;
        return TraceError(source_, 1, static_cast<int32_t>(c + 1), header_[c],
                          "unknown column (known: " + all + ")");
      }
    }
    return Status::Ok();
  }

  // Next non-blank row; false at the end.
  Result<bool> Next() {
    std::string line;
    while (std::getline(in_, line)) {
      ++line_no_;
      if (Trim(line).empty())
        continue;
      ASSIGN_OR_RETURN(fields_, SplitCsv(line, source_, line_no_));
      if (fields_.size() != header_.size()) {
        return TraceError(source_, line_no_,
                          static_cast<int32_t>(std::min(fields_.size(), header_.size()) + 1), "",
                          "expected " + std::to_string(header_.size()) + " columns, got " +
                              std::to_string(fields_.size()));
      }
      return true;
    }
    return false;
  }

  int64_t line() const { return line_no_; }
  std::string_view source() const { return source_; }

  // The field of the current row in column `col` (1-based; "" when `col` is 0).
  std::string_view Text(int32_t col) const {
    return col == 0 ? std::string_view() : std::string_view(fields_[col - 1]);
  }

  Status Error(int32_t col, std::string_view message) const {
    return TraceError(source_, line_no_, col, col == 0 ? "" : header_[col - 1], message);
  }

  Result<int64_t> Int(int32_t col, int64_t min, int64_t max) const {
    const std::string_view s = Text(col);
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size())
      return Error(col, "not an integer: \"" + std::string(s) + "\"");
    if (v < min || v > max) {
      return Error(col, "must be in " + std::to_string(min) + ".." + std::to_string(max) +
                            ", got " + std::string(s));
    }
    return v;
  }

  // Seconds (decimals allowed) as milliseconds, >= 0.
  Result<int64_t> SecondsMs(int32_t col) const {
    const std::string_view s = Text(col);
    double v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v))
      return Error(col, "not a number of seconds: \"" + std::string(s) + "\"");
    if (v < 0)
      return Error(col, "must be >= 0, got " + std::string(s));
    if (v > kMaxSeconds)
      return Error(col, "too large: " + std::string(s));
    return static_cast<int64_t>(std::llround(v * 1000.0));
  }

  Result<std::vector<std::string>> GpuTypes(int32_t col) const {
    std::vector<std::string> out;
    std::string_view s = Text(col);
    while (!s.empty()) {
      const size_t bar = std::min(s.find('|'), s.size());
      const std::string t = Lower(Trim(s.substr(0, bar)));
      if (!t.empty()) {
        if (!IsName(t))
          return Error(col, "not a GPU type name: \"" + t + "\"");
        out.push_back(t);
      }
      s.remove_prefix(std::min(bar + 1, s.size()));
    }
    return out;
  }

 private:
  std::string Joined() const {
    std::string out;
    for (const std::string& h : header_)
      out += (out.empty() ? "" : ", ") + h;
    return out;
  }

  std::istream& in_;
  std::string source_;
  int64_t line_no_ = 0;
  std::vector<std::string> header_;
  std::map<std::string, int32_t> column_;
  std::vector<std::string> fields_;
};

Result<Trace> ReadOpenb(CsvTable& t, Trace trace) {
  RETURN_IF_ERROR(t.Require({"cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec", "qos",
                             "creation_time", "deletion_time", "scheduled_time"}));
  const int32_t cpu = t.Column("cpu_milli"), mem = t.Column("memory_mib"),
                gpus = t.Column("num_gpu"), milli = t.Column("gpu_milli"),
                spec = t.Column("gpu_spec"), qos = t.Column("qos"),
                created = t.Column("creation_time"), deleted = t.Column("deletion_time"),
                scheduled = t.Column("scheduled_time");
  trace.gpu_type_column = spec;
  for (;;) {
    ASSIGN_OR_RETURN(bool more, t.Next());
    if (!more)
      break;
    TraceJob j;
    j.line = t.line();
    ASSIGN_OR_RETURN(const int64_t n, t.Int(gpus, 0, 64));
    ASSIGN_OR_RETURN(const int64_t m, t.Int(milli, 0, 1000));
    (void)m;  // A GPU-sharing pod takes a whole GPU.
    ASSIGN_OR_RETURN(j.submit_ms, t.SecondsMs(created));
    ASSIGN_OR_RETURN(const int64_t cpu_milli, t.Int(cpu, 0, int64_t{1} << 40));
    ASSIGN_OR_RETURN(j.memory_mib_per_node, t.Int(mem, 0, int64_t{1} << 40));
    ASSIGN_OR_RETURN(j.gpu_types, t.GpuTypes(spec));
    if (n == 0) {
      ++trace.skipped["no GPU (num_gpu 0)"];
      continue;
    }
    if (t.Text(scheduled).empty()) {
      ++trace.skipped["never scheduled in the trace (no scheduled_time)"];
      continue;
    }
    ASSIGN_OR_RETURN(const int64_t start_ms, t.SecondsMs(scheduled));
    ASSIGN_OR_RETURN(const int64_t end_ms, t.SecondsMs(deleted));
    if (end_ms < start_ms)
      return t.Error(deleted, "before scheduled_time");
    j.duration_ms = end_ms - start_ms;
    j.gpus_per_node = static_cast<int32_t>(n);
    j.cpus_per_node = static_cast<int32_t>(std::min<int64_t>((cpu_milli + 999) / 1000, 1 << 20));
    j.priority_class =
        t.Text(qos) == "BE" ? api::PriorityClass::kPreemptible : api::PriorityClass::kNormal;
    trace.jobs.push_back(std::move(j));
  }
  return trace;
}

Result<Trace> ReadTiresias(CsvTable& t, Trace trace) {
  RETURN_IF_ERROR(t.Require({"num_gpu", "submit_time", "duration"}));
  const int32_t gpus = t.Column("num_gpu"), submit = t.Column("submit_time"),
                duration = t.Column("duration");
  for (;;) {
    ASSIGN_OR_RETURN(bool more, t.Next());
    if (!more)
      break;
    TraceJob j;
    j.line = t.line();
    ASSIGN_OR_RETURN(const int64_t n, t.Int(gpus, 1, 65536));
    if (n > 8 && n % 8 != 0)
      return t.Error(
          gpus, "more than 8 GPUs must be a multiple of 8 (whole nodes), got " + std::to_string(n));
    j.nodes = n > 8 ? static_cast<int32_t>(n / 8) : 1;
    j.gpus_per_node = n > 8 ? 8 : static_cast<int32_t>(n);
    ASSIGN_OR_RETURN(j.submit_ms, t.SecondsMs(submit));
    ASSIGN_OR_RETURN(j.duration_ms, t.SecondsMs(duration));
    trace.jobs.push_back(std::move(j));
  }
  return trace;
}

Result<Trace> ReadGenericCsv(CsvTable& t, Trace trace) {
  RETURN_IF_ERROR(t.RejectUnknown({"submit_s", "duration_s", "gpus", "nodes", "gpu_type", "account",
                                   "user", "time_limit_s", "cpus", "memory_mib", "class"}));
  RETURN_IF_ERROR(t.Require({"submit_s", "duration_s", "gpus"}));
  const int32_t submit = t.Column("submit_s"), duration = t.Column("duration_s"),
                gpus = t.Column("gpus"), nodes = t.Column("nodes"), type = t.Column("gpu_type"),
                account = t.Column("account"), user = t.Column("user"),
                limit = t.Column("time_limit_s"), cpus = t.Column("cpus"),
                mem = t.Column("memory_mib"), cls = t.Column("class");
  trace.gpu_type_column = type;
  trace.account_column = account;
  trace.time_limit_column = limit;
  for (;;) {
    ASSIGN_OR_RETURN(bool more, t.Next());
    if (!more)
      break;
    TraceJob j;
    j.line = t.line();
    ASSIGN_OR_RETURN(j.submit_ms, t.SecondsMs(submit));
    ASSIGN_OR_RETURN(j.duration_ms, t.SecondsMs(duration));
    ASSIGN_OR_RETURN(const int64_t g, t.Int(gpus, 1, 64));
    j.gpus_per_node = static_cast<int32_t>(g);
    if (!t.Text(nodes).empty()) {
      ASSIGN_OR_RETURN(const int64_t n, t.Int(nodes, 1, 100000));
      j.nodes = static_cast<int32_t>(n);
    }
    ASSIGN_OR_RETURN(j.gpu_types, t.GpuTypes(type));
    j.account = std::string(t.Text(account));
    if (!j.account.empty() && !IsName(j.account))
      return t.Error(account, "not an account name ([a-z0-9._-], 1..64): \"" + j.account + "\"");
    j.user = std::string(t.Text(user));
    if (!j.user.empty() && !IsName(j.user))
      return t.Error(user, "not a user name ([a-z0-9._-], 1..64): \"" + j.user + "\"");
    if (!t.Text(limit).empty()) {
      ASSIGN_OR_RETURN(const int64_t ms, t.SecondsMs(limit));
      if (ms <= 0)
        return t.Error(limit, "must be > 0");
      j.time_limit_ms = ms;
    }
    if (!t.Text(cpus).empty()) {
      ASSIGN_OR_RETURN(const int64_t c, t.Int(cpus, 0, 65536));
      j.cpus_per_node = static_cast<int32_t>(c);
    }
    if (!t.Text(mem).empty()) {
      ASSIGN_OR_RETURN(j.memory_mib_per_node, t.Int(mem, 0, int64_t{64} << 20));
    }
    if (!t.Text(cls).empty()) {
      auto c = api::ParseEnum<api::PriorityClass>(t.Text(cls));
      if (!c)
        return t.Error(cls, "one of: " + api::EnumNames<api::PriorityClass>());
      j.priority_class = *c;
    }
    trace.jobs.push_back(std::move(j));
  }
  return trace;
}

}  // namespace

Status TraceError(std::string_view source, int64_t line, int32_t column, std::string_view name,
                  std::string_view message) {
  std::string where = std::string(source) + ": line " + std::to_string(line);
  if (column > 0)
    where += ", column " + std::to_string(column);
  if (!name.empty())
    where += " (" + std::string(name) + ")";
  return Status::InvalidArgument(where + ": " + std::string(message));
}

Result<TraceFormat> ParseTraceFormat(std::string_view name) {
  if (name == "openb")
    return TraceFormat::kOpenb;
  if (name == "tiresias")
    return TraceFormat::kTiresias;
  if (name == "csv")
    return TraceFormat::kCsv;
  return Status::InvalidArgument("unknown trace format \"" + std::string(name) +
                                 "\" (one of: openb, tiresias, csv)");
}

Result<Trace> ReadTrace(std::istream& in, TraceFormat format, std::string_view source) {
  CsvTable table(in, source);
  RETURN_IF_ERROR(table.ReadHeader());
  Trace trace;
  trace.source = std::string(source);
  switch (format) {
    case TraceFormat::kOpenb:
      return ReadOpenb(table, std::move(trace));
    case TraceFormat::kTiresias:
      return ReadTiresias(table, std::move(trace));
    case TraceFormat::kCsv:
      return ReadGenericCsv(table, std::move(trace));
  }
  return Status::Internal("unknown trace format");
}

Result<Trace> LoadTrace(const std::string& path, TraceFormat format) {
  std::ifstream in(path);
  if (!in)
    return Status::NotFound("cannot read trace " + path);
  return ReadTrace(in, format, path);
}

Result<config::ClusterConfig> ReadOpenbNodes(std::istream& in, std::string_view source,
                                             const std::vector<config::GpuTypeSpec>& gpu_types) {
  CsvTable t(in, source);
  RETURN_IF_ERROR(t.ReadHeader());
  RETURN_IF_ERROR(t.Require({"sn", "cpu_milli", "memory_mib", "gpu", "model"}));
  const int32_t sn = t.Column("sn"), cpu = t.Column("cpu_milli"), mem = t.Column("memory_mib"),
                gpus = t.Column("gpu"), model = t.Column("model");
  std::vector<config::NodeSpec> nodes;
  std::set<std::string> names;
  for (;;) {
    ASSIGN_OR_RETURN(bool more, t.Next());
    if (!more)
      break;
    config::NodeSpec n;
    n.name = std::string(t.Text(sn));
    if (n.name.empty())
      return t.Error(sn, "empty node name");
    if (!names.insert(n.name).second)
      return t.Error(sn, "node named twice: " + n.name);
    ASSIGN_OR_RETURN(const int64_t milli, t.Int(cpu, 1000, int64_t{65536} * 1000));
    n.cpus = milli / 1000;
    ASSIGN_OR_RETURN(n.memory_mib, t.Int(mem, 1, int64_t{64} << 20));
    ASSIGN_OR_RETURN(n.gpus, t.Int(gpus, 0, 64));
    n.gpu_type = Lower(t.Text(model));
    if (!IsName(n.gpu_type))
      return t.Error(model, "not a GPU model name: \"" + std::string(t.Text(model)) + "\"");
    n.site = "openb";
    n.block = n.gpu_type;
    nodes.push_back(std::move(n));
  }
  if (nodes.empty())
    return TraceError(source, t.line(), 0, "", "no nodes");
  config::ClusterConfig cluster;
  cluster.gpu_types.clear();
  cluster.sites.push_back({"openb", {}});
  // One block per model, in order of first appearance; nodes in file order within a block.
  std::vector<std::string> models;
  for (const config::NodeSpec& n : nodes) {
    if (std::find(models.begin(), models.end(), n.gpu_type) == models.end())
      models.push_back(n.gpu_type);
  }
  for (const std::string& m : models) {
    const config::GpuTypeSpec* known = config::FindGpuType(gpu_types, m);
    cluster.gpu_types.push_back(known ? *known : config::GpuTypeSpec{m, 1.0, std::nullopt});
    config::BlockSpec block{m, 0};
    for (const config::NodeSpec& n : nodes) {
      if (n.gpu_type == m) {
        cluster.nodes.push_back(n);
        ++block.node_count;
      }
    }
    cluster.sites[0].blocks.push_back(block);
  }
  return cluster;
}

Result<config::ClusterConfig> LoadOpenbNodes(const std::string& path,
                                             const std::vector<config::GpuTypeSpec>& gpu_types) {
  std::ifstream in(path);
  if (!in)
    return Status::NotFound("cannot read node list " + path);
  return ReadOpenbNodes(in, path, gpu_types);
}

}  // namespace gsched::sim
