#include "config/worker_config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <optional>

#include "config/yaml_reader.h"
#include "scheduler/common/quantity.h"
#include "scheduler/common/text.h"

namespace gsched::config {
namespace {

constexpr Duration kHour = Seconds(3600);
// Schedulers of one high-availability group a worker may list.
constexpr size_t kMaxSchedulers = 16;
// The largest uid or gid a job may get: 2^32 - 2 (2^32 - 1 is "no id").
constexpr int64_t kMaxId = 4294967294;

bool IsSchedulerUrl(std::string_view url) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (url.starts_with(scheme) && url.size() > scheme.size())
      return url.find_first_of(" \t\r\n") == std::string_view::npos;
  }
  return false;
}

// Node names also become parts of file names and metric labels.
bool IsValidNodeName(std::string_view name) {
  if (name.empty() || name.size() > 253)
    return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

// A bare name ("runc") is looked up on PATH at run time; a relative path with a slash
// ("./bin/runc") is relative to the config file like every other path.
std::string ResolveExecutable(const std::string& program,
                              const std::optional<std::filesystem::path>& base_dir) {
  if (program.find('/') == std::string::npos)
    return program;
  return ResolveRelativePath(program, base_dir);
}

// A host name (letters, digits, '-' and '.') or an IPv4 or IPv6 address.
bool IsHostAddress(std::string_view s) {
  const std::string text(s);
  in6_addr buf;
  if (inet_pton(AF_INET, text.c_str(), &buf) == 1 || inet_pton(AF_INET6, text.c_str(), &buf) == 1)
    return true;
  return !s.empty() && s.size() <= 253 &&
         std::all_of(s.begin(), s.end(),
                     [](char ch) {
                       return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' ||
                              ch == '.';
                     }) &&
         s.front() != '-' && s.front() != '.';
}

// "29500-29999": both ends included, first <= last.
std::optional<api::PortRange> ParsePortRange(std::string_view s) {
  size_t dash = s.find('-');
  if (dash == std::string_view::npos)
    return std::nullopt;
  auto number = [](std::string_view t) -> std::optional<int32_t> {
    int32_t v = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || end != t.data() + t.size() || v < 1 || v > 65535)
      return std::nullopt;
    return v;
  };
  auto first = number(s.substr(0, dash));
  auto last = number(s.substr(dash + 1));
  if (!first || !last || *last < *first)
    return std::nullopt;
  return api::PortRange{*first, *last};
}

WorkerConfig Decode(YamlMap& root, const std::optional<std::filesystem::path>& base_dir) {
  WorkerConfig c;
  Diagnostics* diag = root.diagnostics();

  if (YamlValue value = root.Get("scheduler"); value.present()) {
    // One URL, "URL, URL", or a sequence of URLs; each entry is named by its index.
    std::vector<std::pair<std::string, std::string>> entries;  // (field path, URL)
    bool read = false;
    if (value.node().IsSequence()) {
      std::vector<YamlValue> items = value.List(kMaxSchedulers);
      read = items.size() == value.node().size();
      for (const YamlValue& item : items) {
        if (auto url = item.String(2048))
          entries.emplace_back(item.path(), *url);
        else
          read = false;
      }
    } else if (auto text = value.String(kMaxSchedulers * 2048)) {
      read = true;
      std::vector<std::string> urls = SplitList(*text);
      if (urls.empty())
        urls.emplace_back();  // Said below: "must be an http:// or https:// URL (got '')".
      for (size_t i = 0; i < urls.size(); ++i)
        entries.emplace_back(urls.size() == 1 ? value.path() : IndexPath(value.path(), i), urls[i]);
      if (urls.size() > kMaxSchedulers) {
        value.Error("must list at most " + std::to_string(kMaxSchedulers) + " URLs");
        read = false;
      }
    }
    if (read && entries.empty())
      value.Error("must name at least one URL");
    std::vector<std::string> urls;
    for (const auto& [path, url] : entries) {
      if (IsSchedulerUrl(url))
        urls.push_back(url);
      else
        diag->Add(path, "must be an http:// or https:// URL (got '" + url + "')");
    }
    if (read && !urls.empty() && urls.size() == entries.size())
      c.schedulers = std::move(urls);
  }
  c.token_file = root.String("token_file", "");
  c.ca_file = ResolveRelativePath(root.String("ca_file", ""), base_dir);
  c.tls_cert = ResolveRelativePath(root.String("tls_cert", ""), base_dir);
  c.tls_key = ResolveRelativePath(root.String("tls_key", ""), base_dir);
  if (c.tls_cert.empty() != c.tls_key.empty())
    diag->Add(c.tls_cert.empty() ? "tls_cert" : "tls_key", "tls_cert and tls_key go together");
  if (auto name = root.Get("name").String(253)) {
    if (name->empty() || IsValidNodeName(*name))
      c.name = *name;
    else
      diag->Add("name", "invalid node name '" + *name + "': use [A-Za-z0-9._-]");
  }
  if (auto dir = root.Get("work_dir").String()) {
    if (dir->empty())
      diag->Add("work_dir", "must not be empty");
    else
      c.work_dir = *dir;
  }
  // Empty means "not in any site/block"; otherwise a valid name.
  for (auto [key, field] : {std::pair{"site", &c.site}, std::pair{"block", &c.block}}) {
    YamlValue v = root.Get(key);
    if (auto text = v.String(64); text && !text->empty())
      *field = v.Name().value_or("");
  }
  c.labels = root.Get("labels").Labels().value_or(c.labels);
  c.cpus = root.Int("cpus", c.cpus, 0, 65536);
  c.memory_mib = root.Get("memory_mib").SizeMiB(0, int64_t{64} << 20).value_or(c.memory_mib);
  c.heartbeat_interval = root.Dur("heartbeat_interval", c.heartbeat_interval, Duration(100), kHour);
  c.health_check_interval =
      root.Dur("health_check_interval", c.health_check_interval, Seconds(1), 24 * kHour);

  {
    YamlMap r = root.Get("reconnect").Map();
    c.reconnect.initial_backoff =
        r.Dur("initial_backoff", c.reconnect.initial_backoff, Duration(10), kHour);
    c.reconnect.max_backoff = r.Dur("max_backoff", c.reconnect.max_backoff, Duration(10), kHour);
    if (c.reconnect.max_backoff < c.reconnect.initial_backoff) {
      diag->Add("reconnect.max_backoff", "must be >= reconnect.initial_backoff (" +
                                             FormatDuration(c.reconnect.initial_backoff) + ")");
    }
  }
  {
    YamlMap r = root.Get("runtime").Map();
    c.runtime.type = r.Get("type").Enum<RuntimeType>(kRuntimeTypeNames).value_or(c.runtime.type);
    c.runtime.binary = ResolveExecutable(r.String("binary", ""), base_dir);
    c.runtime.root = ResolveRelativePath(r.String("root", ""), base_dir);
    c.runtime.extra_args = r.Get("extra_args").StringList(64, 1024).value_or(c.runtime.extra_args);
  }
  {
    YamlMap g = root.Get("gpus").Map();
    c.gpus.discovery =
        g.Get("discovery").Enum<GpuDiscovery>(kGpuDiscoveryNames).value_or(c.gpus.discovery);
    if (auto smi = g.Get("nvidia_smi").String()) {
      if (smi->empty())
        diag->Add("gpus.nvidia_smi", "must not be empty");
      else
        c.gpus.nvidia_smi = ResolveExecutable(*smi, base_dir);
    }
    YamlMap f = g.Get("fake").Map();
    FakeGpuConfig& fake = c.gpus.fake;
    fake.count = f.Int("count", fake.count, 0, 64);
    fake.type = f.Get("type").Name().value_or(fake.type);
    fake.memory_mib = f.Get("memory_mib").SizeMiB(1, int64_t{1} << 30).value_or(fake.memory_mib);
    fake.nvlink = f.Get("nvlink").Enum<NvlinkTopology>(kNvlinkTopologyNames).value_or(fake.nvlink);
    fake.fault_file = ResolveRelativePath(f.String("fault_file", ""), base_dir);
  }
  {
    YamlMap l = root.Get("logs").Map();
    c.logs.max_bytes_per_stream = l.Get("max_bytes_per_stream")
                                      .SizeBytes(4096, int64_t{1} << 40)
                                      .value_or(c.logs.max_bytes_per_stream);
  }
  {
    YamlMap m = root.Get("identity").Map();
    IdentityConfig& id = c.identity;
    id.mode = m.Get("mode").Enum<IdentityMode>(kIdentityModeNames).value_or(id.mode);
    id.min_uid = m.Int("min_uid", id.min_uid, 1, kMaxId);
    id.map_file = ResolveRelativePath(m.String("map_file", ""), base_dir);
    id.run_as_root = m.Bool("run_as_root", id.run_as_root);
    YamlMap p = m.Get("pool").Map();
    id.pool.first_uid = p.Int("first_uid", id.pool.first_uid, 1, kMaxId);
    id.pool.users = p.Int("users", id.pool.users, 1, 1 << 20);
    id.pool.ids_per_user = p.Int("ids_per_user", id.pool.ids_per_user, 1, 1 << 24);
    if (id.mode == IdentityMode::kMap && id.map_file.empty() && !id.run_as_root)
      diag->Add("identity.map_file", "must be set when identity.mode is map");
    if (id.mode == IdentityMode::kPool) {
      if (id.pool.first_uid < id.min_uid)
        diag->Add("identity.pool.first_uid",
                  "must be >= identity.min_uid (" + std::to_string(id.min_uid) + ")");
      if (id.pool.first_uid + id.pool.users * id.pool.ids_per_user > kMaxId + 1)
        diag->Add("identity.pool.users",
                  "first_uid + users * ids_per_user must stay below 4294967295");
    }
  }
  {
    YamlMap m = root.Get("images").Map();
    YamlValue roots = m.Get("roots");
    for (const std::string& r : roots.StringList(256, 4096).value_or(std::vector<std::string>{})) {
      std::filesystem::path p = std::filesystem::path(ResolveRelativePath(r, base_dir));
      p = p.lexically_normal();
      if (p.has_parent_path() && !p.has_filename())
        p = p.parent_path();
      if (!p.is_absolute())
        diag->Add(roots.path(), "'" + r + "' must be an absolute path");
      else if (p == p.root_path())
        diag->Add(roots.path(),
                  "'/' may not be an image root: it would make any host directory an image");
      else
        c.images.roots.push_back(p.string());
    }
    // Each registry is "host[:port]" or {host: "host[:port]", insecure: bool}.
    YamlValue registries = m.Get("registries");
    std::vector<YamlValue> items = registries.List(256);
    for (size_t i = 0; i < items.size(); ++i) {
      std::optional<std::string> host;
      bool insecure = false;
      std::string path = registries.path() + "[" + std::to_string(i) + "]";
      if (items[i].node().IsMap()) {
        YamlMap entry = items[i].Map();
        host = entry.Required("host").String(255);
        insecure = entry.Bool("insecure", false);
        path += ".host";
      } else {
        host = items[i].String(255);
      }
      if (!host)
        continue;
      if (host->empty() || host->find_first_of("/ @") != std::string::npos)
        diag->Add(path, "'" + *host + "' must be a registry host[:port]");
      else if (std::find(c.images.registries.begin(), c.images.registries.end(), *host) !=
               c.images.registries.end())
        diag->Add(path, "'" + *host + "' is listed twice");
      else
        c.images.registries.push_back(*host);
      if (insecure)
        c.images.insecure_registries.push_back(*host);
    }
    c.images.credentials_file = ResolveRelativePath(m.String("credentials_file", ""), base_dir);
    c.images.cache_dir = ResolveRelativePath(m.String("cache_dir", ""), base_dir);
    c.images.cache_max_bytes = m.Get("cache_max_bytes")
                                   .SizeBytes(int64_t{1} << 20, int64_t{1} << 50)
                                   .value_or(c.images.cache_max_bytes);
    c.images.pull_timeout =
        m.Dur("pull_timeout", c.images.pull_timeout, Seconds(1), Seconds(24 * 3600));
  }
  c.network = root.Get("network").Enum<NetworkMode>(kNetworkModeNames).value_or(c.network);
  if (auto address = root.Get("address").String(253)) {
    if (!address->empty() && !IsHostAddress(*address))
      diag->Add("address", "'" + *address + "' must be a host name or an IP address");
    else
      c.address = *address;
  }
  if (auto ports = root.Get("rendezvous_ports").String(32)) {
    if (auto range = ParsePortRange(*ports)) {
      c.rendezvous_ports = *range;
    } else {
      diag->Add("rendezvous_ports",
                "'" + *ports + "' must be a range of ports 'FIRST-LAST' within 1-65535");
    }
  }
  {
    YamlMap m = root.Get("limits").Map();
    c.limits.pids = m.Int("pids", c.limits.pids, 16, 1 << 22);
  }
  c.drain_on_unhealthy = root.Bool("drain_on_unhealthy", c.drain_on_unhealthy);
  c.adopt_running_jobs = root.Bool("adopt_running_jobs", c.adopt_running_jobs);

  c.token_file = ResolveRelativePath(c.token_file, base_dir);
  c.work_dir = ResolveRelativePath(c.work_dir, base_dir);
  return c;
}

}  // namespace

std::string_view ToString(RuntimeType type) {
  return kRuntimeTypeNames[static_cast<size_t>(type)];
}
std::string_view ToString(IdentityMode mode) {
  return kIdentityModeNames[static_cast<size_t>(mode)];
}
std::string_view ToString(NetworkMode mode) {
  return kNetworkModeNames[static_cast<size_t>(mode)];
}
std::string_view ToString(GpuDiscovery discovery) {
  return kGpuDiscoveryNames[static_cast<size_t>(discovery)];
}
std::string_view ToString(NvlinkTopology topology) {
  return kNvlinkTopologyNames[static_cast<size_t>(topology)];
}

Result<WorkerConfig> LoadWorkerConfig(const std::string& path) {
  return DecodeYamlFile<WorkerConfig>(
      path, [](YamlMap& root, const std::filesystem::path& dir) { return Decode(root, dir); });
}

Result<WorkerConfig> ParseWorkerConfig(std::string_view yaml_text, std::string_view source_name) {
  return DecodeYaml<WorkerConfig>(yaml_text, source_name,
                                  [](YamlMap& root) { return Decode(root, std::nullopt); });
}

}  // namespace gsched::config
