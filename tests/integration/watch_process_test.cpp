// The watch feed against WebSocket clients in other processes: `watch_client.py` (Debian's
// python3-websockets) subscribes to the real `gsched-scheduler` and prints what it receives as
// JSON lines, which these tests read back. A job's whole life in order; a client cut off midway
// resuming with `since` gets exactly what it missed; users see none of each other's jobs; a
// client that never reads is dropped (1008) without slowing the others or growing the server's
// queues. Every wait is a condition with a deadline.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <fstream>
#include <thread>

#include "scheduler/api/worker_messages.h"
#include "tests/integration/scheduler_process.h"
#include "tests/integration/watch_events.h"

namespace gsched::testing {
namespace {
namespace json = boost::json;

using namespace watch_events;  // NOLINT(google-build-using-namespace): test helpers.

class FeedProcess {
 public:
  FeedProcess(const SchedulerProcess& s, const std::string& token, const std::string& query,
              std::vector<std::string> extra = {}) {
    static std::atomic<int> next{0};
    std::string base = s.dir() + "/feed-" + std::to_string(next++);
    out_path_ = base + ".out";
    std::ofstream(base + ".token") << token << "\n";
    std::vector<std::string> argv{
        GSCHED_PYTHON3,  GSCHED_WATCH_CLIENT, "--url", s.url(),     "--token-file",
        base + ".token", "--query",           query,   "--timeout", "120"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = std::make_unique<Subprocess>(argv, out_path_);
  }

  // The events so far, in arrival order.
  const std::vector<json::value>& Events() {
    Poll();
    return events_;
  }
  // The last line, once the client has ended.
  std::optional<json::value> End() {
    Poll();
    return end_;
  }
  // Waits until `done` holds for the events so far.
  bool WaitEvents(const std::function<bool(const std::vector<json::value>&)>& done,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return WaitFor([&] { return done(Events()); }, timeout);
  }
  bool WaitConnected() {
    return WaitFor([&] {
             Poll();
             return connected_ || end_.has_value();
           }) &&
           connected_;
  }
  bool WaitEnd(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return WaitFor([&] { return End().has_value(); }, timeout);
  }
  // What the process wrote, for failure messages.
  std::string Output() const { return process_->Log(); }
  void Kill() { process_->Kill(SIGKILL); }

 private:
  void Poll() {
    std::ifstream in(out_path_);
    in.seekg(static_cast<std::streamoff>(offset_));
    std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t used = 0;
    for (size_t nl; (nl = chunk.find('\n', used)) != std::string::npos; used = nl + 1) {
      std::string_view line(chunk.data() + used, nl - used);
      if (!line.starts_with("{"))
        continue;  // A Python traceback: kept in the file for `Output()`.
      boost::system::error_code ec;
      json::value v = json::parse(line, ec);
      if (ec || !v.is_object())
        continue;
      if (v.as_object().contains("seq"))
        events_.push_back(std::move(v));
      else if (v.as_object().contains("end"))
        end_ = std::move(v);
      else if (v.as_object().contains("connected"))
        connected_ = true;
    }
    offset_ += used;
  }

  std::string out_path_;
  std::unique_ptr<Subprocess> process_;
  size_t offset_ = 0;
  std::vector<json::value> events_;
  std::optional<json::value> end_;
  bool connected_ = false;
};

// The scheduler's resident memory in KiB, from /proc.
int64_t RssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmRSS:"))
      return std::stoll(line.substr(6));
  }
  return -1;
}

std::string Life(const json::value& e) {
  return Type(e) +
         (Type(e) == "job.state" ? " " + DataString(e, "from") + ">" + DataString(e, "to") : "");
}

// A scripted worker "node-1" with eight h100 GPUs, its hello sent.
Result<std::unique_ptr<net::WsClient>> ConnectWorker(SchedulerProcess& s) {
  auto worker =
      net::WsClient::Connect(s.url(), "/v1/workers/connect",
                             {.token = s.Token("node-1", "worker", {}), .timeout = Seconds(10)});
  if (!worker.ok())
    return worker.status();
  api::Hello hello;
  hello.node = "node-1";
  hello.cpus = 64;
  hello.memory_mib = 512 * 1024;
  for (int i = 0; i < 8; ++i)
    hello.gpus.push_back(api::Gpu{i, "GPU-" + std::to_string(i), "h100"});
  RETURN_IF_ERROR((*worker)->Write(api::SerializeMessage(hello)));
  return worker;
}

TEST(WatchProcessTest, AJobsWholeLifeArrivesInOrder) {
  SchedulerProcess s;
  std::string alice = s.Token("alice", "user", {"proj-a"});
  FeedProcess feed(s, alice, "topics=jobs");
  ASSERT_TRUE(feed.WaitConnected()) << feed.Output();
  // A scripted worker with 8 GPUs runs the job: launch, running, completed.
  auto worker = ConnectWorker(s);
  ASSERT_TRUE(worker.ok()) << worker.status().ToString();
  uint64_t id = Submit(s, alice);
  auto launch = (*worker)->Read(Seconds(20));
  ASSERT_TRUE(launch.ok()) << launch.status().ToString();
  for (auto to : {api::JobState::kRunning, api::JobState::kCompleted}) {
    std::optional<int32_t> exit_code;
    if (to == api::JobState::kCompleted)
      exit_code = 0;
    ASSERT_TRUE((*worker)
                    ->Write(api::SerializeMessage(
                        api::JobUpdate{id, 1, to, exit_code, std::nullopt, "", std::nullopt}))
                    .ok());
  }

  ASSERT_TRUE(feed.WaitEvents([](const auto& events) {
    return !events.empty() && DataString(events.back(), "to") == "completed";
  })) << feed.Output();
  const auto& events = feed.Events();
  std::vector<std::string> life;
  for (const auto& e : events) {
    EXPECT_EQ(JobOf(e), id) << json::serialize(e);
    life.push_back(Life(e));
  }
  EXPECT_EQ(life, (std::vector<std::string>{"job.submitted", "job.state pending>starting",
                                            "job.state starting>running",
                                            "job.state running>completed"}));
  auto seqs = Seqs(events);
  EXPECT_TRUE(std::adjacent_find(seqs.begin(), seqs.end(), std::greater_equal<>()) == seqs.end())
      << "seqs must strictly increase";
  EXPECT_EQ(DataString(events.back(), "node"), "node-1");
}

TEST(WatchProcessTest, ClientCutOffMidwayResumesWithExactlyTheMissedEvents) {
  SchedulerProcess s;
  std::string alice = s.Token("alice", "user", {"proj-a"});
  auto client = s.Client(alice);
  // Job topics only and no workers: one `job.submitted` per job and nothing else.
  FeedProcess steady(s, s.admin_token(), "topics=jobs");
  FeedProcess cut(s, s.admin_token(), "topics=jobs");
  ASSERT_TRUE(steady.WaitConnected() && cut.WaitConnected()) << cut.Output();
  // 20 jobs in one durable write; the client is killed (SIGKILL, no close handshake) as soon as
  // it has printed the 5th of their events, while the rest may still be on the wire.
  auto first = SubmitBatch(*client, 20);
  ASSERT_EQ(first.size(), 20u);
  ASSERT_TRUE(cut.WaitEvents([](const auto& e) { return e.size() >= 5; })) << cut.Output();
  cut.Kill();
  const auto& seen = cut.Events();  // What it printed before it died: its resume point.
  ASSERT_GE(seen.size(), 5u);
  uint64_t last_seen = Seq(seen.back());

  // Missed while away: 50 jobs. Then 100 more race with the reconnection's replay.
  for (int i = 0; i < 5; ++i)
    SubmitBatch(*client, 10);
  FeedProcess again(s, s.admin_token(), "topics=jobs&since=" + std::to_string(last_seen));
  std::thread racer([&] {
    for (int i = 0; i < 100; ++i)
      Submit(s, alice);
  });
  racer.join();
  uint64_t marker = Submit(s, alice);

  auto has_marker = [&](const std::vector<json::value>& e) {
    return !e.empty() && IsSubmitted(e.back(), marker);
  };
  ASSERT_TRUE(steady.WaitEvents(has_marker)) << steady.Output();
  ASSERT_TRUE(again.WaitEvents(has_marker)) << again.Output();
  std::vector<uint64_t> want;
  for (const auto& e : steady.Events()) {
    if (Seq(e) > last_seen)
      want.push_back(Seq(e));
  }
  // 20 - seen + 50 missed + 100 racing + the marker, each exactly once and in order.
  EXPECT_EQ(want.size(), 20 - seen.size() + 151);
  EXPECT_EQ(Seqs(again.Events()), want);
}

TEST(WatchProcessTest, AUserSeesNoneOfAnotherUsersJobEvents) {
  SchedulerProcess s;
  std::string alice = s.Token("alice", "user", {"proj-a"});
  std::string bob = s.Token("bob", "user", {"proj-b"});
  // Every topic, and a replay of the whole log.
  FeedProcess alice_feed(s, alice, "");
  FeedProcess bob_feed(s, bob, "since=0");
  ASSERT_TRUE(alice_feed.WaitConnected() && bob_feed.WaitConnected()) << alice_feed.Output();
  uint64_t b1 = Submit(s, bob);
  uint64_t a1 = Submit(s, alice);
  uint64_t b2 = Submit(s, bob);
  auto cancel = s.Client(alice)->Post("/v1/jobs/" + std::to_string(a1) + "/cancel", "");
  ASSERT_TRUE(cancel.ok() && cancel->status == 200) << (cancel.ok() ? cancel->body : "");
  uint64_t a2 = Submit(s, alice);
  uint64_t b3 = Submit(s, bob);

  // Events arrive in seq order: had either been sent the other's job, it would come before its
  // own last one.
  auto ends_with = [](uint64_t job) {
    return [job](const std::vector<json::value>& e) {
      return !e.empty() && IsSubmitted(e.back(), job);
    };
  };
  ASSERT_TRUE(alice_feed.WaitEvents(ends_with(a2))) << alice_feed.Output();
  ASSERT_TRUE(bob_feed.WaitEvents(ends_with(b3))) << bob_feed.Output();
  std::vector<uint64_t> alice_jobs, bob_jobs;
  for (const auto& e : alice_feed.Events()) {
    if (Type(e).starts_with("job.")) {
      EXPECT_EQ(DataString(e, "user"), "alice") << json::serialize(e);
      alice_jobs.push_back(JobOf(e));
    }
  }
  for (const auto& e : bob_feed.Events()) {
    if (Type(e).starts_with("job.")) {
      EXPECT_EQ(DataString(e, "user"), "bob") << json::serialize(e);
      bob_jobs.push_back(JobOf(e));
    }
    // Bob's replay started at 0: alice's token was made by the admin, a `token` event he must
    // not see either.
    EXPECT_TRUE(Type(e).starts_with("job.") || Type(e).starts_with("node.") ||
                Type(e).starts_with("account."))
        << json::serialize(e);
  }
  // Alice: submitted a1, its cancellation (a state change), submitted a2.
  ASSERT_GE(alice_jobs.size(), 3u);
  EXPECT_EQ(alice_jobs.front(), a1);
  EXPECT_EQ(alice_jobs.back(), a2);
  EXPECT_EQ(bob_jobs, (std::vector<uint64_t>{b1, b2, b3}));
}

TEST(WatchProcessTest, AClientThatNeverReadsIsDroppedWithoutSlowingTheOthers) {
  // 64 queued messages per connection. Batches of 50 events never fill a reading client's queue.
  constexpr int kQueueLimit = 64;
  constexpr int kBatch = 50;
  SchedulerProcess s("watch:\n  queue_limit: " + std::to_string(kQueueLimit) + "\n");
  std::string alice = s.Token("alice", "user", {"proj-a"});
  std::string go = s.dir() + "/slow-may-read";
  FeedProcess slow(s, alice, "topics=jobs", {"--hold-until", go});
  FeedProcess fast(s, alice, "topics=jobs");
  FeedProcess other(s, s.admin_token(), "topics=jobs");
  ASSERT_TRUE(slow.WaitConnected() && fast.WaitConnected() && other.WaitConnected())
      << slow.Output();
  ASSERT_TRUE(WaitFor([&] { return Metric(s, "gsched_watch_subscribers") == 3; }));
  auto client = s.Client(alice);
  int64_t rss_before = RssKib(s.pid());

  // Submit until the slow one is dropped. Before its queue fills, the kernel's socket buffers
  // fill (the client's is 4 KiB; the server's grows to a few MiB). Each batch waits until both
  // reading clients have every event so far: they are never behind by more than one batch.
  size_t submitted = 0;
  double max_queued = 0;
  std::vector<double> slow_alive_ms;  // Per batch, until the drop.
  auto caught_up = [&](FeedProcess& f) {
    return f.WaitEvents([&](const auto& e) { return e.size() >= submitted; },
                        std::chrono::seconds(10));
  };
  for (int batch = 0; batch < 2000 && Metric(s, "gsched_watch_dropped_slow_total") < 1; ++batch) {
    auto t0 = std::chrono::steady_clock::now();
    submitted += SubmitBatch(*client, kBatch).size();
    if (!caught_up(fast) || !caught_up(other)) {
      ADD_FAILURE() << "a reading client fell behind: " << fast.Events().size() << " and "
                    << other.Events().size() << " of " << submitted;
      break;
    }
    auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0);
    // From the submission to both readers' having printed its events.
    slow_alive_ms.push_back(ms.count());
    max_queued = std::max(max_queued, Metric(s, "gsched_ws_queued_messages"));
  }
  ASSERT_EQ(Metric(s, "gsched_watch_dropped_slow_total"), 1) << "after " << submitted << " jobs";
  // The server never held more than one full queue plus a batch in flight for the readers.
  EXPECT_LE(max_queued, kQueueLimit + 2 * kBatch);
  // Its queue was freed at the drop: only the message being written stays, until the socket
  // takes it (the readers have read everything).
  EXPECT_LE(Metric(s, "gsched_ws_queued_messages"), 1);
  int64_t rss_after = RssKib(s.pid());
  std::sort(slow_alive_ms.begin(), slow_alive_ms.end());
  if (!slow_alive_ms.empty()) {
    std::cout << "readers caught up on a batch in p50 " << slow_alive_ms[slow_alive_ms.size() / 2]
              << " ms, max " << slow_alive_ms.back() << " ms while the slow client was connected\n";
  }
  std::cout << "dropped after " << submitted << " jobs; max queued messages " << max_queued
            << "; scheduler RSS " << rss_before << " -> " << rss_after << " KiB (the " << submitted
            << " pending jobs included)\n";

  // The dropped client, allowed to read, drains its socket and finds the close: 1008 and why.
  std::ofstream(go) << "go\n";
  ASSERT_TRUE(slow.WaitEnd()) << slow.Output();
  json::value end = *slow.End();
  EXPECT_EQ(end.at("end").as_string(), "closed") << json::serialize(end);
  EXPECT_EQ(end.at("code").to_number<int>(), 1008) << json::serialize(end);
  EXPECT_TRUE(std::string(end.at("reason").as_string()).starts_with("slow consumer"))
      << json::serialize(end);
  // Fewer events reached it than were sent: the rest were dropped with the queue.
  EXPECT_LT(end.at("events").to_number<size_t>(), submitted);
  EXPECT_TRUE(WaitFor([&] { return Metric(s, "gsched_ws_queued_messages") == 0; }));

  // The same batches with the slow client gone, for comparison (printed, not judged: timings on a
  // shared machine are not a pass/fail matter).
  std::vector<double> without_ms;
  for (int batch = 0; batch < 20; ++batch) {
    auto t0 = std::chrono::steady_clock::now();
    submitted += SubmitBatch(*client, kBatch).size();
    ASSERT_TRUE(caught_up(fast) && caught_up(other));
    without_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(without_ms.begin(), without_ms.end());
  std::cout << "without it: p50 " << without_ms[without_ms.size() / 2] << " ms, max "
            << without_ms.back() << " ms\n";

  // The readers are still subscribed, and got every event once, in order.
  uint64_t marker = Submit(s, alice);
  ++submitted;
  for (FeedProcess* f : {&fast, &other}) {
    ASSERT_TRUE(f->WaitEvents([&](const auto& e) {
      return !e.empty() && IsSubmitted(e.back(), marker);
    })) << f->Output();
    EXPECT_EQ(f->Events().size(), submitted);
    auto seqs = Seqs(f->Events());
    EXPECT_TRUE(std::adjacent_find(seqs.begin(), seqs.end(), std::greater_equal<>()) == seqs.end());
    EXPECT_FALSE(f->End().has_value()) << json::serialize(*f->End());
  }
  // State gauges are rendered once per tick.
  EXPECT_TRUE(WaitFor([&] { return Metric(s, "gsched_watch_subscribers") == 2; }));
}

// A token made by the admin: its id (for revocation) and the token.
std::pair<std::string, std::string> TokenWithId(const SchedulerProcess& s, const std::string& user,
                                                const std::string& account) {
  json::object body{
      {"user", user}, {"role", "user"}, {"accounts", json::array{json::value(account)}}};
  auto r = s.Client(s.admin_token())->Post("/v1/tokens", json::serialize(body));
  EXPECT_TRUE(r.ok() && r->status == 201) << (r.ok() ? r->body : r.status().ToString());
  if (!r.ok() || r->status != 201)
    return {};
  json::value v = Parse(r->body);
  return {std::string(v.at("id").as_string()), std::string(v.at("token").as_string())};
}

TEST(WatchProcessTest, ARevokedTokensFeedIsClosedPromptly) {
  SchedulerProcess s;
  auto [id, token] = TokenWithId(s, "alice", "proj-a");
  FeedProcess feed(s, token, "");
  FeedProcess admin(s, s.admin_token(), "");
  ASSERT_TRUE(feed.WaitConnected() && admin.WaitConnected()) << feed.Output();
  ASSERT_TRUE(WaitFor([&] { return Metric(s, "gsched_watch_subscribers") == 2; }));
  auto t0 = std::chrono::steady_clock::now();
  auto r = s.Client(s.admin_token())->Request("DELETE", "/v1/tokens/" + id);
  ASSERT_TRUE(r.ok() && r->status == 200) << (r.ok() ? r->body : r.status().ToString());
  ASSERT_TRUE(feed.WaitEnd(std::chrono::seconds(5))) << feed.Output();
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  json::value end = *feed.End();
  EXPECT_EQ(end.at("end").as_string(), "closed") << json::serialize(end);
  EXPECT_EQ(end.at("code").to_number<int>(), 1008) << json::serialize(end);
  EXPECT_EQ(end.at("reason").as_string(), "token revoked") << json::serialize(end);
  std::cout << "revoked feed closed " << ms.count() << " ms after the DELETE was sent\n";
  // The admin's feed goes on, and the revoked token cannot open a new one.
  EXPECT_FALSE(admin.End().has_value());
  EXPECT_TRUE(WaitFor([&] { return Metric(s, "gsched_watch_closed_revoked_total") == 1; }));
  // A new feed with the revoked token: the upgrade is accepted on the network thread, which does
  // not hold the revocations; the state thread then closes it, after the handshake, with why.
  FeedProcess again(s, token, "");
  ASSERT_TRUE(again.WaitEnd()) << again.Output();
  json::value refused = *again.End();
  EXPECT_EQ(refused.at("end").as_string(), "closed") << json::serialize(refused);
  EXPECT_EQ(refused.at("code").to_number<int>(), 1008) << json::serialize(refused);
  EXPECT_EQ(refused.at("reason").as_string(), "token revoked") << json::serialize(refused);
}

TEST(WatchProcessTest, EphemeralEventsReasonsUsageAndSummary) {
  SchedulerProcess s("watch:\n  summary_interval: 200ms\n");
  std::string alice = s.Token("alice", "user", {"proj-a"});
  std::string bob = s.Token("bob", "user", {"proj-b"});
  // The first pass after the start only records reasons; later ones report changes.
  ASSERT_TRUE(WaitFor([&] { return Metric(s, "gsched_scheduling_passes_total") >= 1; }));
  auto worker = ConnectWorker(s);
  ASSERT_TRUE(worker.ok()) << worker.status().ToString();

  FeedProcess alice_feed(s, alice, "ephemeral=1");
  FeedProcess bob_feed(s, bob, "ephemeral=1");
  FeedProcess plain(s, alice, "");
  ASSERT_TRUE(alice_feed.WaitConnected() && bob_feed.WaitConnected() && plain.WaitConnected())
      << alice_feed.Output();
  // One job takes the whole node; the next one waits for it.
  auto r = s.Client(alice)->Post(
      "/v1/jobs", R"({"image":"/i","command":["x"],"gpus_per_node":8,"gpu_type":"h100"})");
  ASSERT_TRUE(r.ok() && r->status == 201) << (r.ok() ? r->body : "");
  ASSERT_TRUE((*worker)->Read(Seconds(20)).ok());  // Its launch.
  uint64_t waiting = Submit(s, alice);
  auto count = [](const std::vector<json::value>& events, const std::string& type,
                  uint64_t job = 0) {
    return std::count_if(events.begin(), events.end(), [&](const json::value& e) {
      return Type(e) == type && (job == 0 || JobOf(e) == job);
    });
  };
  ASSERT_TRUE(alice_feed.WaitEvents([&](const auto& e) { return count(e, "job.reason", waiting); }))
      << alice_feed.Output();
  // More passes change nothing: still one `job.reason`.
  double passes = Metric(s, "gsched_scheduling_passes_total");
  ASSERT_TRUE(WaitFor([&] { return Metric(s, "gsched_scheduling_passes_total") >= passes + 3; }));
  // A summary made after those passes shows the queue: one pending job, 8 of 8 GPUs busy.
  ASSERT_TRUE(alice_feed.WaitEvents([&](const std::vector<json::value>& events) {
    for (auto it = events.rbegin(); it != events.rend(); ++it) {
      if (Type(*it) == "cluster.summary")
        return it->at("data").at("pending").to_number<int64_t>() == 1 &&
               it->at("data").at("gpus_busy").to_number<int64_t>() == 8;
    }
    return false;
  })) << alice_feed.Output();
  const auto& events = alice_feed.Events();
  EXPECT_EQ(count(events, "job.reason", waiting), 1);
  json::value reason;
  for (const auto& e : events) {
    if (Type(e) == "job.reason")
      reason = e;
  }
  EXPECT_FALSE(DataString(reason, "code").empty()) << json::serialize(reason);
  EXPECT_EQ(DataString(reason, "user"), "alice");
  // `account.usage`: alice's account only; bob's feed: his account only, none of alice's jobs.
  EXPECT_GT(count(events, "account.usage"), 0);
  for (const auto& e : events) {
    if (Type(e) == "account.usage") {
      EXPECT_EQ(DataString(e, "account"), "proj-a") << json::serialize(e);
    }
  }
  ASSERT_TRUE(bob_feed.WaitEvents([&](const auto& e) { return count(e, "account.usage") > 0; }));
  for (const auto& e : bob_feed.Events()) {
    EXPECT_FALSE(Type(e).starts_with("job.")) << json::serialize(e);
    if (Type(e) == "account.usage") {
      EXPECT_EQ(DataString(e, "account"), "proj-b") << json::serialize(e);
    }
  }
  EXPECT_GT(count(bob_feed.Events(), "cluster.summary"), 0);
  // Seqs never go back: an ephemeral event repeats the seq of the log event before it.
  auto seqs = Seqs(events);
  EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()));
  // Without `ephemeral=1`: only log events, strictly increasing.
  for (const auto& e : plain.Events())
    EXPECT_TRUE(Type(e) != "job.reason" && Type(e) != "account.usage" &&
                Type(e) != "cluster.summary")
        << json::serialize(e);
  EXPECT_TRUE(WaitFor([&] { return Metric(s, "gsched_watch_ephemeral_sent_total") > 0; }));
}

}  // namespace
}  // namespace gsched::testing
