#include "client/output.h"

#include <algorithm>
#include <ctime>

namespace gsched::client {

void Table::Print(std::ostream& out) const {
  std::vector<size_t> widths(headers_.size());
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i)
      widths[i] = std::max(widths[i], row[i].size());
  };
  measure(headers_);
  for (const auto& row : rows_)
    measure(row);
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < widths.size(); ++i) {
      const std::string cell = i < row.size() ? row[i] : "";
      line += cell;
      if (i + 1 < widths.size())
        line += std::string(widths[i] - cell.size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ')
      line.pop_back();
    out << line << "\n";
  };
  print(headers_);
  for (const auto& row : rows_)
    print(row);
}

std::string HumanDuration(Duration d) {
  int64_t s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (s < 0)
    s = -s;
  if (s < 60)
    return std::to_string(s) + "s";
  int64_t m = s / 60;
  if (m < 60)
    return std::to_string(m) + "m";
  int64_t h = m / 60;
  if (h < 24)
    return std::to_string(h) + "h" + (m % 60 ? std::to_string(m % 60) + "m" : "");
  int64_t days = h / 24;
  return std::to_string(days) + "d" + (h % 24 ? std::to_string(h % 24) + "h" : "");
}

std::string Relative(Timestamp t, Timestamp now) {
  Duration d = t - now;
  if (std::chrono::abs(d) < Seconds(1))
    return "now";
  return d < Duration(0) ? HumanDuration(d) + " ago" : "in " + HumanDuration(d);
}

std::string Absolute(Timestamp t) {
  std::time_t secs = ToUnixSeconds(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

std::string RelativeAndAbsolute(Timestamp t, Timestamp now) {
  return Relative(t, now) + " (" + Absolute(t) + ")";
}

}  // namespace gsched::client
