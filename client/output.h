// What people read: aligned tables and times as "5m ago" / "in 2h10m" with an absolute form where
// it matters ("2026-11-23 20:05 UTC"). No colours, no external table library; column widths come
// from the content.
//
// Threading: stateless.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "scheduler/common/clock.h"

namespace gsched::client {

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  size_t size() const { return rows_.size(); }
  // Columns separated by two spaces; the last column is not padded; no trailing spaces.
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// A coarse duration for people: "45s", "5m", "2h10m", "3d4h".
std::string HumanDuration(Duration d);
// "5m ago", "in 2h10m", "now".
std::string Relative(Timestamp t, Timestamp now);
// "2026-11-23 20:05 UTC".
std::string Absolute(Timestamp t);
// "in 2h10m (2026-11-23 20:05 UTC)".
std::string RelativeAndAbsolute(Timestamp t, Timestamp now);

}  // namespace gsched::client
