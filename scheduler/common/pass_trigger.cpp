#include "scheduler/common/pass_trigger.h"

#include <algorithm>

namespace gsched {

Timestamp PassTrigger::Schedule() {
  const Timestamp now = clock_.Now();
  Timestamp at = now + coalesce_;
  if (last_end_)
    at = std::max(at, *last_end_ + min_gap_);
  due_ = at;
  return at;
}

std::optional<Timestamp> PassTrigger::Request() {
  wanted_ = true;
  if (running_ || due_)
    return std::nullopt;
  return Schedule();
}

bool PassTrigger::Begin() {
  due_.reset();
  if (running_ || !wanted_)
    return false;
  wanted_ = false;
  running_ = true;
  return true;
}

void PassTrigger::Defer() {
  due_.reset();
}

std::optional<Timestamp> PassTrigger::End() {
  running_ = false;
  last_end_ = clock_.Now();
  if (!wanted_)
    return std::nullopt;
  return Schedule();
}

}  // namespace gsched
