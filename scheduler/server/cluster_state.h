// `ClusterState`: the scheduler's authoritative state - jobs, accounts, nodes, revoked tokens, the
// id and event counters - and every change to it (DESIGN.md sections 2, 4 and 5). A facade over
// parts with one job each, which it owns:
//   - `JobRecords` (job_records.h): the jobs in memory, their indices, and their stored records;
//   - `NodeRegistry` (node_registry.h): nodes, workers, health, timeouts, what attempts hold;
//   - `UsageBook` (usage_book.h): fair-share usage, budgets and the usage ledger;
//   - `Authorizer` (authorizer.h): every "may this caller see or do this";
//   - `EventLog` (event_log.h): the gap-free event log and its pruning;
//   - `BuildSnapshot` (snapshot_builder.h) and `PlanApplier` (plan_applier.h): the core's input,
//     and its plan re-validated and applied;
//   - `PendingReasons` (pending_reasons.h): why pending jobs wait, and `job.reason` events.
// What is left here is the job state machine (submit, cancel, hold, attempts that start, end,
// fail on a node or overrun; in cluster_state.cpp and cluster_state_attempts.cpp) and the account
// tree.
//
// Shape: apply in memory, commit, then tell. Each mutation updates memory at once and returns a
// `Change`: the `WriteBatch` that makes it durable, the events it produced (with their gap-free
// sequence numbers) and the messages for workers. The caller commits the batch and, only once it
// is durable, answers the client, publishes the events and sends the messages. Because one thread
// makes every change and the store commits in submission order, the disk always holds a prefix of
// the changes made in memory; a crash loses only changes nobody was told about.
//
// I/O: no writes (every write is a `Change` batch the caller commits), except `BuildJobIndex`,
// which commits the index it builds at start. Reads of the store it is handed: `Load` (at
// start); `GetJob` and `ListJobs` (finished jobs, which are not kept in memory); `UsageReport`
// (the ledger); `PruneHistory` (the stored jobs it walks); `Submit` with `history` (whether a
// finished job named in `depends_on` is the submitter's). Everything else is memory only, so the
// whole state machine is tested with a `MemoryStore` and a manual clock.
//
// Threading: not thread-safe; owned by the service's state thread. Exception: `policy()` is
// immutable after construction and is read by the scheduling thread.
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
#include "scheduler/server/authorizer.h"
#include "scheduler/server/change.h"
#include "scheduler/server/event_log.h"
#include "scheduler/server/job_records.h"
#include "scheduler/server/node_registry.h"
#include "scheduler/server/pending_reasons.h"
#include "scheduler/server/plan_applier.h"
#include "scheduler/server/stored_job.h"
#include "scheduler/server/usage_book.h"
#include "scheduler/state/store.h"

namespace gsched::server {

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
  // it done). Called at start, after `Load`, before serving. Commits to `store` itself.
  Status BuildJobIndex(state::Store& store) const { return JobRecords::BuildIndex(store); }
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
  // The accounts `who` may read (`Authorizer::ViewOfAccount`): whole, or in outline (no members,
  // no budget).
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
  // `who` must be a worker token that serves `hello.node` (checked here too).
  Result<Change> WorkerHello(const Principal& who, const api::Hello& hello);
  // Whether `attempt` of `job` is the live attempt and has a part on `node`: the only updates a
  // node's worker may make.
  bool AttemptPlacedOn(uint64_t job, uint32_t attempt, const std::string& node) const;
  Result<Change> WorkerHeartbeat(const api::Heartbeat& hb) { return nodes_.Heartbeat(hb); }
  Result<Change> WorkerJobUpdate(const std::string& node, const api::JobUpdate& update);
  Result<Change> WorkerGpuHealth(const api::GpuHealthReport& report) {
    return nodes_.GpuHealth(report);
  }
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
  std::vector<api::Node> Nodes() const { return nodes_.Nodes(); }

  // --- Tokens -------------------------------------------------------------------------------
  Change RecordToken(const Principal& who, const std::string& token_id, const std::string& user);
  Result<Change> RevokeToken(const Principal& who, const std::string& token_id);
  bool IsRevoked(const std::string& token_id) const { return revoked_.contains(token_id); }

  // --- Scheduling ---------------------------------------------------------------------------
  // The snapshot the core decides over.
  core::Snapshot BuildSnapshot() const;
  // Re-validates `plan` against the state now, applies what still holds (`PlanApplier`), and
  // returns the change (starts become `starting` with their launch messages, preemptions become
  // kills, changed pending reasons become `job.reason` events).
  Change ApplyPlan(const core::Snapshot& snapshot, const core::Plan& plan);
  const core::PolicyConfig& policy() const { return policy_; }
  static constexpr size_t kMaxReasonEventsPerPass = PendingReasons::kMaxEventsPerPass;
  static constexpr Duration kReasonStartStep = PendingReasons::kStartStep;

  // --- The event log ------------------------------------------------------------------------
  Change PruneEvents() { return events_.Prune(); }
  uint64_t first_event_seq() const { return events_.first_seq(); }
  api::Event EphemeralEvent(std::string type, boost::json::object data) const {
    return events_.Ephemeral(std::move(type), std::move(data));
  }
  // Whether `account` is `root` or below it.
  bool InAccountSubtree(const std::string& account, const std::string& root) const {
    return auth_.InSubtree(account, root);
  }

  // --- Introspection ------------------------------------------------------------------------
  uint64_t last_event_seq() const { return events_.last_seq(); }
  const std::deque<api::Event>& recent_events() const { return events_.recent(); }
  size_t pending_count() const { return jobs_.pending().size(); }
  size_t running_count() const { return jobs_.running().size(); }
  const std::set<uint64_t>& running_ids() const { return jobs_.running(); }
  const std::unordered_map<uint64_t, JobRecord>& jobs() const { return jobs_.all(); }
  const std::map<std::string, NodeRecord>& nodes() const { return nodes_.all(); }
  const Authorizer& authorizer() const { return auth_; }

  // Whether `who` may act on jobs of `account` (own account, coordinator of its subtree, admin).
  bool MayManageAccount(const Principal& who, const std::string& account) const {
    return auth_.MayActForAccount(who, account);
  }

 private:
  Status ValidateSpec(const Principal& who, api::JobSpec& spec, const state::Store* history) const;
  api::Job WithReason(const JobRecord& record) const { return reasons_.WithReason(record); }
  // Ends the current attempt of a starting/running job: frees its GPUs, charges usage, records the
  // attempt, and requeues or finishes the job.
  void FinishAttempt(Change& change, JobRecord& record, api::JobState end_state,
                     std::optional<int32_t> exit_code, std::optional<std::string> signal,
                     std::string message);
  // One node's part of the current attempt ended. The attempt ends when every part has: as the
  // scheduler's kill named it (cancelled, preempted, timeout), else as its first failed part
  // ended, else completed. The first part to fail stops the others, with their grace.
  void EndPart(Change& change, JobRecord& record, const std::string& node, PartEnd end);
  void ChargeUsage(Change& change, const JobRecord& record, Timestamp end, bool preempted);

  const config::SchedulerConfig& config_;
  const Clock& clock_;
  const core::PolicyConfig policy_;

  std::map<std::string, api::Account> accounts_;
  Authorizer auth_{accounts_};
  EventLog events_;
  NodeRegistry nodes_;
  JobRecords jobs_;
  UsageBook usage_;
  PlanApplier applier_;
  PendingReasons reasons_;
  // Users' recent run times against their limits, for the estimated starts; fed as attempts end,
  // in memory only (after a restart, estimates fall back to the limits until jobs finish again).
  core::RunTimeHistory run_times_;
  std::unordered_set<std::string> revoked_;
  std::vector<QuarantinedRecord> quarantine_;
};

}  // namespace gsched::server
