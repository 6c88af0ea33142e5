// Every documented example in config/ loads and validates, and says what its comments say.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>

#include "config/accounts_config.h"
#include "config/cluster_config.h"
#include "config/scheduler_config.h"
#include "config/worker_config.h"

namespace gsched::config {
namespace {

std::string Example(std::string_view name) {
  return std::string(GSCHED_SOURCE_DIR) + "/config/" + std::string(name);
}

TEST(ExamplesTest, SchedulerYamlIsTheDefaults) {
  Result<SchedulerConfig> loaded = LoadSchedulerConfig(Example("scheduler.yaml"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const SchedulerConfig& c = *loaded;
  SchedulerConfig defaults;
  // The file documents the defaults: every value equals the built-in one.
  EXPECT_EQ(c.listen, defaults.listen);
  EXPECT_EQ(c.log_level, defaults.log_level);
  EXPECT_EQ(c.min_free_disk_bytes, defaults.min_free_disk_bytes);
  EXPECT_FALSE(c.tls.enabled());
  EXPECT_EQ(c.limits.max_body_bytes, defaults.limits.max_body_bytes);
  EXPECT_EQ(c.limits.max_header_bytes, defaults.limits.max_header_bytes);
  EXPECT_EQ(c.limits.request_timeout, defaults.limits.request_timeout);
  EXPECT_EQ(c.limits.idle_timeout, defaults.limits.idle_timeout);
  EXPECT_EQ(c.limits.max_connections, defaults.limits.max_connections);
  EXPECT_EQ(c.limits.ws_max_message_bytes, defaults.limits.ws_max_message_bytes);
  EXPECT_EQ(c.watch.max_feeds_per_token, defaults.watch.max_feeds_per_token);
  EXPECT_EQ(c.limits.max_submit_expanded_bytes, defaults.limits.max_submit_expanded_bytes);
  EXPECT_EQ(c.limits.max_pending_jobs_per_user, defaults.limits.max_pending_jobs_per_user);
  EXPECT_EQ(c.rate_limit.requests_per_s, defaults.rate_limit.requests_per_s);
  EXPECT_EQ(c.rate_limit.burst, defaults.rate_limit.burst);
  EXPECT_EQ(c.rate_limit.worker_messages_per_s, defaults.rate_limit.worker_messages_per_s);
  EXPECT_EQ(c.rate_limit.worker_message_burst, defaults.rate_limit.worker_message_burst);
  EXPECT_EQ(c.scheduling.interval, defaults.scheduling.interval);
  EXPECT_EQ(c.scheduling.backfill.depth, defaults.scheduling.backfill.depth);
  EXPECT_EQ(c.scheduling.backfill.enabled, defaults.scheduling.backfill.enabled);
  EXPECT_EQ(c.scheduling.max_starts_per_cycle, defaults.scheduling.max_starts_per_cycle);
  EXPECT_EQ(c.fairshare.half_life, defaults.fairshare.half_life);
  EXPECT_EQ(c.priority.weights.fairshare, defaults.priority.weights.fairshare);
  EXPECT_EQ(c.priority.weights.age, defaults.priority.weights.age);
  EXPECT_EQ(c.priority.weights.size, defaults.priority.weights.size);
  EXPECT_EQ(c.priority.weights.job_class, defaults.priority.weights.job_class);
  EXPECT_EQ(c.priority.age_max, defaults.priority.age_max);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(c.priority.classes[i].default_time_limit,
              defaults.priority.classes[i].default_time_limit);
    EXPECT_EQ(c.priority.classes[i].max_time_limit, defaults.priority.classes[i].max_time_limit);
  }
  EXPECT_EQ(c.preemption.enabled, defaults.preemption.enabled);
  EXPECT_EQ(c.preemption.min_runtime, defaults.preemption.min_runtime);
  EXPECT_EQ(c.preemption.usage_charge, defaults.preemption.usage_charge);
  EXPECT_EQ(c.preemption.max_per_cycle, defaults.preemption.max_per_cycle);
  EXPECT_EQ(c.preemption.max_per_account_per_hour, defaults.preemption.max_per_account_per_hour);
  EXPECT_EQ(c.preemption.reclaim_wait_factor, defaults.preemption.reclaim_wait_factor);
  EXPECT_EQ(c.preemption.max_reclaim_wait, defaults.preemption.max_reclaim_wait);
  EXPECT_EQ(c.preemption.default_grace_period, defaults.preemption.default_grace_period);
  EXPECT_EQ(c.nodes.heartbeat_timeout, defaults.nodes.heartbeat_timeout);
  EXPECT_EQ(c.nodes.lost_timeout, defaults.nodes.lost_timeout);
  EXPECT_EQ(c.history.retention, defaults.history.retention);
  EXPECT_EQ(c.events.retention, defaults.events.retention);
  EXPECT_EQ(c.events.max_events, defaults.events.max_events);
  EXPECT_EQ(c.watch.queue_limit, defaults.watch.queue_limit);
  EXPECT_EQ(c.watch.ping_interval, defaults.watch.ping_interval);
  EXPECT_EQ(c.watch.summary_interval, defaults.watch.summary_interval);
  EXPECT_EQ(c.gpu_types, defaults.gpu_types);
  // Relative paths are resolved against config/.
  EXPECT_EQ(c.data_dir, Example("gsched-data"));
  EXPECT_EQ(c.accounts_file, Example("accounts.yaml"));
  EXPECT_EQ(c.partitions.at("hopper"), (std::vector<std::string>{"h200", "h100"}));
  EXPECT_EQ(c.partitions.size(), 4u);
}

TEST(ExamplesTest, WorkerYamlWorksWithoutGpus) {
  Result<WorkerConfig> loaded = LoadWorkerConfig(Example("worker.yaml"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const WorkerConfig& c = *loaded;
  EXPECT_EQ(c.schedulers, std::vector<std::string>{"http://127.0.0.1:8600"});
  EXPECT_EQ(c.runtime.type, RuntimeType::kRunc);
  EXPECT_EQ(c.gpus.discovery, GpuDiscovery::kFake);
  EXPECT_EQ(c.gpus.fake.count, 8);
  EXPECT_EQ(c.gpus.fake.type, "h100");
  EXPECT_EQ(c.gpus.fake.memory_mib, 81920);
  EXPECT_EQ(c.gpus.fake.nvlink, NvlinkTopology::kAll);
  EXPECT_EQ(c.gpus.fake.fault_file, Example("gpu-faults"));
  EXPECT_EQ(c.token_file, Example("worker.token"));
  EXPECT_EQ(c.work_dir, Example("gsched-worker"));
  EXPECT_EQ(c.name, "");
  EXPECT_EQ(c.site, "local");
  EXPECT_EQ(c.block, "b00");
  EXPECT_EQ(c.labels.at("fabric"), "nvswitch");
  EXPECT_EQ(c.heartbeat_interval, Seconds(5));
  EXPECT_EQ(c.reconnect.initial_backoff, Duration(500));
  EXPECT_EQ(c.logs.max_bytes_per_stream, int64_t{100} << 20);
  EXPECT_TRUE(c.drain_on_unhealthy);
  EXPECT_TRUE(c.adopt_running_jobs);
}

TEST(ExamplesTest, ClusterDemoHasFourNodes) {
  Result<ClusterConfig> loaded = LoadClusterConfig(Example("cluster-demo.yaml"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const ClusterConfig& c = *loaded;
  ASSERT_EQ(c.nodes.size(), 4u);
  ASSERT_EQ(c.sites.size(), 1u);
  ASSERT_EQ(c.sites[0].blocks.size(), 2u);
  EXPECT_EQ(c.nodes[0].name, "demo-b00-n01");
  EXPECT_EQ(c.nodes[1].name, "demo-b00-n02");
  EXPECT_EQ(c.nodes[1].gpu_type, "h100");
  EXPECT_EQ(c.nodes[1].memory_mib, 1024 * 1024);
  EXPECT_EQ(c.nodes[2].gpu_type, "b200");
  EXPECT_EQ(c.nodes[3].gpu_type, "rtx-pro-6000");
  EXPECT_EQ(c.nodes[3].gpus, 4);
  // 8 + 8 + 8 + 4.
  EXPECT_EQ(c.TotalGpus(), 28);
}

TEST(ExamplesTest, Cluster50kIsTheNationalPool) {
  auto start = std::chrono::steady_clock::now();
  Result<ClusterConfig> loaded = LoadClusterConfig(Example("cluster-50k.yaml"));
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const ClusterConfig& c = *loaded;
  EXPECT_EQ(c.nodes.size(), 6250u);
  EXPECT_EQ(c.TotalGpus(), 50000);
  ASSERT_EQ(c.sites.size(), 4u);
  std::set<std::string> names;
  for (const NodeSpec& n : c.nodes) {
    EXPECT_EQ(n.gpus, 8);
    names.insert(n.name);
  }
  EXPECT_EQ(names.size(), 6250u);
  // b200: 125 x 18 x 8; h200: (20 + 15) x 32 x 8; h100: (40 + 20) x 32 x 8; rtx: 30 x 32 x 8.
  std::map<std::string, int64_t> by_type = c.GpusByType();
  EXPECT_EQ(by_type["b200"], 18000);
  EXPECT_EQ(by_type["h200"], 8960);
  EXPECT_EQ(by_type["h100"], 15360);
  EXPECT_EQ(by_type["rtx-pro-6000"], 7680);
  EXPECT_EQ(c.nodes.front().name, "nacc-nvl000-n00");
  EXPECT_EQ(c.nodes.back().name, "cloud-c-b29-n31");
  size_t blocks = 0;
  for (const SiteSpec& s : c.sites)
    blocks += s.blocks.size();
  EXPECT_EQ(blocks, 250u);
  // Not a benchmark, a sanity bound: the brief asks for < 100 ms; sanitizer builds are slower.
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count(), 2000);
}

TEST(ExamplesTest, AccountsYamlIsAValidTreeThatFitsThe50kPool) {
  Result<AccountsConfig> accounts = LoadAccountsConfig(Example("accounts.yaml"));
  ASSERT_TRUE(accounts.ok()) << accounts.status().message();
  const AccountsConfig& a = *accounts;
  ASSERT_FALSE(a.accounts.empty());
  EXPECT_EQ(a.accounts[0].name, "root");
  EXPECT_EQ(a.Children("root"),
            (std::vector<std::string>{"public-institutes", "universities", "startups"}));
  const AccountSpec* nlp = a.Find("kaist-nlp");
  ASSERT_NE(nlp, nullptr);
  EXPECT_EQ(nlp->parent, "kaist-ai");
  EXPECT_EQ(nlp->quotas.at("h100").guaranteed, 600);
  EXPECT_EQ(nlp->quotas.at("h100").limit, 1500);
  ASSERT_TRUE(nlp->budget.has_value());
  EXPECT_EQ(nlp->on_budget_exhausted, api::BudgetExhaustedPolicy::kPreemptible);
  const AccountSpec* ehr = a.Find("unist-ehr");
  ASSERT_NE(ehr, nullptr);
  ASSERT_TRUE(ehr->budget.has_value());
  EXPECT_EQ(ehr->on_budget_exhausted, api::BudgetExhaustedPolicy::kHold);
  // Several universities with groups and projects, and an incubator with several startups.
  EXPECT_GE(a.Children("universities").size(), 3u);
  EXPECT_GE(a.Children("incubator-2027").size(), 4u);

  Result<ClusterConfig> cluster = LoadClusterConfig(Example("cluster-50k.yaml"));
  ASSERT_TRUE(cluster.ok()) << cluster.status().message();
  Status fits = ValidateAccountsForCluster(a, *cluster);
  EXPECT_TRUE(fits.ok()) << fits.message();
  // The guarantees of the three programs, per type, stay within the pool.
  std::map<std::string, int64_t> top;
  for (const std::string& child : a.Children("root")) {
    for (const auto& [type, q] : a.Find(child)->quotas)
      top[type] += q.guaranteed;
  }
  std::map<std::string, int64_t> capacity = cluster->GpusByType();
  for (const auto& [type, sum] : top)
    EXPECT_LE(sum, capacity[type]) << type;
}

}  // namespace
}  // namespace gsched::config
