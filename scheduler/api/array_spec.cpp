#include "scheduler/api/array_spec.h"

#include <algorithm>
#include <string>

namespace gsched::api {
namespace {

Status Bad(std::string_view text, std::string_view why) {
  std::string shown(text.substr(0, 64));
  return Status::InvalidArgument("invalid array '" + shown + "': " + std::string(why) +
                                 " (use e.g. 0-99, 1,3,5-7, 0-15:4 or 0-999%50)");
}

// A run of 1..8 decimal digits.
std::optional<uint32_t> ParseNumber(std::string_view s) {
  if (s.empty() || s.size() > 8)
    return std::nullopt;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return std::nullopt;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  return v;
}

// Parses `text`; appends the indices to `spec.indices` only when `expand`.
Result<ArraySpec> Parse(std::string_view text, bool expand) {
  if (text.empty())
    return Bad(text, "empty");
  if (text.size() > 4096)
    return Bad(text, "longer than 4096 characters");
  ArraySpec spec;
  std::string_view list = text;
  if (size_t percent = text.find('%'); percent != std::string_view::npos) {
    std::optional<uint32_t> k = ParseNumber(text.substr(percent + 1));
    if (!k || *k < 1 || *k > kMaxArrayIndices)
      return Bad(text, "the limit after % must be 1..100000");
    spec.max_concurrent = *k;
    list = text.substr(0, percent);
  }
  std::vector<uint32_t>& out = spec.indices;
  size_t total = 0;
  size_t start = 0;
  while (true) {
    size_t comma = list.find(',', start);
    std::string_view part = list.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    uint32_t step = 1;
    if (size_t colon = part.find(':'); colon != std::string_view::npos) {
      std::optional<uint32_t> s = ParseNumber(part.substr(colon + 1));
      if (!s || *s < 1)
        return Bad(text, "a step must be a positive integer");
      step = *s;
      part = part.substr(0, colon);
      if (part.find('-') == std::string_view::npos)
        return Bad(text, "a step needs a range");
    }
    std::optional<uint32_t> first, last;
    if (size_t dash = part.find('-'); dash != std::string_view::npos) {
      first = ParseNumber(part.substr(0, dash));
      last = ParseNumber(part.substr(dash + 1));
    } else {
      first = last = ParseNumber(part);
    }
    if (!first || !last)
      return Bad(text, "expected an index or a range N-M");
    if (*first > kMaxArrayIndex || *last > kMaxArrayIndex)
      return Bad(text, "indices must be 0..9999999");
    if (*last < *first)
      return Bad(text, "a range must not end before it starts");
    // Count before expanding, so that "0-9999999" is refused without allocating.
    size_t count = (*last - *first) / step + 1;
    total += count;
    if (total > kMaxArrayIndices)
      return Bad(text, "more than 100000 indices");
    for (uint32_t i = *first; expand && i <= *last; i += step) {
      out.push_back(i);
      if (*last - i < step)
        break;
    }
    if (comma == std::string_view::npos)
      break;
    start = comma + 1;
  }
  if (!std::is_sorted(out.begin(), out.end())) {
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }
  return spec;
}

}  // namespace

Result<ArraySpec> ParseArraySpec(std::string_view text) {
  return Parse(text, true);
}

Status ValidateArraySpec(std::string_view text) {
  return Parse(text, false).status();
}

}  // namespace gsched::api
