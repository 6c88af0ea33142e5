#include "scheduler/server/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace gsched::server {

RateLimiter::Bucket& RateLimiter::Refill(std::string_view key, Timestamp now) {
  auto it = buckets_.find(std::string(key));
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_keys_) {
      // Forget buckets that have refilled completely: they behave exactly like new ones.
      std::erase_if(buckets_, [&](const auto& kv) {
        double elapsed = std::chrono::duration<double>(now - kv.second.last).count();
        return kv.second.tokens + elapsed * rate_ >= burst_;
      });
    }
    it = buckets_.emplace(std::string(key), Bucket{burst_, now}).first;
  }
  Bucket& b = it->second;
  double elapsed = std::chrono::duration<double>(now - b.last).count();
  if (elapsed > 0) {
    b.tokens = std::min(burst_, b.tokens + elapsed * rate_);
    b.last = now;
  }
  return b;
}

bool RateLimiter::Allow(std::string_view key) {
  std::lock_guard lock(mu_);
  Bucket& b = Refill(key, clock_.Now());
  if (b.tokens < 1.0)
    return false;
  b.tokens -= 1.0;
  return true;
}

int RateLimiter::RetryAfterSeconds(std::string_view key) {
  std::lock_guard lock(mu_);
  Bucket& b = Refill(key, clock_.Now());
  if (b.tokens >= 1.0 || rate_ <= 0)
    return 1;
  return std::max(1, static_cast<int>(std::ceil((1.0 - b.tokens) / rate_)));
}

}  // namespace gsched::server
