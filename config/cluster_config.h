// `ClusterConfig`: a virtual cluster described in `cluster-*.yaml`, used by `gsched-sim`, the
// benchmarks and `gsched-worker --simulate` (DESIGN.md sections 2, 8 and 10).
//
// The file lists sites, their blocks, and in each block node groups in a compact form:
//
//   sites:
//     - name: nacc
//       blocks:
//         - name: b00
//           nodes:
//             - {count: 18, name: "nacc-{block}-n{index:02}", gpu_type: b200, gpus: 8,
//                cpus: 112, memory: 2T, labels: {fabric: nvl72}}
//             - {name: nacc-login-gpu, gpu_type: h100, gpus: 8, cpus: 64, memory: 1T}
//
// A group with `count` expands to `count` nodes whose `name` pattern may use `{index}` (from
// `first_index`, default 0), `{index:0N}` (zero-padded to N digits), `{block}` and `{site}`; a
// group without `count` is one node. The loader expands everything into a flat list of `NodeSpec`s
// in file order.
//
// Invariants of a loaded config:
//   - node names are unique across the whole cluster; site names are unique; block names are
//     unique within their site;
//   - every node's `gpu_type` is one of `gpu_types`; `gpus` is 0..64, `cpus` 1..65536,
//     `memory_mib` 1 MiB..64 TiB;
//   - `sites` is not empty and lists sites and blocks in file order.
//
// Threading: the loaders are reentrant (no globals); a loaded config is a plain value, safe to
// share as `const` between threads.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/gpu_types.h"
#include "scheduler/common/status.h"

namespace gsched::config {

struct NodeSpec {
  std::string name;
  std::string site;
  std::string block;
  std::string gpu_type;
  int64_t gpus = 0;
  int64_t cpus = 0;
  int64_t memory_mib = 0;
  std::map<std::string, std::string> labels;

  friend bool operator==(const NodeSpec&, const NodeSpec&) = default;
};

struct BlockSpec {
  std::string name;
  // Number of nodes in the block (they are contiguous in `ClusterConfig::nodes`).
  size_t node_count = 0;
};

struct SiteSpec {
  std::string name;
  std::vector<BlockSpec> blocks;
};

struct ClusterConfig {
  std::vector<GpuTypeSpec> gpu_types = DefaultGpuTypes();
  std::vector<SiteSpec> sites;
  // Every node, expanded, in file order (site by site, block by block).
  std::vector<NodeSpec> nodes;

  int64_t TotalGpus() const;
  // GPU type name -> number of GPUs.
  std::map<std::string, int64_t> GpusByType() const;
};

// Most nodes a cluster file may describe.
inline constexpr int64_t kMaxClusterNodes = 1'000'000;

// Loads `path`.
Result<ClusterConfig> LoadClusterConfig(const std::string& path);
// Parses YAML text; `source_name` names it in syntax errors.
Result<ClusterConfig> ParseClusterConfig(std::string_view yaml_text, std::string_view source_name);

}  // namespace gsched::config
