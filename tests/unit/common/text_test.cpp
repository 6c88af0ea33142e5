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

}  // namespace
}  // namespace gsched
