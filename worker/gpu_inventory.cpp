#include "worker/gpu_inventory.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

namespace gsched::worker {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos)
      break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find(sep, start);
    parts.push_back(Trim(s.substr(start, pos - start)));
    if (pos == std::string_view::npos)
      break;
    start = pos + 1;
  }
  return parts;
}

std::vector<std::string_view> SplitWhitespace(std::string_view s) {
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i])))
      ++i;
    size_t start = i;
    while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i])))
      ++i;
    if (i > start)
      parts.push_back(s.substr(start, i - start));
  }
  return parts;
}

template <typename T>
std::optional<T> ParseInt(std::string_view s) {
  T value{};
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty())
    return std::nullopt;
  return value;
}

std::string LineError(std::string_view what, size_t line_no, std::string_view line,
                      std::string_view why) {
  return std::string(what) + " line " + std::to_string(line_no) + " (\"" + std::string(line) +
         "\"): " + std::string(why);
}

}  // namespace

std::string GpuTypeFromName(std::string_view product_name) {
  std::string lower;
  for (char c : Trim(product_name))
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // Known families, most specific first.
  static const std::pair<std::string_view, std::string_view> kKnown[] = {
      {"rtx pro 6000", "rtx-pro-6000"},
      {"gh200", "gh200"},
      {"gb200", "gb200"},
      {"h100", "h100"},
      {"h200", "h200"},
      {"h800", "h800"},
      {"b200", "b200"},
      {"b300", "b300"},
      {"a100", "a100"},
      {"a800", "a800"},
      {"l40s", "l40s"},
      {"l40", "l40"},
      {"l4", "l4"},
      {"v100", "v100"},
      {"a10", "a10"},
  };
  // Words are runs of [a-z0-9], so that "A100-SXM4-80GB" has the word "a100".
  std::string spaced;
  for (char c : lower)
    spaced += ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) ? c : ' ';
  std::vector<std::string_view> words = SplitWhitespace(spaced);
  for (const auto& [pattern, type] : kKnown) {
    if (pattern.find(' ') != std::string_view::npos) {
      if (lower.find(pattern) != std::string::npos)
        return std::string(type);
      continue;
    }
    // Whole words only, so that "l4" does not match "l40s".
    if (std::find(words.begin(), words.end(), pattern) != words.end())
      return std::string(type);
  }
  std::string_view rest = lower;
  if (rest.starts_with("nvidia "))
    rest.remove_prefix(7);
  std::string out;
  for (char c : rest) {
    bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (keep)
      out += c;
    else if (!out.empty() && out.back() != '-')
      out += '-';
  }
  while (!out.empty() && out.back() == '-')
    out.pop_back();
  return out.empty() ? "unknown" : out;
}

Result<GpuInventory> ParseGpuQuery(std::string_view csv) {
  GpuInventory inventory;
  std::set<int32_t> seen;
  size_t line_no = 0;
  for (std::string_view line : SplitLines(csv)) {
    ++line_no;
    if (Trim(line).empty())
      continue;
    auto fields = Split(line, ',');
    if (fields.size() != 5)
      return Status::InvalidArgument(LineError("nvidia-smi query", line_no, line,
                                               "expected 5 comma-separated fields (index, uuid, "
                                               "name, memory.total, pci.bus_id), got " +
                                                   std::to_string(fields.size())));
    auto index = ParseInt<int32_t>(fields[0]);
    if (!index || *index < 0)
      return Status::InvalidArgument(
          LineError("nvidia-smi query", line_no, line, "index is not a non-negative integer"));
    if (!seen.insert(*index).second)
      return Status::InvalidArgument(
          LineError("nvidia-smi query", line_no, line, "duplicate GPU index"));
    if (fields[1].empty() || fields[2].empty())
      return Status::InvalidArgument(
          LineError("nvidia-smi query", line_no, line, "empty uuid or name"));
    auto memory = ParseInt<int64_t>(fields[3]);
    if (!memory || *memory <= 0)
      return Status::InvalidArgument(LineError("nvidia-smi query", line_no, line,
                                               "memory.total is not a positive integer (MiB)"));
    api::Gpu gpu;
    gpu.index = *index;
    gpu.uuid = std::string(fields[1]);
    gpu.type = GpuTypeFromName(fields[2]);
    gpu.memory_mib = *memory;
    inventory.gpus.push_back(std::move(gpu));
    inventory.pci_bus_ids[*index] = std::string(fields[4]);
  }
  if (inventory.gpus.empty())
    return Status::InvalidArgument("nvidia-smi query: no GPU listed");
  std::sort(inventory.gpus.begin(), inventory.gpus.end(),
            [](const api::Gpu& a, const api::Gpu& b) { return a.index < b.index; });
  return inventory;
}

Result<std::vector<std::pair<int32_t, int32_t>>> ParseTopologyMatrix(std::string_view text) {
  std::vector<std::string_view> lines = SplitLines(text);
  // The header names the columns: "GPU0 GPU1 ... NIC0 CPU Affinity ...".
  size_t header = 0;
  std::vector<int32_t> columns;
  for (; header < lines.size(); ++header) {
    auto words = SplitWhitespace(lines[header]);
    if (!words.empty() && words[0].starts_with("GPU")) {
      for (auto w : words) {
        if (!w.starts_with("GPU"))
          break;
        auto idx = ParseInt<int32_t>(w.substr(3));
        if (!idx)
          break;
        columns.push_back(*idx);
      }
      break;
    }
  }
  if (columns.empty())
    return Status::InvalidArgument("nvidia-smi topo -m: no header line with GPU columns");
  static const std::set<std::string_view> kNotNvlink = {"X",    "PIX", "PXB", "PHB",
                                                        "NODE", "SYS", "SOC"};
  std::set<std::pair<int32_t, int32_t>> pairs;
  size_t rows = 0;
  for (size_t i = header + 1; i < lines.size(); ++i) {
    auto words = SplitWhitespace(lines[i]);
    if (words.empty() || !words[0].starts_with("GPU"))
      continue;
    auto row = ParseInt<int32_t>(words[0].substr(3));
    if (!row)
      continue;
    ++rows;
    if (words.size() < columns.size() + 1)
      return Status::InvalidArgument(
          LineError("nvidia-smi topo -m", i + 1, lines[i],
                    "expected " + std::to_string(columns.size()) + " GPU cells"));
    for (size_t c = 0; c < columns.size(); ++c) {
      std::string_view cell = words[c + 1];
      if (cell.starts_with("NV")) {
        auto links = ParseInt<int32_t>(cell.substr(2));
        if (!links || *links <= 0)
          return Status::InvalidArgument(LineError("nvidia-smi topo -m", i + 1, lines[i],
                                                   "bad cell \"" + std::string(cell) + "\""));
        if (*row != columns[c])
          pairs.insert({std::min(*row, columns[c]), std::max(*row, columns[c])});
      } else if (!kNotNvlink.contains(cell)) {
        return Status::InvalidArgument(LineError("nvidia-smi topo -m", i + 1, lines[i],
                                                 "unknown cell \"" + std::string(cell) + "\""));
      }
    }
  }
  if (rows != columns.size())
    return Status::InvalidArgument("nvidia-smi topo -m: " + std::to_string(columns.size()) +
                                   " GPU columns but " + std::to_string(rows) + " GPU rows");
  return std::vector<std::pair<int32_t, int32_t>>(pairs.begin(), pairs.end());
}

GpuInventory MakeFakeInventory(const config::FakeGpuConfig& config, std::string_view node) {
  GpuInventory inventory;
  int32_t count = static_cast<int32_t>(config.count);
  for (int32_t i = 0; i < count; ++i) {
    api::Gpu gpu;
    gpu.index = i;
    gpu.uuid = "GPU-fake-" + std::string(node) + "-" + std::to_string(i);
    gpu.type = config.type;
    gpu.memory_mib = config.memory_mib;
    inventory.gpus.push_back(std::move(gpu));
  }
  switch (config.nvlink) {
    case config::NvlinkTopology::kNone:
      break;
    case config::NvlinkTopology::kPairs:
      for (int32_t i = 0; i + 1 < count; i += 2)
        inventory.nvlink_pairs.emplace_back(i, i + 1);
      break;
    case config::NvlinkTopology::kAll:
      for (int32_t i = 0; i < count; ++i)
        for (int32_t j = i + 1; j < count; ++j)
          inventory.nvlink_pairs.emplace_back(i, j);
      break;
  }
  return inventory;
}

Result<std::map<int32_t, GpuObservation>> ParseFaultFile(std::string_view text) {
  std::map<int32_t, GpuObservation> observed;
  size_t line_no = 0;
  for (std::string_view line : SplitLines(text)) {
    ++line_no;
    std::string_view content = line.substr(0, line.find('#'));
    auto words = SplitWhitespace(content);
    if (words.empty())
      continue;
    auto index = ParseInt<int32_t>(words[0]);
    if (!index || *index < 0)
      return Status::InvalidArgument(
          LineError("fault file", line_no, line, "expected a GPU index first"));
    GpuObservation obs;
    obs.index = *index;
    if (words.size() == 2 && words[1] == "ok") {
    } else if (words.size() == 2 && words[1] == "gone") {
      obs.present = false;
    } else if (words.size() == 3 && words[1] == "xid") {
      auto xid = ParseInt<int32_t>(words[2]);
      if (!xid)
        return Status::InvalidArgument(LineError("fault file", line_no, line, "bad xid"));
      obs.xid = *xid;
    } else if (words.size() == 3 && words[1] == "ecc") {
      auto ecc = ParseInt<int64_t>(words[2]);
      if (!ecc)
        return Status::InvalidArgument(LineError("fault file", line_no, line, "bad ecc count"));
      obs.ecc_uncorrected = *ecc;
    } else {
      return Status::InvalidArgument(
          LineError("fault file", line_no, line,
                    "expected \"N ok\", \"N gone\", \"N xid X\" or \"N ecc C\""));
    }
    observed[*index] = obs;
  }
  return observed;
}

Result<std::map<int32_t, GpuObservation>> ParseHealthQuery(std::string_view csv) {
  std::map<int32_t, GpuObservation> observed;
  size_t line_no = 0;
  for (std::string_view line : SplitLines(csv)) {
    ++line_no;
    if (Trim(line).empty())
      continue;
    auto fields = Split(line, ',');
    if (fields.size() < 2)
      return Status::InvalidArgument(
          LineError("nvidia-smi health query", line_no, line, "expected index, ecc count"));
    auto index = ParseInt<int32_t>(fields[0]);
    if (!index)
      return Status::InvalidArgument(
          LineError("nvidia-smi health query", line_no, line, "bad index"));
    GpuObservation obs;
    obs.index = *index;
    if (fields[1] != "[N/A]" && fields[1] != "N/A" && fields[1] != "[Not Supported]") {
      auto ecc = ParseInt<int64_t>(fields[1]);
      if (!ecc)
        return Status::InvalidArgument(
            LineError("nvidia-smi health query", line_no, line, "bad ecc count"));
      obs.ecc_uncorrected = *ecc;
    }
    observed[*index] = obs;
  }
  return observed;
}

std::vector<api::GpuHealthEntry> EvaluateHealth(const GpuInventory& inventory,
                                                const std::map<int32_t, GpuObservation>& observed,
                                                bool present_by_default) {
  std::vector<api::GpuHealthEntry> entries;
  for (const api::Gpu& gpu : inventory.gpus) {
    api::GpuHealthEntry entry;
    entry.index = gpu.index;
    auto it = observed.find(gpu.index);
    if (it == observed.end()) {
      if (!present_by_default) {
        entry.health = api::GpuHealth::kUnhealthy;
        entry.message = "GPU gone: not listed by nvidia-smi";
      }
    } else if (!it->second.present) {
      entry.health = api::GpuHealth::kUnhealthy;
      entry.message = "GPU gone";
    } else if (it->second.xid) {
      entry.health = api::GpuHealth::kUnhealthy;
      entry.xid = it->second.xid;
      entry.message = "XID " + std::to_string(*it->second.xid);
    } else if (it->second.ecc_uncorrected > 0) {
      entry.health = api::GpuHealth::kUnhealthy;
      entry.message =
          std::to_string(it->second.ecc_uncorrected) + " uncorrected ECC errors (volatile)";
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

Result<GpuInventory> DiscoverNvidiaGpus(const std::string& nvidia_smi) {
  ASSIGN_OR_RETURN(std::string query,
                   RunCommand({nvidia_smi, "--query-gpu=index,uuid,name,memory.total,pci.bus_id",
                               "--format=csv,noheader,nounits"}));
  ASSIGN_OR_RETURN(GpuInventory inventory, ParseGpuQuery(query));
  ASSIGN_OR_RETURN(std::string topo, RunCommand({nvidia_smi, "topo", "-m"}));
  ASSIGN_OR_RETURN(inventory.nvlink_pairs, ParseTopologyMatrix(topo));
  return inventory;
}

Result<std::vector<api::GpuHealthEntry>> CheckGpuHealth(const config::GpuConfig& config,
                                                        const GpuInventory& inventory) {
  if (config.discovery == config::GpuDiscovery::kFake) {
    std::map<int32_t, GpuObservation> observed;
    if (!config.fake.fault_file.empty()) {
      std::ifstream in(config.fake.fault_file);
      if (in) {
        std::stringstream ss;
        ss << in.rdbuf();
        ASSIGN_OR_RETURN(observed, ParseFaultFile(ss.str()));
      }
    }
    return EvaluateHealth(inventory, observed, /*present_by_default=*/true);
  }
  ASSIGN_OR_RETURN(
      std::string csv,
      RunCommand({config.nvidia_smi, "--query-gpu=index,ecc.errors.uncorrected.volatile.total",
                  "--format=csv,noheader,nounits"}));
  ASSIGN_OR_RETURN(auto observed, ParseHealthQuery(csv));
  return EvaluateHealth(inventory, observed, /*present_by_default=*/false);
}

}  // namespace gsched::worker
