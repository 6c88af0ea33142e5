// `ConnectionLimits`: how many open connections each token holds, so that one token (a stolen one
// included) cannot take every connection slot of the server (DESIGN.md section 11).
//
// A connection counts for a token from its first request that the token authenticated until it
// closes; a connection used by several tokens counts for each. Thread-safe: `Admit` runs on the
// network threads that handle requests, `Release` on the one that ends the connection.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace gsched::server {

class ConnectionLimits {
 public:
  // At most `per_token` connections per token (by token id); 0: no limit.
  explicit ConnectionLimits(int64_t per_token) : per_token_(per_token) {}

  // Counts `connection` for `token`; false (and nothing counted) when the token holds `per_token`
  // other open connections already.
  bool Admit(std::string_view token, uint64_t connection);
  // `connection` closed: it no longer counts for any token.
  void Release(uint64_t connection);
  // Open connections counted for `token`.
  size_t Of(std::string_view token) const;

 private:
  const int64_t per_token_;
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, std::vector<std::string>> tokens_of_;  // connection -> token ids
  std::unordered_map<std::string, size_t> open_;                      // token id -> connections
};

}  // namespace gsched::server
