// One set of policy defaults (scheduler/common/policy_defaults.h): the daemon's policy (built by
// `PolicyFromConfig` from a default `SchedulerConfig`, as `ClusterState` does), the simulator's
// (`gsched-sim` without `--config`, and `SimConfig` as the scenario tests use it) and the one
// documented in config/scheduler.yaml are the same.
#include <gtest/gtest.h>

#include "config/policy_from_config.h"
#include "config/scheduler_config.h"
#include "scheduler/core/policy_config.h"
#include "sim/replay.h"
#include "sim/simulation.h"

namespace gsched::sim {
namespace {

TEST(PolicyDefaultsTest, DaemonAndSimulatorStartFromTheSamePolicy) {
  const core::PolicyConfig daemon = config::PolicyFromConfig(config::SchedulerConfig{});
  const core::PolicyConfig simulator = PolicyFor(Policy::kFairshare, config::SchedulerConfig{});
  const core::PolicyConfig core_default;
  EXPECT_TRUE(daemon == simulator);
  EXPECT_TRUE(daemon == core_default);
  EXPECT_TRUE(SimConfig{}.policy == daemon);
  // The two that used to disagree, spelled out: 256 preemptions per account per hour, and the
  // `high` class's 1 h default and 2 d maximum.
  EXPECT_EQ(core_default.preemption.max_per_account_per_hour, 256);
  EXPECT_EQ(daemon.preemption.max_per_account_per_hour, 256);
  const size_t high = static_cast<size_t>(api::PriorityClass::kHigh);
  EXPECT_EQ(core_default.class_limits[high].default_limit, Seconds(3600));
  EXPECT_EQ(core_default.class_limits[high].max_limit, Seconds(2 * 86400));
  EXPECT_EQ(daemon.class_limits[high], core_default.class_limits[high]);
  EXPECT_EQ(daemon.backfill.depth, core_default.backfill.depth);
}

TEST(PolicyDefaultsTest, TheDocumentedConfigIsTheDefault) {
  // config/scheduler.yaml spells out every key with its default.
  auto documented = config::LoadSchedulerConfig(GSCHED_SOURCE_DIR "/config/scheduler.yaml");
  ASSERT_TRUE(documented.ok()) << documented.status().ToString();
  EXPECT_TRUE(config::PolicyFromConfig(*documented) == core::PolicyConfig{});
}

}  // namespace
}  // namespace gsched::sim
