#include "scheduler/server/cluster_state.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <deque>
#include <future>
#include <map>
#include <set>
#include <thread>
#include <tuple>

#include "config/policy_from_config.h"
#include "scheduler/api/array_spec.h"
#include "scheduler/api/codec.h"
#include "scheduler/api/decode.h"
#include "scheduler/api/json.h"
#include "scheduler/common/quantity.h"
#include "scheduler/server/stored_job.h"
#include "scheduler/state/store.h"

namespace gsched::server {
namespace json = boost::json;
using api::JobState;

namespace {

std::string AccountKey(const std::string& account, const std::string& user) {
  return account + '\x1f' + user;
}

// A node as stored: its wire form plus what only the scheduler keeps (`state_before_down`, so
// that a drained node that was down when the scheduler restarted comes back drained).
std::string StoredNode(const NodeRecord& rec) {
  json::value v = api::Encode(rec.node);
  v.as_object()["state_before_down"] = api::ToString(rec.state_before_down);
  return json::serialize(v);
}

std::string Encoded(const json::value& v) {
  return json::serialize(v);
}

// `u/<user>/<id>` and `a/<account>/<id>` in the `job_index` family. Neither names may contain '/'
// (their charsets), so a prefix holds exactly one user's or account's jobs, in id order.
std::string IndexPrefix(char kind, std::string_view name) {
  std::string p;
  p.reserve(name.size() + 3);
  p += kind;
  p += '/';
  p += name;
  p += '/';
  return p;
}
std::string IndexKey(char kind, std::string_view name, uint64_t id) {
  return IndexPrefix(kind, name) + state::U64Key(id);
}
void PutJobIndex(state::WriteBatch& batch, const api::Job& job) {
  batch.Put(state::Family::kJobIndex, IndexKey('u', job.user, job.id), "");
  batch.Put(state::Family::kJobIndex, IndexKey('a', job.spec.account, job.id), "");
}
constexpr std::string_view kJobIndexBuiltKey = "job_index_built";

bool IsActive(JobState s) {
  return s == JobState::kStarting || s == JobState::kRunning;
}

// The usage ledger shares the `usage` family with the per-account fair-share entries, under keys
// `!ledger/<unix hour, 10 digits>/<job, 20 digits>/<attempt>`. Account names begin with one of
// `A-Z a-z 0-9 . _ -`, all above '!', so the ledger sorts before every account entry and loading
// the accounts' entries starts at `kFirstAccountKey`, past the whole ledger.
constexpr std::string_view kLedgerPrefix = "!ledger/";
constexpr std::string_view kFirstAccountKey = "-";
static_assert(kLedgerPrefix < kFirstAccountKey);
constexpr int64_t kHourMs = 3'600'000;

std::string LedgerKey(int64_t hour, uint64_t job, uint32_t attempt) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "!ledger/%010lld/%020llu/%u", static_cast<long long>(hour),
                static_cast<unsigned long long>(job), attempt);
  return buf;
}
std::string LedgerHourKey(int64_t hour) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "!ledger/%010lld/", static_cast<long long>(hour));
  return buf;
}

// Stored job records decoded per chunk on start-up.
constexpr size_t kLoadChunk = 4096;

// A stored job: its id and state, and for an active job its whole record; or, for a record that
// does not decode, why, with its bytes (to be quarantined).
struct StoredJob {
  uint64_t id = 0;
  JobState state = JobState::kPending;
  std::optional<JobRecord> record;
  std::optional<std::string> error;
  std::string key, value;
};

// Decodes stored job records (any thread). A finished job only has its state read: dependencies
// need no more of it, and history can be large.
std::vector<StoredJob> DecodeStoredJobs(std::vector<std::pair<std::string, std::string>> raw) {
  std::vector<StoredJob> out;
  out.reserve(raw.size());
  for (auto& [key, value] : raw) {
    StoredJob j;
    auto id = state::ParseU64Key(key);
    auto stored = id.ok() ? DecodeStoredJob(key, value, StoredJobDetail::kStateIfFinished)
                          : Result<StoredJobRecord>(Status::Internal(
                                "a job record's key is not a job id: " + id.status().ToString()));
    if (!stored.ok()) {
      j.id = id.value_or(0);
      j.error = stored.status().ToString();
      j.key = std::move(key);
      j.value = std::move(value);
      out.push_back(std::move(j));
      continue;
    }
    j.id = *id;
    j.state = stored->job.state;
    if (!api::IsTerminal(j.state)) {
      JobRecord rec;
      rec.job = std::move(stored->job);
      rec.last_checkpoint = stored->checkpoint;
      rec.runs_as_preemptible = stored->preemptible;
      rec.gang = std::move(stored->gang);
      j.record = std::move(rec);
    }
    out.push_back(std::move(j));
  }
  return out;
}

// Hours of [from, to) that fall within a budget's period.
double HoursWithin(const api::Budget& b, Timestamp from, Timestamp to) {
  const Timestamp lo = std::max(from, b.start), hi = std::min(to, b.end);
  return hi > lo ? std::chrono::duration<double>(hi - lo).count() / 3600.0 : 0.0;
}

double Decay(const UsageEntry& u, Timestamp now, Duration half_life) {
  if (now <= u.at || half_life.count() <= 0)
    return u.value;
  double halves =
      static_cast<double>((now - u.at).count()) / static_cast<double>(half_life.count());
  return u.value * std::exp2(-halves);
}

json::object JobEventData(const api::Job& job) {
  return {{"job", job.id}, {"user", job.user}, {"account", job.spec.account}};
}

}  // namespace

ClusterState::ClusterState(const config::SchedulerConfig& config, const Clock& clock)
    : config_(config), clock_(clock), policy_(config::PolicyFromConfig(config)) {
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
  // (or a bit flip) must not brick the scheduler. `TakeQuarantine` hands them to the caller.
  auto quarantine = [&](state::Family family, std::string_view key, std::string_view value,
                        std::string why) {
    spdlog::error("quarantining the {} record {}: {}", state::FamilyName(family),
                  api::internal::Printable(key), why);
    quarantine_.push_back({family, std::string(key), std::string(value), std::move(why)});
    return true;
  };
  RETURN_IF_ERROR(store.Scan(state::Family::kAccounts, {}, {}, [&](auto key, auto value) {
    auto v = api::ParseJson(value);
    if (!v.ok())
      return quarantine(state::Family::kAccounts, key, value, v.status().ToString());
    auto a = api::DecodeAccount(*v);
    if (!a.ok())
      return quarantine(state::Family::kAccounts, key, value, a.status().ToString());
    if (a->name != key)
      return quarantine(state::Family::kAccounts, key, value, "stored under another name");
    accounts_[a->name] = std::move(a).value();
    return true;
  }));
  RETURN_IF_ERROR(
      store.Scan(state::Family::kUsage, kFirstAccountKey, {}, [&](auto key, auto value) {
        boost::system::error_code ec;
        json::value v = json::parse(value, ec);
        const json::object* o = ec ? nullptr : v.if_object();
        auto number = [&](const char* k) -> std::optional<double> {
          const json::value* x = o->if_contains(k);
          if (x == nullptr)
            return 0.0;
          if (!x->is_number())
            return std::nullopt;
          return x->to_number<double>();
        };
        std::optional<double> value_n, at_n, budget_n;
        if (o != nullptr) {
          value_n = number("value");
          at_n = number("at");
          budget_n = number("budget_used");
        }
        if (!value_n || !at_n || !budget_n)
          return quarantine(state::Family::kUsage, key, value, "malformed usage");
        UsageEntry u;
        u.value = *value_n;
        u.at = FromUnixMillis(static_cast<int64_t>(*at_n));
        usage_[std::string(key)] = u;
        if (o->contains("budget_used"))
          budget_used_[std::string(key)] = *budget_n;
        return true;
      }));
  RETURN_IF_ERROR(store.Scan(state::Family::kNodes, {}, {}, [&](auto key, auto value) {
    auto v = api::ParseJson(value);
    if (!v.ok())
      return quarantine(state::Family::kNodes, key, value, v.status().ToString());
    auto n = api::DecodeNode(*v);
    if (!n.ok())
      return quarantine(state::Family::kNodes, key, value, n.status().ToString());
    NodeRecord rec;
    rec.node = std::move(n).value();
    if (const auto* b = v->as_object().if_contains("state_before_down"); b && b->is_string()) {
      if (auto st = api::ParseEnum<api::NodeState>(b->get_string()))
        rec.state_before_down = *st;
    }
    // Nobody is connected after a restart; workers say hello again.
    rec.connected = false;
    rec.last_heartbeat = clock_.Now();
    nodes_[rec.node.name] = std::move(rec);
    return true;
  }));
  RETURN_IF_ERROR(store.Scan(state::Family::kTokens, {}, {}, [&](auto key, auto) {
    revoked_.insert(std::string(key));
    return true;
  }));
  if (auto next = store.Get(state::Family::kMeta, "next_job_id"); next.ok()) {
    // Garbage here costs nothing: the jobs' own ids raise the counter below.
    uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(next->data(), next->data() + next->size(), v);
    if (ec == std::errc() && ptr == next->data() + next->size())
      next_job_id_ = std::max<uint64_t>(v, 1);
    else
      spdlog::error("meta next_job_id is not a number; counting from the stored jobs");
  }
  // Jobs: the active ones come back into memory; finished ones only leave their final state,
  // which dependencies need. Decoding is most of a restart's work, so chunks of records are
  // decoded on other threads while this one reads on and applies finished chunks in id order.
  std::deque<std::future<std::vector<StoredJob>>> decoding;
  const size_t max_in_flight = std::max(2u, std::thread::hardware_concurrency());
  auto apply = [&](size_t keep) -> Status {
    while (decoding.size() > keep) {
      std::vector<StoredJob> chunk = decoding.front().get();
      decoding.pop_front();
      for (StoredJob& j : chunk) {
        next_job_id_ = std::max(next_job_id_, j.id + 1);
        if (j.error) {
          quarantine(state::Family::kJobs, j.key, j.value, *j.error);
          continue;
        }
        if (!j.record) {
          finished_states_[j.id] = j.state;
          continue;
        }
        if (j.state == JobState::kPending) {
          pending_.insert(pending_.end(), j.id);
          ++pending_per_user_[AccountKey(j.record->job.spec.account, j.record->job.user)];
        } else {
          running_.insert(running_.end(), j.id);
        }
        Remember(std::move(*j.record));
      }
    }
    return Status::Ok();
  };
  std::vector<std::pair<std::string, std::string>> raw;
  auto launch = [&] {
    decoding.push_back(std::async(std::launch::async, DecodeStoredJobs, std::move(raw)));
    raw = {};
    raw.reserve(kLoadChunk);
  };
  raw.reserve(kLoadChunk);
  Status applied = Status::Ok();
  RETURN_IF_ERROR(store.Scan(state::Family::kJobs, {}, {}, [&](auto key, auto value) {
    raw.emplace_back(key, value);
    if (raw.size() < kLoadChunk)
      return true;
    launch();
    applied = apply(max_in_flight);
    return applied.ok();
  }));
  if (!raw.empty())
    launch();
  if (applied.ok())
    applied = apply(0);
  for (auto& f : decoding)
    f.wait();  // After an error: let the decoders finish before their inputs go.
  if (!applied.ok())
    return Status::Internal("loading the state: " + applied.ToString());
  // What quarantined records leave dangling is mended in memory, never written: an account whose
  // parent is gone hangs below `root`, and a job's missing account is stood in for by an empty
  // one below `root` (no quota, one share) until an admin puts it back.
  for (auto& [name, a] : accounts_) {
    if (name != "root" && !accounts_.contains(a.parent)) {
      spdlog::error("account {}: parent '{}' is missing; placed below root", name, a.parent);
      a.parent = "root";
    }
  }
  for (const auto& [id, rec] : jobs_) {
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
  // Allocations of running jobs hold their GPUs on the nodes they run on.
  for (uint64_t id : running_) {
    const JobRecord& rec = jobs_.at(id);
    HoldAllocation(rec);
    if (rec.job.array_job_id)
      ++array_running_[*rec.job.array_job_id];
  }
  // The event log continues after its last entry. Only its newest `RecentEventsCapacity()`
  // entries come back into memory, for watch replays (reading all of a long log would make
  // restarts slow); its first key is where pruning goes on from.
  ASSIGN_OR_RETURN(std::optional<std::string> last_key, store.LastKey(state::Family::kEvents));
  std::optional<uint64_t> first_seq;
  RETURN_IF_ERROR(store.Scan(state::Family::kEvents, {}, {}, [&](auto key, auto) {
    if (auto seq = state::ParseU64Key(key); seq.ok())
      first_seq = seq.value();
    return false;
  }));
  uint64_t last_seq = last_key ? state::ParseU64Key(*last_key).value_or(0) : 0;
  uint64_t capacity = RecentEventsCapacity();
  uint64_t first_recent = last_seq > capacity ? last_seq - capacity + 1 : 0;
  RETURN_IF_ERROR(
      store.Scan(state::Family::kEvents, state::U64Key(first_recent), {}, [&](auto, auto value) {
        boost::system::error_code ec;
        json::value v = json::parse(value, ec);
        if (!ec) {
          auto e = api::DecodeEvent(v);
          if (e.ok()) {
            recent_events_.push_back(std::move(e).value());
            if (recent_events_.size() > capacity)
              recent_events_.pop_front();
          }
        }
        return true;
      }));
  if (last_key) {
    next_seq_ = last_seq + 1;
    first_event_seq_ = first_seq.value_or(next_seq_);
  } else {
    first_event_seq_ = next_seq_;
  }
  spdlog::info(
      "loaded {} pending and {} running jobs, {} accounts, {} nodes; next job id {}, next event {}",
      pending_.size(), running_.size(), accounts_.size(), nodes_.size(), next_job_id_, next_seq_);
  return Status::Ok();
}

std::string ClusterState::QuarantineKey(state::Family family, std::string_view key) {
  return "quarantine/" + std::string(state::FamilyName(family)) + "/" + std::string(key);
}

Status ClusterState::BuildJobIndex(state::Store& store) const {
  if (store.Get(state::Family::kMeta, std::string(kJobIndexBuiltKey)).ok())
    return Status::Ok();
  auto start = std::chrono::steady_clock::now();
  state::WriteBatch batch;
  size_t indexed = 0;
  Status written = Status::Ok();
  Status read =
      store.Scan(state::Family::kJobs, {}, {}, [&](std::string_view key, std::string_view value) {
        auto stored = DecodeStoredJob(key, value);
        if (!stored.ok())
          return true;  // Quarantined by `Load`, or left for it.
        PutJobIndex(batch, stored->job);
        ++indexed;
        if (batch.size() >= 20'000) {
          written = store.Commit(std::move(batch));
          batch = state::WriteBatch();
        }
        return written.ok();
      });
  RETURN_IF_ERROR(read);
  RETURN_IF_ERROR(written);
  batch.Put(state::Family::kMeta, std::string(kJobIndexBuiltKey), "1");
  RETURN_IF_ERROR(store.Commit(std::move(batch)));
  if (indexed > 0) {
    spdlog::info("indexed {} stored jobs by user and account in {:.1f} s", indexed,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return Status::Ok();
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
// Helpers.

void ClusterState::AddEvent(Change& change, std::string type, json::object data) {
  api::Event e;
  e.seq = next_seq_++;
  e.type = std::move(type);
  e.time = clock_.Now();
  e.data = std::move(data);
  change.batch.Put(state::Family::kEvents, state::U64Key(e.seq), Encoded(api::Encode(e)));
  recent_events_.push_back(e);
  if (recent_events_.size() > RecentEventsCapacity())
    recent_events_.pop_front();
  change.events.push_back(std::move(e));
}

size_t ClusterState::RecentEventsCapacity() const {
  return static_cast<size_t>(config_.watch.memory_events);
}

void ClusterState::PersistJob(Change& change, const JobRecord& record) {
  change.batch.Put(
      state::Family::kJobs, state::U64Key(record.job.id),
      EncodeStoredJob(record.job, record.last_checkpoint, record.runs_as_preemptible, record.gang));
}

void ClusterState::SetJobState(Change& change, JobRecord& record, JobState to, std::string why) {
  JobState from = record.job.state;
  record.job.state = to;
  json::object data = JobEventData(record.job);
  data["from"] = std::string(api::ToString(from));
  data["to"] = std::string(api::ToString(to));
  data["attempt"] = record.job.attempt;
  if (!why.empty())
    data["reason"] = std::move(why);
  if (!record.job.allocation.empty())
    data["node"] = record.job.allocation.front().node;
  if (record.job.exit_code)
    data["exit_code"] = *record.job.exit_code;
  AddEvent(change, "job.state", std::move(data));
}

void ClusterState::SetNodeState(Change& change, NodeRecord& rec, api::NodeState to,
                                std::string reason, std::string by) {
  api::NodeState from = rec.node.state;
  // Remember what an admin asked for across an outage: a drained node that comes back stays
  // drained.
  if (to == api::NodeState::kDown && from != api::NodeState::kDown)
    rec.state_before_down = from;
  rec.node.state = to;
  rec.node.state_reason = to == api::NodeState::kUp ? "" : reason;
  change.batch.Put(state::Family::kNodes, rec.node.name, StoredNode(rec));
  json::object data{{"node", rec.node.name},
                    {"from", std::string(api::ToString(from))},
                    {"to", std::string(api::ToString(to))},
                    {"reason", std::move(reason)}};
  if (!by.empty())
    data["by"] = std::move(by);
  AddEvent(change, "node.state", std::move(data));
  change.reschedule = true;
}

void ClusterState::NodeBackFromDown(Change& change, NodeRecord& rec, std::string reason) {
  api::NodeState to = rec.state_before_down;
  if (to == api::NodeState::kDown || to == api::NodeState::kUnhealthy)
    to = api::NodeState::kUp;
  if (to == api::NodeState::kDraining && rec.used_gpus == 0)
    to = api::NodeState::kDrained;
  SetNodeState(change, rec, to, std::move(reason));
}

double ClusterState::GpuCost(const std::string& type) const {
  const auto* t = config::FindGpuType(config_.gpu_types, type);
  return t ? t->cost : 1.0;
}

bool ClusterState::IsInSubtree(const std::string& account, const std::string& root) const {
  std::string cur = account;
  for (int depth = 0; depth < 64 && !cur.empty(); ++depth) {
    if (cur == root)
      return true;
    auto it = accounts_.find(cur);
    if (it == accounts_.end())
      return false;
    cur = it->second.parent;
  }
  return false;
}

bool ClusterState::MayManageAccount(const Principal& who, const std::string& account) const {
  switch (who.role) {
    case api::Role::kAdmin:
      return true;
    case api::Role::kCoordinator:
      return std::any_of(who.accounts.begin(), who.accounts.end(),
                         [&](const std::string& a) { return IsInSubtree(account, a); });
    case api::Role::kUser:
      return std::find(who.accounts.begin(), who.accounts.end(), account) != who.accounts.end();
    case api::Role::kWorker:
      return false;
  }
  return false;
}

bool ClusterState::MaySeeJob(const Principal& who, const api::Job& job) const {
  if (who.role == api::Role::kAdmin)
    return true;
  if (who.role == api::Role::kCoordinator)
    return MayManageAccount(who, job.spec.account);
  return who.role == api::Role::kUser && job.user == who.user;
}

Duration ClusterState::EffectiveTimeLimit(const api::JobSpec& spec) const {
  const auto& limits = config_.priority.Limits(spec.priority_class);
  if (!spec.time_limit_s)
    return limits.default_time_limit;
  return std::min<Duration>(Seconds(*spec.time_limit_s), limits.max_time_limit);
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
  if (!MayManageAccount(who, spec.account)) {
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
    if (auto it = jobs_.find(dep); it != jobs_.end()) {
      visible = MaySeeJob(who, it->second.job);
    } else if (finished_states_.contains(dep)) {
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
  if (who.role == api::Role::kWorker)
    return Status::PermissionDenied("workers may not submit jobs");
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
    auto it = pending_per_user_.find(AccountKey(account, who.user));
    int64_t have = it == pending_per_user_.end() ? 0 : it->second;
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
    rec.job.id = next_job_id_++;
    rec.job.spec = spec;
    rec.job.user = who.user;
    rec.job.state = JobState::kPending;
    rec.job.submit_time = now;
    rec.job.array_job_id = array_id;
    rec.job.array_index = array_index;
    PersistJob(change, rec);
    PutJobIndex(change.batch, rec.job);
    json::object data = JobEventData(rec.job);
    data["name"] = spec.name;
    data["gpus"] = int64_t{spec.nodes} * spec.gpus_per_node;
    AddEvent(change, "job.submitted", std::move(data));
    ids->push_back(rec.job.id);
    pending_.insert(rec.job.id);
    ++pending_per_user_[AccountKey(spec.account, who.user)];
    uint64_t id = rec.job.id;
    Remember(std::move(rec));
    return id;
  };
  for (size_t i = 0; i < specs.size(); ++i) {
    if (!specs[i].array) {
      add(specs[i], std::nullopt, std::nullopt);
      continue;
    }
    uint64_t array_id = next_job_id_;
    for (uint32_t index : arrays[i].indices)
      add(specs[i], array_id, index);
  }
  change.batch.Put(state::Family::kMeta, "next_job_id", std::to_string(next_job_id_));
  change.reschedule = true;
  return change;
}

void ClusterState::Remember(JobRecord record) {
  const uint64_t id = record.job.id;
  live_by_user_[record.job.user].insert(id);
  live_by_account_[record.job.spec.account].insert(id);
  if (record.job.array_job_id) {
    ArrayExtent& a = arrays_[*record.job.array_job_id];
    a.last = std::max(a.last, id);
    ++a.live;
  }
  jobs_[id] = std::move(record);
}

void ClusterState::Forget(uint64_t id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end())
    return;
  const api::Job& job = it->second.job;
  if (const auto& array = job.array_job_id) {
    auto a = arrays_.find(*array);
    if (a != arrays_.end() && --a->second.live == 0)
      arrays_.erase(a);
  }
  for (auto [index, key] :
       {std::pair{&live_by_user_, &job.user}, {&live_by_account_, &job.spec.account}}) {
    auto live = index->find(*key);
    if (live != index->end() && live->second.erase(id) && live->second.empty())
      index->erase(live);
  }
  jobs_.erase(it);
}

std::vector<uint64_t> ClusterState::LiveArrayTasks(uint64_t id) const {
  std::vector<uint64_t> tasks;
  auto a = arrays_.find(id);
  if (a == arrays_.end())
    return tasks;
  for (uint64_t t = id; t <= a->second.last && tasks.size() < a->second.live; ++t) {
    auto it = jobs_.find(t);
    if (it != jobs_.end() && it->second.job.array_job_id == id)
      tasks.push_back(t);
  }
  return tasks;
}

Result<Change> ClusterState::Cancel(const Principal& who, uint64_t id) {
  // An array's id (its first task's) cancels every task of the array that is still alive: the
  // walk is over the array's own ids, not over every job.
  std::vector<uint64_t> targets = LiveArrayTasks(id);
  if (targets.empty())
    targets.push_back(id);
  Change change;
  Timestamp now = clock_.Now();
  size_t acted = 0;
  for (uint64_t jid : targets) {
    auto it = jobs_.find(jid);
    if (it == jobs_.end()) {
      if (finished_states_.contains(jid)) {
        if (targets.size() == 1)
          return Status::FailedPrecondition("job " + std::to_string(jid) + " has already ended");
        continue;
      }
      return Status::NotFound("no job " + std::to_string(jid));
    }
    JobRecord& rec = it->second;
    if (!MaySeeJob(who, rec.job))
      return Status::NotFound("no job " + std::to_string(jid));
    if (who.role == api::Role::kUser && rec.job.user != who.user) {
      return Status::PermissionDenied("job " + std::to_string(jid) + " belongs to another user");
    }
    ++acted;
    if (rec.job.state == JobState::kPending) {
      pending_.erase(jid);
      --pending_per_user_[AccountKey(rec.job.spec.account, rec.job.user)];
      rec.job.end_time = now;
      rec.job.reason.reset();
      SetJobState(change, rec, JobState::kCancelled, "cancelled by " + who.user);
      PersistJob(change, rec);
      finished_states_[jid] = JobState::kCancelled;
      Forget(jid);
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
    AddEvent(change, "job.cancel_requested", std::move(data));
  }
  if (acted == 0)
    return Status::FailedPrecondition("job " + std::to_string(id) + " has already ended");
  change.reschedule = true;
  return change;
}

namespace {
// Seniority of a hold's placer.
int HoldRank(api::Role role) {
  switch (role) {
    case api::Role::kAdmin:
      return 3;
    case api::Role::kCoordinator:
      return 2;
    case api::Role::kUser:
    case api::Role::kWorker:
      return 1;
  }
  return 1;
}
}  // namespace

Result<Change> ClusterState::Hold(const Principal& who, uint64_t id, bool hold) {
  // An array's id (its first task's) holds or releases every task of the array that is still
  // pending, as `cancel` does; tasks that already started are left alone.
  std::vector<uint64_t> tasks = LiveArrayTasks(id);
  bool array = !tasks.empty();
  if (!array)
    tasks.push_back(id);
  // Checked for every task before any changes: a batch is all or nothing.
  for (uint64_t jid : tasks) {
    auto it = jobs_.find(jid);
    if (hold || it == jobs_.end() || !it->second.job.held || !it->second.job.held_by_role ||
        !MaySeeJob(who, it->second.job))
      continue;
    const api::Job& job = it->second.job;
    if (HoldRank(*job.held_by_role) > HoldRank(who.role)) {
      return Status::PermissionDenied(
          "job " + std::to_string(jid) + " was held by " +
          std::string(api::ToString(*job.held_by_role)) + " '" + job.held_by + "'; only " +
          (*job.held_by_role == api::Role::kAdmin ? "an admin" : "a coordinator or an admin") +
          " may release it");
    }
  }
  Change change;
  size_t pending = 0;
  for (uint64_t jid : tasks) {
    auto it = jobs_.find(jid);
    if (it == jobs_.end()) {
      if (finished_states_.contains(jid))
        return Status::FailedPrecondition("job " + std::to_string(jid) + " has already ended");
      return Status::NotFound("no job " + std::to_string(jid));
    }
    JobRecord& rec = it->second;
    if (!MaySeeJob(who, rec.job))
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
    int placed = rec.job.held && rec.job.held_by_role ? HoldRank(*rec.job.held_by_role) : 0;
    if (rec.job.held == hold && (!hold || HoldRank(who.role) <= placed))
      continue;
    rec.job.held = hold;
    rec.job.held_by = hold ? who.user : "";
    rec.job.held_by_role = hold ? std::optional<api::Role>(who.role) : std::nullopt;
    PersistJob(change, rec);
    json::object data = JobEventData(rec.job);
    data["held"] = hold;
    data["by"] = who.user;
    AddEvent(change, hold ? "job.held" : "job.released", std::move(data));
    change.reschedule = true;
  }
  if (pending == 0)
    return Status::FailedPrecondition("no task of array " + std::to_string(id) + " is pending");
  return change;
}

Result<api::Job> ClusterState::GetJob(const Principal& who, uint64_t id,
                                      const state::Store& store) const {
  if (auto it = jobs_.find(id); it != jobs_.end()) {
    if (!MaySeeJob(who, it->second.job))
      return Status::NotFound("no job " + std::to_string(id));
    return WithReason(it->second.job);
  }
  auto raw = store.Get(state::Family::kJobs, state::U64Key(id));
  if (!raw.ok())
    return Status::NotFound("no job " + std::to_string(id));
  auto stored = DecodeStoredJob(state::U64Key(id), *raw);
  if (!stored.ok())
    return stored.status();
  if (!MaySeeJob(who, stored->job))
    return Status::NotFound("no job " + std::to_string(id));
  return std::move(stored->job);
}

api::Job ClusterState::WithReason(const api::Job& job) const {
  api::Job out = job;
  if (job.state == JobState::kStarting) {
    auto rec = jobs_.find(job.id);
    if (rec != jobs_.end() && !rec->second.starting_message.empty())
      out.reason = api::Reason{api::ReasonCode::kImagePull, rec->second.starting_message, {}, {}};
    return out;
  }
  if (job.state != JobState::kPending)
    return out;
  auto it = std::lower_bound(
      reasons_.begin(), reasons_.end(), job.id,
      [](const core::PendingReason& r, uint64_t id) { return r.job.value() < id; });
  if (it == reasons_.end() || it->job.value() != job.id || it->explanation >= explanations_.size())
    return out;
  core::Explanation e = core::ExplanationOf(explanations_, *it);
  api::Reason reason;
  reason.code = e.code;
  reason.message = std::move(e.message);
  for (auto& d : e.details)
    std::visit([&](auto& v) { reason.details[d.key] = std::move(v); }, d.value);
  reason.estimated_start = it->estimated_start;
  out.reason = std::move(reason);
  return out;
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
    return MaySeeJob(who, j);
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
    const auto& live_index = by_user ? live_by_user_ : live_by_account_;
    const std::string& name = by_user ? user : filter.account;
    if (!wants_finished) {
      auto live = live_index.find(name);
      if (live == live_index.end())
        return out;
      for (auto it = live->second.upper_bound(filter.after);
           it != live->second.end() && out.size() < filter.limit; ++it) {
        const api::Job& j = jobs_.at(*it).job;
        if (matches(j))
          out.push_back(WithReason(j));
      }
      return out;
    }
    const std::string prefix = IndexPrefix(by_user ? 'u' : 'a', name);
    std::string end = prefix;
    end.back() = '/' + 1;
    store
        .Scan(state::Family::kJobIndex, prefix + state::U64Key(filter.after + 1), end,
              [&](std::string_view key, std::string_view) {
                auto id = state::ParseU64Key(key.substr(prefix.size()));
                if (!id.ok())
                  return true;
                if (auto it = jobs_.find(*id); it != jobs_.end()) {
                  if (matches(it->second.job))
                    out.push_back(WithReason(it->second.job));
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
    auto p = want_pending ? pending_.upper_bound(filter.after) : pending_.end();
    auto r = want_running ? running_.upper_bound(filter.after) : running_.end();
    while (out.size() < filter.limit && (p != pending_.end() || r != running_.end())) {
      uint64_t id;
      if (r == running_.end() || (p != pending_.end() && *p < *r)) {
        id = *p++;
      } else {
        id = *r++;
      }
      const api::Job& j = jobs_.at(id).job;
      if (matches(j))
        out.push_back(WithReason(j));
    }
    return out;
  }
  // The store holds every job in id order; active ones are read from memory for freshness.
  store
      .Scan(state::Family::kJobs, state::U64Key(filter.after + 1), {},
            [&](std::string_view key, std::string_view value) {
              uint64_t id = *state::ParseU64Key(key);
              if (auto it = jobs_.find(id); it != jobs_.end()) {
                if (matches(it->second.job))
                  out.push_back(WithReason(it->second.job));
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
// Accounts.

Result<Change> ClusterState::PutAccount(const Principal& who, api::Account account) {
  if (who.role != api::Role::kAdmin)
    return Status::PermissionDenied("only admins change accounts");
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
    if (IsInSubtree(account.parent, account.name)) {
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
  change.batch.Put(state::Family::kAccounts, account.name, Encoded(api::Encode(account)));
  json::object data;
  data["account"] = account.name;
  data["by"] = who.user;
  data["created"] = !existed;
  data["spec"] = api::Encode(account);
  AddEvent(change, "account.quota", std::move(data));
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
  if (who.role == api::Role::kAdmin)
    return Accounts();
  std::vector<api::Account> out;
  if (who.role == api::Role::kWorker)
    return out;
  // Whole: a user's own accounts, a coordinator's subtrees. Outlines (no members, no budget):
  // the accounts below a user's own, and the ancestors of every one of them, so that the tree
  // and the quotas that bind a job can be read.
  auto whole = [&](const std::string& name) {
    return std::any_of(who.accounts.begin(), who.accounts.end(), [&](const std::string& a) {
      return who.role == api::Role::kCoordinator ? IsInSubtree(name, a) : name == a;
    });
  };
  auto below = [&](const std::string& name) {
    return std::any_of(who.accounts.begin(), who.accounts.end(),
                       [&](const std::string& a) { return IsInSubtree(name, a); });
  };
  auto above = [&](const std::string& name) {
    return std::any_of(who.accounts.begin(), who.accounts.end(),
                       [&](const std::string& a) { return IsInSubtree(a, name); });
  };
  for (const auto& [name, a] : accounts_) {
    if (whole(name)) {
      out.push_back(a);
    } else if (below(name) || above(name)) {
      api::Account outline = a;
      outline.users.reset();
      outline.budget.reset();
      out.push_back(std::move(outline));
    }
  }
  return out;
}

double ClusterState::UsageGpuHours(const std::string& account) const {
  Timestamp now = clock_.Now();
  double seconds = 0;
  if (auto it = usage_.find(account); it != usage_.end())
    seconds = Decay(it->second, now, policy_.half_life);
  for (uint64_t id : running_) {
    const JobRecord& rec = jobs_.at(id);
    if (rec.job.spec.account != account || !rec.job.start_time)
      continue;
    double gpus = 0;
    for (const auto& a : rec.job.allocation)
      gpus += static_cast<double>(a.gpus.size());
    auto node = nodes_.find(rec.job.allocation.empty() ? "" : rec.job.allocation.front().node);
    double cost = node == nodes_.end() ? 1.0 : GpuCost(node->second.node.gpu_type);
    seconds += gpus * cost * std::chrono::duration<double>(now - *rec.job.start_time).count();
  }
  return seconds / 3600.0;
}

// ---------------------------------------------------------------------------------------------
// Attempts, usage and allocations.

void ClusterState::HoldAllocation(const JobRecord& record) {
  for (const auto& a : record.job.allocation) {
    auto it = nodes_.find(a.node);
    if (it == nodes_.end())
      continue;
    for (int g : a.gpus)
      it->second.used_gpus |= uint64_t{1} << g;
    it->second.jobs.insert(record.job.id);
    if (record.job.rendezvous)
      it->second.rendezvous_in_use.insert(record.job.rendezvous->port);
  }
}

void ClusterState::ReleaseAllocation(const JobRecord& record) {
  for (const auto& a : record.job.allocation) {
    auto it = nodes_.find(a.node);
    if (it == nodes_.end())
      continue;
    for (int g : a.gpus)
      it->second.used_gpus &= ~(uint64_t{1} << g);
    it->second.jobs.erase(record.job.id);
    if (record.job.rendezvous)
      it->second.rendezvous_in_use.erase(record.job.rendezvous->port);
  }
}

std::optional<api::Rendezvous> ClusterState::ChooseRendezvous(const std::vector<std::string>& nodes,
                                                              uint64_t job,
                                                              uint32_t attempt) const {
  if (nodes.empty())
    return std::nullopt;
  auto rank0 = nodes_.find(nodes.front());
  if (rank0 == nodes_.end())
    return std::nullopt;
  const NodeRecord& first = rank0->second;
  const api::PortRange range = first.rendezvous_ports;
  const uint64_t size = static_cast<uint64_t>(range.last - range.first) + 1;
  // Start at a place of the range given by the attempt rather than at its first free port: a
  // port that the previous attempt left moments ago (still in TIME_WAIT on some node) is then the
  // last to be chosen again, not the first.
  const uint64_t start = (job * 7919 + attempt) % size;
  for (uint64_t i = 0; i < size; ++i) {
    const auto port = static_cast<int32_t>(range.first + (start + i) % size);
    bool free = std::none_of(nodes.begin(), nodes.end(), [&](const std::string& name) {
      auto it = nodes_.find(name);
      return it != nodes_.end() && it->second.rendezvous_in_use.contains(port);
    });
    if (free)
      return api::Rendezvous{first.node.address.empty() ? first.node.name : first.node.address,
                             port};
  }
  return std::nullopt;
}

void ClusterState::ChargeUsage(Change& change, const JobRecord& record, Timestamp end,
                               bool preempted) {
  if (!record.job.start_time || record.job.allocation.empty())
    return;
  double gpus = 0;
  for (const auto& a : record.job.allocation)
    gpus += static_cast<double>(a.gpus.size());
  auto node = nodes_.find(record.job.allocation.front().node);
  double cost = node == nodes_.end() ? 1.0 : GpuCost(node->second.node.gpu_type);
  double seconds =
      std::max(0.0, std::chrono::duration<double>(end - *record.job.start_time).count());
  const double rate = preempted ? policy_.preemption.usage_charge : 1.0;
  double charge = gpus * cost * seconds * rate;
  const std::string& account = record.job.spec.account;
  UsageEntry& u = usage_[account];
  u.value = Decay(u, end, policy_.half_life) + charge;
  u.at = end;
  json::object o{{"value", u.value},
                 {"at", ToUnixMillis(u.at)},
                 {"budget_used",
                  ChargeBudgets(account, gpus * cost * rate, *record.job.start_time, end, change)}};
  change.batch.Put(state::Family::kUsage, account, json::serialize(o));
  // The ledger: the attempt's charge split over the hours it spanned.
  int64_t from = ToUnixMillis(*record.job.start_time), to = ToUnixMillis(end);
  std::string type = node == nodes_.end() ? "" : node->second.node.gpu_type;
  for (int64_t hour = from / kHourMs; from < to && hour * kHourMs < to; ++hour) {
    int64_t overlap = std::min(to, (hour + 1) * kHourMs) - std::max(from, hour * kHourMs);
    double hours = charge * static_cast<double>(overlap) / static_cast<double>(to - from) / 3600.0;
    json::object row{
        {"account", account}, {"user", record.job.user}, {"gpu_type", type}, {"gpu_hours", hours}};
    change.batch.Put(state::Family::kUsage, LedgerKey(hour, record.job.id, record.job.attempt),
                     json::serialize(row));
  }
}

double ClusterState::ChargeBudgets(const std::string& account, double normalised_gpus,
                                   Timestamp from, Timestamp to, Change& change) {
  double own = 0;
  std::string name = account;
  for (size_t steps = 0; !name.empty() && steps <= accounts_.size(); ++steps) {
    auto acc = accounts_.find(name);
    if (acc == accounts_.end())
      break;
    double& used = budget_used_[name];
    if (acc->second.budget)
      used += normalised_gpus * HoursWithin(*acc->second.budget, from, to);
    if (name == account) {
      own = used;
    } else if (acc->second.budget) {
      // An ancestor's record keeps its own fair-share usage as it is.
      const UsageEntry& u = usage_[name];
      json::object o{{"value", u.value}, {"at", ToUnixMillis(u.at)}, {"budget_used", used}};
      change.batch.Put(state::Family::kUsage, name, json::serialize(o));
    }
    name = acc->second.parent;
  }
  return own;
}

Result<std::vector<UsageRow>> ClusterState::UsageReport(const Principal& who,
                                                        const UsageQuery& query,
                                                        const state::Store& store) const {
  auto visible = [&](const std::string& account, const std::string& user) {
    if (!query.account.empty() && !IsInSubtree(account, query.account))
      return false;
    switch (who.role) {
      case api::Role::kAdmin:
        return true;
      case api::Role::kCoordinator:
        return MayManageAccount(who, account);
      case api::Role::kUser:
        return user == who.user;
      case api::Role::kWorker:
        return false;
    }
    return false;
  };
  std::map<std::tuple<std::string, std::string, std::string>, double> sums;
  int64_t since = ToUnixMillis(query.since), until = ToUnixMillis(query.until);
  if (until <= since)
    return std::vector<UsageRow>();
  // Ended attempts, hour by hour.
  int64_t first = since / kHourMs, last = (until + kHourMs - 1) / kHourMs;
  Status read =
      store.Scan(state::Family::kUsage, LedgerHourKey(first), LedgerHourKey(last),
                 [&](std::string_view, std::string_view value) {
                   boost::system::error_code ec;
                   json::value v = json::parse(value, ec);
                   if (ec || !v.is_object())
                     return true;
                   const json::object& o = v.get_object();
                   auto str = [&](std::string_view k) {
                     const json::value* f = o.if_contains(k);
                     return f && f->is_string() ? std::string(f->get_string()) : std::string();
                   };
                   const json::value* h = o.if_contains("gpu_hours");
                   std::string account = str("account"), user = str("user");
                   if (h && h->is_number() && visible(account, user))
                     sums[{account, user, str("gpu_type")}] += h->to_number<double>();
                   return true;
                 });
  if (!read.ok())
    return Status::Unavailable("cannot read the usage ledger: " + read.ToString());
  // Running attempts so far, exactly within the window.
  int64_t now = ToUnixMillis(clock_.Now());
  for (uint64_t id : running_) {
    const api::Job& job = jobs_.at(id).job;
    if (!job.start_time || job.allocation.empty() || !visible(job.spec.account, job.user))
      continue;
    int64_t from = std::max(since, ToUnixMillis(*job.start_time)), to = std::min(until, now);
    if (to <= from)
      continue;
    double gpus = 0;
    for (const auto& a : job.allocation)
      gpus += static_cast<double>(a.gpus.size());
    auto node = nodes_.find(job.allocation.front().node);
    std::string type = node == nodes_.end() ? "" : node->second.node.gpu_type;
    double cost = node == nodes_.end() ? 1.0 : GpuCost(type);
    sums[{job.spec.account, job.user, type}] +=
        gpus * cost * static_cast<double>(to - from) / static_cast<double>(kHourMs);
  }
  std::vector<UsageRow> rows;
  rows.reserve(sums.size());
  for (const auto& [key, hours] : sums)
    rows.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), hours});
  return rows;
}

void ClusterState::FinishAttempt(Change& change, JobRecord& rec, JobState end_state,
                                 std::optional<int32_t> exit_code,
                                 std::optional<std::string> signal, std::string message) {
  Timestamp now = clock_.Now();
  uint64_t id = rec.job.id;
  rec.starting_message.clear();
  ReleaseAllocation(rec);
  for (const auto& a : rec.job.allocation) {
    auto n = nodes_.find(a.node);
    if (n != nodes_.end() && n->second.node.state == api::NodeState::kDraining &&
        n->second.used_gpus == 0) {
      SetNodeState(change, n->second, api::NodeState::kDrained, n->second.node.state_reason);
    }
  }
  ChargeUsage(change, rec, now, end_state == JobState::kPreempted);
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
  running_.erase(id);
  if (rec.job.array_job_id)
    --array_running_[*rec.job.array_job_id];
  rec.terminating_deadline.reset();
  rec.terminating_reason.clear();
  rec.job.rendezvous.reset();
  rec.gang = {};
  bool requeue = (end_state == JobState::kPreempted || end_state == JobState::kNodeFail) &&
                 rec.job.spec.requeue;
  if (requeue) {
    SetJobState(change, rec, JobState::kPending,
                message.empty() ? "requeued" : message + "; requeued");
    rec.job.allocation.clear();
    rec.job.start_time.reset();
    rec.job.borrowing = false;
    rec.runs_as_preemptible = false;
    pending_.insert(id);
    ++pending_per_user_[AccountKey(rec.job.spec.account, rec.job.user)];
    PersistJob(change, rec);
  } else {
    rec.job.end_time = now;
    SetJobState(change, rec, end_state, message);
    PersistJob(change, rec);
    finished_states_[id] = end_state;
    Forget(id);
  }
  change.reschedule = true;
}

// ---------------------------------------------------------------------------------------------
// Workers and nodes.

bool ClusterState::AttemptPlacedOn(uint64_t job, uint32_t attempt, const std::string& node) const {
  auto it = jobs_.find(job);
  return it != jobs_.end() && IsActive(it->second.job.state) && it->second.job.attempt == attempt &&
         std::any_of(it->second.job.allocation.begin(), it->second.job.allocation.end(),
                     [&](const api::Allocation& a) { return a.node == node; });
}

Result<Change> ClusterState::WorkerHello(const Principal& who, const api::Hello& hello) {
  if (who.role != api::Role::kWorker) {
    return Status::PermissionDenied("only worker tokens may connect as a worker");
  }
  if (hello.node.empty())
    return Status::InvalidArgument("required", "node");
  // A token speaks only for the nodes it names: a stolen one cannot say hello as another node
  // (which would fail that node's jobs and take its launches). Refused before anything changes.
  if (!std::any_of(who.nodes.begin(), who.nodes.end(), [&](const std::string& pattern) {
        return api::NodePatternCovers(pattern, hello.node);
      })) {
    return Status(StatusCode::kPermissionDenied,
                  "token " + who.token_id + " may not serve node '" + hello.node + "'", "node");
  }
  if (hello.gpus.size() > 64)
    return Status::InvalidArgument("at most 64 GPUs per node", "gpus");
  Change change;
  Timestamp now = clock_.Now();
  NodeRecord& rec = nodes_[hello.node];
  bool is_new = rec.node.name.empty();
  rec.node.name = hello.node;
  rec.node.address = hello.address;
  rec.rendezvous_ports = hello.rendezvous_ports.value_or(api::kDefaultRendezvousPorts);
  rec.node.site = hello.site.empty() ? "default" : hello.site;
  rec.node.block = hello.block.empty() ? rec.node.site + "-default" : hello.block;
  rec.node.labels = hello.labels;
  rec.node.cpus = hello.cpus;
  rec.node.memory_mib = hello.memory_mib;
  rec.node.gpus = hello.gpus;
  rec.node.gpu_count = static_cast<int32_t>(hello.gpus.size());
  rec.node.gpu_type = hello.gpus.empty() ? "" : hello.gpus.front().type;
  rec.node.nvlink_pairs = hello.nvlink_pairs;
  rec.connected = true;
  rec.last_heartbeat = now;
  rec.node.last_heartbeat = now;
  // Unhealthy GPUs are left out of placement through their own health, not the node's state.
  if (is_new) {
    rec.node.state = api::NodeState::kDown;
    rec.state_before_down = api::NodeState::kUp;
  }
  if (rec.node.state == api::NodeState::kDown) {
    NodeBackFromDown(change, rec, "worker connected");
  } else {
    change.batch.Put(state::Family::kNodes, hello.node, StoredNode(rec));
  }
  // Reconcile: attempts the worker runs that the scheduler does not want are killed; attempts the
  // scheduler placed here that the worker does not know are lost.
  std::set<std::pair<uint64_t, uint32_t>> reported;
  for (const auto& r : hello.running) {
    reported.insert({r.job, r.attempt});
    // An attempt that ended while the worker was cut off: its final `job_update` follows.
    if (api::IsTerminal(r.state))
      continue;
    auto it = jobs_.find(r.job);
    bool wanted = it != jobs_.end() && IsActive(it->second.job.state) &&
                  it->second.job.attempt == r.attempt &&
                  std::any_of(it->second.job.allocation.begin(), it->second.job.allocation.end(),
                              [&](const api::Allocation& a) { return a.node == hello.node; });
    if (!wanted) {
      change.dispatches.push_back({hello.node, api::Kill{r.job, r.attempt, 0, "stale attempt"}});
      continue;
    }
    // The worker's `running` update can be lost with a scheduler killed before writing it: the
    // hello says so again, or the job would stay `starting` for good.
    JobRecord& job = it->second;
    if (r.state == JobState::kRunning && job.job.state == JobState::kStarting) {
      SetJobState(change, job, JobState::kRunning, "");
      PersistJob(change, job);
    }
  }
  std::vector<uint64_t> lost;
  for (uint64_t id : rec.jobs) {
    const JobRecord& job = jobs_.at(id);
    const auto& ended = job.gang.parts_ended;
    if (!reported.contains({id, job.job.attempt}) &&
        std::find(ended.begin(), ended.end(), hello.node) == ended.end()) {
      lost.push_back(id);
    }
  }
  for (uint64_t id : lost) {
    auto it = jobs_.find(id);
    if (it == jobs_.end() || !IsActive(it->second.job.state))
      continue;
    EndPart(change, it->second, hello.node,
            PartEnd{JobState::kNodeFail, std::nullopt, std::nullopt,
                    "the worker on " + hello.node + " no longer runs it"});
  }
  change.reschedule = true;
  return change;
}

Result<Change> ClusterState::WorkerHeartbeat(const api::Heartbeat& hb) {
  auto it = nodes_.find(hb.node);
  if (it == nodes_.end())
    return Status::FailedPrecondition("heartbeat before hello");
  Change change;
  it->second.last_heartbeat = clock_.Now();
  it->second.node.last_heartbeat = it->second.last_heartbeat;
  if (it->second.node.state == api::NodeState::kDown)
    NodeBackFromDown(change, it->second, "heartbeat");
  return change;
}

Result<Change> ClusterState::WorkerJobUpdate(const std::string& node, const api::JobUpdate& u) {
  Change change;
  // A final update is acknowledged once what it changes is durable: dispatches leave after the
  // commit. Stale and repeated ones are acknowledged too, so that the worker stops sending them.
  if (api::IsTerminal(u.state))
    change.dispatches.push_back({node, api::Ack{u.job, u.attempt}});
  auto it = jobs_.find(u.job);
  if (!AttemptPlacedOn(u.job, u.attempt, node)) {
    // A stale or unknown attempt: make sure it is not running, and otherwise ignore it.
    if (!api::IsTerminal(u.state)) {
      change.dispatches.push_back({node, api::Kill{u.job, u.attempt, 0, "stale attempt"}});
    }
    return change;
  }
  JobRecord& rec = it->second;
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
          change.ephemeral.push_back(EphemeralEvent("job.reason", std::move(data)));
        }
      }
      if (digest_changed)
        PersistJob(change, rec);
      return change;
    case JobState::kRunning:
      rec.starting_message.clear();
      if (rec.job.state == JobState::kStarting) {
        SetJobState(change, rec, JobState::kRunning, "");
        PersistJob(change, rec);
      } else if (u.checkpoint_time || digest_changed) {
        PersistJob(change, rec);
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
      AddEvent(change, "job.gang_ending",
               json::object{{"job", rec.job.id},
                            {"attempt", rec.job.attempt},
                            {"node", node},
                            {"state", std::string(api::ToString(end.state))},
                            {"message", end.message}});
    }
  }
  if (ended.size() < rec.job.allocation.size()) {
    PersistJob(change, rec);  // The parts that ended survive a restart of the scheduler.
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

Result<Change> ClusterState::WorkerGpuHealth(const api::GpuHealthReport& report) {
  auto it = nodes_.find(report.node);
  if (it == nodes_.end())
    return Status::FailedPrecondition("gpu_health before hello");
  Change change;
  NodeRecord& rec = it->second;
  bool changed = false;
  for (const auto& g : report.gpus) {
    for (auto& gpu : rec.node.gpus) {
      if (gpu.index != g.index || gpu.health == g.health)
        continue;
      gpu.health = g.health;
      changed = true;
      AddEvent(change, "node.health",
               {{"node", report.node},
                {"gpu", g.index},
                {"health", std::string(api::ToString(g.health))},
                {"message", g.message}});
    }
  }
  // A report that changes nothing writes nothing: a worker repeating its health costs no commit.
  if (!changed)
    return change;
  change.batch.Put(state::Family::kNodes, report.node, StoredNode(rec));
  change.reschedule = true;
  return change;
}

Change ClusterState::WorkerDisconnected(const std::string& node) {
  Change change;
  auto it = nodes_.find(node);
  if (it != nodes_.end())
    it->second.connected = false;
  // The node goes `down` only when its heartbeats stop for `nodes.heartbeat_timeout`: a worker
  // that reconnects at once keeps its jobs and state.
  return change;
}

Result<Change> ClusterState::DrainNode(const Principal& who, const std::string& node,
                                       const std::string& reason) {
  if (who.role != api::Role::kAdmin)
    return Status::PermissionDenied("only admins drain nodes");
  auto it = nodes_.find(node);
  if (it == nodes_.end())
    return Status::NotFound("no node '" + node + "'");
  Change change;
  NodeRecord& rec = it->second;
  api::NodeState to = rec.used_gpus != 0 ? api::NodeState::kDraining : api::NodeState::kDrained;
  if (rec.node.state == api::NodeState::kDown) {
    // Applied when the node is back.
    rec.state_before_down = to;
    rec.node.state_reason = reason;
    change.batch.Put(state::Family::kNodes, node, StoredNode(rec));
  } else {
    SetNodeState(change, rec, to, reason, who.user);
  }
  if (rec.connected)
    change.dispatches.push_back({node, api::Drain{reason}});
  return change;
}

Result<Change> ClusterState::ResumeNode(const Principal& who, const std::string& node) {
  if (who.role != api::Role::kAdmin)
    return Status::PermissionDenied("only admins resume nodes");
  auto it = nodes_.find(node);
  if (it == nodes_.end())
    return Status::NotFound("no node '" + node + "'");
  Change change;
  NodeRecord& rec = it->second;
  if (rec.node.state == api::NodeState::kDown) {
    rec.state_before_down = api::NodeState::kUp;
    return change;
  }
  if (rec.node.state != api::NodeState::kDraining && rec.node.state != api::NodeState::kDrained) {
    return change;
  }
  SetNodeState(change, rec, api::NodeState::kUp, "", who.user);
  return change;
}

Change ClusterState::PruneHistory(const state::Store& store, size_t max_rows) {
  Change change;
  Timestamp cutoff = clock_.Now() - config_.history.retention;
  size_t seen = 0;
  uint64_t last = prune_cursor_;
  Status read = store.Scan(
      state::Family::kJobs, state::U64Key(prune_cursor_ + 1), {},
      [&](std::string_view key, std::string_view value) {
        if (seen++ >= max_rows)
          return false;
        last = *state::ParseU64Key(key);
        if (jobs_.contains(last))
          return true;  // Active: memory has it.
        auto stored = DecodeStoredJob(key, value);
        if (stored.ok() && stored->job.end_time && *stored->job.end_time < cutoff) {
          change.batch.Delete(state::Family::kJobs, std::string(key));
          change.batch.Delete(state::Family::kJobIndex, IndexKey('u', stored->job.user, last));
          change.batch.Delete(state::Family::kJobIndex,
                              IndexKey('a', stored->job.spec.account, last));
          finished_states_.erase(last);
        }
        return true;
      });
  if (!read.ok()) {
    // Nothing is lost by waiting: the next tick tries again from the same place.
    spdlog::warn("history pruning: {}", read.ToString());
    return Change{};
  }
  // A short sweep reached the end of the history: the next one starts over.
  prune_cursor_ = seen <= max_rows ? 0 : last;
  if (!change.batch.empty())
    spdlog::info("pruned {} finished jobs older than {}", change.batch.size(),
                 FormatDuration(config_.history.retention));
  return change;
}

Change ClusterState::CheckNodeTimeouts() {
  Change change;
  Timestamp now = clock_.Now();
  std::set<std::string_view> lost_nodes;
  for (auto& [name, rec] : nodes_) {
    Duration silent = now - rec.last_heartbeat;
    if (rec.node.state != api::NodeState::kDown && silent >= config_.nodes.heartbeat_timeout) {
      SetNodeState(change, rec, api::NodeState::kDown,
                   "no heartbeat for " + FormatDuration(silent));
    }
    if (rec.node.state == api::NodeState::kDown && silent >= config_.nodes.lost_timeout)
      lost_nodes.insert(name);
  }
  if (lost_nodes.empty())
    return change;
  // Each lost node's own jobs: when a whole rack goes, a walk over every running job per node
  // (312 nodes x 45,000 running jobs) held the state thread for seconds.
  std::vector<uint64_t> lost;
  std::set<uint64_t> seen;  // A job with parts on two lost nodes is visited once.
  for (std::string_view name : lost_nodes) {
    for (uint64_t id : nodes_.find(std::string(name))->second.jobs) {
      if (seen.insert(id).second)
        lost.push_back(id);
    }
  }
  // Every lost part of a job ends as node_fail; parts on nodes still there are stopped with
  // their grace, and the attempt ends (and requeues, if the job asks) when they have.
  for (uint64_t id : lost) {
    auto it = jobs_.find(id);
    if (it == jobs_.end() || !IsActive(it->second.job.state))
      continue;
    std::vector<std::string> parts;
    for (const auto& a : it->second.job.allocation) {
      if (lost_nodes.contains(a.node))
        parts.push_back(a.node);
    }
    for (const std::string& part : parts) {
      auto job = jobs_.find(id);
      if (job == jobs_.end() || !IsActive(job->second.job.state))
        break;
      EndPart(change, job->second, part,
              PartEnd{JobState::kNodeFail, std::nullopt, std::nullopt, "node " + part + " lost"});
    }
  }
  return change;
}

Change ClusterState::EnforceDeadlines() {
  Change change;
  Timestamp now = clock_.Now();
  std::vector<uint64_t> overdue;
  for (uint64_t id : running_) {
    JobRecord& rec = jobs_.at(id);
    if (rec.terminating_deadline) {
      // The worker had the grace period and then some: if its node is gone, end the attempt here.
      if (now >= *rec.terminating_deadline + config_.nodes.heartbeat_timeout)
        overdue.push_back(id);
      continue;
    }
    // Workers enforce time limits; this backs them up when a worker is silent.
    if (rec.job.start_time) {
      Timestamp limit_end = *rec.job.start_time + EffectiveTimeLimit(rec.job.spec);
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
    JobRecord& rec = jobs_.at(id);
    bool node_alive =
        std::all_of(rec.job.allocation.begin(), rec.job.allocation.end(), [&](const auto& a) {
          auto n = nodes_.find(a.node);
          return n != nodes_.end() && n->second.connected;
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

std::vector<api::Node> ClusterState::Nodes() const {
  std::vector<api::Node> out;
  for (const auto& [name, rec] : nodes_) {
    api::Node n = rec.node;
    n.free_gpus = n.gpu_count - __builtin_popcountll(rec.used_gpus);
    out.push_back(std::move(n));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Tokens.

Change ClusterState::RecordToken(const Principal& who, const std::string& token_id,
                                 const std::string& user) {
  Change change;
  AddEvent(change, "token.created", {{"token", token_id}, {"user", user}, {"by", who.user}});
  return change;
}

Result<Change> ClusterState::RevokeToken(const Principal& who, const std::string& token_id) {
  if (who.role != api::Role::kAdmin)
    return Status::PermissionDenied("only admins revoke tokens");
  if (token_id.rfind("tok_", 0) != 0 || token_id.size() > 64) {
    return Status::InvalidArgument("not a token id", "id");
  }
  Change change;
  revoked_.insert(token_id);
  change.batch.Put(state::Family::kTokens, token_id, "revoked");
  AddEvent(change, "token.revoked", {{"token", token_id}, {"by", who.user}});
  return change;
}

// ---------------------------------------------------------------------------------------------
// Scheduling.

core::Snapshot ClusterState::BuildSnapshot() const {
  core::Snapshot s;
  Timestamp now = clock_.Now();
  std::unordered_map<std::string, uint32_t> type_index;
  for (const auto& t : config_.gpu_types) {
    type_index[t.name] = static_cast<uint32_t>(s.gpu_types.size());
    s.gpu_types.push_back({t.name, t.cost});
  }
  std::unordered_map<std::string, uint32_t> site_index, block_index, node_index;
  for (const auto& [name, rec] : nodes_) {
    const api::Node& n = rec.node;
    auto type = type_index.find(n.gpu_type);
    if (n.gpu_count > 0 && type == type_index.end())
      continue;  // A GPU type we do not schedule.
    auto [sit, snew] = site_index.try_emplace(n.site, static_cast<uint32_t>(s.sites.size()));
    if (snew)
      s.sites.push_back(n.site);
    // Block names are unique within a site only: b00 of two sites are two blocks.
    auto [bit, bnew] =
        block_index.try_emplace(n.site + '\0' + n.block, static_cast<uint32_t>(s.blocks.size()));
    if (bnew)
      s.blocks.push_back({n.block, sit->second});
    core::NodeInfo info;
    info.name = name;
    info.site = sit->second;
    info.block = bit->second;
    info.gpu_type = type == type_index.end() ? 0 : type->second;
    info.gpu_count = static_cast<uint32_t>(n.gpu_count);
    for (const auto& g : n.gpus) {
      if (g.health != api::GpuHealth::kHealthy && g.index >= 0 && g.index < 64) {
        info.unhealthy_gpus |= uint64_t{1} << g.index;
      }
    }
    info.cpus = n.cpus;
    info.memory_mib = n.memory_mib;
    info.state = rec.connected ? n.state : api::NodeState::kDown;
    if (!n.nvlink_pairs.empty()) {
      info.nvlink.assign(info.gpu_count, 0);
      for (auto [a, b] : n.nvlink_pairs) {
        if (a >= 0 && b >= 0 && a < n.gpu_count && b < n.gpu_count) {
          info.nvlink[a] |= uint64_t{1} << b;
          info.nvlink[b] |= uint64_t{1} << a;
        }
      }
    }
    node_index[name] = static_cast<uint32_t>(s.nodes.size());
    s.nodes.push_back(std::move(info));
  }
  // Accounts: parents before children is not required, only indices.
  std::unordered_map<std::string, uint32_t> account_index;
  for (const auto& [name, a] : accounts_) {
    account_index[name] = static_cast<uint32_t>(s.accounts.size());
    s.accounts.emplace_back();
  }
  std::unordered_map<std::string, double> running_usage;
  for (uint64_t id : running_) {
    const JobRecord& rec = jobs_.at(id);
    if (!rec.job.start_time)
      continue;
    double gpus = 0;
    for (const auto& a : rec.job.allocation)
      gpus += static_cast<double>(a.gpus.size());
    auto node = nodes_.find(rec.job.allocation.empty() ? "" : rec.job.allocation.front().node);
    double cost = node == nodes_.end() ? 1.0 : GpuCost(node->second.node.gpu_type);
    running_usage[rec.job.spec.account] +=
        gpus * cost * std::chrono::duration<double>(now - *rec.job.start_time).count();
  }
  // What running attempts have used of every budget on their chain so far (normalised
  // GPU-hours within each period): budgets are consumed as jobs run, not when they end.
  std::unordered_map<std::string, double> running_budget;
  for (uint64_t id : running_) {
    const JobRecord& rec = jobs_.at(id);
    if (!rec.job.start_time || rec.job.allocation.empty())
      continue;
    double gpus = 0;
    for (const auto& a : rec.job.allocation)
      gpus += static_cast<double>(a.gpus.size());
    auto node = nodes_.find(rec.job.allocation.front().node);
    const double normalised =
        gpus * (node == nodes_.end() ? 1.0 : GpuCost(node->second.node.gpu_type));
    std::string name = rec.job.spec.account;
    for (size_t steps = 0; !name.empty() && steps <= accounts_.size(); ++steps) {
      auto acc = accounts_.find(name);
      if (acc == accounts_.end())
        break;
      if (acc->second.budget)
        running_budget[name] +=
            normalised * HoursWithin(*acc->second.budget, *rec.job.start_time, now);
      name = acc->second.parent;
    }
  }
  std::unordered_map<std::string, int32_t> preemptions;
  for (const auto& [t, account] : recent_preemptions_) {
    if (now - t < Seconds(3600))
      ++preemptions[account];
  }
  for (const auto& [name, a] : accounts_) {
    core::AccountInfo& info = s.accounts[account_index[name]];
    info.name = name;
    info.parent = a.parent.empty() ? core::kNoParent : account_index.at(a.parent);
    info.shares = static_cast<double>(a.shares);
    if (!a.quotas.empty()) {
      info.quota.assign(s.gpu_types.size(), core::TypeQuota{0, core::kUnlimited});
      for (const auto& [type, q] : a.quotas) {
        auto t = type_index.find(type);
        if (t == type_index.end())
          continue;
        info.quota[t->second] = {static_cast<int32_t>(q.guaranteed), static_cast<int32_t>(q.limit)};
      }
    }
    if (a.budget) {
      auto used = budget_used_.find(name);
      auto running = running_budget.find(name);
      info.budget = core::Budget{a.budget->gpu_hours, a.budget->start, a.budget->end,
                                 (used == budget_used_.end() ? 0.0 : used->second) +
                                     (running == running_budget.end() ? 0.0 : running->second)};
    }
    info.on_budget_exhausted = a.on_budget_exhausted;
    if (a.max_running_gpus_per_user)
      info.max_running_gpus_per_user = static_cast<int32_t>(*a.max_running_gpus_per_user);
    double value = 0;
    if (auto u = usage_.find(name); u != usage_.end())
      value = Decay(u->second, now, policy_.half_life);
    if (auto r = running_usage.find(name); r != running_usage.end())
      value += r->second;
    info.usage = {value, now};
    if (auto p = preemptions.find(name); p != preemptions.end())
      info.preemptions_last_hour = p->second;
  }
  std::unordered_map<std::string, uint32_t> user_index;
  auto user_of = [&](const std::string& u) {
    auto [it, fresh] = user_index.try_emplace(u, static_cast<uint32_t>(s.users.size()));
    if (fresh)
      s.users.push_back(u);
    return it->second;
  };
  auto dependency_state = [&](uint64_t id) {
    if (auto it = jobs_.find(id); it != jobs_.end())
      return it->second.job.state;
    if (auto it = finished_states_.find(id); it != finished_states_.end())
      return it->second;
    return JobState::kCompleted;  // Pruned history: long finished.
  };
  s.pending.reserve(pending_.size());
  for (uint64_t id : pending_) {
    const JobRecord& rec = jobs_.at(id);
    const api::JobSpec& spec = rec.job.spec;
    core::PendingJobInfo p;
    p.id = JobId(id);
    p.account = account_index.at(spec.account);
    p.user = user_of(rec.job.user);
    p.nodes = spec.nodes;
    p.gpus_per_node = spec.gpus_per_node;
    if (!spec.gpu_type.empty()) {
      p.gpu_types = 0;
      for (const auto& t : spec.gpu_type) {
        if (auto it = type_index.find(t); it != type_index.end())
          p.gpu_types |= uint64_t{1} << it->second;
      }
    }
    p.cpus_per_node = spec.cpus_per_node;
    p.memory_mib_per_node = spec.memory_mib_per_node;
    p.time_limit = spec.time_limit_s ? Seconds(*spec.time_limit_s) : Duration(0);
    p.priority_class = spec.priority_class;
    p.topology = spec.topology;
    p.submit_time = rec.job.submit_time;
    p.held = rec.job.held;
    for (const auto& d : spec.depends_on) {
      p.dependencies.push_back({d.type, JobId(d.job), dependency_state(d.job)});
    }
    if (rec.job.array_job_id) {
      p.array_parent = JobId(*rec.job.array_job_id);
      if (spec.array) {
        auto a = api::ParseArraySpec(*spec.array);
        if (a.ok() && a->max_concurrent)
          p.array_max_concurrent = static_cast<int32_t>(*a->max_concurrent);
      }
      auto r = array_running_.find(*rec.job.array_job_id);
      p.array_running = r == array_running_.end() ? 0 : r->second;
    }
    p.attempt = Attempt(rec.job.attempt);
    p.grace_period = Seconds(spec.grace_period_s);
    s.pending.push_back(std::move(p));
  }
  for (uint64_t id : running_) {
    const JobRecord& rec = jobs_.at(id);
    core::RunningJobInfo r;
    r.id = JobId(id);
    r.attempt = Attempt(rec.job.attempt);
    r.account = account_index.at(rec.job.spec.account);
    r.user = user_of(rec.job.user);
    bool known = true;
    for (const auto& a : rec.job.allocation) {
      auto n = node_index.find(a.node);
      if (n == node_index.end()) {
        known = false;
        break;
      }
      core::NodeAllocation na;
      na.node = n->second;
      for (int g : a.gpus)
        na.gpus |= uint64_t{1} << g;
      na.cpus = rec.job.spec.cpus_per_node;
      na.memory_mib = rec.job.spec.memory_mib_per_node;
      r.allocation.push_back(na);
    }
    if (!known)
      continue;
    r.start_time = rec.job.start_time.value_or(now);
    r.time_limit = EffectiveTimeLimit(rec.job.spec);
    r.last_checkpoint = rec.last_checkpoint;
    r.priority_class = rec.job.spec.priority_class;
    r.borrowing = rec.job.borrowing;
    r.preemptible =
        rec.runs_as_preemptible || rec.job.spec.priority_class == api::PriorityClass::kPreemptible;
    r.grace_period = Seconds(rec.job.spec.grace_period_s);
    r.terminating_deadline = rec.terminating_deadline;
    s.running.push_back(std::move(r));
  }
  return s;
}

Change ClusterState::ApplyPlan(const core::Snapshot& snapshot, const core::Plan& plan) {
  Change change;
  Timestamp now = clock_.Now();
  for (const core::JobStart& start : plan.starts) {
    auto it = jobs_.find(start.job.value());
    // Re-validate: the job may have been cancelled or held, or a node lost, during the pass.
    if (it == jobs_.end() || it->second.job.state != JobState::kPending || it->second.job.held ||
        it->second.job.attempt + 1 != start.attempt.value()) {
      continue;
    }
    bool fits = true;
    for (const auto& na : start.nodes) {
      auto n = nodes_.find(snapshot.nodes[na.node].name);
      if (n == nodes_.end() || !n->second.connected ||
          n->second.node.state != api::NodeState::kUp || (n->second.used_gpus & na.gpus) != 0) {
        fits = false;
        break;
      }
    }
    if (!fits)
      continue;
    JobRecord& rec = it->second;
    uint64_t id = rec.job.id;
    std::vector<std::string> node_names;
    rec.job.allocation.clear();
    for (const auto& na : start.nodes) {
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
    rec.job.rendezvous = ChooseRendezvous(node_names, id, rec.job.attempt);
    if (!rec.job.rendezvous) {
      spdlog::warn(
          "job {} attempt {}: every rendezvous port of node {} is held; it starts "
          "without MASTER_PORT",
          id, rec.job.attempt, node_names.front());
    }
    HoldAllocation(rec);
    rec.job.start_time = now;
    rec.job.borrowing = start.borrowing;
    rec.job.reason.reset();
    rec.runs_as_preemptible = start.runs_as_preemptible;
    pending_.erase(id);
    --pending_per_user_[AccountKey(rec.job.spec.account, rec.job.user)];
    running_.insert(id);
    if (rec.job.array_job_id)
      ++array_running_[*rec.job.array_job_id];
    SetJobState(change, rec, JobState::kStarting, start.borrowing ? "borrowing idle GPUs" : "");
    PersistJob(change, rec);
    for (size_t rank = 0; rank < rec.job.allocation.size(); ++rank) {
      api::Launch launch;
      launch.job = id;
      launch.attempt = rec.job.attempt;
      launch.spec = rec.job.spec;
      launch.user = rec.job.user;
      launch.spec.time_limit_s = EffectiveTimeLimit(rec.job.spec).count() / 1000;
      launch.gpus = rec.job.allocation[rank].gpus;
      launch.array_index = rec.job.array_index;
      launch.array_job_id = rec.job.array_job_id;
      launch.node_rank = static_cast<int32_t>(rank);
      launch.nodes = node_names;
      launch.rendezvous = rec.job.rendezvous;
      change.dispatches.push_back({rec.job.allocation[rank].node, std::move(launch)});
    }
  }
  for (const core::PlannedPreemption& p : plan.preemptions) {
    auto it = jobs_.find(p.victim.value());
    if (it == jobs_.end() || !IsActive(it->second.job.state) ||
        it->second.job.attempt != p.attempt.value() || it->second.terminating_deadline) {
      continue;
    }
    JobRecord& rec = it->second;
    rec.terminating_deadline = now + p.grace;
    rec.terminating_reason = "preempted";
    recent_preemptions_.push_back({now, rec.job.spec.account});
    while (!recent_preemptions_.empty() &&
           now - recent_preemptions_.front().first > Seconds(3600)) {
      recent_preemptions_.pop_front();
    }
    for (const auto& a : rec.job.allocation) {
      change.dispatches.push_back(
          {a.node,
           api::Kill{rec.job.id, rec.job.attempt, static_cast<int32_t>(p.grace.count() / 1000),
                     "preempted for job " + std::to_string(p.for_job.value())}});
    }
    json::object data = JobEventData(rec.job);
    data["for_job"] = p.for_job.value();
    data["reason"] = p.reason;
    AddEvent(change, "job.preempting", std::move(data));
  }
  // Reasons live in memory only and apart from the jobs: they are recomputed every pass, and
  // persisting or copying 100,000 of them each second would cost more than it tells.
  reasons_ = plan.pending;
  std::sort(reasons_.begin(), reasons_.end(),
            [](const core::PendingReason& a, const core::PendingReason& b) {
              return a.job.value() < b.job.value();
            });
  explanations_ = plan.explanations;
  ReportReasonChanges(change);
  return change;
}

void ClusterState::ReportReasonChanges(Change& change) {
  // One merge of two id-sorted lists: O(pending) per pass, events only for what changed.
  auto news = [](const ReportedReason& before, const ReportedReason& now) {
    if (before.code != now.code ||
        before.estimated_start.has_value() != now.estimated_start.has_value())
      return true;
    if (!now.estimated_start)
      return false;
    Duration moved = *now.estimated_start > *before.estimated_start
                         ? *now.estimated_start - *before.estimated_start
                         : *before.estimated_start - *now.estimated_start;
    return moved >= kReasonStartStep;
  };
  std::vector<ReportedReason> next;
  next.reserve(reasons_.size());
  size_t emitted = 0;
  auto old = reported_reasons_.begin();
  for (const core::PendingReason& r : reasons_) {
    if (r.explanation >= explanations_.size())
      continue;
    uint64_t id = r.job.value();
    while (old != reported_reasons_.end() && old->job < id)
      ++old;  // No longer pending: its `job.state` event told.
    const ReportedReason* before =
        old != reported_reasons_.end() && old->job == id ? &*old : nullptr;
    ReportedReason now{id, explanations_[r.explanation].code, r.estimated_start};
    if (before && !news(*before, now)) {
      next.push_back(*before);  // The baseline stays, so that slow drift adds up to news.
      continue;
    }
    auto job = jobs_.find(id);
    // Cancelled or started while the pass ran: nothing pending to report on.
    bool gone = job == jobs_.end() || job->second.job.state != JobState::kPending;
    if (!reasons_baselined_ || gone || emitted >= kMaxReasonEventsPerPass) {
      // Not reported (yet): a later pass sees the same difference.
      if (before)
        next.push_back(*before);
      else if (!reasons_baselined_)
        next.push_back(now);
      continue;
    }
    core::Explanation e = core::ExplanationOf(explanations_, r);
    json::object data = JobEventData(job->second.job);
    data["code"] = std::string(api::ToString(now.code));
    data["message"] = std::move(e.message);
    if (before)
      data["previous_code"] = std::string(api::ToString(before->code));
    if (now.estimated_start)
      data["estimated_start"] = FormatTimestamp(*now.estimated_start);
    change.ephemeral.push_back(EphemeralEvent("job.reason", std::move(data)));
    ++emitted;
    next.push_back(now);
  }
  reported_reasons_ = std::move(next);
  reasons_baselined_ = true;
}

api::Event ClusterState::EphemeralEvent(std::string type, json::object data) const {
  api::Event e;
  e.seq = next_seq_ - 1;
  e.type = std::move(type);
  e.time = clock_.Now();
  e.data = std::move(data);
  return e;
}

// ---------------------------------------------------------------------------------------------
// The event log.

Change ClusterState::PruneEvents() {
  Change change;
  uint64_t last = next_seq_ - 1;
  if (first_event_seq_ > last)
    return change;
  // 1. By count: keep the newest `max_events`.
  uint64_t max_events = static_cast<uint64_t>(config_.events.max_events);
  uint64_t cut = last - first_event_seq_ + 1 > max_events ? last - max_events : 0;
  // 2. By age, as far as the in-memory tail tells: events before the tail are older than its
  // front, so they go once the front is past the retention. Older events that the tail does not
  // cover stay until then; the count bound still holds for them.
  Timestamp horizon = clock_.Now() - config_.events.retention;
  for (const api::Event& e : recent_events_) {
    if (e.time >= horizon)
      break;
    cut = std::max(cut, e.seq);
  }
  // Prune in steps of at least 1/64 of the bound, so that a steady stream of events does not cost
  // a delete per tick; and never the newest event, which carries the sequence counter on restart.
  cut = std::min(cut, last - 1);
  if (cut < first_event_seq_ || cut - first_event_seq_ + 1 < std::max<uint64_t>(1, max_events / 64))
    return change;
  change.batch.DeleteRange(state::Family::kEvents, state::U64Key(first_event_seq_),
                           state::U64Key(cut + 1));
  first_event_seq_ = cut + 1;
  while (!recent_events_.empty() && recent_events_.front().seq <= cut)
    recent_events_.pop_front();
  return change;
}

bool ClusterState::InAccountSubtree(const std::string& account, const std::string& root) const {
  return IsInSubtree(account, root);
}

}  // namespace gsched::server
