#include "scheduler/server/job_records.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <deque>
#include <future>
#include <thread>

#include "scheduler/common/quantity.h"

namespace gsched::server {
using api::JobState;

namespace {

std::string AccountKey(const std::string& account, const std::string& user) {
  return account + '\x1f' + user;
}

std::string IndexKey(char kind, std::string_view name, uint64_t id) {
  return JobRecords::IndexPrefix(kind, name) + state::U64Key(id);
}
constexpr std::string_view kJobIndexBuiltKey = "job_index_built";

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

}  // namespace

double AllocatedGpus(const api::Job& job) {
  double gpus = 0;
  for (const auto& a : job.allocation)
    gpus += static_cast<double>(a.gpus.size());
  return gpus;
}

boost::json::object JobEventData(const api::Job& job) {
  return {{"job", job.id}, {"user", job.user}, {"account", job.spec.account}};
}

void SetJobState(EventLog& events, Change& change, JobRecord& record, JobState to,
                 std::string why) {
  JobState from = record.job.state;
  record.job.state = to;
  boost::json::object data = JobEventData(record.job);
  data["from"] = std::string(api::ToString(from));
  data["to"] = std::string(api::ToString(to));
  data["attempt"] = record.job.attempt;
  if (!why.empty())
    data["reason"] = std::move(why);
  if (!record.job.allocation.empty())
    data["node"] = record.job.allocation.front().node;
  if (record.job.exit_code)
    data["exit_code"] = *record.job.exit_code;
  events.Add(change, "job.state", std::move(data));
}

// ---------------------------------------------------------------------------------------------
// Loading.

Status JobRecords::Load(const state::Store& store, const Quarantine& quarantine) {
  if (auto next = store.Get(state::Family::kMeta, "next_job_id"); next.ok()) {
    // Garbage here costs nothing: the jobs' own ids raise the counter below.
    uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(next->data(), next->data() + next->size(), v);
    if (ec == std::errc() && ptr == next->data() + next->size())
      next_job_id_ = std::max<uint64_t>(v, 1);
    else
      spdlog::error("meta next_job_id is not a number; counting from the stored jobs");
  }
  // The active jobs come back into memory; finished ones only leave their final state, which
  // dependencies need. Decoding is most of a restart's work, so chunks of records are decoded on
  // other threads while this one reads on and applies finished chunks in id order.
  std::deque<std::future<std::vector<StoredJob>>> decoding;
  const size_t max_in_flight = std::max(2u, std::thread::hardware_concurrency());
  auto apply = [&](size_t keep) -> Status {
    while (decoding.size() > keep) {
      std::vector<StoredJob> chunk = decoding.front().get();
      decoding.pop_front();
      for (StoredJob& j : chunk) {
        next_job_id_ = std::max(next_job_id_, j.id + 1);
        if (j.error) {
          quarantine(j.key, j.value, *j.error);
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
          if (j.record->job.array_job_id)
            ++array_running_[*j.record->job.array_job_id];
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
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// In memory.

JobRecord* JobRecords::Find(uint64_t id) {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

const JobRecord* JobRecords::Find(uint64_t id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

std::optional<JobState> JobRecords::FinishedState(uint64_t id) const {
  auto it = finished_states_.find(id);
  if (it == finished_states_.end())
    return std::nullopt;
  return it->second;
}

int64_t JobRecords::PendingOf(const std::string& account, const std::string& user) const {
  auto it = pending_per_user_.find(AccountKey(account, user));
  return it == pending_per_user_.end() ? 0 : it->second;
}

int32_t JobRecords::ArrayRunning(uint64_t array) const {
  auto it = array_running_.find(array);
  return it == array_running_.end() ? 0 : it->second;
}

const std::set<uint64_t>* JobRecords::LiveOfUser(const std::string& user) const {
  auto it = live_by_user_.find(user);
  return it == live_by_user_.end() ? nullptr : &it->second;
}

const std::set<uint64_t>* JobRecords::LiveOfAccount(const std::string& account) const {
  auto it = live_by_account_.find(account);
  return it == live_by_account_.end() ? nullptr : &it->second;
}

void JobRecords::AddPending(JobRecord record) {
  pending_.insert(record.job.id);
  ++pending_per_user_[AccountKey(record.job.spec.account, record.job.user)];
  Remember(std::move(record));
}

void JobRecords::Start(uint64_t id) {
  const api::Job& job = jobs_.at(id).job;
  pending_.erase(id);
  --pending_per_user_[AccountKey(job.spec.account, job.user)];
  running_.insert(id);
  if (job.array_job_id)
    ++array_running_[*job.array_job_id];
}

void JobRecords::Stop(uint64_t id) {
  const api::Job& job = jobs_.at(id).job;
  running_.erase(id);
  if (job.array_job_id)
    --array_running_[*job.array_job_id];
}

void JobRecords::Requeue(uint64_t id) {
  const api::Job& job = jobs_.at(id).job;
  pending_.insert(id);
  ++pending_per_user_[AccountKey(job.spec.account, job.user)];
}

void JobRecords::Unqueue(uint64_t id) {
  const api::Job& job = jobs_.at(id).job;
  pending_.erase(id);
  --pending_per_user_[AccountKey(job.spec.account, job.user)];
}

void JobRecords::Finish(uint64_t id, JobState state) {
  finished_states_[id] = state;
  Forget(id);
}

void JobRecords::Remember(JobRecord record) {
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

void JobRecords::Forget(uint64_t id) {
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

std::vector<uint64_t> JobRecords::LiveArrayTasks(uint64_t id) const {
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

// ---------------------------------------------------------------------------------------------
// On disk.

void JobRecords::Persist(Change& change, const JobRecord& record) {
  change.batch.Put(
      state::Family::kJobs, state::U64Key(record.job.id),
      EncodeStoredJob(record.job, record.last_checkpoint, record.runs_as_preemptible, record.gang));
}

// `u/<user>/<id>` and `a/<account>/<id>` in the `job_index` family. Neither names may contain '/'
// (their charsets), so a prefix holds exactly one user's or account's jobs, in id order.
std::string JobRecords::IndexPrefix(char kind, std::string_view name) {
  std::string p;
  p.reserve(name.size() + 3);
  p += kind;
  p += '/';
  p += name;
  p += '/';
  return p;
}

void JobRecords::PutIndex(state::WriteBatch& batch, const api::Job& job) {
  batch.Put(state::Family::kJobIndex, IndexKey('u', job.user, job.id), "");
  batch.Put(state::Family::kJobIndex, IndexKey('a', job.spec.account, job.id), "");
}

Status JobRecords::BuildIndex(state::Store& store) {
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
        PutIndex(batch, stored->job);
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

Result<api::Job> JobRecords::ReadStored(const state::Store& store, uint64_t id) {
  auto raw = store.Get(state::Family::kJobs, state::U64Key(id));
  if (!raw.ok())
    return Status::NotFound("no job " + std::to_string(id));
  auto stored = DecodeStoredJob(state::U64Key(id), *raw);
  if (!stored.ok())
    return stored.status();
  return std::move(stored->job);
}

Change JobRecords::PruneHistory(const state::Store& store, size_t max_rows, Timestamp cutoff) {
  Change change;
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
  return change;
}

}  // namespace gsched::server
