#include "tests/sim/harness.h"

#include <algorithm>
#include <stdexcept>

#include "scheduler/core/fairshare.h"

namespace gsched::sim {

Simulation::Simulation(core::Snapshot cluster, SimConfig config, Timestamp start)
    : cluster_(std::move(cluster)), config_(std::move(config)), clock_(start) {
  cluster_.pending.clear();
  cluster_.running.clear();
  gpu_seconds_.assign(cluster_.accounts.size(), 0.0);
  for (core::AccountInfo& a : cluster_.accounts) {
    if (a.usage.at > start)
      a.usage.at = start;
  }
  last_cycle_ = start - config_.interval;
}

uint32_t Simulation::AccountIndex(const std::string& name) const {
  for (uint32_t a = 0; a < cluster_.accounts.size(); ++a) {
    if (cluster_.accounts[a].name == name)
      return a;
  }
  throw std::out_of_range("no account " + name);
}

void Simulation::Submit(core::PendingJobInfo spec, Duration run_time) {
  SimJob job;
  const uint64_t id = spec.id.value();
  if (spec.submit_time < clock_.Now())
    spec.submit_time = clock_.Now();
  job.spec = std::move(spec);
  job.run_time = run_time;
  arrivals_.emplace(ToUnixMillis(job.spec.submit_time), id);
  jobs_[id] = std::move(job);
}

core::Snapshot Simulation::BuildSnapshot() const {
  core::Snapshot s = cluster_;
  const Timestamp now = clock_.Now();
  for (const auto& [id, job] : jobs_) {
    if (job.state == SimJob::State::kPending) {
      s.pending.push_back(job.spec);
      core::PendingJobInfo& p = s.pending.back();
      p.attempt = Attempt(job.attempts);
      // Dependencies see the current state of the jobs they name.
      for (core::Dependency& d : p.dependencies) {
        auto it = jobs_.find(d.job.value());
        if (it == jobs_.end())
          continue;
        const SimJob& dep = it->second;
        d.state =
            dep.state == SimJob::State::kDone
                ? dep.final_state
                : (dep.state == SimJob::State::kRunning || dep.state == SimJob::State::kTerminating
                       ? api::JobState::kRunning
                       : api::JobState::kPending);
      }
      if (p.array_parent.value() != 0) {
        int32_t running = 0;
        for (const auto& [oid, other] : jobs_) {
          if (other.spec.array_parent == p.array_parent &&
              (other.state == SimJob::State::kRunning ||
               other.state == SimJob::State::kTerminating))
            ++running;
        }
        p.array_running = running;
      }
    } else if (job.state == SimJob::State::kRunning || job.state == SimJob::State::kTerminating) {
      core::RunningJobInfo r;
      r.id = job.spec.id;
      r.attempt = Attempt(job.attempts);
      r.account = job.spec.account;
      r.user = job.spec.user;
      r.allocation = job.allocation;
      r.start_time = job.started;
      r.time_limit = core::EffectiveTimeLimit(job.spec, config_.policy);
      r.priority_class = job.spec.priority_class;
      r.borrowing = job.borrowing;
      r.preemptible =
          job.runs_as_preemptible || job.spec.priority_class == api::PriorityClass::kPreemptible;
      r.grace_period = job.spec.grace_period;
      if (job.state == SimJob::State::kTerminating)
        r.terminating_deadline = job.deadline;
      s.running.push_back(std::move(r));
    }
  }
  for (const auto& [t, account] : recent_preemptions_) {
    if (now - t < Seconds(3600))
      ++s.accounts[account].preemptions_last_hour;
  }
  return s;
}

void Simulation::Accrue(Timestamp to) {
  const Timestamp from = clock_.Now();
  if (to <= from)
    return;
  const double dt = static_cast<double>((to - from).count()) / 1000.0;
  std::vector<double> normalised(cluster_.accounts.size(), 0.0);
  for (auto& [id, job] : jobs_) {
    if (job.state != SimJob::State::kRunning && job.state != SimJob::State::kTerminating)
      continue;
    int64_t gpus = 0;
    for (const core::NodeAllocation& a : job.allocation)
      gpus += core::Popcount(a.gpus);
    gpu_seconds_[job.spec.account] += static_cast<double>(gpus) * dt;
    const double used = static_cast<double>(gpus) * dt * cluster_.gpu_types[job.gpu_type].cost;
    normalised[job.spec.account] += used;
    job.attempt_usage += used;
  }
  for (uint32_t a = 0; a < cluster_.accounts.size(); ++a) {
    if (normalised[a] == 0)
      continue;
    core::AccountInfo& acc = cluster_.accounts[a];
    acc.usage = core::AddUsage(acc.usage, normalised[a], to, config_.policy.half_life);
    for (uint32_t p = a; p != core::kNoParent; p = cluster_.accounts[p].parent) {
      auto& budget = cluster_.accounts[p].budget;
      if (budget && to > budget->start && from < budget->end)
        budget->consumed_gpu_hours += normalised[a] / 3600.0;
    }
  }
}

void Simulation::FinishDue() {
  const Timestamp now = clock_.Now();
  for (auto& [id, job] : jobs_) {
    if (job.state == SimJob::State::kRunning && job.ends <= now) {
      job.state = SimJob::State::kDone;
      job.final_state = job.run_time <= core::EffectiveTimeLimit(job.spec, config_.policy)
                            ? api::JobState::kCompleted
                            : api::JobState::kTimeout;
      job.finished = now;
      ++stats_.completed;
      dirty_ = true;
    } else if (job.state == SimJob::State::kTerminating &&
               std::min(job.ends, job.deadline) <= now) {
      dirty_ = true;
      if (job.ends <= now) {
        // It finished on its own before its grace period ran out.
        job.state = SimJob::State::kDone;
        job.final_state = api::JobState::kCompleted;
        job.finished = now;
        ++stats_.completed;
        continue;
      }
      // The preempted attempt is charged at `usage_charge`: give the rest back (undecayed, a
      // slight over-refund for long attempts).
      const double refund = job.attempt_usage * (1.0 - config_.policy.preemption.usage_charge);
      core::AccountInfo& acc = cluster_.accounts[job.spec.account];
      acc.usage = core::AddUsage(acc.usage, -refund, now, config_.policy.half_life);
      acc.usage.value = std::max(0.0, acc.usage.value);
      job.allocation.clear();
      if (config_.requeue_preempted) {
        job.state = SimJob::State::kPending;
      } else {
        job.state = SimJob::State::kDone;
        job.final_state = api::JobState::kPreempted;
        job.finished = now;
      }
    }
  }
}

Timestamp Simulation::NextEvent() const {
  Timestamp next = last_cycle_ + config_.interval;
  if (!arrivals_.empty())
    next = std::min(next, FromUnixMillis(arrivals_.begin()->first));
  for (const auto& [id, job] : jobs_) {
    if (job.state == SimJob::State::kRunning)
      next = std::min(next, job.ends);
    else if (job.state == SimJob::State::kTerminating)
      next = std::min(next, std::min(job.ends, job.deadline));
  }
  return std::max(next, clock_.Now());
}

void Simulation::Cycle() {
  const Timestamp now = clock_.Now();
  const core::Snapshot snapshot = BuildSnapshot();
  const core::Plan plan = core::Schedule(snapshot, config_.policy, now);
  ++stats_.cycles;
  last_cycle_ = now;
  dirty_ = false;
  // Validate like the server would: nothing double-booked.
  std::vector<core::GpuMask> used(cluster_.nodes.size(), 0);
  for (const core::RunningJobInfo& r : snapshot.running) {
    for (const core::NodeAllocation& a : r.allocation)
      used[a.node] |= a.gpus;
  }
  for (const core::JobStart& st : plan.starts) {
    SimJob& job = jobs_.at(st.job.value());
    for (const core::NodeAllocation& a : st.nodes) {
      if (used[a.node] & a.gpus)
        ++stats_.violations;
      used[a.node] |= a.gpus;
    }
    job.state = SimJob::State::kRunning;
    job.allocation = st.nodes;
    job.gpu_type = st.gpu_type;
    job.started = now;
    job.ends = now + std::min(job.run_time, st.time_limit);
    job.borrowing = st.borrowing;
    job.runs_as_preemptible = st.runs_as_preemptible;
    job.attempts = st.attempt.value();
    job.attempt_usage = 0;
    job.last_reason.reset();
    if (!job.first_start)
      job.first_start = now;
    ++stats_.starts;
  }
  for (const core::PlannedPreemption& p : plan.preemptions) {
    SimJob& job = jobs_.at(p.victim.value());
    job.state = SimJob::State::kTerminating;
    job.deadline = now + p.grace;
    ++job.preemptions;
    ++stats_.preemptions;
    recent_preemptions_.emplace_back(now, job.spec.account);
  }
  while (!recent_preemptions_.empty() && now - recent_preemptions_.front().first >= Seconds(3600))
    recent_preemptions_.pop_front();
  for (const core::PendingReason& r : plan.pending)
    jobs_.at(r.job.value()).last_reason = plan.ExplanationFor(r);
  if (on_plan)
    on_plan(plan, now);
}

void Simulation::RunUntil(Timestamp until) {
  while (clock_.Now() <= until) {
    // Arrivals due now.
    while (!arrivals_.empty() && FromUnixMillis(arrivals_.begin()->first) <= clock_.Now()) {
      SimJob& job = jobs_.at(arrivals_.begin()->second);
      job.state = SimJob::State::kPending;
      arrivals_.erase(arrivals_.begin());
      dirty_ = true;
    }
    FinishDue();
    if (dirty_ || clock_.Now() >= last_cycle_ + config_.interval)
      Cycle();
    const Timestamp next = NextEvent();
    if (next > until)
      break;
    if (next == clock_.Now()) {
      // Nothing moves at this instant any more: step to the next interval.
      const Timestamp step = last_cycle_ + config_.interval;
      Accrue(step);
      clock_.Set(step);
      continue;
    }
    Accrue(next);
    clock_.Set(next);
  }
  if (clock_.Now() < until) {
    Accrue(until);
    clock_.Set(until);
  }
}

void Simulation::RunUntilIdle(Timestamp limit) {
  while (clock_.Now() < limit) {
    bool busy = !arrivals_.empty();
    for (const auto& [id, job] : jobs_)
      busy |= job.state != SimJob::State::kDone && job.state != SimJob::State::kFuture;
    if (!busy)
      return;
    RunUntil(std::min(limit, clock_.Now() + Seconds(3600)));
  }
}

}  // namespace gsched::sim
