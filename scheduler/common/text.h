// Small text helpers shared by the API decoders, the config reader, tokens and the etcd client.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "scheduler/common/status.h"

namespace gsched {

// Optimal-string-alignment distance: insertions, deletions, substitutions and transpositions of
// neighbours ("cuont" -> "count") each cost 1. What every "did you mean" measures with.
size_t EditDistance(std::string_view a, std::string_view b);

// Base64 (RFC 4648 section 4), padded with '='. Decoding takes padded or unpadded text.
std::string Base64Encode(std::string_view data);
Result<std::string> Base64Decode(std::string_view text);
// Base64url (RFC 4648 section 5), unpadded: what tokens are made of.
std::string Base64UrlEncode(std::string_view data);
Result<std::string> Base64UrlDecode(std::string_view text);

// The items of a comma-separated list, each with the blanks around it removed: "a, b" -> {a, b}.
// Empty items are kept ("a,,b" has three), so that a caller can say which one is wrong; an empty or
// blank `text` gives none.
std::vector<std::string> SplitList(std::string_view text, char separator = ',');

}  // namespace gsched
