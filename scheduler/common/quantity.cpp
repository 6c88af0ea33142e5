#include "scheduler/common/quantity.h"

#include <array>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <limits>
#include <vector>

namespace gsched {
namespace {

constexpr int64_t kMaxSeconds = int64_t{100} * 365 * 24 * 3600;

// Parses a non-empty run of decimal digits; rejects signs, spaces and values past `max`.
bool ParseDigits(std::string_view s, int64_t max, int64_t* out) {
  if (s.empty() || s.size() > 18)
    return false;
  for (char c : s) {
    if (c < '0' || c > '9')
      return false;
  }
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v > max)
    return false;
  *out = v;
  return true;
}

Status BadDuration(std::string_view text) {
  return Status::InvalidArgument("invalid duration '" + std::string(text) +
                                 "': use seconds, units (90m, 4h, 1h30m, 7d) or D-HH:MM:SS");
}

// Slurm colon forms. `bare_unit` is the meaning of a lone integer (seconds or minutes).
Result<Duration> ParseColonForm(std::string_view text, int64_t bare_unit_s) {
  int64_t days = 0;
  std::string_view rest = text;
  bool has_days = false;
  if (auto dash = rest.find('-'); dash != std::string_view::npos) {
    if (!ParseDigits(rest.substr(0, dash), 36500, &days))
      return BadDuration(text);
    rest = rest.substr(dash + 1);
    has_days = true;
  }
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t colon = rest.find(':', start);
    parts.push_back(
        rest.substr(start, colon == std::string_view::npos ? rest.npos : colon - start));
    if (colon == std::string_view::npos)
      break;
    start = colon + 1;
  }
  if (parts.size() > 3)
    return BadDuration(text);
  std::array<int64_t, 3> v{};
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!ParseDigits(parts[i], kMaxSeconds, &v[i]))
      return BadDuration(text);
  }
  int64_t total = 0;
  if (has_days) {
    // D-HH, D-HH:MM, D-HH:MM:SS.
    int64_t h = v[0], m = parts.size() > 1 ? v[1] : 0, s = parts.size() > 2 ? v[2] : 0;
    if (m >= 60 || s >= 60)
      return BadDuration(text);
    total = days * 86400 + h * 3600 + m * 60 + s;
  } else if (parts.size() == 1) {
    total = v[0] * bare_unit_s;
  } else if (parts.size() == 2) {
    // MM:SS.
    if (v[1] >= 60)
      return BadDuration(text);
    total = v[0] * 60 + v[1];
  } else {
    // HH:MM:SS.
    if (v[1] >= 60 || v[2] >= 60)
      return BadDuration(text);
    total = v[0] * 3600 + v[1] * 60 + v[2];
  }
  if (total < 0 || total > kMaxSeconds)
    return BadDuration(text);
  return Duration(total * 1000);
}

// "1h30m", "250ms", "7d".
Result<Duration> ParseUnitForm(std::string_view text) {
  int64_t total_ms = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t digits_end = i;
    while (digits_end < text.size() && text[digits_end] >= '0' && text[digits_end] <= '9') {
      ++digits_end;
    }
    size_t unit_end = digits_end;
    while (unit_end < text.size() && (text[unit_end] < '0' || text[unit_end] > '9'))
      ++unit_end;
    int64_t n = 0;
    if (!ParseDigits(text.substr(i, digits_end - i), kMaxSeconds * 1000, &n)) {
      return BadDuration(text);
    }
    std::string_view unit = text.substr(digits_end, unit_end - digits_end);
    int64_t unit_ms = 0;
    if (unit == "ms") {
      unit_ms = 1;
    } else if (unit == "s") {
      unit_ms = 1000;
    } else if (unit == "m" || unit == "min") {
      unit_ms = 60'000;
    } else if (unit == "h") {
      unit_ms = 3'600'000;
    } else if (unit == "d") {
      unit_ms = 86'400'000;
    } else if (unit == "w") {
      unit_ms = 7 * 86'400'000LL;
    } else {
      return BadDuration(text);
    }
    if (n > kMaxSeconds * 1000 / unit_ms)
      return BadDuration(text);
    total_ms += n * unit_ms;
    if (total_ms > kMaxSeconds * 1000)
      return BadDuration(text);
    i = unit_end;
  }
  return Duration(total_ms);
}

Result<Duration> ParseDurationWithBareUnit(std::string_view text, int64_t bare_unit_s) {
  if (text.empty() || text.size() > 32)
    return BadDuration(text);
  bool has_letter = false;
  for (char c : text) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
      has_letter = true;
  }
  if (has_letter)
    return ParseUnitForm(text);
  return ParseColonForm(text, bare_unit_s);
}

}  // namespace

Result<Duration> ParseDuration(std::string_view text) {
  return ParseDurationWithBareUnit(text, 1);
}

Result<Duration> ParseSlurmTime(std::string_view text) {
  return ParseDurationWithBareUnit(text, 60);
}

std::string FormatDuration(Duration d) {
  int64_t ms = d.count();
  if (ms == 0)
    return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  constexpr std::array<std::pair<int64_t, const char*>, 5> kUnits{
      {{86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}, {1, "ms"}}};
  for (auto [unit_ms, name] : kUnits) {
    if (ms >= unit_ms) {
      out += std::to_string(ms / unit_ms);
      out += name;
      ms %= unit_ms;
    }
  }
  return out;
}

Result<int64_t> ParseSizeMiB(std::string_view text) {
  auto bad = [&] {
    return Status::InvalidArgument("invalid size '" + std::string(text) +
                                   "': use MiB or a unit (512M, 16G, 1T)");
  };
  if (text.empty() || text.size() > 32)
    return bad();
  size_t digits_end = 0;
  while (digits_end < text.size() && text[digits_end] >= '0' && text[digits_end] <= '9') {
    ++digits_end;
  }
  int64_t n = 0;
  constexpr int64_t kMaxMiB = int64_t{1} << 40;  // 1 EiB: more than any node will have.
  if (!ParseDigits(text.substr(0, digits_end), std::numeric_limits<int64_t>::max() / 2, &n)) {
    return bad();
  }
  std::string unit(text.substr(digits_end));
  for (char& c : unit)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() >= 2 && unit.back() == 'B')
    unit.pop_back();
  if (unit.size() == 2 && unit.back() == 'I')
    unit.pop_back();
  int64_t mib = 0;
  if (unit.empty() || unit == "M") {
    mib = n;
  } else if (unit == "K") {
    if (n % 1024 != 0)
      return bad();
    mib = n / 1024;
  } else if (unit == "G") {
    if (n > kMaxMiB / 1024)
      return bad();
    mib = n * 1024;
  } else if (unit == "T") {
    if (n > kMaxMiB / (1024 * 1024))
      return bad();
    mib = n * 1024 * 1024;
  } else {
    return bad();
  }
  if (mib > kMaxMiB)
    return bad();
  return mib;
}

std::string FormatTimestamp(Timestamp t) {
  auto day = std::chrono::floor<std::chrono::days>(t);
  std::chrono::year_month_day ymd(day);
  auto time = t - day;
  int64_t ms = time.count();
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<long long>(ms / 3'600'000),
                static_cast<long long>(ms / 60'000 % 60), static_cast<long long>(ms / 1000 % 60),
                static_cast<long long>(ms % 1000));
  return buf;
}

Result<Timestamp> ParseTimestamp(std::string_view text) {
  auto bad = [&] {
    return Status::InvalidArgument("invalid time '" + std::string(text) +
                                   "': use RFC 3339 (2027-01-01T00:00:00Z) or a date (2027-01-01)");
  };
  if (text.size() < 10 || text.size() > 40)
    return bad();
  int64_t y = 0, mo = 0, d = 0;
  if (!ParseDigits(text.substr(0, 4), 9999, &y) || text[4] != '-' ||
      !ParseDigits(text.substr(5, 2), 12, &mo) || text[7] != '-' ||
      !ParseDigits(text.substr(8, 2), 31, &d)) {
    return bad();
  }
  std::chrono::year_month_day ymd{std::chrono::year(static_cast<int>(y)),
                                  std::chrono::month(static_cast<unsigned>(mo)),
                                  std::chrono::day(static_cast<unsigned>(d))};
  if (!ymd.ok() || y < 1970)
    return bad();
  Timestamp t = std::chrono::time_point_cast<Duration>(std::chrono::sys_days(ymd));
  if (text.size() == 10)
    return t;
  if (text[10] != 'T' && text[10] != 't' && text[10] != ' ')
    return bad();
  int64_t h = 0, mi = 0, s = 0;
  if (text.size() < 19 || !ParseDigits(text.substr(11, 2), 23, &h) || text[13] != ':' ||
      !ParseDigits(text.substr(14, 2), 59, &mi) || text[16] != ':' ||
      !ParseDigits(text.substr(17, 2), 60, &s)) {
    return bad();
  }
  t += std::chrono::hours(h) + std::chrono::minutes(mi) + std::chrono::seconds(s);
  std::string_view rest = text.substr(19);
  if (!rest.empty() && rest.front() == '.') {
    size_t n = 1;
    int64_t frac_ms = 0, scale = 100;
    while (n < rest.size() && rest[n] >= '0' && rest[n] <= '9') {
      frac_ms += (rest[n] - '0') * scale;
      scale /= 10;
      ++n;
    }
    if (n == 1)
      return bad();
    t += Duration(frac_ms);
    rest = rest.substr(n);
  }
  if (rest == "Z" || rest == "z")
    return t;
  if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    int64_t oh = 0, om = 0;
    if (!ParseDigits(rest.substr(1, 2), 23, &oh) || !ParseDigits(rest.substr(4, 2), 59, &om)) {
      return bad();
    }
    auto offset = std::chrono::hours(oh) + std::chrono::minutes(om);
    return rest[0] == '+' ? t - offset : t + offset;
  }
  return bad();
}

}  // namespace gsched
