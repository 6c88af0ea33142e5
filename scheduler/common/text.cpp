#include "scheduler/common/text.h"

#include <algorithm>
#include <vector>

namespace gsched {

size_t EditDistance(std::string_view a, std::string_view b) {
  // Three rows of the table: the one before last (for transpositions), the last, this one.
  std::vector<size_t> before(b.size() + 1), last(b.size() + 1), row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    last[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      row[j] = std::min({last[j] + 1, row[j - 1] + 1, last[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        row[j] = std::min(row[j], before[j - 2] + 1);
    }
    std::swap(before, last);
    std::swap(last, row);
  }
  return last[b.size()];
}

std::vector<std::string> SplitList(std::string_view text, char separator) {
  auto trim = [](std::string_view s) {
    size_t first = s.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos)
      return std::string_view();
    size_t last = s.find_last_not_of(" \t\r\n");
    return s.substr(first, last - first + 1);
  };
  std::vector<std::string> items;
  if (trim(text).empty())
    return items;
  size_t start = 0;
  while (true) {
    size_t end = text.find(separator, start);
    items.emplace_back(trim(text.substr(start, end == std::string_view::npos ? end : end - start)));
    if (end == std::string_view::npos)
      break;
    start = end + 1;
  }
  return items;
}

}  // namespace gsched
