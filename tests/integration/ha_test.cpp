// High availability with real processes (DESIGN.md section 12): gsched-scheduler processes that
// share a real etcd, killed with SIGKILL, paused with SIGSTOP, and etcd members lost.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "scheduler/api/worker_messages.h"
#include "tests/integration/scheduler_process.h"
#include "tests/integration/scripted_worker.h"
#include "tests/testutil/etcd_cluster.h"

namespace gsched::testing {
namespace {

using Steady = std::chrono::steady_clock;
constexpr int kLeaseSeconds = 2;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// What `GET /healthz` says the role is: "leader", "standby", or "" when there is no answer.
std::string RoleOf(const std::string& url) {
  auto c = net::HttpClient::Create(url, {.timeout = Seconds(1)});
  if (!c.ok())
    return "";
  auto r = (*c)->Get("/healthz");
  if (!r.ok() || r->status != 200)
    return "";
  return std::string(Parse(r->body).at("role").as_string());
}

double Metric(const std::string& url, const std::string& name) {
  auto c = net::HttpClient::Create(url, {.timeout = Seconds(2)});
  if (!c.ok())
    return -1;
  auto r = (*c)->Get("/metrics");
  if (!r.ok())
    return -1;
  std::istringstream in(r->body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(name + " "))
      return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

// Submitters that follow the leader: each request goes to the scheduler that answered last, and
// on no answer or a 503 to the next one. Names are unique, so a duplicate or a loss shows.
class Submitters {
 public:
  Submitters(const std::vector<std::string>& urls, const std::string& token, int threads)
      : urls_(urls) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, token, t] {
        size_t at = 0;
        std::vector<std::unique_ptr<net::HttpClient>> clients;
        for (const auto& u : urls_)
          clients.push_back(
              std::move(net::HttpClient::Create(u, {.token = token, .timeout = Seconds(10)}))
                  .value());
        for (int i = 0; !stop_ && i < 100'000; ++i) {
          std::string name = "t" + std::to_string(t) + "-" + std::to_string(i);
          auto r = clients[at]->Post("/v1/jobs",
                                     R"({"name":")" + name + R"(","image":"/i","command":["x"]})");
          if (!r.ok() || r->status == 503) {
            std::lock_guard lock(mu_);
            ++refused_;
            at = (at + 1) % clients.size();
            std::this_thread::sleep_for(std::chrono::milliseconds(20));  // Bounded by `stop_`.
            continue;
          }
          if (r->status != 201) {
            std::lock_guard lock(mu_);
            errors_.push_back(std::to_string(r->status) + " " + r->body);
            continue;
          }
          std::lock_guard lock(mu_);
          acked_[name] = Parse(r->body).at("id").to_number<uint64_t>();
        }
      });
    }
  }
  ~Submitters() { Stop(); }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable())
        t.join();
  }
  size_t acked() {
    std::lock_guard lock(mu_);
    return acked_.size();
  }
  std::map<std::string, uint64_t> acked_jobs() {
    std::lock_guard lock(mu_);
    return acked_;
  }
  std::vector<std::string> errors() {
    std::lock_guard lock(mu_);
    return errors_;
  }

 private:
  std::vector<std::string> urls_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<std::string, uint64_t> acked_;
  std::vector<std::string> errors_;
  int refused_ = 0;
  std::vector<std::thread> threads_;
};

// A node that runs what it is given and never finishes it: it answers every launch with
// `running`, every kill with `killed`, and says hello again (with what it runs) after a drop. A
// thread reads its connection (a read that times out closes a WebSocket client) until the
// scheduler closes it.
class HeldWorker {
 public:
  HeldWorker(std::string node, std::string token) : node_(std::move(node)), token_(token) {}
  ~HeldWorker() { Join(); }

  // Connects to `url` and says hello with the attempts it runs.
  bool Connect(const std::string& url) {
    Join();
    auto ws = net::WsClient::Connect(url, "/v1/workers/connect",
                                     {.token = token_, .timeout = Seconds(5)});
    if (!ws.ok())
      return false;
    api::Hello hello = EightGpuHello(node_);
    for (const auto& [job, attempt] : running())
      hello.running.push_back({job, attempt, api::JobState::kRunning});
    if (!(*ws)->Write(api::SerializeMessage(hello)).ok())
      return false;
    connected_ = true;
    reader_ = std::thread([this, ws = std::shared_ptr<net::WsClient>(std::move(ws).value())] {
      Read(*ws);
      connected_ = false;
    });
    return true;
  }
  bool connected() const { return connected_; }

  std::map<uint64_t, uint32_t> running() {
    std::lock_guard lock(mu_);
    return running_;
  }
  std::vector<uint64_t> twice() {
    std::lock_guard lock(mu_);
    return twice_;
  }

 private:
  void Join() {
    if (reader_.joinable())
      reader_.join();
  }
  void Read(net::WsClient& ws) {
    for (;;) {
      auto text = ws.Read(Seconds(300));
      if (!text.ok())
        return;
      auto m = api::DecodeSchedulerMessage(*text);
      if (!m.ok())
        continue;
      std::optional<api::JobUpdate> reply;
      {
        std::lock_guard lock(mu_);
        if (auto* l = std::get_if<api::Launch>(&*m)) {
          auto [it, fresh] = running_.emplace(l->job, l->attempt);
          if (!fresh && it->second != l->attempt)
            twice_.push_back(l->job);  // A second attempt while the first still runs here.
          reply = api::JobUpdate{
              .job = l->job, .attempt = l->attempt, .state = api::JobState::kRunning};
        } else if (auto* k = std::get_if<api::Kill>(&*m)) {
          if (auto it = running_.find(k->job); it != running_.end() && it->second == k->attempt) {
            running_.erase(it);
            reply = api::JobUpdate{.job = k->job,
                                   .attempt = k->attempt,
                                   .state = api::JobState::kFailed,
                                   .signal = "SIGKILL"};
          }
        }
      }
      if (reply && !ws.Write(api::SerializeMessage(*reply)).ok())
        return;
    }
  }

  std::string node_, token_;
  std::atomic<bool> connected_{false};
  std::thread reader_;
  std::mutex mu_;
  std::map<uint64_t, uint32_t> running_;  // job -> attempt
  std::vector<uint64_t> twice_;
};

class HaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!EtcdCluster::Available())
      GTEST_SKIP() << "no etcd at " << kEtcdBin << " (scripts/setup installs etcd-server)";
  }
  void TearDown() override {
    for (size_t i = 0; i < s_.size(); ++i) {
      if (s_[i]->pid() > 0)
        ::kill(s_[i]->pid(), SIGCONT);  // A paused scheduler could not stop.
      if (HasFailure())
        std::printf("---- scheduler s%zu:\n%s\n", i, s_[i]->Log().c_str());
    }
  }

  // Starts etcd with `members` members and `schedulers` schedulers, the first one first, so that
  // it leads.
  void StartCluster(int members, int schedulers, int lease_seconds = kLeaseSeconds) {
    etcd_ = std::make_unique<EtcdCluster>(members);
    for (int i = 0; i < schedulers; ++i) {
      std::string yaml = "ha:\n  etcd: {endpoints: " + etcd_->EndpointsYaml() +
                         ", prefix: /gsched-test/}\n  lease_ttl: " + std::to_string(lease_seconds) +
                         "s\n  name: s" + std::to_string(i) + "\n";
      s_.push_back(std::make_unique<SchedulerProcess>(yaml));
      if (i == 0) {
        ASSERT_TRUE(WaitFor([&] { return RoleOf(s_[0]->url()) == "leader"; })) << s_[0]->Log();
        ASSERT_TRUE(WaitFor([&] { return !Slurp(s_[0]->data_dir() + "/admin.token").empty(); }));
        admin_ = Slurp(s_[0]->data_dir() + "/admin.token");
      }
    }
    // Standbys are ready once they copied the leader's database and follow its log.
    for (int i = 1; i < schedulers; ++i) {
      ASSERT_TRUE(WaitFor([&] {
        return RoleOf(s_[i]->url()) == "standby" && Metric(s_[i]->url(), "gsched_ha_log_seq") > 0;
      })) << s_[i]->Log();
    }
  }

  // The index of the scheduler that says it leads, waiting up to `timeout`; -1 if none.
  int WaitLeader(std::chrono::milliseconds timeout, int not_this = -1) {
    int leader = -1;
    WaitFor(
        [&] {
          for (size_t i = 0; i < s_.size(); ++i) {
            if (static_cast<int>(i) != not_this && RoleOf(s_[i]->url()) == "leader") {
              leader = static_cast<int>(i);
              return true;
            }
          }
          return false;
        },
        timeout);
    return leader;
  }

  std::string MakeToken(int via, const std::string& user, const std::string& role,
                        const std::vector<std::string>& accounts) {
    boost::json::array acc;
    for (const auto& a : accounts)
      acc.emplace_back(a);
    boost::json::object body{{"user", user}, {"role", role}, {"accounts", acc}};
    if (role == "worker")
      body["nodes"] = boost::json::array{boost::json::value(user)};
    auto r = s_[via]->Client(admin_)->Post("/v1/tokens", boost::json::serialize(body));
    EXPECT_TRUE(r.ok() && r->status == 201) << (r.ok() ? r->body : r.status().ToString());
    return r.ok() && r->status == 201 ? std::string(Parse(r->body).at("token").as_string())
                                      : std::string();
  }

  // Every job the scheduler at `via` lists: name -> id.
  std::map<std::string, uint64_t> StoredJobs(int via) {
    std::map<std::string, uint64_t> stored;
    auto client = s_[via]->Client(admin_);
    uint64_t after = 0;
    for (int page_no = 0; page_no < 1000; ++page_no) {
      auto r = client->Get("/v1/jobs?limit=10000&after=" + std::to_string(after));
      EXPECT_TRUE(r.ok() && r->status == 200) << (r.ok() ? r->body : r.status().ToString());
      if (!r.ok() || r->status != 200)
        break;
      auto page = Parse(r->body);
      const auto& jobs = page.at("jobs").as_array();
      for (const auto& j : jobs) {
        std::string name(j.at("spec").at("name").as_string());
        EXPECT_FALSE(stored.contains(name)) << "job listed twice: " << name;
        stored[name] = j.at("id").to_number<uint64_t>();
      }
      if (jobs.empty() || !page.as_object().contains("next_after"))
        break;
      after = page.at("next_after").to_number<uint64_t>();
    }
    return stored;
  }

  // Destroyed after the schedulers (declared first): their exit ends its reader thread.
  std::unique_ptr<HeldWorker> worker_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::vector<std::unique_ptr<SchedulerProcess>> s_;
  std::string admin_;
};

TEST_F(HaTest, AStandbyFollowsTheLogAndSendsEveryoneToTheLeader) {
  // A long lease: the handover after SIGTERM below must not be its expiry.
  constexpr int kLongLease = 30;
  StartCluster(1, 2, kLongLease);
  const std::string leader = s_[0]->url(), standby = s_[1]->url();
  std::string alice = MakeToken(0, "alice", "user", {"proj-a"});
  auto client = s_[0]->Client(alice);
  for (int i = 0; i < 20; ++i) {
    auto r = client->Post(
        "/v1/jobs", R"({"name":"j)" + std::to_string(i) + R"(","image":"/i","command":["x"]})");
    ASSERT_TRUE(r.ok() && r->status == 201);
  }
  // The standby applies the log up to where the leader is.
  double leader_seq = Metric(leader, "gsched_ha_log_seq");
  EXPECT_GT(leader_seq, 0);
  EXPECT_TRUE(WaitFor([&] { return Metric(standby, "gsched_ha_log_seq") >= leader_seq; }));
  EXPECT_EQ(Metric(leader, "gsched_ha_leader"), 1);
  EXPECT_EQ(Metric(standby, "gsched_ha_leader"), 0);
  EXPECT_EQ(Metric(leader, "gsched_ha_role{role=\"leader\"}"), 1);
  EXPECT_EQ(Metric(standby, "gsched_ha_role{role=\"standby\"}"), 1);

  auto health = Parse(s_[1]->Client("")->Get("/healthz")->body);
  EXPECT_EQ(health.at("role").as_string(), "standby");
  EXPECT_EQ(health.at("leader").as_string(), leader);

  // The API answers 503 with the leader, in a header and in the body.
  auto r = s_[1]->Client(alice)->Get("/v1/jobs");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 503);
  bool header = false;
  for (const auto& [k, v] : r->headers)
    header |= (k == "X-Gsched-Leader" && v == leader);
  EXPECT_TRUE(header) << r->body;
  EXPECT_EQ(Parse(r->body).at("error").at("leader").as_string(), leader);
  // So does the worker channel, and the dashboard is sent over.
  auto ws = net::WsClient::Connect(standby, "/v1/workers/connect",
                                   {.token = alice, .timeout = Seconds(5)});
  ASSERT_FALSE(ws.ok());
  EXPECT_NE(ws.status().message().find("503"), std::string::npos) << ws.status().ToString();
  auto ui = s_[1]->Client("")->Get("/ui/");
  ASSERT_TRUE(ui.ok());
  EXPECT_EQ(ui->status, 307);

  // The standby's copy holds the jobs: stop the leader gracefully and ask the new one.
  auto before = StoredJobs(0);
  EXPECT_EQ(before.size(), 20u);
  auto t0 = Steady::now();
  s_[0]->Stop();
  ASSERT_EQ(WaitLeader(std::chrono::seconds(25), 0), 1);
  // The old leader resigned its lease: the standby did not wait for it to expire.
  EXPECT_LT(Steady::now() - t0, std::chrono::seconds(kLongLease)) << "handover after SIGTERM";
  EXPECT_EQ(StoredJobs(1), before);
  EXPECT_EQ(Metric(standby, "gsched_ha_failovers_total"), 1);
}

TEST_F(HaTest, CheckpointsAreForAdminsAndAFewAtATime) {
  StartCluster(1, 1);
  std::string alice = MakeToken(0, "alice", "user", {"proj-a"});
  EXPECT_EQ(s_[0]->Client(alice)->Get("/v1/ha/checkpoint")->status, 403);
  auto admin = s_[0]->Client(admin_);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    auto r = admin->Get("/v1/ha/checkpoint");
    ASSERT_EQ(r->status, 200) << r->body;
    auto m = Parse(r->body);
    ids.emplace_back(m.at("id").as_string());
    ASSERT_FALSE(m.at("files").as_array().empty());
  }
  EXPECT_EQ(admin->Get("/v1/ha/checkpoint")->status, 429);
  // A file name that is not in the checkpoint is not read, whatever it names.
  EXPECT_EQ(admin->Get("/v1/ha/checkpoint/" + ids[0] + "/..%2F..%2Fhmac.key")->status, 404);
  EXPECT_EQ(admin->Get("/v1/ha/checkpoint/" + ids[0] + "/CURRENT?offset=x")->status, 400);
  EXPECT_EQ(admin->Request("DELETE", "/v1/ha/checkpoint/" + ids[0])->status, 200);
  EXPECT_EQ(admin->Get("/v1/ha/checkpoint")->status, 200);
}

TEST_F(HaTest, Kill9OfTheLeaderDuringASubmitBurstLosesNothingAndRunsNothingTwice) {
  StartCluster(1, 2);
  std::string alice = MakeToken(0, "alice", "user", {"proj-a"});
  worker_ = std::make_unique<HeldWorker>("node-1", MakeToken(0, "node-1", "worker", {}));
  HeldWorker& worker = *worker_;
  ASSERT_TRUE(worker.Connect(s_[0]->url()));
  Submitters submit({s_[0]->url(), s_[1]->url()}, alice, 4);
  ASSERT_TRUE(WaitFor([&] { return submit.acked() >= 100 && worker.running().size() >= 8; }))
      << "acked " << submit.acked() << ", running " << worker.running().size() << "\n"
      << s_[0]->Log().substr(0, 4000);
  // Mid-burst, mid-launch.
  size_t acked_at_kill = submit.acked();
  auto t_kill = Steady::now();
  s_[0]->Crash();
  ASSERT_EQ(WaitLeader(std::chrono::seconds(30), 0), 1) << s_[1]->Log();
  auto t_leader = Steady::now();
  // The node finds the new leader and says hello with what it runs.
  ASSERT_TRUE(WaitFor([&] { return !worker.connected() && worker.Connect(s_[1]->url()); },
                      std::chrono::seconds(20)));
  ASSERT_TRUE(WaitFor([&] { return Metric(s_[1]->url(), "gsched_scheduling_passes_total") > 0; },
                      std::chrono::seconds(20)));
  auto t_scheduling = Steady::now();
  // Submissions go on into the new leader.
  ASSERT_TRUE(WaitFor([&] { return submit.acked() >= acked_at_kill + 50; }));
  submit.Stop();
  EXPECT_TRUE(submit.errors().empty()) << submit.errors().front();
  std::printf("failover: leader after %.2f s, scheduling after %.2f s (lease %d s)\n",
              std::chrono::duration<double>(t_leader - t_kill).count(),
              std::chrono::duration<double>(t_scheduling - t_kill).count(), kLeaseSeconds);
  // Loose bounds: a liveness check, not a timing (scripts/bench fault.failover measures that).
  EXPECT_LT(t_scheduling - t_kill, std::chrono::seconds(kLeaseSeconds + 15));

  // Every acknowledged job is there, under the id it was acknowledged with.
  auto stored = StoredJobs(1);
  size_t lost = 0;
  for (const auto& [name, id] : submit.acked_jobs()) {
    auto it = stored.find(name);
    lost += it == stored.end() || it->second != id;
  }
  EXPECT_EQ(lost, 0u) << "of " << submit.acked_jobs().size() << " acknowledged submissions";
  // No job ran twice, and what the node runs is what the leader says runs.
  EXPECT_TRUE(worker.twice().empty()) << "job " << worker.twice().front() << " launched twice";
  std::map<uint64_t, uint32_t> listed;
  EXPECT_TRUE(WaitFor([&] {
    auto running = Parse(s_[1]->Client(admin_)->Get("/v1/jobs?state=running&limit=1000")->body);
    listed.clear();
    for (const auto& j : running.at("jobs").as_array())
      listed[j.at("id").to_number<uint64_t>()] = j.at("attempt").to_number<uint32_t>();
    return listed == worker.running();
  })) << listed.size()
      << " listed running, " << worker.running().size() << " on the node";
}

TEST_F(HaTest, APausedLeaderIsFencedAndStepsDownWithoutAcknowledgingAnything) {
  StartCluster(1, 2);
  std::string alice = MakeToken(0, "alice", "user", {"proj-a"});
  auto old_client = s_[0]->Client(alice);
  ASSERT_EQ(
      old_client->Post("/v1/jobs", R"({"name":"before","image":"/i","command":["x"]})")->status,
      201);
  ASSERT_EQ(::kill(s_[0]->pid(), SIGSTOP), 0);
  ASSERT_EQ(WaitLeader(std::chrono::seconds(30), 0), 1);
  ASSERT_EQ(s_[1]
                ->Client(alice)
                ->Post("/v1/jobs", R"({"name":"on-new","image":"/i","command":["x"]})")
                ->status,
            201);
  // A submission reaches the paused leader (its kernel queues it), then it wakes up: it must not
  // acknowledge it, since another scheduler leads.
  std::thread late([&] {
    auto r = old_client->Post("/v1/jobs", R"({"name":"to-old","image":"/i","command":["x"]})");
    // Refused (503), or the connection closed as the old leader stepped down: never a 201.
    if (r.ok()) {
      EXPECT_EQ(r->status, 503) << r->body;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // Lets the request be sent.
  ASSERT_EQ(::kill(s_[0]->pid(), SIGCONT), 0);
  late.join();
  ASSERT_TRUE(WaitFor([&] { return RoleOf(s_[0]->url()) == "standby"; })) << s_[0]->Log();
  EXPECT_EQ(Metric(s_[0]->url(), "gsched_ha_stepdowns_total"), 1);
  EXPECT_EQ(RoleOf(s_[1]->url()), "leader");
  auto stored = StoredJobs(1);
  EXPECT_TRUE(stored.contains("before"));
  EXPECT_TRUE(stored.contains("on-new"));
  EXPECT_FALSE(stored.contains("to-old"));
  // The old leader follows the new one's log again.
  double seq = Metric(s_[1]->url(), "gsched_ha_log_seq");
  EXPECT_TRUE(WaitFor([&] { return Metric(s_[0]->url(), "gsched_ha_log_seq") >= seq; }));
}

TEST_F(HaTest, LosingOneEtcdMemberOfThreeChangesNothingLosingTwoStopsWrites) {
  // A lease that outlasts an etcd election (the killed member may have been etcd's leader) even
  // on a loaded machine: losing one member must change nothing.
  StartCluster(3, 1, /*lease_seconds=*/5);
  std::string alice = MakeToken(0, "alice", "user", {"proj-a"});
  auto client = s_[0]->Client(alice);
  std::map<std::string, uint64_t> acked;
  auto submit = [&](const std::string& name) {
    auto r = client->Post("/v1/jobs", R"({"name":")" + name + R"(","image":"/i","command":["x"]})");
    if (r.ok() && r->status == 201)
      acked[name] = Parse(r->body).at("id").to_number<uint64_t>();
    return r.ok() ? r->status : 0;
  };
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(submit("a" + std::to_string(i)), 201);
  // One member down, the first the scheduler talks to: every write still succeeds.
  etcd_->Kill(0);
  for (int i = 0; i < 20; ++i)
    EXPECT_EQ(submit("b" + std::to_string(i)), 201) << i;
  EXPECT_EQ(RoleOf(s_[0]->url()), "leader");
  // Two down: no quorum. Writes stop (503) once the lease cannot be renewed.
  etcd_->Kill(1);
  EXPECT_TRUE(WaitFor(
      [&] {
        int status = submit("c" + std::to_string(acked.size()));
        return status == 503;
      },
      std::chrono::seconds(30)));
  EXPECT_TRUE(WaitFor([&] { return RoleOf(s_[0]->url()) == "standby"; }));
  // Quorum back: the scheduler leads again with everything it acknowledged.
  etcd_->Start(0);
  etcd_->Start(1);
  ASSERT_TRUE(etcd_->WaitHealthy(0));
  ASSERT_EQ(WaitLeader(std::chrono::seconds(30)), 0) << s_[0]->Log();
  auto stored = StoredJobs(0);
  for (const auto& [name, id] : acked) {
    auto it = stored.find(name);
    EXPECT_TRUE(it != stored.end() && it->second == id) << name << " was acknowledged";
  }
  EXPECT_EQ(submit("d0"), 201);
}

}  // namespace
}  // namespace gsched::testing
