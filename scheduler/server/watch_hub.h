// `WatchHub`: the subscribers of the watch feed (`GET /v1/watch`, DESIGN.md section 5) and the
// fan-out of durable events to them.
//
// A subscriber is a WebSocket with a filter (topics, job, account, user) and the principal that
// opened it. The service publishes each change's events once they are durable; the hub serialises
// an event once and queues it on every connection whose filter and visibility match it.
//
// Replay. A subscriber that gives `since` first catches up on the events after it, in rounds of at
// most `replay_chunk` events: from `recent` (the state's in-memory tail of the log) when it still
// holds them, otherwise from the `events` family of the store, read on the hub's reader thread.
// Between rounds the hub waits for the connection's queue to drain, so a long replay never fills
// it. A subscriber takes live events only once its replay has reached the newest published event,
// and that switch happens in one turn of the state thread; events published during the replay are
// read back from the log instead of being buffered. Hence no gap, no duplicate, and a bounded
// memory cost per subscriber. When the requested part of the log was pruned, the subscriber gets
// one `resync` event whose `seq` is the last event it will not see, and the replay goes on from
// the oldest event still stored.
//
// Ephemeral events (`job.reason`, `account.usage`, `cluster.summary`) describe the present rather
// than a change in the log: they are not stored, never replayed, and go only to live subscribers
// that asked for them (`ephemeral=1`). Each carries the seq of the newest log event it follows and
// is held until that event is published, so it never overtakes the change it reflects; resuming
// with `since` = the last seq seen stays exact.
//
// Invariants: events are published in `seq` order and only once durable; a subscriber receives
// log events in strictly increasing `seq` order (a `resync` carries the seq it resumes after);
// an ephemeral event's seq equals that of the log event before it, or of none yet sent.
//
// Fan-out cost: an event is serialised once and the same immutable buffer is queued on every
// connection that gets it.
//
// Threading: every method but `NewSubscriberId` and `Stop` runs on the state thread. Store reads
// run on the hub's own reader thread and hand their results back through `post_to_state`.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "scheduler/api/types.h"
#include "scheduler/common/clock.h"
#include "scheduler/common/status.h"
#include "scheduler/net/http_types.h"
#include "scheduler/server/cluster_state.h"
#include "scheduler/server/metrics.h"
#include "scheduler/state/store.h"

namespace gsched::server {

enum WatchTopic : uint8_t {
  kTopicJobs = 1,
  kTopicNodes = 2,
  kTopicAccounts = 4,
  kTopicCluster = 8,  // `cluster.summary` only.
  kAllTopics = kTopicJobs | kTopicNodes | kTopicAccounts | kTopicCluster,
};

// The topic an event type belongs to (`job.*`, `node.*`, `account.*`, `cluster.*`), or 0 for
// events the feed does not carry (the token audit events).
uint8_t TopicOf(std::string_view event_type);
// What one subscriber asked for. Every filter that is set must match: an event without the field
// (a node event has no `job`) does not match a `job`, `account` or `user` filter.
struct WatchFilter {
  uint8_t topics = kAllTopics;
  std::optional<uint64_t> job;
  std::string account;  // The account or anything below it.
  std::string user;
  bool ephemeral = false;  // Also the ephemeral events.
};

struct WatchRequest {
  WatchFilter filter;
  std::optional<uint64_t> since;  // Replay the events after this seq; none: live events only.
};

// Parses and checks the query of `GET /v1/watch` for `who` (network thread): unknown parameters,
// bad values and filters a user may not ask for are errors naming the parameter in `field`.
Result<WatchRequest> ParseWatchQuery(const std::map<std::string, std::string, std::less<>>& query,
                                     const Principal& who);

// Whether `account` is `root` or below it in the account tree (answered by the state).
using AccountSubtree = std::function<bool(const std::string& account, const std::string& root)>;

// Whether `who`, with `filter`, gets `event`: the topic, the filters, then visibility. Admins see
// everything; coordinators the jobs and accounts of their subtrees; users their own jobs and their
// own accounts; everyone but workers sees nodes.
bool WatchMatches(const Principal& who, const WatchFilter& filter, const api::Event& event,
                  const AccountSubtree& in_subtree);

struct WatchStats {
  uint64_t subscribers = 0;
  uint64_t replaying = 0;
  uint64_t events_sent = 0;  // Messages queued to subscribers, replays and resyncs included.
  uint64_t resyncs = 0;
  uint64_t dropped_slow = 0;   // Subscribers closed because their queue was full.
  uint64_t published_seq = 0;  // The newest durable event.
  uint64_t ephemeral_subscribers = 0;
  uint64_t ephemeral_sent = 0;
  uint64_t ephemeral_dropped = 0;  // Not sent: the hold queue was full.
  uint64_t closed_revoked = 0;     // Feeds closed because their token was revoked.
};

class WatchHub {
 public:
  struct Options {
    // The connection's queue limit; replays keep the queue under a quarter of it.
    size_t queue_limit = 4096;
    // Events a replay round looks at, at most (fewer when the queue limit is small).
    size_t replay_chunk = 512;
    // Ephemeral events waiting for the log event they follow, at most; more are dropped.
    size_t max_held_ephemeral = 65'536;
  };
  using Post = std::function<void(std::function<void()>)>;

  // `recent`: the state's newest events in seq order (state thread only); `store`: the event log,
  // read on the reader thread; `post_to_state`: runs a function on the state thread;
  // `published_seq`: the newest event already durable; `clock` stamps `resync` events.
  WatchHub(Options options, const std::deque<api::Event>& recent, const state::Store& store,
           AccountSubtree in_subtree, Post post_to_state, uint64_t published_seq,
           const Clock& clock);
  ~WatchHub();
  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // Any thread.
  uint64_t NewSubscriberId();
  // Ends the reader thread and lets go of every connection. Call once the state thread has
  // stopped, and before the store goes.
  void Stop();

  // Adds a subscriber and starts its replay when `since` is set.
  void Subscribe(uint64_t id, Principal who, WatchRequest request,
                 std::shared_ptr<net::WsConnection> connection);
  // The connection ended with `reason`.
  void Unsubscribe(uint64_t id, std::string_view reason);
  // Durable events, in seq order, each after the previous published one.
  void Publish(const std::vector<api::Event>& events);
  // Ephemeral events (`api::IsEphemeralEvent`), each with the seq of the log event it follows; sent
  // to the live subscribers that asked for them once that event is published.
  void PublishEphemeral(std::vector<api::Event> events);
  // Whether any subscriber takes ephemeral events (else the periodic ones need not be made).
  bool WantsEphemeral() const { return stats_.ephemeral_subscribers > 0; }
  // Closes every feed opened with token `token_id` (1008 "token revoked") and forgets it at once.
  void CloseToken(std::string_view token_id);
  // Open feeds of token `token_id`.
  size_t FeedsOf(std::string_view token_id) const;
  // Closes every feed whose token expired by `now` (1008 "token expired") and forgets it.
  void CloseExpired(Timestamp now);

  WatchStats Stats() const;
  // The `gsched_watch_*` families for `/metrics`.
  void RenderMetrics(PrometheusWriter& w) const;

 private:
  struct Subscriber {
    Principal who;
    WatchFilter filter;
    std::shared_ptr<net::WsConnection> connection;
    bool live = false;
    uint64_t position = 0;  // The replay has dealt with every event up to this seq.
  };
  // A raw event read from the store: decoded for filtering, sent as stored.
  struct StoredEvent {
    api::Event event;
    std::string text;
  };

  size_t Chunk() const;
  // One replay round for subscriber `id`, or the switch to live events.
  void CatchUp(uint64_t id);
  void OnStoreRound(uint64_t id, uint64_t from, uint64_t upto,
                    Result<std::vector<StoredEvent>> read);
  void GoLive(Subscriber& sub);
  // Waits for `id`'s queue to drain, then runs the next round.
  void NextRoundWhenDrained(uint64_t id, Subscriber& sub);
  void SendResync(Subscriber& sub, uint64_t resume_after, std::string reason);
  bool Send(Subscriber& sub, net::SharedText text);
  void SendEphemeral(const api::Event& e);
  void Forget(std::map<uint64_t, Subscriber>::iterator it);
  void ReaderLoop();

  const Options options_;
  const std::deque<api::Event>& recent_;
  const state::Store& store_;
  const AccountSubtree in_subtree_;
  const Post post_to_state_;
  const Clock& clock_;

  std::map<uint64_t, Subscriber> subscribers_;
  uint64_t published_seq_;
  std::deque<api::Event> held_ephemeral_;  // In seq order, each after `published_seq_`.
  WatchStats stats_;
  // From an event's creation (in memory, before its commit) to its publication.
  Histogram publish_delay_{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}};
  std::atomic<uint64_t> next_id_{1};

  // The reader thread and its queue of store reads (at most one per replaying subscriber).
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> reads_;
  bool stopping_ = false;
  std::thread reader_;
};

}  // namespace gsched::server
