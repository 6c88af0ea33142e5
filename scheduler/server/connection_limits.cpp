#include "scheduler/server/connection_limits.h"

#include <algorithm>

namespace gsched::server {

bool ConnectionLimits::Admit(std::string_view token, uint64_t connection) {
  std::lock_guard lock(mu_);
  auto it = tokens_of_.find(connection);
  if (it != tokens_of_.end() && std::ranges::find(it->second, token) != it->second.end())
    return true;
  auto [o, added] = open_.try_emplace(std::string(token), 0);
  if (per_token_ > 0 && o->second >= static_cast<size_t>(per_token_))
    return false;
  ++o->second;
  tokens_of_[connection].emplace_back(token);
  return true;
}

void ConnectionLimits::Release(uint64_t connection) {
  std::lock_guard lock(mu_);
  auto it = tokens_of_.find(connection);
  if (it == tokens_of_.end())
    return;
  for (const std::string& token : it->second) {
    auto o = open_.find(token);
    if (o != open_.end() && --o->second == 0)
      open_.erase(o);
  }
  tokens_of_.erase(it);
}

size_t ConnectionLimits::Of(std::string_view token) const {
  std::lock_guard lock(mu_);
  auto it = open_.find(std::string(token));
  return it == open_.end() ? 0 : it->second;
}

}  // namespace gsched::server
