// Parsing and printing of the quantities people type: durations ("4h", "90m", "1-12:00:00"),
// sizes ("16G", "512MiB") and timestamps (RFC 3339, or a plain date for budget periods). Every
// decoder of gsched - JSON, YAML, CLI flags, `#SBATCH` lines - goes through these, so that a
// duration means the same thing everywhere.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "scheduler/common/clock.h"
#include "scheduler/common/status.h"

namespace gsched {

// Accepts:
//   - a bare integer: seconds ("3600");
//   - integers with units, summed: "90s", "90m", "4h", "7d", "1w", "1h30m", "250ms";
//   - Slurm's colon forms: "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS".
// Rejects negative, empty and overflowing values. The result is at most 100 years.
Result<Duration> ParseDuration(std::string_view text);

// Slurm's `--time` formats, where a bare integer means minutes: "MM", "MM:SS", "HH:MM:SS", "D-HH",
// "D-HH:MM", "D-HH:MM:SS". Unit suffixes ("4h") are accepted too.
Result<Duration> ParseSlurmTime(std::string_view text);

// Shortest exact form with units: 5400 s -> "1h30m", 0 -> "0s", 1500 ms -> "1s500ms".
std::string FormatDuration(Duration d);

// Memory size in MiB: a bare integer is MiB; suffixes K/M/G/T with optional "i" and "B"
// ("16G", "16GiB", "512M", "1T"). Kilobytes must come to whole MiB.
Result<int64_t> ParseSizeMiB(std::string_view text);

// RFC 3339 in UTC with milliseconds: "2026-11-23T17:55:30.123Z".
std::string FormatTimestamp(Timestamp t);
// Accepts RFC 3339 ("2026-11-23T17:55:30Z", fractional seconds, "+09:00" offsets) and a plain date
// ("2027-01-01", meaning midnight UTC).
Result<Timestamp> ParseTimestamp(std::string_view text);

}  // namespace gsched
