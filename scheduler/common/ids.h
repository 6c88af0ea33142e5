// Strong identifier types, so that a job id cannot be passed where an attempt number is expected.
// A `JobId` is a 64-bit integer handed out by the scheduler, increasing and never reused; an
// `Attempt` counts the starts of one job (1, 2, ...; 0 means never started) and fences stale
// workers.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

namespace gsched {

template <typename Tag, typename T>
class StrongId {
 public:
  using ValueType = T;
  constexpr StrongId() = default;
  constexpr explicit StrongId(T value) : value_(value) {}
  constexpr T value() const { return value_; }
  constexpr auto operator<=>(const StrongId&) const = default;

 private:
  T value_{};
};

using JobId = StrongId<struct JobIdTag, uint64_t>;
using Attempt = StrongId<struct AttemptTag, uint32_t>;
// Sequence number of the event log: gap-free, increasing.
using EventSeq = StrongId<struct EventSeqTag, uint64_t>;

}  // namespace gsched

template <typename Tag, typename T>
struct std::hash<gsched::StrongId<Tag, T>> {
  size_t operator()(const gsched::StrongId<Tag, T>& id) const noexcept {
    return std::hash<T>()(id.value());
  }
};
