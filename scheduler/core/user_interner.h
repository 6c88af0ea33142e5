// `UserInterner`: gives user names their dense indices into `Snapshot::users` while a snapshot
// is built, one definition for the daemon's snapshot builder and the simulator's replay. The first
// time a name is seen it is appended to `users`; every later time it gets the same index. Names
// already in `users` keep their indices.
//
// Threading: not thread-safe; holds a reference to `users`, which must outlive it.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace gsched::core {

class UserInterner {
 public:
  explicit UserInterner(std::vector<std::string>& users);

  uint32_t Intern(const std::string& user);

 private:
  std::vector<std::string>& users_;
  std::unordered_map<std::string, uint32_t> index_;
};

}  // namespace gsched::core
