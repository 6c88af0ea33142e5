// `LogRelay`: the requests of `GET /v1/jobs/{id}/logs` on their way to a worker and back.
//
// Job output stays on the node that ran the attempt. The service asks that node's worker with a
// `read_log` message and answers the HTTP request when the `log_chunk` with the same `request`
// number comes back. A request is answered exactly once: by its chunk, by `NodeGone` (the
// connection to the node closed: 503), or by `Expire` after `timeout` (504). Chunks that answer
// nothing - late, unknown, or from another node than the one asked - are dropped.
//
// Bounded: at most `max_pending` requests wait at once; more are refused (429).
//
// Threading: not thread-safe; the service's state thread owns it. Answers are called inline.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "scheduler/api/worker_messages.h"
#include "scheduler/common/clock.h"
#include "scheduler/common/status.h"

namespace gsched::server {

class LogRelay {
 public:
  using Answer = std::function<void(Result<api::LogChunk>)>;

  LogRelay(Duration timeout, size_t max_pending) : timeout_(timeout), max_pending_(max_pending) {}

  // Registers a request to `node` and returns its number, to be sent in `read_log`.
  Result<uint64_t> Start(const std::string& node, Timestamp now, Answer answer);
  // A chunk from `node`. Returns whether it answered a waiting request.
  bool Complete(const std::string& node, api::LogChunk chunk);
  // The connection to `node` closed: its requests fail.
  void NodeGone(const std::string& node);
  // Fails the requests older than `timeout`.
  void Expire(Timestamp now);
  size_t pending() const { return pending_.size(); }

 private:
  struct Pending {
    std::string node;
    Timestamp deadline;
    Answer answer;
  };
  Duration timeout_;
  size_t max_pending_;
  uint64_t next_ = 1;
  std::map<uint64_t, Pending> pending_;  // By request number, which is also deadline order.
};

}  // namespace gsched::server
