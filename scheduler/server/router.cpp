#include "scheduler/server/router.h"

namespace gsched::server {

std::vector<std::string_view> PathSegments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/')
      ++i;
    size_t j = path.find('/', i);
    if (j == std::string_view::npos)
      j = path.size();
    if (j > i)
      out.push_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string_view RouteParams::Get(std::string_view name) const {
  for (const auto& [k, v] : values_) {
    if (k == name)
      return v;
  }
  return {};
}

}  // namespace gsched::server
