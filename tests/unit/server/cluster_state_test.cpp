// `ClusterState` as a state machine: a manual clock, a memory store, no threads or sockets.
#include "scheduler/server/cluster_state.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

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
  static Principal Worker() { return {"w", api::Role::kWorker, {}, "tok_w", {}, {"*"}}; }

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

TEST_F(ClusterStateTest, BlocksOfTheSameNameInTwoSitesAreTwoBlocks) {
  for (const auto& [node, site] : {std::pair{"n1", "s1"}, {"n2", "s1"}, {"n3", "s2"}}) {
    api::Hello h = Hello(node);
    h.site = site;
    h.block = "b00";
    Apply(state_.WorkerHello(Worker(), h));
  }
  core::Snapshot snap = state_.BuildSnapshot();
  ASSERT_EQ(snap.sites.size(), 2u);
  ASSERT_EQ(snap.blocks.size(), 2u);
  std::map<std::string, uint32_t> block_of;
  for (const core::NodeInfo& n : snap.nodes)
    block_of[n.name] = n.block;
  EXPECT_EQ(block_of.at("n1"), block_of.at("n2"));
  EXPECT_NE(block_of.at("n1"), block_of.at("n3"));
  EXPECT_EQ(snap.sites[snap.blocks[block_of.at("n3")].site], "s2");
}

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

TEST_F(ClusterStateTest, APullingWorkerGivesTheStartingReasonAndTheDigestIsRecorded) {
  Apply(state_.WorkerHello(Worker(), Hello("n1")));
  uint64_t id = SubmitOne(1);
  Pass();
  const std::string digest = "sha256:" + std::string(64, 'f');
  api::JobUpdate progress{
      id, 1, api::JobState::kStarting, {}, {}, "pulling image: 412 of 1,930 MiB", {}, digest};
  Change c = Apply(state_.WorkerJobUpdate("n1", progress));
  // Progress is news for watchers, not a write: the digest is written once, with this update.
  ASSERT_EQ(c.ephemeral.size(), 1u);
  EXPECT_EQ(c.ephemeral[0].type, "job.reason");
  EXPECT_EQ(c.ephemeral[0].data.at("code").as_string(), "image_pull");
  auto job = state_.GetJob(Alice(), id, store_);
  ASSERT_TRUE(job.ok() && job->reason);
  EXPECT_EQ(job->state, api::JobState::kStarting);
  EXPECT_EQ(job->reason->code, api::ReasonCode::kImagePull);
  EXPECT_EQ(job->reason->message, "pulling image: 412 of 1,930 MiB");
  EXPECT_EQ(job->image_digest, digest);
  progress.message = "pulling image: 1,930 of 1,930 MiB";
  c = Apply(state_.WorkerJobUpdate("n1", progress));
  EXPECT_TRUE(c.batch.empty());
  EXPECT_EQ(c.ephemeral.size(), 1u);

  // Running: no reason any more; the digest stays, stored, and survives a restart.
  Apply(state_.WorkerJobUpdate("n1", {id, 1, api::JobState::kRunning, {}, {}, "", {}, digest}));
  job = state_.GetJob(Alice(), id, store_);
  EXPECT_FALSE(job->reason.has_value());
  Apply(state_.WorkerJobUpdate("n1", {id, 1, api::JobState::kCompleted, 0, {}, "", {}, digest}));
  ClusterState reloaded(config_, clock_);
  ASSERT_TRUE(reloaded.Load(store_).ok());
  job = reloaded.GetJob(Alice(), id, store_);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state, api::JobState::kCompleted);
  EXPECT_EQ(job->image_digest, digest);
}

TEST_F(ClusterStateTest, HoldAndReleaseOfAnArrayIdActOnEveryPendingTask) {
  // 8 GPUs; an array of three 4-GPU tasks with the first task's id: two start, one waits.
  Apply(state_.WorkerHello(Worker(), Hello("n1")));
  api::JobSpec spec;
  spec.image = "/i";
  spec.command = {"x"};
  spec.gpus_per_node = 4;
  spec.array = "0-2";
  std::vector<uint64_t> ids;
  Apply(state_.Submit(Alice(), {spec}, &ids));
  ASSERT_EQ(ids.size(), 3u);
  Pass();
  auto job = [&](uint64_t id) { return state_.GetJob(Alice(), id, store_).value(); };
  ASSERT_EQ(job(ids[0]).state, api::JobState::kStarting);
  ASSERT_EQ(job(ids[2]).state, api::JobState::kPending);

  // The array's id holds the pending task; the started ones are left alone.
  Change held = Apply(state_.Hold(Alice(), ids[0], true));
  EXPECT_TRUE(job(ids[2]).held);
  EXPECT_FALSE(job(ids[0]).held);
  EXPECT_FALSE(job(ids[1]).held);
  ASSERT_EQ(held.events.size(), 1u);
  EXPECT_EQ(held.events[0].type, "job.held");
  Apply(state_.Hold(Alice(), ids[0], false));
  EXPECT_FALSE(job(ids[2]).held);
  // A started task's own id is still refused, and so is an array with nothing pending.
  EXPECT_EQ(state_.Hold(Alice(), ids[1], true).status().code(), StatusCode::kFailedPrecondition);
  Apply(state_.Cancel(Alice(), ids[2]));
  EXPECT_EQ(state_.Hold(Alice(), ids[0], true).status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(ClusterStateTest, UsageIsReportedByTheHourAndSurvivesARestart) {
  const Timestamp t0 = FromUnixSeconds(1'800'000'000);  // 2027-01-15 08:00:00 UTC, on the hour.
  auto at = [&](int minutes) { return t0 + Seconds(60 * minutes); };
  clock_.Set(at(30));
  Apply(state_.WorkerHello(Worker(), Hello("n1")));
  uint64_t id = SubmitOne(4);
  Pass();
  clock_.Set(at(150));  // 10:30, two hours later.
  Apply(state_.WorkerJobUpdate("n1", {id, 1, api::JobState::kCompleted, 0, {}, "", {}}));
  // 4 h100 GPUs (cost 1.0) x 2 h = 8 GPU-hours: 2 in 08:30-09:00, 4 in 09-10, 2 in 10-10:30.
  auto total = [&](const ClusterState& s, const Principal& who, Timestamp since, Timestamp until) {
    double sum = 0;
    auto report = s.UsageReport(who, {"", since, until}, store_);
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    if (!report.ok())
      return sum;
    for (const UsageRow& r : *report)
      sum += r.gpu_hours;
    return sum;
  };
  auto report = state_.UsageReport(Admin(), {"", at(0), at(180)}, store_);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  const std::vector<UsageRow>& rows = *report;
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].account, "lab");
  EXPECT_EQ(rows[0].user, "alice");
  EXPECT_EQ(rows[0].gpu_type, "h100");
  EXPECT_DOUBLE_EQ(rows[0].gpu_hours, 8.0);
  EXPECT_DOUBLE_EQ(total(state_, Admin(), at(60), at(120)), 4.0);
  // Whole hours: 09:15-09:45 still counts the 09:00 hour.
  EXPECT_DOUBLE_EQ(total(state_, Admin(), at(75), at(105)), 4.0);
  // Users see their own usage only; an account filter takes the account's subtree.
  Principal bob{"bob", api::Role::kUser, {"lab"}, "tok_bob", {}};
  EXPECT_TRUE(state_.UsageReport(bob, {"", at(0), at(180)}, store_)->empty());
  EXPECT_DOUBLE_EQ(total(state_, Alice(), at(0), at(180)), 8.0);
  EXPECT_EQ(state_.UsageReport(Admin(), {"root", at(0), at(180)}, store_)->size(), 1u);

  // A running attempt counts exactly, up to now: 2 GPUs from 10:30 to 11:00 = 1 GPU-hour.
  SubmitOne(2);
  Pass();
  clock_.Set(at(180));
  EXPECT_DOUBLE_EQ(total(state_, Admin(), at(120), at(180)), 2.0 + 1.0);

  // The ledger is on disk: a restarted state reports the ended attempts alike.
  ClusterState reloaded(config_, clock_);
  ASSERT_TRUE(reloaded.Load(store_).ok());
  EXPECT_DOUBLE_EQ(total(reloaded, Admin(), at(0), at(120)), 6.0);
}

TEST_F(ClusterStateTest, BudgetsAreConsumedAsJobsRunOnTheAccountAndEveryAncestor) {
  const Timestamp t0 = FromUnixSeconds(1'800'000'000);
  auto at = [&](int minutes) { return t0 + Seconds(60 * minutes); };
  clock_.Set(at(0));
  // inst: 10 normalised GPU-hours for [t0 - 1 d, t0 + 1 d), held when spent; lab below it has
  // no budget of its own.
  api::Account inst;
  inst.name = "inst";
  inst.budget = api::Budget{10, t0 - Seconds(86400), t0 + Seconds(86400)};
  inst.on_budget_exhausted = api::BudgetExhaustedPolicy::kHold;
  Apply(state_.PutAccount(Admin(), inst));
  api::Account lab;
  lab.name = "lab";
  lab.parent = "inst";
  Apply(state_.PutAccount(Admin(), lab));
  // Two nodes of 8: GPUs are never what a job waits for here.
  Apply(state_.WorkerHello(Worker(), Hello("n1")));
  Apply(state_.WorkerHello(Worker(), Hello("n2")));
  auto consumed = [&](const ClusterState& s, const std::string& account) {
    const core::Snapshot snap = s.BuildSnapshot();
    for (const core::AccountInfo& a : snap.accounts) {
      if (a.name == account)
        return a.budget ? a.budget->consumed_gpu_hours : -1.0;
    }
    return -2.0;
  };
  auto submit = [&](int gpus, int64_t limit_s) {
    api::JobSpec spec;
    spec.image = "/i";
    spec.command = {"x"};
    spec.gpus_per_node = gpus;
    spec.time_limit_s = limit_s;
    std::vector<uint64_t> ids;
    Apply(state_.Submit(Alice(), {spec}, &ids));
    return ids.at(0);
  };
  // 4 h100 GPUs (cost 1.0) with a 1 h limit: may use 4 of the 10; starts.
  const uint64_t first = submit(4, 3600);
  const Change started = Pass();
  ASSERT_EQ(started.dispatches.size(), 1u);
  const std::string node = started.dispatches[0].node;
  // Half an hour in, the running attempt has used 4 x 0.5 = 2 GPU-hours of inst's budget.
  clock_.Set(at(30));
  EXPECT_DOUBLE_EQ(consumed(state_, "inst"), 2.0);
  // A job of 8 GPUs for 1 h may use 8; left: 10 - 2 used - 4 x 0.5 the first may still use = 6.
  // It waits with reason `budget`, naming inst.
  const uint64_t second = submit(8, 3600);
  {
    const core::Snapshot snap = state_.BuildSnapshot();
    const core::Plan plan = core::Schedule(snap, state_.policy(), clock_.Now());
    EXPECT_TRUE(plan.starts.empty());
    const core::PendingReason* r = plan.FindPending(JobId(second));
    ASSERT_NE(r, nullptr);
    const core::Explanation why = plan.ExplanationFor(*r);
    EXPECT_EQ(why.code, api::ReasonCode::kBudget) << why.message;
    EXPECT_EQ(why.Text("account"), "inst");
  }
  // The first ends after 1 h: 4 GPU-hours charged to inst (lab has no budget).
  clock_.Set(at(60));
  Apply(state_.WorkerJobUpdate(node, {first, 1, api::JobState::kCompleted, 0, {}, "", {}}));
  EXPECT_DOUBLE_EQ(consumed(state_, "inst"), 4.0);
  // Still 6 left against 8: the second keeps waiting; and the charge is on disk.
  Pass();
  EXPECT_EQ(state_.GetJob(Alice(), second, store_)->state, api::JobState::kPending);
  ClusterState reloaded(config_, clock_);
  ASSERT_TRUE(reloaded.Load(store_).ok());
  EXPECT_DOUBLE_EQ(consumed(reloaded, "inst"), 4.0);
}

TEST_F(ClusterStateTest, AnAttemptThatEndedWhileTheWorkerWasAwayIsNotLost) {
  Apply(state_.WorkerHello(Worker(), Hello("n1")));
  uint64_t id = SubmitOne(1);
  Pass();
  Apply(state_.WorkerJobUpdate("n1", {id, 1, api::JobState::kRunning, {}, {}, "", {}}));
  // The worker reconnects: the attempt ended meanwhile, and its final update follows the hello.
  api::Hello hello = Hello("n1");
  hello.running.push_back({id, 1, api::JobState::kCompleted});
  Change c = Apply(state_.WorkerHello(Worker(), hello));
  EXPECT_TRUE(c.dispatches.empty());  // Nothing to kill.
  EXPECT_EQ(state_.GetJob(Alice(), id, store_)->state, api::JobState::kRunning);
  Apply(state_.WorkerJobUpdate("n1", {id, 1, api::JobState::kCompleted, 0, {}, "", {}}));
  EXPECT_EQ(state_.GetJob(Alice(), id, store_)->state, api::JobState::kCompleted);
}

TEST_F(ClusterStateTest, AHelloAfterARestartSaysWhatIsRunningAndWhatIsLost) {
  Apply(state_.WorkerHello(Worker(), Hello("n1")));
  uint64_t started = SubmitOne(1), lost = SubmitOne(1);
  Pass();
  // The scheduler is killed before the worker's `running` updates are written: both are stored
  // as `starting`.
  ClusterState reloaded(config_, clock_);
  ASSERT_TRUE(reloaded.Load(store_).ok());
  ASSERT_EQ(reloaded.GetJob(Alice(), started, store_)->state, api::JobState::kStarting);
  // The worker reconnects running one of them: that one is running, the other is lost.
  api::Hello hello = Hello("n1");
  hello.running.push_back({started, 1, api::JobState::kRunning});
  Change c = Apply(reloaded.WorkerHello(Worker(), hello));
  EXPECT_TRUE(c.dispatches.empty());
  EXPECT_EQ(reloaded.GetJob(Alice(), started, store_)->state, api::JobState::kRunning);
  EXPECT_EQ(reloaded.GetJob(Alice(), lost, store_)->state, api::JobState::kNodeFail);
  EXPECT_EQ(reloaded.running_count(), 1u);
  // And it is stored so.
  ClusterState again(config_, clock_);
  ASSERT_TRUE(again.Load(store_).ok());
  EXPECT_EQ(again.GetJob(Alice(), started, store_)->state, api::JobState::kRunning);
}

TEST_F(ClusterStateTest, FinishedJobsArePrunedAfterTheRetention) {
  uint64_t a = SubmitOne(1), b = SubmitOne(1), active = SubmitOne(1);
  Apply(state_.Cancel(Alice(), a));
  Apply(state_.Cancel(Alice(), b));
  // retention 30 d: a day short of it nothing goes.
  clock_.Advance(Seconds(29 * 86400));
  EXPECT_TRUE(Apply(state_.PruneHistory(store_, 100)).batch.empty());
  clock_.Advance(Seconds(86400 + 1));
  // One row per call: the first call looks at `a` only, the next at `b`, the third at `active`.
  // A pruned job takes its record and its two index rows (by user, by account).
  EXPECT_EQ(Apply(state_.PruneHistory(store_, 1)).batch.size(), 3u);
  EXPECT_EQ(state_.GetJob(Admin(), a, store_).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(state_.GetJob(Admin(), b, store_).ok());
  EXPECT_EQ(Apply(state_.PruneHistory(store_, 1)).batch.size(), 3u);
  EXPECT_EQ(state_.GetJob(Admin(), b, store_).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Apply(state_.PruneHistory(store_, 1)).batch.empty());
  // The pending job stays, and a new sweep starts over without trouble.
  EXPECT_TRUE(Apply(state_.PruneHistory(store_, 100)).batch.empty());
  EXPECT_EQ(state_.GetJob(Admin(), active, store_)->state, api::JobState::kPending);
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

TEST_F(ClusterStateTest, NodesLostTogetherRequeueEachOfTheirJobsOnce) {
  for (const char* n : {"n1", "n2", "n3"})
    Apply(state_.WorkerHello(Worker(), Hello(n)));
  api::JobSpec spec;
  spec.image = "/i";
  spec.command = {"x"};
  spec.gpus_per_node = 8;
  spec.requeue = true;
  std::vector<uint64_t> ids;
  Apply(state_.Submit(Alice(), {spec, spec, spec}, &ids));
  Pass();
  ASSERT_EQ(state_.running_count(), 3u);  // One whole node each.
  // n3 keeps its heartbeats; n1 and n2 fall silent: 300 s later (lost_timeout 5 min) both are
  // lost in the same check.
  clock_.Advance(Seconds(299));
  Apply(state_.WorkerHeartbeat({"n3", {}}));
  clock_.Advance(Seconds(1));
  Change c = Apply(state_.CheckNodeTimeouts());
  EXPECT_EQ(NodeState("n1"), api::NodeState::kDown);
  EXPECT_EQ(NodeState("n2"), api::NodeState::kDown);
  EXPECT_EQ(NodeState("n3"), api::NodeState::kUp);
  EXPECT_EQ(state_.running_count(), 1u);
  EXPECT_EQ(state_.pending_count(), 2u);
  EXPECT_TRUE(c.dispatches.empty());  // Nothing to kill on the nodes that are gone.
  int node_fails = 0;
  for (uint64_t id : ids) {
    auto job = state_.GetJob(Alice(), id, store_);
    ASSERT_TRUE(job.ok());
    node_fails += !job->attempts.empty();
    for (const auto& a : job->attempts)
      EXPECT_EQ(a.state, api::JobState::kNodeFail);
    EXPECT_LE(job->attempts.size(), 1u);
  }
  EXPECT_EQ(node_fails, 2);
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

TEST_F(ClusterStateTest, ADrainSurvivesAnOutageAcrossASchedulerRestart) {
  Apply(state_.WorkerHello(Worker(), Hello("n1")));
  Apply(state_.DrainNode(Admin(), "n1", "bad fan"));
  clock_.Advance(Seconds(31));
  Apply(state_.CheckNodeTimeouts());
  ASSERT_EQ(NodeState("n1"), api::NodeState::kDown);
  ClusterState reloaded(config_, clock_);
  ASSERT_TRUE(reloaded.Load(store_).ok());
  Apply(reloaded.WorkerHello(Worker(), Hello("n1")));
  EXPECT_EQ(reloaded.nodes().at("n1").node.state, api::NodeState::kDrained);
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

TEST_F(ClusterStateTest, JobReasonEventsOnlyWhenTheReasonChanges) {
  auto reasons = [](const Change& c) {
    std::vector<std::string> out;
    for (const api::Event& e : c.ephemeral) {
      EXPECT_EQ(e.type, "job.reason");
      out.push_back(std::to_string(e.data.at("job").to_number<uint64_t>()) + " " +
                    std::string(e.data.at("code").as_string()));
    }
    return out;
  };
  Apply(state_.WorkerHello(Worker(), Hello("n1")));
  EXPECT_TRUE(Pass().ephemeral.empty());  // The first pass after start only records.
  SubmitOne(8);                           // Takes the whole node.
  uint64_t waiting = SubmitOne(4);
  Change first = Pass();
  ASSERT_EQ(first.ephemeral.size(), 1u);
  EXPECT_EQ(first.ephemeral[0].data.at("job").to_number<uint64_t>(), waiting);
  // The seq of the newest log event it follows: the pass's own `job.state` for the started job.
  EXPECT_EQ(first.ephemeral[0].seq, state_.last_event_seq());
  // The first pass saw job 1 take the GPUs in the same pass (`priority`); from the next on, job 1
  // runs and the job waits for GPUs to free up (`resources`): said once.
  EXPECT_EQ(std::string(first.ephemeral[0].data.at("code").as_string()), "priority");
  clock_.Advance(Seconds(5));
  EXPECT_EQ(reasons(Pass()), (std::vector<std::string>{std::to_string(waiting) + " resources"}));
  // Nothing changed: nothing to say, however many passes run.
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(Seconds(5));
    EXPECT_TRUE(Pass().ephemeral.empty());
  }
  // Held: a new code, and the one before it.
  Apply(state_.Hold(Alice(), waiting, true));
  Change held = Pass();
  EXPECT_EQ(reasons(held), (std::vector<std::string>{std::to_string(waiting) + " held"}));
  EXPECT_TRUE(held.ephemeral[0].data.contains("previous_code"));
  // 1,500 new pending jobs: 1,000 reasons in this pass, the other 500 in the next, then none.
  for (int i = 0; i < 15; ++i) {
    std::vector<api::JobSpec> specs(100);
    for (auto& spec : specs) {
      spec.image = "/i";
      spec.command = {"x"};
      spec.gpus_per_node = 4;
    }
    std::vector<uint64_t> ids;
    Apply(state_.Submit(Alice(), std::move(specs), &ids));
  }
  EXPECT_EQ(Pass().ephemeral.size(), ClusterState::kMaxReasonEventsPerPass);
  EXPECT_EQ(Pass().ephemeral.size(), 1500 - ClusterState::kMaxReasonEventsPerPass);
  EXPECT_TRUE(Pass().ephemeral.empty());
  // No `job.reason` is ever written to the log.
  for (const api::Event& e : state_.recent_events())
    EXPECT_NE(e.type, "job.reason");
}

// A worker token speaks only for the nodes its patterns cover; the refusal touches nothing.
TEST_F(ClusterStateTest, HelloOnlyForNodesTheTokenServes) {
  Principal rack{"w", api::Role::kWorker, {}, "tok_r", {}, {"rack7-*", "spare"}};
  EXPECT_TRUE(state_.WorkerHello(rack, Hello("rack7-n01")).ok());
  EXPECT_TRUE(state_.WorkerHello(rack, Hello("spare")).ok());
  for (const char* other : {"rack8-n01", "spare2", "rack7"}) {
    auto refused = state_.WorkerHello(rack, Hello(other));
    EXPECT_EQ(refused.status().code(), StatusCode::kPermissionDenied) << other;
    EXPECT_FALSE(state_.nodes().contains(other)) << other;
  }
  Principal none{"w", api::Role::kWorker, {}, "tok_n", {}};
  EXPECT_EQ(state_.WorkerHello(none, Hello("spare")).status().code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(state_.WorkerHello(Admin(), Hello("spare")).status().code(),
            StatusCode::kPermissionDenied);
}

TEST_F(ClusterStateTest, HealthReportsThatChangeNothingWriteNothing) {
  Apply(state_.WorkerHello(Worker(), Hello("n1")));
  api::GpuHealthReport report{"n1", {{2, api::GpuHealth::kUnhealthy, "xid", 79}}};
  Change first = Apply(state_.WorkerGpuHealth(report));
  EXPECT_FALSE(first.batch.empty());
  Change again = Apply(state_.WorkerGpuHealth(report));
  EXPECT_TRUE(again.batch.empty());
  EXPECT_TRUE(again.events.empty());
}

// Holds rank admin > coordinator > user: a hold is released only by its placer's rank or above.
TEST_F(ClusterStateTest, HoldsRecordWhoPlacedThem) {
  uint64_t id = SubmitOne(1);
  Principal coord{"cora", api::Role::kCoordinator, {"lab"}, "tok_c", {}};
  Apply(state_.Hold(Admin(), id, true));
  EXPECT_EQ(state_.jobs().at(id).job.held_by, "root");
  EXPECT_EQ(state_.Hold(Alice(), id, false).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(state_.Hold(coord, id, false).status().code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(state_.jobs().at(id).job.held);
  Apply(state_.Hold(Admin(), id, false));
  EXPECT_FALSE(state_.jobs().at(id).job.held_by_role.has_value());
  Apply(state_.Hold(Alice(), id, true));
  // A coordinator's hold takes over the user's.
  Apply(state_.Hold(coord, id, true));
  EXPECT_EQ(state_.jobs().at(id).job.held_by_role, api::Role::kCoordinator);
  EXPECT_EQ(state_.Hold(Alice(), id, false).status().code(), StatusCode::kPermissionDenied);
  Apply(state_.Hold(coord, id, false));
  EXPECT_FALSE(state_.jobs().at(id).job.held);
}

TEST_F(ClusterStateTest, AccountsAreVisibleByRole) {
  api::Account a;
  a.name = "proj";
  a.parent = "lab";
  a.users = std::vector<std::string>{"alice"};
  Apply(state_.PutAccount(Admin(), a));
  api::Account other;
  other.name = "other";
  other.users = std::vector<std::string>{"zed"};
  Apply(state_.PutAccount(Admin(), other));
  auto names = [&](const Principal& who) {
    std::map<std::string, bool> out;  // name -> shown whole (with members).
    for (const auto& acc : state_.VisibleAccounts(who))
      out[acc.name] = acc.users.has_value();
    return out;
  };
  Principal in_proj{"alice", api::Role::kUser, {"proj"}, "t", {}};
  EXPECT_EQ(names(in_proj),
            (std::map<std::string, bool>{{"lab", false}, {"proj", true}, {"root", false}}));
  Principal coord{"cora", api::Role::kCoordinator, {"lab"}, "t", {}};
  EXPECT_EQ(names(coord).size(), 3u);  // root, lab, proj.
  EXPECT_TRUE(state_.VisibleAccounts(Worker()).empty());
  EXPECT_EQ(state_.VisibleAccounts(Admin()).size(), 4u);
}

TEST_F(ClusterStateTest, AccountsThatWouldNotLoadAreNotStored) {
  api::Account bad;
  bad.name = "a b";
  auto r = state_.PutAccount(Admin(), bad);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().field(), "name");
  EXPECT_FALSE(state_.account_map().contains("a b"));
}

// Undecodable records are listed for quarantine; what they leave dangling is mended in memory.
TEST_F(ClusterStateTest, LoadSetsAsideWhatDoesNotDecode) {
  api::Account proj;
  proj.name = "proj";
  proj.parent = "lab";
  Apply(state_.PutAccount(Admin(), proj));
  api::JobSpec spec;
  spec.image = "/i";
  spec.command = {"x"};
  spec.account = "proj";
  std::vector<uint64_t> ids;
  Principal in_proj{"alice", api::Role::kUser, {"proj"}, "t", {}};
  Apply(state_.Submit(in_proj, {spec, spec}, &ids));
  state::WriteBatch b;
  b.Put(state::Family::kAccounts, "lab", "{");
  b.Put(state::Family::kAccounts, "proj", R"({"name":"proj","parent":"lab"})");
  b.Put(state::Family::kJobs, state::U64Key(ids[1]), "\x01");
  ASSERT_TRUE(store_.Commit(std::move(b)).ok());
  ClusterState reloaded(config_, clock_);
  ASSERT_TRUE(reloaded.Load(store_).ok());
  ASSERT_EQ(reloaded.quarantined().size(), 2u);
  EXPECT_EQ(reloaded.account_map().at("proj").parent, "root");
  EXPECT_TRUE(reloaded.jobs().contains(ids[0]));
  EXPECT_FALSE(reloaded.jobs().contains(ids[1]));
  ASSERT_TRUE(store_.Commit(reloaded.QuarantineBatch()).ok());
  EXPECT_FALSE(store_.Get(state::Family::kAccounts, "lab").ok());
  EXPECT_EQ(*store_.Get(state::Family::kMeta,
                        ClusterState::QuarantineKey(state::Family::kAccounts, "lab")),
            "{");
  ClusterState again(config_, clock_);
  ASSERT_TRUE(again.Load(store_).ok());
  EXPECT_TRUE(again.quarantined().empty());
}

// spec bytes x tasks over `limits.max_submit_expanded_bytes`: refused before anything is made.
TEST_F(ClusterStateTest, ExpandedSubmissionsAreBounded) {
  config_.limits.max_submit_expanded_bytes = 100 * 1024;
  api::JobSpec spec;
  spec.image = "/i";
  spec.command = {std::string(2000, 'x')};
  spec.array = "0-99";  // ~2.1 KB x 100 = ~210 KB.
  std::vector<uint64_t> ids;
  auto r = state_.Submit(Alice(), {spec}, &ids);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().field(), "array");
  EXPECT_TRUE(ids.empty());
  EXPECT_EQ(state_.pending_count(), 0u);
  spec.array = "0-9";  // ~21 KB.
  EXPECT_TRUE(state_.Submit(Alice(), {spec}, &ids).ok());
}

TEST_F(ClusterStateTest, DefaultPendingLimitPerUser) {
  config_.limits.max_pending_jobs_per_user = 2;
  SubmitOne(1);
  SubmitOne(1);
  api::JobSpec spec;
  spec.image = "/i";
  spec.command = {"x"};
  std::vector<uint64_t> ids;
  EXPECT_EQ(state_.Submit(Alice(), {spec}, &ids).status().code(), StatusCode::kResourceExhausted);
}

// ---------------------------------------------------------------------------------------------
// Bounded work: listing someone's jobs reads theirs, not every stored job.

// A memory store that counts the job records read.
class CountingStore final : public state::Store {
 public:
  void CommitAsync(state::WriteBatch batch, CommitCallback done) override {
    inner_.CommitAsync(std::move(batch), std::move(done));
  }
  Result<std::string> Get(state::Family f, std::string_view key) const override {
    if (f == state::Family::kJobs)
      ++job_reads;
    return inner_.Get(f, key);
  }
  Status Scan(state::Family f, std::string_view begin, std::string_view end,
              const std::function<bool(std::string_view, std::string_view)>& fn) const override {
    return inner_.Scan(f, begin, end, [&](std::string_view k, std::string_view v) {
      if (f == state::Family::kJobs)
        ++job_reads;
      return fn(k, v);
    });
  }
  Result<std::optional<std::string>> LastKey(state::Family f) const override {
    return inner_.LastKey(f);
  }
  state::CommitStats Stats() const override { return inner_.Stats(); }

  mutable size_t job_reads = 0;

 private:
  state::MemoryStore inner_;
};

TEST_F(ClusterStateTest, ListingOnesJobsReadsOnlyThoseJobs) {
  CountingStore store;
  ClusterState state(config_, clock_);
  auto apply = [&](Result<Change> c) {
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    ASSERT_TRUE(store.Commit(c->batch).ok());
  };
  api::Account lab;
  lab.name = "lab";
  apply(state.PutAccount(Admin(), lab));
  api::JobSpec spec;
  spec.image = "/i";
  spec.command = {"x"};
  Principal bob{"bob", api::Role::kUser, {"lab"}, "tok_bob", {}};
  // Bob has 500 finished jobs; alice 3, one of them still pending.
  std::vector<uint64_t> ids;
  for (int i = 0; i < 500; ++i)
    apply(state.Submit(bob, {spec}, &ids));
  std::vector<uint64_t> alice_ids;
  apply(state.Submit(Alice(), {spec, spec, spec}, &alice_ids));
  for (uint64_t id : ids)
    apply(state.Cancel(bob, id));
  apply(state.Cancel(Alice(), alice_ids[0]));
  apply(state.Cancel(Alice(), alice_ids[1]));
  store.job_reads = 0;
  std::vector<api::Job> mine = state.ListJobs(Alice(), {}, store);
  ASSERT_EQ(mine.size(), 3u);
  EXPECT_EQ(mine[0].id, alice_ids[0]);
  EXPECT_EQ(mine[2].state, api::JobState::kPending);
  EXPECT_LE(store.job_reads, 2u);  // Her two finished ones; the pending one is in memory.
  // An admin asking for alice's, or for an account's, alike; paging goes on after `after`.
  store.job_reads = 0;
  JobFilter filter;
  filter.user = "alice";
  filter.after = alice_ids[0];
  EXPECT_EQ(state.ListJobs(Admin(), filter, store).size(), 2u);
  EXPECT_LE(store.job_reads, 1u);
  // Live jobs only: from memory, nothing read.
  store.job_reads = 0;
  filter = JobFilter{};
  filter.states = {api::JobState::kPending};
  ASSERT_EQ(state.ListJobs(Alice(), filter, store).size(), 1u);
  EXPECT_EQ(store.job_reads, 0u);
  // A user cannot list someone else's by naming them.
  filter = JobFilter{};
  filter.user = "bob";
  EXPECT_TRUE(state.ListJobs(Alice(), filter, store).empty());
  filter = JobFilter{};
  filter.account = "lab";
  filter.limit = 10'000;
  EXPECT_EQ(state.ListJobs(Admin(), filter, store).size(), 503u);
  // Pruned history leaves the index too.
  clock_.Advance(config_.history.retention + Seconds(1));
  Change pruned = state.PruneHistory(store, 100'000);
  ASSERT_TRUE(store.Commit(pruned.batch).ok());
  size_t index_rows = 0;
  ASSERT_TRUE(store
                  .Scan(state::Family::kJobIndex, {}, {},
                        [&](std::string_view, std::string_view) { return ++index_rows, true; })
                  .ok());
  EXPECT_EQ(index_rows, 2u);  // Alice's pending job, by user and by account.
}

TEST_F(ClusterStateTest, JobsStoredBeforeTheIndexAreIndexedOnce) {
  uint64_t a = SubmitOne(1), b = SubmitOne(1);
  Apply(state_.Cancel(Alice(), a));
  // As a store written before the index existed: no index rows, no mark.
  state::WriteBatch drop;
  for (uint64_t id : {a, b}) {
    drop.Delete(state::Family::kJobIndex, "u/alice/" + state::U64Key(id));
    drop.Delete(state::Family::kJobIndex, "a/lab/" + state::U64Key(id));
  }
  ASSERT_TRUE(store_.Commit(std::move(drop)).ok());
  ClusterState reloaded(config_, clock_);
  ASSERT_TRUE(reloaded.Load(store_).ok());
  // Listings read through the index, which the service builds before it serves.
  EXPECT_TRUE(reloaded.ListJobs(Alice(), {}, store_).empty());
  ASSERT_TRUE(reloaded.BuildJobIndex(store_).ok());
  EXPECT_EQ(reloaded.ListJobs(Alice(), {}, store_).size(), 2u);
  EXPECT_TRUE(store_.Get(state::Family::kMeta, "job_index_built").ok());
  // Once: a second call reads no job.
  CountingStore counting;
  ASSERT_TRUE(counting
                  .Commit([] {
                    state::WriteBatch b;
                    b.Put(state::Family::kMeta, "job_index_built", "1");
                    return b;
                  }())
                  .ok());
  ASSERT_TRUE(reloaded.BuildJobIndex(counting).ok());
  EXPECT_EQ(counting.job_reads, 0u);
}

TEST_F(ClusterStateTest, CancellingAnArrayWalksOnlyItsTasks) {
  api::JobSpec spec;
  spec.image = "/i";
  spec.command = {"x"};
  spec.array = "0-9";
  std::vector<uint64_t> ids;
  Apply(state_.Submit(Alice(), {spec}, &ids));
  uint64_t other = SubmitOne(1);
  ASSERT_EQ(ids.size(), 10u);
  Apply(state_.Cancel(Alice(), ids[3]));  // One task alone first.
  Apply(state_.Hold(Alice(), ids[0], true));
  for (uint64_t id : ids) {
    auto job = state_.GetJob(Alice(), id, store_);
    EXPECT_EQ(job->held, id != ids[3]) << id;
  }
  Apply(state_.Cancel(Alice(), ids[0]));
  for (uint64_t id : ids)
    EXPECT_EQ(state_.GetJob(Alice(), id, store_)->state, api::JobState::kCancelled);
  EXPECT_EQ(state_.GetJob(Alice(), other, store_)->state, api::JobState::kPending);
  // The array is gone: its id now names only its first task, which has ended.
  EXPECT_FALSE(state_.Cancel(Alice(), ids[0]).ok());
}

// ---------------------------------------------------------------------------------------------
// Gangs: one attempt over several nodes.

class GangTest : public ClusterStateTest {
 protected:
  GangTest() {
    for (const char* n : {"n1", "n2"}) {
      api::Hello h = Hello(n);
      h.address = std::string("10.0.0.") + (n[1] == '1' ? "1" : "2");
      h.rendezvous_ports = api::PortRange{40000, 40009};
      Apply(state_.WorkerHello(Worker(), h));
    }
  }
  // A two-node job of 8 GPUs per node, started.
  uint64_t StartGang(bool requeue = false) {
    api::JobSpec spec;
    spec.image = "/i";
    spec.command = {"x"};
    spec.nodes = 2;
    spec.gpus_per_node = 8;
    spec.grace_period_s = 45;
    spec.requeue = requeue;
    std::vector<uint64_t> ids;
    Apply(state_.Submit(Alice(), {spec}, &ids));
    launches_.clear();
    for (auto& d : Pass().dispatches) {
      if (auto* l = std::get_if<api::Launch>(&d.message))
        launches_[d.node] = *l;
    }
    EXPECT_EQ(launches_.size(), 2u);
    return ids.at(0);
  }
  Change Update(const std::string& node, uint64_t id, api::JobState state,
                std::optional<int32_t> exit_code = 0, std::string message = "") {
    return Apply(state_.WorkerJobUpdate(
        node,
        {id, state_.GetJob(Alice(), id, store_)->attempt, state, exit_code, {}, message, {}}));
  }
  static std::vector<api::Kill> Kills(const Change& c, const std::string& node) {
    std::vector<api::Kill> out;
    for (const auto& d : c.dispatches) {
      if (auto* k = std::get_if<api::Kill>(&d.message); k && d.node == node)
        out.push_back(*k);
    }
    return out;
  }
  api::JobState State(uint64_t id) { return state_.GetJob(Alice(), id, store_)->state; }

  std::map<std::string, api::Launch> launches_;
};

TEST_F(GangTest, EveryNodeIsToldTheSameRendezvousAndItsRank) {
  uint64_t id = StartGang();
  const api::Launch& rank0 = launches_.at("n1");
  const api::Launch& rank1 = launches_.at("n2");
  EXPECT_EQ(rank0.node_rank, 0);
  EXPECT_EQ(rank1.node_rank, 1);
  EXPECT_EQ(rank0.nodes, (std::vector<std::string>{"n1", "n2"}));
  EXPECT_EQ(rank1.nodes, rank0.nodes);
  ASSERT_TRUE(rank0.rendezvous);
  EXPECT_EQ(rank0.rendezvous->address, "10.0.0.1");  // Rank 0's address, from its hello.
  EXPECT_GE(rank0.rendezvous->port, 40000);
  EXPECT_LE(rank0.rendezvous->port, 40009);
  EXPECT_EQ(rank1.rendezvous, rank0.rendezvous);
  // The job shows it, and the node its address.
  EXPECT_EQ(state_.GetJob(Alice(), id, store_)->rendezvous, rank0.rendezvous);
  EXPECT_EQ(state_.nodes().at("n2").node.address, "10.0.0.2");
}

TEST_F(GangTest, NoTwoRunningAttemptsShareAPortOfANodeNotEvenAfterARestart) {
  // Ten ports on each node, 16 one-GPU jobs: ten get a port each, distinct; the others start
  // without one rather than share.
  std::set<int32_t> ports;
  std::vector<uint64_t> ids;
  for (int i = 0; i < 16; ++i)
    ids.push_back(SubmitOne(1));
  int without = 0;
  for (auto& d : Pass().dispatches) {
    auto* l = std::get_if<api::Launch>(&d.message);
    ASSERT_NE(l, nullptr);
    if (!l->rendezvous) {
      ++without;
      continue;
    }
    EXPECT_TRUE(ports.insert(l->rendezvous->port * 10 + (d.node == "n1" ? 1 : 2)).second)
        << d.node << " port " << l->rendezvous->port;
  }
  EXPECT_EQ(without, 0);  // Eight jobs a node: ten ports are enough.
  // A restart keeps the ports held: one job ends on n1, and the next one there takes the freed
  // port, never one still held.
  ClusterState reloaded(config_, clock_);
  ASSERT_TRUE(reloaded.Load(store_).ok());
  std::set<int32_t> held_on_n1;
  uint64_t ended = 0;
  for (uint64_t id : ids) {
    auto job = reloaded.GetJob(Alice(), id, store_);
    ASSERT_TRUE(job.ok());
    if (job->allocation.front().node != "n1")
      continue;
    ASSERT_TRUE(job->rendezvous);
    held_on_n1.insert(job->rendezvous->port);
    ended = id;
  }
  ASSERT_EQ(held_on_n1.size(), 8u);
  api::Hello h = Hello("n1");
  h.address = "10.0.0.1";
  h.rendezvous_ports = api::PortRange{40000, 40009};
  for (uint64_t id : ids) {
    if (reloaded.GetJob(Alice(), id, store_)->allocation.front().node == "n1")
      h.running.push_back({id, 1, api::JobState::kRunning});
  }
  Apply(reloaded.WorkerHello(Worker(), h));
  int32_t freed = reloaded.GetJob(Alice(), ended, store_)->rendezvous->port;
  Apply(reloaded.WorkerJobUpdate("n1", {ended, 1, api::JobState::kCompleted, 0, {}, "", {}}));
  held_on_n1.erase(freed);
  api::JobSpec spec;
  spec.image = "/i";
  spec.command = {"x"};
  std::vector<uint64_t> more;
  Apply(reloaded.Submit(Alice(), {spec, spec}, &more));
  core::Snapshot snap = reloaded.BuildSnapshot();
  Change c = reloaded.ApplyPlan(snap, core::Schedule(snap, reloaded.policy(), clock_.Now()));
  int launched_on_n1 = 0;
  for (auto& d : c.dispatches) {
    auto* l = std::get_if<api::Launch>(&d.message);
    if (!l || d.node != "n1")
      continue;
    ++launched_on_n1;
    ASSERT_TRUE(l->rendezvous);
    EXPECT_FALSE(held_on_n1.contains(l->rendezvous->port)) << l->rendezvous->port;
  }
  EXPECT_EQ(launched_on_n1, 1);  // The one free GPU of n1.
}

TEST_F(GangTest, ARankThatCompletesWaitsForTheOthers) {
  uint64_t id = StartGang();
  Change c = Update("n1", id, api::JobState::kCompleted);
  EXPECT_TRUE(Kills(c, "n2").empty());
  EXPECT_EQ(State(id), api::JobState::kStarting);
  EXPECT_EQ(state_.running_count(), 1u);  // The GPUs of n1 stay the job's until it ends.
  // The scheduler restarts meanwhile: n1's hello no longer lists the attempt, and that is not a
  // loss, since its part ended.
  ClusterState reloaded(config_, clock_);
  ASSERT_TRUE(reloaded.Load(store_).ok());
  api::Hello h = Hello("n1");
  c = Apply(reloaded.WorkerHello(Worker(), h));
  EXPECT_EQ(reloaded.GetJob(Alice(), id, store_)->state, api::JobState::kStarting);
  EXPECT_TRUE(Kills(c, "n2").empty());
  Apply(reloaded.WorkerJobUpdate("n2", {id, 1, api::JobState::kCompleted, 0, {}, "", {}}));
  auto job = reloaded.GetJob(Alice(), id, store_);
  EXPECT_EQ(job->state, api::JobState::kCompleted);
  EXPECT_EQ(job->exit_code, 0);
  EXPECT_FALSE(job->rendezvous);
}

TEST_F(GangTest, AFailedRankStopsTheOthersWithTheirGraceAndNamesTheEnd) {
  uint64_t id = StartGang();
  Update("n1", id, api::JobState::kRunning);
  Change c = Update("n2", id, api::JobState::kFailed, 3, "exit code 3");
  std::vector<api::Kill> kills = Kills(c, "n1");
  ASSERT_EQ(kills.size(), 1u);
  EXPECT_EQ(kills[0].grace_s, 45);
  EXPECT_NE(kills[0].reason.find("node n2: exit code 3"), std::string::npos) << kills[0].reason;
  // Until n1's part has stopped, the attempt holds its GPUs.
  EXPECT_EQ(State(id), api::JobState::kRunning);
  EXPECT_EQ(state_.running_count(), 1u);
  // n1 ends on the signal: the job ends as the failed rank did.
  Update("n1", id, api::JobState::kFailed, std::nullopt, "killed by SIGTERM");
  auto job = state_.GetJob(Alice(), id, store_);
  EXPECT_EQ(job->state, api::JobState::kFailed);
  EXPECT_EQ(job->exit_code, 3);
  EXPECT_EQ(job->attempts.back().message, "node n2: exit code 3");
  EXPECT_EQ(state_.running_count(), 0u);
}

TEST_F(GangTest, ALostNodeRequeuesTheGangAsAWhole) {
  uint64_t id = StartGang(/*requeue=*/true);
  Update("n1", id, api::JobState::kRunning);
  Update("n2", id, api::JobState::kRunning);
  // n2's worker comes back without the attempt (the node rebooted).
  Change c = Apply(state_.WorkerHello(Worker(), Hello("n2")));
  ASSERT_EQ(Kills(c, "n1").size(), 1u);
  EXPECT_EQ(Kills(c, "n1")[0].grace_s, 45);
  EXPECT_EQ(State(id), api::JobState::kRunning);
  Update("n1", id, api::JobState::kFailed, std::nullopt, "killed by SIGTERM");
  auto job = state_.GetJob(Alice(), id, store_);
  EXPECT_EQ(job->state, api::JobState::kPending);
  ASSERT_EQ(job->attempts.size(), 1u);
  EXPECT_EQ(job->attempts[0].state, api::JobState::kNodeFail);
  // The next attempt is a whole gang again, on both nodes.
  launches_.clear();
  for (auto& d : Pass().dispatches) {
    if (auto* l = std::get_if<api::Launch>(&d.message))
      launches_[d.node] = *l;
  }
  ASSERT_EQ(launches_.size(), 2u);
  EXPECT_EQ(launches_.at("n1").attempt, 2u);
  EXPECT_EQ(launches_.at("n2").attempt, 2u);
}

TEST_F(GangTest, ANodeLostForGoodEndsItsPartAndTheOthersAreStopped) {
  uint64_t id = StartGang();
  // n1 keeps its heartbeats; n2 falls silent past lost_timeout.
  clock_.Advance(Seconds(299));
  Apply(state_.WorkerHeartbeat({"n1", {}}));
  clock_.Advance(Seconds(1));
  Change c = Apply(state_.CheckNodeTimeouts());
  ASSERT_EQ(Kills(c, "n1").size(), 1u);
  EXPECT_EQ(State(id), api::JobState::kStarting);
  Update("n1", id, api::JobState::kFailed, std::nullopt, "killed by SIGTERM");
  auto job = state_.GetJob(Alice(), id, store_);
  EXPECT_EQ(job->state, api::JobState::kNodeFail);
  EXPECT_EQ(job->attempts.back().message, "node n2 lost");
}

TEST_F(GangTest, ACancelNamesTheEndWhateverThePartsReport) {
  uint64_t id = StartGang();
  Apply(state_.Cancel(Alice(), id));
  Update("n1", id, api::JobState::kFailed, std::nullopt, "killed by SIGTERM");
  EXPECT_EQ(State(id), api::JobState::kStarting);
  Update("n2", id, api::JobState::kFailed, std::nullopt, "killed by SIGTERM");
  EXPECT_EQ(State(id), api::JobState::kCancelled);
}

}  // namespace
}  // namespace gsched::server
