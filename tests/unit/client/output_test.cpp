// Tables and human times.
#include "client/output.h"

#include <gtest/gtest.h>

#include <sstream>

namespace gsched::client {
namespace {

TEST(Output, TableColumnsFitTheirWidestCell) {
  Table t({"ID", "NAME", "STATE"});
  t.AddRow({"1", "a-long-name", "running"});
  t.AddRow({"12345", "b", ""});
  std::ostringstream out;
  t.Print(out);
  // Widths: ID = 5 ("12345"), NAME = 11; two spaces between; no trailing spaces.
  EXPECT_EQ(out.str(),
            "ID     NAME         STATE\n"
            "1      a-long-name  running\n"
            "12345  b\n");
}

TEST(Output, HumanDurationsAreCoarse) {
  EXPECT_EQ(HumanDuration(Seconds(45)), "45s");
  EXPECT_EQ(HumanDuration(Seconds(5 * 60 + 59)), "5m");
  EXPECT_EQ(HumanDuration(Seconds(2 * 3600 + 10 * 60)), "2h10m");
  EXPECT_EQ(HumanDuration(Seconds(3 * 3600)), "3h");
  EXPECT_EQ(HumanDuration(Seconds(3 * 86400 + 4 * 3600 + 59)), "3d4h");
}

TEST(Output, RelativeAndAbsoluteTimes) {
  Timestamp now = FromUnixSeconds(1'795'456'500);  // 2026-11-23 17:55:00 UTC.
  EXPECT_EQ(Relative(now - Seconds(300), now), "5m ago");
  EXPECT_EQ(Relative(now + Seconds(7800), now), "in 2h10m");
  EXPECT_EQ(Relative(now, now), "now");
  EXPECT_EQ(Absolute(now), "2026-11-23 17:55 UTC");
  EXPECT_EQ(RelativeAndAbsolute(now + Seconds(7800), now), "in 2h10m (2026-11-23 20:05 UTC)");
}

}  // namespace
}  // namespace gsched::client
