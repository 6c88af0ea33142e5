// The CLI given several schedulers (DESIGN.md section 12), in-process through `RunCli` against
// fake schedulers on 127.0.0.1:0: a fake standby (503 naming the leader) and a fake leader. Which
// scheduler each request reaches, what is retried where, and the error when none leads.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "client/cli.h"
#include "client/cli_config.h"
#include "tests/testutil/fake_standby.h"
#include "tests/testutil/temp_dir.h"
#include "tests/unit/client/fake_server.h"

namespace gsched::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A port where nothing listens: taken from the kernel, then closed.
std::string DeadUrl() {
  FakeServer gone;
  std::string url = gone.url();
  gone.Stop();
  return url;
}

// A server that reads one request and closes the connection without answering: a scheduler that
// died after a request reached it. Serves one connection.
class DropAfterRead {
 public:
  DropAfterRead() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), len), 0);
    EXPECT_EQ(listen(fd_, 4), 0);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    url_ = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
    thread_ = std::thread([this] {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0)
        return;
      std::string got;
      char buf[4096];
      // The whole request: its head, then a body as long as Content-Length says.
      while (true) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0)
          break;
        got.append(buf, static_cast<size_t>(n));
        size_t head = got.find("\r\n\r\n");
        size_t cl = got.find("Content-Length: ");
        if (head != std::string::npos &&
            (cl == std::string::npos || got.size() >= head + 4 + std::stoul(got.substr(cl + 16))))
          break;
      }
      close(c);
    });
  }
  ~DropAfterRead() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  const std::string& url() const { return url_; }

 private:
  int fd_ = -1;
  std::string url_;
  std::thread thread_;
};

class FailoverCliTest : public ::testing::Test {
 protected:
  FailoverCliTest() : standby_(leader_.url()) {
    env_.vars["HOME"] = home_.path();
    env_.vars["GSCHED_TOKEN"] = "tok-env";
    env_.poll_interval = Duration(10);
    leader_.On("GET /v1/whoami", 200,
               R"({"user": "alice", "role": "user", "accounts": ["kaist-nlp"],
                   "token_id": "tok_8f3a2c", "expires": "2030-12-23T18:00:00.000Z"})");
    leader_.On("GET /v1/jobs", 200, R"({"jobs": []})");
    leader_.On("POST /v1/jobs", 201, R"({"id": 42})");
  }

  struct Run_ {
    int code;
    std::string out;
    std::string err;
  };
  Run_ Run(std::vector<std::string> args) {
    std::ostringstream out, err;
    int code = RunCli(std::move(args), out, err, env_);
    return {code, out.str(), err.str()};
  }

  TempDir home_;
  FakeServer leader_;
  gsched::testing::FakeStandby standby_;
  Env env_;
};

TEST_F(FailoverCliTest, QueueAndSubmitThroughAStandbyReachTheLeader) {
  std::string servers = standby_.url() + "," + leader_.url();
  Run_ q = Run({"--server", servers, "queue", "--all"});
  EXPECT_EQ(q.code, 0) << q.err;
  Run_ s = Run({"--server", servers, "submit", "--image", "/i", "--", "true"});
  EXPECT_EQ(s.code, 0) << s.err;
  EXPECT_EQ(s.out, "Submitted job 42\n");
  // Each run asked the standby once (a new run starts from the first URL), then the leader.
  EXPECT_EQ(standby_.requests(), 2);
  EXPECT_THAT(leader_.Lines(),
              ElementsAre("GET /v1/jobs?state=pending,starting,running", "POST /v1/jobs"));
}

TEST_F(FailoverCliTest, WithinOneRunTheLeaderIsAskedFirstOnceFound) {
  // `queue` without --all asks whoami, then the jobs: the second request goes straight to the
  // leader.
  Run_ q = Run({"--server", standby_.url() + "," + leader_.url(), "queue"});
  EXPECT_EQ(q.code, 0) << q.err;
  EXPECT_EQ(standby_.requests(), 1);
  EXPECT_EQ(leader_.Lines().size(), 2u);
  Run_ w = Run({"--server", standby_.url() + "," + leader_.url(), "whoami"});
  EXPECT_THAT(w.out, HasSubstr("server:   " + leader_.url()));
}

TEST_F(FailoverCliTest, TheLeaderHintIsFollowedPastOtherUrls) {
  // standby, dead, leader: the standby's hint skips the dead scheduler.
  std::string servers = standby_.url() + "," + DeadUrl() + "," + leader_.url();
  Run_ q = Run({"--server", servers, "queue", "--all"});
  EXPECT_EQ(q.code, 0) << q.err;
  EXPECT_EQ(standby_.requests(), 1);
}

TEST_F(FailoverCliTest, GschedServerAndTheConfigFileTakeListsToo) {
  env_.vars["GSCHED_SERVER"] = DeadUrl() + ", " + leader_.url();
  EXPECT_EQ(Run({"queue", "--all"}).code, 0);
  env_.vars.erase("GSCHED_SERVER");
  std::string config = home_.path() + "/.config/gsched/config.yaml";
  std::filesystem::create_directories(home_.path() + "/.config/gsched");
  std::ofstream(config) << "server:\n  - " << standby_.url() << "\n  - " << leader_.url() << "\n";
  Run_ q = Run({"queue", "--all"});
  EXPECT_EQ(q.code, 0) << q.err;
  auto resolved = ResolveConfig({}, env_.vars);
  ASSERT_TRUE(resolved.ok());
  EXPECT_EQ(resolved->servers, (std::vector<std::string>{standby_.url(), leader_.url()}));
}

TEST_F(FailoverCliTest, ALeaderOutsideTheListIsNeverContacted) {
  FakeServer elsewhere;
  elsewhere.On("GET /v1/jobs", 200, R"({"jobs": []})");
  standby_.SetLeader(elsewhere.url());
  Run_ q = Run({"--server", standby_.url() + "," + leader_.url(), "queue", "--all"});
  EXPECT_EQ(q.code, 0) << q.err;
  EXPECT_THAT(elsewhere.Requests(), IsEmpty());
  EXPECT_EQ(leader_.Lines().size(), 1u);
}

TEST_F(FailoverCliTest, NoSchedulerReachableSaysWhatEachOneSaid) {
  std::string a = DeadUrl(), b = DeadUrl();
  Run_ r = Run({"--server", a + "," + b, "queue", "--all"});
  EXPECT_EQ(r.code, 3);
  EXPECT_THAT(r.err, HasSubstr("gsched: cannot reach the leading scheduler: " + a + ": connect"));
  EXPECT_THAT(r.err, HasSubstr("; " + b + ": connect"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);  // One line.
}

TEST_F(FailoverCliTest, StandbysWithoutALeaderAreAskedAgainUntilTheTimeout) {
  // An election under way: the standby knows no leader, the other scheduler is down. The CLI
  // goes round the list until its timeout (1 s here), then says what each said.
  standby_.SetLeader("");
  std::filesystem::create_directories(home_.path() + "/.config/gsched");
  std::ofstream(home_.path() + "/.config/gsched/config.yaml") << "timeout: 1s\n";
  std::string dead = DeadUrl();
  Run_ r = Run({"--server", standby_.url() + "," + dead, "queue", "--all"});
  EXPECT_EQ(r.code, 3);
  EXPECT_THAT(
      r.err, HasSubstr(standby_.url() + ": a standby, no leader known yet; " + dead + ": connect"));
  EXPECT_GE(standby_.requests(), 2);  // More than one round.
}

TEST_F(FailoverCliTest, ASingleStandbyUrlGivesTheStandbysOwnAnswer) {
  // One URL: no list to follow; the standby's refusal is the answer, as any 503 is.
  Run_ r = Run({"--server", standby_.url(), "queue", "--all"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("this scheduler is a standby; the leader is " + leader_.url()));
}

TEST_F(FailoverCliTest, ASubmissionThatMayHaveArrivedIsNotSentAgain) {
  // The first scheduler reads the POST whole, then dies without answering: it may have stored
  // the job. The API has no submission key to recognise a repeat by, so the CLI does not send
  // it to the leader; it says so.
  DropAfterRead dropper;
  Run_ s = Run(
      {"--server", dropper.url() + "," + leader_.url(), "submit", "--image", "/i", "--", "true"});
  EXPECT_EQ(s.code, 3);
  EXPECT_THAT(s.err, HasSubstr("may have been carried out"));
  EXPECT_THAT(leader_.Lines(), IsEmpty());
}

TEST_F(FailoverCliTest, AReadThatMayHaveArrivedIsSentAgain) {
  DropAfterRead dropper;
  Run_ q = Run({"--server", dropper.url() + "," + leader_.url(), "queue", "--all"});
  EXPECT_EQ(q.code, 0) << q.err;
  EXPECT_EQ(leader_.Lines().size(), 1u);
}

TEST_F(FailoverCliTest, WatchOpensOnTheLeaderThroughAStandby) {
  leader_.QueueEvent(R"({"seq": 9, "type": "job.state", "time": "2026-11-23T18:05:00.000Z",
                         "data": {"job": 42, "from": "running", "to": "completed"}})");
  leader_.On("GET /v1/jobs/42", 200,
             R"({"id": 42, "spec": {"image": "/i", "command": ["true"]}, "user": "alice",
                 "state": "completed", "submit_time": "2026-11-23T18:00:00.000Z"})");
  Run_ w = Run({"--server", standby_.url() + "," + leader_.url(), "watch", "42", "--json"});
  EXPECT_EQ(w.code, 0) << w.err;
  EXPECT_THAT(w.out, HasSubstr(R"("seq":9)"));
  EXPECT_EQ(standby_.upgrades(), 1);
  // The job's state was asked of the leader directly.
  EXPECT_EQ(standby_.requests(), 0);
}

TEST_F(FailoverCliTest, ABadUrlInTheListIsAUsageErrorNamingIt) {
  Run_ r = Run({"--server", leader_.url() + ",ftp://x", "queue"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("server[1]: must start with http:// or https://"));
}

}  // namespace
}  // namespace gsched::client
