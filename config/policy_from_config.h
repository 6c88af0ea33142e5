// The scheduling policy that a scheduler configuration asks for: the one mapping from
// `config::SchedulerConfig` to `core::PolicyConfig`, shared by the daemon and `gsched-sim` so that
// both run the very same policy.
//
// Threading: stateless.
#pragma once

#include "config/scheduler_config.h"
#include "scheduler/core/policy_config.h"

namespace gsched::config {

core::PolicyConfig PolicyFromConfig(const config::SchedulerConfig& config);

}  // namespace gsched::config
