// The node registry on its own: what a hello records, heartbeats and the two timeouts (`down`,
// then lost), GPU health, drains that survive an outage, and what the attempts on a node hold
// (GPUs, CPUs, memory, rendezvous ports) as placement re-checks it. A manual clock; the
// registry's events go to a real `EventLog`.
#include "scheduler/server/node_registry.h"

#include <gtest/gtest.h>

namespace gsched::server {
namespace {

api::Hello Hello(const std::string& node, int gpus = 8, const std::string& type = "h100") {
  api::Hello h;
  h.node = node;
  h.address = "10.0.0." + node.substr(1);
  h.cpus = 64;
  h.memory_mib = 512 * 1024;
  for (int i = 0; i < gpus; ++i)
    h.gpus.push_back(api::Gpu{i, "GPU-" + node + "-" + std::to_string(i), type});
  return h;
}

api::Job JobOn(uint64_t id, std::vector<api::Allocation> allocation,
               std::optional<int32_t> port = std::nullopt) {
  api::Job j;
  j.id = id;
  j.attempt = 1;
  j.allocation = std::move(allocation);
  if (port)
    j.rendezvous = api::Rendezvous{"10.0.0.1", *port};
  return j;
}

class NodeRegistryTest : public ::testing::Test {
 protected:
  NodeRegistryTest() {
    config_.nodes.heartbeat_timeout = Seconds(30);
    config_.nodes.lost_timeout = Seconds(300);
  }
  static Principal Admin() { return {"root", api::Role::kAdmin, {}, "tok_admin", {}}; }

  Change Hello(const api::Hello& h) {
    Change c;
    nodes_.Hello(c, h);
    return c;
  }
  api::NodeState StateOf(const std::string& node) const { return nodes_.Find(node)->node.state; }
  // The `to` of every `node.state` event in `c`.
  static std::vector<std::string> Transitions(const Change& c) {
    std::vector<std::string> out;
    for (const api::Event& e : c.events) {
      if (e.type == "node.state")
        out.push_back(std::string(e.data.at("to").as_string()));
    }
    return out;
  }

  config::SchedulerConfig config_;
  ManualClock clock_;
  EventLog events_{config_, clock_};
  NodeRegistry nodes_{config_, clock_, events_};
};

TEST_F(NodeRegistryTest, AHelloRecordsTheNodeUpAndConnected) {
  Change c = Hello(::gsched::server::Hello("n1", 4));
  const NodeRecord* n = nodes_.Find("n1");
  ASSERT_NE(n, nullptr);
  EXPECT_TRUE(n->connected);
  EXPECT_EQ(n->node.state, api::NodeState::kUp);
  EXPECT_EQ(n->node.gpu_count, 4);
  EXPECT_EQ(n->node.gpu_type, "h100");
  // A worker that names no site or block gets the defaults.
  EXPECT_EQ(n->node.site, "default");
  EXPECT_EQ(n->node.block, "default-default");
  EXPECT_EQ(n->rendezvous_ports, api::kDefaultRendezvousPorts);
  // A new node comes up from `down`: one event, stored, and a pass is wanted.
  EXPECT_EQ(Transitions(c), (std::vector<std::string>{"up"}));
  EXPECT_TRUE(c.reschedule);
  ASSERT_FALSE(c.batch.empty());
  EXPECT_EQ(c.batch.mutations()[0].family, state::Family::kNodes);
  EXPECT_EQ(nodes_.Find("nobody"), nullptr);
  // The wire form counts free GPUs.
  ASSERT_EQ(nodes_.Nodes().size(), 1u);
  EXPECT_EQ(nodes_.Nodes()[0].free_gpus, 4);
}

TEST_F(NodeRegistryTest, HeartbeatsAndHealthBeforeAHelloAreRefused) {
  EXPECT_EQ(nodes_.Heartbeat({"n1"}).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(nodes_.GpuHealth({"n1", {}}).status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(NodeRegistryTest, ASilentNodeGoesDownAfterTheHeartbeatTimeoutAndIsLostLater) {
  Hello(::gsched::server::Hello("n1"));
  Hello(::gsched::server::Hello("n2"));
  clock_.Advance(Seconds(20));
  ASSERT_TRUE(nodes_.Heartbeat({"n2"}).ok());  // n2 last heard at 20 s, n1 at 0 s.
  clock_.Advance(Seconds(9));                  // 29 s.
  Change c;
  EXPECT_TRUE(nodes_.CheckTimeouts(c).empty());
  EXPECT_TRUE(c.events.empty());
  clock_.Advance(Seconds(1));  // 30 s: n1 silent for 30 s, n2 for 10 s.
  Change down;
  EXPECT_TRUE(nodes_.CheckTimeouts(down).empty());
  EXPECT_EQ(Transitions(down), (std::vector<std::string>{"down"}));
  EXPECT_EQ(StateOf("n1"), api::NodeState::kDown);
  EXPECT_EQ(StateOf("n2"), api::NodeState::kUp);
  EXPECT_NE(nodes_.Find("n1")->node.state_reason.find("no heartbeat"), std::string::npos);
  // Checking again changes nothing: already down.
  Change again;
  EXPECT_TRUE(nodes_.CheckTimeouts(again).empty());
  EXPECT_TRUE(again.events.empty());
  // n2 keeps beating; n1 silent for 300 s is lost.
  clock_.Advance(Seconds(269));  // 299 s.
  ASSERT_TRUE(nodes_.Heartbeat({"n2"}).ok());
  Change not_yet;
  EXPECT_TRUE(nodes_.CheckTimeouts(not_yet).empty());
  clock_.Advance(Seconds(1));  // 300 s.
  Change lost;
  EXPECT_EQ(nodes_.CheckTimeouts(lost), (std::set<std::string>{"n1"}));
}

TEST_F(NodeRegistryTest, ADownNodeComesBackWithItsNextHeartbeat) {
  Hello(::gsched::server::Hello("n1"));
  clock_.Advance(Seconds(30));
  Change down;
  (void)nodes_.CheckTimeouts(down);
  ASSERT_EQ(StateOf("n1"), api::NodeState::kDown);
  auto back = nodes_.Heartbeat({"n1"});
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(Transitions(*back), (std::vector<std::string>{"up"}));
  EXPECT_EQ(StateOf("n1"), api::NodeState::kUp);
  EXPECT_EQ(nodes_.Find("n1")->node.state_reason, "");
}

TEST_F(NodeRegistryTest, ADisconnectedWorkerKeepsItsNodeUpUntilTheTimeout) {
  Hello(::gsched::server::Hello("n1"));
  nodes_.Disconnected("n1");
  EXPECT_FALSE(nodes_.Find("n1")->connected);
  EXPECT_EQ(StateOf("n1"), api::NodeState::kUp);
  // Nothing new is placed on it meanwhile.
  EXPECT_EQ(nodes_.WhyNotFits("n1", "h100", 0b1, 0, 0), "node n1 is not up");
  // A reconnection at once keeps everything as it was.
  Change c = Hello(::gsched::server::Hello("n1"));
  EXPECT_TRUE(Transitions(c).empty());
  EXPECT_EQ(nodes_.WhyNotFits("n1", "h100", 0b1, 0, 0), "");
}

TEST_F(NodeRegistryTest, ADrainWaitsForTheAttemptsOnTheNode) {
  Hello(::gsched::server::Hello("n1"));
  const api::Job job = JobOn(7, {{"n1", {0, 1}}});
  nodes_.Hold(job, 8, 1024);
  auto drain = nodes_.Drain(Admin(), "n1", "maintenance");
  ASSERT_TRUE(drain.ok());
  EXPECT_EQ(Transitions(*drain), (std::vector<std::string>{"draining"}));
  EXPECT_EQ(drain->events[0].data.at("by").as_string(), "root");
  ASSERT_EQ(drain->dispatches.size(), 1u);  // The worker is told.
  EXPECT_TRUE(std::holds_alternative<api::Drain>(drain->dispatches[0].message));
  Change idle;
  nodes_.DrainedIfIdle(idle, "n1");  // Still busy.
  EXPECT_TRUE(idle.events.empty());
  nodes_.Release(job, 8, 1024);
  nodes_.DrainedIfIdle(idle, "n1");
  EXPECT_EQ(Transitions(idle), (std::vector<std::string>{"drained"}));
  EXPECT_EQ(nodes_.Find("n1")->node.state_reason, "maintenance");
  auto resume = nodes_.Resume(Admin(), "n1");
  ASSERT_TRUE(resume.ok());
  EXPECT_EQ(Transitions(*resume), (std::vector<std::string>{"up"}));
  EXPECT_EQ(nodes_.Drain(Admin(), "n9", "x").status().code(), StatusCode::kNotFound);
}

TEST_F(NodeRegistryTest, AnAdminsDrainSurvivesAnOutage) {
  Hello(::gsched::server::Hello("n1"));
  ASSERT_TRUE(nodes_.Drain(Admin(), "n1", "bad fan").ok());
  ASSERT_EQ(StateOf("n1"), api::NodeState::kDrained);  // Idle: drained at once.
  clock_.Advance(Seconds(30));
  Change down;
  (void)nodes_.CheckTimeouts(down);
  ASSERT_EQ(StateOf("n1"), api::NodeState::kDown);
  Change back = Hello(::gsched::server::Hello("n1"));
  EXPECT_EQ(Transitions(back), (std::vector<std::string>{"drained"}));
  // And a drain asked for while the node is down applies when it is back.
  Hello(::gsched::server::Hello("n2"));
  clock_.Advance(Seconds(30));
  (void)nodes_.CheckTimeouts(down);
  ASSERT_EQ(StateOf("n2"), api::NodeState::kDown);
  auto drain = nodes_.Drain(Admin(), "n2", "later");
  ASSERT_TRUE(drain.ok());
  EXPECT_TRUE(drain->events.empty());
  EXPECT_EQ(StateOf("n2"), api::NodeState::kDown);
  auto beat = nodes_.Heartbeat({"n2"});
  ASSERT_TRUE(beat.ok());
  EXPECT_EQ(Transitions(*beat), (std::vector<std::string>{"drained"}));
}

TEST_F(NodeRegistryTest, AttemptsHoldGpusCpusAndMemoryUntilReleased) {
  Hello(::gsched::server::Hello("n1"));
  Hello(::gsched::server::Hello("n2"));
  // A gang: GPUs 0-3 on n1 and 4-7 on n2, 16 CPUs and 64 GiB per node.
  const api::Job gang = JobOn(1, {{"n1", {0, 1, 2, 3}}, {"n2", {4, 5, 6, 7}}});
  nodes_.Hold(gang, 16, 64 * 1024);
  const NodeRecord& n1 = *nodes_.Find("n1");
  EXPECT_EQ(n1.used_gpus, 0x0Fu);
  EXPECT_EQ(nodes_.Find("n2")->used_gpus, 0xF0u);
  EXPECT_EQ(n1.used_cpus, 16);
  EXPECT_EQ(n1.used_memory_mib, 64 * 1024);
  EXPECT_EQ(n1.jobs, (std::set<uint64_t>{1}));
  EXPECT_EQ(nodes_.Nodes()[0].free_gpus, 4);
  // Placement re-checks against what is held.
  EXPECT_EQ(nodes_.WhyNotFits("n1", "h100", 0b1000, 0, 0), "GPUs of node n1 are taken");
  EXPECT_EQ(nodes_.WhyNotFits("n1", "h100", 0b10000, 0, 0), "");
  // 64 CPUs - 16 held = 48 left.
  EXPECT_EQ(nodes_.WhyNotFits("n1", "h100", 0b10000, 49, 0), "not enough CPUs left on node n1");
  EXPECT_EQ(nodes_.WhyNotFits("n1", "h100", 0b10000, 48, 0), "");
  // 512 GiB - 64 GiB = 448 GiB left.
  EXPECT_EQ(nodes_.WhyNotFits("n1", "h100", 0, 0, 448 * 1024 + 1),
            "not enough memory left on node n1");
  EXPECT_EQ(nodes_.WhyNotFits("n1", "b200", 0b10000, 0, 0), "node n1 now has h100 GPUs");
  EXPECT_EQ(nodes_.WhyNotFits("n1", "h100", uint64_t{1} << 8, 0, 0),
            "GPUs of node n1 are gone or unhealthy");  // It has 8 GPUs: 0-7.
  EXPECT_EQ(nodes_.WhyNotFits("n9", "h100", 0b1, 0, 0), "node n9 is gone");
  nodes_.Release(gang, 16, 64 * 1024);
  EXPECT_EQ(n1.used_gpus, 0u);
  EXPECT_EQ(n1.used_cpus, 0);
  EXPECT_EQ(n1.used_memory_mib, 0);
  EXPECT_TRUE(n1.jobs.empty());
  EXPECT_EQ(nodes_.WhyNotFits("n1", "h100", 0b1000, 64, 512 * 1024), "");
}

TEST_F(NodeRegistryTest, AnUnhealthyGpuIsLeftOutAndARepeatedReportCostsNothing) {
  Hello(::gsched::server::Hello("n1"));
  api::GpuHealthReport report{"n1", {{2, api::GpuHealth::kUnhealthy, "XID 79", 79}}};
  auto c = nodes_.GpuHealth(report);
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->events.size(), 1u);
  EXPECT_EQ(c->events[0].type, "node.health");
  EXPECT_EQ(c->events[0].data.at("gpu").as_int64(), 2);
  EXPECT_TRUE(c->reschedule);
  EXPECT_FALSE(c->batch.empty());
  EXPECT_EQ(nodes_.WhyNotFits("n1", "h100", 0b100, 0, 0), "GPUs of node n1 are gone or unhealthy");
  // The node itself stays up: only that GPU is out.
  EXPECT_EQ(StateOf("n1"), api::NodeState::kUp);
  EXPECT_EQ(nodes_.WhyNotFits("n1", "h100", 0b011, 0, 0), "");
  auto repeat = nodes_.GpuHealth(report);
  ASSERT_TRUE(repeat.ok());
  EXPECT_TRUE(repeat->events.empty());
  EXPECT_TRUE(repeat->batch.empty());
  EXPECT_FALSE(repeat->reschedule);
}

TEST_F(NodeRegistryTest, ARendezvousPortIsOneNoAttemptOnTheGangsNodesHolds) {
  api::Hello h1 = ::gsched::server::Hello("n1");
  h1.rendezvous_ports = api::PortRange{30000, 30002};  // Three ports.
  Hello(h1);
  Hello(::gsched::server::Hello("n2"));
  // The search starts at (job x 7919 + attempt) mod 3: job 1, attempt 1 -> 7920 mod 3 = 0.
  auto r = nodes_.ChooseRendezvous({"n1", "n2"}, 1, 1);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, (api::Rendezvous{"10.0.0.1", 30000}));
  // 30000 held on n2 (by a job whose rank 0 is elsewhere), 30001 on n1: 30002 is the one left.
  nodes_.Hold(JobOn(5, {{"n2", {0}}}, 30000), 0, 0);
  nodes_.Hold(JobOn(6, {{"n1", {0}}}, 30001), 0, 0);
  EXPECT_EQ(nodes_.ChooseRendezvous({"n1", "n2"}, 1, 1), (api::Rendezvous{"10.0.0.1", 30002}));
  nodes_.Hold(JobOn(7, {{"n1", {1}}}, 30002), 0, 0);
  EXPECT_EQ(nodes_.ChooseRendezvous({"n1", "n2"}, 1, 1), std::nullopt);
  // Released ports are free again.
  nodes_.Release(JobOn(6, {{"n1", {0}}}, 30001), 0, 0);
  EXPECT_EQ(nodes_.ChooseRendezvous({"n1", "n2"}, 1, 1), (api::Rendezvous{"10.0.0.1", 30001}));
  EXPECT_EQ(nodes_.ChooseRendezvous({}, 1, 1), std::nullopt);
  EXPECT_EQ(nodes_.ChooseRendezvous({"n9"}, 1, 1), std::nullopt);
}

}  // namespace
}  // namespace gsched::server
