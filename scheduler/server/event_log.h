// `EventLog`: the gap-free event log (DESIGN.md sections 4 and 5): the sequence counter, the
// newest events kept in memory for watch replays, and pruning by count and age.
//
// Owns: the next sequence number, the first sequence still stored, the in-memory tail. Events are
// written through the `Change` they belong to (the caller commits it); `Load` reads the store
// once at start. Threading: not thread-safe; owned by `ClusterState`, on the service's state
// thread.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <deque>
#include <string>

#include "config/scheduler_config.h"
#include "scheduler/api/types.h"
#include "scheduler/common/clock.h"
#include "scheduler/common/status.h"
#include "scheduler/server/change.h"
#include "scheduler/state/store.h"

namespace gsched::server {

class EventLog {
 public:
  EventLog(const config::SchedulerConfig& config, const Clock& clock)
      : config_(config), clock_(clock) {}

  // Continues the log stored in `store` after its last entry, and reads its newest
  // `watch.memory_events` entries back into memory (not all of a long log: restarts stay fast).
  Status Load(const state::Store& store);

  // Appends an event stamped now to the log and to `change` (its batch and its events).
  void Add(Change& change, std::string type, boost::json::object data);
  // An event outside the log (`job.reason`, `account.usage`, `cluster.summary`): stamped now,
  // with the seq of the newest log event.
  api::Event Ephemeral(std::string type, boost::json::object data) const;
  // Deletes the oldest events beyond `events.max_events` or older than `events.retention` (the
  // newest event always stays). Watchers asking for pruned events get a `resync`.
  Change Prune();

  uint64_t last_seq() const { return next_seq_ - 1; }
  // The oldest event still in the log (`last_seq() + 1` when it is empty).
  uint64_t first_seq() const { return first_seq_; }
  const std::deque<api::Event>& recent() const { return recent_; }

 private:
  size_t RecentCapacity() const { return static_cast<size_t>(config_.watch.memory_events); }

  const config::SchedulerConfig& config_;
  const Clock& clock_;
  uint64_t next_seq_ = 1;
  uint64_t first_seq_ = 1;
  std::deque<api::Event> recent_;  // The newest events, for watch replays.
};

}  // namespace gsched::server
