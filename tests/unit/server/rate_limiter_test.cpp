#include "scheduler/server/rate_limiter.h"

#include <gtest/gtest.h>

namespace gsched::server {
namespace {

TEST(RateLimiterTest, BurstThenRefillAtRate) {
  ManualClock clock;
  RateLimiter limiter(clock, /*requests_per_s=*/10, /*burst=*/5);
  // A full bucket of 5 tokens.
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(limiter.Allow("alice")) << i;
  EXPECT_FALSE(limiter.Allow("alice"));
  // Empty bucket at 10/s: one token after 0.1 s -> 1 s to retry at most.
  EXPECT_EQ(limiter.RetryAfterSeconds("alice"), 1);
  clock.Advance(Duration(100));
  EXPECT_TRUE(limiter.Allow("alice"));
  EXPECT_FALSE(limiter.Allow("alice"));
  // Other keys have their own bucket.
  EXPECT_TRUE(limiter.Allow("bob"));
  // 10 s refill caps at the burst of 5.
  clock.Advance(Seconds(10));
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(limiter.Allow("alice"));
  EXPECT_FALSE(limiter.Allow("alice"));
}

TEST(RateLimiterTest, RetryAfterCountsSecondsAtSlowRates) {
  ManualClock clock;
  RateLimiter limiter(clock, /*requests_per_s=*/0.25, /*burst=*/1);
  EXPECT_TRUE(limiter.Allow("k"));
  // One token at 0.25/s takes 4 s.
  EXPECT_EQ(limiter.RetryAfterSeconds("k"), 4);
}

TEST(RateLimiterTest, TableStaysBounded) {
  ManualClock clock;
  RateLimiter limiter(clock, 100, 1, /*max_keys=*/10);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(limiter.Allow("k" + std::to_string(i)));
    clock.Advance(Duration(20));  // Each bucket refills after 10 ms.
  }
  // Refilled buckets were forgotten along the way.
  EXPECT_LE(limiter.TrackedKeys(), 11u);
  // Still limits: a key that just spent its token is refused.
  EXPECT_TRUE(limiter.Allow("last"));
  EXPECT_FALSE(limiter.Allow("last"));
}

}  // namespace
}  // namespace gsched::server
