#include "scheduler/common/quantity.h"

#include <gtest/gtest.h>

#include "scheduler/common/clock.h"

namespace gsched {
namespace {

int64_t Secs(std::string_view text) {
  auto d = ParseDuration(text);
  EXPECT_TRUE(d.ok()) << text << ": " << d.status().ToString();
  return d.ok() ? d->count() / 1000 : -1;
}

int64_t SlurmSecs(std::string_view text) {
  auto d = ParseSlurmTime(text);
  EXPECT_TRUE(d.ok()) << text << ": " << d.status().ToString();
  return d.ok() ? d->count() / 1000 : -1;
}

TEST(DurationTest, UnitsAndBareSeconds) {
  EXPECT_EQ(Secs("3600"), 3600);
  EXPECT_EQ(Secs("90s"), 90);
  EXPECT_EQ(Secs("90m"), 5400);
  EXPECT_EQ(Secs("4h"), 14400);
  EXPECT_EQ(Secs("7d"), 604800);
  EXPECT_EQ(Secs("1w"), 604800);
  // 1h30m = 3600 + 1800.
  EXPECT_EQ(Secs("1h30m"), 5400);
  EXPECT_EQ(ParseDuration("250ms")->count(), 250);
}

TEST(DurationTest, SlurmColonForms) {
  EXPECT_EQ(Secs("05:30"), 330);          // MM:SS
  EXPECT_EQ(Secs("02:00:00"), 7200);      // HH:MM:SS
  EXPECT_EQ(Secs("1-12"), 129600);        // D-HH: 86400 + 12 * 3600
  EXPECT_EQ(Secs("1-12:30"), 131400);     // D-HH:MM: 129600 + 1800
  EXPECT_EQ(Secs("1-12:00:00"), 129600);  // D-HH:MM:SS
  EXPECT_EQ(Secs("0-00:00:01"), 1);
}

TEST(DurationTest, SlurmBareNumberIsMinutes) {
  EXPECT_EQ(SlurmSecs("30"), 1800);
  EXPECT_EQ(SlurmSecs("30:00"), 1800);
  EXPECT_EQ(SlurmSecs("2-00"), 172800);
  EXPECT_EQ(SlurmSecs("4h"), 14400);
}

TEST(DurationTest, RejectsNonsense) {
  for (std::string_view bad :
       {"", "-5", "4x", "h", "1:2:3:4", "1-2-3", "10:60", "1:00:60", "1-24:60", " 5", "5 ",
        "99999999999999999999", "1e5", "4.5h", "1h-2m", "2000000d"}) {
    auto d = ParseDuration(bad);
    EXPECT_FALSE(d.ok()) << "accepted '" << bad << "'";
    if (!d.ok()) {
      EXPECT_NE(d.status().message().find("invalid duration"), std::string::npos);
    }
  }
}

TEST(DurationTest, FormatIsShortAndExact) {
  EXPECT_EQ(FormatDuration(Seconds(0)), "0s");
  EXPECT_EQ(FormatDuration(Seconds(5400)), "1h30m");
  EXPECT_EQ(FormatDuration(Seconds(129600)), "1d12h");
  EXPECT_EQ(FormatDuration(Duration(1500)), "1s500ms");
  // Round trip: what we print, we read back.
  for (int64_t s : {1, 59, 61, 3599, 3601, 86399, 86401, 1234567}) {
    EXPECT_EQ(Secs(FormatDuration(Seconds(s))), s);
  }
}

TEST(SizeTest, UnitsInMiB) {
  EXPECT_EQ(*ParseSizeMiB("512"), 512);
  EXPECT_EQ(*ParseSizeMiB("512M"), 512);
  EXPECT_EQ(*ParseSizeMiB("16G"), 16384);
  EXPECT_EQ(*ParseSizeMiB("16GiB"), 16384);
  EXPECT_EQ(*ParseSizeMiB("16gb"), 16384);
  EXPECT_EQ(*ParseSizeMiB("2T"), 2 * 1024 * 1024);
  EXPECT_EQ(*ParseSizeMiB("2048K"), 2);
  for (std::string_view bad : {"", "-1", "1.5G", "16Q", "1000K", "G", "99999999999999999T"}) {
    EXPECT_FALSE(ParseSizeMiB(bad).ok()) << "accepted '" << bad << "'";
  }
}

TEST(TimestampTest, RoundTripsRfc3339) {
  Timestamp t = FromUnixMillis(1'795'456'530'123);
  std::string text = FormatTimestamp(t);
  EXPECT_EQ(text, "2026-11-23T17:55:30.123Z");
  EXPECT_EQ(*ParseTimestamp(text), t);
}

TEST(TimestampTest, DatesOffsetsAndFractions) {
  EXPECT_EQ(ToUnixSeconds(*ParseTimestamp("1970-01-02")), 86400);
  EXPECT_EQ(ToUnixSeconds(*ParseTimestamp("2027-01-01T00:00:00Z")), 1798761600);
  // 09:00 at +09:00 is midnight UTC.
  EXPECT_EQ(*ParseTimestamp("2027-01-01T09:00:00+09:00"), *ParseTimestamp("2027-01-01"));
  EXPECT_EQ(ToUnixMillis(*ParseTimestamp("1970-01-01T00:00:01.5Z")), 1500);
  for (std::string_view bad : {"2027-13-01", "2027-02-30", "2027-01-01T25:00:00Z", "yesterday",
                               "2027-01-01T00:00:00", "2027-01-01T00:00:00+9"}) {
    EXPECT_FALSE(ParseTimestamp(bad).ok()) << "accepted '" << bad << "'";
  }
}

TEST(ClockTest, ManualClockMovesOnlyWhenTold) {
  ManualClock clock(FromUnixSeconds(100));
  EXPECT_EQ(ToUnixSeconds(clock.Now()), 100);
  clock.Advance(Seconds(5));
  EXPECT_EQ(ToUnixSeconds(clock.Now()), 105);
  clock.Set(FromUnixSeconds(7));
  EXPECT_EQ(ToUnixSeconds(clock.Now()), 7);
}

}  // namespace
}  // namespace gsched
