#include "scheduler/state/store.h"

#include <future>

namespace gsched::state {

std::string_view FamilyName(Family f) {
  switch (f) {
    case Family::kJobs:
      return "jobs";
    case Family::kAccounts:
      return "accounts";
    case Family::kNodes:
      return "nodes";
    case Family::kUsage:
      return "usage";
    case Family::kEvents:
      return "events";
    case Family::kTokens:
      return "tokens";
    case Family::kMeta:
      return "meta";
    case Family::kJobIndex:
      return "job_index";
  }
  return "unknown";
}

size_t WriteBatch::ByteSize() const {
  size_t n = 0;
  for (const Mutation& m : mutations_)
    n += m.key.size() + m.value.size() + 8;
  return n;
}

Status Store::Commit(WriteBatch batch) {
  std::promise<Status> promise;
  std::future<Status> done = promise.get_future();
  CommitAsync(std::move(batch), [&promise](Status s) { promise.set_value(std::move(s)); });
  return done.get();
}

std::string U64Key(uint64_t v) {
  std::string key(8, '\0');
  for (int i = 7; i >= 0; --i) {
    key[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return key;
}

Result<uint64_t> ParseU64Key(std::string_view key) {
  if (key.size() != 8)
    return Status::Internal("bad numeric key of " + std::to_string(key.size()) + " bytes");
  uint64_t v = 0;
  for (char c : key)
    v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

}  // namespace gsched::state
