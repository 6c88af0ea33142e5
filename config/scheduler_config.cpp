#include "config/scheduler_config.h"

#include <charconv>
#include <filesystem>
#include <optional>

#include "config/yaml_reader.h"
#include "scheduler/common/quantity.h"

namespace gsched::config {
namespace {

constexpr Duration kDay = Seconds(86400);
constexpr Duration kYear = Seconds(365 * 86400);
constexpr Duration kMaxDuration = Seconds(int64_t{100} * 365 * 86400);
constexpr int64_t kMaxWeight = 1'000'000'000;

// `HOST:PORT`, `[IPv6]:PORT`; port 0..65535.
bool IsValidListenAddress(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size())
    return false;
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (host.front() == '[' ? host.back() != ']' : host.find(':') != std::string_view::npos)
    return false;
  if (port.size() > 5)
    return false;
  int value = -1;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  return ec == std::errc() && ptr == port.data() + port.size() && value >= 0 && value <= 65535;
}

// "http://HOST:PORT" or "https://HOST:PORT", nothing after the port but an optional "/".
bool IsHttpUrl(std::string_view url) {
  std::string_view rest;
  if (url.starts_with("http://"))
    rest = url.substr(7);
  else if (url.starts_with("https://"))
    rest = url.substr(8);
  else
    return false;
  if (rest.ends_with('/'))
    rest.remove_suffix(1);
  return rest.find('/') == std::string_view::npos && IsValidListenAddress(rest) &&
         !rest.ends_with(":0");
}

void ReadHa(YamlMap m, const std::string& listen, HaConfig& out) {
  Diagnostics* diag = m.diagnostics();
  {
    YamlMap etcd = m.Get("etcd").Map();
    YamlValue endpoints = etcd.Get("endpoints");
    for (const YamlValue& e : endpoints.List(16)) {
      auto url = e.String(256);
      if (!url)
        continue;
      if (!IsHttpUrl(*url))
        e.Error("must be http://HOST:PORT or https://HOST:PORT (got '" + *url + "')");
      else
        out.etcd_endpoints.push_back(*url);
    }
    out.etcd_ca_file = etcd.String("ca_file", "");
    out.etcd_prefix = etcd.String("prefix", out.etcd_prefix, 128);
    if (out.etcd_prefix.empty() || out.etcd_prefix.back() != '/')
      diag->Add(JoinPath(etcd.path(), "prefix"), "must end with '/'");
  }
  out.lease_ttl = m.Dur("lease_ttl", out.lease_ttl, Seconds(1), Seconds(60));
  out.advertise_url = m.String("advertise_url", "", 256);
  if (!out.advertise_url.empty() && !IsHttpUrl(out.advertise_url)) {
    diag->Add(JoinPath(m.path(), "advertise_url"),
              "must be http://HOST:PORT or https://HOST:PORT (got '" + out.advertise_url + "')");
  }
  out.name = m.String("name", "", 64);
  if (out.enabled() && out.advertise_url.empty()) {
    std::string_view host = std::string_view(listen).substr(0, listen.rfind(':'));
    if (host == "0.0.0.0" || host == "[::]" || host == "::")
      diag->Add(JoinPath(m.path(), "advertise_url"),
                "required when listen is a wildcard address (" + listen + ")");
  }
}

void ReadLimits(YamlMap m, HttpLimits& out) {
  constexpr int64_t kGiB = int64_t{1} << 30;
  out.max_body_bytes = m.Get("max_body_bytes").SizeBytes(1024, kGiB).value_or(out.max_body_bytes);
  out.max_header_bytes =
      m.Get("max_header_bytes").SizeBytes(1024, int64_t{1} << 20).value_or(out.max_header_bytes);
  out.request_timeout = m.Dur("request_timeout", out.request_timeout, Seconds(1), kDay);
  out.idle_timeout = m.Dur("idle_timeout", out.idle_timeout, Seconds(1), kDay);
  out.max_connections = m.Int("max_connections", out.max_connections, 1, 1'000'000);
  out.max_connections_per_token =
      m.Int("max_connections_per_token", out.max_connections_per_token, 0, 1'000'000);
  out.ws_max_message_bytes =
      m.Get("ws_max_message_bytes").SizeBytes(1024, kGiB).value_or(out.ws_max_message_bytes);
  out.max_submit_expanded_bytes = m.Get("max_submit_expanded_bytes")
                                      .SizeBytes(1024, 64 * kGiB)
                                      .value_or(out.max_submit_expanded_bytes);
  out.max_pending_jobs_per_user =
      m.Int("max_pending_jobs_per_user", out.max_pending_jobs_per_user, 0, 100'000'000);
  out.max_usage_window = m.Dur("max_usage_window", out.max_usage_window, Seconds(3600),
                               Seconds(int64_t{36500} * 86400));
}

void ReadScheduling(YamlMap m, SchedulingConfig& out) {
  out.interval = m.Dur("interval", out.interval, Duration(10), Seconds(3600));
  {
    YamlMap b = m.Get("backfill").Map();
    out.backfill.depth = b.Int("depth", out.backfill.depth, 0, 1'000'000);
    out.backfill.enabled = b.Bool("enabled", out.backfill.enabled);
  }
  out.max_starts_per_cycle = m.Int("max_starts_per_cycle", out.max_starts_per_cycle, 1, 10'000'000);
}

void ReadPriority(YamlMap m, PriorityConfig& out) {
  {
    YamlMap w = m.Get("weights").Map();
    out.weights.fairshare = w.Int("fairshare", out.weights.fairshare, 0, kMaxWeight);
    out.weights.age = w.Int("age", out.weights.age, 0, kMaxWeight);
    out.weights.size = w.Int("size", out.weights.size, 0, kMaxWeight);
    out.weights.job_class = w.Int("class", out.weights.job_class, 0, kMaxWeight);
  }
  out.age_max = m.Dur("age_max", out.age_max, Seconds(1), kYear);
  YamlMap classes = m.Get("classes").Map();
  for (size_t i = 0; i < out.classes.size(); ++i) {
    std::string_view name = api::EnumTraits<api::PriorityClass>::kNames[i];
    YamlMap c = classes.Get(name).Map();
    ClassTimeLimits& limits = out.classes[i];
    limits.default_time_limit =
        c.Dur("default_time_limit", limits.default_time_limit, Seconds(1), kYear);
    limits.max_time_limit = c.Dur("max_time_limit", limits.max_time_limit, Seconds(1), kYear);
    if (limits.default_time_limit > limits.max_time_limit) {
      c.diagnostics()->Add(
          JoinPath(c.path(), "default_time_limit"),
          "must be <= max_time_limit (" + FormatDuration(limits.max_time_limit) + ")");
    }
  }
}

void ReadPreemption(YamlMap m, PreemptionConfig& out) {
  out.enabled = m.Bool("enabled", out.enabled);
  out.min_runtime = m.Dur("min_runtime", out.min_runtime, Duration(0), kDay);
  out.usage_charge = m.Get("usage_charge").Double(0.0, 1.0).value_or(out.usage_charge);
  out.max_per_cycle = m.Int("max_per_cycle", out.max_per_cycle, 0, 1'000'000);
  out.max_per_account_per_hour =
      m.Int("max_per_account_per_hour", out.max_per_account_per_hour, 0, 10'000'000);
  out.reclaim_wait_factor =
      m.Get("reclaim_wait_factor").Double(0.0, 1e6).value_or(out.reclaim_wait_factor);
  out.max_reclaim_wait = m.Dur("max_reclaim_wait", out.max_reclaim_wait, Duration(0), 7 * kDay);
  out.default_grace_period =
      m.Dur("default_grace_period", out.default_grace_period, Duration(0), kDay);
}

SchedulerConfig Decode(YamlMap& root, const std::optional<std::filesystem::path>& base_dir) {
  SchedulerConfig c;
  Diagnostics* diag = root.diagnostics();

  if (auto listen = root.Get("listen").String(256)) {
    if (IsValidListenAddress(*listen))
      c.listen = *listen;
    else
      diag->Add("listen", "must be HOST:PORT with a port 0..65535 (got '" + *listen + "')");
  }
  if (auto dir = root.Get("data_dir").String()) {
    if (dir->empty())
      diag->Add("data_dir", "must not be empty");
    else
      c.data_dir = *dir;
  }
  c.min_free_disk_bytes =
      root.Get("min_free_disk").SizeBytes(0, int64_t{1} << 40).value_or(c.min_free_disk_bytes);
  c.log_level = root.Get("log_level").Enum<LogLevel>(kLogLevelNames).value_or(c.log_level);

  {
    YamlMap tls = root.Get("tls").Map();
    c.tls.cert = tls.String("cert", "");
    c.tls.key = tls.String("key", "");
    c.tls.client_ca = tls.String("client_ca", "");
    if (c.tls.cert.empty() != c.tls.key.empty()) {
      diag->Add(c.tls.cert.empty() ? "tls.cert" : "tls.key",
                "tls.cert and tls.key must be set together");
    }
    if (!c.tls.client_ca.empty() && c.tls.cert.empty())
      diag->Add("tls.client_ca", "needs tls.cert and tls.key (mutual TLS is TLS first)");
  }
  ReadHa(root.Get("ha").Map(), c.listen, c.ha);
  ReadLimits(root.Get("limits").Map(), c.limits);
  {
    YamlMap r = root.Get("rate_limit").Map();
    c.rate_limit.requests_per_s =
        r.Int("requests_per_s", c.rate_limit.requests_per_s, 1, 10'000'000);
    c.rate_limit.burst = r.Int("burst", c.rate_limit.burst, 1, 100'000'000);
    c.rate_limit.worker_messages_per_s =
        r.Int("worker_messages_per_s", c.rate_limit.worker_messages_per_s, 1, 10'000'000);
    c.rate_limit.worker_message_burst =
        r.Int("worker_message_burst", c.rate_limit.worker_message_burst, 1, 100'000'000);
  }
  ReadScheduling(root.Get("scheduling").Map(), c.scheduling);
  {
    YamlMap f = root.Get("fairshare").Map();
    c.fairshare.half_life = f.Dur("half_life", c.fairshare.half_life, Seconds(60), kMaxDuration);
  }
  ReadPriority(root.Get("priority").Map(), c.priority);
  ReadPreemption(root.Get("preemption").Map(), c.preemption);
  {
    YamlMap n = root.Get("nodes").Map();
    c.nodes.heartbeat_timeout =
        n.Dur("heartbeat_timeout", c.nodes.heartbeat_timeout, Seconds(1), Seconds(3600));
    c.nodes.lost_timeout = n.Dur("lost_timeout", c.nodes.lost_timeout, Seconds(1), 30 * kDay);
    if (c.nodes.lost_timeout <= c.nodes.heartbeat_timeout) {
      diag->Add("nodes.lost_timeout", "must be > nodes.heartbeat_timeout (" +
                                          FormatDuration(c.nodes.heartbeat_timeout) + ")");
    }
  }
  {
    YamlMap h = root.Get("history").Map();
    c.history.retention = h.Dur("retention", c.history.retention, Seconds(60), 100 * kYear);
  }
  {
    YamlMap e = root.Get("events").Map();
    c.events.retention = e.Dur("retention", c.events.retention, Seconds(60), 100 * kYear);
    c.events.max_events = e.Int("max_events", c.events.max_events, 1000, int64_t{1} << 40);
  }
  {
    YamlMap w = root.Get("watch").Map();
    c.watch.queue_limit = w.Int("queue_limit", c.watch.queue_limit, 1, 10'000'000);
    c.watch.ping_interval =
        w.Dur("ping_interval", c.watch.ping_interval, Seconds(1), Seconds(3600));
    c.watch.memory_events = w.Int("memory_events", c.watch.memory_events, 0, 10'000'000);
    c.watch.summary_interval =
        w.Dur("summary_interval", c.watch.summary_interval, Duration(100), Seconds(3600));
    c.watch.max_feeds_per_token =
        w.Int("max_feeds_per_token", c.watch.max_feeds_per_token, 0, 10'000'000);
    if (c.watch.ping_interval >= c.limits.idle_timeout) {
      diag->Add("watch.ping_interval", "must be < limits.idle_timeout (" +
                                           FormatDuration(c.limits.idle_timeout) +
                                           "), or idle subscribers are disconnected");
    }
  }
  c.gpu_types = ReadGpuTypes(root.Get("gpu_types"));
  c.accounts_file = ResolveRelativePath(root.String("accounts_file", ""), base_dir);
  c.data_dir = ResolveRelativePath(c.data_dir, base_dir);
  c.tls.cert = ResolveRelativePath(c.tls.cert, base_dir);
  c.tls.key = ResolveRelativePath(c.tls.key, base_dir);
  c.tls.client_ca = ResolveRelativePath(c.tls.client_ca, base_dir);
  c.ha.etcd_ca_file = ResolveRelativePath(c.ha.etcd_ca_file, base_dir);

  constexpr size_t kMaxPartitions = 256;
  for (auto& [name, value] : root.Get("partitions").Entries(kMaxPartitions)) {
    if (!IsValidName(name)) {
      value.Error("invalid partition name: use 1..64 characters of [a-z0-9._-]");
      continue;
    }
    std::vector<std::string> types;
    bool ok = true;
    for (const YamlValue& item : value.List(64)) {
      auto type = item.String(64);
      if (!type) {
        if (!item.present())
          item.Error("must be a GPU type name");
        ok = false;
      } else if (FindGpuType(c.gpu_types, *type) == nullptr) {
        item.Error("unknown GPU type '" + *type + "'");
        ok = false;
      } else {
        types.push_back(std::move(*type));
      }
    }
    if (!value.present() || (value.node().IsSequence() && value.node().size() == 0)) {
      value.Error("must list at least one GPU type");
      ok = false;
    }
    if (ok)
      c.partitions.emplace(name, std::move(types));
  }
  return c;
}

}  // namespace

std::string_view ToString(LogLevel level) {
  return kLogLevelNames[static_cast<size_t>(level)];
}

Result<SchedulerConfig> LoadSchedulerConfig(const std::string& path) {
  return DecodeYamlFile<SchedulerConfig>(
      path, [](YamlMap& root, const std::filesystem::path& dir) { return Decode(root, dir); });
}

Result<SchedulerConfig> ParseSchedulerConfig(std::string_view yaml_text,
                                             std::string_view source_name) {
  return DecodeYaml<SchedulerConfig>(yaml_text, source_name,
                                     [](YamlMap& root) { return Decode(root, std::nullopt); });
}

}  // namespace gsched::config
