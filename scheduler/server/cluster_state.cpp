#include "scheduler/server/cluster_state.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <map>
#include <set>
#include <tuple>

#include "config/policy_from_config.h"
#include "scheduler/api/array_spec.h"
#include "scheduler/api/codec.h"
#include "scheduler/api/decode.h"
#include "scheduler/api/json.h"
#include "scheduler/common/quantity.h"
#include "scheduler/core/usage.h"
#include "scheduler/server/snapshot_builder.h"

namespace gsched::server {
namespace json = boost::json;
using api::JobState;

ClusterState::ClusterState(const config::SchedulerConfig& config, const Clock& clock)
    : config_(config),
      clock_(clock),
      policy_(config::PolicyFromConfig(config)),
      events_(config, clock),
      nodes_(config, clock, events_),
      usage_(policy_.half_life),
      applier_(jobs_, nodes_, events_) {
  // `root` always exists: every account hangs below it.
  api::Account root;
  root.name = "root";
  accounts_["root"] = root;
}

// ---------------------------------------------------------------------------------------------
// Loading.

Status ClusterState::Load(const state::Store& store) {
  quarantine_.clear();
  // A record that does not decode is set aside rather than a reason not to start: one bad write
  // (or a bit flip) must not brick the scheduler. `QuarantineBatch` moves them aside.
  auto quarantine_in = [&](state::Family family) {
    return [this, family](std::string_view key, std::string_view value, std::string why) {
      spdlog::error("quarantining the {} record {}: {}", state::FamilyName(family),
                    api::internal::Printable(key), why);
      quarantine_.push_back({family, std::string(key), std::string(value), std::move(why)});
      return true;
    };
  };
  auto quarantine_account = quarantine_in(state::Family::kAccounts);
  RETURN_IF_ERROR(store.Scan(state::Family::kAccounts, {}, {}, [&](auto key, auto value) {
    auto v = api::ParseJson(value);
    if (!v.ok())
      return quarantine_account(key, value, v.status().ToString());
    auto a = api::DecodeAccount(*v);
    if (!a.ok())
      return quarantine_account(key, value, a.status().ToString());
    if (a->name != key)
      return quarantine_account(key, value, "stored under another name");
    accounts_[a->name] = std::move(a).value();
    return true;
  }));
  RETURN_IF_ERROR(usage_.Load(store, quarantine_in(state::Family::kUsage)));
  RETURN_IF_ERROR(nodes_.Load(store, quarantine_in(state::Family::kNodes)));
  RETURN_IF_ERROR(store.Scan(state::Family::kTokens, {}, {}, [&](auto key, auto) {
    revoked_.insert(std::string(key));
    return true;
  }));
  RETURN_IF_ERROR(jobs_.Load(store, quarantine_in(state::Family::kJobs)));
  // What quarantined records leave dangling is mended in memory, never written: an account whose
  // parent is gone hangs below `root`, and a job's missing account is stood in for by an empty
  // one below `root` (no quota, one share) until an admin puts it back.
  for (auto& [name, a] : accounts_) {
    if (name != "root" && !accounts_.contains(a.parent)) {
      spdlog::error("account {}: parent '{}' is missing; placed below root", name, a.parent);
      a.parent = "root";
    }
  }
  for (const auto& [id, rec] : jobs_.all()) {
    const std::string& account = rec.job.spec.account;
    if (accounts_.contains(account))
      continue;
    spdlog::error("job {}: account '{}' is missing; standing in an empty one below root", id,
                  account);
    api::Account stand_in;
    stand_in.name = account;
    stand_in.parent = "root";
    accounts_[account] = std::move(stand_in);
  }
  // Allocations of running jobs hold their GPUs, CPUs and memory on the nodes they run on. They
  // run under the limit the core gives their spec, as the plan that started them did (the plan
  // itself is gone with the restart).
  for (uint64_t id : jobs_.running()) {
    JobRecord& rec = *jobs_.Find(id);
    const api::JobSpec& spec = rec.job.spec;
    rec.time_limit =
        core::EffectiveTimeLimit(spec.time_limit_s ? Seconds(*spec.time_limit_s) : Duration(0),
                                 spec.priority_class, policy_);
    nodes_.Hold(rec.job, rec.job.spec.cpus_per_node, rec.job.spec.memory_mib_per_node);
  }
  // The event log continues after its last entry.
  RETURN_IF_ERROR(events_.Load(store));
  spdlog::info(
      "loaded {} pending and {} running jobs, {} accounts, {} nodes; next job id {}, next event {}",
      jobs_.pending().size(), jobs_.running().size(), accounts_.size(), nodes_.all().size(),
      jobs_.next_id(), events_.last_seq() + 1);
  return Status::Ok();
}

std::string ClusterState::QuarantineKey(state::Family family, std::string_view key) {
  return "quarantine/" + std::string(state::FamilyName(family)) + "/" + std::string(key);
}

state::WriteBatch ClusterState::QuarantineBatch() const {
  state::WriteBatch batch;
  for (const QuarantinedRecord& q : quarantine_) {
    // The bytes as they were, for an admin to inspect or mend; the reason is in the log.
    batch.Put(state::Family::kMeta, QuarantineKey(q.family, q.key), q.value);
    batch.Delete(q.family, q.key);
  }
  return batch;
}

// ---------------------------------------------------------------------------------------------
// Jobs.

Status ClusterState::ValidateSpec(const Principal& who, api::JobSpec& spec,
                                  const state::Store* history) const {
  if (spec.account.empty()) {
    if (who.accounts.empty()) {
      return Status::InvalidArgument("required: the token has no default account", "account");
    }
    spec.account = who.accounts.front();
  }
  if (!accounts_.contains(spec.account)) {
    return Status::InvalidArgument("unknown account '" + spec.account + "'", "account");
  }
  if (!auth_.MayActForAccount(who, spec.account)) {
    return Status(StatusCode::kPermissionDenied,
                  "user '" + who.user + "' may not submit to account '" + spec.account + "'",
                  "account");
  }
  for (size_t i = 0; i < spec.gpu_type.size(); ++i) {
    if (!config::FindGpuType(config_.gpu_types, spec.gpu_type[i])) {
      std::string known;
      for (const auto& t : config_.gpu_types)
        known += (known.empty() ? "" : ", ") + t.name;
      return Status::InvalidArgument("unknown GPU type '" + spec.gpu_type[i] + "'; known: " + known,
                                     "gpu_type[" + std::to_string(i) + "]");
    }
  }
  const auto& limits = config_.priority.Limits(spec.priority_class);
  if (spec.time_limit_s && Seconds(*spec.time_limit_s) > limits.max_time_limit) {
    return Status::InvalidArgument(
        "must be <= " + std::to_string(limits.max_time_limit.count() / 1000) + " for class " +
            std::string(api::ToString(spec.priority_class)),
        "time_limit_s");
  }
  for (size_t i = 0; i < spec.depends_on.size(); ++i) {
    uint64_t dep = spec.depends_on[i].job;
    // A job the submitter may not see is named like one that does not exist: the answer tells
    // nothing about other users' jobs.
    bool visible = false;
    if (const JobRecord* rec = jobs_.Find(dep)) {
      visible = auth_.MaySeeJob(who, rec->job);
    } else if (jobs_.FinishedState(dep)) {
      visible = history == nullptr || GetJob(who, dep, *history).ok();
    }
    if (!visible) {
      return Status(StatusCode::kNotFound, "no job " + std::to_string(dep),
                    "depends_on[" + std::to_string(i) + "].job");
    }
  }
  return Status::Ok();
}

Result<Change> ClusterState::Submit(const Principal& who, std::vector<api::JobSpec> specs,
                                    std::vector<uint64_t>* ids, const state::Store* history) {
  RETURN_IF_ERROR(Authorizer::Check(who, Authorizer::Action::kSubmit));
  // Validate everything first: a batch is all or nothing.
  std::vector<api::ArraySpec> arrays(specs.size());
  std::map<std::string, int64_t> new_per_user;
  size_t total = 0;
  int64_t expanded = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    Status s = ValidateSpec(who, specs[i], history);
    if (!s.ok())
      return specs.size() > 1 ? std::move(s).WithFieldPrefix("jobs[" + std::to_string(i) + "]") : s;
    if (specs[i].array) {
      auto a = api::ParseArraySpec(*specs[i].array);
      if (!a.ok()) {
        Status e = std::move(a).status().WithFieldPrefix("array");
        return specs.size() > 1 ? std::move(e).WithFieldPrefix("jobs[" + std::to_string(i) + "]")
                                : e;
      }
      arrays[i] = std::move(a).value();
      total += arrays[i].indices.size();
    } else {
      total += 1;
    }
    new_per_user[specs[i].account] +=
        specs[i].array ? static_cast<int64_t>(arrays[i].indices.size()) : 1;
    // Each task holds a copy of its spec: a large spec times many tasks is a large request,
    // whatever its body's size.
    int64_t tasks = specs[i].array ? static_cast<int64_t>(arrays[i].indices.size()) : 1;
    expanded += static_cast<int64_t>(json::serialize(api::Encode(specs[i])).size()) * tasks;
    if (expanded > config_.limits.max_submit_expanded_bytes) {
      Status e = Status::InvalidArgument(
          "the request expands to more than limits.max_submit_expanded_bytes (" +
              std::to_string(config_.limits.max_submit_expanded_bytes) +
              " bytes: spec bytes x array tasks); submit fewer tasks or a smaller spec",
          specs[i].array ? "array" : "");
      return specs.size() > 1 ? std::move(e).WithFieldPrefix("jobs[" + std::to_string(i) + "]") : e;
    }
  }
  if (total > 100'000) {
    return Status::InvalidArgument("a request may create at most 100000 jobs, this one " +
                                   std::to_string(total));
  }
  for (const auto& [account, n] : new_per_user) {
    const api::Account& a = accounts_.at(account);
    // The account's own limit, else the scheduler's default (`limits.max_pending_jobs_per_user`).
    int64_t limit = a.max_pending_jobs_per_user.value_or(config_.limits.max_pending_jobs_per_user);
    if (limit <= 0 && !a.max_pending_jobs_per_user)
      continue;
    int64_t have = jobs_.PendingOf(account, who.user);
    if (have + n > limit) {
      return Status::ResourceExhausted(
          (a.max_pending_jobs_per_user
               ? "account '" + account + "' allows "
               : "the scheduler allows (limits.max_pending_jobs_per_user) ") +
          std::to_string(limit) + " pending jobs per user in account '" + account + "'; " +
          who.user + " has " + std::to_string(have) + " and asks for " + std::to_string(n));
    }
  }

  Change change;
  Timestamp now = clock_.Now();
  auto add = [&](const api::JobSpec& spec, std::optional<uint64_t> array_id,
                 std::optional<uint32_t> array_index) {
    JobRecord rec;
    rec.job.id = jobs_.TakeId();
    rec.job.spec = spec;
    rec.job.user = who.user;
    rec.job.state = JobState::kPending;
    rec.job.submit_time = now;
    rec.job.array_job_id = array_id;
    rec.job.array_index = array_index;
    JobRecords::Persist(change, rec);
    JobRecords::PutIndex(change.batch, rec.job);
    json::object data = JobEventData(rec.job);
    data["name"] = spec.name;
    data["gpus"] = int64_t{spec.nodes} * spec.gpus_per_node;
    events_.Add(change, "job.submitted", std::move(data));
    ids->push_back(rec.job.id);
    uint64_t id = rec.job.id;
    jobs_.AddPending(std::move(rec));
    return id;
  };
  for (size_t i = 0; i < specs.size(); ++i) {
    if (!specs[i].array) {
      add(specs[i], std::nullopt, std::nullopt);
      continue;
    }
    uint64_t array_id = jobs_.next_id();
    for (uint32_t index : arrays[i].indices)
      add(specs[i], array_id, index);
  }
  change.batch.Put(state::Family::kMeta, "next_job_id", std::to_string(jobs_.next_id()));
  change.reschedule = true;
  return change;
}

Result<Change> ClusterState::Cancel(const Principal& who, uint64_t id) {
  // An array's id (its first task's) cancels every task of the array that is still alive: the
  // walk is over the array's own ids, not over every job.
  std::vector<uint64_t> targets = jobs_.LiveArrayTasks(id);
  if (targets.empty())
    targets.push_back(id);
  Change change;
  Timestamp now = clock_.Now();
  size_t acted = 0;
  for (uint64_t jid : targets) {
    JobRecord* found = jobs_.Find(jid);
    if (found == nullptr) {
      if (jobs_.FinishedState(jid)) {
        if (targets.size() == 1)
          return Status::FailedPrecondition("job " + std::to_string(jid) + " has already ended");
        continue;
      }
      return Status::NotFound("no job " + std::to_string(jid));
    }
    JobRecord& rec = *found;
    if (!auth_.MaySeeJob(who, rec.job))
      return Status::NotFound("no job " + std::to_string(jid));
    if (std::string why = auth_.MayNotStop(who, rec.job); !why.empty())
      return Status::PermissionDenied(why);
    ++acted;
    if (rec.job.state == JobState::kPending) {
      jobs_.Unqueue(jid);
      rec.job.end_time = now;
      rec.job.reason.reset();
      SetJobState(events_, change, rec, JobState::kCancelled, "cancelled by " + who.user);
      JobRecords::Persist(change, rec);
      jobs_.Finish(jid, JobState::kCancelled);
      continue;
    }
    if (rec.terminating_deadline)
      continue;  // Already being stopped.
    Duration grace = Seconds(rec.job.spec.grace_period_s);
    rec.terminating_deadline = now + grace;
    rec.terminating_reason = "cancelled";
    for (const auto& a : rec.job.allocation) {
      change.dispatches.push_back(
          {a.node, api::Kill{jid, rec.job.attempt, rec.job.spec.grace_period_s,
                             "cancelled by " + who.user}});
    }
    json::object data = JobEventData(rec.job);
    data["by"] = who.user;
    events_.Add(change, "job.cancel_requested", std::move(data));
  }
  if (acted == 0)
    return Status::FailedPrecondition("job " + std::to_string(id) + " has already ended");
  change.reschedule = true;
  return change;
}

Result<Change> ClusterState::Hold(const Principal& who, uint64_t id, bool hold) {
  // An array's id (its first task's) holds or releases every task of the array that is still
  // pending, as `cancel` does; tasks that already started are left alone.
  std::vector<uint64_t> tasks = jobs_.LiveArrayTasks(id);
  bool array = !tasks.empty();
  if (!array)
    tasks.push_back(id);
  // Checked for every task before any changes: a batch is all or nothing.
  for (uint64_t jid : tasks) {
    const JobRecord* rec = jobs_.Find(jid);
    if (hold || rec == nullptr || !auth_.MaySeeJob(who, rec->job))
      continue;
    RETURN_IF_ERROR(Authorizer::MayRelease(who, rec->job));
  }
  Change change;
  size_t pending = 0;
  for (uint64_t jid : tasks) {
    JobRecord* found = jobs_.Find(jid);
    if (found == nullptr) {
      if (jobs_.FinishedState(jid))
        return Status::FailedPrecondition("job " + std::to_string(jid) + " has already ended");
      return Status::NotFound("no job " + std::to_string(jid));
    }
    JobRecord& rec = *found;
    if (!auth_.MaySeeJob(who, rec.job))
      return Status::NotFound("no job " + std::to_string(jid));
    if (rec.job.state != JobState::kPending) {
      if (array)
        continue;
      return Status::FailedPrecondition("job " + std::to_string(jid) + " is " +
                                        std::string(api::ToString(rec.job.state)) +
                                        ", not pending");
    }
    ++pending;
    // A hold is released only by someone at least as senior as who placed it: an admin's only by
    // an admin, a coordinator's not by the job's user. A senior hold on a held job takes it over.
    if (rec.job.held == hold && (!hold || !Authorizer::HoldTakesOver(who, rec.job)))
      continue;
    rec.job.held = hold;
    rec.job.held_by = hold ? who.user : "";
    rec.job.held_by_role = hold ? std::optional<api::Role>(who.role) : std::nullopt;
    JobRecords::Persist(change, rec);
    json::object data = JobEventData(rec.job);
    data["held"] = hold;
    data["by"] = who.user;
    events_.Add(change, hold ? "job.held" : "job.released", std::move(data));
    change.reschedule = true;
  }
  if (pending == 0)
    return Status::FailedPrecondition("no task of array " + std::to_string(id) + " is pending");
  return change;
}

Result<api::Job> ClusterState::GetJob(const Principal& who, uint64_t id,
                                      const state::Store& store) const {
  if (const JobRecord* rec = jobs_.Find(id)) {
    if (!auth_.MaySeeJob(who, rec->job))
      return Status::NotFound("no job " + std::to_string(id));
    return WithReason(*rec);
  }
  ASSIGN_OR_RETURN(api::Job job, JobRecords::ReadStored(store, id));
  if (!auth_.MaySeeJob(who, job))
    return Status::NotFound("no job " + std::to_string(id));
  return job;
}

std::vector<api::Job> ClusterState::ListJobs(const Principal& who, const JobFilter& filter,
                                             const state::Store& store) const {
  std::vector<api::Job> out;
  auto wanted = [&](JobState st) {
    return filter.states.empty() ||
           std::find(filter.states.begin(), filter.states.end(), st) != filter.states.end();
  };
  auto matches = [&](const api::Job& j) {
    if (!wanted(j.state))
      return false;
    if (!filter.user.empty() && j.user != filter.user)
      return false;
    if (!filter.account.empty() && j.spec.account != filter.account)
      return false;
    return auth_.MaySeeJob(who, j);
  };
  bool wants_finished = filter.states.empty() ||
                        std::any_of(filter.states.begin(), filter.states.end(), api::IsTerminal);
  // Whose jobs: a user sees only their own; a filter may name a user or an account. Then only
  // theirs are read - the live ones from memory, the finished ones through the job index - so
  // that the cost follows their jobs, not all stored jobs.
  if (who.role == api::Role::kUser && !filter.user.empty() && filter.user != who.user)
    return out;
  const std::string& user = who.role == api::Role::kUser ? who.user : filter.user;
  if (!user.empty() || !filter.account.empty()) {
    const bool by_user = !user.empty();
    const std::string& name = by_user ? user : filter.account;
    if (!wants_finished) {
      const std::set<uint64_t>* live = by_user ? jobs_.LiveOfUser(name) : jobs_.LiveOfAccount(name);
      if (live == nullptr)
        return out;
      for (auto it = live->upper_bound(filter.after);
           it != live->end() && out.size() < filter.limit; ++it) {
        const JobRecord& rec = *jobs_.Find(*it);
        if (matches(rec.job))
          out.push_back(WithReason(rec));
      }
      return out;
    }
    const std::string prefix = JobRecords::IndexPrefix(by_user ? 'u' : 'a', name);
    std::string end = prefix;
    end.back() = '/' + 1;
    store
        .Scan(state::Family::kJobIndex, prefix + state::U64Key(filter.after + 1), end,
              [&](std::string_view key, std::string_view) {
                auto id = state::ParseU64Key(key.substr(prefix.size()));
                if (!id.ok())
                  return true;
                if (const JobRecord* rec = jobs_.Find(*id)) {
                  if (matches(rec->job))
                    out.push_back(WithReason(*rec));
                  return out.size() < filter.limit;
                }
                const std::string job_key = state::U64Key(*id);
                auto raw = store.Get(state::Family::kJobs, job_key);
                if (!raw.ok())
                  return true;  // Pruned meanwhile.
                auto stored = DecodeStoredJob(job_key, *raw);
                if (stored.ok() && matches(stored->job))
                  out.push_back(std::move(stored->job));
                return out.size() < filter.limit;
              })
        .IgnoreError();
    return out;
  }
  if (!wants_finished) {
    // Active jobs only: memory holds them all; walk the pending and the running set together in
    // id order so that paging with `after` works across both.
    bool want_pending = wanted(JobState::kPending);
    bool want_running = wanted(JobState::kStarting) || wanted(JobState::kRunning);
    const std::set<uint64_t>& pending = jobs_.pending();
    const std::set<uint64_t>& running = jobs_.running();
    auto p = want_pending ? pending.upper_bound(filter.after) : pending.end();
    auto r = want_running ? running.upper_bound(filter.after) : running.end();
    while (out.size() < filter.limit && (p != pending.end() || r != running.end())) {
      uint64_t id;
      if (r == running.end() || (p != pending.end() && *p < *r)) {
        id = *p++;
      } else {
        id = *r++;
      }
      const JobRecord& rec = *jobs_.Find(id);
      if (matches(rec.job))
        out.push_back(WithReason(rec));
    }
    return out;
  }
  // The store holds every job in id order; active ones are read from memory for freshness.
  store
      .Scan(state::Family::kJobs, state::U64Key(filter.after + 1), {},
            [&](std::string_view key, std::string_view value) {
              uint64_t id = *state::ParseU64Key(key);
              if (const JobRecord* rec = jobs_.Find(id)) {
                if (matches(rec->job))
                  out.push_back(WithReason(*rec));
              } else {
                auto stored = DecodeStoredJob(key, value);
                if (stored.ok() && matches(stored->job))
                  out.push_back(std::move(stored->job));
              }
              return out.size() < filter.limit;
            })
      .IgnoreError();
  return out;
}

// ---------------------------------------------------------------------------------------------
// Accounts and usage.

Result<Change> ClusterState::PutAccount(const Principal& who, api::Account account) {
  RETURN_IF_ERROR(Authorizer::Check(who, Authorizer::Action::kChangeAccounts));
  // What is stored must read back: the decoder that `Load` uses checks it first (the name from
  // the URL included), so that no write can leave a record that stops the next start.
  if (auto check = api::DecodeAccount(api::Encode(account)); !check.ok())
    return std::move(check).status();
  if (account.name == "root") {
    account.parent.clear();
  } else {
    if (account.parent.empty())
      account.parent = "root";
    if (!accounts_.contains(account.parent)) {
      return Status::InvalidArgument("unknown account '" + account.parent + "'", "parent");
    }
    if (auth_.InSubtree(account.parent, account.name)) {
      return Status::InvalidArgument(
          "'" + account.parent + "' is below '" + account.name + "': the tree would have a cycle",
          "parent");
    }
  }
  for (const auto& [type, q] : account.quotas) {
    if (!config::FindGpuType(config_.gpu_types, type)) {
      return Status::InvalidArgument("unknown GPU type", "quotas." + type);
    }
  }
  // Children's guarantees must fit in the parent's, per GPU type, where the parent sets one.
  auto guaranteed = [](const api::Account& a, const std::string& type) -> std::optional<int64_t> {
    auto it = a.quotas.find(type);
    if (it == a.quotas.end())
      return std::nullopt;
    return it->second.guaranteed;
  };
  if (!account.parent.empty()) {
    const api::Account& parent = accounts_.at(account.parent);
    for (const auto& [type, q] : account.quotas) {
      auto pg = guaranteed(parent, type);
      if (!pg)
        continue;
      int64_t sum = q.guaranteed;
      for (const auto& [name, other] : accounts_) {
        if (other.parent == account.parent && name != account.name)
          sum += guaranteed(other, type).value_or(0);
      }
      if (sum > *pg) {
        return Status::InvalidArgument("children of '" + account.parent + "' would be guaranteed " +
                                           std::to_string(sum) + " " + type +
                                           " GPUs, more than its " + std::to_string(*pg),
                                       "quotas." + type + ".guaranteed");
      }
    }
  }
  Change change;
  bool existed = accounts_.contains(account.name);
  change.batch.Put(state::Family::kAccounts, account.name, json::serialize(api::Encode(account)));
  json::object data;
  data["account"] = account.name;
  data["by"] = who.user;
  data["created"] = !existed;
  data["spec"] = api::Encode(account);
  events_.Add(change, "account.quota", std::move(data));
  accounts_[account.name] = std::move(account);
  change.reschedule = true;
  return change;
}

std::vector<api::Account> ClusterState::Accounts() const {
  std::vector<api::Account> out;
  for (const auto& [name, a] : accounts_)
    out.push_back(a);
  return out;
}

std::vector<api::Account> ClusterState::VisibleAccounts(const Principal& who) const {
  std::vector<api::Account> out;
  for (const auto& [name, a] : accounts_) {
    switch (auth_.ViewOfAccount(who, name)) {
      case Authorizer::AccountView::kWhole:
        out.push_back(a);
        break;
      case Authorizer::AccountView::kOutline: {
        api::Account outline = a;
        outline.users.reset();
        outline.budget.reset();
        out.push_back(std::move(outline));
        break;
      }
      case Authorizer::AccountView::kNone:
        break;
    }
  }
  return out;
}

double ClusterState::UsageGpuHours(const std::string& account) const {
  Timestamp now = clock_.Now();
  double seconds = usage_.DecayedSeconds(account, now);
  for (uint64_t id : jobs_.running()) {
    const JobRecord& rec = *jobs_.Find(id);
    if (rec.job.spec.account != account || !rec.job.start_time)
      continue;
    seconds += core::NormalisedGpuSeconds(
        AllocatedGpus(rec.job), AllocationCost(config_, nodes_, rec.job),
        std::chrono::duration<double>(now - *rec.job.start_time).count());
  }
  return seconds / 3600.0;
}

Result<std::vector<UsageRow>> ClusterState::UsageReport(const Principal& who,
                                                        const UsageQuery& query,
                                                        const state::Store& store) const {
  auto visible = [&](const std::string& account, const std::string& user) {
    if (!query.account.empty() && !auth_.InSubtree(account, query.account))
      return false;
    return auth_.MaySeeUsage(who, account, user);
  };
  if (query.until <= query.since)
    return std::vector<UsageRow>();
  // Ended attempts, hour by hour.
  UsageBook::Sums sums;
  Status read = UsageBook::ReadLedger(store, query.since, query.until, visible, sums);
  if (!read.ok())
    return Status::Unavailable("cannot read the usage ledger: " + read.ToString());
  // Running attempts so far, exactly within the window.
  constexpr int64_t kHourMs = 3'600'000;
  const int64_t since = ToUnixMillis(query.since), until = ToUnixMillis(query.until);
  int64_t now = ToUnixMillis(clock_.Now());
  for (uint64_t id : jobs_.running()) {
    const api::Job& job = jobs_.Find(id)->job;
    if (!job.start_time || job.allocation.empty() || !visible(job.spec.account, job.user))
      continue;
    int64_t from = std::max(since, ToUnixMillis(*job.start_time)), to = std::min(until, now);
    if (to <= from)
      continue;
    const NodeRecord* node = nodes_.Find(job.allocation.front().node);
    std::string type = node == nullptr ? "" : node->node.gpu_type;
    double cost = node == nullptr ? 1.0 : GpuCost(config_, type);
    sums[{job.spec.account, job.user, type}] +=
        core::NormalisedGpuSeconds(AllocatedGpus(job), cost, static_cast<double>(to - from)) /
        static_cast<double>(kHourMs);
  }
  std::vector<UsageRow> rows;
  rows.reserve(sums.size());
  for (const auto& [key, hours] : sums)
    rows.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), hours});
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Tokens.

Change ClusterState::RecordToken(const Principal& who, const std::string& token_id,
                                 const std::string& user) {
  Change change;
  events_.Add(change, "token.created", {{"token", token_id}, {"user", user}, {"by", who.user}});
  return change;
}

Result<Change> ClusterState::RevokeToken(const Principal& who, const std::string& token_id) {
  RETURN_IF_ERROR(Authorizer::Check(who, Authorizer::Action::kRevokeToken));
  if (token_id.rfind("tok_", 0) != 0 || token_id.size() > 64) {
    return Status::InvalidArgument("not a token id", "id");
  }
  Change change;
  revoked_.insert(token_id);
  change.batch.Put(state::Family::kTokens, token_id, "revoked");
  events_.Add(change, "token.revoked", {{"token", token_id}, {"by", who.user}});
  return change;
}

// ---------------------------------------------------------------------------------------------
// Scheduling.

core::Snapshot ClusterState::BuildSnapshot() const {
  return server::BuildSnapshot({config_, policy_, accounts_, nodes_, jobs_, usage_,
                                applier_.recent_preemptions(), run_times_},
                               clock_.Now());
}

Change ClusterState::ApplyPlan(const core::Snapshot& snapshot, const core::Plan& plan) {
  Change change = applier_.Apply(snapshot, plan, clock_.Now());
  reasons_.Update(plan, jobs_, events_, change);
  return change;
}

}  // namespace gsched::server
