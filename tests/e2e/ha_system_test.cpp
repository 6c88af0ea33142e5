// High availability end to end: two real schedulers sharing a real etcd, a real worker given both
// URLs running a real job. `kill -9` of the leader: the worker finds the new leader, which adopts
// the running job (the same attempt, not a second one), and sees it finish.
#include <signal.h>

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>

#include "tests/e2e/system_fixture.h"
#include "tests/testutil/etcd_cluster.h"

namespace gsched::testing {
namespace {

std::string Role(const SchedulerProcess& s) {
  auto c = net::HttpClient::Create(s.url(), {.timeout = Seconds(1)});
  if (!c.ok())
    return "";
  auto r = (*c)->Get("/healthz");
  return r.ok() && r->status == 200 ? std::string(Parse(r->body).at("role").as_string()) : "";
}

std::string FirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

TEST(HaSystemTest, ARunningJobOutlivesItsLeaderAndFinishesUnderTheNextOne) {
  if (!EtcdCluster::Available())
    GTEST_SKIP() << "no etcd at " << kEtcdBin << " (scripts/setup installs etcd-server)";
  EtcdCluster etcd(1);
  auto yaml = [&](const std::string& name) {
    return "ha:\n  etcd: {endpoints: " + etcd.EndpointsYaml() +
           ", prefix: /e2e/}\n  lease_ttl: 2s\n  name: " + name + "\n";
  };
  SchedulerProcess a(yaml("a"));
  ASSERT_TRUE(WaitFor([&] { return Role(a) == "leader"; })) << a.Log();
  ASSERT_TRUE(WaitFor([&] { return !FirstLine(a.data_dir() + "/admin.token").empty(); }));
  std::string admin = FirstLine(a.data_dir() + "/admin.token");
  SchedulerProcess b(yaml("b"));
  ASSERT_TRUE(WaitFor([&] { return Role(b) == "standby"; })) << b.Log();

  auto token = [&](const std::string& body) {
    auto r = a.Client(admin)->Post("/v1/tokens", body);
    EXPECT_TRUE(r.ok() && r->status == 201) << (r.ok() ? r->body : r.status().ToString());
    return std::string(Parse(r->body).at("token").as_string());
  };
  std::string alice = token(R"({"user":"alice","role":"user","accounts":["proj-a"]})");
  WorkerProcess worker(a, "node-1",
                       token(R"({"user":"node-1","role":"worker","accounts":[],"nodes":["node-1"]})"),
                       "process", "identity: {run_as_root: true}\n");
  worker.Configure(a.url() + ", " + b.url());
  worker.Start();

  std::string go = a.dir() + "/go";
  auto r = a.Client(alice)->Post(
      "/v1/jobs", R"({"name":"long","image":"/","gpus_per_node":1,"command":["sh","-c",)"
                  R"("echo started; n=0; while [ ! -e )" +
                      go + R"( ] && [ $n -lt 3000 ]; do sleep 0.02; n=$((n+1)); done; echo finished"]})");
  ASSERT_TRUE(r.ok() && r->status == 201) << (r.ok() ? r->body : r.status().ToString());
  uint64_t id = Parse(r->body).at("id").to_number<uint64_t>();
  auto job_on = [&](const SchedulerProcess& s) {
    auto j = s.Client(admin)->Get("/v1/jobs/" + std::to_string(id));
    return j.ok() && j->status == 200 ? Parse(j->body) : boost::json::value();
  };
  auto state_on = [&](const SchedulerProcess& s) {
    auto j = job_on(s);
    return j.is_object() ? std::string(j.at("state").as_string()) : std::string("?");
  };
  ASSERT_TRUE(WaitFor([&] { return state_on(a) == "running"; }))
      << state_on(a) << "\n" << worker.Log();
  uint32_t attempt = job_on(a).at("attempt").to_number<uint32_t>();

  a.Crash();
  ASSERT_TRUE(WaitFor([&] { return Role(b) == "leader"; })) << b.Log();
  // The worker reconnects to b by itself (it has both URLs) and reports the job running.
  ASSERT_TRUE(WaitFor([&] {
    auto nodes = b.Client(admin)->Get("/v1/nodes");
    return nodes.ok() && nodes->body.find(R"("state":"up")") != std::string::npos;
  })) << worker.Log();
  EXPECT_EQ(state_on(b), "running");
  EXPECT_EQ(job_on(b).at("attempt").to_number<uint32_t>(), attempt) << "the job was started again";

  std::ofstream(go) << "";
  ASSERT_TRUE(WaitFor([&] { return state_on(b) == "completed"; }))
      << boost::json::serialize(job_on(b)) << "\n" << worker.Log();
  EXPECT_EQ(job_on(b).at("attempt").to_number<uint32_t>(), attempt);
  auto logs = b.Client(alice)->Get("/v1/jobs/" + std::to_string(id) + "/logs?stream=stdout");
  ASSERT_TRUE(logs.ok() && logs->status == 200) << (logs.ok() ? logs->body : "");
  EXPECT_EQ(Parse(logs->body).at("data").as_string(), "started\nfinished\n");
}

}  // namespace
}  // namespace gsched::testing
