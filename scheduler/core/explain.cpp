#include "scheduler/core/explain.h"

#include <algorithm>
#include <cstdio>

namespace gsched::core {

const DetailValue* Explanation::Find(std::string_view key) const {
  for (const Detail& d : details) {
    if (d.key == key)
      return &d.value;
  }
  return nullptr;
}

std::optional<int64_t> Explanation::Int(std::string_view key) const {
  const DetailValue* v = Find(key);
  if (v == nullptr || !std::holds_alternative<int64_t>(*v))
    return std::nullopt;
  return std::get<int64_t>(*v);
}

std::optional<double> Explanation::Double(std::string_view key) const {
  const DetailValue* v = Find(key);
  if (v == nullptr || !std::holds_alternative<double>(*v))
    return std::nullopt;
  return std::get<double>(*v);
}

std::optional<std::string> Explanation::Text(std::string_view key) const {
  const DetailValue* v = Find(key);
  if (v == nullptr || !std::holds_alternative<std::string>(*v))
    return std::nullopt;
  return std::get<std::string>(*v);
}

namespace {
std::string Str(int64_t v) {
  return std::to_string(v);
}
std::string TypeName(const Snapshot& s, uint32_t type) {
  return type < s.gpu_types.size() ? s.gpu_types[type].name : "gpu";
}
}  // namespace

Explanation ExplainHeld() {
  return {api::ReasonCode::kHeld, "held; release it to let it run", {}};
}

Explanation ExplainDependency(JobId blocking, api::DependencyType type, bool never) {
  Explanation e{api::ReasonCode::kDependency,
                std::string(never ? "dependency can never be satisfied: " : "waiting for ") +
                    std::string(api::ToString(type)) + " job " + Str(blocking.value()),
                {}};
  e.details.push_back({"job", static_cast<int64_t>(blocking.value())});
  e.details.push_back({"type", std::string(api::ToString(type))});
  e.details.push_back({"never_satisfied", int64_t{never ? 1 : 0}});
  return e;
}

Explanation ExplainBudget(const Snapshot& s, uint32_t account, double granted, double consumed) {
  Explanation e{
      api::ReasonCode::kBudget, "budget of account " + s.accounts[account].name + " is spent", {}};
  e.details.push_back({"account", s.accounts[account].name});
  e.details.push_back({"granted_gpu_hours", granted});
  e.details.push_back({"consumed_gpu_hours", consumed});
  return e;
}

Explanation ExplainBudgetOverrun(const Snapshot& s, uint32_t account, double granted,
                                 double consumed, double remaining, double needed) {
  char numbers[160];
  std::snprintf(numbers, sizeof(numbers),
                ": %.2f GPU-hours left after running jobs, the job may use up to %.2f",
                std::max(0.0, remaining), needed);
  Explanation e{api::ReasonCode::kBudget,
                "budget of account " + s.accounts[account].name + " would be overrun" + numbers,
                {}};
  e.details.push_back({"account", s.accounts[account].name});
  e.details.push_back({"granted_gpu_hours", granted});
  e.details.push_back({"consumed_gpu_hours", consumed});
  e.details.push_back({"remaining_gpu_hours", remaining});
  e.details.push_back({"needed_gpu_hours", needed});
  return e;
}

Explanation ExplainUserLimit(std::string_view what, int64_t used, int64_t request, int64_t limit) {
  Explanation e{api::ReasonCode::kUserLimit,
                std::string(what) + ": " + Str(used) + " + " + Str(request) + " > " + Str(limit),
                {}};
  e.details.push_back({"limit_name", std::string(what)});
  e.details.push_back({"used", used});
  e.details.push_back({"requested", request});
  e.details.push_back({"limit", limit});
  return e;
}

Explanation ExplainQuota(const Snapshot& s, uint32_t type, const QuotaCheck& q, int64_t request) {
  const std::string& acc = s.accounts[q.account].name;
  Explanation e;
  if (q.outcome == QuotaCheck::Outcome::kAtLimit) {
    e.code = api::ReasonCode::kQuota;
    e.message = "account " + acc + " at its " + TypeName(s, type) + " limit: " + Str(q.used) +
                " used + " + Str(request) + " requested > limit " + Str(q.limit);
  } else {
    e.code = api::ReasonCode::kBorrowLimit;
    e.message = "account " + acc + " is over its " + TypeName(s, type) + " guarantee (" +
                Str(q.used) + " used, " + Str(q.guaranteed) + " guaranteed) and only " +
                Str(q.borrowable) + " idle GPUs may be borrowed";
  }
  e.details.push_back({"account", acc});
  e.details.push_back({"gpu_type", TypeName(s, type)});
  e.details.push_back({"used", q.used});
  e.details.push_back({"guaranteed", q.guaranteed});
  e.details.push_back({"limit", q.limit == kUnlimited ? int64_t{-1} : int64_t{q.limit}});
  e.details.push_back({"requested", request});
  e.details.push_back({"borrowable", q.borrowable});
  return e;
}

Explanation ExplainCapacity(const Snapshot& s, uint32_t type, const CapacityReport& c,
                            const Shape& shape, bool fits_ignoring_topology) {
  const int64_t request = int64_t{shape.nodes} * shape.gpus_per_node;
  Explanation e;
  const std::string tn = TypeName(s, type);
  if (c.big_enough_nodes < shape.nodes) {
    e.code = api::ReasonCode::kResources;
    e.message = "cannot run on this cluster as it is: it needs " + Str(shape.nodes) +
                " node(s) with " + Str(shape.gpus_per_node) + " " + tn + " GPUs each and " +
                Str(c.big_enough_nodes) + " exist";
  } else if (c.free_total >= request && fits_ignoring_topology &&
             shape.topology != api::Topology::kAny) {
    e.code = api::ReasonCode::kTopology;
    e.message = "fits only across " +
                std::string(shape.topology == api::Topology::kBlock ? "blocks" : "sites") +
                "; largest free " + std::string(api::ToString(shape.topology)) + " has " +
                Str(shape.topology == api::Topology::kBlock ? c.largest_block : c.largest_site) +
                " " + tn + " GPUs";
  } else if (c.free_total >= request) {
    e.code = api::ReasonCode::kFragmentation;
    e.message = Str(c.free_total) + " " + tn + " GPUs free in total but not in one place (" +
                Str(c.largest_node) + " on the best node, " + Str(c.largest_block) +
                " in the largest free block)";
  } else if (c.free_total + c.unhealthy_free >= request) {
    e.code = api::ReasonCode::kNodeHealth;
    e.message = "would fit if " + Str(c.unhealthy_free) + " unhealthy " + tn + " GPUs were healthy";
  } else {
    e.code = api::ReasonCode::kResources;
    e.message = "waiting for " + tn + " GPUs: " + Str(request) + " requested, " +
                Str(c.free_total) + " free";
  }
  e.details.push_back({"gpu_type", tn});
  e.details.push_back({"requested", request});
  e.details.push_back({"free_total", c.free_total});
  e.details.push_back({"free_largest_node", c.largest_node});
  e.details.push_back({"free_largest_block", c.largest_block});
  e.details.push_back({"free_largest_site", c.largest_site});
  e.details.push_back({"unhealthy", c.unhealthy_free});
  e.details.push_back({"nodes_big_enough", c.big_enough_nodes});
  return e;
}

Explanation ExplainReservation(JobId holder) {
  Explanation e{api::ReasonCode::kReservation,
                "the free GPUs are reserved for higher job " + Str(holder.value()),
                {}};
  e.details.push_back({"reserved_for", static_cast<int64_t>(holder.value())});
  return e;
}

Explanation ExplainPriority(JobId first_ahead, std::string_view why) {
  Explanation e{api::ReasonCode::kPriority,
                std::string(why) + "; first ahead: job " + Str(first_ahead.value()),
                {}};
  e.details.push_back({"first_ahead", static_cast<int64_t>(first_ahead.value())});
  return e;
}

Explanation ExplainAwaitingVictims(int64_t victims, Timestamp ready) {
  Explanation e{api::ReasonCode::kResources,
                "reclaiming the guarantee: waiting for " + Str(victims) +
                    " preempted jobs to release their GPUs",
                {}};
  e.details.push_back({"victims", victims});
  e.details.push_back({"ready_at_ms", ToUnixMillis(ready)});
  return e;
}

Explanation ExplainReclaimDeferred(int64_t lost_gpu_ms, int64_t waited_gpu_ms, Timestamp reclaim_by,
                                   Duration max_reclaim_wait) {
  const double lost_h = static_cast<double>(lost_gpu_ms) / 3.6e6;
  const double waited_h = static_cast<double>(waited_gpu_ms) / 3.6e6;
  char numbers[240];
  std::snprintf(numbers, sizeof(numbers),
                "%.2f GPU-hours of their work, more than this job's %.2f GPU-hours of waiting pay "
                "for; it takes GPUs as they free up, and reclaims when its wait pays, at the "
                "latest %.0f min after its submission",
                lost_h, waited_h, static_cast<double>(max_reclaim_wait.count()) / 60000.0);
  Explanation e{api::ReasonCode::kResources,
                std::string("within the account's guarantee, but borrowers hold the GPUs: "
                            "reclaiming them now would lose ") +
                    numbers,
                {}};
  e.details.push_back({"lost_gpu_hours", lost_h});
  e.details.push_back({"waited_gpu_hours", waited_h});
  e.details.push_back({"reclaim_at_ms", ToUnixMillis(reclaim_by)});
  return e;
}

}  // namespace gsched::core
