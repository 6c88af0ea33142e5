#include "scheduler/common/text.h"

#include <algorithm>
#include <array>
#include <cstdint>
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

namespace {

constexpr std::string_view kStandard =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kUrl =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Encode(std::string_view data, std::string_view alphabet, bool pad) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(data[k])); };
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    for (int s = 18; s >= 0; s -= 6)
      out += alphabet[(v >> s) & 63];
  }
  if (size_t rest = data.size() - i; rest > 0) {
    uint32_t v = byte(i) << 16;
    if (rest == 2)
      v |= byte(i + 1) << 8;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (rest == 2)
      out += alphabet[(v >> 6) & 63];
    if (pad)
      out.append(3 - rest, '=');
  }
  return out;
}

Result<std::string> Decode(std::string_view text, std::string_view alphabet, bool allow_pad) {
  std::string_view name = alphabet == kUrl ? "base64url" : "base64";
  if (allow_pad && text.size() % 4 == 0) {
    for (int k = 0; k < 2 && text.ends_with('='); ++k)
      text.remove_suffix(1);
  }
  if (text.size() % 4 == 1)
    return Status::InvalidArgument("bad " + std::string(name) + " length");
  std::array<int8_t, 256> table;
  table.fill(-1);
  for (size_t k = 0; k < 64; ++k)
    table[static_cast<uint8_t>(alphabet[k])] = static_cast<int8_t>(k);
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int8_t v = table[static_cast<uint8_t>(c)];
    if (v < 0)
      return Status::InvalidArgument("bad " + std::string(name) + " character");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

}  // namespace

std::string Base64Encode(std::string_view data) {
  return Encode(data, kStandard, true);
}
Result<std::string> Base64Decode(std::string_view text) {
  return Decode(text, kStandard, true);
}
std::string Base64UrlEncode(std::string_view data) {
  return Encode(data, kUrl, false);
}
Result<std::string> Base64UrlDecode(std::string_view text) {
  return Decode(text, kUrl, false);
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
