// Per-token request rate limits: a token bucket per key (`requests_per_s` refill, `burst` capacity)
// on an injected clock. Thread-safe. Memory is bounded: idle buckets are forgotten once the table
// passes `max_keys`, since a full bucket carries no state worth keeping.
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "scheduler/common/clock.h"

namespace gsched::server {

class RateLimiter {
 public:
  RateLimiter(const Clock& clock, double requests_per_s, double burst, size_t max_keys = 100'000)
      : clock_(clock), rate_(requests_per_s), burst_(burst), max_keys_(max_keys) {}

  // Takes one token from `key`'s bucket; false when it is empty (answer 429).
  bool Allow(std::string_view key);
  // Seconds until `key` may send again (for Retry-After), at least 1.
  int RetryAfterSeconds(std::string_view key);
  // Keys with a bucket right now (for `/metrics`).
  size_t TrackedKeys() {
    std::lock_guard lock(mu_);
    return buckets_.size();
  }

 private:
  struct Bucket {
    double tokens;
    Timestamp last;
  };
  Bucket& Refill(std::string_view key, Timestamp now);

  const Clock& clock_;
  double rate_;
  double burst_;
  size_t max_keys_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace gsched::server
