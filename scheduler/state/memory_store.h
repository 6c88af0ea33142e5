// `MemoryStore`: a `Store` held in memory, for unit tests and the simulator. Same semantics as
// `RocksDbStore` except durability: commits apply at once, and `CommitAsync` calls back on the
// caller's thread before returning. Thread-safe.
#pragma once

#include <array>
#include <map>
#include <mutex>
#include <string>

#include "scheduler/state/store.h"

namespace gsched::state {

class MemoryStore final : public Store {
 public:
  void CommitAsync(WriteBatch batch, CommitCallback done) override;
  Result<std::string> Get(Family f, std::string_view key) const override;
  Status Scan(Family f, std::string_view begin, std::string_view end,
              const std::function<bool(std::string_view, std::string_view)>& fn) const override;
  Result<std::optional<std::string>> LastKey(Family f) const override;
  CommitStats Stats() const override;

 private:
  mutable std::mutex mu_;
  std::array<std::map<std::string, std::string, std::less<>>, kFamilyCount> families_;
  uint64_t commits_ = 0;
};

}  // namespace gsched::state
