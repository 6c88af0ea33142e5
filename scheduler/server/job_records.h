// `JobRecords`: the jobs the scheduler holds in memory and how they are stored (DESIGN.md
// sections 2 and 4): every job that is not terminal, the pending and running sets, the live
// indices by user, account and array, the final states of jobs no longer in memory (for
// dependencies), the job id counter; and on disk the `jobs` records, the `job_index` family and
// the quarantine of stored records that do not decode.
//
// Owns the in-memory tables and their invariants: a job enters with `AddPending` / `Load`, moves
// with `Start`, `Stop`, `Requeue`, and leaves with `Finish`, each keeping the sets, the per-user
// pending counts, the array counts and the indices in step. The job state machine itself (what
// happens to a job and when) is `ClusterState`'s. I/O: `Load`, `ReadStored` and `PruneHistory`
// read the store they are handed, and `BuildIndex` reads it and commits the index it builds;
// every other write goes through `Change` batches. Threading: not thread-safe; owned by
// `ClusterState`, on the service's state thread
// (`Load` decodes on helper threads of its own and joins them before it returns).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "scheduler/api/types.h"
#include "scheduler/common/clock.h"
#include "scheduler/common/status.h"
#include "scheduler/server/change.h"
#include "scheduler/server/event_log.h"
#include "scheduler/server/stored_job.h"
#include "scheduler/state/store.h"

namespace gsched::server {

struct JobRecord {
  api::Job job;
  std::optional<Timestamp> last_checkpoint;
  bool runs_as_preemptible = false;
  std::optional<Timestamp> terminating_deadline;  // A kill or preemption is under way.
  // "cancelled", "preempted", "timeout", or "gang": a part of a multi-node attempt failed and
  // the others are being stopped.
  std::string terminating_reason;
  // Parts of the current attempt that ended while others run (persisted with the job).
  GangProgress gang;
  // While `starting`: what the worker last said it is doing (pulling the image, with progress),
  // the job's reason until it runs. Memory only: progress is no reason to write.
  std::string starting_message;
  // While `starting` or `running`: the limit the attempt runs under, as the plan that started it
  // said (memory only; after a restart, the spec's limit under the class default and maximum).
  Duration time_limit{0};
};

// The GPUs a job's allocation holds, over all its nodes.
double AllocatedGpus(const api::Job& job);
// `{"job", "user", "account"}`: what every job event says.
boost::json::object JobEventData(const api::Job& job);
// Moves `record` to `to` and records the `job.state` event (`why` is its reason).
void SetJobState(EventLog& events, Change& change, JobRecord& record, api::JobState to,
                 std::string why);

class JobRecords {
 public:
  using Quarantine =
      std::function<bool(std::string_view key, std::string_view value, std::string why)>;

  // Reads every stored job: the active ones come back into memory, finished ones leave only their
  // final state. Records that do not decode go to `quarantine`. Also reads `next_job_id`.
  Status Load(const state::Store& store, const Quarantine& quarantine);

  // --- In memory ----------------------------------------------------------------------------
  const std::unordered_map<uint64_t, JobRecord>& all() const { return jobs_; }
  JobRecord* Find(uint64_t id);
  const JobRecord* Find(uint64_t id) const;
  const std::set<uint64_t>& pending() const { return pending_; }
  const std::set<uint64_t>& running() const { return running_; }  // `starting` and `running`.
  // The final state of a job no longer in memory, if it is known.
  std::optional<api::JobState> FinishedState(uint64_t id) const;
  // Pending jobs of `user` in `account`.
  int64_t PendingOf(const std::string& account, const std::string& user) const;
  // Running tasks of array `array`.
  int32_t ArrayRunning(uint64_t array) const;
  // The live tasks of array `id` in id order; empty when `id` is no live array.
  std::vector<uint64_t> LiveArrayTasks(uint64_t id) const;
  // The live jobs of a user or of an account, in id order (null when none).
  const std::set<uint64_t>* LiveOfUser(const std::string& user) const;
  const std::set<uint64_t>* LiveOfAccount(const std::string& account) const;

  uint64_t TakeId() { return next_job_id_++; }
  uint64_t next_id() const { return next_job_id_; }

  // A new pending job.
  void AddPending(JobRecord record);
  // Pending -> starting.
  void Start(uint64_t id);
  // Starting/running -> no longer holding anything (before `Requeue` or `Finish`).
  void Stop(uint64_t id);
  // Back to pending (a requeue).
  void Requeue(uint64_t id);
  // A pending job that leaves the queue without running (a cancel), before `Finish`.
  void Unqueue(uint64_t id);
  // Reached terminal state `state`: leaves memory.
  void Finish(uint64_t id, api::JobState state);

  // --- On disk ------------------------------------------------------------------------------
  static void Persist(Change& change, const JobRecord& record);
  // The `job_index` entries of a new job.
  static void PutIndex(state::WriteBatch& batch, const api::Job& job);
  // `u/<user>/` or `a/<account>/` in `job_index`: one user's or account's jobs, in id order.
  static std::string IndexPrefix(char kind, std::string_view name);
  // Writes the `job_index` family for the jobs stored before it existed (once: a meta key marks
  // it done).
  static Status BuildIndex(state::Store& store);
  // A finished job from the store.
  static Result<api::Job> ReadStored(const state::Store& store, uint64_t id);
  // Deletes finished jobs that ended before `cutoff`. Looks at no more than `max_rows` stored
  // jobs per call, resuming where the last call stopped and starting over at the end.
  Change PruneHistory(const state::Store& store, size_t max_rows, Timestamp cutoff);

 private:
  void Remember(JobRecord record);
  void Forget(uint64_t id);

  std::unordered_map<uint64_t, JobRecord> jobs_;  // Every job that is not terminal.
  std::set<uint64_t> pending_;
  std::set<uint64_t> running_;  // `starting` and `running`.
  // Final states of jobs no longer in memory: dependencies need them.
  std::unordered_map<uint64_t, api::JobState> finished_states_;
  std::unordered_map<std::string, int64_t> pending_per_user_;  // "account\x1fuser" -> count.
  std::unordered_map<uint64_t, int32_t> array_running_;        // Running tasks per array id.
  // The tasks of an array have consecutive ids from the array's id to `last`: what a cancel or
  // hold of the array walks, instead of every job. `live` counts those still in `jobs_`.
  struct ArrayExtent {
    uint64_t last = 0;
    size_t live = 0;
  };
  std::unordered_map<uint64_t, ArrayExtent> arrays_;
  // The live jobs of each user and account: `queue` for one person reads theirs, not all.
  std::unordered_map<std::string, std::set<uint64_t>> live_by_user_;
  std::unordered_map<std::string, std::set<uint64_t>> live_by_account_;
  uint64_t next_job_id_ = 1;
  uint64_t prune_cursor_ = 0;  // `PruneHistory` goes on after this job id.
};

}  // namespace gsched::server
