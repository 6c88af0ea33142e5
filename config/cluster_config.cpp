#include "config/cluster_config.h"

#include <charconv>
#include <optional>
#include <unordered_map>
#include <utility>

#include "config/yaml_reader.h"

namespace gsched::config {
namespace {

constexpr int64_t kMaxGpusPerNode = 64;
constexpr int64_t kMaxCpusPerNode = 65536;
constexpr int64_t kMaxMemoryMiB = int64_t{64} << 20;  // 64 TiB.
constexpr size_t kMaxNodeNameLength = 253;

bool IsNodeNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// A parsed node name pattern such as "nacc-{block}-n{index:02}".
struct NamePattern {
  enum class Kind : uint8_t { kLiteral, kIndex, kBlock, kSite };
  struct Segment {
    Kind kind;
    std::string literal;
    int width = 0;  // Zero-padding of `{index:0N}`.
  };
  std::vector<Segment> segments;
  bool has_index = false;

  std::string Expand(int64_t index, std::string_view site, std::string_view block) const {
    std::string out;
    out.reserve(32);
    for (const Segment& s : segments) {
      switch (s.kind) {
        case Kind::kLiteral:
          out += s.literal;
          break;
        case Kind::kSite:
          out.append(site);
          break;
        case Kind::kBlock:
          out.append(block);
          break;
        case Kind::kIndex: {
          char buf[24];
          auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), index);
          size_t digits = static_cast<size_t>(end - buf);
          if (static_cast<size_t>(s.width) > digits)
            out.append(static_cast<size_t>(s.width) - digits, '0');
          out.append(buf, digits);
          break;
        }
      }
    }
    return out;
  }
};

// Parses `{index}`, `{index:0N}` / `{index:N}`, `{block}`, `{site}` and literal text of node-name
// characters.
Result<NamePattern> ParseNamePattern(std::string_view text) {
  NamePattern p;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '{') {
      size_t close = text.find('}', i);
      if (close == std::string_view::npos)
        return Status::InvalidArgument("unclosed '{' in name pattern '" + std::string(text) + "'");
      std::string_view inner = text.substr(i + 1, close - i - 1);
      NamePattern::Segment s{NamePattern::Kind::kIndex, {}, 0};
      if (inner == "index") {
        p.has_index = true;
      } else if (inner.starts_with("index:")) {
        std::string_view width = inner.substr(6);
        int w = -1;
        auto [ptr, ec] = std::from_chars(width.data(), width.data() + width.size(), w);
        if (width.empty() || ec != std::errc() || ptr != width.data() + width.size() || w < 1 ||
            w > 12) {
          return Status::InvalidArgument("bad width in '{" + std::string(inner) +
                                         "}': use {index:02} .. {index:012}");
        }
        s.width = w;
        p.has_index = true;
      } else if (inner == "block") {
        s.kind = NamePattern::Kind::kBlock;
      } else if (inner == "site") {
        s.kind = NamePattern::Kind::kSite;
      } else {
        return Status::InvalidArgument("unknown placeholder '{" + std::string(inner) +
                                       "}': use {index}, {index:02}, {block} or {site}");
      }
      p.segments.push_back(std::move(s));
      i = close + 1;
      continue;
    }
    if (!IsNodeNameChar(text[i])) {
      return Status::InvalidArgument("invalid character '" + std::string(1, text[i]) +
                                     "' in node name '" + std::string(text) +
                                     "': use [A-Za-z0-9._-] and placeholders");
    }
    if (p.segments.empty() || p.segments.back().kind != NamePattern::Kind::kLiteral)
      p.segments.push_back({NamePattern::Kind::kLiteral, {}, 0});
    p.segments.back().literal.push_back(text[i]);
    ++i;
  }
  if (p.segments.empty())
    return Status::InvalidArgument("must not be empty");
  return p;
}

// Where a node came from, for duplicate-name errors.
struct NodeOrigin {
  std::string group_path;
  int64_t index;  // -1 for a single node.

  std::string Describe() const {
    if (index < 0)
      return group_path;
    return group_path + " (index " + std::to_string(index) + ")";
  }
};

class ClusterDecoder {
 public:
  explicit ClusterDecoder(YamlMap& root) : root_(root) {}

  ClusterConfig Decode() {
    c_.gpu_types = ReadGpuTypes(root_.Get("gpu_types"));
    YamlValue sites = root_.Required("sites");
    std::vector<YamlValue> site_items = sites.List(1024);
    if (sites.present() && sites.node().IsSequence() && site_items.empty())
      sites.Error("must list at least one site");
    for (const YamlValue& site : site_items)
      DecodeSite(site);
    return std::move(c_);
  }

 private:
  void DecodeSite(const YamlValue& value) {
    YamlMap m = value.Map();
    SiteSpec site;
    site.name = m.Required("name").Name().value_or("");
    if (!site.name.empty()) {
      auto [it, inserted] = site_paths_.emplace(site.name, value.path());
      if (!inserted)
        m.Get("name").Error("duplicate site '" + site.name + "' (also " + it->second + ")");
    }
    YamlValue blocks = m.Required("blocks");
    std::vector<YamlValue> block_items = blocks.List(100'000);
    if (blocks.present() && blocks.node().IsSequence() && block_items.empty())
      blocks.Error("must list at least one block");
    std::unordered_map<std::string, std::string> block_paths;
    for (const YamlValue& block_value : block_items) {
      YamlMap b = block_value.Map();
      BlockSpec block;
      block.name = b.Required("name").Name().value_or("");
      if (!block.name.empty()) {
        auto [it, inserted] = block_paths.emplace(block.name, block_value.path());
        if (!inserted) {
          b.Get("name").Error("duplicate block '" + block.name + "' in site '" + site.name +
                              "' (also " + it->second + ")");
        }
      }
      YamlValue groups = b.Required("nodes");
      std::vector<YamlValue> group_items = groups.List(100'000);
      if (groups.present() && groups.node().IsSequence() && group_items.empty())
        groups.Error("must list at least one node or node group");
      size_t before = c_.nodes.size();
      for (const YamlValue& group : group_items)
        DecodeGroup(group, site.name, block.name);
      block.node_count = c_.nodes.size() - before;
      site.blocks.push_back(std::move(block));
    }
    c_.sites.push_back(std::move(site));
  }

  void DecodeGroup(const YamlValue& value, const std::string& site, const std::string& block) {
    YamlMap m = value.Map();
    std::optional<int64_t> count = m.Get("count").Int(1, kMaxClusterNodes);
    bool has_count = m.Has("count");
    int64_t first_index = m.Int("first_index", 0, 0, 1'000'000'000);
    YamlValue name_value = m.Required("name");
    std::optional<std::string> name_text = name_value.String(kMaxNodeNameLength);
    std::optional<NamePattern> pattern;
    if (name_text) {
      Result<NamePattern> parsed = ParseNamePattern(*name_text);
      if (!parsed.ok()) {
        name_value.Error(parsed.status().message());
      } else if (has_count && count && *count > 1 && !parsed->has_index) {
        name_value.Error("must contain {index} when count > 1 (got '" + *name_text + "')");
      } else {
        pattern = std::move(*parsed);
      }
    }
    NodeSpec proto;
    proto.site = site;
    proto.block = block;
    YamlValue type_value = m.Required("gpu_type");
    if (auto type = type_value.String(64)) {
      if (FindGpuType(c_.gpu_types, *type) == nullptr) {
        std::vector<std::string> known;
        for (const GpuTypeSpec& t : c_.gpu_types)
          known.push_back(t.name);
        std::string message = "unknown GPU type '" + *type + "'";
        if (auto guess = DidYouMean(*type, known))
          message += "; did you mean '" + *guess + "'?";
        type_value.Error(message);
      } else {
        proto.gpu_type = *type;
      }
    }
    proto.gpus = m.Int("gpus", 8, 0, kMaxGpusPerNode);
    auto cpus = m.Required("cpus").Int(1, kMaxCpusPerNode);
    auto memory = m.Required("memory").SizeMiB(1, kMaxMemoryMiB);
    proto.labels = m.Get("labels").Labels().value_or(proto.labels);
    if (has_count && !count)
      return;  // The count was invalid; error recorded.
    if (!pattern || proto.gpu_type.empty() || !cpus || !memory || site.empty() || block.empty())
      return;
    proto.cpus = *cpus;
    proto.memory_mib = *memory;

    int64_t n = has_count ? *count : 1;
    if (static_cast<int64_t>(c_.nodes.size()) + n > kMaxClusterNodes) {
      value.Error("the cluster has more than " + std::to_string(kMaxClusterNodes) + " nodes");
      return;
    }
    for (int64_t i = 0; i < n; ++i) {
      int64_t index = first_index + i;
      NodeSpec node = proto;
      node.name = pattern->Expand(index, site, block);
      if (node.name.size() > kMaxNodeNameLength) {
        name_value.Error("expanded name '" + node.name.substr(0, 64) + "...' is longer than " +
                         std::to_string(kMaxNodeNameLength) + " characters");
        return;
      }
      NodeOrigin origin{name_value.path(), has_count ? index : -1};
      auto [it, inserted] = node_origins_.emplace(node.name, origin);
      if (!inserted) {
        name_value.Error("duplicate node name '" + node.name + "' at " + origin.Describe() +
                         "; first defined at " + it->second.Describe());
        continue;
      }
      c_.nodes.push_back(std::move(node));
    }
  }

  YamlMap& root_;
  ClusterConfig c_;
  std::unordered_map<std::string, std::string> site_paths_;
  std::unordered_map<std::string, NodeOrigin> node_origins_;
};

}  // namespace

int64_t ClusterConfig::TotalGpus() const {
  int64_t total = 0;
  for (const NodeSpec& n : nodes)
    total += n.gpus;
  return total;
}

std::map<std::string, int64_t> ClusterConfig::GpusByType() const {
  std::map<std::string, int64_t> out;
  for (const NodeSpec& n : nodes)
    out[n.gpu_type] += n.gpus;
  return out;
}

Result<ClusterConfig> LoadClusterConfig(const std::string& path) {
  return DecodeYamlFile<ClusterConfig>(path, [](YamlMap& root, const std::filesystem::path&) {
    return ClusterDecoder(root).Decode();
  });
}

Result<ClusterConfig> ParseClusterConfig(std::string_view yaml_text, std::string_view source_name) {
  return DecodeYaml<ClusterConfig>(yaml_text, source_name,
                                   [](YamlMap& root) { return ClusterDecoder(root).Decode(); });
}

}  // namespace gsched::config
