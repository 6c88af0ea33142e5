// `ClusterState`: the scheduler's authoritative state - jobs, accounts, nodes, revoked tokens, the
// id and event counters - and every change to it (DESIGN.md sections 2, 4 and 5).
//
// Shape: apply in memory, commit, then tell. Each mutation updates memory at once and returns a
// `Change`: the `WriteBatch` that makes it durable, the events it produced (with their gap-free
// sequence numbers) and the messages for workers. The caller commits the batch and, only once it
// is durable, answers the client, publishes the events and sends the messages. Because one thread
// makes every change and the store commits in submission order, the disk always holds a prefix of
// the changes made in memory; a crash loses only changes nobody was told about.
//
// Threading: not thread-safe; owned by the service's state thread. No I/O here (the store is only
// read by `Load`), so the whole state machine is tested with a `MemoryStore` and a manual clock.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "config/scheduler_config.h"
#include "scheduler/api/types.h"
#include "scheduler/api/worker_messages.h"
#include "scheduler/common/clock.h"
#include "scheduler/common/status.h"
#include "scheduler/core/model.h"
#include "scheduler/core/run_time_prediction.h"
#include "scheduler/core/schedule.h"
#include "scheduler/server/stored_job.h"
#include "scheduler/state/store.h"

namespace gsched::server {

// Who is asking, from a verified token.
struct Principal {
  std::string user;
  api::Role role = api::Role::kUser;
  std::vector<std::string> accounts;  // The first is the default account.
  std::string token_id;
  Timestamp expires{};
  // Worker tokens: the node patterns they serve (`ServesNode` in token.h).
  std::vector<std::string> nodes;
};

// A message for the worker of one node.
struct Dispatch {
  std::string node;
  api::SchedulerMessage message;
};

struct Change {
  state::WriteBatch batch;
  std::vector<api::Event> events;
  std::vector<Dispatch> dispatches;
  bool reschedule = false;  // Something changed that a scheduling pass should look at.
  // Events that are not in the log (`job.reason`): never stored or replayed, published once the
  // log events made before them are. Their `seq` is the newest log event they follow.
  std::vector<api::Event> ephemeral;
};

struct NodeRecord {
  api::Node node;
  bool connected = false;
  Timestamp last_heartbeat{};
  uint64_t used_gpus = 0;  // Bitmask derived from running allocations.
  // The starting and running jobs with a part on this node, kept with `used_gpus`: a hello or a
  // lost node looks at these instead of every running job.
  std::set<uint64_t> jobs;
  // The state to return to when a `down` node is heard from again (an admin's drain survives).
  api::NodeState state_before_down = api::NodeState::kUp;
  int32_t used_cpus = 0;
  int64_t used_memory_mib = 0;
  // The ports the worker lends to rendezvous (`hello.rendezvous_ports`; the worker's default when
  // it does not say), and those that attempts with a part here hold.
  api::PortRange rendezvous_ports = api::kDefaultRendezvousPorts;
  std::set<int32_t> rendezvous_in_use;
};

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
};

// One row of `GET /v1/usage`: normalised GPU-hours (GPU-hours x the type's cost, preempted
// attempts at `preemption.usage_charge`) of one user in one account on one GPU type.
struct UsageRow {
  std::string account;
  std::string user;
  std::string gpu_type;
  double gpu_hours = 0;
};

struct UsageQuery {
  std::string account;  // This account and its subtree; empty: all.
  Timestamp since{};
  Timestamp until{};
};

struct UsageEntry {
  double value = 0;  // Normalised GPU-seconds as of `at`.
  Timestamp at{};
};

struct JobFilter {
  std::vector<api::JobState> states;  // Any of these; empty means every state.
  std::string user;
  std::string account;
  uint64_t after = 0;  // Ids greater than this.
  size_t limit = 1000;
};

class ClusterState {
 public:
  ClusterState(const config::SchedulerConfig& config, const Clock& clock);

  // Reads everything from `store`: non-terminal jobs, accounts, usage, nodes, revocations and the
  // counters. Called once before anything else. Records that do not decode are left out and
  // listed in `quarantined()`; fails only when the store cannot be read.
  Status Load(const state::Store& store);

  // A stored record that `Load` could not decode.
  struct QuarantinedRecord {
    state::Family family;
    std::string key;
    std::string value;
    std::string reason;
  };
  const std::vector<QuarantinedRecord>& quarantined() const { return quarantine_; }
  // The batch that moves the quarantined records aside: each is copied to the `meta` family
  // under `QuarantineKey` (with its reason) and deleted from its own.
  state::WriteBatch QuarantineBatch() const;
  // Writes the `job_index` family for the jobs stored before it existed (once: a meta key marks
  // it done). Called at start, after `Load`, before serving.
  Status BuildJobIndex(state::Store& store) const;
  static std::string QuarantineKey(state::Family family, std::string_view key);

  // --- Jobs ---------------------------------------------------------------------------------
  // Validates and queues the specs (an array expands to one job per index). `ids` gets the new ids.
  // `history`: the store, to check that finished jobs named in `depends_on` are the submitter's
  // to name; without it (the simulator) a finished job counts as visible.
  Result<Change> Submit(const Principal& who, std::vector<api::JobSpec> specs,
                        std::vector<uint64_t>* ids, const state::Store* history = nullptr);
  Result<Change> Cancel(const Principal& who, uint64_t id);
  Result<Change> Hold(const Principal& who, uint64_t id, bool hold);
  // A job the caller may see: from memory, else from the store (finished jobs).
  Result<api::Job> GetJob(const Principal& who, uint64_t id, const state::Store& store) const;
  std::vector<api::Job> ListJobs(const Principal& who, const JobFilter& filter,
                                 const state::Store& store) const;

  // --- Accounts -----------------------------------------------------------------------------
  Result<Change> PutAccount(const Principal& who, api::Account account);
  std::vector<api::Account> Accounts() const;
  // The accounts `who` may read (DESIGN.md section 11): admins all; a user their own accounts
  // whole and the accounts below and above them in outline (no members, no budget); a coordinator
  // their subtrees whole and the ancestors in outline; workers none.
  std::vector<api::Account> VisibleAccounts(const Principal& who) const;
  // Usage in [since, until) that `who` may see (admins all, coordinators their subtrees, users
  // their own), from the hourly ledger of ended attempts plus running attempts so far. Ended
  // attempts count by whole hours: `since` rounds down and `until` up to the hour.
  // Fails when the ledger cannot be read: a partial report would be a wrong one.
  Result<std::vector<UsageRow>> UsageReport(const Principal& who, const UsageQuery& query,
                                            const state::Store& store) const;
  const std::map<std::string, api::Account>& account_map() const { return accounts_; }
  // Decayed usage as of now, in normalised GPU-hours, including running jobs so far.
  double UsageGpuHours(const std::string& account) const;

  // --- Nodes and workers --------------------------------------------------------------------
  // `who` must be a worker token that serves `hello.node` (the service checks the patterns).
  Result<Change> WorkerHello(const Principal& who, const api::Hello& hello);
  // Whether `attempt` of `job` is the live attempt and has a part on `node`: the only updates a
  // node's worker may make.
  bool AttemptPlacedOn(uint64_t job, uint32_t attempt, const std::string& node) const;
  Result<Change> WorkerHeartbeat(const api::Heartbeat& hb);
  Result<Change> WorkerJobUpdate(const std::string& node, const api::JobUpdate& update);
  Result<Change> WorkerGpuHealth(const api::GpuHealthReport& report);
  Change WorkerDisconnected(const std::string& node);
  Result<Change> DrainNode(const Principal& who, const std::string& node,
                           const std::string& reason);
  Result<Change> ResumeNode(const Principal& who, const std::string& node);
  // Marks silent nodes `down`, and their jobs `node_fail` after the lost timeout.
  Change CheckNodeTimeouts();
  // Deletes finished jobs that ended more than `history.retention` ago. Looks at no more than
  // `max_rows` stored jobs per call, resuming where the last call stopped and starting over at
  // the end, so that each call is short however large the history is.
  Change PruneHistory(const state::Store& store, size_t max_rows);
  // Kills attempts whose grace after a kill or preemption ran out, and jobs past their limit.
  Change EnforceDeadlines();
  std::vector<api::Node> Nodes() const;

  // --- Tokens -------------------------------------------------------------------------------
  Change RecordToken(const Principal& who, const std::string& token_id, const std::string& user);
  Result<Change> RevokeToken(const Principal& who, const std::string& token_id);
  bool IsRevoked(const std::string& token_id) const { return revoked_.contains(token_id); }

  // --- Scheduling ---------------------------------------------------------------------------
  // The snapshot the core decides over. `job_ids` maps pending indices back.
  core::Snapshot BuildSnapshot() const;
  // Re-validates `plan` against the state now, applies what still holds, and returns the change
  // (starts become `starting` with their launch messages, preemptions become kills).
  Change ApplyPlan(const core::Snapshot& snapshot, const core::Plan& plan);
  const core::PolicyConfig& policy() const { return policy_; }
  // `job.reason` events a pass emits at most; further changes wait for the next passes, so that a
  // change that moves every pending job's estimate reaches watchers as a bounded stream.
  static constexpr size_t kMaxReasonEventsPerPass = 1000;
  // An estimated start that moved less than this since the last `job.reason` is no news.
  static constexpr Duration kReasonStartStep = Seconds(60);

  // --- The event log ------------------------------------------------------------------------
  // Deletes the oldest events beyond `events.max_events` or older than `events.retention` (the
  // newest event always stays). Watchers asking for pruned events get a `resync`.
  Change PruneEvents();
  // The oldest event still in the log (`last_event_seq() + 1` when it is empty).
  uint64_t first_event_seq() const { return first_event_seq_; }
  // An event outside the log (`account.usage`, `cluster.summary`): stamped now, with the seq of
  // the newest log event.
  api::Event EphemeralEvent(std::string type, boost::json::object data) const;
  // Whether `account` is `root` or below it.
  bool InAccountSubtree(const std::string& account, const std::string& root) const;

  // --- Introspection ------------------------------------------------------------------------
  uint64_t last_event_seq() const { return next_seq_ - 1; }
  const std::deque<api::Event>& recent_events() const { return recent_events_; }
  size_t pending_count() const { return pending_.size(); }
  size_t running_count() const { return running_.size(); }
  const std::set<uint64_t>& running_ids() const { return running_; }  // Starting and running.
  const std::unordered_map<uint64_t, JobRecord>& jobs() const { return jobs_; }
  const std::map<std::string, NodeRecord>& nodes() const { return nodes_; }

  // Whether `who` may act on jobs of `account` (own account, coordinator of its subtree, admin).
  bool MayManageAccount(const Principal& who, const std::string& account) const;

 private:
  void AddEvent(Change& change, std::string type, boost::json::object data);
  void PersistJob(Change& change, const JobRecord& record);
  // Moves a node to `to`, persists it and records a `node.state` event.
  void SetNodeState(Change& change, NodeRecord& rec, api::NodeState to, std::string reason,
                    std::string by = {});
  void NodeBackFromDown(Change& change, NodeRecord& rec, std::string reason);
  void SetJobState(Change& change, JobRecord& record, api::JobState to, std::string why);
  // Ends the current attempt of a starting/running job: frees its GPUs, charges usage, records the
  // attempt, and requeues or finishes the job.
  void FinishAttempt(Change& change, JobRecord& record, api::JobState end_state,
                     std::optional<int32_t> exit_code, std::optional<std::string> signal,
                     std::string message);
  // One node's part of the current attempt ended. The attempt ends when every part has: as the
  // scheduler's kill named it (cancelled, preempted, timeout), else as its first failed part
  // ended, else completed. The first part to fail stops the others, with their grace.
  void EndPart(Change& change, JobRecord& record, const std::string& node, PartEnd end);
  // Takes the GPUs and rendezvous port of a starting or running job on its nodes, and gives
  // them back.
  void HoldAllocation(const JobRecord& record);
  void ReleaseAllocation(const JobRecord& record);
  // Where a new attempt on `nodes` (rank order) meets: rank 0's address and a port of its range
  // that no attempt with a part on any of `nodes` holds. Absent when every port is held.
  std::optional<api::Rendezvous> ChooseRendezvous(const std::vector<std::string>& nodes,
                                                  uint64_t job, uint32_t attempt) const;
  void ChargeUsage(Change& change, const JobRecord& record, Timestamp end, bool preempted);
  // Charges `normalised_gpus` over [from, to) to the budget of `account` and of every ancestor
  // (the part within each period), writing the ancestors' usage records; returns what `account`
  // has used of its own budget.
  double ChargeBudgets(const std::string& account, double normalised_gpus, Timestamp from,
                       Timestamp to, Change& change);
  bool MaySeeJob(const Principal& who, const api::Job& job) const;
  // A copy of a job in memory with its pending reason from the last pass.
  api::Job WithReason(const api::Job& job) const;
  bool IsInSubtree(const std::string& account, const std::string& root) const;
  double GpuCost(const std::string& type) const;
  Status ValidateSpec(const Principal& who, api::JobSpec& spec, const state::Store* history) const;
  // The limit a job runs under: its own, else its class default, at most the class maximum.
  Duration EffectiveTimeLimit(const api::JobSpec& spec) const;
  size_t RecentEventsCapacity() const;

  const config::SchedulerConfig& config_;
  const Clock& clock_;
  core::PolicyConfig policy_;

  std::unordered_map<uint64_t, JobRecord> jobs_;  // Every job that is not terminal.
  std::set<uint64_t> pending_;
  std::set<uint64_t> running_;  // `starting` and `running`.
  std::map<std::string, api::Account> accounts_;
  std::map<std::string, UsageEntry> usage_;
  std::map<std::string, double> budget_used_;  // Normalised GPU-hours in the budget period.
  // Users' recent run times against their limits, for the estimated starts; fed as attempts end,
  // in memory only (after a restart, estimates fall back to the limits until jobs finish again).
  core::RunTimeHistory run_times_;
  std::map<std::string, NodeRecord> nodes_;
  std::unordered_set<std::string> revoked_;
  // Final states of jobs no longer in memory: dependencies need them.
  std::unordered_map<uint64_t, api::JobState> finished_states_;
  // The last pass's reasons for pending jobs, sorted by job id, and the explanations they index.
  // Kept apart from the jobs so that a million pending jobs do not each carry a copy.
  std::vector<core::PendingReason> reasons_;
  std::vector<core::Explanation> explanations_;
  // What the last `job.reason` event said of each pending job, sorted by job id. The first pass
  // after `Load` records what it finds without events (`reasons_baselined_`): the feed reports
  // changes, and a restart is not one for a watcher.
  struct ReportedReason {
    uint64_t job = 0;
    api::ReasonCode code = api::ReasonCode::kResources;
    std::optional<Timestamp> estimated_start;
  };
  void ReportReasonChanges(Change& change);
  std::vector<ReportedReason> reported_reasons_;
  bool reasons_baselined_ = false;
  uint64_t prune_cursor_ = 0;  // `PruneHistory` goes on after this job id.
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
  // The live tasks of array `id` in id order; empty when `id` is no live array.
  std::vector<uint64_t> LiveArrayTasks(uint64_t id) const;
  void Remember(JobRecord record);
  // Drops a job that reached a terminal state from memory.
  void Forget(uint64_t id);
  std::deque<std::pair<Timestamp, std::string>> recent_preemptions_;  // (time, account).

  std::vector<QuarantinedRecord> quarantine_;
  uint64_t next_job_id_ = 1;
  uint64_t next_seq_ = 1;
  uint64_t first_event_seq_ = 1;
  std::deque<api::Event> recent_events_;  // The newest events, for watch replays.
};

}  // namespace gsched::server
