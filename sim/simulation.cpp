#include "sim/simulation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "scheduler/core/usage.h"

namespace gsched::sim {

namespace {

constexpr Duration kPreemptionWindow = Seconds(3600);

int64_t Ms(Timestamp t) {
  return ToUnixMillis(t);
}

}  // namespace

Simulation::Simulation(core::Snapshot cluster, SimConfig config, Timestamp start)
    : snapshot_(std::move(cluster)),
      config_(std::move(config)),
      clock_(start),
      start_(start),
      trigger_(clock_, config_.coalesce, config_.min_gap) {
  snapshot_.pending.clear();
  snapshot_.running.clear();
  node_use_.assign(snapshot_.nodes.size(), NodeUse{});
  for (const core::NodeInfo& n : snapshot_.nodes)
    total_gpus_ += n.gpu_count;
  running_gpus_.assign(snapshot_.accounts.size() * snapshot_.gpu_types.size(), 0);
  gpu_seconds_.assign(snapshot_.accounts.size(), 0.0);
  normalised_seconds_.assign(snapshot_.accounts.size(), 0.0);
  pending_normalised_.assign(snapshot_.accounts.size(), 0.0);
  type_gpu_seconds_.assign(snapshot_.gpu_types.size(), 0.0);
  for (core::AccountInfo& a : snapshot_.accounts) {
    if (a.usage.at > start)
      a.usage.at = start;
  }
  next_tick_ = start;
}

uint32_t Simulation::AccountIndex(const std::string& name) const {
  for (uint32_t a = 0; a < snapshot_.accounts.size(); ++a) {
    if (snapshot_.accounts[a].name == name)
      return a;
  }
  throw std::out_of_range("no account " + name);
}

double Simulation::RunningNormalisedGpus(uint32_t account) const {
  const size_t types = snapshot_.gpu_types.size();
  double sum = 0;
  for (size_t t = 0; t < types; ++t) {
    sum += static_cast<double>(running_gpus_[account * types + t]) * snapshot_.gpu_types[t].cost;
  }
  return sum;
}

double Simulation::PendingCost(const core::PendingJobInfo& job) const {
  double cost = std::numeric_limits<double>::infinity();
  for (uint32_t t = 0; t < snapshot_.gpu_types.size(); ++t) {
    if ((job.gpu_types >> t & 1) != 0)
      cost = std::min(cost, snapshot_.gpu_types[t].cost);
  }
  return std::isfinite(cost) ? cost : 1.0;
}

PendingShape ShapeOfPending(const core::PendingJobInfo& j) {
  return {j.gpu_types, j.nodes, j.gpus_per_node, j.cpus_per_node, j.memory_mib_per_node};
}

void Simulation::Submit(core::PendingJobInfo spec, Duration run_time) {
  SimJob job;
  const uint64_t id = spec.id.value();
  if (spec.submit_time < clock_.Now())
    spec.submit_time = clock_.Now();
  job.spec = std::move(spec);
  job.run_time = run_time;
  arrivals_.emplace(Ms(job.spec.submit_time), id);
  jobs_[id] = std::move(job);
}

void Simulation::RequestPass() {
  // The wake-up it may schedule is read back through `trigger_.due()` by `NextEvent`.
  (void)trigger_.Request();
}

void Simulation::Enqueue(SimJob& job) {
  job.state = SimJob::State::kPending;
  job.spec.attempt = Attempt(job.attempts);
  job.slot = static_cast<uint32_t>(snapshot_.pending.size());
  snapshot_.pending.push_back(job.spec);
  pending_normalised_[job.spec.account] +=
      static_cast<double>(core::RequestedGpus(job.spec)) * PendingCost(job.spec);
}

void Simulation::RemovePending(SimJob& job) {
  std::vector<core::PendingJobInfo>& pending = snapshot_.pending;
  double& demand = pending_normalised_[job.spec.account];
  demand = std::max(
      0.0, demand - static_cast<double>(core::RequestedGpus(job.spec)) * PendingCost(job.spec));
  const uint32_t slot = job.slot;
  if (slot + 1 != pending.size()) {
    pending[slot] = std::move(pending.back());
    jobs_.at(pending[slot].id.value()).slot = slot;
  }
  pending.pop_back();
}

void Simulation::AddRunning(SimJob& job, Duration time_limit) {
  core::RunningJobInfo r;
  r.id = job.spec.id;
  r.attempt = Attempt(job.attempts);
  r.account = job.spec.account;
  r.user = job.spec.user;
  r.allocation.assign(job.allocation.begin(), job.allocation.end());
  r.start_time = job.started;
  r.time_limit = time_limit;
  r.priority_class = job.spec.priority_class;
  r.borrowing = job.borrowing;
  r.preemptible =
      job.runs_as_preemptible || job.spec.priority_class == api::PriorityClass::kPreemptible;
  r.grace_period = job.spec.grace_period;
  r.known_run_time = job.spec.known_run_time;
  job.slot = static_cast<uint32_t>(snapshot_.running.size());
  snapshot_.running.push_back(std::move(r));
  running_gpus_[job.spec.account * snapshot_.gpu_types.size() + job.gpu_type] += job.gpus;
  busy_gpus_ += job.gpus;
  if (job.spec.array_parent.value() != 0)
    ++array_running_[job.spec.array_parent.value()];
}

void Simulation::RemoveRunning(SimJob& job) {
  std::vector<core::RunningJobInfo>& running = snapshot_.running;
  const uint32_t slot = job.slot;
  if (slot + 1 != running.size()) {
    running[slot] = std::move(running.back());
    jobs_.at(running[slot].id.value()).slot = slot;
  }
  running.pop_back();
  for (const core::NodeAllocation& a : job.allocation) {
    NodeUse& u = node_use_[a.node];
    u.gpus &= ~a.gpus;
    u.cpus -= a.cpus;
    u.memory_mib -= a.memory_mib;
  }
  running_gpus_[job.spec.account * snapshot_.gpu_types.size() + job.gpu_type] -= job.gpus;
  busy_gpus_ -= job.gpus;
  if (job.spec.array_parent.value() != 0)
    --array_running_[job.spec.array_parent.value()];
}

void Simulation::RefreshSnapshot() {
  const Timestamp now = clock_.Now();
  while (!recent_preemptions_.empty() &&
         now - recent_preemptions_.front().first >= kPreemptionWindow)
    recent_preemptions_.pop_front();
  for (core::AccountInfo& a : snapshot_.accounts)
    a.preemptions_last_hour = 0;
  for (const auto& [t, account] : recent_preemptions_)
    ++snapshot_.accounts[account].preemptions_last_hour;
  for (core::PendingJobInfo& p : snapshot_.pending) {
    // Dependencies see the current state of the jobs they name.
    for (core::Dependency& d : p.dependencies) {
      auto it = jobs_.find(d.job.value());
      if (it == jobs_.end())
        continue;
      const SimJob& dep = it->second;
      d.state = dep.state == SimJob::State::kDone ? dep.final_state
                : dep.state == SimJob::State::kRunning || dep.state == SimJob::State::kTerminating
                    ? api::JobState::kRunning
                    : api::JobState::kPending;
    }
    if (p.array_parent.value() != 0) {
      auto it = array_running_.find(p.array_parent.value());
      p.array_running = it == array_running_.end() ? 0 : it->second;
    }
  }
}

void Simulation::Advance(Timestamp to) {
  const Timestamp from = clock_.Now();
  if (to <= from)
    return;
  if (on_advance)
    on_advance(from, to);
  const double dt = static_cast<double>((to - from).count()) / 1000.0;
  const size_t types = snapshot_.gpu_types.size();
  for (uint32_t a = 0; a < snapshot_.accounts.size(); ++a) {
    // What the account's running jobs are charged for [from, to), as the daemon charges an
    // attempt (`core::AttemptUsage`), and the normalised GPUs they hold, for its budgets.
    double normalised = 0;
    double held = 0;
    for (size_t t = 0; t < types; ++t) {
      const int64_t gpus = running_gpus_[a * types + t];
      if (gpus == 0)
        continue;
      const double cost = snapshot_.gpu_types[t].cost;
      gpu_seconds_[a] += static_cast<double>(gpus) * dt;
      type_gpu_seconds_[t] += static_cast<double>(gpus) * dt;
      normalised += core::AttemptUsage(static_cast<double>(gpus), cost, from, to);
      held += static_cast<double>(gpus) * cost;
    }
    if (normalised == 0)
      continue;
    normalised_seconds_[a] += normalised;
    core::AccountInfo& acc = snapshot_.accounts[a];
    acc.usage = core::AddUsage(acc.usage, normalised, to, config_.policy.half_life);
    ChargeBudgets(a, held, from, to);
  }
  clock_.Set(to);
}

void Simulation::ChargeBudgets(uint32_t account, double normalised_gpus, Timestamp from,
                               Timestamp to) {
  for (uint32_t p = account, steps = 0; p != core::kNoParent && steps <= snapshot_.accounts.size();
       p = snapshot_.accounts[p].parent, ++steps) {
    auto& budget = snapshot_.accounts[p].budget;
    if (budget)
      budget->consumed_gpu_hours +=
          core::BudgetCharge(normalised_gpus, from, to, budget->start, budget->end);
  }
}

void Simulation::FinishDue() {
  const Timestamp now = clock_.Now();
  while (!exits_.empty() && exits_.begin()->first <= Ms(now)) {
    const uint64_t id = exits_.begin()->second;
    exits_.erase(exits_.begin());
    SimJob& job = jobs_.at(id);
    RequestPass();
    const bool timed_out = job.run_time > snapshot_.running[job.slot].time_limit;
    if (job.state == SimJob::State::kRunning || job.ends <= now) {
      // Finished on its own (a preempted job may still finish within its grace period).
      if (job.spec.user < snapshot_.users.size()) {
        const std::string& user = snapshot_.users[job.spec.user];
        run_times_.Record(user, now - job.started, snapshot_.running[job.slot].time_limit);
        if (snapshot_.user_run_time_ratio.size() <= job.spec.user)
          snapshot_.user_run_time_ratio.resize(job.spec.user + 1, 1.0);
        snapshot_.user_run_time_ratio[job.spec.user] = run_times_.Ratio(user);
        if (snapshot_.user_limit_run_time_ratio.size() <= job.spec.user)
          snapshot_.user_limit_run_time_ratio.resize(job.spec.user + 1);
        snapshot_.user_limit_run_time_ratio[job.spec.user] = run_times_.LimitRatios(user);
      }
      RemoveRunning(job);
      job.state = SimJob::State::kDone;
      job.final_state = timed_out ? api::JobState::kTimeout : api::JobState::kCompleted;
      job.finished = now;
      ++stats_.completed;
      stats_.timeouts += timed_out ? 1 : 0;
      continue;
    }
    // The grace period of a preempted attempt ran out. It is charged at `usage_charge`, as the
    // daemon charges it, but was accrued in full while it ran: give the rest back (undecayed, a
    // slight over-refund for long attempts), from usage and budgets.
    const double gpus = static_cast<double>(job.gpus);
    const double cost = snapshot_.gpu_types[job.gpu_type].cost;
    const double uncharged = 1.0 - config_.policy.preemption.usage_charge;
    core::AccountInfo& acc = snapshot_.accounts[job.spec.account];
    acc.usage =
        core::AddUsage(acc.usage, -core::AttemptUsage(gpus, cost, job.started, now, uncharged), now,
                       config_.policy.half_life);
    acc.usage.value = std::max(0.0, acc.usage.value);
    ChargeBudgets(job.spec.account, -gpus * cost * uncharged, job.started, now);
    const double seconds = static_cast<double>((now - job.started).count()) / 1000.0;
    stats_.preempted_gpu_seconds += gpus * seconds;
    RemoveRunning(job);
    job.allocation.clear();
    job.gpus = 0;
    if (config_.requeue_preempted) {
      Enqueue(job);
    } else {
      job.state = SimJob::State::kDone;
      job.final_state = api::JobState::kPreempted;
      job.finished = now;
    }
  }
}

Timestamp Simulation::NextTickAfter(Timestamp t) const {
  const int64_t interval = std::max<int64_t>(1, config_.interval.count());
  const int64_t since = (t - start_).count();
  return start_ + Duration((since / interval + 1) * interval);
}

Timestamp Simulation::NextEvent() const {
  Timestamp next = Timestamp::max();
  if (!arrivals_.empty())
    next = std::min(next, FromUnixMillis(arrivals_.begin()->first));
  if (!exits_.empty())
    next = std::min(next, FromUnixMillis(exits_.begin()->first));
  if (const std::optional<Timestamp> due = trigger_.due())
    next = std::min(next, *due);
  if (!snapshot_.pending.empty())
    next = std::min(next, next_tick_);
  // Everything due now was handled before this is asked; never stand still.
  return std::max(next, clock_.Now() + Duration(1));
}

void Simulation::Cycle() {
  const Timestamp now = clock_.Now();
  RefreshSnapshot();
  const core::Plan plan = core::Schedule(snapshot_, config_.policy, now);
  ++stats_.cycles;
  // Apply like the server would, checking that nothing is double-booked.
  for (const core::JobStart& st : plan.starts) {
    auto it = jobs_.find(st.job.value());
    if (it == jobs_.end() || it->second.state != SimJob::State::kPending) {
      ++stats_.violations;
      continue;
    }
    const uint64_t id = it->first;
    SimJob& job = it->second;
    RemovePending(job);
    job.gpus = 0;
    for (const core::NodeAllocation& a : st.nodes) {
      NodeUse& u = node_use_[a.node];
      const core::NodeInfo& n = snapshot_.nodes[a.node];
      if ((u.gpus & a.gpus) != 0 || u.cpus + a.cpus > n.cpus ||
          u.memory_mib + a.memory_mib > n.memory_mib)
        ++stats_.violations;
      u.gpus |= a.gpus;
      u.cpus += a.cpus;
      u.memory_mib += a.memory_mib;
      job.gpus += core::Popcount(a.gpus);
    }
    job.state = SimJob::State::kRunning;
    job.allocation = st.nodes;
    job.gpu_type = st.gpu_type;
    job.started = now;
    job.ends = now + std::min(job.run_time, st.time_limit);
    job.borrowing = st.borrowing;
    job.runs_as_preemptible = st.runs_as_preemptible;
    job.attempts = st.attempt.value();
    job.last_reason.reset();
    if (!job.first_start)
      job.first_start = now;
    AddRunning(job, st.time_limit);
    exits_.emplace(Ms(job.ends), id);
    ++stats_.starts;
  }
  for (const core::PlannedPreemption& p : plan.preemptions) {
    SimJob& job = jobs_.at(p.victim.value());
    if (job.state != SimJob::State::kRunning)
      continue;
    exits_.erase({Ms(job.ends), p.victim.value()});
    job.state = SimJob::State::kTerminating;
    job.deadline = now + p.grace;
    snapshot_.running[job.slot].terminating_deadline = job.deadline;
    exits_.emplace(Ms(std::min(job.ends, job.deadline)), p.victim.value());
    ++job.preemptions;
    ++stats_.preemptions;
    recent_preemptions_.emplace_back(now, job.spec.account);
  }
  if (config_.record_reasons) {
    for (const core::PendingReason& r : plan.pending)
      jobs_.at(r.job.value()).last_reason = plan.ExplanationFor(r);
  }
  last_pass_started_ = !plan.starts.empty() || !plan.preemptions.empty();
  if (on_plan)
    on_plan(plan, now);
  // The pass took no virtual time and nothing asked for another meanwhile.
  (void)trigger_.End();
}

void Simulation::RunUntil(Timestamp until) {
  Run(until, /*stop_when_idle=*/false);
}

void Simulation::RunUntilIdle(Timestamp limit) {
  Run(limit, /*stop_when_idle=*/true);
}

bool Simulation::Idle() const {
  if (!arrivals_.empty() || !snapshot_.running.empty() || trigger_.wanted())
    return false;
  // With nothing running and nothing to arrive, a pending job that the last pass did not start
  // never starts: it does not fit, or waits on a limit that nothing will release.
  return snapshot_.pending.empty() || !last_pass_started_;
}

void Simulation::Run(Timestamp until, bool stop_when_idle) {
  for (;;) {
    const Timestamp now = clock_.Now();
    // 1. Arrivals due now join the queue.
    while (!arrivals_.empty() && arrivals_.begin()->first <= Ms(now)) {
      SimJob& job = jobs_.at(arrivals_.begin()->second);
      arrivals_.erase(arrivals_.begin());
      Enqueue(job);
      RequestPass();
    }
    // 2. Workers report the jobs that ended.
    FinishDue();
    // 3. The periodic tick (skipped while nothing is pending: such a pass plans nothing).
    if (!snapshot_.pending.empty() && now >= next_tick_) {
      RequestPass();
      next_tick_ = NextTickAfter(now);
    }
    // 4. A pass, when one is wanted and due.
    if (trigger_.IsDue() && trigger_.Begin())
      Cycle();
    if (stop_when_idle && Idle())
      return;
    const Timestamp next = NextEvent();
    if (next > until)
      break;
    Advance(next);
  }
  Advance(until);
}

}  // namespace gsched::sim
