// `SteadyClock`: the monotonic clock as a `Clock`, for intervals that must not jump with the wall
// clock (the daemon's pass timing, `PassTrigger`). Its `Timestamp`s count from an arbitrary epoch:
// they are not dates and only compare with each other. `ToSteady` turns one back into a
// `steady_clock` time for a timer.
//
// Threading: stateless; any thread.
#pragma once

#include <chrono>

#include "scheduler/common/clock.h"

namespace gsched {

class SteadyClock final : public Clock {
 public:
  Timestamp Now() const override {
    return Timestamp(
        std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now().time_since_epoch()));
  }
  static std::chrono::steady_clock::time_point ToSteady(Timestamp t) {
    return std::chrono::steady_clock::time_point(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(t.time_since_epoch()));
  }
};

}  // namespace gsched
