// Golden round trips: each file under tests/data/api/ is the canonical JSON of one wire type.
// decode(golden) must succeed, encode(decode(golden)) must equal the golden value, and encoding
// twice must give the same bytes.
#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>
#include <string>

#include "scheduler/api/codec.h"
#include "scheduler/api/worker_messages.h"
#include "tests/unit/api/test_util.h"

namespace gsched::api {
namespace {

using testing::Json;
using testing::ReadDataFile;

template <typename DecodeFn>
void ExpectRoundTrip(const std::string& file, DecodeFn decode) {
  SCOPED_TRACE(file);
  boost::json::value golden = Json(ReadDataFile(file));
  auto decoded = decode(golden);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  boost::json::value encoded = Encode(*decoded);
  EXPECT_EQ(encoded, golden) << "encoded: " << boost::json::serialize(encoded)
                             << "\ngolden:  " << boost::json::serialize(golden);
  // Deterministic: a second encoding is byte-identical, and decoding it gives the same value.
  EXPECT_EQ(boost::json::serialize(Encode(*decoded)), boost::json::serialize(encoded));
  auto again = decode(encoded);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(*again == *decoded);
}

TEST(GoldenTest, JobSpec) {
  ExpectRoundTrip("job_spec.json", DecodeJobSpec);
}
TEST(GoldenTest, JobSpecMinimal) {
  ExpectRoundTrip("job_spec_minimal.json", DecodeJobSpec);
}
TEST(GoldenTest, Job) {
  ExpectRoundTrip("job.json", DecodeJob);
}
TEST(GoldenTest, PendingJobWithReason) {
  ExpectRoundTrip("job_pending.json", DecodeJob);
}
TEST(GoldenTest, Node) {
  ExpectRoundTrip("node.json", DecodeNode);
}
TEST(GoldenTest, Account) {
  ExpectRoundTrip("account.json", DecodeAccount);
}
TEST(GoldenTest, Event) {
  ExpectRoundTrip("event.json", DecodeEvent);
}
TEST(GoldenTest, TokenRequest) {
  ExpectRoundTrip("token_request.json", DecodeTokenRequest);
}
TEST(GoldenTest, TokenAnswer) {
  ExpectRoundTrip("token_answer.json", DecodeTokenAnswer);
}
TEST(GoldenTest, WhoAmI) {
  ExpectRoundTrip("whoami.json", DecodeWhoAmI);
}
TEST(GoldenTest, ApiError) {
  ExpectRoundTrip("api_error.json", DecodeApiError);
}

template <typename DecodeFn>
void ExpectMessageRoundTrip(const std::string& file, DecodeFn decode, std::string_view type) {
  SCOPED_TRACE(file);
  std::string text = ReadDataFile(file);
  boost::json::value golden = Json(text);
  auto decoded = decode(text);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(MessageType(*decoded), type);
  boost::json::value encoded = EncodeMessage(*decoded);
  EXPECT_EQ(encoded, golden) << "encoded: " << boost::json::serialize(encoded)
                             << "\ngolden:  " << boost::json::serialize(golden);
  auto again = decode(SerializeMessage(*decoded));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(*again == *decoded);
}

Result<WorkerMessage> DecodeWorkerText(std::string_view text) {
  return DecodeWorkerMessage(text);
}
Result<SchedulerMessage> DecodeSchedulerText(std::string_view text) {
  return DecodeSchedulerMessage(text);
}

TEST(GoldenTest, WorkerMessages) {
  ExpectMessageRoundTrip("worker_hello.json", DecodeWorkerText, "hello");
  ExpectMessageRoundTrip("worker_heartbeat.json", DecodeWorkerText, "heartbeat");
  ExpectMessageRoundTrip("worker_job_update.json", DecodeWorkerText, "job_update");
  ExpectMessageRoundTrip("worker_gpu_health.json", DecodeWorkerText, "gpu_health");
}

TEST(GoldenTest, SchedulerMessages) {
  ExpectMessageRoundTrip("scheduler_launch.json", DecodeSchedulerText, "launch");
  ExpectMessageRoundTrip("scheduler_signal.json", DecodeSchedulerText, "signal");
  ExpectMessageRoundTrip("scheduler_kill.json", DecodeSchedulerText, "kill");
  ExpectMessageRoundTrip("scheduler_ack.json", DecodeSchedulerText, "ack");
  ExpectMessageRoundTrip("scheduler_drain.json", DecodeSchedulerText, "drain");
}

// The decoded values, spot-checked, so that a round trip cannot pass by dropping fields both ways.
TEST(GoldenTest, JobSpecValues) {
  auto spec = DecodeJobSpec(Json(ReadDataFile("job_spec.json")));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->name, "llama-ft");
  EXPECT_EQ(spec->command.size(), 5u);
  EXPECT_EQ(spec->env.at("HF_HOME"), "/scratch/hf");
  EXPECT_EQ(spec->nodes, 2);
  EXPECT_EQ(spec->gpus_per_node, 8);
  EXPECT_EQ(spec->gpu_type, (std::vector<std::string>{"h100", "h200"}));
  EXPECT_EQ(spec->memory_mib_per_node, 1048576);
  EXPECT_EQ(spec->time_limit_s, 86400);
  EXPECT_EQ(spec->topology, Topology::kBlock);
  EXPECT_EQ(spec->array, "0-999%50");
  ASSERT_EQ(spec->depends_on.size(), 2u);
  EXPECT_EQ(spec->depends_on[1].type, DependencyType::kAfterNotOk);
  EXPECT_EQ(spec->depends_on[1].job, 18446744073709551615u);
  EXPECT_EQ(spec->checkpoint_signal, "SIGUSR1");
  EXPECT_EQ(spec->grace_period_s, 120);
  EXPECT_TRUE(spec->requeue);
  EXPECT_EQ(spec->labels.size(), 2u);
}

TEST(GoldenTest, DefaultsOfAMinimalSpec) {
  auto spec = DecodeJobSpec(Json(R"({"image": "/images/cuda-12", "command": ["nvidia-smi"]})"));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  JobSpec expected;
  expected.image = "/images/cuda-12";
  expected.command = {"nvidia-smi"};
  EXPECT_TRUE(*spec == expected);
  // Encoding spells out every default.
  EXPECT_EQ(Encode(*spec), Json(ReadDataFile("job_spec_minimal.json")));
}

TEST(GoldenTest, SubmitBatchAcceptsQuantityStrings) {
  auto jobs = DecodeSubmitBody(Json(ReadDataFile("submit_batch.json")));
  ASSERT_TRUE(jobs.ok()) << jobs.status().ToString();
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[1].time_limit_s, 4 * 3600);
  EXPECT_EQ((*jobs)[1].memory_mib_per_node, 16 * 1024);
  EXPECT_EQ((*jobs)[1].checkpoint_signal, "SIGUSR1");
  // Quantities are normalised: the encoding carries integers.
  EXPECT_EQ(Encode((*jobs)[1]).at("time_limit_s"), boost::json::value(14400));
}

TEST(GoldenTest, SingleSpecSubmitBody) {
  auto jobs = DecodeSubmitBody(Json(R"({"image": "/i", "command": ["true"], "nodes": 3})"));
  ASSERT_TRUE(jobs.ok()) << jobs.status().ToString();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].nodes, 3);
}

TEST(GoldenTest, ValueFromUsesEncode) {
  TokenAnswer answer{"tok_1", "secret"};
  EXPECT_EQ(boost::json::value_from(answer), Encode(answer));
  std::vector<Quota> quotas = {{1, 2}, {3, 4}};
  EXPECT_EQ(boost::json::value_from(quotas), Json(R"([{"guaranteed": 1, "limit": 2},
                                                    {"guaranteed": 3, "limit": 4}])"));
}

TEST(GoldenTest, ErrorBodyFromStatus) {
  Status s = Status::InvalidArgument("must be 1..64", "jobs[3].gpus_per_node");
  EXPECT_EQ(ErrorBody(s), Json(ReadDataFile("api_error.json")));
  EXPECT_EQ(ErrorBody(Status::NotFound("no job 7")),
            Json(R"({"error": {"code": "not_found", "message": "no job 7"}})"));
}

}  // namespace
}  // namespace gsched::api
