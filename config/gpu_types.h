// GPU types and their cost rates (DESIGN.md section 2), shared by `scheduler.yaml` and the cluster
// files. The cost rate normalises GPU-hours for fair-share usage, budgets and reports: one hour on
// a GPU of cost 2.0 counts as two normalised GPU-hours.
//
// The public config headers (`scheduler_config.h`, `cluster_config.h`, ...) do not include
// yaml-cpp.
//
// Invariants of a loaded list: names are unique and valid (`IsValidName`), costs are > 0 and
// finite, `memory_mib` when set is > 0. Plain values; no threading concerns.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gsched::config {

// Defined in `config/yaml_reader.h`; forward-declared so that the config structs can be used
// without yaml-cpp's headers.
class YamlValue;

struct GpuTypeSpec {
  std::string name;
  // Normalised GPU-hours per GPU-hour.
  double cost = 1.0;
  // Memory of one GPU, informational (reports, the dashboard).
  std::optional<int64_t> memory_mib;

  friend bool operator==(const GpuTypeSpec&, const GpuTypeSpec&) = default;
};

// b200 2.0, h200 1.2, h100 1.0, rtx-pro-6000 0.5.
std::vector<GpuTypeSpec> DefaultGpuTypes();

// The type named `name`, or nullptr.
const GpuTypeSpec* FindGpuType(const std::vector<GpuTypeSpec>& types, std::string_view name);

// Reads a `gpu_types` list: `[{name, cost, memory_mib}]`. An absent value gives the defaults; an
// empty list is an error (nothing could ever be scheduled).
std::vector<GpuTypeSpec> ReadGpuTypes(const YamlValue& value);

}  // namespace gsched::config
