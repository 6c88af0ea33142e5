// The job state machine's attempts: what workers report, what ends an attempt (its parts ending,
// a lost node, an overrun), and what an ended attempt leaves (usage, a requeue or a final state).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <set>

#include "scheduler/common/quantity.h"
#include "scheduler/server/cluster_state.h"
#include "scheduler/server/snapshot_builder.h"

namespace gsched::server {
namespace json = boost::json;
using api::JobState;

bool ClusterState::AttemptPlacedOn(uint64_t job, uint32_t attempt, const std::string& node) const {
  const JobRecord* rec = jobs_.Find(job);
  return rec != nullptr && IsActive(rec->job.state) && rec->job.attempt == attempt &&
         std::any_of(rec->job.allocation.begin(), rec->job.allocation.end(),
                     [&](const api::Allocation& a) { return a.node == node; });
}

Result<Change> ClusterState::WorkerHello(const Principal& who, const api::Hello& hello) {
  RETURN_IF_ERROR(Authorizer::Check(who, Authorizer::Action::kConnectWorker));
  if (hello.node.empty())
    return Status::InvalidArgument("required", "node");
  // A token speaks only for the nodes it names: a stolen one cannot say hello as another node
  // (which would fail that node's jobs and take its launches). Refused before anything changes.
  RETURN_IF_ERROR(Authorizer::MayServeNode(who, hello.node));
  if (hello.gpus.size() > 64)
    return Status::InvalidArgument("at most 64 GPUs per node", "gpus");
  Change change;
  NodeRecord& rec = nodes_.Hello(change, hello);
  // Reconcile: attempts the worker runs that the scheduler does not want are killed; attempts the
  // scheduler placed here that the worker does not know are lost.
  std::set<std::pair<uint64_t, uint32_t>> reported;
  for (const auto& r : hello.running) {
    reported.insert({r.job, r.attempt});
    // An attempt that ended while the worker was cut off: its final `job_update` follows.
    if (api::IsTerminal(r.state))
      continue;
    JobRecord* found = jobs_.Find(r.job);
    bool wanted = AttemptPlacedOn(r.job, r.attempt, hello.node);
    if (!wanted) {
      change.dispatches.push_back({hello.node, api::Kill{r.job, r.attempt, 0, "stale attempt"}});
      continue;
    }
    // The worker's `running` update can be lost with a scheduler killed before writing it: the
    // hello says so again, or the job would stay `starting` for good.
    JobRecord& job = *found;
    if (r.state == JobState::kRunning && job.job.state == JobState::kStarting) {
      SetJobState(events_, change, job, JobState::kRunning, "");
      JobRecords::Persist(change, job);
    }
  }
  std::vector<uint64_t> lost;
  for (uint64_t id : rec.jobs) {
    const JobRecord& job = *jobs_.Find(id);
    const auto& ended = job.gang.parts_ended;
    if (!reported.contains({id, job.job.attempt}) &&
        std::find(ended.begin(), ended.end(), hello.node) == ended.end()) {
      lost.push_back(id);
    }
  }
  for (uint64_t id : lost) {
    JobRecord* job = jobs_.Find(id);
    if (job == nullptr || !IsActive(job->job.state))
      continue;
    EndPart(change, *job, hello.node,
            PartEnd{JobState::kNodeFail, std::nullopt, std::nullopt,
                    "the worker on " + hello.node + " no longer runs it"});
  }
  change.reschedule = true;
  return change;
}

Result<Change> ClusterState::WorkerJobUpdate(const std::string& node, const api::JobUpdate& u) {
  Change change;
  // A final update is acknowledged once what it changes is durable: dispatches leave after the
  // commit. Stale and repeated ones are acknowledged too, so that the worker stops sending them.
  if (api::IsTerminal(u.state))
    change.dispatches.push_back({node, api::Ack{u.job, u.attempt}});
  if (!AttemptPlacedOn(u.job, u.attempt, node)) {
    // A stale or unknown attempt: make sure it is not running, and otherwise ignore it.
    if (!api::IsTerminal(u.state)) {
      change.dispatches.push_back({node, api::Kill{u.job, u.attempt, 0, "stale attempt"}});
    }
    return change;
  }
  JobRecord& rec = *jobs_.Find(u.job);
  if (u.checkpoint_time)
    rec.last_checkpoint = u.checkpoint_time;
  // The image that runs, as the worker resolved it: recorded with the next write of the job.
  bool digest_changed = !u.image_digest.empty() && u.image_digest != rec.job.image_digest;
  if (digest_changed)
    rec.job.image_digest = u.image_digest;
  switch (u.state) {
    case JobState::kPending:
      return Status::InvalidArgument("a worker cannot report 'pending'", "state");
    case JobState::kStarting:
      if (rec.job.state == JobState::kStarting && u.message != rec.starting_message) {
        rec.starting_message = u.message;
        if (!u.message.empty()) {
          json::object data = JobEventData(rec.job);
          data["code"] = std::string(api::ToString(api::ReasonCode::kImagePull));
          data["message"] = u.message;
          change.ephemeral.push_back(events_.Ephemeral("job.reason", std::move(data)));
        }
      }
      if (digest_changed)
        JobRecords::Persist(change, rec);
      return change;
    case JobState::kRunning:
      rec.starting_message.clear();
      if (rec.job.state == JobState::kStarting) {
        SetJobState(events_, change, rec, JobState::kRunning, "");
        JobRecords::Persist(change, rec);
      } else if (u.checkpoint_time || digest_changed) {
        JobRecords::Persist(change, rec);
      }
      return change;
    default:
      break;
  }
  // A part of a gang names its node, so that the job's end says where it failed; node losses
  // name theirs already.
  std::string message = u.message;
  if (rec.job.allocation.size() > 1 && u.state != JobState::kCompleted)
    message = "node " + node + ": " + (message.empty() ? "ended" : message);
  EndPart(change, rec, node, PartEnd{u.state, u.exit_code, u.signal, std::move(message)});
  return change;
}

void ClusterState::EndPart(Change& change, JobRecord& rec, const std::string& node, PartEnd end) {
  std::vector<std::string>& ended = rec.gang.parts_ended;
  if (std::find(ended.begin(), ended.end(), node) != ended.end())
    return;  // Said before (a final update sent again, or a node lost after it ended).
  ended.push_back(node);
  if (end.state != JobState::kCompleted && !rec.gang.failure) {
    rec.gang.failure = end;
    // The first failure ends the gang: the other parts are stopped with their grace, unless the
    // scheduler is stopping them already (a cancel, a preemption, a time limit).
    if (!rec.terminating_deadline && ended.size() < rec.job.allocation.size()) {
      rec.terminating_deadline = clock_.Now() + Seconds(rec.job.spec.grace_period_s);
      rec.terminating_reason = "gang";
      for (const auto& a : rec.job.allocation) {
        if (std::find(ended.begin(), ended.end(), a.node) == ended.end()) {
          change.dispatches.push_back(
              {a.node, api::Kill{rec.job.id, rec.job.attempt, rec.job.spec.grace_period_s,
                                 "the gang ended: " + end.message}});
        }
      }
      events_.Add(change, "job.gang_ending",
                  json::object{{"job", rec.job.id},
                               {"attempt", rec.job.attempt},
                               {"node", node},
                               {"state", std::string(api::ToString(end.state))},
                               {"message", end.message}});
    }
  }
  if (ended.size() < rec.job.allocation.size()) {
    JobRecords::Persist(change, rec);  // The parts that ended survive a restart of the scheduler.
    return;
  }
  // The attempt ended. What the scheduler asked for decides the name of the end: a kill it sent
  // for preemption or a cancel is not a failure of the job. Else the first failed part names it.
  PartEnd final_end = end;
  if (rec.gang.failure && (rec.terminating_reason.empty() || rec.terminating_reason == "gang"))
    final_end = *rec.gang.failure;
  if (rec.terminating_reason == "cancelled")
    final_end.state = JobState::kCancelled;
  if (rec.terminating_reason == "preempted")
    final_end.state = JobState::kPreempted;
  if (rec.terminating_reason == "timeout")
    final_end.state = JobState::kTimeout;
  FinishAttempt(change, rec, final_end.state, final_end.exit_code, std::move(final_end.signal),
                std::move(final_end.message));
}

Change ClusterState::WorkerDisconnected(const std::string& node) {
  nodes_.Disconnected(node);
  return Change{};
}

Result<Change> ClusterState::DrainNode(const Principal& who, const std::string& node,
                                       const std::string& reason) {
  RETURN_IF_ERROR(Authorizer::Check(who, Authorizer::Action::kDrainNode));
  return nodes_.Drain(who, node, reason);
}

Result<Change> ClusterState::ResumeNode(const Principal& who, const std::string& node) {
  RETURN_IF_ERROR(Authorizer::Check(who, Authorizer::Action::kResumeNode));
  return nodes_.Resume(who, node);
}

Change ClusterState::PruneHistory(const state::Store& store, size_t max_rows) {
  Change change = jobs_.PruneHistory(store, max_rows, clock_.Now() - config_.history.retention);
  if (!change.batch.empty())
    spdlog::info("pruned {} finished jobs older than {}", change.batch.size(),
                 FormatDuration(config_.history.retention));
  return change;
}

Change ClusterState::CheckNodeTimeouts() {
  Change change;
  const std::set<std::string> lost_nodes = nodes_.CheckTimeouts(change);
  if (lost_nodes.empty())
    return change;
  // Each lost node's own jobs: when a whole rack goes, a walk over every running job per node
  // (312 nodes x 45,000 running jobs) held the state thread for seconds.
  std::vector<uint64_t> lost;
  std::set<uint64_t> seen;  // A job with parts on two lost nodes is visited once.
  for (const std::string& name : lost_nodes) {
    for (uint64_t id : nodes_.Find(name)->jobs) {
      if (seen.insert(id).second)
        lost.push_back(id);
    }
  }
  // Every lost part of a job ends as node_fail; parts on nodes still there are stopped with
  // their grace, and the attempt ends (and requeues, if the job asks) when they have.
  for (uint64_t id : lost) {
    const JobRecord* rec = jobs_.Find(id);
    if (rec == nullptr || !IsActive(rec->job.state))
      continue;
    std::vector<std::string> parts;
    for (const auto& a : rec->job.allocation) {
      if (lost_nodes.contains(a.node))
        parts.push_back(a.node);
    }
    for (const std::string& part : parts) {
      JobRecord* job = jobs_.Find(id);
      if (job == nullptr || !IsActive(job->job.state))
        break;
      EndPart(change, *job, part,
              PartEnd{JobState::kNodeFail, std::nullopt, std::nullopt, "node " + part + " lost"});
    }
  }
  return change;
}

Change ClusterState::EnforceDeadlines() {
  Change change;
  Timestamp now = clock_.Now();
  std::vector<uint64_t> overdue;
  for (uint64_t id : jobs_.running()) {
    JobRecord& rec = *jobs_.Find(id);
    if (rec.terminating_deadline) {
      // The worker had the grace period and then some: if its node is gone, end the attempt here.
      if (now >= *rec.terminating_deadline + config_.nodes.heartbeat_timeout)
        overdue.push_back(id);
      continue;
    }
    // Workers enforce time limits; this backs them up when a worker is silent.
    if (rec.job.start_time) {
      Timestamp limit_end = *rec.job.start_time + rec.time_limit;
      if (now >=
          limit_end + Seconds(rec.job.spec.grace_period_s) + config_.nodes.heartbeat_timeout) {
        rec.terminating_reason = "timeout";
        rec.terminating_deadline = now;
        for (const auto& a : rec.job.allocation) {
          change.dispatches.push_back({a.node, api::Kill{id, rec.job.attempt, 0, "time limit"}});
        }
      }
    }
  }
  for (uint64_t id : overdue) {
    JobRecord& rec = *jobs_.Find(id);
    bool node_alive =
        std::all_of(rec.job.allocation.begin(), rec.job.allocation.end(), [&](const auto& a) {
          const NodeRecord* n = nodes_.Find(a.node);
          return n != nullptr && n->connected;
        });
    if (node_alive)
      continue;
    if (rec.terminating_reason == "gang" && rec.gang.failure) {
      PartEnd end = *rec.gang.failure;
      FinishAttempt(change, rec, end.state, end.exit_code, std::move(end.signal),
                    end.message + " (another node unreachable)");
      continue;
    }
    JobState end = rec.terminating_reason == "preempted" ? JobState::kPreempted
                   : rec.terminating_reason == "timeout" ? JobState::kTimeout
                                                         : JobState::kCancelled;
    FinishAttempt(change, rec, end, std::nullopt, std::nullopt,
                  rec.terminating_reason + " (node unreachable)");
  }
  return change;
}

void ClusterState::ChargeUsage(Change& change, const JobRecord& record, Timestamp end,
                               bool preempted) {
  if (!record.job.start_time || record.job.allocation.empty())
    return;
  const NodeRecord* node = nodes_.Find(record.job.allocation.front().node);
  const std::string type = node == nullptr ? "" : node->node.gpu_type;
  const double cost = node == nullptr ? 1.0 : GpuCost(config_, type);
  usage_.ChargeAttempt(change, accounts_, record.job, type, cost, AllocatedGpus(record.job),
                       *record.job.start_time, end,
                       preempted ? policy_.preemption.usage_charge : 1.0);
}

void ClusterState::FinishAttempt(Change& change, JobRecord& rec, JobState end_state,
                                 std::optional<int32_t> exit_code,
                                 std::optional<std::string> signal, std::string message) {
  Timestamp now = clock_.Now();
  uint64_t id = rec.job.id;
  rec.starting_message.clear();
  nodes_.Release(rec.job, rec.job.spec.cpus_per_node, rec.job.spec.memory_mib_per_node);
  for (const auto& a : rec.job.allocation)
    nodes_.DrainedIfIdle(change, a.node);
  ChargeUsage(change, rec, now, end_state == JobState::kPreempted);
  // How much of its limit the attempt used, for the estimates; a preempted or lost attempt says
  // nothing about the user's run times.
  if (rec.job.start_time && end_state != JobState::kPreempted && end_state != JobState::kNodeFail)
    run_times_.Record(rec.job.user, now - *rec.job.start_time, rec.time_limit);
  if (end_state != JobState::kCompleted && !message.empty()) {
    spdlog::info("job {} attempt {} ended {}: {}", id, rec.job.attempt, api::ToString(end_state),
                 message);
  }
  api::AttemptRecord attempt;
  attempt.attempt = rec.job.attempt;
  attempt.allocation = rec.job.allocation;
  attempt.start_time = rec.job.start_time.value_or(now);
  attempt.end_time = now;
  attempt.state = end_state;
  attempt.exit_code = exit_code;
  attempt.message = message;
  rec.job.attempts.push_back(std::move(attempt));
  rec.job.exit_code = exit_code;
  rec.job.signal = std::move(signal);
  jobs_.Stop(id);
  rec.terminating_deadline.reset();
  rec.terminating_reason.clear();
  rec.job.rendezvous.reset();
  rec.gang = {};
  bool requeue = (end_state == JobState::kPreempted || end_state == JobState::kNodeFail) &&
                 rec.job.spec.requeue;
  if (requeue) {
    SetJobState(events_, change, rec, JobState::kPending,
                message.empty() ? "requeued" : message + "; requeued");
    rec.job.allocation.clear();
    rec.job.start_time.reset();
    rec.job.borrowing = false;
    rec.runs_as_preemptible = false;
    rec.time_limit = Duration(0);
    jobs_.Requeue(id);
    JobRecords::Persist(change, rec);
  } else {
    rec.job.end_time = now;
    SetJobState(events_, change, rec, end_state, message);
    JobRecords::Persist(change, rec);
    jobs_.Finish(id, end_state);
  }
  change.reschedule = true;
}

}  // namespace gsched::server
