#include "scheduler/state/memory_store.h"

#include <vector>

namespace gsched::state {

void MemoryStore::CommitAsync(WriteBatch batch, CommitCallback done) {
  {
    std::lock_guard lock(mu_);
    ++commits_;
    for (const Mutation& m : batch.mutations()) {
      auto& family = families_[static_cast<size_t>(m.family)];
      switch (m.kind) {
        case Mutation::Kind::kPut:
          family.insert_or_assign(m.key, m.value);
          break;
        case Mutation::Kind::kDelete:
          family.erase(m.key);
          break;
        case Mutation::Kind::kDeleteRange:
          family.erase(family.lower_bound(m.key), family.lower_bound(m.value));
          break;
      }
    }
  }
  done(Status::Ok());
}

Result<std::string> MemoryStore::Get(Family f, std::string_view key) const {
  std::lock_guard lock(mu_);
  const auto& family = families_[static_cast<size_t>(f)];
  auto it = family.find(key);
  if (it == family.end())
    return Status::NotFound(std::string(FamilyName(f)) + " key not found");
  return it->second;
}

Result<std::optional<std::string>> MemoryStore::LastKey(Family f) const {
  std::lock_guard lock(mu_);
  const auto& family = families_[static_cast<size_t>(f)];
  if (family.empty())
    return std::optional<std::string>();
  return std::optional<std::string>(family.rbegin()->first);
}

Status MemoryStore::Scan(Family f, std::string_view begin, std::string_view end,
                         const std::function<bool(std::string_view, std::string_view)>& fn) const {
  // Copy the range first so that `fn` may call back into the store.
  std::vector<std::pair<std::string, std::string>> rows;
  {
    std::lock_guard lock(mu_);
    const auto& family = families_[static_cast<size_t>(f)];
    auto last = end.empty() ? family.end() : family.lower_bound(end);
    for (auto it = family.lower_bound(begin); it != last; ++it)
      rows.emplace_back(*it);
  }
  for (const auto& [k, v] : rows) {
    if (!fn(k, v))
      break;
  }
  return Status::Ok();
}

CommitStats MemoryStore::Stats() const {
  std::lock_guard lock(mu_);
  return CommitStats{commits_, commits_, 1, 0};
}

}  // namespace gsched::state
