#include "config/gpu_types.h"

#include <algorithm>

#include "config/yaml_reader.h"

namespace gsched::config {

std::vector<GpuTypeSpec> DefaultGpuTypes() {
  return {
      {"b200", 2.0, 184320},
      {"h200", 1.2, 143360},
      {"h100", 1.0, 81920},
      {"rtx-pro-6000", 0.5, 98304},
  };
}

const GpuTypeSpec* FindGpuType(const std::vector<GpuTypeSpec>& types, std::string_view name) {
  auto it = std::find_if(types.begin(), types.end(),
                         [&](const GpuTypeSpec& t) { return t.name == name; });
  return it == types.end() ? nullptr : &*it;
}

std::vector<GpuTypeSpec> ReadGpuTypes(const YamlValue& value) {
  if (!value.present())
    return DefaultGpuTypes();
  constexpr size_t kMaxGpuTypes = 64;
  std::vector<YamlValue> items = value.List(kMaxGpuTypes);
  if (value.node().IsSequence() && value.node().size() == 0)
    value.Error("must list at least one GPU type");
  std::vector<GpuTypeSpec> types;
  std::vector<std::string> item_paths;  // Parallel to `types`, for duplicate errors.
  for (const YamlValue& item : items) {
    YamlMap m = item.Map();
    GpuTypeSpec t;
    auto name = m.Required("name").Name();
    t.cost = m.Required("cost").Double(0.0, 1000.0, /*min_exclusive=*/true).value_or(1.0);
    t.memory_mib = m.Get("memory_mib").SizeMiB(1, int64_t{1} << 30);
    if (!name)
      continue;
    if (const GpuTypeSpec* first = FindGpuType(types, *name)) {
      m.Get("name").Error("duplicate GPU type '" + *name + "' (also " +
                          item_paths[static_cast<size_t>(first - types.data())] + ")");
      continue;
    }
    t.name = std::move(*name);
    types.push_back(std::move(t));
    item_paths.push_back(item.path());
  }
  return types;
}

}  // namespace gsched::config
