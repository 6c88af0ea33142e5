// `ClusterState` as a state machine: a manual clock, a memory store, no threads or sockets.
#include "scheduler/server/cluster_state.h"

#include <gtest/gtest.h>

#include "scheduler/state/memory_store.h"

namespace gsched::server {
namespace {

api::Hello Hello(const std::string& node, int gpus = 8) {
  api::Hello h;
  h.node = node;
  h.cpus = 64;
  h.memory_mib = 1 << 19;
  for (int i = 0; i < gpus; ++i)
    h.gpus.push_back(api::Gpu{i, "GPU-" + std::to_string(i), "h100"});
  return h;
}

class ClusterStateTest : public ::testing::Test {
 protected:
  ClusterStateTest() : state_(config_, clock_) {
    Principal admin = Admin();
    api::Account lab;
    lab.name = "lab";
    Apply(state_.PutAccount(admin, lab));
  }
  static Principal Admin() { return {"root", api::Role::kAdmin, {}, "tok_admin", {}}; }
  static Principal Alice() { return {"alice", api::Role::kUser, {"lab"}, "tok_alice", {}}; }
  static Principal Worker() { return {"w", api::Role::kWorker, {}, "tok_w", {}}; }

  // Commits like the service does, and returns the change for inspection.
  Change Apply(Result<Change> change) {
    EXPECT_TRUE(change.ok()) << change.status().ToString();
    if (!change.ok())
      return {};
    EXPECT_TRUE(store_.Commit(change->batch).ok());
    return std::move(change).value();
  }
  api::NodeState NodeState(const std::string& name) { return state_.nodes().at(name).node.state; }
  uint64_t SubmitOne(int gpus) {
    api::JobSpec spec;
    spec.image = "/i";
    spec.command = {"x"};
    spec.gpus_per_node = gpus;
    std::vector<uint64_t> ids;
    Apply(state_.Submit(Alice(), {spec}, &ids));
    return ids.at(0);
  }
  // One scheduling pass, applied.
  Change Pass() {
    core::Snapshot snap = state_.BuildSnapshot();
    core::Plan plan = core::Schedule(snap, state_.policy(), clock_.Now());
    Change c = state_.ApplyPlan(snap, plan);
    EXPECT_TRUE(store_.Commit(c.batch).ok());
    return c;
  }

  config::SchedulerConfig config_;
  ManualClock clock_;
  state::MemoryStore store_;
  ClusterState state_;
};

TEST_F(ClusterStateTest, SubmitThenStartThenFinish) {
  Apply(state_.WorkerHello(Worker(), Hello("n1")));
  uint64_t id = SubmitOne(4);
  Change c = Pass();
  ASSERT_EQ(c.dispatches.size(), 1u);
  auto* launch = std::get_if<api::Launch>(&c.dispatches[0].message);
  ASSERT_NE(launch, nullptr);
  EXPECT_EQ(launch->job, id);
  EXPECT_EQ(launch->gpus.size(), 4u);
  Apply(state_.WorkerJobUpdate("n1", {id, 1, api::JobState::kCompleted, 0, {}, "", {}}));
  auto job = state_.GetJob(Alice(), id, store_);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state, api::JobState::kCompleted);
  EXPECT_EQ(state_.running_count(), 0u);
}

TEST_F(ClusterStateTest, EventsAreGapFreeAndPersistedWithTheirChange) {
  uint64_t before = state_.last_event_seq();
  Change c = Apply(state_.WorkerHello(Worker(), Hello("n1")));
  SubmitOne(1);
  uint64_t after = state_.last_event_seq();
  EXPECT_GT(after, before);
  for (uint64_t seq = before + 1; seq <= after; ++seq) {
    EXPECT_TRUE(store_.Get(state::Family::kEvents, state::U64Key(seq)).ok()) << seq;
  }
}

TEST_F(ClusterStateTest, EventLogIsPrunedByCountAndAgeKeepingTheNewest) {
  config_.events.max_events = 1000;
  config_.events.retention = Seconds(3600);
  // 1 event so far (the account); 1,099 submissions make 1,100.
  api::JobSpec spec;
  spec.image = "/i";
  spec.command = {"x"};
  std::vector<uint64_t> ids;
  Apply(state_.Submit(Alice(), std::vector<api::JobSpec>(1099, spec), &ids));
  ASSERT_EQ(state_.last_event_seq(), 1100u);
  EXPECT_EQ(state_.first_event_seq(), 1u);
  // By count: 1,100 - 1,000 = 100 go, in one range delete.
  Change c = Apply(state_.PruneEvents());
  EXPECT_EQ(c.batch.size(), 1u);
  EXPECT_EQ(state_.first_event_seq(), 101u);
  EXPECT_FALSE(store_.Get(state::Family::kEvents, state::U64Key(100)).ok());
  EXPECT_TRUE(store_.Get(state::Family::kEvents, state::U64Key(101)).ok());
  EXPECT_EQ(state_.recent_events().front().seq, 101u);
  // Below a step of 1000 / 64 = 15 events nothing is written.
  Apply(state_.Submit(Alice(), std::vector<api::JobSpec>(10, spec), &ids));
  EXPECT_TRUE(state_.PruneEvents().batch.empty());
  // By age: an hour later everything is past the retention, but the newest event stays.
  clock_.Advance(Seconds(3601));
  Apply(state_.PruneEvents());
  EXPECT_EQ(state_.first_event_seq(), 1110u);
  EXPECT_EQ(state_.last_event_seq(), 1110u);
  // A reload sees the same log.
  ClusterState reloaded(config_, clock_);
  ASSERT_TRUE(reloaded.Load(store_).ok());
  EXPECT_EQ(reloaded.first_event_seq(), 1110u);
  EXPECT_EQ(reloaded.last_event_seq(), 1110u);
  ASSERT_EQ(reloaded.recent_events().size(), 1u);
}

TEST_F(ClusterStateTest, SilentNodeGoesDownThenLosesItsJobs) {
  Apply(state_.WorkerHello(Worker(), Hello("n1")));
  api::JobSpec spec;
  spec.image = "/i";
  spec.command = {"x"};
  spec.requeue = true;
  std::vector<uint64_t> ids;
  Apply(state_.Submit(Alice(), {spec}, &ids));
  Pass();
  ASSERT_EQ(state_.running_count(), 1u);
  // heartbeat_timeout 30 s: at 29 s still up, at 30 s down.
  clock_.Advance(Seconds(29));
  Apply(state_.CheckNodeTimeouts());
  EXPECT_EQ(NodeState("n1"), api::NodeState::kUp);
  clock_.Advance(Seconds(1));
  Apply(state_.CheckNodeTimeouts());
  EXPECT_EQ(NodeState("n1"), api::NodeState::kDown);
  EXPECT_EQ(state_.running_count(), 1u);
  // lost_timeout 5 min after the last heartbeat: the job is node_fail and, requeue set, pending.
  clock_.Advance(Seconds(270));
  Apply(state_.CheckNodeTimeouts());
  EXPECT_EQ(state_.running_count(), 0u);
  EXPECT_EQ(state_.pending_count(), 1u);
  auto job = state_.GetJob(Alice(), ids[0], store_);
  EXPECT_EQ(job->attempts.back().state, api::JobState::kNodeFail);
}

TEST_F(ClusterStateTest, DrainingBecomesDrainedWhenTheLastJobEnds) {
  Apply(state_.WorkerHello(Worker(), Hello("n1")));
  uint64_t id = SubmitOne(2);
  Pass();
  Apply(state_.DrainNode(Admin(), "n1", "maintenance"));
  EXPECT_EQ(NodeState("n1"), api::NodeState::kDraining);
  // Draining takes no new work.
  SubmitOne(1);
  EXPECT_TRUE(Pass().dispatches.empty());
  Apply(state_.WorkerJobUpdate("n1", {id, 1, api::JobState::kCompleted, 0, {}, "", {}}));
  EXPECT_EQ(NodeState("n1"), api::NodeState::kDrained);
  Apply(state_.ResumeNode(Admin(), "n1"));
  EXPECT_EQ(NodeState("n1"), api::NodeState::kUp);
}

TEST_F(ClusterStateTest, ADrainSurvivesAnOutage) {
  Apply(state_.WorkerHello(Worker(), Hello("n1")));
  Apply(state_.DrainNode(Admin(), "n1", "bad fan"));
  EXPECT_EQ(NodeState("n1"), api::NodeState::kDrained);
  clock_.Advance(Seconds(31));
  Apply(state_.CheckNodeTimeouts());
  EXPECT_EQ(NodeState("n1"), api::NodeState::kDown);
  Apply(state_.WorkerHello(Worker(), Hello("n1")));
  EXPECT_EQ(NodeState("n1"), api::NodeState::kDrained);
}

TEST_F(ClusterStateTest, ReloadRestoresJobsAccountsNodesAndCounters) {
  Apply(state_.WorkerHello(Worker(), Hello("n1")));
  uint64_t running = SubmitOne(8);
  Pass();
  uint64_t pending = SubmitOne(8);
  ClusterState reloaded(config_, clock_);
  ASSERT_TRUE(reloaded.Load(store_).ok());
  EXPECT_EQ(reloaded.pending_count(), 1u);
  EXPECT_EQ(reloaded.running_count(), 1u);
  EXPECT_TRUE(reloaded.jobs().contains(running));
  EXPECT_TRUE(reloaded.jobs().contains(pending));
  EXPECT_EQ(reloaded.last_event_seq(), state_.last_event_seq());
  EXPECT_TRUE(reloaded.account_map().contains("lab"));
  // The running job still holds its 8 GPUs: nothing else fits on n1.
  EXPECT_EQ(__builtin_popcountll(reloaded.nodes().at("n1").used_gpus), 8);
  std::vector<uint64_t> ids;
  api::JobSpec spec;
  spec.image = "/i";
  spec.command = {"x"};
  ASSERT_TRUE(reloaded.Submit(Alice(), {spec}, &ids).ok());
  EXPECT_GT(ids[0], pending);
}

TEST_F(ClusterStateTest, StaleUpdatesAreFencedByAttempt) {
  Apply(state_.WorkerHello(Worker(), Hello("n1")));
  uint64_t id = SubmitOne(1);
  Pass();
  // Attempt 7 never existed: the worker is told to kill it, the job is untouched.
  Change c = Apply(state_.WorkerJobUpdate("n1", {id, 7, api::JobState::kRunning, {}, {}, "", {}}));
  ASSERT_EQ(c.dispatches.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<api::Kill>(c.dispatches[0].message));
  EXPECT_EQ(state_.jobs().at(id).job.state, api::JobState::kStarting);
  // Another node cannot finish it either.
  Apply(state_.WorkerHello(Worker(), Hello("n2")));
  Apply(state_.WorkerJobUpdate("n2", {id, 1, api::JobState::kFailed, 1, {}, "", {}}));
  EXPECT_EQ(state_.jobs().at(id).job.state, api::JobState::kStarting);
}

}  // namespace
}  // namespace gsched::server
