// Runtime command lines and bundles: the OCI config.json for runc/crun, the exact argv of
// podman/docker (no engine here), signal names, and runc end to end when runc exists and we are
// root.
#include "worker/runtime.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <set>

#include "worker/node_address.h"
#include "worker/supervisor.h"
#include "worker_test_util.h"

namespace gsched::worker {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using testing::TempDir;
using testing::UpdateLog;

JobLaunch SampleLaunch(const std::string& job_dir) {
  JobLaunch l;
  l.job = 42;
  l.attempt = 3;
  l.spec.image = "/images/pytorch";
  l.spec.command = {"python", "train.py", "--epochs", "3"};
  l.spec.memory_mib_per_node = 2048;
  l.spec.cpus_per_node = 4;
  l.gpus = {2, 5};
  l.env = BuildJobEnv(l.spec, {{"EPOCHS", "3"}}, 42, 3, std::nullopt, l.gpus, "/gsched");
  l.job_dir = job_dir;
  l.memory_limit_mib = 2048;
  l.identity = JobIdentity{60001, 60001, {44}};
  l.container_id = ContainerId("0a1b2c3d", l.job, l.attempt);
  return l;
}

TEST(OciConfig, Fields) {
  JobLaunch l = SampleLaunch("/var/gsched/jobs/42/3");
  json::value v = json::parse(BuildOciConfig(l, "/images/pytorch", {}));
  const json::object& c = v.as_object();
  EXPECT_EQ(c.at("root").at("path"), "/images/pytorch");
  EXPECT_EQ(c.at("root").at("readonly"), true);
  const json::object& p = c.at("process").as_object();
  EXPECT_EQ(p.at("noNewPrivileges"), true);
  EXPECT_EQ(p.at("cwd"), "/gsched");
  EXPECT_EQ(p.at("args"), (json::array{"python", "train.py", "--epochs", "3"}));
  std::vector<std::string> env;
  for (const auto& e : p.at("env").as_array())
    env.emplace_back(e.as_string());
  auto has = [&](const std::string& kv) {
    return std::find(env.begin(), env.end(), kv) != env.end();
  };
  EXPECT_TRUE(has("EPOCHS=3"));
  EXPECT_TRUE(has("GSCHED_JOB_ID=42"));
  EXPECT_TRUE(has("GSCHED_ATTEMPT=3"));
  EXPECT_TRUE(has("CUDA_VISIBLE_DEVICES=2,5"));
  EXPECT_TRUE(has("NVIDIA_VISIBLE_DEVICES=2,5"));
  EXPECT_TRUE(has("GSCHED_CHECKPOINT_FILE=/gsched/checkpoint"));
  bool job_mount = false;
  for (const auto& m : c.at("mounts").as_array()) {
    if (m.at("destination") == "/gsched") {
      job_mount = true;
      // The job's own directory, not the worker's files around it.
      EXPECT_EQ(m.at("source"), "/var/gsched/jobs/42/3/job");
      EXPECT_EQ(m.at("type"), "bind");
    }
  }
  EXPECT_TRUE(job_mount);
  const json::object& res = c.at("linux").at("resources").as_object();
  // 2048 MiB = 2048 * 1024 * 1024 bytes; 4 CPUs = quota 400000 per 100000 period.
  EXPECT_EQ(res.at("memory").at("limit"), 2147483648);
  EXPECT_EQ(res.at("cpu").at("quota"), 400000);
  EXPECT_EQ(res.at("cpu").at("period"), 100000);
  EXPECT_EQ(c.at("hostname"), "gsched-0a1b2c3d-42-3");
}

TEST(OciConfig, GpuDeviceNodesAndNoLimits) {
  JobLaunch l = SampleLaunch("/j");
  l.memory_limit_mib = 0;
  l.spec.cpus_per_node = 0;
  // /dev/null stands in for /dev/nvidia0 (a character device that exists everywhere).
  json::value v = json::parse(BuildOciConfig(l, "/r", {"/dev/null", "/dev/does-not-exist"}));
  const json::object& lin = v.at("linux").as_object();
  ASSERT_EQ(lin.at("devices").as_array().size(), 1u);
  EXPECT_EQ(lin.at("devices").at(0).at("path"), "/dev/null");
  EXPECT_EQ(lin.at("devices").at(0).at("major"), 1);
  EXPECT_EQ(lin.at("devices").at(0).at("minor"), 3);
  EXPECT_FALSE(lin.at("resources").as_object().contains("memory"));
  EXPECT_FALSE(lin.at("resources").as_object().contains("cpu"));
}

TEST(EngineArgv, Podman) {
  JobLaunch l = SampleLaunch("/w/jobs/42/3");
  l.spec.image = "/images/rootfs";
  l.env = {{"A", "1"}, {"CUDA_VISIBLE_DEVICES", "2,5"}};
  std::vector<std::string> expected = {"podman",
                                       "run",
                                       "--name",
                                       "gsched-0a1b2c3d-42-3",
                                       "--init",
                                       "-v",
                                       "/w/jobs/42/3/job:/gsched",
                                       "--workdir",
                                       "/gsched",
                                       "--cap-drop",
                                       "ALL",
                                       "--security-opt",
                                       "no-new-privileges",
                                       "--read-only",
                                       "--tmpfs",
                                       "/tmp",
                                       "--pids-limit",
                                       "4096",
                                       "--network",
                                       "host",
                                       "--user",
                                       "60001:60001",
                                       "--group-add",
                                       "44",
                                       "--ulimit",
                                       "nofile=1024:1024",
                                       "--ulimit",
                                       "nproc=4096:4096",
                                       "--device",
                                       "nvidia.com/gpu=2",
                                       "--device",
                                       "nvidia.com/gpu=5",
                                       "--memory",
                                       "2048m",
                                       "--cpus",
                                       "4",
                                       "-e",
                                       "A=1",
                                       "-e",
                                       "CUDA_VISIBLE_DEVICES=2,5",
                                       "--rootfs",
                                       "--",
                                       "/images/rootfs",
                                       "python",
                                       "train.py",
                                       "--epochs",
                                       "3"};
  EXPECT_EQ(BuildEngineRunArgv(config::RuntimeType::kPodman, "podman", l), expected);
}

TEST(EngineArgv, Docker) {
  JobLaunch l = SampleLaunch("/w/jobs/42/3");
  l.spec.image = "nvcr.io/nvidia/pytorch:24.10-py3";
  l.memory_limit_mib = 0;
  l.spec.cpus_per_node = 0;
  l.env = {{"A", "1"}};
  l.identity = JobIdentity{200000, 200000, {}, 65536};
  RuntimePolicy policy;
  policy.network = config::NetworkMode::kNone;
  policy.pids_limit = 128;
  std::vector<std::string> expected = {
      "docker", "run", "--name", "gsched-0a1b2c3d-42-3", "--init", "-v", "/w/jobs/42/3/job:/gsched",
      "--workdir", "/gsched", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
      "--read-only", "--tmpfs", "/tmp", "--pids-limit", "128", "--network", "none",
      // Docker has no per-container user namespace: the block's
      // first id.
      "--user", "200000:200000", "--gpus", "\"device=2,5\"", "-e", "A=1", "--",
      "nvcr.io/nvidia/pytorch:24.10-py3", "python", "train.py", "--epochs", "3"};
  EXPECT_EQ(BuildEngineRunArgv(config::RuntimeType::kDocker, "docker", l, policy), expected);
}

TEST(EngineArgv, AnImageIsNeverAnOptionAndPodmanMapsThePoolBlock) {
  JobLaunch l = SampleLaunch("/w/jobs/42/3");
  l.spec.image = "--privileged";
  l.identity = JobIdentity{200000, 200000, {}, 65536};
  auto argv = BuildEngineRunArgv(config::RuntimeType::kPodman, "podman", l);
  auto dashes = std::find(argv.begin(), argv.end(), "--");
  ASSERT_NE(dashes, argv.end());
  EXPECT_EQ(*(dashes + 1), "--privileged");
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "--privileged"), 1);
  auto uidmap = std::find(argv.begin(), argv.end(), "--uidmap");
  ASSERT_NE(uidmap, argv.end());
  EXPECT_EQ(*(uidmap + 1), "0:200000:65536");
  EXPECT_EQ(std::find(argv.begin(), argv.end(), "--user"), argv.end());
  // And the runtime refuses such an image before any argv is built.
  auto runtime = MakeRuntime({config::RuntimeType::kPodman, "podman", "", {}}, "/bin/false");
  auto command = runtime->Command(l);
  ASSERT_FALSE(command.ok());
  EXPECT_EQ(command.status().field(), "image");
}

TEST(OciConfig, JobsHaveNoPrivilegeSeccompLimitsAndTheirIdentity) {
  JobLaunch l = SampleLaunch("/var/gsched/jobs/42/3");
  RuntimePolicy policy;
  policy.pids_limit = 512;
  json::value v = json::parse(BuildOciConfig(l, "/images/pytorch", {}, policy, "/gsched/c1"));
  const json::object& p = v.at("process").as_object();
  EXPECT_EQ(p.at("user"), (json::object{{"uid", 60001}, {"gid", 60001}, {"additionalGids", {44}}}));
  for (const char* set : {"bounding", "effective", "inheritable", "permitted", "ambient"})
    EXPECT_TRUE(p.at("capabilities").at(set).as_array().empty()) << set;
  EXPECT_EQ(p.at("noNewPrivileges"), true);
  const json::object& lin = v.at("linux").as_object();
  EXPECT_EQ(lin.at("resources").at("pids").at("limit"), 512);
  EXPECT_EQ(lin.at("resources").at("memory").at("limit"), 2147483648);
  EXPECT_EQ(lin.at("cgroupsPath"), "/gsched/c1");
  EXPECT_FALSE(lin.contains("uidMappings"));
  std::vector<std::string> ns;
  for (const auto& n : lin.at("namespaces").as_array())
    ns.emplace_back(n.at("type").as_string());
  EXPECT_EQ(ns, (std::vector<std::string>{"pid", "ipc", "uts", "mount"}));  // Host network.
  // The seccomp profile denies the escape calls, whatever else it does.
  const json::object& seccomp = lin.at("seccomp").as_object();
  EXPECT_EQ(seccomp.at("defaultAction"), "SCMP_ACT_ALLOW");
  std::set<std::string> denied;
  for (const auto& rule : seccomp.at("syscalls").as_array())
    if (rule.at("action") == "SCMP_ACT_ERRNO" && !rule.as_object().contains("args"))
      for (const auto& name : rule.at("names").as_array())
        denied.insert(std::string(name.as_string()));
  for (const char* call : {"keyctl", "add_key", "bpf", "kexec_load", "init_module", "finit_module",
                           "open_by_handle_at", "perf_event_open", "ptrace", "mount", "umount2",
                           "unshare", "setns", "pivot_root", "clone3"})
    EXPECT_TRUE(denied.contains(call)) << call;
  std::set<std::string> masked;
  for (const auto& m : lin.at("maskedPaths").as_array())
    masked.insert(std::string(m.as_string()));
  EXPECT_TRUE(masked.contains("/proc/kcore"));
  EXPECT_TRUE(masked.contains("/proc/keys"));
  EXPECT_TRUE(masked.contains("/sys/firmware"));
}

TEST(OciConfig, PoolIdentitiesGetAUserNamespaceAndNoneNetworkItsOwnNamespace) {
  JobLaunch l = SampleLaunch("/j");
  l.identity = JobIdentity{200000, 200000, {}, 65536};
  RuntimePolicy policy;
  policy.network = config::NetworkMode::kNone;
  json::value v = json::parse(BuildOciConfig(l, "/r", {}, policy));
  EXPECT_EQ(v.at("process").at("user"), (json::object{{"uid", 0}, {"gid", 0}}));
  const json::object& lin = v.at("linux").as_object();
  // Container root is host 200000, and 65536 ids from there.
  EXPECT_EQ(lin.at("uidMappings"),
            (json::array{{{"containerID", 0}, {"hostID", 200000}, {"size", 65536}}}));
  EXPECT_EQ(lin.at("gidMappings"),
            (json::array{{{"containerID", 0}, {"hostID", 200000}, {"size", 65536}}}));
  std::set<std::string> ns;
  for (const auto& n : lin.at("namespaces").as_array())
    ns.insert(std::string(n.at("type").as_string()));
  EXPECT_TRUE(ns.contains("user"));
  EXPECT_TRUE(ns.contains("network"));
}

TEST(ImageRoots, OnlyDirectoriesStrictlyUnderARootWithNoEscape) {
  TempDir dir;
  std::string d = dir.path();
  fs::create_directories(d + "/images/busybox/bin");
  fs::create_directories(d + "/outside");
  fs::create_symlink(d + "/outside", d + "/images/escape");
  fs::create_symlink("/usr", d + "/images/usr");
  std::ofstream(d + "/images/file") << "x";
  std::vector<std::string> roots = {d + "/images"};
  auto ok = ResolveImageRoot(d + "/images/busybox", roots);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, fs::canonical(d + "/images/busybox").string());
  for (const std::string& bad :
       {std::string("/usr"), std::string("/"), d + "/images", d + "/images/escape",
        d + "/images/usr", d + "/images/file", d + "/images/missing", d + "/outside",
        d + "/images/busybox/../../outside", std::string("--privileged"), std::string("busybox")}) {
    auto r = ResolveImageRoot(bad, roots);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().field(), "image") << bad;
  }
  EXPECT_NE(ResolveImageRoot("/usr", roots).status().message().find("images.roots"),
            std::string::npos);
  // No roots: no local image at all; `/` as a root is ignored.
  EXPECT_FALSE(ResolveImageRoot(d + "/images/busybox", {}).ok());
  EXPECT_FALSE(ResolveImageRoot("/usr", {"/"}).ok());
}

TEST(ImageRegistries, OnlyAllowListedRegistries) {
  EXPECT_TRUE(CheckImageRegistry("127.0.0.1:5000/demo/busybox:1", {"127.0.0.1:5000"}).ok());
  EXPECT_TRUE(CheckImageRegistry("busybox", {"docker.io"}).ok());
  Status st = CheckImageRegistry("evil.example/x:1", {"127.0.0.1:5000"});
  EXPECT_EQ(st.field(), "image");
  EXPECT_NE(st.message().find("images.registries"), std::string::npos) << st.ToString();
  EXPECT_FALSE(CheckImageRegistry("busybox", {}).ok());
}

TEST(Signals, NamesRoundTrip) {
  EXPECT_EQ(SignalNumber("SIGTERM").value_or(0), 15);
  EXPECT_EQ(SignalNumber("USR1").value_or(0), 10);
  EXPECT_EQ(SignalName(9), "SIGKILL");
  EXPECT_FALSE(SignalNumber("SIGNOPE").ok());
}

TEST(ContainerIds, AreUniquePerWorkerOfAHostAndStableAcrossRestarts) {
  EXPECT_EQ(ContainerId("0a1b2c3d", 7, 2), "gsched-0a1b2c3d-7-2");
  std::string tag = WorkerTag("/var/lib/gsched/worker-a");
  EXPECT_EQ(tag.size(), 8u);
  EXPECT_EQ(tag.find_first_not_of("0123456789abcdef"), std::string::npos) << tag;
  EXPECT_EQ(WorkerTag("/var/lib/gsched/worker-a/"), tag);
  EXPECT_EQ(WorkerTag("/var/lib/gsched/./worker-a"), tag);
  EXPECT_NE(WorkerTag("/var/lib/gsched/worker-b"), tag);
}

// A busybox rootfs per PLATFORM.md.
bool MakeBusyboxRootfs(const fs::path& rootfs) {
  std::error_code ec;
  for (const char* d : {"bin", "proc", "sys", "dev", "tmp", "etc", "gsched"})
    fs::create_directories(rootfs / d, ec);
  const char* busybox = fs::exists("/bin/busybox") ? "/bin/busybox" : "/usr/bin/busybox";
  fs::copy_file(busybox, rootfs / "bin/busybox", ec);
  if (ec)
    return false;
  for (const char* tool : {"sh", "echo", "env", "cat", "sleep", "true", "touch"})
    fs::create_symlink("busybox", rootfs / "bin" / tool, ec);
  return true;
}

bool OnPath(const std::string& name) {
  for (const char* dir : {"/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"})
    if (access((std::string(dir) + "/" + name).c_str(), X_OK) == 0)
      return true;
  return false;
}

TEST(RuncEndToEnd, EnvExitCodeAndKill) {
  if (geteuid() != 0)
    GTEST_SKIP() << "runc end-to-end needs root";
  if (!OnPath("runc"))
    GTEST_SKIP() << "runc is not installed (scripts/setup installs it)";
  if (!fs::exists("/bin/busybox") && !fs::exists("/usr/bin/busybox"))
    GTEST_SKIP() << "busybox-static is not installed";
  TempDir dir;
  fs::path rootfs = fs::path(dir.path()) / "rootfs";
  ASSERT_TRUE(MakeBusyboxRootfs(rootfs));
  config::WorkerConfig cfg;
  cfg.work_dir = dir.path() + "/work";
  cfg.runtime.type = config::RuntimeType::kRunc;
  cfg.runtime.root = dir.path() + "/runc-root";
  cfg.images.roots = {dir.path()};
  cfg.identity.run_as_root = true;
  ManualClock clock;
  UpdateLog log;
  JobSupervisor s(cfg, MakeRuntime(cfg.runtime, testing::ShimBinary(), PolicyFromConfig(cfg)),
                  clock, [&](const api::JobUpdate& u) { log.Add(u); });
  // Unique job ids per run: container ids are global to the runc root.
  uint64_t base = static_cast<uint64_t>(getpid()) * 10;
  api::Launch l;
  l.job = base + 1;
  l.attempt = 1;
  l.spec.image = rootfs.string();
  l.spec.command = {"/bin/sh", "-c",
                    "echo JOB=$GSCHED_JOB_ID CUDA=$CUDA_VISIBLE_DEVICES; "
                    "touch /gsched/marker; exit 3"};
  l.gpus = {0};
  s.Launch(l);
  ASSERT_TRUE(WaitFor([&] { return log.Terminal(l.job, 1).has_value(); }, std::chrono::seconds(10),
                      [&] { s.Tick(); }));
  auto t = log.Terminal(l.job, 1);
  EXPECT_EQ(t->state, api::JobState::kFailed) << t->message;
  EXPECT_EQ(t->exit_code, 3) << ReadJobFile(s.JobDir(l.job, 1) + "/stderr");
  EXPECT_EQ(ReadJobFile(s.JobDir(l.job, 1) + "/stdout"),
            "JOB=" + std::to_string(l.job) + " CUDA=0\n");
  EXPECT_TRUE(fs::exists(s.JobDir(l.job, 1) + "/job/marker"));

  // PID 1 without a handler ignores TERM: the kill escalates to SIGKILL after the grace.
  api::Launch k = l;
  k.job = base + 2;
  k.spec.command = {"/bin/sh", "-c", "echo up; while true; do sleep 1; done"};
  s.Launch(k);
  ASSERT_TRUE(WaitFor([&] { return ReadJobFile(s.JobDir(k.job, 1) + "/stdout") == "up\n"; },
                      std::chrono::seconds(10), [&] { s.Tick(); }));
  s.Kill({k.job, 1, 10, "preempted by job 1"});
  clock.Advance(Seconds(10));
  ASSERT_TRUE(WaitFor([&] { return log.Terminal(k.job, 1).has_value(); }, std::chrono::seconds(10),
                      [&] { s.Tick(); }));
  EXPECT_EQ(log.Terminal(k.job, 1)->state, api::JobState::kPreempted);
  EXPECT_EQ(log.Terminal(k.job, 1)->signal, "SIGKILL");
}

}  // namespace
}  // namespace gsched::worker

namespace gsched::worker {
namespace {

TEST(Hostlist, CompressesLikeSlurm) {
  // Same prefix and width: one bracket with ranges; others stand alone, in order of appearance.
  EXPECT_EQ(CompressHostlist(
                {"nacc-nvl003-n01", "nacc-nvl003-n02", "nacc-nvl003-n03", "nacc-nvl003-n04"}),
            "nacc-nvl003-n[01-04]");
  EXPECT_EQ(CompressHostlist({"n03", "n01", "n02", "n07", "gpu", "n9", "b1-n10"}),
            "n[01-03,07],gpu,n9,b1-n10");
  EXPECT_EQ(CompressHostlist({"node-1"}), "node-1");
  EXPECT_EQ(CompressHostlist({"a1", "a1"}), "a1");
  EXPECT_EQ(CompressHostlist({}), "");
}

TEST(GangEnv, EveryNodeKnowsTheGangInRankOrder) {
  api::Launch l;
  l.job = 42;
  l.spec.name = "llama-ft";
  l.gpus = {0, 1, 2, 3};
  l.nodes = {"nacc-nvl003-n02", "nacc-nvl003-n01", "nacc-nvl003-n03"};
  l.node_rank = 1;
  l.array_index = 5;
  l.array_job_id = 40;
  l.rendezvous = api::Rendezvous{"10.3.0.2", 29512};
  std::map<std::string, std::string> env;
  AddGangEnv(env, l, "nacc-nvl003-n01");
  // 3 nodes x 4 GPUs = 12 ranks.
  std::map<std::string, std::string> want = {
      {"GSCHED_NODELIST", "nacc-nvl003-n02,nacc-nvl003-n01,nacc-nvl003-n03"},
      {"GSCHED_NUM_NODES", "3"},
      {"GSCHED_NODE_RANK", "1"},
      {"GSCHED_GPUS_PER_NODE", "4"},
      {"WORLD_SIZE", "12"},
      {"SLURM_JOB_ID", "42"},
      {"SLURM_JOB_NAME", "llama-ft"},
      {"SLURM_JOB_NODELIST", "nacc-nvl003-n[01-03]"},
      {"SLURM_NNODES", "3"},
      {"SLURM_JOB_NUM_NODES", "3"},
      {"SLURM_NODEID", "1"},
      {"SLURM_GPUS_ON_NODE", "4"},
      {"SLURM_ARRAY_TASK_ID", "5"},
      {"SLURM_ARRAY_JOB_ID", "40"},
      {"MASTER_ADDR", "10.3.0.2"},
      {"MASTER_PORT", "29512"}};
  EXPECT_EQ(env, want);
  // A launch from a scheduler that names no gang: a gang of this node alone.
  api::Launch single;
  single.job = 7;
  std::map<std::string, std::string> one;
  AddGangEnv(one, single, "node-1");
  EXPECT_EQ(one.at("GSCHED_NODELIST"), "node-1");
  EXPECT_EQ(one.at("GSCHED_NODE_RANK"), "0");
  EXPECT_EQ(one.at("WORLD_SIZE"), "1");
  EXPECT_FALSE(one.contains("SLURM_ARRAY_TASK_ID"));
  EXPECT_FALSE(one.contains("MASTER_PORT"));
}

TEST(NodeAddress, TheAddressOnTheRouteToTheScheduler) {
  auto a = AddressTowards("http://127.0.0.1:8600");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(*a, "127.0.0.1");
  EXPECT_FALSE(AddressTowards("http://no-such-host.invalid:8600").ok());
  EXPECT_FALSE(AddressTowards("not a url").ok());
}

}  // namespace
}  // namespace gsched::worker
