#include "config/scheduler_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace gsched::config {
namespace {

using ::testing::HasSubstr;

TEST(SchedulerConfigTest, EmptyDocumentGivesTheDocumentedDefaults) {
  Result<SchedulerConfig> c = ParseSchedulerConfig("", "scheduler.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->listen, "127.0.0.1:8600");
  EXPECT_EQ(c->data_dir, "./gsched-data");
  EXPECT_EQ(c->log_level, LogLevel::kInfo);
  EXPECT_FALSE(c->tls.enabled());
  EXPECT_EQ(c->limits.max_body_bytes, 8 << 20);
  EXPECT_EQ(c->limits.max_header_bytes, 16 << 10);
  EXPECT_EQ(c->limits.request_timeout, Seconds(30));
  EXPECT_EQ(c->limits.idle_timeout, Seconds(120));
  EXPECT_EQ(c->limits.max_connections, 10000);
  EXPECT_EQ(c->limits.ws_max_message_bytes, 1 << 20);
  EXPECT_EQ(c->rate_limit.requests_per_s, 500);
  EXPECT_EQ(c->rate_limit.burst, 1000);
  EXPECT_EQ(c->scheduling.interval, Seconds(1));
  EXPECT_EQ(c->scheduling.backfill.depth, 100);
  EXPECT_TRUE(c->scheduling.backfill.enabled);
  EXPECT_EQ(c->scheduling.max_starts_per_cycle, 100000);
  EXPECT_EQ(c->fairshare.half_life, Seconds(7 * 86400));
  EXPECT_EQ(c->priority.weights.fairshare, 10000);
  EXPECT_EQ(c->priority.weights.age, 1000);
  EXPECT_EQ(c->priority.weights.size, 1000);
  EXPECT_EQ(c->priority.weights.job_class, 5000);
  EXPECT_EQ(c->priority.age_max, Seconds(7 * 86400));
  EXPECT_EQ(c->priority.Limits(api::PriorityClass::kHigh).default_time_limit, Seconds(3600));
  EXPECT_EQ(c->priority.Limits(api::PriorityClass::kHigh).max_time_limit, Seconds(2 * 86400));
  EXPECT_EQ(c->priority.Limits(api::PriorityClass::kNormal).default_time_limit, Seconds(4 * 3600));
  EXPECT_EQ(c->priority.Limits(api::PriorityClass::kNormal).max_time_limit, Seconds(7 * 86400));
  EXPECT_EQ(c->priority.Limits(api::PriorityClass::kPreemptible).default_time_limit,
            Seconds(4 * 3600));
  EXPECT_TRUE(c->preemption.enabled);
  EXPECT_EQ(c->preemption.min_runtime, Seconds(600));
  EXPECT_EQ(c->preemption.usage_charge, 0.0);
  EXPECT_EQ(c->preemption.max_per_cycle, 64);
  EXPECT_EQ(c->preemption.max_per_account_per_hour, 256);
  EXPECT_EQ(c->preemption.reclaim_wait_factor, 1.0);
  EXPECT_EQ(c->preemption.max_reclaim_wait, Seconds(1800));
  EXPECT_EQ(c->preemption.default_grace_period, Seconds(60));
  EXPECT_EQ(c->nodes.heartbeat_timeout, Seconds(30));
  EXPECT_EQ(c->nodes.lost_timeout, Seconds(300));
  EXPECT_EQ(c->history.retention, Seconds(30 * 86400));
  EXPECT_EQ(c->events.retention, Seconds(7 * 86400));
  EXPECT_EQ(c->events.max_events, 10'000'000);
  EXPECT_EQ(c->watch.queue_limit, 4096);
  EXPECT_EQ(c->watch.ping_interval, Seconds(20));
  EXPECT_EQ(c->watch.summary_interval, Seconds(10));
  ASSERT_EQ(c->gpu_types.size(), 4u);
  EXPECT_EQ(c->gpu_types[0].name, "b200");
  EXPECT_EQ(c->gpu_types[0].cost, 2.0);
  EXPECT_EQ(c->gpu_types[1].cost, 1.2);
  EXPECT_EQ(c->gpu_types[2].cost, 1.0);
  EXPECT_EQ(c->gpu_types[3].name, "rtx-pro-6000");
  EXPECT_EQ(c->gpu_types[3].cost, 0.5);
  EXPECT_EQ(c->accounts_file, "");
  EXPECT_TRUE(c->partitions.empty());
}

TEST(SchedulerConfigTest, ReadsEveryKind) {
  Result<SchedulerConfig> c = ParseSchedulerConfig(R"(
listen: "0.0.0.0:0"
data_dir: /var/lib/gsched
log_level: debug
tls: {cert: /etc/tls/c.pem, key: /etc/tls/k.pem}
limits: {max_body_bytes: 16MiB, max_header_bytes: 32768, request_timeout: 1m}
rate_limit: {requests_per_s: 50, burst: 100}
scheduling: {interval: 250ms, backfill: {depth: 0, enabled: false}, max_starts_per_cycle: 10}
fairshare: {half_life: 1-00:00:00}
priority:
  weights: {fairshare: 0, age: 1, size: 2, class: 3}
  classes:
    high: {default_time_limit: 30m, max_time_limit: 1d}
preemption: {enabled: false, usage_charge: 0.25, min_runtime: 0, reclaim_wait_factor: 0.5,
             max_reclaim_wait: 2h}
nodes: {heartbeat_timeout: 10s, lost_timeout: 1m}
gpu_types:
  - {name: h100, cost: 1}
  - {name: a100, cost: 0.7, memory_mib: 40G}
partitions:
  gpu: [h100, a100]
accounts_file: accounts.yaml
)",
                                                   "s.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->listen, "0.0.0.0:0");
  EXPECT_EQ(c->log_level, LogLevel::kDebug);
  EXPECT_TRUE(c->tls.enabled());
  EXPECT_EQ(c->limits.max_body_bytes, 16 << 20);
  EXPECT_EQ(c->limits.max_header_bytes, 32768);
  EXPECT_EQ(c->limits.request_timeout, Seconds(60));
  EXPECT_EQ(c->scheduling.interval, Duration(250));
  EXPECT_EQ(c->scheduling.backfill.depth, 0);
  EXPECT_FALSE(c->scheduling.backfill.enabled);
  EXPECT_EQ(c->fairshare.half_life, Seconds(86400));
  EXPECT_EQ(c->priority.weights.job_class, 3);
  EXPECT_EQ(c->priority.Limits(api::PriorityClass::kHigh).default_time_limit, Seconds(1800));
  // Classes not mentioned keep their defaults.
  EXPECT_EQ(c->priority.Limits(api::PriorityClass::kNormal).max_time_limit, Seconds(7 * 86400));
  EXPECT_FALSE(c->preemption.enabled);
  EXPECT_EQ(c->preemption.usage_charge, 0.25);
  EXPECT_EQ(c->preemption.min_runtime, Duration(0));
  EXPECT_EQ(c->preemption.reclaim_wait_factor, 0.5);
  EXPECT_EQ(c->preemption.max_reclaim_wait, Seconds(7200));
  ASSERT_EQ(c->gpu_types.size(), 2u);
  EXPECT_EQ(c->gpu_types[1].memory_mib, 40 * 1024);
  EXPECT_EQ(c->partitions.at("gpu"), (std::vector<std::string>{"h100", "a100"}));
  // Not loaded from a file: relative paths stay as written.
  EXPECT_EQ(c->accounts_file, "accounts.yaml");
}

struct Rejection {
  std::string yaml;
  std::string field;
  std::string fragment;
};

void PrintTo(const Rejection& r, std::ostream* os) {
  *os << r.yaml;
}

class SchedulerConfigRejectionTest : public ::testing::TestWithParam<Rejection> {};

TEST_P(SchedulerConfigRejectionTest, NamesPathAndReason) {
  const Rejection& r = GetParam();
  Result<SchedulerConfig> c = ParseSchedulerConfig(r.yaml, "scheduler.yaml");
  ASSERT_FALSE(c.ok()) << r.yaml;
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c.status().field(), r.field) << c.status().message();
  EXPECT_THAT(c.status().message(), HasSubstr(r.fragment));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SchedulerConfigRejectionTest,
    ::testing::Values(
        // Wrong types.
        Rejection{"scheduling: {backfill: {depth: -1}}\n", "scheduling.backfill.depth",
                  "scheduling.backfill.depth: must be >= 0"},
        Rejection{"scheduling: {backfill: {depth: lots}}\n", "scheduling.backfill.depth",
                  "must be an integer (got 'lots')"},
        Rejection{"scheduling: {backfill: {enabled: 2}}\n", "scheduling.backfill.enabled",
                  "must be a boolean"},
        Rejection{"scheduling: [1, 2]\n", "scheduling", "must be a mapping (got a list)"},
        Rejection{"listen: [a]\n", "listen", "must be a string (got a list)"},
        Rejection{"priority: {weights: {age: 1.5}}\n", "priority.weights.age",
                  "must be an integer"},
        // Zero, negative, huge.
        Rejection{"scheduling: {interval: 0s}\n", "scheduling.interval", "must be >= 10ms"},
        Rejection{"scheduling: {max_starts_per_cycle: 0}\n", "scheduling.max_starts_per_cycle",
                  "must be >= 1"},
        Rejection{"limits: {max_connections: 99999999999}\n", "limits.max_connections",
                  "must be <= 1000000"},
        Rejection{"limits: {max_body_bytes: 2G}\n", "limits.max_body_bytes",
                  "must be <= 1073741824 bytes"},
        Rejection{"limits: {max_body_bytes: 8X}\n", "limits.max_body_bytes", "invalid size '8X'"},
        Rejection{"rate_limit: {burst: 0}\n", "rate_limit.burst", "must be >= 1"},
        Rejection{"priority: {weights: {fairshare: -5}}\n", "priority.weights.fairshare",
                  "must be >= 0"},
        Rejection{"preemption: {usage_charge: 1.5}\n", "preemption.usage_charge", "must be <= 1"},
        Rejection{"preemption: {usage_charge: -0.1}\n", "preemption.usage_charge", "must be >= 0"},
        Rejection{"preemption: {reclaim_wait_factor: -1}\n", "preemption.reclaim_wait_factor",
                  "must be >= 0"},
        Rejection{"preemption: {max_reclaim_wait: 8d}\n", "preemption.max_reclaim_wait",
                  "must be <="},
        Rejection{"events: {max_events: 1}\n", "events.max_events", "must be >= 1000"},
        Rejection{"watch: {queue_limit: 0}\n", "watch.queue_limit", "must be >= 1"},
        // Bad durations and sizes.
        Rejection{"fairshare: {half_life: forever}\n", "fairshare.half_life",
                  "invalid duration 'forever'"},
        Rejection{"nodes: {heartbeat_timeout: -5s}\n", "nodes.heartbeat_timeout",
                  "invalid duration"},
        Rejection{"history: {retention: 1000000d}\n", "history.retention", "invalid duration"},
        Rejection{"gpu_types: [{name: h100, cost: 1, memory_mib: 80Q}]\n",
                  "gpu_types[0].memory_mib", "invalid size '80Q'"},
        // Unknown enum values.
        Rejection{"log_level: verbose\n", "log_level",
                  "unknown value 'verbose'; (one of: trace, debug, info, warn, error, critical, "
                  "off)"},
        Rejection{"log_level: inf\n", "log_level", "did you mean 'info'?"},
        // Oversized strings.
        Rejection{"data_dir: " + std::string(5000, 'd') + "\n", "data_dir",
                  "must be at most 4096 characters (got 5000)"},
        Rejection{"listen: " + std::string(300, 'h') + ":1\n", "listen",
                  "must be at most 256 characters"},
        // Unknown keys, with did-you-mean.
        Rejection{"scheduling: {intervall: 2s}\n", "scheduling.intervall",
                  "scheduling.intervall: unknown key; did you mean 'interval'?"},
        Rejection{"prioriy: {}\n", "prioriy", "unknown key; did you mean 'priority'?"},
        Rejection{"priority: {classes: {urgent: {max_time_limit: 1h}}}\n",
                  "priority.classes.urgent", "unknown key"},
        Rejection{"priority: {weights: {klass: 1}}\n", "priority.weights.klass",
                  "did you mean 'class'?"},
        Rejection{"gpu_types: [{name: h100, cost: 1, mem: 1}]\n", "gpu_types[0].mem",
                  "unknown key"},
        // Duplicate keys.
        Rejection{"listen: a:1\nlisten: b:2\n", "listen",
                  "duplicate key (line 2; first at line 1)"},
        Rejection{"scheduling:\n  interval: 1s\n  interval: 2s\n", "scheduling.interval",
                  "duplicate key"},
        // Missing required fields and cross-field rules.
        Rejection{"gpu_types: [{cost: 1}]\n", "gpu_types[0].name", "is required"},
        Rejection{"gpu_types: [{name: h100}]\n", "gpu_types[0].cost", "is required"},
        Rejection{"gpu_types: [{name: h100, cost: 0}]\n", "gpu_types[0].cost", "must be > 0"},
        Rejection{"gpu_types: [{name: H100, cost: 1}]\n", "gpu_types[0].name",
                  "invalid name 'H100'"},
        Rejection{"gpu_types: []\n", "gpu_types", "must list at least one GPU type"},
        Rejection{"gpu_types: [{name: h100, cost: 1}, {name: h100, cost: 2}]\n",
                  "gpu_types[1].name", "duplicate GPU type 'h100' (also gpu_types[0])"},
        Rejection{"tls: {cert: /c.pem}\n", "tls.key", "tls.cert and tls.key must be set together"},
        Rejection{"tls: {key: /k.pem}\n", "tls.cert", "must be set together"},
        Rejection{"nodes: {heartbeat_timeout: 30s, lost_timeout: 30s}\n", "nodes.lost_timeout",
                  "must be > nodes.heartbeat_timeout (30s)"},
        Rejection{"priority: {classes: {high: {default_time_limit: 3d}}}\n",
                  "priority.classes.high.default_time_limit", "must be <= max_time_limit (2d)"},
        Rejection{"watch: {ping_interval: 10m}\n", "watch.ping_interval",
                  "must be < limits.idle_timeout"},
        Rejection{"watch: {summary_interval: 10ms}\n", "watch.summary_interval", ""},
        Rejection{"listen: localhost\n", "listen", "must be HOST:PORT"},
        Rejection{"listen: \"h:70000\"\n", "listen", "must be HOST:PORT"},
        Rejection{"data_dir: \"\"\n", "data_dir", "must not be empty"},
        Rejection{"partitions: {gpu: [h100, a100]}\n", "partitions.gpu[1]",
                  "unknown GPU type 'a100'"},
        Rejection{"partitions: {gpu: []}\n", "partitions.gpu", "at least one GPU type"},
        Rejection{"partitions: {gpu: h100}\n", "partitions.gpu", "must be a list"},
        Rejection{"partitions: {GPU: [h100]}\n", "partitions.GPU", "invalid partition name"},
        // High availability.
        Rejection{"ha: {etcd: {endpoints: [http://127.0.0.1:2379, etcd:2379]}}\n",
                  "ha.etcd.endpoints[1]", "must be http://HOST:PORT or https://HOST:PORT"},
        Rejection{"ha: {etcd: {endpoints: http://e:2379}}\n", "ha.etcd.endpoints",
                  "must be a list"},
        Rejection{"ha: {etcd: {prefix: /gsched}}\n", "ha.etcd.prefix", "must end with '/'"},
        Rejection{"ha: {lease_ttl: 500ms}\n", "ha.lease_ttl", "must be >= 1s"},
        Rejection{"ha: {advertise_url: \"http://h:0\"}\n", "ha.advertise_url",
                  "must be http://HOST:PORT"},
        Rejection{"listen: 0.0.0.0:8600\nha: {etcd: {endpoints: [http://e:2379]}}\n",
                  "ha.advertise_url", "required when listen is a wildcard address"},
        Rejection{"ha: {etcd: {endpoint: [http://e:2379]}}\n", "ha.etcd.endpoint",
                  "did you mean 'endpoints'?"}));

TEST(SchedulerConfigTest, HaIsOffByDefaultAndReadsItsKeys) {
  Result<SchedulerConfig> off = ParseSchedulerConfig("", "scheduler.yaml");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->ha.enabled());
  Result<SchedulerConfig> c = ParseSchedulerConfig(
      "listen: 0.0.0.0:8600\n"
      "ha:\n"
      "  etcd: {endpoints: [http://10.0.0.1:2379, https://10.0.0.2:2379], ca_file: etcd-ca.pem,\n"
      "         prefix: /pool-a/}\n"
      "  lease_ttl: 3s\n"
      "  advertise_url: http://10.0.0.5:8600\n"
      "  name: sched-a\n",
      "scheduler.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->ha.enabled());
  EXPECT_EQ(c->ha.etcd_endpoints,
            (std::vector<std::string>{"http://10.0.0.1:2379", "https://10.0.0.2:2379"}));
  EXPECT_EQ(c->ha.etcd_ca_file, "etcd-ca.pem");
  EXPECT_EQ(c->ha.etcd_prefix, "/pool-a/");
  EXPECT_EQ(c->ha.lease_ttl, Seconds(3));
  EXPECT_EQ(c->ha.advertise_url, "http://10.0.0.5:8600");
  EXPECT_EQ(c->ha.name, "sched-a");
}

TEST(SchedulerConfigTest, ReportsEveryErrorTogether) {
  Result<SchedulerConfig> c = ParseSchedulerConfig(
      "scheduling:\n"
      "  intervall: 1s\n"
      "  backfill: {depth: -1}\n"
      "preemption: {usage_charge: 2}\n"
      "log_level: loud\n",
      "scheduler.yaml");
  ASSERT_FALSE(c.ok());
  // In document order; `field()` is the first.
  EXPECT_EQ(c.status().field(), "scheduling.intervall");
  EXPECT_EQ(c.status().message(),
            "scheduling.intervall: unknown key; did you mean 'interval'?\n"
            "scheduling.backfill.depth: must be >= 0 (got -1)\n"
            "preemption.usage_charge: must be <= 1 (got 2)\n"
            "log_level: unknown value 'loud'; (one of: trace, debug, info, warn, error, critical, "
            "off)");
}

TEST(SchedulerConfigTest, SyntaxErrorNamesFileLineAndColumn) {
  Result<SchedulerConfig> c =
      ParseSchedulerConfig("listen: 127.0.0.1:1\nscheduling:\n  interval: [1s\n", "sched.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("sched.yaml:4:1: YAML syntax error"));
}

TEST(SchedulerConfigTest, TabIndentationIsASyntaxError) {
  Result<SchedulerConfig> c = ParseSchedulerConfig("scheduling:\n\tinterval: 1s\n", "s.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("s.yaml:2:"));
}

class TempDir {
 public:
  TempDir() {
    path_ =
        std::filesystem::temp_directory_path() /
        ("gsched-config-test-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string Write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name) << text;
    return (path_ / name).string();
  }

 private:
  std::filesystem::path path_;
};

TEST(SchedulerConfigTest, LoadResolvesRelativePathsAgainstTheFile) {
  TempDir dir;
  std::string file = dir.Write("s.yaml",
                               "data_dir: state\naccounts_file: ../acc.yaml\n"
                               "tls: {cert: tls/c.pem, key: /abs/k.pem}\n");
  Result<SchedulerConfig> c = LoadSchedulerConfig(file);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->data_dir, (dir.path() / "state").string());
  EXPECT_EQ(c->accounts_file, (dir.path().parent_path() / "acc.yaml").string());
  EXPECT_EQ(c->tls.cert, (dir.path() / "tls/c.pem").string());
  EXPECT_EQ(c->tls.key, "/abs/k.pem");
}

TEST(SchedulerConfigTest, LoadErrors) {
  TempDir dir;
  Result<SchedulerConfig> missing = LoadSchedulerConfig((dir.path() / "nope.yaml").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);

  Result<SchedulerConfig> directory = LoadSchedulerConfig(dir.path().string());
  ASSERT_FALSE(directory.ok());
  EXPECT_THAT(directory.status().message(), HasSubstr("not a regular file"));

  // A sparse file just over the limit: rejected before it is read.
  std::string big = (dir.path() / "big.yaml").string();
  std::ofstream(big).close();
  std::filesystem::resize_file(big, (64u << 20) + 1);
  Result<SchedulerConfig> oversized = LoadSchedulerConfig(big);
  ASSERT_FALSE(oversized.ok());
  EXPECT_THAT(oversized.status().message(), HasSubstr("over the limit of 64 MiB"));

  std::string bad = dir.Write("bad.yaml", "listen: [\n");
  Result<SchedulerConfig> syntax = LoadSchedulerConfig(bad);
  ASSERT_FALSE(syntax.ok());
  EXPECT_THAT(syntax.status().message(), HasSubstr(bad + ":2:1: YAML syntax error"));
}

}  // namespace
}  // namespace gsched::config
