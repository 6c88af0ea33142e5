// What every change to the scheduler's state hands back, and who asked for it: the vocabulary
// shared by `ClusterState` and its parts (DESIGN.md sections 4 and 5).
//
// A `Change` is made in memory first; the caller commits its batch and, only once that is
// durable, answers the client, publishes the events and sends the dispatches.
#pragma once

#include <string>
#include <vector>

#include "scheduler/api/types.h"
#include "scheduler/api/worker_messages.h"
#include "scheduler/common/clock.h"
#include "scheduler/state/store.h"

namespace gsched::server {

// Who is asking, from a verified token.
struct Principal {
  std::string user;
  api::Role role = api::Role::kUser;
  std::vector<std::string> accounts;  // The first is the default account.
  std::string token_id;
  Timestamp expires{};
  // Worker tokens: the node patterns they serve (`ServesNode` in token.h).
  std::vector<std::string> nodes;
};

// A message for the worker of one node.
struct Dispatch {
  std::string node;
  api::SchedulerMessage message;
};

struct Change {
  state::WriteBatch batch;
  std::vector<api::Event> events;
  std::vector<Dispatch> dispatches;
  bool reschedule = false;  // Something changed that a scheduling pass should look at.
  // Events that are not in the log (`job.reason`): never stored or replayed, published once the
  // log events made before them are. Their `seq` is the newest log event they follow.
  std::vector<api::Event> ephemeral;
};

// A job that holds its allocation: placed and not yet ended.
constexpr bool IsActive(api::JobState s) {
  return s == api::JobState::kStarting || s == api::JobState::kRunning;
}

}  // namespace gsched::server
