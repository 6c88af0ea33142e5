// Clients given several schedulers (DESIGN.md section 12), end to end: a real `gsched-scheduler`
// is the leader, a fake standby (tests/testutil/fake_standby.h) answers 503 naming it, and real
// `gsched-worker` and `gsched` processes are given both URLs.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/e2e/system_fixture.h"
#include "tests/testutil/fake_standby.h"

namespace gsched::testing {
namespace {

// A loopback URL where nothing listens: a port the kernel handed out, closed again.
std::string DeadUrl() {
  FakeStandby gone;
  return gone.url();
}

class FailoverTest : public SystemTest {
 protected:
  // Starts worker `name` with `scheduler` as its config's `scheduler:` value and waits until the
  // leader lists the node as up.
  std::unique_ptr<WorkerProcess> StartWorker(const std::string& name,
                                             const std::string& scheduler) {
    auto w = std::make_unique<WorkerProcess>(s_, name, s_.Token(name, "worker", {}), Runtime(),
                                             WorkerExtraConfig());
    w->Configure(scheduler);
    w->Start();
    return w;
  }
  bool NodeUp(const std::string& name) {
    return WaitFor([&] {
      auto r = s_.Client(s_.admin_token())->Get("/v1/nodes");
      if (!r.ok() || r->status != 200)
        return false;
      boost::json::value v = Parse(r->body);
      for (const auto& n : v.is_array() ? v.as_array() : v.at("nodes").as_array()) {
        if (n.at("name").as_string() == name && n.at("state").as_string() == "up")
          return true;
      }
      return false;
    });
  }
};

TEST_F(FailoverTest, AWorkerGivenAStandbyAndTheLeaderJoinsTheLeader) {
  FakeStandby standby(s_.url());
  auto w = StartWorker("node-2", standby.url() + ", " + s_.url());
  ASSERT_TRUE(NodeUp("node-2")) << w->Log();
  EXPECT_GE(standby.upgrades(), 1);
  EXPECT_NE(w->Log().find("connected to " + s_.url()), std::string::npos) << w->Log();
}

TEST_F(FailoverTest, AWorkerGivenADeadSchedulerAndTheLeaderJoinsTheLeader) {
  auto w = StartWorker("node-2", "[" + DeadUrl() + ", " + s_.url() + "]");
  ASSERT_TRUE(NodeUp("node-2")) << w->Log();
}

TEST_F(FailoverTest, ALeaderHintOutsideTheWorkersListIsIgnored) {
  // The standby names a scheduler the worker was not given: the worker's token never goes there.
  FakeStandby elsewhere;
  FakeStandby standby(elsewhere.url());
  auto w = StartWorker("node-2", standby.url() + "," + s_.url());
  ASSERT_TRUE(NodeUp("node-2")) << w->Log();
  EXPECT_EQ(elsewhere.upgrades(), 0);
  EXPECT_NE(w->Log().find("not in this worker's scheduler list"), std::string::npos) << w->Log();
}

TEST_F(FailoverTest, TheCliGivenAStandbyAndTheLeaderSubmitsAndListsOnTheLeader) {
  FakeStandby standby(s_.url());
  std::string servers = standby.url() + "," + s_.url();
  CliResult submit = CliRaw({"--server", servers, "--token-file", TokenFile(alice_), "submit",
                             "--account", "proj-a", "--image", "/", "--parsable", "--", "true"});
  ASSERT_EQ(submit.code, 0) << submit.Text();
  std::string id = submit.out.substr(0, submit.out.find('\n'));
  CliResult queue = CliRaw({"--server", servers, "--token-file", TokenFile(alice_), "queue",
                            "--state", "all", "--json"});
  ASSERT_EQ(queue.code, 0) << queue.Text();
  EXPECT_NE(queue.out.find("\"id\":" + id), std::string::npos) << queue.out;
  EXPECT_GE(standby.requests(), 2);
}

TEST_F(FailoverTest, TheCliWithNoSchedulerUpSaysWhatEachOneSaid) {
  std::string a = DeadUrl(), b = DeadUrl();
  CliResult r = CliRaw({"--server", a + "," + b, "--token-file", TokenFile(alice_), "queue"});
  EXPECT_EQ(r.code, 3) << r.Text();
  EXPECT_NE(r.err.find(a + ": connect"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(b + ": connect"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace gsched::testing
