// The usage ledger's arithmetic, one definition for the daemon and `gsched-sim` (DESIGN.md
// sections 2 and 3, phase 1).
//
// Usage is normalised GPU-seconds (GPU-seconds x the GPU type's cost), kept as (value, time) and
// decayed on read: U(t) = U(t0) * 2^(-(t - t0) / half_life). Budgets are normalised GPU-hours
// used within the budget's period. The daemon charges an attempt when it ends (and counts running
// attempts so far when it reads); the simulator accrues as its virtual clock advances; both go
// through these functions. Pure and single-threaded.
#pragma once

#include "scheduler/common/clock.h"
#include "scheduler/core/model.h"

namespace gsched::core {

double DecayedUsage(const UsageRecord& u, Timestamp now, Duration half_life);

// Decays `u` to `now`, then adds `amount` normalised GPU-seconds.
UsageRecord AddUsage(const UsageRecord& u, double amount, Timestamp now, Duration half_life);

// Normalised GPU-seconds of `gpus` GPUs of a type that costs `cost`, held for `seconds`.
inline double NormalisedGpuSeconds(double gpus, double cost, double seconds) {
  return gpus * cost * seconds;
}

// What holding `gpus` GPUs of a type that costs `cost` over [from, to) is charged, normalised
// GPU-seconds, at `rate`: 1, or `preemption.usage_charge` for a preempted attempt. The daemon
// charges an ended attempt with it (`UsageBook`) and counts running ones so far; the simulator
// accrues each step of its clock with it and takes back the uncharged part of a preempted attempt.
double AttemptUsage(double gpus, double cost, Timestamp from, Timestamp to, double rate = 1.0);

// Normalised GPU-hours that `normalised_gpus` held over [from, to) take from a budget whose
// period is [start, end): the part of the interval within the period, none outside it.
double BudgetCharge(double normalised_gpus, Timestamp from, Timestamp to, Timestamp start,
                    Timestamp end);

}  // namespace gsched::core
