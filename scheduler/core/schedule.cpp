#include "scheduler/core/schedule.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "scheduler/core/eligibility.h"
#include "scheduler/core/entitlement.h"
#include "scheduler/core/estimate.h"
#include "scheduler/core/fairshare.h"
#include "scheduler/core/placement.h"
#include "scheduler/core/preemption.h"
#include "scheduler/core/priority.h"
#include "scheduler/core/quota.h"
#include "scheduler/core/run_time_prediction.h"

namespace gsched::core {

Explanation Plan::ExplanationFor(const PendingReason& r) const {
  return ExplanationOf(explanations, r);
}

Explanation ExplanationOf(const std::vector<Explanation>& explanations, const PendingReason& r) {
  Explanation e = explanations[r.explanation];
  if (e.code == api::ReasonCode::kPriority) {
    e.message = std::to_string(r.jobs_ahead) + " jobs ahead; " + e.message;
    e.details.push_back({"jobs_ahead", r.jobs_ahead});
  }
  if (r.estimated_start)
    e.details.push_back({"estimated_start_ms", ToUnixMillis(*r.estimated_start)});
  return e;
}

const PendingReason* Plan::FindPending(JobId job) const {
  for (const PendingReason& r : pending) {
    if (r.job == job)
      return &r;
  }
  return nullptr;
}

const JobStart* Plan::FindStart(JobId job) const {
  for (const JobStart& s : starts) {
    if (s.job == job)
      return &s;
  }
  return nullptr;
}

Duration EffectiveTimeLimit(Duration own, api::PriorityClass priority_class,
                            const PolicyConfig& config) {
  const ClassTimeLimits& c = config.class_limits[static_cast<size_t>(priority_class)];
  Duration tl = own.count() > 0 ? own : c.default_limit;
  return std::min(tl, c.max_limit);
}

namespace {

// A job's shape on one GPU type, the key of this pass's caches of what failed (capacity only
// shrinks within a pass, so what failed for a shape keeps failing). `preemptor` is 0, or the
// preemptor's account for the preemption cache.
struct ShapeKey {
  uint32_t type;
  int32_t nodes;
  int32_t gpus_per_node;
  int32_t cpus;
  int64_t mem;
  int64_t preemptor;
  LabelMask labels;
  api::Topology topology;
  bool operator==(const ShapeKey&) const = default;
};

ShapeKey ShapeKeyOf(const Shape& shape, uint32_t type, int64_t preemptor = 0) {
  return {
      type,      shape.nodes,  shape.gpus_per_node, shape.cpus_per_node, shape.memory_mib_per_node,
      preemptor, shape.labels, shape.topology};
}

// Mixes one value into a running hash.
void HashMix(uint64_t& h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
}

struct ShapeKeyHash {
  size_t operator()(const ShapeKey& k) const {
    uint64_t h = 1469598103934665603ull;
    HashMix(h, k.type);
    HashMix(h, static_cast<uint32_t>(k.nodes));
    HashMix(h, static_cast<uint32_t>(k.gpus_per_node));
    HashMix(h, static_cast<uint32_t>(k.cpus));
    HashMix(h, static_cast<uint64_t>(k.mem));
    HashMix(h, static_cast<uint64_t>(k.preemptor));
    HashMix(h, k.labels);
    HashMix(h, static_cast<uint64_t>(k.topology));
    return h;
  }
};

// What an explanation shared between pending jobs depends on: the jobs whose keys are equal get
// the same explanation (the first of them makes it). Made only by the named constructors, one per
// kind of shared reason, each saying what the reason depends on; every field is whole (no bits
// packed into one integer, so no two reasons can collide).
struct ReasonKey {
  enum class Kind : uint8_t {
    kPendingPerUser,
    kArrayConcurrent,
    kRunningGpusPerUser,
    kStartLimit,
    kNoGpuType,
    kStrictOrder,
    kQuota,
    kBudget,
  };
  Kind kind;
  uint64_t a = 0, b = 0, c = 0;

  // A user over `max_pending_jobs_per_user` in an account.
  static ReasonKey PendingPerUser(uint32_t account, uint32_t user) {
    return {Kind::kPendingPerUser, account, user};
  }
  // An array at its `array_max_concurrent`.
  static ReasonKey ArrayConcurrent(JobId array) { return {Kind::kArrayConcurrent, array.value()}; }
  // A user whose running GPUs plus the request exceed `max_running_gpus_per_user`.
  static ReasonKey RunningGpusPerUser(uint32_t account, uint32_t user, int64_t used,
                                      int64_t request) {
    return {Kind::kRunningGpusPerUser, uint64_t{account} << 32 | user, static_cast<uint64_t>(used),
            static_cast<uint64_t>(request)};
  }
  // `max_starts_per_cycle` reached.
  static ReasonKey StartLimit() { return {Kind::kStartLimit}; }
  // No node has any of the job's GPU types.
  static ReasonKey NoGpuType() { return {Kind::kNoGpuType}; }
  // Backfill is off and a job of higher priority waits for the type.
  static ReasonKey StrictOrder(uint32_t gpu_type) { return {Kind::kStrictOrder, gpu_type}; }
  // The quota refused a request (the numbers are those of the first job refused: usage only
  // grows during a pass).
  static ReasonKey Quota(uint32_t account, uint32_t gpu_type, int64_t request,
                         QuotaCheck::Outcome outcome) {
    return {Kind::kQuota, uint64_t{account} << 32 | gpu_type, static_cast<uint64_t>(request),
            static_cast<uint64_t>(outcome)};
  }
  // A budget that is spent, or that `needed` would overrun.
  static ReasonKey Budget(uint32_t account, bool exhausted, double needed) {
    return {Kind::kBudget, account, exhausted, std::bit_cast<uint64_t>(exhausted ? 0.0 : needed)};
  }

  bool operator==(const ReasonKey&) const = default;
};

struct ReasonKeyHash {
  size_t operator()(const ReasonKey& k) const {
    uint64_t h = 1469598103934665603ull;
    HashMix(h, static_cast<uint64_t>(k.kind));
    HashMix(h, k.a);
    HashMix(h, k.b);
    HashMix(h, k.c);
    return h;
  }
};

// What trying to start one job on each of its acceptable GPU types found (phases 4 and 5), for
// preemption, backfill and the explanation.
struct StartAttempt {
  bool started = false;
  std::optional<uint32_t> quota_reason, placement_reason, strict_reason, budget_reason;
  TypeMask admitted_blocked = 0;          // Types whose quota admitted the job but had no room.
  TypeMask within_guarantee_blocked = 0;  // Those of them within the account's guarantee.
};

// One scheduling pass: `Run` calls one function per phase of DESIGN.md section 3, numbered as
// there; phases 3b to 8 run per job, in `ScheduleJob`.
class Pass {
 public:
  Pass(const Snapshot& s, const PolicyConfig& c, Timestamp now)
      : s_(s),
        c_(c),
        now_(now),
        types_(static_cast<uint32_t>(s.gpu_types.size())),
        valid_types_(types_ >= 64 ? ~TypeMask{0} : (TypeMask{1} << types_) - 1),
        by_allocation_(c.weights.fairshare > 0 && !s.accounts.empty()),
        sums_(SumRunning(s)),
        pool_(s, sums_.nodes),
        ledger_(s),
        timeline_(s, now),
        counters_(std::move(sums_.capped_user_gpus)),
        budgets_(s, now),
        reservations_left_(c.backfill.enabled ? c.backfill.depth : 0),
        strict_first_(types_) {}

  Plan Run();

 private:
  // Phases, in the order `Run` calls them.
  void CountNodes();
  void FilterStatic();                            // 3a.
  std::vector<double> RegisterDemand();           // 4a (demand); returns the demand per account.
  void RankAccounts(std::vector<double> demand);  // 1.
  void OrderQueue();                              // 2.
  void ChargeRunning();                           // 4a (usage).
  void WalkQueue();                               // 3b to 8, per job, with pacing.
  void ScheduleJob(size_t rank);
  std::optional<uint32_t> DynamicIneligibility(const PendingJobInfo& job);     // 3b.
  StartAttempt TryStart(uint32_t i, const Shape& shape, Duration time_limit);  // 4 + 5.
  // 7. `*deferred`: the explanation when a reclaim was possible but does not pay yet.
  bool Reclaim(const PendingJobInfo& job, const Shape& shape, TypeMask types, int64_t ahead,
               std::optional<uint32_t>* deferred);
  std::optional<Timestamp> Reserve(const PendingJobInfo& job, const Shape& shape, TypeMask types,
                                   Duration time_limit);  // 6.
  uint32_t Explain(const StartAttempt& a);                // 8.
  void EstimateReservedStarts();                          // 8 (estimates).

  uint32_t AddExplanation(Explanation e) {
    plan_.explanations.push_back(std::move(e));
    return static_cast<uint32_t>(plan_.explanations.size() - 1);
  }
  void Pend(JobId job, uint32_t explanation, int64_t ahead, std::optional<Timestamp> est) {
    plan_.pending.push_back({job, explanation, ahead, est});
  }
  uint32_t CachedExplanation(const ReasonKey& key, auto make) {
    auto [it, inserted] = reasons_.try_emplace(key, 0);
    if (inserted)
      it->second = AddExplanation(make());
    return it->second;
  }
  uint32_t BudgetReason(const BudgetLedger::Check& b) {
    return CachedExplanation(ReasonKey::Budget(b.account, b.exhausted, b.needed), [&] {
      return b.exhausted ? ExplainBudget(s_, b.account, b.granted, b.consumed)
                         : ExplainBudgetOverrun(s_, b.account, b.granted, b.consumed, b.remaining,
                                                b.needed);
    });
  }
  uint32_t ClassifyPlacementFailure(const Shape& shape, uint32_t type, Timestamp end);
  // Whether `job` would start within its account's guarantee on some acceptable type now.
  // Usage only grows during a pass, so a request that is not within the guarantee stays so, and
  // so does any larger one: remembered per (account, type), which spares most of the checks
  // when a deep queue holds many jobs of accounts at their entitlement.
  bool WithinGuarantee(const PendingJobInfo& job) {
    if (not_within_.empty())
      not_within_.assign(s_.accounts.size() * types_, std::numeric_limits<int64_t>::max());
    const int64_t request = RequestedGpus(job);
    for (TypeMask m = job.gpu_types & valid_types_; m; m &= m - 1) {
      const uint32_t t = static_cast<uint32_t>(__builtin_ctzll(m));
      int64_t& smallest_refused = not_within_[job.account * types_ + t];
      if (request >= smallest_refused)
        continue;
      if (ledger_.Check(job.account, t, request, pool_.FreeOfType(t)).outcome ==
          QuotaCheck::Outcome::kWithinGuarantee)
        return true;
      smallest_refused = request;
    }
    return false;
  }
  // Pacing: whether the job waits until every other job was seen (its account already holds
  // its entitlement, this pass's starts counted).
  bool Paced(const PendingJobInfo& job) {
    return by_allocation_ && held_[job.account] >= entitled_[job.account] &&
           job.priority_class != api::PriorityClass::kHigh && !WithinGuarantee(job);
  }
  // The pool as it was before this pass started anything: built from the snapshot on first use,
  // since most passes never ask.
  const NodePool& Initial() {
    if (!initial_)
      initial_.emplace(s_, sums_.nodes);
    return *initial_;
  }
  // Built on first use: most passes preempt nothing.
  PreemptionPlanner& Preemption();
  // The acceptable GPU type with the lowest cost among those some node has (the first such), or
  // the first type when there is none.
  uint32_t CheapestType(TypeMask types) const {
    uint32_t best = 0;
    bool found = false;
    for (uint32_t t = 0; t < s_.gpu_types.size() && t < 64; ++t) {
      if ((types & present_types_) >> t & 1 &&
          (!found || s_.gpu_types[t].cost < s_.gpu_types[best].cost)) {
        best = t;
        found = true;
      }
    }
    return best;
  }
  double NormalisedRequest(const PendingJobInfo& job, uint32_t type) const {
    const double cost = type < s_.gpu_types.size() ? s_.gpu_types[type].cost : 1.0;
    return static_cast<double>(RequestedGpus(job)) * cost;
  }

  const Snapshot& s_;
  const PolicyConfig& c_;
  Timestamp now_;
  const uint32_t types_;
  const TypeMask valid_types_;
  // Fair share weighs what accounts hold against their entitlements (`held_`, `entitled_`).
  const bool by_allocation_;
  Plan plan_;
  RunningSums sums_;
  NodePool pool_;
  std::optional<NodePool> initial_;
  std::optional<PreemptionPlanner> preemption_;
  std::optional<FairShareTree> fairshare_;
  QuotaLedger ledger_;
  Timeline timeline_;
  EligibilityCounters counters_;
  BudgetLedger budgets_;
  int64_t cluster_gpus_ = 0;
  TypeMask present_types_ = 0;  // GPU types that some node has.
  // The eligible jobs (indices into the snapshot's pending jobs): in memory order after phase
  // 3a, in priority order after phase 2. `as_preemptible_` is per pending job: its account's
  // budget does not fit it, and the account's policy runs it as preemptible.
  std::vector<uint32_t> order_;
  std::vector<uint8_t> as_preemptible_;
  JobId first_eligible_;
  // Placements that failed: a job of the shape that ends at or after `end_ms` fails too (a later
  // end can only lose the reserved GPUs that a job over before the reservation may use). The
  // explanation (which does not depend on the end) is the first such job's.
  struct ShapeFailure {
    int64_t end_ms;
    uint32_t explanation;
  };
  std::unordered_map<ShapeKey, ShapeFailure, ShapeKeyHash> shape_fail_;
  // Per shape and preemptor's account: the least work (GPU-ms) a reclaim was found to destroy,
  // `kNoVictims` when none was possible. Only grows within a pass (starts and reservations take
  // capacity, chosen victims are taken), so a job whose wait does not pay for it is refused at
  // once.
  static constexpr int64_t kNoVictims = std::numeric_limits<int64_t>::max();
  std::unordered_map<ShapeKey, int64_t, ShapeKeyHash> reclaim_floor_;
  // Backfill: the (type, shape) never fits, even when everything running has ended.
  std::unordered_set<ShapeKey, ShapeKeyHash> never_fits_;
  std::unordered_map<ReasonKey, uint32_t, ReasonKeyHash> reasons_;
  int32_t reservations_left_;
  // Without backfill the order is strict: once a job that passed its quota cannot be placed on a
  // GPU type, no later job starts on that type in this pass (it would delay the blocked one).
  TypeMask strict_blocked_ = 0;
  std::vector<JobId> strict_first_;  // Per type: the job that blocked it.
  // Per account, normalised GPUs: held (running, plus this pass's starts) and entitled; empty
  // when fair share does not weigh.
  std::vector<double> held_, entitled_;
  // Per (account, GPU type): the smallest request found not within the guarantee in this pass.
  std::vector<int64_t> not_within_;
  // For the estimates (phase 8): each start's predicted end (parallel to `plan_.starts`), and
  // each reserved job's request with the index of its `PendingReason`.
  std::vector<Timestamp> start_predicted_end_;
  std::vector<EstimateRequest> estimate_requests_;
  std::vector<size_t> estimate_slots_;
};

PreemptionPlanner& Pass::Preemption() {
  if (!preemption_) {
    std::vector<double> running_priority(s_.running.size(), 0.0);
    for (uint32_t r = 0; r < s_.running.size(); ++r) {
      const RunningJobInfo& j = s_.running[r];
      const api::PriorityClass cls =
          j.preemptible ? api::PriorityClass::kPreemptible : j.priority_class;
      running_priority[r] = c_.weights.fairshare * fairshare_->Factor(j.account) +
                            c_.weights.priority_class * ClassFactor(cls);
    }
    preemption_.emplace(s_, c_, now_, std::move(running_priority));
  }
  return *preemption_;
}

uint32_t Pass::ClassifyPlacementFailure(const Shape& shape, uint32_t type, Timestamp end) {
  if (auto p = pool_.Find(shape, type, end, /*respect_reservations=*/false)) {
    for (const NodeAllocation& a : p->nodes) {
      if (pool_.Reserved(a.node) > 0)
        return AddExplanation(ExplainReservation(pool_.ReservedBy(a.node)));
    }
  }
  if (Initial().Find(shape, type, end, false))
    return AddExplanation(
        ExplainPriority(first_eligible_, "higher-priority jobs took the free GPUs"));
  bool fits_any = false;
  if (shape.topology != api::Topology::kAny) {
    Shape any = shape;
    any.topology = api::Topology::kAny;
    fits_any = Initial().Find(any, type, end, false).has_value();
  }
  return AddExplanation(
      ExplainCapacity(s_, type, initial_->Capacity(shape, type), shape, fits_any));
}

Plan Pass::Run() {
  plan_.stats.pending = static_cast<int64_t>(s_.pending.size());
  plan_.pending.reserve(s_.pending.size());
  CountNodes();
  FilterStatic();
  RankAccounts(RegisterDemand());
  OrderQueue();
  ChargeRunning();
  WalkQueue();
  EstimateReservedStarts();
  return std::move(plan_);
}

void Pass::CountNodes() {
  for (const NodeInfo& n : s_.nodes) {
    cluster_gpus_ += n.gpu_count;
    if (n.gpu_type < 64)
      present_types_ |= TypeMask{1} << n.gpu_type;
  }
}

// 3a. Static eligibility (holds, dependencies, budgets) before ordering, so that only eligible
// jobs are sorted.
void Pass::FilterStatic() {
  order_.reserve(s_.pending.size());
  as_preemptible_.assign(s_.pending.size(), 0);
  const uint32_t held = AddExplanation(ExplainHeld());
  for (uint32_t i = 0; i < s_.pending.size(); ++i) {
    const PendingJobInfo& job = s_.pending[i];
    if (job.held) {
      Pend(job.id, held, 0, std::nullopt);
      continue;
    }
    if (!job.dependencies.empty()) {
      const DependencyCheck d = CheckDependencies(job);
      if (d.state != DependencyState::kSatisfied) {
        Pend(job.id,
             AddExplanation(ExplainDependency(d.blocking, d.type,
                                              d.state == DependencyState::kNeverSatisfied)),
             0, std::nullopt);
        continue;
      }
    }
    // Budgets: a job waits (or runs as preemptible, per the account) when what it may use until
    // its time limit, at its cheapest acceptable GPU type, does not fit what is left.
    if (budgets_.active()) {
      const BudgetLedger::Check b =
          budgets_.Fits(job.account, NormalisedRequest(job, CheapestType(job.gpu_types)),
                        now_ + EffectiveTimeLimit(job, c_));
      if (!b.fits) {
        if (b.policy == api::BudgetExhaustedPolicy::kHold) {
          Pend(job.id, BudgetReason(b), 0, std::nullopt);
          continue;
        }
        as_preemptible_[i] = 1;
      }
    }
    order_.push_back(i);
  }
  plan_.stats.eligible = static_cast<int64_t>(order_.size());
}

// 4a (part). Pending demand protects unused guarantees from borrowers; registered while `order_`
// is still in memory order. The same walk sums each account's pending demand in normalised GPUs
// (at the cheapest acceptable type some node has, as `CheapestType`), for the entitlement.
std::vector<double> Pass::RegisterDemand() {
  std::vector<double> demand(by_allocation_ ? s_.accounts.size() : 0, 0.0);
  for (uint32_t i : order_) {
    const PendingJobInfo& job = s_.pending[i];
    double cheapest = std::numeric_limits<double>::infinity();
    for (TypeMask m = job.gpu_types & valid_types_; m; m &= m - 1) {
      const uint32_t t = static_cast<uint32_t>(__builtin_ctzll(m));
      ledger_.AddDemand(job.account, t, RequestedGpus(job));
      if (present_types_ >> t & 1)
        cheapest = std::min(cheapest, s_.gpu_types[t].cost);
    }
    if (by_allocation_) {
      if (cheapest == std::numeric_limits<double>::infinity())
        cheapest = s_.gpu_types.empty() ? 1.0 : s_.gpu_types[0].cost;
      demand[job.account] += static_cast<double>(RequestedGpus(job)) * cheapest;
    }
  }
  return demand;
}

// 1. Usage and fair share: decayed usage, Fair-Tree ranking of the leaves, and (when fair share
// weighs at all) what each account holds now against its entitlement: the max-min split of the
// schedulable GPUs by shares, capped at what the account's running and eligible pending jobs ask
// for (normalised GPUs, as the simulator's `fair_share_error` counts them).
void Pass::RankAccounts(std::vector<double> demand) {
  if (by_allocation_) {
    held_.assign(s_.accounts.size(), 0.0);
    for (uint32_t a = 0; a < s_.accounts.size(); ++a) {
      for (uint32_t t = 0; t < types_; ++t)
        held_[a] +=
            static_cast<double>(sums_.account_type_gpus[a * types_ + t]) * s_.gpu_types[t].cost;
      demand[a] += held_[a];
    }
    double capacity = 0;
    for (uint32_t n = 0; n < s_.nodes.size(); ++n) {
      if (pool_.Schedulable(n))
        capacity += Popcount(pool_.HealthyMask(n)) * s_.gpu_types[s_.nodes[n].gpu_type].cost;
    }
    entitled_ = EntitlementSplit(s_.accounts).Split(demand, capacity);
  }
  fairshare_.emplace(FairShareTree::Build(s_.accounts, now_, c_.half_life, held_, entitled_));
}

// 2. Priority: computed once, then one sort of contiguous keys.
void Pass::OrderQueue() {
  struct Ranked {
    QueueKey key;
    uint32_t index;
  };
  std::vector<Ranked> ranked;
  ranked.reserve(order_.size());
  for (uint32_t i : order_) {
    const PendingJobInfo& job = s_.pending[i];
    const api::PriorityClass cls =
        as_preemptible_[i] ? api::PriorityClass::kPreemptible : job.priority_class;
    const PriorityFactors f =
        ComputeFactors(job, fairshare_->Factor(job.account), cluster_gpus_, cls, now_, c_.age_max);
    ranked.push_back(
        {{WeightedPriority(f, c_.weights, job.admin_adjustment), job.submit_time, job.id}, i});
  }
  std::sort(ranked.begin(), ranked.end(),
            [](const Ranked& a, const Ranked& b) { return RanksBefore(a.key, b.key); });
  for (size_t k = 0; k < ranked.size(); ++k)
    order_[k] = ranked[k].index;
  if (!order_.empty())
    first_eligible_ = s_.pending[order_.front()].id;
}

// 4a. Quota ledger: running GPUs up the account chains (summed per account and type first, so
// that each chain is walked once, not once per running job).
void Pass::ChargeRunning() {
  for (uint32_t a = 0; a < s_.accounts.size(); ++a) {
    for (uint32_t t = 0; t < types_; ++t) {
      if (const int64_t used = sums_.account_type_gpus[a * types_ + t]; used != 0)
        ledger_.AddUsed(a, t, used);
    }
  }
}

// The queue, in priority order: phases 3b (counters), 4 (quota), 5 (placement), 6 (backfill),
// 7 (preemption) and 8 (explanation) per job.
// Pacing: a job whose account already holds its entitlement (allocation counted with this pass's
// starts) waits until every other job was seen, so that what frees up goes first to the accounts
// still owed GPUs; then the deferred jobs, in their order, take what is left (work conserving,
// and behind the reservations of the jobs before them). `high` class jobs are never deferred,
// nor jobs within their account's guarantee: those GPUs are promised to them, and deferring them
// would only lend them to borrowers that the guarantee then preempts.
void Pass::WalkQueue() {
  std::vector<size_t> deferred;
  for (size_t step = 0; step < order_.size() + deferred.size(); ++step) {
    const size_t rank = step < order_.size() ? step : deferred[step - order_.size()];
    if (step < order_.size() && Paced(s_.pending[order_[rank]])) {
      deferred.push_back(rank);
      continue;
    }
    if (rank + 8 < order_.size()) {
      // The queue is visited in priority order, i.e. at random in memory.
      const char* ahead_job = reinterpret_cast<const char*>(&s_.pending[order_[rank + 8]]);
      __builtin_prefetch(ahead_job);
      __builtin_prefetch(ahead_job + 64);
    }
    ScheduleJob(rank);
  }
}

// Inlined (as is `DynamicIneligibility`) into the walk over the queue: most of a deep queue stops
// at 3b, and as calls of their own the two cost about 3% of a pass over 100,000 jobs.
[[gnu::always_inline]] inline void Pass::ScheduleJob(size_t rank) {
  const uint32_t i = order_[rank];
  const PendingJobInfo& job = s_.pending[i];
  const int64_t ahead = static_cast<int64_t>(rank);
  if (std::optional<uint32_t> why = DynamicIneligibility(job)) {
    Pend(job.id, *why, ahead, std::nullopt);
    return;
  }
  const Duration time_limit = EffectiveTimeLimit(job, c_);
  const Shape shape = ShapeOf(job);
  const StartAttempt a = TryStart(i, shape, time_limit);
  if (a.started)
    return;
  std::optional<uint32_t> deferred;
  if (a.within_guarantee_blocked && c_.preemption.enabled && !Preemption().CapReached() &&
      Reclaim(job, shape, a.within_guarantee_blocked, ahead, &deferred))
    return;
  std::optional<Timestamp> estimated;
  if (a.admitted_blocked && reservations_left_ > 0) {
    --reservations_left_;
    estimated = Reserve(job, shape, a.admitted_blocked, time_limit);
  }
  Pend(job.id, deferred && !a.budget_reason ? *deferred : Explain(a), ahead, estimated);
}

// 3b. Eligibility that depends on what is running and on this pass's starts: the explanation
// when the job may not start now.
[[gnu::always_inline]] inline std::optional<uint32_t> Pass::DynamicIneligibility(
    const PendingJobInfo& job) {
  const AccountInfo& account = s_.accounts[job.account];
  const int64_t request = RequestedGpus(job);
  if (account.max_pending_jobs_per_user != kUnlimited) {
    counters_.CountPending(job.account, job.user);
    if (counters_.UserPendingSeen(job.account, job.user) > account.max_pending_jobs_per_user) {
      return CachedExplanation(ReasonKey::PendingPerUser(job.account, job.user), [&] {
        return ExplainUserLimit("max_pending_jobs_per_user", account.max_pending_jobs_per_user, 1,
                                account.max_pending_jobs_per_user);
      });
    }
  }
  if (job.array_parent.value() != 0 && job.array_max_concurrent > 0 &&
      counters_.ArrayRunning(job) >= job.array_max_concurrent) {
    return CachedExplanation(ReasonKey::ArrayConcurrent(job.array_parent), [&] {
      return ExplainUserLimit("array_max_concurrent", counters_.ArrayRunning(job), 1,
                              job.array_max_concurrent);
    });
  }
  if (account.max_running_gpus_per_user != kUnlimited) {
    // Shared by the user's jobs that ask the same while the user's usage stays the same.
    const int64_t used = counters_.UserGpus(job.account, job.user);
    if (used + request > account.max_running_gpus_per_user) {
      return CachedExplanation(ReasonKey::RunningGpusPerUser(job.account, job.user, used, request),
                               [&] {
                                 return ExplainUserLimit("max_running_gpus_per_user", used, request,
                                                         account.max_running_gpus_per_user);
                               });
    }
  }
  if (c_.max_starts_per_cycle > 0 &&
      plan_.stats.started >= static_cast<int64_t>(c_.max_starts_per_cycle)) {
    return CachedExplanation(ReasonKey::StartLimit(), [&] {
      return ExplainPriority(first_eligible_, "start limit of this cycle reached");
    });
  }
  return std::nullopt;
}

// 4 + 5. Quota admission, then placement, for each acceptable GPU type in index order; the first
// type that admits and places the job starts it.
StartAttempt Pass::TryStart(uint32_t i, const Shape& shape, Duration time_limit) {
  const PendingJobInfo& job = s_.pending[i];
  const int64_t request = RequestedGpus(job);
  const Timestamp end = now_ + time_limit;
  const int64_t end_ms = ToUnixMillis(end);
  StartAttempt a;
  // Types no node has are tried only when the job accepts no other: a job of any type that its
  // account's limit keeps off the cluster's one type waits for `quota`, not for "0 b200 GPUs".
  TypeMask types = job.gpu_types & valid_types_;
  if (types & present_types_)
    types &= present_types_;
  for (TypeMask m = types; m; m &= m - 1) {
    const uint32_t t = static_cast<uint32_t>(__builtin_ctzll(m));
    if (strict_blocked_ & (TypeMask{1} << t)) {
      if (!a.strict_reason) {
        a.strict_reason = CachedExplanation(ReasonKey::StrictOrder(t), [&] {
          return ExplainPriority(strict_first_[t],
                                 "backfill is off and a higher-priority job waits for " +
                                     s_.gpu_types[t].name + " GPUs");
        });
      }
      continue;
    }
    // Budgets again on this type's cost, with this pass's starts counted.
    bool over_budget = false;
    if (budgets_.active() && !as_preemptible_[i]) {
      const BudgetLedger::Check b = budgets_.Fits(job.account, NormalisedRequest(job, t), end);
      if (!b.fits) {
        if (b.policy == api::BudgetExhaustedPolicy::kHold) {
          if (!a.budget_reason)
            a.budget_reason = BudgetReason(b);
          continue;
        }
        over_budget = true;
      }
    }
    const QuotaCheck q = ledger_.Check(job.account, t, request, pool_.FreeOfType(t));
    if (!q.admitted()) {
      if (!a.quota_reason) {
        a.quota_reason = CachedExplanation(ReasonKey::Quota(job.account, t, request, q.outcome),
                                           [&] { return ExplainQuota(s_, t, q, request); });
      }
      continue;
    }
    const ShapeKey key = ShapeKeyOf(shape, t);
    auto cached = shape_fail_.find(key);
    std::optional<Placement> placement;
    if (cached == shape_fail_.end() || end_ms < cached->second.end_ms) {
      ++plan_.stats.placement_attempts;
      placement = pool_.Find(shape, t, end);
    } else {
      ++plan_.stats.shape_cache_hits;
    }
    if (!placement) {
      uint32_t why;
      if (cached != shape_fail_.end()) {
        why = cached->second.explanation;
        cached->second.end_ms = std::min(cached->second.end_ms, end_ms);
      } else {
        why = ClassifyPlacementFailure(shape, t, end);
        shape_fail_.emplace(key, ShapeFailure{end_ms, why});
      }
      if (!a.placement_reason)
        a.placement_reason = why;
      if (!c_.backfill.enabled && !(strict_blocked_ & (TypeMask{1} << t))) {
        strict_blocked_ |= TypeMask{1} << t;
        strict_first_[t] = job.id;
      }
      a.admitted_blocked |= TypeMask{1} << t;
      if (q.outcome == QuotaCheck::Outcome::kWithinGuarantee)
        a.within_guarantee_blocked |= TypeMask{1} << t;
      continue;
    }
    pool_.Commit(*placement);
    ledger_.Charge(job.account, t, request);
    if (by_allocation_)
      held_[job.account] += NormalisedRequest(job, t);
    budgets_.Commit(job.account, NormalisedRequest(job, t), end);
    counters_.RecordStart(job);
    timeline_.AddStart(placement->nodes, end, pool_);
    JobStart st;
    st.job = job.id;
    st.attempt = Attempt(job.attempt.value() + 1);
    st.account = job.account;
    st.gpu_type = t;
    st.nodes = std::move(placement->nodes);
    st.time_limit = time_limit;
    st.end = end;
    st.borrowing = q.outcome == QuotaCheck::Outcome::kBorrowing;
    st.runs_as_preemptible = as_preemptible_[i] != 0 || over_budget;
    plan_.starts.push_back(std::move(st));
    start_predicted_end_.push_back(now_ + PredictedRunTime(s_, job, time_limit));
    ++plan_.stats.started;
    a.started = true;
    break;
  }
  return a;
}

// 7. Preemption: a job within its guarantee reclaims it from borrowers and preemptible jobs when
// the reclaim pays for the work it destroys, and within `max_reclaim_wait` (D) of its submission
// at the latest. It reclaims when any of these holds:
//   - it has waited D;
//   - its wait pays: its GPUs x the time since submit >= `reclaim_wait_factor` x the GPU-ms the
//     cheapest choice of victims loses;
//   - no GPUs free up for it within D of its submission without a reclaim (the backfill timeline,
//     running jobs ending at their time limits): waiting would not serve it in time.
// Otherwise it takes GPUs as they free up, keeping its backfill reservation, and a borrower is
// not thrown away ten minutes into its work for a job that GPUs freeing up elsewhere serve as
// soon. Whether victims were chosen (the job then waits for them, with a reservation).
bool Pass::Reclaim(const PendingJobInfo& job, const Shape& shape, TypeMask types, int64_t ahead,
                   std::optional<uint32_t>* deferred) {
  PreemptionPlanner& preemption = Preemption();
  const AccountInfo& account = s_.accounts[job.account];
  const Duration waited = std::max(Duration(0), now_ - job.submit_time);
  const int64_t waited_gpu_ms = waited.count() * RequestedGpus(job);
  const Timestamp reclaim_by = job.submit_time + c_.preemption.max_reclaim_wait;
  int64_t cheapest_refused = kNoVictims;
  for (TypeMask m = types; m; m &= m - 1) {
    const uint32_t t = static_cast<uint32_t>(__builtin_ctzll(m));
    std::optional<bool> frees_too_late;  // Asked of the backfill timeline once per type.
    auto pays = [&](int64_t lost_gpu_ms) {
      if (now_ >= reclaim_by ||
          c_.preemption.reclaim_wait_factor * static_cast<double>(lost_gpu_ms) <=
              static_cast<double>(waited_gpu_ms))
        return true;
      if (!frees_too_late) {
        const std::optional<Reservation> natural = timeline_.Earliest(pool_, shape, t, job.id);
        frees_too_late = !natural || natural->start >= reclaim_by;
      }
      return *frees_too_late;
    };
    const ShapeKey key = ShapeKeyOf(shape, t, int64_t{job.account});
    if (auto known = reclaim_floor_.find(key); known != reclaim_floor_.end()) {
      if (known->second == kNoVictims)
        continue;
      if (!pays(known->second)) {
        cheapest_refused = std::min(cheapest_refused, known->second);
        continue;
      }
    }
    auto choice = preemption.Choose(pool_, shape, t, job.account);
    if (!choice) {
      reclaim_floor_[key] = kNoVictims;
      continue;
    }
    reclaim_floor_[key] = choice->lost_gpu_ms;
    if (!pays(choice->lost_gpu_ms)) {
      cheapest_refused = std::min(cheapest_refused, choice->lost_gpu_ms);
      continue;
    }
    preemption.Commit(*choice);
    for (uint32_t r : choice->victims) {
      const RunningJobInfo& v = s_.running[r];
      plan_.preemptions.push_back(
          {v.id, v.attempt,
           v.borrowing ? "reclaiming the guarantee of account " + account.name
                       : "preemptible job; reclaiming the guarantee of account " + account.name,
           v.grace_period, job.id});
      ++plan_.stats.preempted;
    }
    Reservation res{job.id, t, choice->ready_at, {}};
    for (uint32_t n : choice->nodes) {
      pool_.Reserve(n, shape.gpus_per_node, choice->ready_at, job.id);
      res.nodes.push_back({n, shape.gpus_per_node});
    }
    plan_.reservations.push_back(std::move(res));
    ++plan_.stats.reserved;
    Pend(job.id,
         AddExplanation(ExplainAwaitingVictims(static_cast<int64_t>(choice->victims.size()),
                                               choice->ready_at)),
         ahead, choice->ready_at);
    return true;
  }
  if (cheapest_refused != kNoVictims)
    *deferred = AddExplanation(ExplainReclaimDeferred(cheapest_refused, waited_gpu_ms, reclaim_by,
                                                      c_.preemption.max_reclaim_wait));
  return false;
}

// 6. Backfill: the highest blocked jobs reserve the earliest nodes at which they fit. The
// reservation's start, the job's estimate, if it got one.
std::optional<Timestamp> Pass::Reserve(const PendingJobInfo& job, const Shape& shape,
                                       TypeMask types, Duration time_limit) {
  std::optional<Reservation> best;
  for (TypeMask m = types; m; m &= m - 1) {
    const uint32_t t = static_cast<uint32_t>(__builtin_ctzll(m));
    // Capacity only shrinks during a pass (starts and reservations take, nothing gives), so a
    // shape that never fit on a type earlier in the pass never fits now either.
    const ShapeKey key = ShapeKeyOf(shape, t);
    if (never_fits_.contains(key))
      continue;
    // Another type already holds one at T: only an earlier start on this type matters.
    auto r = best ? timeline_.Earliest(pool_, shape, t, job.id,
                                       best->start - std::chrono::milliseconds(1))
                  : timeline_.Earliest(pool_, shape, t, job.id);
    if (!r && !best)
      never_fits_.insert(key);
    if (r && (!best || r->start < best->start))
      best = std::move(r);
  }
  if (!best || ToUnixMillis(best->start) < ToUnixMillis(now_))
    return std::nullopt;
  for (const ReservedNode& rn : best->nodes)
    pool_.Reserve(rn.node, rn.gpus, best->start, job.id);
  const Timestamp start = best->start;
  estimate_requests_.push_back({shape, types, PredictedRunTime(s_, job, time_limit), start});
  estimate_slots_.push_back(plan_.pending.size());
  plan_.reservations.push_back(std::move(*best));
  ++plan_.stats.reserved;
  return start;
}

// 8. Explanation: the budget first when it ruled out a type (the one reason the account can act
// on), then placement reasons over quota reasons (quota passed for that type).
uint32_t Pass::Explain(const StartAttempt& a) {
  if (a.budget_reason)
    return *a.budget_reason;
  if (a.placement_reason)
    return *a.placement_reason;
  if (a.strict_reason)
    return *a.strict_reason;
  if (a.quota_reason)
    return *a.quota_reason;
  return CachedExplanation(ReasonKey::NoGpuType(), [] {
    return Explanation{
        api::ReasonCode::kResources, "no node offers any of the acceptable GPU types", {}};
  });
}

void Pass::EstimateReservedStarts() {
  // Without any user's history (nor known run times) every prediction is the time limit, and the
  // reservations are the estimates already.
  if (estimate_requests_.empty() ||
      (std::none_of(s_.user_run_time_ratio.begin(), s_.user_run_time_ratio.end(),
                    [](double r) { return r < 1.0; }) &&
       std::none_of(s_.running.begin(), s_.running.end(),
                    [](const RunningJobInfo& r) { return r.known_run_time.count() > 0; })))
    return;
  std::vector<StartedAllocation> started;
  started.reserve(plan_.starts.size());
  for (size_t k = 0; k < plan_.starts.size(); ++k)
    started.push_back({plan_.starts[k].gpu_type, plan_.starts[k].nodes, start_predicted_end_[k]});
  const std::vector<Timestamp> estimates =
      EstimateStarts(s_, sums_.nodes, started, estimate_requests_, now_);
  for (size_t k = 0; k < estimates.size(); ++k)
    plan_.pending[estimate_slots_[k]].estimated_start = estimates[k];
}

}  // namespace

Plan Schedule(const Snapshot& snapshot, const PolicyConfig& config, Timestamp now) {
  return Pass(snapshot, config, now).Run();
}

}  // namespace gsched::core
