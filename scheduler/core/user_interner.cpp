#include "scheduler/core/user_interner.h"

namespace gsched::core {

UserInterner::UserInterner(std::vector<std::string>& users) : users_(users) {
  for (uint32_t i = 0; i < users_.size(); ++i)
    index_.try_emplace(users_[i], i);
}

uint32_t UserInterner::Intern(const std::string& user) {
  auto [it, fresh] = index_.try_emplace(user, static_cast<uint32_t>(users_.size()));
  if (fresh)
    users_.push_back(user);
  return it->second;
}

}  // namespace gsched::core
