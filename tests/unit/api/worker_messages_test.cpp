// Worker channel messages: the `type` discriminator, values built in code, forward compatibility.
#include "scheduler/api/worker_messages.h"

#include <gtest/gtest.h>

#include <string>

namespace gsched::api {
namespace {

TEST(WorkerMessagesTest, BuiltInCodeRoundTrips) {
  JobUpdate update;
  update.job = 42;
  update.attempt = 3;
  update.state = JobState::kCompleted;
  update.exit_code = 0;
  update.checkpoint_time = FromUnixMillis(1'800'000'000'123);
  std::string text = SerializeMessage(WorkerMessage(update));
  EXPECT_NE(text.find(R"("type":"job_update")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("checkpoint_time":"2027-01-15T08:00:00.123Z")"), std::string::npos)
      << text;
  auto decoded = DecodeWorkerMessage(text);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  ASSERT_TRUE(std::holds_alternative<JobUpdate>(*decoded));
  EXPECT_EQ(std::get<JobUpdate>(*decoded), update);

  Launch launch;
  launch.job = 7;
  launch.attempt = 1;
  launch.spec.image = "/images/cuda";
  launch.spec.command = {"nvidia-smi"};
  launch.gpus = {2, 3};
  launch.env = {{"GSCHED_JOB_ID", "7"}};
  launch.array_index = 5;
  launch.node_rank = 0;
  launch.nodes = {"n1"};
  launch.rendezvous = Rendezvous{"fd00::3", 29512};
  auto back = DecodeSchedulerMessage(SerializeMessage(SchedulerMessage(launch)));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(MessageType(*back), "launch");
  EXPECT_EQ(std::get<Launch>(*back), launch);

  for (const SchedulerMessage& m :
       {SchedulerMessage(Signal{1, 2, "SIGUSR1"}), SchedulerMessage(Kill{1, 2, 60, "preempted"}),
        SchedulerMessage(Drain{"maintenance"})}) {
    auto r = DecodeSchedulerMessage(SerializeMessage(m));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, m);
  }
}

TEST(WorkerMessagesTest, HelloSaysWhereTheNodeListens) {
  Hello hello;
  hello.node = "n1";
  hello.address = "10.0.0.7";
  hello.rendezvous_ports = PortRange{29500, 29599};
  auto back = DecodeWorkerMessage(SerializeMessage(WorkerMessage(hello)));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(std::get<Hello>(*back), hello);
  // Bad addresses and ranges are refused, naming the field.
  for (const char* bad : {
           R"({"type":"hello","node":"n1","address":"10.0.0.7; rm -rf /"})",
           R"({"type":"hello","node":"n1","rendezvous_ports":{"first":29600,"last":29500}})",
           R"({"type":"hello","node":"n1","rendezvous_ports":{"first":0,"last":29500}})",
           R"({"type":"hello","node":"n1","rendezvous_ports":{"first":1,"last":70000}})",
       }) {
    auto r = DecodeWorkerMessage(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_TRUE(r.status().field().find("address") != std::string::npos ||
                r.status().field().find("rendezvous_ports") != std::string::npos)
        << r.status().ToString();
  }
}

TEST(WorkerMessagesTest, AJobUpdateCarriesTheImageDigestValidated) {
  JobUpdate update;
  update.job = 42;
  update.attempt = 1;
  update.state = JobState::kStarting;
  update.message = "pulling image: 412 of 1,930 MiB";
  update.image_digest = "sha256:" + std::string(64, 'e');
  auto decoded = DecodeWorkerMessage(SerializeMessage(WorkerMessage(update)));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(std::get<JobUpdate>(*decoded), update);
  // Absent: none (a worker from before images, or a local root file system).
  auto without =
      DecodeWorkerMessage(R"({"type":"job_update","job":1,"attempt":1,"state":"running"})");
  ASSERT_TRUE(without.ok()) << without.status().ToString();
  EXPECT_EQ(std::get<JobUpdate>(*without).image_digest, "");
  for (const char* bad : {"sha256:abc", "md5:0123", "SHA256:"}) {
    auto r = DecodeWorkerMessage(
        std::string(
            R"({"type":"job_update","job":1,"attempt":1,"state":"running","image_digest":")") +
        bad + "\"}");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().field(), "image_digest") << r.status().ToString();
  }
}

TEST(WorkerMessagesTest, LogMessagesRoundTripAndAreBounded) {
  ReadLog read{9, 42, 2, LogStream::kStderr, 4096, 1024};
  auto r = DecodeSchedulerMessage(SerializeMessage(SchedulerMessage(read)));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(std::get<ReadLog>(*r), read);
  LogChunk chunk{9,    42,    2, LogStream::kStderr, 4096, "epoch 1\n\xe2\x9c\x93\n", 4108,
                 5000, false, ""};
  auto c = DecodeWorkerMessage(SerializeMessage(WorkerMessage(chunk)));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(std::get<LogChunk>(*c), chunk);

  // A chunk larger than `kMaxLogChunkBytes` may not be asked for, and a chunk may not go back.
  auto big = DecodeSchedulerMessage(
      R"({"type": "read_log", "request": 1, "job": 1, "attempt": 1, "limit": 131073})");
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().field(), "limit");
  auto stream = DecodeSchedulerMessage(
      R"({"type": "read_log", "request": 1, "job": 1, "attempt": 1, "stream": "stdin"})");
  ASSERT_FALSE(stream.ok());
  EXPECT_EQ(stream.status().field(), "stream");
  auto back = DecodeWorkerMessage(
      R"({"type": "log_chunk", "request": 1, "job": 1, "attempt": 1, "offset": 10,
          "next_offset": 5})");
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().field(), "next_offset");
}

TEST(WorkerMessagesTest, SignalNamesAreNormalised) {
  auto r =
      DecodeSchedulerMessage(R"({"type": "signal", "job": 1, "attempt": 1, "signal": "usr2"})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(std::get<Signal>(*r).signal, "SIGUSR2");
}

TEST(WorkerMessagesTest, DefaultsOfOptionalFields) {
  auto r = DecodeWorkerMessage(R"({"type": "hello", "node": "n1"})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Hello& hello = std::get<Hello>(*r);
  EXPECT_EQ(hello.node, "n1");
  EXPECT_TRUE(hello.gpus.empty());
  EXPECT_TRUE(hello.running.empty());

  auto kill = DecodeSchedulerMessage(R"({"type": "kill", "job": 1, "attempt": 2})");
  ASSERT_TRUE(kill.ok()) << kill.status().ToString();
  EXPECT_EQ(std::get<Kill>(*kill).grace_s, 30);
}

TEST(WorkerMessagesTest, TypeMustBeAKnownString) {
  for (std::string_view text :
       {R"({"type": 1})", R"({"type": null, "node": "n1"})", R"({"type": "launch"})", "[]"}) {
    auto r = DecodeWorkerMessage(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  // A scheduler message on the worker's side of the channel is refused, and the other way round.
  EXPECT_FALSE(DecodeSchedulerMessage(R"({"type": "hello", "node": "n1"})").ok());
}

}  // namespace
}  // namespace gsched::api
