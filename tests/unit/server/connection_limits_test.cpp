#include "scheduler/server/connection_limits.h"

#include <gtest/gtest.h>

namespace gsched::server {
namespace {

TEST(ConnectionLimitsTest, ATokenHoldsAtMostItsLimitOfConnections) {
  ConnectionLimits limits(2);
  EXPECT_TRUE(limits.Admit(/*token=*/"t7", /*connection=*/1));
  EXPECT_TRUE(limits.Admit("t7", 1));  // Its next request on the same connection.
  EXPECT_TRUE(limits.Admit("t7", 2));
  EXPECT_FALSE(limits.Admit("t7", 3));
  EXPECT_EQ(limits.Of("t7"), 2u);
  EXPECT_TRUE(limits.Admit("t8", 3));  // Another token is not affected.
  limits.Release(3);                   // The refused connection counted for 7 not at all.
  EXPECT_EQ(limits.Of("t7"), 2u);
  EXPECT_EQ(limits.Of("t8"), 0u);
  limits.Release(1);
  EXPECT_EQ(limits.Of("t7"), 1u);
  EXPECT_TRUE(limits.Admit("t7", 4));
  EXPECT_FALSE(limits.Admit("t7", 5));
}

TEST(ConnectionLimitsTest, AConnectionUsedByTwoTokensCountsForBoth) {
  ConnectionLimits limits(1);
  EXPECT_TRUE(limits.Admit("t1", 10));
  EXPECT_TRUE(limits.Admit("t2", 10));
  EXPECT_FALSE(limits.Admit("t1", 11));
  EXPECT_FALSE(limits.Admit("t2", 11));
  limits.Release(10);
  EXPECT_TRUE(limits.Admit("t1", 11));
  EXPECT_TRUE(limits.Admit("t2", 12));
  limits.Release(99);  // Never admitted: nothing happens.
  EXPECT_EQ(limits.Of("t1"), 1u);
}

TEST(ConnectionLimitsTest, ZeroMeansNoLimit) {
  ConnectionLimits limits(0);
  for (uint64_t c = 1; c <= 1000; ++c)
    EXPECT_TRUE(limits.Admit("t1", c));
  EXPECT_EQ(limits.Of("t1"), 1000u);
}

}  // namespace
}  // namespace gsched::server
