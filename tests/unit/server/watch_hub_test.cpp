// `WatchHub` without sockets: fake connections that record what they are sent, a memory store as
// the event log, and the test thread standing in for the state thread (it runs what the hub posts).
#include "scheduler/server/watch_hub.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "scheduler/api/codec.h"
#include "scheduler/state/memory_store.h"

namespace gsched::server {
namespace {
namespace json = boost::json;

class FakeConnection final : public net::WsConnection {
 public:
  using net::WsConnection::Send;
  bool Send(net::SharedText text) override {
    if (closed)
      return false;
    sent.push_back(json::parse(*text));
    buffers.push_back(std::move(text));
    return true;
  }
  void Close(uint16_t code, std::string reason) override {
    closed = true;
    close_code = code;
    close_reason = std::move(reason);
  }
  // The queue is always empty here: the hub's next round is posted at once.
  void WhenQueueBelow(size_t, std::function<void()> ready) override {
    ++waits;
    ready();
  }
  const std::string& remote() const override { return remote_; }

  std::vector<uint64_t> Seqs() const {
    std::vector<uint64_t> out;
    for (const auto& m : sent)
      out.push_back(m.at("seq").to_number<uint64_t>());
    return out;
  }
  std::vector<std::string> Types() const {
    std::vector<std::string> out;
    for (const auto& m : sent)
      out.emplace_back(m.at("type").as_string());
    return out;
  }

  std::vector<json::value> sent;
  std::vector<net::SharedText> buffers;  // As queued: the same buffer for every subscriber.
  bool closed = false;
  uint16_t close_code = 0;
  std::string close_reason;
  int waits = 0;

 private:
  std::string remote_ = "test";
};

// lab > proj-a, proj-b; other.
bool InSubtree(const std::string& account, const std::string& root) {
  static const std::map<std::string, std::string> parent{
      {"lab", "root"}, {"proj-a", "lab"}, {"proj-b", "lab"}, {"other", "root"}};
  std::string cur = account;
  for (int i = 0; i < 8 && !cur.empty(); ++i) {
    if (cur == root)
      return true;
    auto it = parent.find(cur);
    cur = it == parent.end() ? "" : it->second;
  }
  return false;
}

Principal Admin() {
  return {"admin", api::Role::kAdmin, {}, "t0", {}};
}
Principal Alice() {
  return {"alice", api::Role::kUser, {"proj-a"}, "t1", {}};
}
Principal Bob() {
  return {"bob", api::Role::kUser, {"proj-b"}, "t2", {}};
}
Principal LabCoordinator() {
  return {"carol", api::Role::kCoordinator, {"lab"}, "t3", {}};
}

api::Event JobEvent(uint64_t seq, uint64_t job, const std::string& user,
                    const std::string& account) {
  return {seq, "job.submitted", FromUnixSeconds(1'800'000'000),
          json::object{{"job", job}, {"user", user}, {"account", account}}};
}
api::Event NodeEvent(uint64_t seq) {
  return {seq, "node.state", FromUnixSeconds(1'800'000'000),
          json::object{{"node", "n1"}, {"from", "up"}, {"to", "down"}}};
}
api::Event AccountEvent(uint64_t seq, const std::string& account) {
  return {seq, "account.quota", FromUnixSeconds(1'800'000'000),
          json::object{{"account", account}, {"by", "admin"}}};
}

// --- Filters and visibility -------------------------------------------------------------------

struct MatchCase {
  const char* name;
  Principal who;
  WatchFilter filter;
  api::Event event;
  bool want;
};

TEST(WatchMatchesTest, FiltersThenVisibility) {
  WatchFilter all;
  WatchFilter nodes_only{.topics = kTopicNodes};
  WatchFilter job7{.job = 7};
  WatchFilter lab{.account = "lab"};
  WatchFilter user_bob{.user = "bob"};
  const std::vector<MatchCase> cases = {
      {"user sees own job", Alice(), all, JobEvent(1, 7, "alice", "proj-a"), true},
      {"user does not see another's job", Alice(), all, JobEvent(1, 8, "bob", "proj-a"), false},
      {"user sees nodes", Alice(), all, NodeEvent(1), true},
      {"user sees own account", Alice(), all, AccountEvent(1, "proj-a"), true},
      {"user does not see other accounts", Alice(), all, AccountEvent(1, "proj-b"), false},
      {"coordinator sees subtree jobs", LabCoordinator(), all, JobEvent(1, 8, "bob", "proj-b"),
       true},
      {"coordinator does not see outside", LabCoordinator(), all, JobEvent(1, 9, "dan", "other"),
       false},
      {"coordinator sees subtree accounts", LabCoordinator(), all, AccountEvent(1, "lab"), true},
      {"admin sees everything", Admin(), all, JobEvent(1, 9, "dan", "other"), true},
      {"topic filter", Admin(), nodes_only, JobEvent(1, 9, "dan", "other"), false},
      {"topic filter keeps its topic", Admin(), nodes_only, NodeEvent(1), true},
      {"job filter", Admin(), job7, JobEvent(1, 7, "alice", "proj-a"), true},
      {"job filter, other job", Admin(), job7, JobEvent(1, 8, "alice", "proj-a"), false},
      // A filter the event has no field for does not match.
      {"job filter, node event", Admin(), job7, NodeEvent(1), false},
      {"account filter takes the subtree", Admin(), lab, JobEvent(1, 8, "bob", "proj-b"), true},
      {"account filter, outside", Admin(), lab, JobEvent(1, 9, "dan", "other"), false},
      {"user filter", LabCoordinator(), user_bob, JobEvent(1, 8, "bob", "proj-b"), true},
      {"user filter, other user", LabCoordinator(), user_bob, JobEvent(1, 7, "alice", "proj-a"),
       false},
      {"token events are not on the feed", Admin(), all,
       api::Event{1, "token.created", {}, json::object{{"token", "t"}}}, false},
      {"workers see nothing", Principal{"w", api::Role::kWorker, {}, "t", {}}, all, NodeEvent(1),
       false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(WatchMatches(c.who, c.filter, c.event, InSubtree), c.want) << c.name;
  }
}

struct QueryCase {
  std::map<std::string, std::string, std::less<>> query;
  Principal who;
  StatusCode code;
  std::string field;
};

TEST(ParseWatchQueryTest, RejectsBadParametersNamingThem) {
  const std::vector<QueryCase> cases = {
      {{{"topics", "jobs,bogus"}}, Admin(), StatusCode::kInvalidArgument, "topics"},
      {{{"topics", ""}}, Admin(), StatusCode::kInvalidArgument, "topics"},
      {{{"topics", "jobs,"}}, Admin(), StatusCode::kInvalidArgument, "topics"},
      {{{"since", "-1"}}, Admin(), StatusCode::kInvalidArgument, "since"},
      {{{"since", "12x"}}, Admin(), StatusCode::kInvalidArgument, "since"},
      {{{"since", ""}}, Admin(), StatusCode::kInvalidArgument, "since"},
      {{{"job", "0"}}, Admin(), StatusCode::kInvalidArgument, "job"},
      {{{"job", "abc"}}, Admin(), StatusCode::kInvalidArgument, "job"},
      {{{"account", "a b"}}, Admin(), StatusCode::kInvalidArgument, "account"},
      {{{"account", "proj-b"}}, Alice(), StatusCode::kPermissionDenied, "account"},
      {{{"user", "bob"}}, Alice(), StatusCode::kPermissionDenied, "user"},
      {{{"topic", "jobs"}}, Admin(), StatusCode::kInvalidArgument, "topic"},
  };
  for (const auto& c : cases) {
    auto r = ParseWatchQuery(c.query, c.who);
    ASSERT_FALSE(r.ok()) << c.query.begin()->first << "=" << c.query.begin()->second;
    EXPECT_EQ(r.status().code(), c.code) << r.status().ToString();
    EXPECT_EQ(r.status().field(), c.field) << r.status().ToString();
  }
}

TEST(ParseWatchQueryTest, AcceptsTheDocumentedForm) {
  auto r = ParseWatchQuery(
      {{"topics", "jobs,accounts"}, {"since", "0"}, {"job", "42"}, {"account", "proj-a"}}, Alice());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->filter.topics, kTopicJobs | kTopicAccounts);
  EXPECT_EQ(r->since, 0u);
  EXPECT_EQ(r->filter.job, 42u);
  EXPECT_EQ(r->filter.account, "proj-a");
  auto none = ParseWatchQuery({}, Alice());
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->filter.topics, kAllTopics);
  EXPECT_FALSE(none->since);
}

// --- The hub ----------------------------------------------------------------------------------

class WatchHubTest : public ::testing::Test {
 protected:
  // A queue limit of 16 makes replay rounds of 4 events.
  void MakeHub(uint64_t published) {
    hub_ = std::make_unique<WatchHub>(
        WatchHub::Options{.queue_limit = 16}, recent_, store_, InSubtree,
        [this](std::function<void()> f) {
          std::lock_guard lock(mu_);
          posted_.push_back(std::move(f));
          cv_.notify_all();
        },
        published, clock_);
  }
  ~WatchHubTest() override {
    if (hub_)
      hub_->Stop();
  }

  // Appends `e` to the durable log (store and, when `in_memory`, the in-memory tail).
  void Log(const api::Event& e, bool in_memory) {
    state::WriteBatch b;
    b.Put(state::Family::kEvents, state::U64Key(e.seq), json::serialize(api::Encode(e)));
    ASSERT_TRUE(store_.Commit(std::move(b)).ok());
    if (in_memory)
      recent_.push_back(e);
  }
  void Prune(uint64_t upto) {
    state::WriteBatch b;
    b.DeleteRange(state::Family::kEvents, state::U64Key(1), state::U64Key(upto + 1));
    ASSERT_TRUE(store_.Commit(std::move(b)).ok());
  }

  // Runs what the hub posted, as the state thread would, until no replay is left. `between` runs
  // after every step (to publish events while replays are under way).
  void RunReplays(const std::function<void()>& between = nullptr) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (hub_->Stats().replaying > 0) {
      std::function<void()> f;
      {
        std::unique_lock lock(mu_);
        ASSERT_TRUE(cv_.wait_until(lock, deadline, [this] { return !posted_.empty(); }))
            << "a replay stalled";
        f = std::move(posted_.front());
        posted_.pop_front();
      }
      f();
      if (between)
        between();
    }
  }

  state::MemoryStore store_;
  std::deque<api::Event> recent_;
  ManualClock clock_;
  std::unique_ptr<WatchHub> hub_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> posted_;
};

TEST_F(WatchHubTest, LiveEventsGoOnlyWhereTheyMayBeSeen) {
  MakeHub(0);
  auto alice = std::make_shared<FakeConnection>();
  auto bob = std::make_shared<FakeConnection>();
  auto nodes = std::make_shared<FakeConnection>();
  hub_->Subscribe(1, Alice(), {}, alice);
  hub_->Subscribe(2, Bob(), {}, bob);
  hub_->Subscribe(3, Admin(), {.filter = {.topics = kTopicNodes}}, nodes);
  hub_->Publish({JobEvent(1, 7, "alice", "proj-a"), JobEvent(2, 8, "bob", "proj-b"), NodeEvent(3),
                 AccountEvent(4, "proj-a")});
  EXPECT_EQ(alice->Seqs(), (std::vector<uint64_t>{1, 3, 4}));
  EXPECT_EQ(bob->Seqs(), (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(nodes->Seqs(), (std::vector<uint64_t>{3}));
  // Exactly what the log holds: the event as encoded.
  EXPECT_EQ(alice->sent[0], api::Encode(JobEvent(1, 7, "alice", "proj-a")));
  EXPECT_EQ(hub_->Stats().events_sent, 6u);
  EXPECT_EQ(hub_->Stats().subscribers, 3u);
  hub_->Unsubscribe(2, "closed by peer");
  hub_->Publish({JobEvent(5, 9, "bob", "proj-b")});
  EXPECT_EQ(bob->Seqs().size(), 2u);
  EXPECT_EQ(hub_->Stats().subscribers, 2u);
}

TEST_F(WatchHubTest, ReplayFromMemoryThenLiveWithoutGapOrDuplicate) {
  for (uint64_t s = 1; s <= 10; ++s)
    Log(JobEvent(s, s, "alice", "proj-a"), true);
  MakeHub(10);
  auto c = std::make_shared<FakeConnection>();
  hub_->Subscribe(1, Alice(), {.since = 3}, c);
  RunReplays();
  hub_->Publish({JobEvent(11, 11, "alice", "proj-a")});
  EXPECT_EQ(c->Seqs(), (std::vector<uint64_t>{4, 5, 6, 7, 8, 9, 10, 11}));
  // 7 events in rounds of 4: the first round goes at once, the second after one drain.
  EXPECT_EQ(c->waits, 1);
  EXPECT_EQ(hub_->Stats().replaying, 0u);
}

TEST_F(WatchHubTest, ReplayFromTheStoreWhileEventsArePublished) {
  // Only the store holds the log (an empty in-memory tail); 20 events are durable.
  for (uint64_t s = 1; s <= 20; ++s)
    Log(JobEvent(s, s, s % 2 ? "alice" : "bob", "proj-a"), false);
  MakeHub(20);
  auto c = std::make_shared<FakeConnection>();
  hub_->Subscribe(1, Admin(), {.since = 0}, c);
  // Every step of the replay races with one more committed and published event, 21..30.
  uint64_t next = 21;
  RunReplays([&] {
    if (next > 30)
      return;
    Log(JobEvent(next, next, "alice", "proj-a"), false);
    hub_->Publish({JobEvent(next, next, "alice", "proj-a")});
    ++next;
  });
  for (; next <= 32; ++next) {
    Log(JobEvent(next, next, "alice", "proj-a"), false);
    hub_->Publish({JobEvent(next, next, "alice", "proj-a")});
  }
  std::vector<uint64_t> want;
  for (uint64_t s = 1; s <= 32; ++s)
    want.push_back(s);
  EXPECT_EQ(c->Seqs(), want);
}

TEST_F(WatchHubTest, PrunedLogGivesOneResyncThenTheRest) {
  for (uint64_t s = 1; s <= 10; ++s)
    Log(JobEvent(s, s, "alice", "proj-a"), false);
  Prune(5);
  MakeHub(10);
  auto c = std::make_shared<FakeConnection>();
  hub_->Subscribe(1, Alice(), {.since = 2}, c);
  RunReplays();
  // The resync carries the last seq the client will not see: it resumes after 5.
  EXPECT_EQ(c->Seqs(), (std::vector<uint64_t>{5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(c->Types().front(), "resync");
  EXPECT_EQ(c->sent.front().at("data").at("resumes_after").to_number<uint64_t>(), 5u);
  EXPECT_EQ(hub_->Stats().resyncs, 1u);
}

TEST_F(WatchHubTest, WhollyPrunedRangeResyncsToTheNewest) {
  for (uint64_t s = 1; s <= 4; ++s)
    Log(JobEvent(s, s, "alice", "proj-a"), false);
  Prune(4);
  MakeHub(4);
  auto c = std::make_shared<FakeConnection>();
  hub_->Subscribe(1, Alice(), {.since = 1}, c);
  RunReplays();
  hub_->Publish({JobEvent(5, 5, "alice", "proj-a")});
  EXPECT_EQ(c->Seqs(), (std::vector<uint64_t>{4, 5}));
  EXPECT_EQ(c->Types(), (std::vector<std::string>{"resync", "job.submitted"}));
}

TEST_F(WatchHubTest, SinceAheadOfTheLogResyncs) {
  MakeHub(10);
  auto c = std::make_shared<FakeConnection>();
  hub_->Subscribe(1, Alice(), {.since = 1000}, c);
  hub_->Publish({JobEvent(11, 11, "alice", "proj-a")});
  EXPECT_EQ(c->Seqs(), (std::vector<uint64_t>{10, 11}));
  EXPECT_EQ(c->Types().front(), "resync");
}

TEST_F(WatchHubTest, ReplayFiltersLikeLiveEvents) {
  for (uint64_t s = 1; s <= 6; ++s)
    Log(JobEvent(s, s, s % 2 ? "alice" : "bob", "proj-a"), s > 3);
  MakeHub(6);
  auto c = std::make_shared<FakeConnection>();
  // 1..3 come from the store, 4..6 from memory; bob's even ones are not alice's to see.
  hub_->Subscribe(1, Alice(), {.since = 0}, c);
  RunReplays();
  EXPECT_EQ(c->Seqs(), (std::vector<uint64_t>{1, 3, 5}));
}

TEST_F(WatchHubTest, CountsSlowConsumersAndClosedReplays) {
  for (uint64_t s = 1; s <= 10; ++s)
    Log(JobEvent(s, s, "alice", "proj-a"), false);
  MakeHub(10);
  auto c = std::make_shared<FakeConnection>();
  hub_->Subscribe(1, Alice(), {.since = 0}, c);
  EXPECT_EQ(hub_->Stats().replaying, 1u);
  // The connection goes away mid-replay; the store read still in flight finds no subscriber.
  hub_->Unsubscribe(1, std::string(net::kSlowConsumerReason) + ": queue of 16 messages full");
  EXPECT_EQ(hub_->Stats().replaying, 0u);
  EXPECT_EQ(hub_->Stats().dropped_slow, 1u);
  EXPECT_EQ(hub_->Stats().subscribers, 0u);
  std::unique_lock lock(mu_);
  ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(10), [this] { return !posted_.empty(); }));
  auto f = std::move(posted_.front());
  posted_.pop_front();
  lock.unlock();
  f();
  EXPECT_TRUE(c->sent.empty());
}

// `job.reason` for job `job` following log event `seq`.
api::Event ReasonEvent(uint64_t seq, uint64_t job, const std::string& user) {
  return {seq, "job.reason", FromUnixSeconds(1'800'000'000),
          json::object{{"job", job}, {"user", user}, {"account", "proj-a"}, {"code", "quota"}}};
}

TEST_F(WatchHubTest, OneBufferIsSharedByEverySubscriber) {
  MakeHub(0);
  auto a = std::make_shared<FakeConnection>();
  auto b = std::make_shared<FakeConnection>();
  hub_->Subscribe(1, Admin(), {}, a);
  hub_->Subscribe(2, Alice(), {}, b);
  hub_->Publish({JobEvent(1, 7, "alice", "proj-a")});
  ASSERT_EQ(a->buffers.size(), 1u);
  ASSERT_EQ(b->buffers.size(), 1u);
  EXPECT_EQ(a->buffers[0].get(), b->buffers[0].get());
}

TEST_F(WatchHubTest, EphemeralEventsOnlyForThoseWhoAskAndNeverBeforeTheirLogEvent) {
  MakeHub(10);
  auto asked = std::make_shared<FakeConnection>();
  auto plain = std::make_shared<FakeConnection>();
  auto other = std::make_shared<FakeConnection>();
  hub_->Subscribe(1, Alice(), {.filter = {.ephemeral = true}}, asked);
  hub_->Subscribe(2, Alice(), {}, plain);
  hub_->Subscribe(3, Bob(), {.filter = {.ephemeral = true}}, other);
  EXPECT_TRUE(hub_->WantsEphemeral());
  // Follows event 10, already published: sent at once.
  hub_->PublishEphemeral({ReasonEvent(10, 7, "alice")});
  // Follows event 12, not yet durable: held until 12 is published, then after it.
  hub_->PublishEphemeral({ReasonEvent(12, 8, "alice")});
  EXPECT_EQ(asked->Types(), (std::vector<std::string>{"job.reason"}));
  hub_->Publish({JobEvent(11, 8, "alice", "proj-a")});
  EXPECT_EQ(asked->Seqs(), (std::vector<uint64_t>{10, 11}));
  hub_->Publish({JobEvent(12, 8, "alice", "proj-a")});
  EXPECT_EQ(asked->Seqs(), (std::vector<uint64_t>{10, 11, 12, 12}));
  EXPECT_EQ(asked->Types().back(), "job.reason");
  // Not asked for, or not theirs to see.
  EXPECT_EQ(plain->Types(), (std::vector<std::string>{"job.submitted", "job.submitted"}));
  EXPECT_TRUE(other->sent.empty());
  EXPECT_EQ(hub_->Stats().ephemeral_sent, 2u);
  hub_->Unsubscribe(1, "closed by peer");
  hub_->Unsubscribe(3, "closed by peer");
  EXPECT_FALSE(hub_->WantsEphemeral());
}

TEST_F(WatchHubTest, ARevokedTokensFeedsAreClosedAtOnce) {
  MakeHub(0);
  auto a1 = std::make_shared<FakeConnection>();
  auto a2 = std::make_shared<FakeConnection>();
  auto admin = std::make_shared<FakeConnection>();
  hub_->Subscribe(1, Alice(), {}, a1);
  hub_->Subscribe(2, Alice(), {}, a2);
  hub_->Subscribe(3, Admin(), {}, admin);
  hub_->CloseToken("t1");  // Alice's token.
  EXPECT_TRUE(a1->closed && a2->closed);
  EXPECT_EQ(a1->close_code, 1008);
  EXPECT_EQ(a1->close_reason, "token revoked");
  EXPECT_FALSE(admin->closed);
  hub_->Publish({JobEvent(1, 7, "alice", "proj-a")});
  EXPECT_TRUE(a1->sent.empty());
  EXPECT_EQ(admin->sent.size(), 1u);
  EXPECT_EQ(hub_->Stats().subscribers, 1u);
  EXPECT_EQ(hub_->Stats().closed_revoked, 2u);
  // The transport's close callback comes later and finds nothing.
  hub_->Unsubscribe(1, "token revoked");
  EXPECT_EQ(hub_->Stats().subscribers, 1u);
}

}  // namespace
}  // namespace gsched::server
