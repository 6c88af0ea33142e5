#include "scheduler/common/pass_trigger.h"

#include <gtest/gtest.h>

#include <vector>

#include "scheduler/common/policy_defaults.h"
#include "scheduler/common/steady_clock.h"

namespace gsched {
namespace {

using std::chrono::milliseconds;

constexpr Duration kCoalesce = milliseconds(10);
constexpr Duration kMinGap = milliseconds(100);
const Timestamp kT0 = FromUnixSeconds(1'800'000'000);

class PassTriggerTest : public ::testing::Test {
 protected:
  // Moves the clock to `ms` after `kT0`.
  void At(int64_t ms) { clock_.Set(kT0 + milliseconds(ms)); }
  Timestamp T(int64_t ms) const { return kT0 + milliseconds(ms); }

  ManualClock clock_{kT0};
  PassTrigger trigger_{clock_, kCoalesce, kMinGap};
};

TEST_F(PassTriggerTest, TheFirstRequestIsDueAfterTheCoalescingDelay) {
  EXPECT_FALSE(trigger_.wanted());
  EXPECT_FALSE(trigger_.due());
  At(5);
  // No pass ran yet, so no gap to keep: 5 + 10 = 15.
  EXPECT_EQ(trigger_.Request(), T(15));
  EXPECT_TRUE(trigger_.wanted());
  EXPECT_EQ(trigger_.due(), T(15));
  At(14);
  EXPECT_FALSE(trigger_.IsDue());
  At(15);
  EXPECT_TRUE(trigger_.IsDue());
  EXPECT_TRUE(trigger_.Begin());
  EXPECT_TRUE(trigger_.running());
  EXPECT_FALSE(trigger_.wanted());
  EXPECT_FALSE(trigger_.due());
  EXPECT_EQ(trigger_.End(), std::nullopt);  // Nothing asked for meanwhile.
  EXPECT_EQ(trigger_.last_end(), T(15));
  EXPECT_FALSE(trigger_.running());
}

TEST_F(PassTriggerTest, RequestsBeforeThePassAreCoalescedIntoIt) {
  EXPECT_EQ(trigger_.Request(), T(10));
  At(3);
  EXPECT_EQ(trigger_.Request(), std::nullopt);  // Already scheduled for 10.
  At(9);
  EXPECT_EQ(trigger_.Request(), std::nullopt);
  EXPECT_EQ(trigger_.due(), T(10));
  At(10);
  EXPECT_TRUE(trigger_.Begin());
  EXPECT_EQ(trigger_.End(), std::nullopt);
  // A second wake-up for the same requests (a timer that fired twice) runs nothing.
  EXPECT_FALSE(trigger_.Begin());
}

TEST_F(PassTriggerTest, APassRunsAtLeastTheMinimumGapAfterThePreviousOneEnded) {
  ASSERT_EQ(trigger_.Request(), T(10));
  At(10);
  ASSERT_TRUE(trigger_.Begin());
  At(12);  // The pass took 2 ms.
  ASSERT_EQ(trigger_.End(), std::nullopt);
  At(30);
  // max(30 + 10, 12 + 100) = 112.
  EXPECT_EQ(trigger_.Request(), T(112));
  At(112);
  ASSERT_TRUE(trigger_.Begin());
  ASSERT_EQ(trigger_.End(), std::nullopt);
  At(500);
  // Long after the gap: max(500 + 10, 112 + 100) = 510.
  EXPECT_EQ(trigger_.Request(), T(510));
}

TEST_F(PassTriggerTest, RequestsDuringAPassScheduleTheNextOneWhenItEnds) {
  ASSERT_EQ(trigger_.Request(), T(10));
  At(10);
  ASSERT_TRUE(trigger_.Begin());
  At(40);
  EXPECT_EQ(trigger_.Request(), std::nullopt);  // The running pass's end schedules it.
  EXPECT_TRUE(trigger_.wanted());
  EXPECT_FALSE(trigger_.due());
  At(60);
  EXPECT_EQ(trigger_.Request(), std::nullopt);
  // A wake-up while the pass runs starts nothing.
  EXPECT_FALSE(trigger_.Begin());
  EXPECT_TRUE(trigger_.running());
  At(250);  // A slow pass: 240 ms.
  // max(250 + 10, 250 + 100) = 350.
  EXPECT_EQ(trigger_.End(), T(350));
  EXPECT_EQ(trigger_.due(), T(350));
  At(350);
  EXPECT_TRUE(trigger_.Begin());
}

TEST_F(PassTriggerTest, CoalescingLongerThanTheGapWinsAfterAPass) {
  PassTrigger slow(clock_, milliseconds(50), milliseconds(20));
  ASSERT_EQ(slow.Request(), T(50));
  At(50);
  ASSERT_TRUE(slow.Begin());
  EXPECT_EQ(slow.Request(), std::nullopt);
  At(55);
  // max(55 + 50, 55 + 20) = 105.
  EXPECT_EQ(slow.End(), T(105));
}

TEST_F(PassTriggerTest, ADeferredPassIsScheduledAgainByTheNextRequest) {
  ASSERT_EQ(trigger_.Request(), T(10));
  At(10);
  trigger_.Defer();  // The daemon's store refuses writes: no pass now.
  EXPECT_TRUE(trigger_.wanted());
  EXPECT_FALSE(trigger_.due());
  EXPECT_FALSE(trigger_.running());
  At(1000);  // The periodic tick asks again.
  // No pass ever ended, so only the coalescing delay: 1000 + 10.
  EXPECT_EQ(trigger_.Request(), T(1010));
  At(1010);
  EXPECT_TRUE(trigger_.Begin());
}

TEST_F(PassTriggerTest, ABurstCostsOnePassPerMinimumGap) {
  // A request every millisecond for one second, passes taking no time (as in the simulator).
  // First pass at 0 + 10; each later request finds the previous pass's end + 100 ahead: passes at
  // 10, 110, 210, ..., 910 (10 passes), and the last requests wait for 1010.
  std::vector<int64_t> passes;
  for (int64_t t = 0; t < 1000; ++t) {
    At(t);
    if (trigger_.IsDue() && trigger_.Begin()) {
      passes.push_back(t);
      EXPECT_EQ(trigger_.End(), std::nullopt);
    }
    (void)trigger_.Request();
  }
  std::vector<int64_t> expected;
  for (int64_t t = 10; t < 1000; t += 100)
    expected.push_back(t);
  EXPECT_EQ(passes, expected);
  EXPECT_EQ(trigger_.due(), T(1010));
}

TEST_F(PassTriggerTest, ABurstDuringSlowPassesRunsThemBackToBackAfterTheGap) {
  // Requests every millisecond; each pass takes 150 ms. Pass 1 at 10 ends at 160, so the next is
  // due at max(160 + 10, 160 + 100) = 260, ends 410, next 510, ...: one pass per 250 ms.
  std::vector<int64_t> begins;
  int64_t ends_at = -1;
  for (int64_t t = 0; t < 1000; ++t) {
    At(t);
    if (t == ends_at) {
      auto next = trigger_.End();
      ASSERT_TRUE(next);
      EXPECT_EQ(*next, T(t + 100));
    }
    if (trigger_.IsDue() && trigger_.Begin()) {
      begins.push_back(t);
      ends_at = t + 150;
    }
    (void)trigger_.Request();
  }
  EXPECT_EQ(begins, (std::vector<int64_t>{10, 260, 510, 760}));
}

TEST_F(PassTriggerTest, TheDaemonAndTheSimulatorUseTheSameDefaults) {
  // The daemon and gsched-sim both build their trigger from these; this pins the values the
  // simulator's published figures were measured with.
  EXPECT_EQ(policy_defaults::kPassCoalesce, milliseconds(10));
  EXPECT_EQ(policy_defaults::kPassMinGap, milliseconds(100));
}

TEST(SteadyClockTest, ConvertsBackToTheSteadyClockForTimers) {
  SteadyClock clock;
  const Timestamp a = clock.Now();
  const Timestamp b = clock.Now();
  EXPECT_LE(a, b);
  const auto steady = SteadyClock::ToSteady(a);
  // `a` is the steady clock truncated to milliseconds.
  EXPECT_LE(steady, std::chrono::steady_clock::now());
  EXPECT_EQ(std::chrono::duration_cast<Duration>(steady.time_since_epoch()), a.time_since_epoch());
}

}  // namespace
}  // namespace gsched
