// The enumerations of the wire contract (DESIGN.md sections 2, 3 and 5), with their JSON spellings.
// The scheduling core uses the same enums, so a reason code or a job state has one definition from
// the core to the CLI. Header-only and free of JSON so that `scheduler/core` can include it
// cheaply.
//
// `ToString(e)` gives the wire name; `ParseEnum<E>(text)` the value, or nothing for an unknown
// name; `EnumNames<E>()` lists the accepted names for error messages ("one of: high, normal,
// preemptible").
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gsched::api {

enum class JobState : uint8_t {
  kPending,
  kStarting,
  kRunning,
  kCompleted,
  kFailed,
  kCancelled,
  kTimeout,
  kNodeFail,
  kPreempted,
};

// A job that reached one of these never runs again (a preempted or node-failed job that requeues
// goes back to `pending` with a new attempt instead of staying in these states).
constexpr bool IsTerminal(JobState s) {
  return s == JobState::kCompleted || s == JobState::kFailed || s == JobState::kCancelled ||
         s == JobState::kTimeout || s == JobState::kNodeFail || s == JobState::kPreempted;
}

enum class PriorityClass : uint8_t { kHigh, kNormal, kPreemptible };
enum class Topology : uint8_t { kAny, kSite, kBlock };
enum class DependencyType : uint8_t { kAfterOk, kAfterAny, kAfterNotOk };
enum class NodeState : uint8_t { kUp, kDraining, kDrained, kDown, kUnhealthy };
enum class GpuHealth : uint8_t { kHealthy, kUnhealthy };
enum class Role : uint8_t { kUser, kCoordinator, kAdmin, kWorker };
enum class BudgetExhaustedPolicy : uint8_t { kPreemptible, kHold };

// Why a job is still pending (DESIGN.md section 3, phase 8).
enum class ReasonCode : uint8_t {
  kDependency,
  kHeld,
  kBudget,
  kQuota,
  kBorrowLimit,
  kResources,
  kFragmentation,
  kTopology,
  kPriority,
  kReservation,
  kNodeHealth,
  kUserLimit,
  // Not a pending reason: a `starting` job whose worker is pulling its image ("pulling image:
  // 412 of 1,930 MiB").
  kImagePull,
};

template <typename E>
struct EnumTraits;

#define GSCHED_ENUM_NAMES(E, ...)                                                        \
  template <>                                                                            \
  struct EnumTraits<E> {                                                                 \
    static constexpr std::array kNames = std::to_array<std::string_view>({__VA_ARGS__}); \
  }

GSCHED_ENUM_NAMES(JobState, "pending", "starting", "running", "completed", "failed", "cancelled",
                  "timeout", "node_fail", "preempted");
GSCHED_ENUM_NAMES(PriorityClass, "high", "normal", "preemptible");
GSCHED_ENUM_NAMES(Topology, "any", "site", "block");
GSCHED_ENUM_NAMES(DependencyType, "afterok", "afterany", "afternotok");
GSCHED_ENUM_NAMES(NodeState, "up", "draining", "drained", "down", "unhealthy");
GSCHED_ENUM_NAMES(GpuHealth, "healthy", "unhealthy");
GSCHED_ENUM_NAMES(Role, "user", "coordinator", "admin", "worker");
GSCHED_ENUM_NAMES(BudgetExhaustedPolicy, "preemptible", "hold");
GSCHED_ENUM_NAMES(ReasonCode, "dependency", "held", "budget", "quota", "borrow_limit", "resources",
                  "fragmentation", "topology", "priority", "reservation", "node_health",
                  "user_limit", "image_pull");

#undef GSCHED_ENUM_NAMES

template <typename E>
constexpr std::string_view ToString(E e) {
  return EnumTraits<E>::kNames[static_cast<size_t>(e)];
}

template <typename E>
constexpr std::optional<E> ParseEnum(std::string_view name) {
  const auto& names = EnumTraits<E>::kNames;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name)
      return static_cast<E>(i);
  }
  return std::nullopt;
}

// "high, normal, preemptible", for error messages.
template <typename E>
std::string EnumNames() {
  std::string out;
  for (std::string_view n : EnumTraits<E>::kNames) {
    if (!out.empty())
      out += ", ";
    out += n;
  }
  return out;
}

}  // namespace gsched::api
