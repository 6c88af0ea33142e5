// `LogRelay`: every request is answered exactly once - by its chunk, by its node going away, or
// by its deadline - and chunks that answer nothing are dropped.
#include "scheduler/server/log_relay.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace gsched::server {
namespace {

struct Answers {
  std::vector<Result<api::LogChunk>> got;
  LogRelay::Answer Sink() {
    return [this](Result<api::LogChunk> c) { got.push_back(std::move(c)); };
  }
};

api::LogChunk Chunk(uint64_t request, std::string data) {
  api::LogChunk c;
  c.request = request;
  c.job = 7;
  c.attempt = 1;
  c.data = std::move(data);
  return c;
}

TEST(LogRelayTest, AChunkAnswersItsRequestOnceAndOnlyFromTheNodeAsked) {
  LogRelay relay(Seconds(10), 8);
  Answers a;
  Timestamp t0 = FromUnixMillis(1'000'000);
  auto id = relay.Start("n1", t0, a.Sink());
  ASSERT_TRUE(id.ok());
  // Another node cannot answer n1's request, and unknown numbers answer nothing.
  EXPECT_FALSE(relay.Complete("n2", Chunk(*id, "forged")));
  EXPECT_FALSE(relay.Complete("n1", Chunk(*id + 100, "unknown")));
  EXPECT_TRUE(relay.Complete("n1", Chunk(*id, "hello\n")));
  ASSERT_EQ(a.got.size(), 1u);
  ASSERT_TRUE(a.got[0].ok());
  EXPECT_EQ(a.got[0]->data, "hello\n");
  // Late duplicates are dropped.
  EXPECT_FALSE(relay.Complete("n1", Chunk(*id, "again")));
  EXPECT_EQ(a.got.size(), 1u);
  EXPECT_EQ(relay.pending(), 0u);
}

TEST(LogRelayTest, AWorkerErrorIsNotFound) {
  LogRelay relay(Seconds(10), 8);
  Answers a;
  auto id = relay.Start("n1", FromUnixMillis(0), a.Sink());
  api::LogChunk c = Chunk(*id, "");
  c.error = "this node has no output of job 7 attempt 1";
  EXPECT_TRUE(relay.Complete("n1", c));
  ASSERT_EQ(a.got.size(), 1u);
  EXPECT_EQ(a.got[0].status().code(), StatusCode::kNotFound);
  EXPECT_NE(a.got[0].status().message().find("n1: this node has no output"), std::string::npos);
}

TEST(LogRelayTest, NodeGoneFailsOnlyThatNodesRequests) {
  LogRelay relay(Seconds(10), 8);
  Answers on_n1, on_n2;
  ASSERT_TRUE(relay.Start("n1", FromUnixMillis(0), on_n1.Sink()).ok());
  ASSERT_TRUE(relay.Start("n1", FromUnixMillis(0), on_n1.Sink()).ok());
  ASSERT_TRUE(relay.Start("n2", FromUnixMillis(0), on_n2.Sink()).ok());
  relay.NodeGone("n1");
  ASSERT_EQ(on_n1.got.size(), 2u);
  EXPECT_EQ(on_n1.got[0].status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(on_n2.got.empty());
  EXPECT_EQ(relay.pending(), 1u);
}

TEST(LogRelayTest, DeadlinesExpireInOrderAndTheQueueIsBounded) {
  LogRelay relay(Seconds(10), 2);
  Answers a;
  // Requests at t = 0 s and t = 5 s: deadlines 10 s and 15 s.
  ASSERT_TRUE(relay.Start("n1", FromUnixMillis(0), a.Sink()).ok());
  ASSERT_TRUE(relay.Start("n1", FromUnixMillis(5'000), a.Sink()).ok());
  auto third = relay.Start("n1", FromUnixMillis(5'000), a.Sink());
  EXPECT_EQ(third.status().code(), StatusCode::kResourceExhausted);
  relay.Expire(FromUnixMillis(9'999));
  EXPECT_TRUE(a.got.empty());
  relay.Expire(FromUnixMillis(10'000));
  ASSERT_EQ(a.got.size(), 1u);
  EXPECT_EQ(a.got[0].status().code(), StatusCode::kDeadlineExceeded);
  relay.Expire(FromUnixMillis(15'000));
  EXPECT_EQ(a.got.size(), 2u);
  EXPECT_EQ(relay.pending(), 0u);
}

}  // namespace
}  // namespace gsched::server
