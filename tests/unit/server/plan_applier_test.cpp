// The plan applier: the plan is the truth about how a job starts (its nodes, GPUs, CPUs, memory,
// time limit and GPU type), and a plan decided over a snapshot that has since gone stale never
// over-commits a node or starts a job that is no longer pending. Through `ClusterState`, as the
// service calls it: a manual clock, a memory store.
#include <gtest/gtest.h>

#include "scheduler/server/cluster_state.h"
#include "scheduler/state/memory_store.h"

namespace gsched::server {
namespace {

api::Hello Hello(const std::string& node, int gpus = 8, int32_t cpus = 64,
                 int64_t memory_mib = 512 * 1024, const std::string& type = "h100") {
  api::Hello h;
  h.node = node;
  h.cpus = cpus;
  h.memory_mib = memory_mib;
  for (int i = 0; i < gpus; ++i)
    h.gpus.push_back(api::Gpu{i, "GPU-" + std::to_string(i), type});
  return h;
}

class PlanApplierTest : public ::testing::Test {
 protected:
  PlanApplierTest() : state_(config_, clock_) {
    api::Account lab;
    lab.name = "lab";
    Apply(state_.PutAccount(Admin(), lab));
    Apply(state_.WorkerHello(Worker(), Hello("n1")));
  }
  static Principal Admin() { return {"root", api::Role::kAdmin, {}, "tok_admin", {}}; }
  static Principal Alice() { return {"alice", api::Role::kUser, {"lab"}, "tok_alice", {}}; }
  static Principal Worker() { return {"w", api::Role::kWorker, {}, "tok_w", {}, {"*"}}; }

  Change Apply(Result<Change> change) {
    EXPECT_TRUE(change.ok()) << change.status().ToString();
    if (!change.ok())
      return {};
    EXPECT_TRUE(store_.Commit(change->batch).ok());
    return std::move(change).value();
  }
  uint64_t Submit(int gpus, int32_t cpus = 0, int64_t memory_mib = 0,
                  std::optional<int64_t> time_limit_s = std::nullopt) {
    api::JobSpec spec;
    spec.image = "/i";
    spec.command = {"x"};
    spec.gpus_per_node = gpus;
    spec.cpus_per_node = cpus;
    spec.memory_mib_per_node = memory_mib;
    spec.time_limit_s = time_limit_s;
    std::vector<uint64_t> ids;
    Apply(state_.Submit(Alice(), {spec}, &ids));
    return ids.at(0);
  }
  // The core's decision over the state as it is now; applied later by the test.
  struct Decided {
    core::Snapshot snapshot;
    core::Plan plan;
  };
  Decided Decide() {
    Decided d{state_.BuildSnapshot(), {}};
    d.plan = core::Schedule(d.snapshot, state_.policy(), clock_.Now());
    return d;
  }
  Change ApplyPlan(const Decided& d) {
    Change c = state_.ApplyPlan(d.snapshot, d.plan);
    EXPECT_TRUE(store_.Commit(c.batch).ok());
    return c;
  }
  api::JobState StateOf(uint64_t id) { return state_.GetJob(Admin(), id, store_)->state; }
  const NodeRecord& Node(const std::string& name) { return state_.nodes().at(name); }
  static size_t Launches(const Change& c) {
    size_t n = 0;
    for (const Dispatch& d : c.dispatches)
      n += std::holds_alternative<api::Launch>(d.message) ? 1 : 0;
    return n;
  }

  config::SchedulerConfig config_;
  ManualClock clock_;
  state::MemoryStore store_;
  ClusterState state_;
};

TEST_F(PlanApplierTest, AStartHoldsTheGpusCpusAndMemoryItPlannedUntilTheAttemptEnds) {
  uint64_t id = Submit(4, 16, 65536);
  Change c = ApplyPlan(Decide());
  ASSERT_EQ(Launches(c), 1u);
  EXPECT_EQ(__builtin_popcountll(Node("n1").used_gpus), 4);
  EXPECT_EQ(Node("n1").used_cpus, 16);
  EXPECT_EQ(Node("n1").used_memory_mib, 65536);
  Apply(state_.WorkerJobUpdate("n1", {id, 1, api::JobState::kCompleted, 0, {}, "", {}}));
  EXPECT_EQ(Node("n1").used_gpus, 0u);
  EXPECT_EQ(Node("n1").used_cpus, 0);
  EXPECT_EQ(Node("n1").used_memory_mib, 0);
}

TEST_F(PlanApplierTest, ANodeThatLostGpusSinceTheSnapshotGetsNoStart) {
  uint64_t id = Submit(8);
  Decided d = Decide();
  ASSERT_EQ(d.plan.starts.size(), 1u);
  Apply(state_.WorkerHello(Worker(), Hello("n1", 4)));  // Reconnects with half its GPUs.
  EXPECT_EQ(Launches(ApplyPlan(d)), 0u);
  EXPECT_EQ(StateOf(id), api::JobState::kPending);
  EXPECT_EQ(Node("n1").used_gpus, 0u);
}

TEST_F(PlanApplierTest, AGpuThatTurnedUnhealthySinceTheSnapshotGetsNoStart) {
  uint64_t id = Submit(8);
  Decided d = Decide();
  ASSERT_EQ(d.plan.starts.size(), 1u);
  api::GpuHealthReport report;
  report.node = "n1";
  report.gpus.push_back({3, api::GpuHealth::kUnhealthy, "XID 79"});
  Apply(state_.WorkerGpuHealth(report));
  EXPECT_EQ(Launches(ApplyPlan(d)), 0u);
  EXPECT_EQ(StateOf(id), api::JobState::kPending);
}

TEST_F(PlanApplierTest, ANodeThatLostCpusOrMemorySinceTheSnapshotGetsNoStart) {
  uint64_t a = Submit(1, 48, 0);
  Decided d = Decide();
  ASSERT_EQ(d.plan.starts.size(), 1u);
  Apply(state_.WorkerHello(Worker(), Hello("n1", 8, 32)));  // Now 32 CPUs, fewer than 48.
  EXPECT_EQ(Launches(ApplyPlan(d)), 0u);
  EXPECT_EQ(StateOf(a), api::JobState::kPending);
  EXPECT_EQ(Node("n1").used_cpus, 0);

  Apply(state_.Cancel(Alice(), a));
  uint64_t b = Submit(1, 0, 300 * 1024);
  d = Decide();
  ASSERT_EQ(d.plan.starts.size(), 1u);
  Apply(state_.WorkerHello(Worker(), Hello("n1", 8, 32, 256 * 1024)));  // 256 GiB now.
  EXPECT_EQ(Launches(ApplyPlan(d)), 0u);
  EXPECT_EQ(StateOf(b), api::JobState::kPending);
  EXPECT_EQ(Node("n1").used_memory_mib, 0);
  // The next pass, over the state as it is, finds no room either: nothing was over-committed.
  d = Decide();
  EXPECT_TRUE(d.plan.starts.empty());
}

TEST_F(PlanApplierTest, AJobCancelledOrHeldSinceTheSnapshotDoesNotStart) {
  uint64_t cancelled = Submit(4);
  uint64_t held = Submit(4);
  Decided d = Decide();
  ASSERT_EQ(d.plan.starts.size(), 2u);
  Apply(state_.Cancel(Alice(), cancelled));
  Apply(state_.Hold(Alice(), held, true));
  EXPECT_EQ(Launches(ApplyPlan(d)), 0u);
  EXPECT_EQ(StateOf(cancelled), api::JobState::kCancelled);
  EXPECT_EQ(StateOf(held), api::JobState::kPending);
  EXPECT_EQ(Node("n1").used_gpus, 0u);
  EXPECT_EQ(state_.running_count(), 0u);
}

TEST_F(PlanApplierTest, TwoPlansOverTheSameStateDoNotShareAGpu) {
  // The second plan was decided before the first was applied (as when passes overlap).
  uint64_t first = Submit(8);
  Decided d1 = Decide();
  uint64_t second = Submit(8);
  Decided d2 = Decide();  // Sees `first` still pending: plans both, or `second` on its GPUs.
  EXPECT_EQ(Launches(ApplyPlan(d1)), 1u);
  EXPECT_EQ(Launches(ApplyPlan(d2)), 0u);
  EXPECT_EQ(StateOf(first), api::JobState::kStarting);
  EXPECT_EQ(StateOf(second), api::JobState::kPending);
}

TEST_F(PlanApplierTest, CpusAndMemoryAreCheckedAgainstWhatRunsNow) {
  // 40 of 64 CPUs and 300 of 512 GiB are taken by a running job; a stale plan that puts another
  // such job on the node's other GPUs would over-commit both.
  Submit(4, 40, 300 * 1024);
  ASSERT_EQ(Launches(ApplyPlan(Decide())), 1u);
  const uint64_t cpu_heavy = Submit(4, 40, 0), memory_heavy = Submit(4, 8, 300 * 1024),
                 fits = Submit(4, 24, 212 * 1024);
  // What a stale pass could have planned for each: the node's other four GPUs.
  auto plan_for = [&](uint64_t job, int32_t cpus, int64_t memory_mib) {
    Decided d{state_.BuildSnapshot(), {}};
    core::JobStart s;
    s.job = JobId(job);
    s.attempt = Attempt(1);
    s.gpu_type = d.snapshot.nodes[0].gpu_type;
    s.nodes.push_back({0, 0xF0, cpus, memory_mib});
    s.time_limit = Seconds(3600);
    s.end = clock_.Now() + s.time_limit;
    d.plan.starts.push_back(s);
    return d;
  };
  EXPECT_EQ(Launches(ApplyPlan(plan_for(cpu_heavy, 40, 0))), 0u);             // 80 of 64 CPUs.
  EXPECT_EQ(Launches(ApplyPlan(plan_for(memory_heavy, 8, 300 * 1024))), 0u);  // 600 of 512 GiB.
  EXPECT_EQ(StateOf(cpu_heavy), api::JobState::kPending);
  EXPECT_EQ(StateOf(memory_heavy), api::JobState::kPending);
  EXPECT_EQ(Node("n1").used_cpus, 40);
  // A plan whose CPUs are not what the job asks is no plan for it.
  EXPECT_EQ(Launches(ApplyPlan(plan_for(fits, 8, 212 * 1024))), 0u);
  EXPECT_EQ(Launches(ApplyPlan(plan_for(fits, 24, 212 * 1024))), 1u);  // Exactly what is left.
  EXPECT_EQ(Node("n1").used_cpus, 64);
  EXPECT_EQ(Node("n1").used_memory_mib, 512 * 1024);
}

TEST_F(PlanApplierTest, ANodeWhoseGpuTypeChangedGetsNoStart) {
  uint64_t id = Submit(2);
  Decided d = Decide();
  ASSERT_EQ(d.plan.starts.size(), 1u);
  Apply(state_.WorkerHello(Worker(), Hello("n1", 8, 64, 512 * 1024, "b200")));
  EXPECT_EQ(Launches(ApplyPlan(d)), 0u);
  EXPECT_EQ(StateOf(id), api::JobState::kPending);
}

TEST_F(PlanApplierTest, TheAttemptRunsUnderThePlansTimeLimit) {
  uint64_t id = Submit(1, 0, 0, 7200);
  Decided d = Decide();
  ASSERT_EQ(d.plan.starts.size(), 1u);
  EXPECT_EQ(d.plan.starts[0].time_limit, Seconds(7200));
  // What the plan says is what the worker is told and what the scheduler enforces.
  d.plan.starts[0].time_limit = Seconds(1800);
  Change c = ApplyPlan(d);
  ASSERT_EQ(Launches(c), 1u);
  EXPECT_EQ(std::get<api::Launch>(c.dispatches[0].message).spec.time_limit_s, 1800);
  Apply(state_.WorkerJobUpdate("n1", {id, 1, api::JobState::kRunning, {}, {}, "", {}}));
  api::Heartbeat hb;
  hb.node = "n1";
  // The worker stays connected but does not stop the job: the scheduler's backstop kills it
  // after the plan's limit, its grace and a heartbeat timeout - not after the spec's 2 h.
  clock_.Advance(Seconds(1800 + 60) + config_.nodes.heartbeat_timeout);
  Apply(state_.WorkerHeartbeat(hb));
  Change late = state_.EnforceDeadlines();
  ASSERT_EQ(late.dispatches.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<api::Kill>(late.dispatches[0].message));
}

}  // namespace
}  // namespace gsched::server
