// Small text helpers shared by the API decoders and the config reader.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace gsched {

// Optimal-string-alignment distance: insertions, deletions, substitutions and transpositions of
// neighbours ("cuont" -> "count") each cost 1. What every "did you mean" measures with.
size_t EditDistance(std::string_view a, std::string_view b);

// The items of a comma-separated list, each with the blanks around it removed: "a, b" -> {a, b}.
// Empty items are kept ("a,,b" has three), so that a caller can say which one is wrong; an empty or
// blank `text` gives none.
std::vector<std::string> SplitList(std::string_view text, char separator = ',');

}  // namespace gsched
