#include "scheduler/server/log_relay.h"

#include <utility>
#include <vector>

#include "scheduler/common/quantity.h"

namespace gsched::server {

Result<uint64_t> LogRelay::Start(const std::string& node, Timestamp now, Answer answer) {
  if (pending_.size() >= max_pending_) {
    return Status::ResourceExhausted("too many log reads in flight (" +
                                     std::to_string(max_pending_) + "); retry");
  }
  uint64_t id = next_++;
  pending_.emplace(id, Pending{node, now + timeout_, std::move(answer)});
  return id;
}

bool LogRelay::Complete(const std::string& node, api::LogChunk chunk) {
  auto it = pending_.find(chunk.request);
  if (it == pending_.end() || it->second.node != node)
    return false;
  Answer answer = std::move(it->second.answer);
  pending_.erase(it);
  if (!chunk.error.empty())
    answer(Status::NotFound(node + ": " + chunk.error));
  else
    answer(std::move(chunk));
  return true;
}

void LogRelay::NodeGone(const std::string& node) {
  std::vector<Answer> failed;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.node == node) {
      failed.push_back(std::move(it->second.answer));
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& answer : failed)
    answer(Status::Unavailable("node " + node + " disconnected before sending the output"));
}

void LogRelay::Expire(Timestamp now) {
  // Deadlines grow with the request number, so the expired requests are a prefix.
  while (!pending_.empty() && pending_.begin()->second.deadline <= now) {
    Pending p = std::move(pending_.begin()->second);
    pending_.erase(pending_.begin());
    p.answer(
        Status(StatusCode::kDeadlineExceeded,
               "node " + p.node + " did not send the output within " + FormatDuration(timeout_)));
  }
}

}  // namespace gsched::server
