#include "scheduler/server/plan_applier.h"

#include <spdlog/spdlog.h>

namespace gsched::server {
namespace json = boost::json;
using api::JobState;

Change PlanApplier::Apply(const core::Snapshot& snapshot, const core::Plan& plan, Timestamp now) {
  Change change;
  for (const core::JobStart& start : plan.starts) {
    // Each start is checked against the state as the starts before it left it: two stale starts
    // cannot take the same GPUs, CPUs or memory.
    if (std::string why = WhyStale(snapshot, start); !why.empty()) {
      spdlog::debug("job {}: the plan's start no longer holds ({}); the next pass places it",
                    start.job.value(), why);
      continue;
    }
    Start(change, snapshot, start, now);
  }
  for (const core::PlannedPreemption& p : plan.preemptions)
    Preempt(change, p, now);
  return change;
}

std::string PlanApplier::WhyStale(const core::Snapshot& snapshot,
                                  const core::JobStart& start) const {
  const JobRecord* rec = jobs_.Find(start.job.value());
  // The job may have been cancelled, held or started otherwise during the pass.
  if (rec == nullptr || rec->job.state != JobState::kPending)
    return "no longer pending";
  if (rec->job.held)
    return "held";
  if (rec->job.attempt + 1 != start.attempt.value())
    return "another attempt";
  const std::string gpu_type =
      start.gpu_type < snapshot.gpu_types.size() ? snapshot.gpu_types[start.gpu_type].name : "";
  for (const core::NodeAllocation& na : start.nodes) {
    if (na.node >= snapshot.nodes.size())
      return "a node outside the snapshot";
    // The core asks per node what the spec asks; what an attempt holds is released by the spec.
    if (na.cpus != rec->job.spec.cpus_per_node ||
        na.memory_mib != rec->job.spec.memory_mib_per_node)
      return "the plan's CPUs or memory are not the job's";
    std::string why =
        nodes_.WhyNotFits(snapshot.nodes[na.node].name, gpu_type, na.gpus, na.cpus, na.memory_mib);
    if (!why.empty())
      return why;
  }
  return {};
}

void PlanApplier::Start(Change& change, const core::Snapshot& snapshot, const core::JobStart& start,
                        Timestamp now) {
  JobRecord& rec = *jobs_.Find(start.job.value());
  const uint64_t id = rec.job.id;
  std::vector<std::string> node_names;
  rec.job.allocation.clear();
  for (const core::NodeAllocation& na : start.nodes) {
    const std::string& name = snapshot.nodes[na.node].name;
    node_names.push_back(name);
    api::Allocation a;
    a.node = name;
    for (int g = 0; g < 64; ++g) {
      if (na.gpus & (uint64_t{1} << g))
        a.gpus.push_back(g);
    }
    rec.job.allocation.push_back(std::move(a));
  }
  rec.job.attempt = start.attempt.value();
  rec.job.rendezvous = nodes_.ChooseRendezvous(node_names, id, rec.job.attempt);
  if (!rec.job.rendezvous) {
    spdlog::warn(
        "job {} attempt {}: every rendezvous port of node {} is held; it starts "
        "without MASTER_PORT",
        id, rec.job.attempt, node_names.front());
  }
  nodes_.Hold(rec.job, rec.job.spec.cpus_per_node, rec.job.spec.memory_mib_per_node);
  rec.job.start_time = now;
  rec.time_limit = start.time_limit;
  rec.job.borrowing = start.borrowing;
  rec.job.reason.reset();
  rec.runs_as_preemptible = start.runs_as_preemptible;
  jobs_.Start(id);
  SetJobState(events_, change, rec, JobState::kStarting,
              start.borrowing ? "borrowing idle GPUs" : "");
  JobRecords::Persist(change, rec);
  for (size_t rank = 0; rank < rec.job.allocation.size(); ++rank) {
    api::Launch launch;
    launch.job = id;
    launch.attempt = rec.job.attempt;
    launch.spec = rec.job.spec;
    launch.user = rec.job.user;
    // The limit the plan gave the attempt (the spec's under the class default and maximum).
    launch.spec.time_limit_s = start.time_limit.count() / 1000;
    launch.gpus = rec.job.allocation[rank].gpus;
    launch.array_index = rec.job.array_index;
    launch.array_job_id = rec.job.array_job_id;
    launch.node_rank = static_cast<int32_t>(rank);
    launch.nodes = node_names;
    launch.rendezvous = rec.job.rendezvous;
    change.dispatches.push_back({rec.job.allocation[rank].node, std::move(launch)});
  }
}

void PlanApplier::Preempt(Change& change, const core::PlannedPreemption& p, Timestamp now) {
  JobRecord* rec = jobs_.Find(p.victim.value());
  if (rec == nullptr || !IsActive(rec->job.state) || rec->job.attempt != p.attempt.value() ||
      rec->terminating_deadline) {
    return;
  }
  rec->terminating_deadline = now + p.grace;
  rec->terminating_reason = "preempted";
  recent_preemptions_.push_back({now, rec->job.spec.account});
  while (!recent_preemptions_.empty() && now - recent_preemptions_.front().first > Seconds(3600))
    recent_preemptions_.pop_front();
  for (const auto& a : rec->job.allocation) {
    change.dispatches.push_back(
        {a.node,
         api::Kill{rec->job.id, rec->job.attempt, static_cast<int32_t>(p.grace.count() / 1000),
                   "preempted for job " + std::to_string(p.for_job.value())}});
  }
  json::object data = JobEventData(rec->job);
  data["for_job"] = p.for_job.value();
  data["reason"] = p.reason;
  events_.Add(change, "job.preempting", std::move(data));
}

}  // namespace gsched::server
