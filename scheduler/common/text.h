// Small text helpers shared by the API decoders and the config reader.
#pragma once

#include <cstddef>
#include <string_view>

namespace gsched {

// Optimal-string-alignment distance: insertions, deletions, substitutions and transpositions of
// neighbours ("cuont" -> "count") each cost 1. What every "did you mean" measures with.
size_t EditDistance(std::string_view a, std::string_view b);

}  // namespace gsched
