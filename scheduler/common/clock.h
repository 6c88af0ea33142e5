// Time for gsched: `Timestamp` and `Duration` at millisecond resolution, and the `Clock` that is
// passed in wherever "now" matters. Production uses `SystemClock`; tests and the simulator use
// `ManualClock`, which only moves when told to. Nothing in `scheduler/core` reads a clock: it takes
// `now` as an argument.
//
// Threading: `SystemClock` is stateless; `ManualClock` is safe to read and advance from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace gsched {

using Duration = std::chrono::milliseconds;
using Timestamp = std::chrono::time_point<std::chrono::system_clock, Duration>;

inline constexpr Timestamp FromUnixMillis(int64_t ms) {
  return Timestamp(Duration(ms));
}
inline constexpr int64_t ToUnixMillis(Timestamp t) {
  return t.time_since_epoch().count();
}
inline constexpr Timestamp FromUnixSeconds(int64_t s) {
  return Timestamp(std::chrono::seconds(s));
}
inline constexpr int64_t ToUnixSeconds(Timestamp t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}
inline constexpr Duration Seconds(int64_t s) {
  return std::chrono::seconds(s);
}

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Timestamp Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  Timestamp Now() const override {
    return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
  }
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(Timestamp start = FromUnixSeconds(1'800'000'000))
      : now_ms_(ToUnixMillis(start)) {}
  Timestamp Now() const override { return FromUnixMillis(now_ms_.load(std::memory_order_acquire)); }
  void Advance(Duration d) { now_ms_.fetch_add(d.count(), std::memory_order_acq_rel); }
  void Set(Timestamp t) { now_ms_.store(ToUnixMillis(t), std::memory_order_release); }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace gsched
