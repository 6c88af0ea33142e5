// Job arrays: the `array` field of a `JobSpec` ("0-999%50") parsed into the list of indices and the
// throttle. The scheduler expands an array job into one job per index when it is submitted; the
// throttle bounds how many of them run at once.
//
// Syntax (Slurm's `--array`): comma-separated parts, each `N`, `N-M` or `N-M:S` (every S-th index
// from N to M), optionally followed by `%K` (at most K running at once). Indices are 0..9,999,999.
// The parts together may name at most `kMaxArrayIndices` indices, counting overlaps twice, so that
// the limit can be checked without expanding anything.
//
// Threading: stateless.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "scheduler/common/status.h"

namespace gsched::api {

inline constexpr size_t kMaxArrayIndices = 100'000;
inline constexpr uint32_t kMaxArrayIndex = 9'999'999;

struct ArraySpec {
  // Ascending, without repeats ("1-3,2" gives 1, 2, 3).
  std::vector<uint32_t> indices;
  // At most this many elements run at once; absent means no limit.
  std::optional<uint32_t> max_concurrent;

  friend bool operator==(const ArraySpec&, const ArraySpec&) = default;
};

Result<ArraySpec> ParseArraySpec(std::string_view text);

// The same checks as `ParseArraySpec` without expanding the indices: cheap enough for every spec of
// a 10,000-job batch.
Status ValidateArraySpec(std::string_view text);

}  // namespace gsched::api
