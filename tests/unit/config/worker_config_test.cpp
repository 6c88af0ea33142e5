#include "config/worker_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

namespace gsched::config {
namespace {

using ::testing::HasSubstr;

TEST(WorkerConfigTest, EmptyDocumentGivesTheDocumentedDefaults) {
  Result<WorkerConfig> c = ParseWorkerConfig("", "worker.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->schedulers, std::vector<std::string>{"http://127.0.0.1:8600"});
  EXPECT_EQ(c->token_file, "");
  EXPECT_EQ(c->name, "");
  EXPECT_EQ(c->work_dir, "./gsched-worker");
  EXPECT_EQ(c->cpus, 0);
  EXPECT_EQ(c->memory_mib, 0);
  EXPECT_EQ(c->heartbeat_interval, Seconds(5));
  EXPECT_EQ(c->health_check_interval, Seconds(30));
  EXPECT_EQ(c->reconnect.initial_backoff, Duration(500));
  EXPECT_EQ(c->reconnect.max_backoff, Seconds(30));
  EXPECT_EQ(c->runtime.type, RuntimeType::kRunc);
  EXPECT_EQ(c->runtime.binary, "");
  EXPECT_TRUE(c->runtime.extra_args.empty());
  EXPECT_EQ(c->gpus.discovery, GpuDiscovery::kNvidiaSmi);
  EXPECT_EQ(c->gpus.nvidia_smi, "nvidia-smi");
  EXPECT_EQ(c->gpus.fake.count, 8);
  EXPECT_EQ(c->gpus.fake.type, "h100");
  EXPECT_EQ(c->gpus.fake.memory_mib, 81920);
  EXPECT_EQ(c->gpus.fake.nvlink, NvlinkTopology::kAll);
  EXPECT_EQ(c->logs.max_bytes_per_stream, int64_t{100} << 20);
  EXPECT_TRUE(c->drain_on_unhealthy);
  EXPECT_TRUE(c->adopt_running_jobs);
  // Trust (DESIGN.md section 11): users' own identities from the node's database, no image
  // allowed until a site says where images come from, the host network, 4,096 pids per job.
  EXPECT_EQ(c->identity.mode, IdentityMode::kNss);
  EXPECT_EQ(c->identity.min_uid, 1000);
  EXPECT_FALSE(c->identity.run_as_root);
  EXPECT_TRUE(c->images.roots.empty());
  EXPECT_TRUE(c->images.registries.empty());
  EXPECT_EQ(c->network, NetworkMode::kHost);
  EXPECT_EQ(c->limits.pids, 4096);
}

TEST(WorkerConfigTest, ReadsTheTrustSections) {
  Result<WorkerConfig> c = ParseWorkerConfig(R"(
identity:
  mode: pool
  min_uid: 5000
  pool: {first_uid: 2000000, users: 100, ids_per_user: 65536}
images:
  roots: [/srv/images/, /opt/images]
  registries: [nvcr.io, "127.0.0.1:5000"]
network: none
limits: {pids: 512}
)",
                                             "w.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->identity.mode, IdentityMode::kPool);
  EXPECT_EQ(c->identity.min_uid, 5000);
  EXPECT_EQ(c->identity.pool.first_uid, 2000000);
  EXPECT_EQ(c->identity.pool.users, 100);
  EXPECT_EQ(c->images.roots, (std::vector<std::string>{"/srv/images", "/opt/images"}));
  EXPECT_EQ(c->images.registries, (std::vector<std::string>{"nvcr.io", "127.0.0.1:5000"}));
  EXPECT_TRUE(c->images.insecure_registries.empty());
  // The cache's defaults: work_dir/images, 50 GiB, 30 minutes per pull, anonymous.
  EXPECT_EQ(c->images.cache_dir, "");
  EXPECT_EQ(c->images.cache_max_bytes, int64_t{50} << 30);
  EXPECT_EQ(c->images.pull_timeout, Seconds(1800));
  EXPECT_EQ(c->images.credentials_file, "");
  EXPECT_EQ(c->network, NetworkMode::kNone);
  EXPECT_EQ(c->limits.pids, 512);
  c = ParseWorkerConfig("address: 10.1.2.3\nrendezvous_ports: 30000-30099\n", "w.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->address, "10.1.2.3");
  EXPECT_EQ(c->rendezvous_ports, (api::PortRange{30000, 30099}));
  for (const char* bad : {"address: 'a b'\n", "rendezvous_ports: 30099-30000\n",
                          "rendezvous_ports: 0-10\n", "rendezvous_ports: 30000\n"}) {
    auto r = ParseWorkerConfig(bad, "w.yaml");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_TRUE(r.status().message().find("address") != std::string::npos ||
                r.status().message().find("rendezvous_ports") != std::string::npos)
        << r.status().message();
  }
  c = ParseWorkerConfig("identity: {mode: map, map_file: /etc/gsched/identities}\n", "w.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->identity.map_file, "/etc/gsched/identities");
}

TEST(WorkerConfigTest, ReadsEveryKind) {
  Result<WorkerConfig> c = ParseWorkerConfig(R"(
scheduler: https://sched.example.org:8600
token_file: /etc/gsched/worker.token
name: nacc-nvl000-n00
site: nacc
block: nvl000
labels: {rack: r12, "nvidia.com/gpu.product": B200}
cpus: 144
memory_mib: 2T
heartbeat_interval: 2s
reconnect: {initial_backoff: 100ms, max_backoff: 1m}
runtime: {type: podman, binary: /usr/bin/podman, extra_args: [--log-level, debug]}
gpus:
  discovery: fake
  fake: {count: 4, type: b200, memory_mib: 180G, nvlink: pairs, fault_file: /tmp/faults}
logs: {max_bytes_per_stream: 1G}
drain_on_unhealthy: false
adopt_running_jobs: no
)",
                                             "w.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->schedulers, std::vector<std::string>{"https://sched.example.org:8600"});
  EXPECT_EQ(c->name, "nacc-nvl000-n00");
  EXPECT_EQ(c->labels.at("nvidia.com/gpu.product"), "B200");
  EXPECT_EQ(c->cpus, 144);
  EXPECT_EQ(c->memory_mib, 2 * 1024 * 1024);
  EXPECT_EQ(c->reconnect.max_backoff, Seconds(60));
  EXPECT_EQ(c->runtime.type, RuntimeType::kPodman);
  EXPECT_EQ(c->runtime.extra_args, (std::vector<std::string>{"--log-level", "debug"}));
  EXPECT_EQ(c->gpus.discovery, GpuDiscovery::kFake);
  EXPECT_EQ(c->gpus.fake.count, 4);
  EXPECT_EQ(c->gpus.fake.memory_mib, 180 * 1024);
  EXPECT_EQ(c->gpus.fake.nvlink, NvlinkTopology::kPairs);
  EXPECT_EQ(c->logs.max_bytes_per_stream, int64_t{1} << 30);
  EXPECT_FALSE(c->drain_on_unhealthy);
  EXPECT_FALSE(c->adopt_running_jobs);
}

TEST(WorkerConfigTest, EmptySiteAndBlockMeanNone) {
  Result<WorkerConfig> c = ParseWorkerConfig("site: \"\"\nblock:\n", "w.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->site, "");
  EXPECT_EQ(c->block, "");
}

TEST(WorkerConfigTest, EnumsPrintTheirYamlNames) {
  EXPECT_EQ(ToString(RuntimeType::kCrun), "crun");
  EXPECT_EQ(ToString(GpuDiscovery::kNvidiaSmi), "nvidia-smi");
  EXPECT_EQ(ToString(NvlinkTopology::kPairs), "pairs");
}

TEST(WorkerConfigTest, SchedulerIsOneUrlACommaListOrASequence) {
  const std::vector<std::string> two = {"http://10.0.0.5:8600", "https://sched-b.example:8600"};
  for (const char* yaml :
       {"scheduler: http://10.0.0.5:8600, https://sched-b.example:8600\n",
        "scheduler: [http://10.0.0.5:8600, https://sched-b.example:8600]\n",
        "scheduler:\n  - http://10.0.0.5:8600\n  - https://sched-b.example:8600\n"}) {
    Result<WorkerConfig> c = ParseWorkerConfig(yaml, "worker.yaml");
    ASSERT_TRUE(c.ok()) << yaml << c.status().ToString();
    EXPECT_EQ(c->schedulers, two) << yaml;
  }
  Result<WorkerConfig> one = ParseWorkerConfig("scheduler: http://a:1\n", "worker.yaml");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->schedulers, std::vector<std::string>{"http://a:1"});
}

struct Rejection {
  std::string yaml;
  std::string field;
  std::string fragment;
};

void PrintTo(const Rejection& r, std::ostream* os) {
  *os << r.yaml;
}

class WorkerConfigRejectionTest : public ::testing::TestWithParam<Rejection> {};

TEST_P(WorkerConfigRejectionTest, NamesPathAndReason) {
  const Rejection& r = GetParam();
  Result<WorkerConfig> c = ParseWorkerConfig(r.yaml, "worker.yaml");
  ASSERT_FALSE(c.ok()) << r.yaml;
  EXPECT_EQ(c.status().field(), r.field) << c.status().message();
  EXPECT_THAT(c.status().message(), HasSubstr(r.fragment));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, WorkerConfigRejectionTest,
    ::testing::Values(
        Rejection{"scheduler: 127.0.0.1:8600\n", "scheduler", "must be an http:// or https:// URL"},
        Rejection{"scheduler: \"http://\"\n", "scheduler", "must be an http:// or https:// URL"},
        Rejection{"scheduler: {url: x}\n", "scheduler", "must be a string (got a mapping)"},
        Rejection{"scheduler: http://a:1, b:2\n", "scheduler[1]",
                  "must be an http:// or https:// URL (got 'b:2')"},
        Rejection{"scheduler: http://a:1,,http://c:3\n", "scheduler[1]",
                  "must be an http:// or https:// URL (got '')"},
        Rejection{"scheduler: [http://a:1, http://b:2, ftp://c]\n", "scheduler[2]",
                  "must be an http:// or https:// URL (got 'ftp://c')"},
        Rejection{"scheduler: [http://a:1, {url: x}]\n", "scheduler[1]", "must be a string"},
        Rejection{"scheduler: []\n", "scheduler", "must name at least one URL"},
        Rejection{"scheduler: \"\"\n", "scheduler", "must be an http:// or https:// URL"},
        Rejection{"name: \"bad name\"\n", "name", "invalid node name 'bad name'"},
        Rejection{"site: Seoul\n", "site", "invalid name 'Seoul'"},
        Rejection{"labels: [a, b]\n", "labels", "must be a mapping of label names"},
        Rejection{"labels: {\"bad key\": x}\n", "labels.bad key", "invalid label name"},
        Rejection{"labels: {k: " + std::string(300, 'v') + "}\n", "labels.k",
                  "must be at most 256 characters"},
        Rejection{"cpus: -1\n", "cpus", "must be >= 0"},
        Rejection{"cpus: 1000000\n", "cpus", "must be <= 65536"},
        Rejection{"memory_mib: lots\n", "memory_mib", "invalid size 'lots'"},
        Rejection{"heartbeat_interval: 0\n", "heartbeat_interval", "must be >= 100ms"},
        Rejection{"health_check_interval: soon\n", "health_check_interval", "invalid duration"},
        Rejection{"reconnect: {initial_backoff: 1m, max_backoff: 1s}\n", "reconnect.max_backoff",
                  "must be >= reconnect.initial_backoff (1m)"},
        Rejection{"runtime: {type: lxc}\n", "runtime.type",
                  "unknown value 'lxc'; (one of: runc, crun, podman, docker, process)"},
        Rejection{"runtime: {type: rnuc}\n", "runtime.type", "did you mean 'runc'?"},
        Rejection{"runtime: {extra_args: --debug}\n", "runtime.extra_args",
                  "must be a list of strings"},
        Rejection{"runtime: {tpye: runc}\n", "runtime.tpye", "did you mean 'type'?"},
        Rejection{"gpus: {discovery: nvml}\n", "gpus.discovery",
                  "unknown value 'nvml'; (one of: fake, nvidia-smi)"},
        Rejection{"gpus: {fake: {count: 65}}\n", "gpus.fake.count", "must be <= 64"},
        Rejection{"gpus: {fake: {count: -1}}\n", "gpus.fake.count", "must be >= 0"},
        Rejection{"gpus: {fake: {nvlink: mesh}}\n", "gpus.fake.nvlink",
                  "(one of: none, pairs, all)"},
        Rejection{"gpus: {fake: {type: \"H 100\"}}\n", "gpus.fake.type", "invalid name"},
        Rejection{"gpus: {fake: {memory_mib: 0}}\n", "gpus.fake.memory_mib", "must be >= 1 MiB"},
        Rejection{"gpus: {nvidia_smi: \"\"}\n", "gpus.nvidia_smi", "must not be empty"},
        Rejection{"logs: {max_bytes_per_stream: 10}\n", "logs.max_bytes_per_stream",
                  "must be >= 4096 bytes"},
        Rejection{"drain_on_unhealthy: sometimes\n", "drain_on_unhealthy", "must be a boolean"},
        Rejection{"adopt_running_job: true\n", "adopt_running_job",
                  "did you mean 'adopt_running_jobs'?"},
        Rejection{"work_dir: \"\"\n", "work_dir", "must not be empty"},
        Rejection{"cpus: 1\ncpus: 2\n", "cpus", "duplicate key"},
        Rejection{"identity: {mode: ldap}\n", "identity.mode", "(one of: nss, map, pool)"},
        Rejection{"identity: {mode: map}\n", "identity.map_file", "must be set"},
        Rejection{"identity: {min_uid: 0}\n", "identity.min_uid", "must be >= 1"},
        Rejection{"identity: {mode: pool, min_uid: 1000, pool: {first_uid: 10}}\n",
                  "identity.pool.first_uid", "must be >= identity.min_uid"},
        Rejection{"identity: {mode: pool, pool: {first_uid: 4294000000, users: 100}}\n",
                  "identity.pool.users", "must stay below"},
        Rejection{"images: {roots: [/]}\n", "images.roots", "'/' may not be an image root"},
        Rejection{"images: {roots: [images]}\n", "images.roots", "must be an absolute path"},
        Rejection{"images: {registries: [\"evil.io/x\"]}\n", "images.registries[0]",
                  "must be a registry host[:port]"},
        Rejection{"network: bridge\n", "network", "(one of: host, none)"},
        Rejection{"limits: {pids: 1}\n", "limits.pids", "must be >= 16"}));

TEST(WorkerConfigTest, ReadsTheImageCacheAndPerRegistrySettings) {
  Result<WorkerConfig> c = ParseWorkerConfig(R"(
images:
  registries:
    - nvcr.io
    - {host: "127.0.0.1:5000", insecure: true}
    - {host: ghcr.io, insecure: false}
  credentials_file: /etc/gsched/registry-auth.json
  cache_dir: /var/cache/gsched/images
  cache_max_bytes: 200GiB
  pull_timeout: 1h
)",
                                             "w.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->images.registries,
            (std::vector<std::string>{"nvcr.io", "127.0.0.1:5000", "ghcr.io"}));
  EXPECT_EQ(c->images.insecure_registries, (std::vector<std::string>{"127.0.0.1:5000"}));
  EXPECT_EQ(c->images.credentials_file, "/etc/gsched/registry-auth.json");
  EXPECT_EQ(c->images.cache_dir, "/var/cache/gsched/images");
  EXPECT_EQ(c->images.cache_max_bytes, int64_t{200} << 30);
  EXPECT_EQ(c->images.pull_timeout, Seconds(3600));
  for (const auto& [yaml, field, message] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"images: {registries: [{host: \"a.io/x\"}]}\n", "images.registries[0].host",
            "must be a registry host[:port]"},
           {"images: {registries: [{insecure: true}]}\n", "images.registries[0].host",
            "is required"},
           {"images: {registries: [{host: a.io, tls: false}]}\n", "images.registries[0].tls", ""},
           {"images: {registries: [a.io, {host: a.io}]}\n", "images.registries[1].host",
            "listed twice"},
           {"images: {cache_max_bytes: 1KiB}\n", "images.cache_max_bytes", ""},
           {"images: {pull_timeout: 0s}\n", "images.pull_timeout", ""}}) {
    Result<WorkerConfig> bad = ParseWorkerConfig(yaml, "w.yaml");
    ASSERT_FALSE(bad.ok()) << yaml;
    EXPECT_NE(bad.status().message().find(field), std::string::npos) << bad.status().message();
    EXPECT_NE(bad.status().message().find(message), std::string::npos) << bad.status().message();
  }
}

TEST(WorkerConfigTest, LoadResolvesRelativePathsAgainstTheFile) {
  auto dir = std::filesystem::temp_directory_path() / "gsched-worker-config-test";
  std::filesystem::create_directories(dir);
  std::string file = (dir / "worker.yaml").string();
  std::ofstream(file) << "token_file: tok\nwork_dir: ./w\nruntime: {binary: bin/runc, root: "
                         "state}\ngpus: {nvidia_smi: nvidia-smi, fake: {fault_file: f}}\n";
  Result<WorkerConfig> c = LoadWorkerConfig(file);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->token_file, (dir / "tok").string());
  EXPECT_EQ(c->work_dir, (dir / "w").string());
  EXPECT_EQ(c->runtime.binary, (dir / "bin/runc").string());
  EXPECT_EQ(c->runtime.root, (dir / "state").string());
  // A bare program name is looked up on PATH, not made relative.
  EXPECT_EQ(c->gpus.nvidia_smi, "nvidia-smi");
  EXPECT_EQ(c->gpus.fake.fault_file, (dir / "f").string());
}

}  // namespace
}  // namespace gsched::config
