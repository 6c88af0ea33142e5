// Shared by the core's scheduling tests: the explanation a plan gives for a pending job.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>

#include "scheduler/core/schedule.h"

namespace gsched::core {

// The explanation of job `id`'s pending reason in `plan`; a test failure when it has none.
inline Explanation ReasonOf(const Plan& plan, uint64_t id) {
  const PendingReason* r = plan.FindPending(JobId(id));
  EXPECT_NE(r, nullptr) << "job " << id << " has no reason";
  return r ? plan.ExplanationFor(*r) : Explanation{};
}

}  // namespace gsched::core
