// The watch feed over a real WebSocket against the real scheduler: a job's whole life in order,
// reconnection with `since` (from memory and from RocksDB, while jobs keep coming), per-user
// visibility, parameter checks before the upgrade, a slow consumer dropped with a reason while
// the others keep up, replay after a restart, and `resync` once the log was pruned.
#include <gtest/gtest.h>

#include <atomic>
#include <limits>
#include <thread>

#include "scheduler/api/worker_messages.h"
#include "tests/integration/scheduler_process.h"
#include "tests/integration/watch_events.h"

namespace gsched::testing {
namespace {
namespace json = boost::json;

using namespace watch_events;  // NOLINT(google-build-using-namespace): test helpers.

class Watcher {
 public:
  Watcher(const SchedulerProcess& s, const std::string& token, const std::string& query) {
    auto ws = net::WsClient::Connect(s.url(), "/v1/watch" + query,
                                     {.token = token, .timeout = Seconds(10)});
    EXPECT_TRUE(ws.ok()) << query << ": " << ws.status().ToString();
    if (ws.ok())
      ws_ = std::move(ws).value();
  }
  bool ok() const { return ws_ != nullptr; }

  // The next event, or the error that ended the feed (nothing within `timeout` is one too).
  Result<json::value> Next(Duration timeout = Seconds(20)) {
    if (!ws_)
      return Status::Unavailable("not connected");
    auto text = ws_->Read(timeout);
    if (!text.ok())
      return text.status();
    return json::parse(*text);
  }
  // Reads until `last` holds for an event (that event included); fails after 20 s of silence or
  // `max` events.
  std::vector<json::value> Until(const std::function<bool(const json::value&)>& last,
                                 size_t max = 100'000) {
    std::vector<json::value> out;
    while (out.size() < max) {
      auto e = Next();
      if (!e.ok()) {
        ADD_FAILURE() << "feed ended after " << out.size() << " events: " << e.status().ToString();
        return out;
      }
      out.push_back(*e);
      if (last(out.back()))
        return out;
    }
    ADD_FAILURE() << "no final event within " << max << " events";
    return out;
  }
  void Close() { ws_.reset(); }

 private:
  std::unique_ptr<net::WsClient> ws_;
};

// The error of a refused upgrade: its status and the server's JSON body.
Status Refusal(const SchedulerProcess& s, const std::string& token, const std::string& query) {
  auto ws = net::WsClient::Connect(s.url(), "/v1/watch" + query,
                                   {.token = token, .timeout = Seconds(10)});
  if (ws.ok())
    return Status::Ok();
  return ws.status();
}

TEST(WatchTest, AJobsWholeLifeArrivesInOrder) {
  SchedulerProcess s;
  std::string alice = s.Token("alice", "user", {"proj-a"});
  Watcher w(s, alice, "?topics=jobs");
  ASSERT_TRUE(w.ok());
  // A scripted worker with 8 GPUs runs the job: launch, running, completed.
  auto worker =
      net::WsClient::Connect(s.url(), "/v1/workers/connect",
                             {.token = s.Token("node-1", "worker", {}), .timeout = Seconds(10)});
  ASSERT_TRUE(worker.ok()) << worker.status().ToString();
  api::Hello hello;
  hello.node = "node-1";
  hello.cpus = 64;
  hello.memory_mib = 512 * 1024;
  for (int i = 0; i < 8; ++i)
    hello.gpus.push_back(api::Gpu{i, "GPU-" + std::to_string(i), "h100"});
  ASSERT_TRUE((*worker)->Write(api::SerializeMessage(hello)).ok());
  uint64_t id = Submit(s, alice);
  auto launch = (*worker)->Read(Seconds(20));
  ASSERT_TRUE(launch.ok()) << launch.status().ToString();
  ASSERT_TRUE(
      (*worker)
          ->Write(api::SerializeMessage(api::JobUpdate{id, 1, api::JobState::kRunning, std::nullopt,
                                                       std::nullopt, "", std::nullopt}))
          .ok());
  ASSERT_TRUE((*worker)
                  ->Write(api::SerializeMessage(api::JobUpdate{id, 1, api::JobState::kCompleted, 0,
                                                               std::nullopt, "", std::nullopt}))
                  .ok());

  auto events = w.Until([&](const json::value& e) {
    return Type(e) == "job.state" && DataString(e, "to") == "completed";
  });
  std::vector<std::string> life;
  for (const auto& e : events) {
    EXPECT_EQ(JobOf(e), id) << json::serialize(e);
    life.push_back(Type(e) + (Type(e) == "job.state"
                                  ? " " + DataString(e, "from") + ">" + DataString(e, "to")
                                  : ""));
  }
  EXPECT_EQ(life, (std::vector<std::string>{"job.submitted", "job.state pending>starting",
                                            "job.state starting>running",
                                            "job.state running>completed"}));
  auto seqs = Seqs(events);
  EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()) &&
              std::adjacent_find(seqs.begin(), seqs.end()) == seqs.end());
  EXPECT_EQ(events.back().at("data").at("node").as_string(), "node-1");
}

// From memory (the default tail of 100,000 events) and from RocksDB (no tail at all).
class WatchReconnectTest : public ::testing::TestWithParam<int> {};

TEST_P(WatchReconnectTest, ReconnectWithSinceGetsExactlyTheMissedEvents) {
  SchedulerProcess s("watch:\n  memory_events: " + std::to_string(GetParam()) + "\n");
  std::string alice = s.Token("alice", "user", {"proj-a"});
  auto client = s.Client(alice);
  Watcher steady(s, s.admin_token(), "?topics=jobs");
  auto cut = std::make_unique<Watcher>(s, s.admin_token(), "?topics=jobs");
  ASSERT_TRUE(steady.ok() && cut->ok());
  auto first = SubmitBatch(*client, 5);
  ASSERT_EQ(first.size(), 5u);
  auto before = cut->Until([&](const json::value& e) { return IsSubmitted(e, first.back()); });
  uint64_t last_seen = Seq(before.back());
  cut.reset();

  // Missed while away: 50 jobs. Then 100 more race with the reconnection's replay.
  for (int i = 0; i < 5; ++i)
    SubmitBatch(*client, 10);
  std::atomic<bool> racing{true};
  std::thread racer([&] {
    for (int i = 0; i < 100; ++i)
      Submit(s, alice);
    racing = false;
  });
  Watcher again(s, s.admin_token(), "?topics=jobs&since=" + std::to_string(last_seen));
  racer.join();
  uint64_t marker = Submit(s, alice);

  auto all = steady.Until([&](const json::value& e) { return IsSubmitted(e, marker); });
  auto resumed = again.Until([&](const json::value& e) { return IsSubmitted(e, marker); });
  std::vector<uint64_t> want;
  for (const auto& e : all) {
    if (Seq(e) > last_seen)
      want.push_back(Seq(e));
  }
  // 50 missed + 100 racing + the marker, each exactly once and in order.
  EXPECT_EQ(want.size(), 151u);
  EXPECT_EQ(Seqs(resumed), want);
  EXPECT_FALSE(racing);
}

INSTANTIATE_TEST_SUITE_P(MemoryAndStore, WatchReconnectTest, ::testing::Values(100'000, 0),
                         [](const auto& info) {
                           return info.param ? std::string("FromMemory") : std::string("FromStore");
                         });

TEST(WatchTest, UsersSeeOnlyWhatTheyMaySee) {
  SchedulerProcess s;
  std::string alice = s.Token("alice", "user", {"proj-a"});
  std::string bob = s.Token("bob", "user", {"proj-b"});
  std::string dan = s.Token("dan", "user", {"other"});
  std::string carol = s.Token("carol", "coordinator", {"lab"});
  Watcher alice_feed(s, alice, "");
  Watcher carol_feed(s, carol, "?topics=jobs");
  uint64_t b = Submit(s, bob);
  uint64_t d = Submit(s, dan);
  uint64_t a = Submit(s, alice);

  // Events come in seq order: had alice been sent bob's or dan's job, it would come before hers.
  auto seen = alice_feed.Until([&](const json::value& e) { return IsSubmitted(e, a); });
  for (const auto& e : seen) {
    if (Type(e).starts_with("job.")) {
      EXPECT_EQ(DataString(e, "user"), "alice") << json::serialize(e);
    }
  }
  // The coordinator of `lab` sees proj-a and proj-b, not `other`.
  auto lab = carol_feed.Until([&](const json::value& e) { return IsSubmitted(e, a); });
  std::vector<uint64_t> jobs;
  for (const auto& e : lab)
    jobs.push_back(JobOf(e));
  EXPECT_EQ(jobs, (std::vector<uint64_t>{b, a}));
  (void)d;
  // A replay is filtered the same way.
  Watcher replay(s, alice, "?since=0");
  for (const auto& e : replay.Until([&](const json::value& e) { return IsSubmitted(e, a); })) {
    if (Type(e).starts_with("job.")) {
      EXPECT_EQ(DataString(e, "user"), "alice") << json::serialize(e);
    }
  }
}

TEST(WatchTest, BadParametersAreRefusedBeforeTheUpgrade) {
  SchedulerProcess s;
  std::string alice = s.Token("alice", "user", {"proj-a"});
  struct Case {
    std::string query;
    StatusCode code;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"?topics=jobs,bogus", StatusCode::kInvalidArgument, "topics"},
      {"?since=-1", StatusCode::kInvalidArgument, "since"},
      {"?since=soon", StatusCode::kInvalidArgument, "since"},
      {"?job=0", StatusCode::kInvalidArgument, "job"},
      {"?account=other", StatusCode::kPermissionDenied, "account"},
      {"?user=bob", StatusCode::kPermissionDenied, "user"},
      {"?topic=jobs", StatusCode::kInvalidArgument, "topic"},
  };
  for (const auto& c : cases) {
    Status st = Refusal(s, alice, c.query);
    EXPECT_EQ(st.code(), c.code) << c.query << ": " << st.ToString();
    EXPECT_NE(st.message().find(R"("field":")" + c.field + "\""), std::string::npos)
        << c.query << ": " << st.ToString();
  }
  EXPECT_EQ(Refusal(s, "", "").code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(Refusal(s, s.Token("node-1", "worker", {}), "").code(), StatusCode::kPermissionDenied);
  // The feed itself still works for the same user.
  EXPECT_TRUE(Refusal(s, alice, "?topics=jobs,nodes&since=0").ok());
}

TEST(WatchTest, SlowConsumerIsDroppedWithAReasonWhileOthersKeepUp) {
  // 256 queued messages per connection; batches of 100 events never fill a reading client's.
  SchedulerProcess s("watch:\n  queue_limit: 256\n");
  std::string alice = s.Token("alice", "user", {"proj-a"});
  Watcher slow(s, alice, "?topics=jobs");  // Never reads until the end.
  ASSERT_TRUE(slow.ok());
  // The reader stops at the `expected`-th event (set before the last job is submitted).
  std::atomic<size_t> expected{std::numeric_limits<size_t>::max()};
  std::atomic<size_t> fast_count{0};
  std::vector<json::value> fast_events;
  Watcher fast(s, alice, "?topics=jobs");
  ASSERT_TRUE(fast.ok());
  std::thread reader([&] {
    fast_events = fast.Until([&](const json::value&) { return ++fast_count >= expected; });
  });
  auto client = s.Client(alice);
  size_t submitted = 0;
  uint64_t marker = 0;
  auto finish_reader = [&] {
    if (!reader.joinable())
      return;
    expected = ++submitted;
    marker = Submit(s, alice);
    reader.join();
  };
  EXPECT_TRUE(WaitFor([&] { return Metric(s, "gsched_watch_subscribers") == 2; }));

  // Submit until the slow one's queue is full and it is dropped. Before the queue, the kernel's
  // socket buffers fill: up to 4 MiB of send buffer here, ~30,000 events. Bounded.
  // The reading subscriber keeps up: each batch waits until it has read the previous one.
  for (int batch = 0; batch < 1000 && Metric(s, "gsched_watch_dropped_slow_total") < 1; ++batch) {
    submitted += SubmitBatch(*client, 100).size();
    if (!WaitFor([&] { return fast_count >= submitted; })) {
      ADD_FAILURE() << "the reading subscriber fell behind: " << fast_count << " of " << submitted;
      break;
    }
  }
  EXPECT_EQ(Metric(s, "gsched_watch_dropped_slow_total"), 1) << "after " << submitted << " jobs";
  finish_reader();
  // The reading subscriber got every event, in order, and is still connected.
  EXPECT_EQ(fast_events.size(), submitted);
  EXPECT_TRUE(!fast_events.empty() && IsSubmitted(fast_events.back(), marker));
  auto seqs = Seqs(fast_events);
  EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()));
  EXPECT_TRUE(WaitFor([&] { return Metric(s, "gsched_watch_subscribers") == 1; }));
  // The slow one reads what its socket held, then the close reason.
  Status end = Status::Ok();
  for (size_t i = 0; i <= submitted && end.ok(); ++i) {
    auto e = slow.Next(Seconds(20));
    if (!e.ok())
      end = e.status();
  }
  EXPECT_EQ(end.code(), StatusCode::kUnavailable);
  EXPECT_NE(end.message().find("slow consumer"), std::string::npos) << end.ToString();
}

TEST(WatchTest, ReplayAfterRestartComesFromTheEventLog) {
  // No in-memory tail: every replay reads RocksDB.
  SchedulerProcess s("watch:\n  memory_events: 0\n");
  std::string alice = s.Token("alice", "user", {"proj-a"});
  auto client = s.Client(alice);
  auto ids = SubmitBatch(*client, 5);
  ASSERT_EQ(ids.size(), 5u);
  Watcher before(s, alice, "?topics=jobs&since=0");
  auto events = before.Until([&](const json::value& e) { return IsSubmitted(e, ids.back()); });
  ASSERT_EQ(events.size(), 5u);
  before.Close();

  s.Stop();
  s.Start();
  Watcher after(s, alice, "?topics=jobs&since=0");
  auto replayed = after.Until([&](const json::value& e) { return IsSubmitted(e, ids.back()); });
  EXPECT_EQ(replayed, events);
  // From the middle: exactly the events after the second one.
  Watcher middle(s, alice, "?topics=jobs&since=" + std::to_string(Seq(events[1])));
  auto tail = middle.Until([&](const json::value& e) { return IsSubmitted(e, ids.back()); });
  EXPECT_EQ(tail, std::vector<json::value>(events.begin() + 2, events.end()));
  // New events continue the sequence after the restart.
  uint64_t next = Submit(s, alice);
  auto live = middle.Until([&](const json::value& e) { return IsSubmitted(e, next); });
  ASSERT_EQ(live.size(), 1u);
  EXPECT_GT(Seq(live[0]), Seq(events.back()));
}

TEST(WatchTest, PrunedLogGivesResync) {
  // At most 1,000 events are kept; pruning runs on the scheduler's tick.
  SchedulerProcess s("events:\n  max_events: 1000\n");
  std::string alice = s.Token("alice", "user", {"proj-a"});
  auto client = s.Client(alice);
  auto ids = SubmitBatch(*client, 1500);
  ASSERT_EQ(ids.size(), 1500u);
  json::value first;
  ASSERT_TRUE(WaitFor([&] {
    Watcher w(s, alice, "?topics=jobs&since=0");
    auto e = w.Next();
    if (!e.ok())
      return false;
    first = *e;
    return Type(first) == "resync";
  }));
  uint64_t resumes_after = first.at("data").at("resumes_after").to_number<uint64_t>();
  EXPECT_EQ(Seq(first), resumes_after);
  EXPECT_NE(DataString(first, "reason").find("pruned"), std::string::npos);

  Watcher w(s, alice, "?topics=jobs&since=0");
  auto events = w.Until([&](const json::value& e) { return IsSubmitted(e, ids.back()); });
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(Type(events.front()), "resync");
  // Every job event still stored follows, once each: at least the newest 1,000 minus the few
  // token and account events among them.
  auto seqs = Seqs(events);
  EXPECT_TRUE(std::adjacent_find(seqs.begin(), seqs.end(), std::greater_equal<>()) == seqs.end());
  // 1,500 jobs + 5 earlier events (accounts, the token): the newest 1,000 stay, or up to a pruning
  // step (1000 / 64 = 15) more.
  EXPECT_GE(events.size() - 1, 1000u);
  EXPECT_LE(events.size() - 1, 1015u);
  // A position this log never reached resyncs to the newest event.
  Watcher ahead(s, alice, "?since=1000000000");
  auto r = ahead.Next();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Type(*r), "resync");
  EXPECT_EQ(Seq(*r), Seq(events.back()));
}

}  // namespace
}  // namespace gsched::testing
