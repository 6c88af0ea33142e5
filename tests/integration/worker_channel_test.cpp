// The worker channel over a real WebSocket: a scripted worker says hello, receives a launch,
// reports the job running and completed; the scheduler kills stale attempts; a drained node gets
// no work.
#include <gtest/gtest.h>

#include <optional>
#include <thread>

#include "scheduler/api/worker_messages.h"
#include "tests/integration/scheduler_process.h"
#include "tests/integration/scripted_worker.h"

namespace gsched::testing {
namespace {

std::string JobState(const SchedulerProcess& s, const std::string& token, uint64_t id) {
  auto r = s.Client(token)->Get("/v1/jobs/" + std::to_string(id));
  if (!r.ok() || r->status != 200)
    return "?";
  return std::string(Parse(r->body).at("state").as_string());
}

TEST(WorkerChannelTest, JobRunsThroughItsWholeLife) {
  SchedulerProcess s;
  std::string worker_token = s.Token("node-1", "worker", {});
  std::string alice = s.Token("alice", "user", {"proj-a"});
  ScriptedWorker w(s, worker_token);
  ASSERT_TRUE(w.ok());
  w.Send(EightGpuHello("node-1"));
  auto r = s.Client(alice)->Post(
      "/v1/jobs", R"({"image":"/i","command":["true"],"gpus_per_node":4,"gpu_type":"h100"})");
  ASSERT_EQ(r->status, 201) << r->body;
  uint64_t id = Parse(r->body).at("id").to_number<uint64_t>();

  api::SchedulerMessage m = w.Next();
  auto* launch = std::get_if<api::Launch>(&m);
  ASSERT_NE(launch, nullptr) << api::SerializeMessage(m);
  EXPECT_EQ(launch->job, id);
  EXPECT_EQ(launch->attempt, 1u);
  // Best fit on an empty 8-GPU node: 4 GPUs, and an NVLink-free node takes the lowest indices.
  EXPECT_EQ(launch->gpus.size(), 4u);
  EXPECT_EQ(launch->nodes, std::vector<std::string>{"node-1"});
  EXPECT_EQ(JobState(s, alice, id), "starting");

  w.Send(
      api::JobUpdate{id, 1, api::JobState::kRunning, std::nullopt, std::nullopt, "", std::nullopt});
  ASSERT_TRUE(WaitFor([&] { return JobState(s, alice, id) == "running"; }));
  w.Send(
      api::JobUpdate{id, 1, api::JobState::kCompleted, 0, std::nullopt, "all done", std::nullopt});
  // The final update is acknowledged once it is durable, which it is by then.
  api::SchedulerMessage ack = w.Next();
  ASSERT_TRUE(std::holds_alternative<api::Ack>(ack)) << api::SerializeMessage(ack);
  EXPECT_EQ(std::get<api::Ack>(ack), (api::Ack{id, 1}));
  EXPECT_EQ(JobState(s, alice, id), "completed");
  // Sent again (the worker did not see the ack, say): acknowledged again, nothing changes.
  w.Send(api::JobUpdate{id, 1, api::JobState::kFailed, 1, std::nullopt, "", std::nullopt});
  ack = w.Next();
  ASSERT_TRUE(std::holds_alternative<api::Ack>(ack)) << api::SerializeMessage(ack);
  auto job = Parse(s.Client(alice)->Get("/v1/jobs/" + std::to_string(id))->body);
  EXPECT_EQ(job.at("state"), "completed");
  EXPECT_EQ(job.at("attempts").at(0).at("message"), "all done");
  EXPECT_EQ(job.at("exit_code").as_int64(), 0);
  EXPECT_EQ(job.at("attempts").as_array().size(), 1u);
  // The completed job survives a restart as history.
  s.Crash();
  s.Start();
  EXPECT_EQ(JobState(s, alice, id), "completed");
}

TEST(WorkerChannelTest, StaleAttemptsAreKilledAndLostOnesRequeued) {
  SchedulerProcess s;
  std::string worker_token = s.Token("node-1", "worker", {});
  std::string alice = s.Token("alice", "user", {"proj-a"});
  ScriptedWorker w(s, worker_token);
  w.Send(EightGpuHello("node-1"));
  auto r = s.Client(alice)->Post(
      "/v1/jobs",
      R"({"image":"/i","command":["x"],"gpus_per_node":8,"gpu_type":"h100","requeue":true})");
  uint64_t id = Parse(r->body).at("id").to_number<uint64_t>();
  ASSERT_TRUE(std::holds_alternative<api::Launch>(w.Next()));
  w.Send(
      api::JobUpdate{id, 1, api::JobState::kRunning, std::nullopt, std::nullopt, "", std::nullopt});
  ASSERT_TRUE(WaitFor([&] { return JobState(s, alice, id) == "running"; }));

  // The worker reconnects and reports an attempt the scheduler never made, and not the real one:
  // the unknown attempt is killed, the lost one is requeued and launched again as attempt 2.
  ScriptedWorker again(s, worker_token);
  api::Hello hello = EightGpuHello("node-1");
  hello.running.push_back({777, 3, api::JobState::kRunning});
  again.Send(hello);
  bool killed = false, relaunched = false;
  for (int i = 0; i < 4 && !(killed && relaunched); ++i) {
    api::SchedulerMessage m = again.Next();
    if (auto* k = std::get_if<api::Kill>(&m))
      killed |= k->job == 777 && k->attempt == 3;
    if (auto* l = std::get_if<api::Launch>(&m))
      relaunched |= l->job == id && l->attempt == 2;
  }
  EXPECT_TRUE(killed);
  EXPECT_TRUE(relaunched);
  // A late report from attempt 1 changes nothing.
  again.Send(api::JobUpdate{id, 1, api::JobState::kFailed, 1, std::nullopt, "", std::nullopt});
  auto job = Parse(s.Client(alice)->Get("/v1/jobs/" + std::to_string(id))->body);
  EXPECT_EQ(job.at("attempt").as_int64(), 2);
}

TEST(WorkerChannelTest, OnlyWorkerTokensConnectAndDrainedNodesGetNoWork) {
  SchedulerProcess s;
  std::string alice = s.Token("alice", "user", {"proj-a"});
  auto refused = net::WsClient::Connect(s.url(), "/v1/workers/connect",
                                        {.token = alice, .timeout = Seconds(10)});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kPermissionDenied);

  ScriptedWorker w(s, s.Token("node-1", "worker", {}));
  w.Send(EightGpuHello("node-1"));
  ASSERT_TRUE(WaitFor([&] {
    auto r = s.Client(alice)->Get("/v1/nodes");
    return r.ok() && r->body.find("node-1") != std::string::npos;
  }));
  auto d = s.Client(s.admin_token())->Post("/v1/nodes/node-1/drain", R"({"reason":"maintenance"})");
  ASSERT_EQ(d->status, 200) << d->body;
  EXPECT_EQ(Parse(d->body).at("state").as_string(), "drained");
  EXPECT_TRUE(std::holds_alternative<api::Drain>(w.Next()));
  auto r = s.Client(alice)->Post("/v1/jobs", R"({"image":"/i","command":["x"],"gpu_type":"h100"})");
  uint64_t id = Parse(r->body).at("id").to_number<uint64_t>();
  // The pending reason names the drained capacity instead of starting the job.
  ASSERT_TRUE(WaitFor([&] {
    auto job = Parse(s.Client(alice)->Get("/v1/jobs/" + std::to_string(id))->body);
    return job.at("reason").is_object();
  }));
  EXPECT_EQ(JobState(s, alice, id), "pending");
  auto resumed = s.Client(s.admin_token())->Post("/v1/nodes/node-1/resume", "");
  ASSERT_EQ(resumed->status, 200);
  api::SchedulerMessage m = w.Next();
  ASSERT_TRUE(std::holds_alternative<api::Launch>(m)) << api::SerializeMessage(m);
}

TEST(WorkerChannelTest, LogsAreReadFromTheNodeThatRanTheAttempt) {
  SchedulerProcess s;
  std::string worker_token = s.Token("node-1", "worker", {});
  std::string alice = s.Token("alice", "user", {"proj-a"});
  std::string bob = s.Token("bob", "user", {"proj-b"});
  auto w = std::make_unique<ScriptedWorker>(s, worker_token);
  w->Send(EightGpuHello("node-1"));
  auto r = s.Client(alice)->Post("/v1/jobs", R"({"image":"/i","command":["x"],"gpu_type":"h100"})");
  uint64_t id = Parse(r->body).at("id").to_number<uint64_t>();
  std::string logs = "/v1/jobs/" + std::to_string(id) + "/logs";
  ASSERT_TRUE(std::holds_alternative<api::Launch>(w->Next()));
  w->Send(
      api::JobUpdate{id, 1, api::JobState::kRunning, std::nullopt, std::nullopt, "", std::nullopt});
  ASSERT_TRUE(WaitFor([&] { return JobState(s, alice, id) == "running"; }));

  // The HTTP request waits while the worker answers the `read_log` it caused.
  std::optional<Result<net::HttpResponse>> answer;
  std::thread reader([&] { answer = s.Client(alice)->Get(logs + "?offset=4&limit=9999999"); });
  api::SchedulerMessage m = w->Next();
  auto* read = std::get_if<api::ReadLog>(&m);
  ASSERT_NE(read, nullptr) << api::SerializeMessage(m);
  EXPECT_EQ(read->job, id);
  EXPECT_EQ(read->attempt, 1u);
  EXPECT_EQ(read->offset, 4);
  EXPECT_EQ(read->limit, api::kMaxLogChunkBytes);  // Larger asks are served in pieces.
  w->Send(api::LogChunk{read->request, id, 1, api::LogStream::kStdout, 4, "epoch 1\n", 12, 12,
                        false, ""});
  reader.join();
  ASSERT_TRUE(answer && answer->ok());
  ASSERT_EQ((*answer)->status, 200) << (*answer)->body;
  auto body = Parse((*answer)->body);
  EXPECT_EQ(body.at("data").as_string(), "epoch 1\n");
  EXPECT_EQ(body.at("next_offset").to_number<int64_t>(), 12);
  EXPECT_EQ(body.at("node").as_string(), "node-1");
  EXPECT_FALSE(body.at("eof").as_bool());

  // Other users may not read it; bad parameters name themselves.
  EXPECT_EQ(s.Client(bob)->Get(logs)->status, 404);
  auto bad = s.Client(alice)->Get(logs + "?stream=stdin");
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(Parse(bad->body).at("error").at("field").as_string(), "stream");
  EXPECT_EQ(s.Client(alice)->Get(logs + "?attempt=5")->status, 404);

  // The worker goes away while a read waits: 503, not a hang.
  std::thread gone([&] { answer = s.Client(alice)->Get(logs); });
  ASSERT_TRUE(std::holds_alternative<api::ReadLog>(w->Next()));
  w.reset();
  gone.join();
  ASSERT_TRUE(answer && answer->ok());
  EXPECT_EQ((*answer)->status, 503) << (*answer)->body;
  // And with the node not connected the answer comes at once.
  auto offline = s.Client(alice)->Get(logs);
  EXPECT_EQ(offline->status, 503);
  EXPECT_NE(offline->body.find("not connected"), std::string::npos) << offline->body;
}

}  // namespace
}  // namespace gsched::testing
