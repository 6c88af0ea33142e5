// Waiting in tests: the one "poll until a condition holds, with a deadline" helper. Tests never
// sleep for a fixed time to let something happen; they wait for what they expect, bounded, and
// fail with `false` when it does not come.
//
// Threading: `ready` and `step` run on the caller's thread.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace gsched {

// Calls `step` (when given: a tick of the thing under test), then `ready`, every `poll`, until
// `ready` holds or `timeout` passes; after the deadline `ready` gets one last look. False on
// timeout.
inline bool WaitFor(const std::function<bool()>& ready,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30),
                    const std::function<void()>& step = nullptr,
                    std::chrono::milliseconds poll = std::chrono::milliseconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (step)
      step();
    if (ready())
      return true;
    std::this_thread::sleep_for(poll);
  }
  return ready();
}

}  // namespace gsched
