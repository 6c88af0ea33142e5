#include "scheduler/common/text.h"

#include <gtest/gtest.h>

namespace gsched {
namespace {

TEST(EditDistanceTest, CountsInsertionsDeletionsSubstitutionsAndNeighbourSwaps) {
  EXPECT_EQ(EditDistance("", ""), 0u);
  EXPECT_EQ(EditDistance("", "abc"), 3u);
  EXPECT_EQ(EditDistance("abc", ""), 3u);
  EXPECT_EQ(EditDistance("interval", "interval"), 0u);
  EXPECT_EQ(EditDistance("intervall", "interval"), 1u);  // One deletion.
  EXPECT_EQ(EditDistance("blok", "block"), 1u);          // One insertion.
  EXPECT_EQ(EditDistance("gpus", "gpux"), 1u);           // One substitution.
  EXPECT_EQ(EditDistance("cuont", "count"), 1u);         // Neighbours swapped: one, not two.
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);      // k->s, e->i, +g.
  EXPECT_EQ(EditDistance("ca", "abc"), 3u);              // OSA: no edit of a swapped pair.
  EXPECT_EQ(EditDistance("zebra", "size"), EditDistance("size", "zebra"));
}

TEST(Base64Test, MatchesTheStandardVectorsAndRoundTrips) {
  // RFC 4648 section 10.
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode("\xfb\xff"), "+/8=");
  for (std::string s : {"", "a", "ab", "abc", "\x00\x01\xfe\xff"}) {
    EXPECT_EQ(*Base64Decode(Base64Encode(s)), s);
  }
  EXPECT_EQ(*Base64Decode("Zg"), "f");  // Unpadded is read too.
  EXPECT_FALSE(Base64Decode("Z").ok());
  EXPECT_FALSE(Base64Decode("-_8=").ok());  // The url alphabet is not the standard one.
  EXPECT_FALSE(Base64Decode("Zg=a").ok());
}

}  // namespace
}  // namespace gsched
