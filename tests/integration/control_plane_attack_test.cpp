// Attacks on the control plane with the tokens a tenant or a compromised node has, against the
// real `gsched-scheduler` (DESIGN.md section 11, issue 18). Each test is one attack; each failed
// against main before the defence it checks.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "scheduler/api/worker_messages.h"
#include "scheduler/state/rocksdb_store.h"
#include "tests/integration/scheduler_process.h"
#include "tests/integration/scripted_worker.h"
#include "tests/integration/watch_events.h"

namespace gsched::testing {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

using watch_events::Metric;

json::value Get(const SchedulerProcess& s, const std::string& token, const std::string& path) {
  auto r = s.Client(token)->Get(path);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200) << path << ": " << r->body;
  return Parse(r->body);
}

std::string JobState(const SchedulerProcess& s, const std::string& token, uint64_t id) {
  auto r = s.Client(token)->Get("/v1/jobs/" + std::to_string(id));
  if (!r.ok() || r->status != 200)
    return "?";
  return std::string(Parse(r->body).at("state").as_string());
}

uint64_t Submit(const SchedulerProcess& s, const std::string& token, const std::string& spec) {
  auto r = s.Client(token)->Post("/v1/jobs", spec);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r->status, 201) << r->body;
  return r->status == 201 ? Parse(r->body).at("id").to_number<uint64_t>() : 0;
}

// A job of alice's running on node-2, with node-2's worker connected.
struct RunningOnNode2 {
  explicit RunningOnNode2(SchedulerProcess& s)
      : alice(s.Token("alice", "user", {"proj-a"})),
        node2(std::make_unique<ScriptedWorker>(s, s.Token("w2", "worker", {}, {"node-2"}))) {
    node2->Send(EightGpuHello("node-2"));
    id = Submit(s, alice, R"({"image":"/i","command":["x"],"gpus_per_node":8,"gpu_type":"h100"})");
    api::SchedulerMessage m = node2->Next();
    EXPECT_TRUE(std::holds_alternative<api::Launch>(m)) << api::SerializeMessage(m);
    node2->Send(api::JobUpdate{id, 1, api::JobState::kRunning, std::nullopt, std::nullopt, "",
                               std::nullopt});
    EXPECT_TRUE(WaitFor([&] { return JobState(s, alice, id) == "running"; }));
  }
  std::string alice;
  std::unique_ptr<ScriptedWorker> node2;
  uint64_t id = 0;
};

// ---- Worker identity ------------------------------------------------------------------------

TEST(ControlPlaneAttackTest, StolenWorkerTokenCannotSayHelloAsAnotherNode) {
  SchedulerProcess s;
  RunningOnNode2 victim(s);
  // A token for node-1 (e.g. taken from a compromised node) says hello as node-2 with nothing
  // running: refused with a reason, counted; node-2's job and connection are untouched.
  ScriptedWorker thief(s, s.Token("w1", "worker", {}, {"node-1"}));
  thief.Send(EightGpuHello("node-2"));
  auto closed = thief.ClosedWithin(Seconds(5));
  ASSERT_TRUE(closed.has_value()) << "the hello as node-2 was accepted";
  EXPECT_NE(closed->find("may not serve node 'node-2'"), std::string::npos) << *closed;
  EXPECT_EQ(Metric(s, "gsched_worker_hello_refused_total"), 1);
  EXPECT_EQ(JobState(s, victim.alice, victim.id), "running");
  EXPECT_FALSE(victim.node2->ClosedWithin(std::chrono::milliseconds(300)).has_value());
  auto job = Get(s, victim.alice, "/v1/jobs/" + std::to_string(victim.id));
  EXPECT_EQ(job.at("attempt").as_int64(), 1);
  EXPECT_NE(s.Log().find("refused"), std::string::npos);

  // A prefix covers what it names and nothing else; one connection serves one node.
  ScriptedWorker rack(s, s.Token("rack", "worker", {}, {"rack7-*"}));
  rack.Send(EightGpuHello("rack7-n01"));
  rack.Send(EightGpuHello("rack8-n01"));
  auto rack_closed = rack.ClosedWithin(Seconds(5));
  ASSERT_TRUE(rack_closed.has_value());
  EXPECT_NE(rack_closed->find("rack8-n01"), std::string::npos) << *rack_closed;
  auto nodes = Get(s, s.admin_token(), "/v1/nodes").at("nodes").as_array();
  std::set<std::string> names;
  for (const auto& n : nodes)
    names.insert(std::string(n.at("name").as_string()));
  EXPECT_EQ(names, (std::set<std::string>{"node-2", "rack7-n01"}));
}

TEST(ControlPlaneAttackTest, OnlyWorkerTokensNamingNodesOpenTheWorkerChannel) {
  SchedulerProcess s;
  // An admin token is not a worker token: it opens no channel that receives launches.
  auto admin = net::WsClient::Connect(s.url(), "/v1/workers/connect",
                                      {.token = s.admin_token(), .timeout = Seconds(10)});
  ASSERT_FALSE(admin.ok());
  EXPECT_EQ(admin.status().code(), StatusCode::kPermissionDenied);
  // A worker token must name what it serves; `*` (every node) only when asked for.
  auto r = s.Client(s.admin_token())
               ->Post("/v1/tokens", R"({"user":"w","role":"worker","accounts":[]})");
  ASSERT_EQ(r->status, 400) << r->body;
  EXPECT_EQ(Parse(r->body).at("error").at("field").as_string(), "nodes");
  auto bad = s.Client(s.admin_token())
                 ->Post("/v1/tokens", R"({"user":"w","role":"worker","nodes":["a*b"]})");
  ASSERT_EQ(bad->status, 400) << bad->body;
  EXPECT_EQ(Parse(bad->body).at("error").at("field").as_string(), "nodes[0]");
  auto user_nodes =
      s.Client(s.admin_token())->Post("/v1/tokens", R"({"user":"u","role":"user","nodes":["n1"]})");
  EXPECT_EQ(user_nodes->status, 400) << user_nodes->body;
  ScriptedWorker any(s, s.Token("any", "worker", {}, {"*"}));
  any.Send(EightGpuHello("whatever-7"));
  ASSERT_TRUE(WaitFor(
      [&] { return Get(s, s.admin_token(), "/v1/nodes").at("nodes").as_array().size() == 1; }));
}

TEST(ControlPlaneAttackTest, JobUpdatesCountOnlyForAttemptsOnTheConnectionsNode) {
  SchedulerProcess s;
  RunningOnNode2 victim(s);
  // node-1's worker reports node-2's job as failed: ignored and counted.
  ScriptedWorker other(s, s.Token("node-1", "worker", {}));
  other.Send(EightGpuHello("node-1"));
  other.Send(
      api::JobUpdate{victim.id, 1, api::JobState::kFailed, 1, std::nullopt, "", std::nullopt});
  ASSERT_TRUE(WaitFor([&] { return Metric(s, "gsched_worker_updates_ignored_total") == 1; }));
  EXPECT_EQ(JobState(s, victim.alice, victim.id), "running");
  // And its own GPU health reports: the same report twice writes once.
  double commits = Metric(s, "gsched_store_commits_total");
  api::GpuHealthReport bad{"node-1", {{3, api::GpuHealth::kUnhealthy, "xid 79", 79}}};
  for (int i = 0; i < 20; ++i)
    other.Send(bad);
  // A change after them, on the same connection, marks where they have all been handled.
  other.Send(api::GpuHealthReport{"node-1", {{5, api::GpuHealth::kUnhealthy, "ecc", {}}}});
  ASSERT_TRUE(WaitFor([&] {
    json::value nodes = Get(s, s.admin_token(), "/v1/nodes");
    for (const auto& n : nodes.at("nodes").as_array()) {
      if (n.at("name") == "node-1" && n.at("gpus").as_array()[5].at("health") == "unhealthy")
        return true;
    }
    return false;
  }));
  // commits: 1 (the first report) + 1 (the marker), not 21.
  EXPECT_EQ(Metric(s, "gsched_store_commits_total") - commits, 2);
}

// `GET /v1/cluster` and `/metrics` count GPUs alike: an unhealthy GPU is `unhealthy` in both
// (`/metrics` counted it idle).
TEST(ControlPlaneAttackTest, ClusterAndMetricsCountUnhealthyGpusAlike) {
  SchedulerProcess s;
  ScriptedWorker w(s, s.Token("node-1", "worker", {}));
  w.Send(EightGpuHello("node-1"));
  w.Send(api::GpuHealthReport{"node-1", {{3, api::GpuHealth::kUnhealthy, "xid 79", 79}}});
  auto h100 = [&] {
    json::value c = Get(s, s.admin_token(), "/v1/cluster");
    const json::value* t = c.is_object() && c.as_object().contains("gpus")
                               ? c.at("gpus").as_object().if_contains("h100")
                               : nullptr;
    return t ? *t : json::value();
  };
  ASSERT_TRUE(WaitFor([&] {
    json::value t = h100();
    return t.is_object() && t.at("unhealthy").as_int64() == 1;
  })) << json::serialize(h100());
  EXPECT_EQ(h100().at("idle").as_int64(), 7);
  // `/metrics` renders the state's gauges once per tick: the next one agrees.
  EXPECT_TRUE(
      WaitFor([&] { return Metric(s, R"(gsched_gpus{type="h100",state="unhealthy"})") == 1; }));
  EXPECT_EQ(Metric(s, R"(gsched_gpus{type="h100",state="idle"})"), 7);
  EXPECT_EQ(Metric(s, R"(gsched_gpus{type="h100",state="busy"})"), 0);
}

TEST(ControlPlaneAttackTest, AFloodingWorkerIsDisconnected) {
  SchedulerProcess s("rate_limit:\n  worker_messages_per_s: 20\n  worker_message_burst: 50\n");
  ScriptedWorker quiet(s, s.Token("node-1", "worker", {}));
  quiet.Send(EightGpuHello("node-1"));
  ScriptedWorker flood(s, s.Token("node-2", "worker", {}));
  flood.Send(EightGpuHello("node-2"));
  // 500 messages at once: 50 fit the burst, the rest close the connection.
  for (int i = 0; i < 500; ++i) {
    api::Heartbeat hb;
    hb.node = "node-2";
    hb.time = FromUnixSeconds(1'800'000'000);
    if (!flood.TrySend(hb))
      break;
  }
  auto closed = flood.ClosedWithin(Seconds(5));
  ASSERT_TRUE(closed.has_value());
  EXPECT_NE(closed->find("rate limit"), std::string::npos) << *closed;
  EXPECT_EQ(Metric(s, "gsched_worker_rate_limited_total"), 1);
  // The other worker's connection is its own.
  EXPECT_FALSE(quiet.ClosedWithin(std::chrono::milliseconds(300)).has_value());
}

// ---- Revocation and expiry ------------------------------------------------------------------

TEST(ControlPlaneAttackTest, RevokedTokensLoseEveryOpenSocketWithinASecond) {
  SchedulerProcess s;
  auto made = s.Client(s.admin_token())
                  ->Post("/v1/tokens", R"({"user":"node-1","role":"worker","nodes":["node-1"]})");
  ASSERT_EQ(made->status, 201);
  std::string worker_token(Parse(made->body).at("token").as_string());
  std::string worker_id(Parse(made->body).at("id").as_string());
  made = s.Client(s.admin_token())
             ->Post("/v1/tokens", R"({"user":"alice","role":"user","accounts":["proj-a"]})");
  std::string alice(Parse(made->body).at("token").as_string());
  std::string alice_id(Parse(made->body).at("id").as_string());
  ScriptedWorker w(s, worker_token);
  w.Send(EightGpuHello("node-1"));
  // A worker that connected but never said hello is closed too.
  ScriptedWorker silent(s, worker_token);
  auto feed = net::WsClient::Connect(s.url(), "/v1/watch?topics=jobs",
                                     {.token = alice, .timeout = Seconds(10)});
  ASSERT_TRUE(feed.ok()) << feed.status().ToString();
  ASSERT_TRUE(WaitFor([&] { return Metric(s, "gsched_workers_connected") == 1; }));

  auto t0 = Clock::now();
  ASSERT_EQ(s.Client(s.admin_token())->Request("DELETE", "/v1/tokens/" + worker_id)->status, 200);
  ASSERT_EQ(s.Client(s.admin_token())->Request("DELETE", "/v1/tokens/" + alice_id)->status, 200);
  auto closed = w.ClosedWithin(Seconds(1));
  ASSERT_TRUE(closed.has_value()) << "the worker channel outlived its token's revocation";
  EXPECT_NE(closed->find("revoked"), std::string::npos) << *closed;
  EXPECT_TRUE(silent.ClosedWithin(Seconds(1)).has_value());
  auto read = (*feed)->Read(Seconds(1));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kUnavailable) << read.status().ToString();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2));
  // And it cannot come back.
  auto again = net::WsClient::Connect(s.url(), "/v1/workers/connect",
                                      {.token = worker_token, .timeout = Seconds(10)});
  if (again.ok()) {
    auto text = (*again)->Read(Seconds(2));
    EXPECT_FALSE(text.ok());
    EXPECT_EQ(text.status().code(), StatusCode::kUnavailable);
  }
}

TEST(ControlPlaneAttackTest, ExpiredTokensLoseEveryOpenSocketWithinASecond) {
  SchedulerProcess s;
  auto made =
      s.Client(s.admin_token())
          ->Post("/v1/tokens",
                 R"({"user":"node-1","role":"worker","nodes":["node-1"],"expires_in_s":2})");
  ASSERT_EQ(made->status, 201) << made->body;
  auto expires = Clock::now() + std::chrono::seconds(2);
  ScriptedWorker w(s, std::string(Parse(made->body).at("token").as_string()));
  w.Send(EightGpuHello("node-1"));
  made = s.Client(s.admin_token())
             ->Post("/v1/tokens",
                    R"({"user":"alice","role":"user","accounts":["proj-a"],"expires_in_s":2})");
  auto feed = net::WsClient::Connect(
      s.url(), "/v1/watch?topics=jobs",
      {.token = std::string(Parse(made->body).at("token").as_string()), .timeout = Seconds(10)});
  ASSERT_TRUE(feed.ok()) << feed.status().ToString();
  // Token expiry is in whole seconds: at most 1 s early, and closed within 1 s after.
  auto closed = w.ClosedWithin(Seconds(4));
  ASSERT_TRUE(closed.has_value()) << "the worker channel outlived its token";
  EXPECT_NE(closed->find("expired"), std::string::npos) << *closed;
  EXPECT_LT(Clock::now(), expires + std::chrono::milliseconds(1500));
  auto read = (*feed)->Read(Seconds(2));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kUnavailable) << read.status().ToString();
  EXPECT_LT(Clock::now(), expires + std::chrono::milliseconds(1500));
}

TEST(ControlPlaneAttackTest, ATokensWatchFeedsAreBounded) {
  SchedulerProcess s("watch:\n  max_feeds_per_token: 3\n");
  std::string alice = s.Token("alice", "user", {"proj-a"});
  std::vector<std::unique_ptr<net::WsClient>> feeds;
  for (int i = 0; i < 3; ++i) {
    auto f = net::WsClient::Connect(s.url(), "/v1/watch?topics=jobs",
                                    {.token = alice, .timeout = Seconds(10)});
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    feeds.push_back(std::move(f).value());
  }
  // Subscriptions start on the state thread: wait until the three are counted.
  ASSERT_TRUE(WaitFor([&] { return Metric(s, "gsched_watch_subscribers") == 3; }));
  auto fourth = net::WsClient::Connect(s.url(), "/v1/watch?topics=jobs",
                                       {.token = alice, .timeout = Seconds(10)});
  ASSERT_TRUE(fourth.ok());
  auto read = (*fourth)->Read(Seconds(5));
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("max_feeds_per_token"), std::string::npos)
      << read.status().ToString();
  EXPECT_EQ(Metric(s, "gsched_watch_feeds_refused_total"), 1);
  // Another token is not affected.
  auto other =
      net::WsClient::Connect(s.url(), "/v1/watch?topics=jobs",
                             {.token = s.Token("bob", "user", {"proj-b"}), .timeout = Seconds(10)});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->Read(std::chrono::milliseconds(300)).status().code(),
            StatusCode::kDeadlineExceeded);
}

TEST(ControlPlaneAttackTest, OneTokenCannotHoldEveryConnection) {
  SchedulerProcess s("limits:\n  max_connections: 40\n  max_connections_per_token: 8\n");
  std::string alice = s.Token("alice", "user", {"proj-a"});
  // A stolen token opens nearly every slot, each kept alive with a request on it.
  std::vector<std::unique_ptr<net::HttpClient>> held;
  int admitted = 0;
  int refused = 0;
  for (int i = 0; i < 36; ++i) {
    auto c = net::HttpClient::Create(s.url(), {.token = alice, .timeout = Seconds(10)});
    ASSERT_TRUE(c.ok());
    auto r = (*c)->Get("/v1/jobs");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    if (r->status == 200) {
      ++admitted;
      held.push_back(std::move(c).value());
    } else {
      ++refused;
      EXPECT_EQ(r->status, 429) << r->body;
      EXPECT_NE(r->body.find("max_connections_per_token"), std::string::npos) << r->body;
    }
  }
  EXPECT_EQ(admitted, 8);
  EXPECT_EQ(refused, 28);
  EXPECT_EQ(Metric(s, "gsched_connections_refused_total"), 28);
  // The server closed the refused connections: their slots are free for everyone else.
  ASSERT_TRUE(WaitFor([&] { return Metric(s, "gsched_http_connections") <= 9; }));
  // Five other tokens, five connections each: every one is answered.
  std::vector<std::string> tokens;
  for (int t = 0; t < 5; ++t)
    tokens.push_back(s.Token("user" + std::to_string(t), "user", {"proj-b"}));
  std::vector<std::unique_ptr<net::HttpClient>> others;
  for (int i = 0; i < 25; ++i) {
    auto c = net::HttpClient::Create(s.url(), {.token = tokens[i % 5], .timeout = Seconds(10)});
    ASSERT_TRUE(c.ok());
    auto r = (*c)->Get("/v1/jobs");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200) << r->body;
    others.push_back(std::move(c).value());
  }
  // A connection the token closes gives its place back.
  held.pop_back();
  EXPECT_TRUE(WaitFor([&] {
    auto c = net::HttpClient::Create(s.url(), {.token = alice, .timeout = Seconds(10)});
    auto r = (*c)->Get("/v1/jobs");
    return r.ok() && r->status == 200;
  }));
}

TEST(ControlPlaneAttackTest, AMetricsFloodCostsTheStateThreadLittle) {
  SchedulerProcess s;
  // `/metrics` needs no token. Eight clients ask as fast as they can; the state thread renders
  // the state's gauges at most once per 100 ms (and once per 1 s tick), not once per request.
  double before = Metric(s, "gsched_metrics_state_renders_total");
  std::atomic<int> answered{0};
  auto t0 = Clock::now();
  std::vector<std::thread> flood;
  for (int t = 0; t < 8; ++t) {
    flood.emplace_back([&] {
      auto c = net::HttpClient::Create(s.url(), {.timeout = Seconds(10)});
      for (int i = 0; i < 150; ++i) {
        auto r = (*c)->Get("/metrics");
        if (r.ok() && r->status == 200)
          ++answered;
      }
    });
  }
  for (auto& t : flood)
    t.join();
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  double renders = Metric(s, "gsched_metrics_state_renders_total") - before;
  EXPECT_EQ(answered.load(), 1200);
  // At most one per 100 ms and one per tick, each rounded up, and the scrapes that read the
  // counter before and after the flood.
  EXPECT_LE(renders, std::ceil(seconds / 0.1) + std::ceil(seconds / 1.0) + 4)
      << answered << " answers in " << seconds << " s";
  // What a client just did shows in the counters at once.
  std::string alice = s.Token("alice", "user", {"proj-a"});
  double submitted = Metric(s, "gsched_jobs_submitted_total");
  Submit(s, alice, R"({"image":"/i","command":["x"]})");
  EXPECT_EQ(Metric(s, "gsched_jobs_submitted_total"), submitted + 1);
}

// ---- Visibility -----------------------------------------------------------------------------

std::set<std::string> AccountNames(const json::value& list) {
  std::set<std::string> out;
  for (const auto& a : list.as_array()) {
    const json::value* name = a.as_object().if_contains("name");
    if (name == nullptr)
      name = a.as_object().if_contains("account");  // `/v1/cluster`'s standings.
    out.insert(std::string(name->as_string()));
  }
  return out;
}

const json::object& Account(const json::value& body, const std::string& name) {
  for (const auto& a : body.at("accounts").as_array()) {
    if (a.at("name").as_string() == name)
      return a.as_object();
  }
  static const json::object none;
  ADD_FAILURE() << "no account " << name;
  return none;
}

TEST(ControlPlaneAttackTest, UsersSeeTheirAccountsSubtreeAndAncestorsOnly) {
  SchedulerProcess s;
  auto admin = s.Client(s.admin_token());
  for (const char* name : {"lab", "other"}) {
    auto r =
        admin->Request("PUT", std::string("/v1/accounts/") + name,
                       R"({"parent":"root","shares":1,"users":["carol","dave"],)"
                       R"("budget":{"gpu_hours":1000,"start":"2027-01-01","end":"2027-12-31"}})");
    ASSERT_EQ(r->status, 200) << r->body;
  }
  std::string alice = s.Token("alice", "user", {"proj-a"});
  auto mine = Get(s, alice, "/v1/accounts");
  // proj-a whole; lab (its parent) and root in outline; other and proj-b not at all.
  EXPECT_EQ(AccountNames(mine.at("accounts")), (std::set<std::string>{"root", "lab", "proj-a"}));
  EXPECT_FALSE(Account(mine, "lab").contains("users"));
  EXPECT_FALSE(Account(mine, "lab").contains("budget"));
  auto cluster = Get(s, alice, "/v1/cluster");
  EXPECT_EQ(AccountNames(cluster.at("accounts")), (std::set<std::string>{"root", "lab", "proj-a"}));
  // A coordinator of lab: lab's subtree whole, root in outline, other not at all.
  std::string coord = s.Token("cora", "coordinator", {"lab"});
  auto theirs = Get(s, coord, "/v1/accounts");
  EXPECT_EQ(AccountNames(theirs.at("accounts")),
            (std::set<std::string>{"root", "lab", "proj-a", "proj-b"}));
  EXPECT_TRUE(Account(theirs, "lab").contains("users"));
  EXPECT_TRUE(Account(theirs, "lab").contains("budget"));
  // Admins see everything.
  EXPECT_EQ(AccountNames(Get(s, s.admin_token(), "/v1/accounts").at("accounts")).size(), 5u);
}

TEST(ControlPlaneAttackTest, AJobTheCallerMayNotSeeIsNotThereWhereverItIsNamed) {
  SchedulerProcess s;
  std::string alice = s.Token("alice", "user", {"proj-a"});
  std::string bob = s.Token("bob", "user", {"proj-b"});
  uint64_t pending = Submit(s, bob, R"({"image":"/i","command":["x"],"gpu_type":"h100"})");
  uint64_t ended = Submit(s, bob, R"({"image":"/i","command":["x"],"gpu_type":"h100"})");
  ASSERT_EQ(s.Client(bob)->Post("/v1/jobs/" + std::to_string(ended) + "/cancel", "")->status, 200);
  uint64_t never = 999'999;
  auto body_of = [&](const std::string& method, const std::string& path) {
    auto r = s.Client(alice)->Request(method, path);
    EXPECT_EQ(r->status, 404) << method << " " << path << ": " << r->body;
    return std::string(Parse(r->body).at("error").at("code").as_string());
  };
  for (uint64_t id : {pending, ended, never}) {
    std::string job = "/v1/jobs/" + std::to_string(id);
    body_of("GET", job);
    body_of("GET", job + "/logs");
    body_of("POST", job + "/cancel");
    body_of("POST", job + "/hold");
    body_of("POST", job + "/release");
    auto r = s.Client(alice)->Post(
        "/v1/jobs", R"({"image":"/i","command":["x"],"depends_on":[{"type":"afterany","job":)" +
                        std::to_string(id) + "}]}");
    EXPECT_EQ(r->status, 404) << r->body;
    EXPECT_EQ(Parse(r->body).at("error").at("field").as_string(), "depends_on[0].job");
  }
  EXPECT_EQ(JobState(s, bob, pending), "pending");
  // Bob may still name his own finished job.
  auto own = s.Client(bob)->Post(
      "/v1/jobs", R"({"image":"/i","command":["x"],"depends_on":[{"type":"afterany","job":)" +
                      std::to_string(ended) + "}]}");
  EXPECT_EQ(own->status, 201) << own->body;
}

TEST(ControlPlaneAttackTest, AHoldPlacedByAnAdminIsReleasedOnlyByAnAdmin) {
  SchedulerProcess s;
  std::string alice = s.Token("alice", "user", {"proj-a"});
  std::string coord = s.Token("cora", "coordinator", {"lab"});
  uint64_t id = Submit(s, alice, R"({"image":"/i","command":["x"],"gpu_type":"h100"})");
  std::string job = "/v1/jobs/" + std::to_string(id);
  auto held = s.Client(s.admin_token())->Post(job + "/hold", "");
  ASSERT_EQ(held->status, 200) << held->body;
  EXPECT_EQ(Parse(held->body).at("held_by").as_string(), "admin");
  EXPECT_EQ(Parse(held->body).at("held_by_role").as_string(), "admin");
  auto refused = s.Client(alice)->Post(job + "/release", "");
  EXPECT_EQ(refused->status, 403) << refused->body;
  EXPECT_EQ(s.Client(coord)->Post(job + "/release", "")->status, 403);
  EXPECT_TRUE(Get(s, alice, job).at("held").as_bool());
  // The record survives a restart.
  s.Crash();
  s.Start();
  EXPECT_EQ(s.Client(alice)->Post(job + "/release", "")->status, 403);
  EXPECT_EQ(s.Client(s.admin_token())->Post(job + "/release", "")->status, 200);
  // A coordinator's hold binds the user, not the coordinator; the user's own binds nobody.
  ASSERT_EQ(s.Client(coord)->Post(job + "/hold", "")->status, 200);
  EXPECT_EQ(s.Client(alice)->Post(job + "/release", "")->status, 403);
  EXPECT_EQ(s.Client(coord)->Post(job + "/release", "")->status, 200);
  ASSERT_EQ(s.Client(alice)->Post(job + "/hold", "")->status, 200);
  EXPECT_EQ(s.Client(alice)->Post(job + "/release", "")->status, 200);
}

// ---- Bad input never bricks state -----------------------------------------------------------

TEST(ControlPlaneAttackTest, AnAccountNameTheLoaderRefusesIsNeverStored) {
  SchedulerProcess s;
  auto r = s.Client(s.admin_token())->Request("PUT", "/v1/accounts/a%20b", R"({"shares":1})");
  ASSERT_EQ(r->status, 400) << r->body;
  EXPECT_EQ(Parse(r->body).at("error").at("field").as_string(), "name");
  s.Crash();
  s.Start();
  auto names = AccountNames(Get(s, s.admin_token(), "/v1/accounts").at("accounts"));
  EXPECT_FALSE(names.contains("a b"));
}

TEST(ControlPlaneAttackTest, UndecodableRecordsAreQuarantinedAndTheSchedulerStarts) {
  SchedulerProcess s;
  std::string alice = s.Token("alice", "user", {"proj-a"});
  uint64_t good = Submit(s, alice, R"({"image":"/i","command":["x"],"gpu_type":"h100"})");
  uint64_t bad = Submit(s, alice, R"({"image":"/i","command":["x"],"gpu_type":"h100"})");
  ASSERT_EQ(s.Stop(), 0) << s.Log();
  {
    auto store = state::RocksDbStore::Open({.path = s.data_dir() + "/db"});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    state::WriteBatch b;
    // `lab`, the parent of proj-a (where both jobs are), no longer decodes; nor does one job, nor
    // a node, nor a usage record.
    b.Put(state::Family::kAccounts, "lab", R"({"name":"lab","shares":"many"})");
    b.Put(state::Family::kJobs, state::U64Key(bad), std::string("\x02garbage", 8));
    b.Put(state::Family::kNodes, "node-9", "[]");
    b.Put(state::Family::kUsage, "proj-a", "{");
    ASSERT_TRUE((*store)->Commit(std::move(b)).ok());
  }
  s.Start();
  EXPECT_EQ(Metric(s, "gsched_store_quarantined_records"), 4) << s.Log();
  EXPECT_EQ(JobState(s, alice, good), "pending");
  EXPECT_EQ(s.Client(alice)->Get("/v1/jobs/" + std::to_string(bad))->status, 404);
  auto accounts = Get(s, s.admin_token(), "/v1/accounts");
  EXPECT_EQ(Account(accounts, "proj-a").at("parent").as_string(), "root");
  // New jobs get ids after the quarantined one.
  EXPECT_GT(Submit(s, alice, R"({"image":"/i","command":["x"]})"), bad);
  EXPECT_NE(s.Log().find("quarantining the jobs record"), std::string::npos);
  // The records were moved aside, not skipped: the next start meets none, and they are kept.
  ASSERT_EQ(s.Stop(), 0);
  {
    auto store = state::RocksDbStore::Open({.path = s.data_dir() + "/db"});
    ASSERT_TRUE(store.ok());
    EXPECT_FALSE((*store)->Get(state::Family::kAccounts, "lab").ok());
    auto kept = (*store)->Get(state::Family::kMeta, "quarantine/accounts/lab");
    ASSERT_TRUE(kept.ok());
    EXPECT_EQ(*kept, R"({"name":"lab","shares":"many"})");
  }
  s.Start();
  EXPECT_EQ(Metric(s, "gsched_store_quarantined_records"), 0);
}

// ---- Bounded cost per request ---------------------------------------------------------------

// A spec of 16 arguments of 64 KiB: about 1 MiB.
std::string BigSpec(const std::string& array) {
  json::array command;
  for (int i = 0; i < 16; ++i)
    command.emplace_back(std::string(64 * 1024, 'a' + i));
  json::object spec{{"image", "/i"}, {"command", std::move(command)}, {"array", array}};
  return json::serialize(spec);
}

int64_t RssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stoll(line.substr(6));
  }
  return -1;
}

TEST(ControlPlaneAttackTest, ASubmissionsExpandedSizeIsBounded) {
  SchedulerProcess s;
  std::string alice = s.Token("alice", "user", {"proj-a"});
  int64_t before = RssKib(s.pid());
  // 1 MiB x 100 tasks = 100 MiB expanded, over the default 64 MiB, from a 1 MiB body.
  auto r = s.Client(alice)->Post("/v1/jobs", BigSpec("0-99"));
  ASSERT_EQ(r->status, 400) << r->body.substr(0, 300);
  EXPECT_EQ(Parse(r->body).at("error").at("field").as_string(), "array");
  auto batch = s.Client(alice)->Post(
      "/v1/jobs", R"({"jobs":[{"image":"/i","command":["x"]},)" + BigSpec("0-99") + "]}");
  ASSERT_EQ(batch->status, 400);
  EXPECT_EQ(Parse(batch->body).at("error").at("field").as_string(), "jobs[1].array");
  // Nothing of it was kept: the scheduler did not grow by the expansion (100 MiB).
  EXPECT_LT(RssKib(s.pid()) - before, 50 * 1024);
  // 1 MiB x 10 tasks fits.
  EXPECT_EQ(s.Client(alice)->Post("/v1/jobs", BigSpec("0-9"))->status, 201);
}

// `GET /v1/usage` reads the ledger hour by hour over its window: a window back to 1970 would read
// all of it. Windows are bounded (limits.max_usage_window, ten years by default).
TEST(ControlPlaneAttackTest, AUsageReportsWindowIsBounded) {
  SchedulerProcess s;
  std::string alice = s.Token("alice", "user", {"proj-a"});
  auto r = s.Client(alice)->Get("/v1/usage?since=1970-01-01");
  ASSERT_EQ(r->status, 400) << r->body;
  EXPECT_EQ(Parse(r->body).at("error").at("field").as_string(), "since");
  EXPECT_NE(r->body.find("limits.max_usage_window"), std::string::npos) << r->body;
  EXPECT_EQ(s.Client(alice)->Get("/v1/usage")->status, 200);  // The last 30 days.
  EXPECT_EQ(s.Client(alice)->Get("/v1/usage?since=2026-01-01&until=2027-01-01")->status, 200);
}

TEST(ControlPlaneAttackTest, UsersHaveADefaultPendingLimitWhereAccountsSetNone) {
  SchedulerProcess s("limits:\n  max_pending_jobs_per_user: 5\n");
  std::string alice = s.Token("alice", "user", {"proj-a"});
  EXPECT_EQ(
      s.Client(alice)->Post("/v1/jobs", R"({"image":"/i","command":["x"],"array":"0-4"})")->status,
      201);
  auto r = s.Client(alice)->Post("/v1/jobs", R"({"image":"/i","command":["x"]})");
  EXPECT_EQ(r->status, 429) << r->body;
  EXPECT_NE(r->body.find("limits.max_pending_jobs_per_user"), std::string::npos) << r->body;
  // An account's own limit wins over the default.
  ASSERT_EQ(s.Client(s.admin_token())
                ->Request("PUT", "/v1/accounts/proj-b",
                          R"({"parent":"lab","shares":1,"max_pending_jobs_per_user":10})")
                ->status,
            200);
  std::string bob = s.Token("bob", "user", {"proj-b"});
  EXPECT_EQ(
      s.Client(bob)->Post("/v1/jobs", R"({"image":"/i","command":["x"],"array":"0-9"})")->status,
      201);
}

// A TCP connection that sends `text` and then nothing.
int SlowSocket(const std::string& url, const std::string& text) {
  auto parsed = net::ParseServerUrl(url);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(parsed->port)));
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  if (!text.empty() && ::send(fd, text.data(), text.size(), MSG_NOSIGNAL) < 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(ControlPlaneAttackTest, SlowClientsCannotHoldTheConnectionSlots) {
  SchedulerProcess s("limits:\n  request_timeout: 1s\n  max_connections: 200\n");
  // 300 sockets that send half a header and 100 that send nothing: more than every slot.
  std::vector<int> slow;
  for (int i = 0; i < 400; ++i) {
    int fd = SlowSocket(s.url(), i < 300 ? "GET /v1/cluster HTTP/1.1\r\nHost: x\r\nX-A: " : "");
    if (fd >= 0)
      slow.push_back(fd);
  }
  auto attack = Clock::now();
  // A normal client is answered once the slow ones time out: within `request_timeout` and a
  // margin, not the 120 s `idle_timeout`.
  bool answered = false;
  while (!answered && Clock::now() - attack < std::chrono::seconds(3)) {
    auto c = net::HttpClient::Create(s.url(), {.timeout = std::chrono::milliseconds(500)});
    auto r = (*c)->Get("/healthz");
    answered = r.ok() && r->status == 200;
  }
  auto took = Clock::now() - attack;
  EXPECT_TRUE(answered);
  EXPECT_LT(took, std::chrono::milliseconds(2500))
      << std::chrono::duration<double>(took).count() << " s";
  // The slow sockets were closed by the server.
  int closed = 0;
  for (int fd : slow) {
    timeval tv{0, 100'000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char c;
    ssize_t n = ::recv(fd, &c, 1, 0);
    closed += n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) ? 1 : 0;
    ::close(fd);
  }
  EXPECT_EQ(closed, static_cast<int>(slow.size()));
}

// ---- A full disk loses nothing --------------------------------------------------------------

// A size-limited tmpfs mounted over a directory for the test's life.
class SmallFilesystem {
 public:
  bool Mount(const std::string& dir, const std::string& size) {
    if (::geteuid() != 0 || ::mount("tmpfs", dir.c_str(), "tmpfs", 0, ("size=" + size).c_str()))
      return false;
    dir_ = dir;
    return true;
  }
  ~SmallFilesystem() {
    if (!dir_.empty())
      ::umount2(dir_.c_str(), MNT_DETACH);
  }

 private:
  std::string dir_;
};

// Writes `path` until the file system is full; its size.
int64_t FillUp(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::string chunk(64 * 1024, 'f');
  int64_t written = 0;
  while (true) {
    ssize_t n = ::write(fd, chunk.data(), chunk.size());
    if (n <= 0)
      break;
    written += n;
  }
  // Smaller pieces take what is left.
  while (::write(fd, chunk.data(), 512) > 0)
    written += 512;
  ::close(fd);
  return written;
}

TEST(ControlPlaneAttackTest, AFullDiskLosesNothingAndResumesByItself) {
  SmallFilesystem small;  // Unmounted after the scheduler (declared later) is gone.
  SchedulerProcess s("min_free_disk: 4MiB\n", /*start=*/false);
  if (!small.Mount(s.data_dir(), "32m"))
    GTEST_SKIP() << "needs root to mount a small tmpfs";
  s.Start();
  std::string alice = s.Token("alice", "user", {"proj-a"});
  ASSERT_GT(FillUp(s.data_dir() + "/filler"), 0);
  // Submissions of 64 KiB specs until one cannot be made durable: it waits, unanswered.
  std::mutex mu;
  std::vector<uint64_t> acked;
  std::atomic<bool> stop{false};
  std::thread submitter([&] {
    auto c = net::HttpClient::Create(s.url(), {.token = alice, .timeout = Seconds(60)});
    std::string spec = json::serialize(
        json::object{{"image", "/i"}, {"command", json::array{std::string(64 * 1024, 'x')}}});
    while (!stop) {
      auto r = (*c)->Post("/v1/jobs", spec);
      if (r.ok() && r->status == 201) {
        std::lock_guard lock(mu);
        acked.push_back(Parse(r->body).at("id").to_number<uint64_t>());
      } else if (r.ok() && r->status == 503) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // Retry-After, shortened.
      }
    }
  });
  bool failed = WaitFor([&] { return Metric(s, "gsched_store_failing") == 1; }, Seconds(60));
  if (!failed) {
    stop = true;
    submitter.join();
    std::string log = s.Log();
    FAIL() << "the disk never refused a commit; " << acked.size() << " acknowledged; log:\n"
           << log.substr(log.size() > 3000 ? log.size() - 3000 : 0);
  }
  // Reads go on; writes are refused at once with 503 and Retry-After.
  auto t0 = Clock::now();
  auto list = s.Client(alice)->Get("/v1/jobs?limit=5");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->status, 200);
  auto refused = s.Client(alice)->Post("/v1/jobs", R"({"image":"/i","command":["x"]})");
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 503) << refused->body;
  bool retry_after = false;
  for (const auto& [k, v] : refused->headers)
    retry_after |= k == "Retry-After" || k == "retry-after";
  EXPECT_TRUE(retry_after);
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2));
  // Room again: the held commit lands by itself and writes are taken again.
  std::filesystem::remove(s.data_dir() + "/filler");
  ASSERT_TRUE(WaitFor([&] { return Metric(s, "gsched_store_failing") == 0; }, Seconds(30)))
      << s.Log();
  size_t before;
  {
    std::lock_guard lock(mu);
    before = acked.size();
  }
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard lock(mu);
    return acked.size() > before + 2;
  }));
  stop = true;
  submitter.join();
  EXPECT_EQ(s.Log().find("stopping so that a restart"), std::string::npos);
  // Nothing acknowledged is lost across a kill.
  s.Crash();
  s.Start();
  for (uint64_t id : acked)
    ASSERT_EQ(JobState(s, alice, id), "pending") << "job " << id;
}

}  // namespace
}  // namespace gsched::testing
