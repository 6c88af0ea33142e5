// Several scheduler URLs: parsing, comparing by origin, and where `FailoverList` sends the next
// attempt; a standby's refusal as the WebSocket clients see it.
#include "scheduler/net/server_list.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "scheduler/net/http_client.h"
#include "scheduler/net/ws_async_client.h"
#include "tests/testutil/fake_standby.h"

namespace gsched::net {
namespace {

const std::vector<std::string> kThree = {"http://a:8600", "http://b:8600", "http://c:8600"};

TEST(ServerOrigin, SchemeHostAndPortInLowerCaseWithTheDefaultPort) {
  EXPECT_EQ(ServerOrigin("HTTP://Sched-A.example:8600/ui/"), "http://sched-a.example:8600");
  EXPECT_EQ(ServerOrigin("http://a"), "http://a:80");
  EXPECT_EQ(ServerOrigin("https://a"), "https://a:443");
  EXPECT_EQ(ServerOrigin("http://[::1]:9"), "http://[::1]:9");
  EXPECT_EQ(ServerOrigin("ftp://a"), std::nullopt);
}

TEST(ParseServerList, OneOrSeveralUrlsEachCheckedAndNamedByIndex) {
  EXPECT_EQ(ParseServerList("http://a:1", "server").value(),
            std::vector<std::string>{"http://a:1"});
  EXPECT_EQ(ParseServerList(" http://a:1 ,https://b:2", "server").value(),
            (std::vector<std::string>{"http://a:1", "https://b:2"}));
  auto bad = ParseServerList("http://a:1,b:2", "--scheduler");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().field(), "--scheduler[1]");
  EXPECT_NE(bad.status().message().find("http://"), std::string::npos);
  auto empty = ParseServerList("http://a:1,,http://c:3", "server");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().field(), "server[1]");
  auto single = ParseServerList("ftp://x", "server");
  ASSERT_FALSE(single.ok());
  EXPECT_EQ(single.status().field(), "server");
  EXPECT_FALSE(ParseServerList(" ", "server").ok());
}

TEST(LeaderHeader, FoundInAnyCase) {
  EXPECT_EQ(LeaderHeader({{"Content-Type", "x"}, {"x-gsched-leader", "http://b:8600"}}),
            "http://b:8600");
  EXPECT_EQ(LeaderHeader({{"Content-Type", "x"}}), "");
}

TEST(FailoverList, PlainFailuresWalkTheListAndEndTheRoundAfterEachUrlOnce) {
  FailoverList list(kThree);
  EXPECT_EQ(list.current(), "http://a:8600");
  EXPECT_FALSE(list.Failed().round_over);
  EXPECT_EQ(list.current(), "http://b:8600");
  EXPECT_FALSE(list.Failed().round_over);
  EXPECT_EQ(list.current(), "http://c:8600");
  // Third failure of three: every URL had its chance; the next round starts at a again.
  EXPECT_TRUE(list.Failed().round_over);
  EXPECT_EQ(list.current(), "http://a:8600");
  EXPECT_FALSE(list.Failed().round_over);
}

TEST(FailoverList, TheUrlThatWorkedLastStaysFirst) {
  FailoverList list(kThree);
  list.Failed();
  list.Succeeded();  // b worked.
  EXPECT_EQ(list.current(), "http://b:8600");
  // b goes away: c, a, then the round is over and b comes first again.
  EXPECT_FALSE(list.Failed().round_over);
  EXPECT_EQ(list.current(), "http://c:8600");
  EXPECT_FALSE(list.Failed().round_over);
  EXPECT_EQ(list.current(), "http://a:8600");
  EXPECT_TRUE(list.Failed().round_over);
  EXPECT_EQ(list.current(), "http://b:8600");
}

TEST(FailoverList, AStandbysHintInTheListIsFollowedAtOnce) {
  FailoverList list(kThree);
  // a is a standby naming c (written differently: origins are compared).
  FailoverList::Step step = list.Failed("HTTP://C:8600/");
  EXPECT_TRUE(step.followed_leader);
  EXPECT_FALSE(step.round_over);
  EXPECT_EQ(list.current(), "http://c:8600");
  list.Succeeded();
  EXPECT_EQ(list.current(), "http://c:8600");
}

TEST(FailoverList, AHintOutsideTheListIsIgnored) {
  FailoverList list(kThree);
  FailoverList::Step step = list.Failed("http://elsewhere:8600");
  EXPECT_TRUE(step.leader_not_listed);
  EXPECT_FALSE(step.followed_leader);
  EXPECT_EQ(list.current(), "http://b:8600");  // The next one, as after any failure.
}

TEST(FailoverList, TwoStandbysNamingEachOtherCannotSpin) {
  FailoverList list({"http://a:1", "http://b:2"});
  // a names b, b names a, ...: at most 2 hops (the list's size) per round, then plain failures
  // end the round after 2 more attempts.
  int attempts = 0;
  bool over = false;
  while (!over && attempts < 100) {
    ++attempts;
    std::string other = list.current() == "http://a:1" ? "http://b:2" : "http://a:1";
    over = list.Failed(other).round_over;
  }
  // hops: a->b, b->a; plain: a (->b), b (-> a, round over) = 4 attempts.
  EXPECT_EQ(attempts, 4);
  // The next round may follow hints again.
  EXPECT_TRUE(list.Failed("http://b:2").followed_leader);
}

TEST(FailoverList, AStandbyNamingItselfIsAPlainFailure) {
  FailoverList list(kThree);
  FailoverList::Step step = list.Failed("http://a:8600");
  EXPECT_FALSE(step.followed_leader);
  EXPECT_EQ(list.current(), "http://b:8600");
}

TEST(FailoverList, OneUrlEndsTheRoundAtEachFailure) {
  FailoverList list({"http://a:1"});
  EXPECT_TRUE(list.Failed().round_over);
  EXPECT_TRUE(list.Failed("http://a:1").round_over);
  EXPECT_EQ(list.current(), "http://a:1");
}

TEST(StandbyRefusal, TheBlockingWebSocketClientReturnsTheAnswerWithTheLeaderHeader) {
  testing::FakeStandby standby("http://127.0.0.1:9");
  auto opened = WsClient::Open(standby.url(), "/v1/watch", {.timeout = Seconds(5)});
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  auto* refusal = std::get_if<HttpResponse>(&*opened);
  ASSERT_NE(refusal, nullptr);
  EXPECT_EQ(refusal->status, 503);
  EXPECT_EQ(LeaderHeader(refusal->headers), "http://127.0.0.1:9");
  EXPECT_NE(refusal->body.find("standby"), std::string::npos);
  // `Connect` keeps its error for the same refusal.
  auto connect = WsClient::Connect(standby.url(), "/v1/watch", {.timeout = Seconds(5)});
  ASSERT_FALSE(connect.ok());
  EXPECT_EQ(connect.status().message().rfind("upgrade refused with 503: ", 0), 0u);
}

TEST(StandbyRefusal, TheAsyncWebSocketClientHandsTheAnswerOverBeforeClosing) {
  testing::FakeStandby standby("http://127.0.0.1:9");
  boost::asio::io_context ioc;
  std::vector<std::string> seen;
  AsyncWsCallbacks cb;
  cb.on_refused = [&](const HttpResponse& answer) {
    seen.push_back("refused " + std::to_string(answer.status) + " " + LeaderHeader(answer.headers));
  };
  cb.on_close = [&](std::string reason) { seen.push_back("closed " + reason.substr(0, 30)); };
  auto client = AsyncWsClient::Connect(ioc, standby.url(), "/v1/workers/connect", {}, cb);
  ASSERT_TRUE(client.ok());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (seen.size() < 2 && std::chrono::steady_clock::now() < deadline)
    ioc.run_one_for(std::chrono::milliseconds(100));
  EXPECT_EQ(seen, (std::vector<std::string>{"refused 503 http://127.0.0.1:9",
                                            "closed upgrade at /v1/workers/connect"}));
}

}  // namespace
}  // namespace gsched::net
