#include "worker/runtime.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "scheduler/api/image.h"
#include "worker/command.h"
#include "worker/job_files.h"
#include "worker/seccomp.h"
#include "worker/srun.h"

namespace gsched::worker {
namespace fs = std::filesystem;
namespace {

constexpr std::pair<const char*, int> kSignals[] = {
    {"SIGHUP", SIGHUP},   {"SIGINT", SIGINT},   {"SIGQUIT", SIGQUIT}, {"SIGKILL", SIGKILL},
    {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {"SIGTERM", SIGTERM}, {"SIGCONT", SIGCONT},
    {"SIGSTOP", SIGSTOP}, {"SIGABRT", SIGABRT}, {"SIGSEGV", SIGSEGV}, {"SIGPIPE", SIGPIPE},
    {"SIGALRM", SIGALRM}, {"SIGBUS", SIGBUS},   {"SIGFPE", SIGFPE},   {"SIGILL", SIGILL},
    {"SIGTRAP", SIGTRAP}, {"SIGXCPU", SIGXCPU}, {"SIGTSTP", SIGTSTP}, {"SIGWINCH", SIGWINCH},
};

// `/proc` files: not job-writable, but read with the same care as everything else.
std::string ReadFile(const std::string& path) {
  auto text = ReadRegularFile(path, 1 << 16);
  return text.ok() ? *text : std::string();
}

// The pid file the shim writes: "JOB_PID JOB_TICKS SHIM_PID SHIM_TICKS".
std::optional<RuntimeHandle> ReadPidFile(const std::string& job_dir) {
  auto text = ReadRegularFile(job_dir + "/pid", 256);
  if (!text.ok())
    return std::nullopt;
  std::istringstream in(*text);
  RuntimeHandle h;
  if (!(in >> h.pid >> h.pid_start_ticks >> h.shim_pid >> h.shim_start_ticks))
    return std::nullopt;
  h.job_dir = job_dir;
  return h;
}

std::optional<ExitStatus> ReadExitFile(const std::string& job_dir) {
  auto text = ReadRegularFile(job_dir + "/exit", 256);
  if (!text.ok())
    return std::nullopt;
  std::istringstream in(*text);
  std::string kind;
  int32_t value = 0;
  if (!(in >> kind >> value))
    return std::nullopt;
  ExitStatus status;
  if (kind == "exit")
    status.exit_code = value;
  else if (kind == "signal")
    status.signal = value;
  else
    return std::nullopt;
  return status;
}

bool SameProcess(pid_t pid, uint64_t ticks) {
  if (pid <= 0)
    return false;
  auto now = ProcessStartTicks(pid);
  return now && *now == ticks;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings)
    out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Runtimes whose job is a plain process group: signals go to the group.
class ProcessRuntime final : public ContainerRuntime {
 public:
  ProcessRuntime(config::RuntimeConfig config, std::string shim, RuntimePolicy policy)
      : ContainerRuntime(std::move(config), std::move(shim), std::move(policy)) {}
  config::RuntimeType type() const override { return config::RuntimeType::kProcess; }
  Status Signal(const RuntimeHandle& handle, int signal) override {
    if (!SameProcess(handle.pid, handle.pid_start_ticks))
      return Status::NotFound("job process " + std::to_string(handle.pid) + " is gone");
    if (kill(-handle.pid, signal) != 0 && kill(handle.pid, signal) != 0)
      return Status::Internal(std::string("kill: ") + strerror(errno));
    return Status::Ok();
  }
  void Cleanup(const RuntimeHandle&) override {}
  Result<std::vector<std::string>> Command(const JobLaunch& launch) override {
    if (launch.spec.command.empty())
      return Status::InvalidArgument("the job has no command", "command");
    return launch.spec.command;
  }

 protected:
  bool JobRunsOnHost() const override { return true; }
};

// runc and crun: an OCI bundle in the job directory, `runc run` in the foreground under the shim.
class OciRuntime final : public ContainerRuntime {
 public:
  OciRuntime(config::RuntimeConfig config, std::string shim, RuntimePolicy policy)
      : ContainerRuntime(std::move(config), std::move(shim), std::move(policy)) {}
  config::RuntimeType type() const override { return config_.type; }

  Status Signal(const RuntimeHandle& handle, int signal) override {
    auto args = Base();
    args.insert(args.end(), {"kill", "--all", handle.container_id, std::to_string(signal)});
    auto out = RunCommandOutput(args);
    if (!out.ok())
      return out.status();
    if (out->exit_code != 0)
      return Status::NotFound(Binary() + " kill: " + out->err);
    return Status::Ok();
  }
  void Cleanup(const RuntimeHandle& handle) override {
    auto args = Base();
    args.insert(args.end(), {"delete", "--force", handle.container_id});
    RunCommandOutput(args).IgnoreError();
  }
  bool OutOfMemory(const RuntimeHandle& handle) const override {
    std::string path = CgroupsPath(handle.container_id);
    if (path.empty())
      return false;
    // cgroup v1: `oom_kill N` in memory.oom_control; v2: the same line in memory.events.
    for (const std::string& file : {"/sys/fs/cgroup/memory" + path + "/memory.oom_control",
                                    "/sys/fs/cgroup" + path + "/memory.events"}) {
      std::istringstream in(ReadFile(file));
      std::string key;
      int64_t value = 0;
      while (in >> key >> value)
        if (key == "oom_kill" && value > 0)
          return true;
    }
    return false;
  }
  Result<std::vector<std::string>> Command(const JobLaunch& launch) override {
    std::string rootfs;
    if (api::IsLocalImage(launch.spec.image)) {
      ASSIGN_OR_RETURN(rootfs, ResolveImageRoot(launch.spec.image, policy_.images.roots));
    } else {
      // An OCI reference: the supervisor had the image cache pull it.
      RETURN_IF_ERROR(CheckImageRegistry(launch.spec.image, policy_.images.registries));
      if (launch.rootfs.empty())
        return Status::InvalidArgument(
            "image \"" + launch.spec.image + "\" is an OCI reference that was not pulled", "image");
      rootfs = launch.rootfs;
    }
    if (launch.spec.command.empty())
      return Status::InvalidArgument("the job has no command", "command");
    std::vector<std::string> devices;
    std::error_code ec;
    if (!launch.gpus.empty()) {
      for (const char* d :
           {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"})
        if (fs::exists(d, ec))
          devices.push_back(d);
      for (int32_t g : launch.gpus) {
        std::string d = "/dev/nvidia" + std::to_string(g);
        if (fs::exists(d, ec))
          devices.push_back(d);
      }
    }
    RETURN_IF_ERROR(EnsureMountPoints(rootfs));
    std::string bundle = launch.job_dir + "/bundle";
    RETURN_IF_ERROR(MakeDirectory(bundle, 0700));
    RETURN_IF_ERROR(WriteFileAtomic(
        bundle + "/config.json",
        BuildOciConfig(launch, rootfs, devices, policy_, CgroupsPath(launch.container_id)), 0600));
    auto args = Base();
    args.insert(args.end(), {"run", "--bundle", bundle});
    // runc keeps the stopped container, and with it its cgroup, until `Cleanup`: that is where
    // an OOM kill can be read. crun has no such flag.
    if (config_.type == config::RuntimeType::kRunc)
      args.push_back("--keep");
    args.push_back(launch.container_id);
    return args;
  }

 private:
  // The directories the container's mounts go on. The runtime would make missing ones itself,
  // but not from inside a user namespace (the image belongs to host root): the worker makes them
  // beforehand, as directories directly in the image, never through a link.
  static Status EnsureMountPoints(const std::string& rootfs) {
    for (const char* dir : {"proc", "dev", "sys", "tmp", "gsched", "gsched-bin"}) {
      std::string path = rootfs + "/" + dir;
      struct stat st {};
      if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode))
          return Status::InvalidArgument(
              "image " + rootfs + ": /" + dir + " must be a directory, not a link or a file",
              "image");
        continue;
      }
      if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
        return Status::Internal("cannot create the mount point " + path + ": " + strerror(errno));
    }
    return Status::Ok();
  }
  // The container's cgroup, below a `gsched` parent; empty with the systemd cgroup driver, whose
  // names the runtime makes itself.
  std::string CgroupsPath(const std::string& container_id) const {
    for (const auto& a : config_.extra_args)
      if (a == "--systemd-cgroup")
        return {};
    return "/gsched/" + container_id;
  }
  std::vector<std::string> Base() const {
    std::vector<std::string> args = {Binary()};
    if (!config_.root.empty())
      args.insert(args.end(), {"--root", config_.root});
    args.insert(args.end(), config_.extra_args.begin(), config_.extra_args.end());
    return args;
  }
};

// podman and docker: the engine's CLI in the foreground under the shim.
class EngineRuntime final : public ContainerRuntime {
 public:
  EngineRuntime(config::RuntimeConfig config, std::string shim, RuntimePolicy policy)
      : ContainerRuntime(std::move(config), std::move(shim), std::move(policy)) {}
  config::RuntimeType type() const override { return config_.type; }
  Status Signal(const RuntimeHandle& handle, int signal) override {
    auto out = RunCommandOutput(
        {Binary(), "kill", "--signal", std::to_string(signal), handle.container_id});
    if (!out.ok())
      return out.status();
    if (out->exit_code != 0)
      return Status::NotFound(Binary() + " kill: " + out->err);
    return Status::Ok();
  }
  void Cleanup(const RuntimeHandle& handle) override {
    RunCommandOutput({Binary(), "rm", "--force", handle.container_id}).IgnoreError();
  }
  Result<std::vector<std::string>> Command(const JobLaunch& launch) override {
    RETURN_IF_ERROR(api::CheckImage(launch.spec.image));
    JobLaunch checked = launch;
    if (api::IsLocalImage(launch.spec.image)) {
      ASSIGN_OR_RETURN(checked.spec.image,
                       ResolveImageRoot(launch.spec.image, policy_.images.roots));
    } else {
      RETURN_IF_ERROR(CheckImageRegistry(launch.spec.image, policy_.images.registries));
    }
    return BuildEngineRunArgv(config_.type, Binary(), checked, policy_);
  }
};

}  // namespace

std::string ContainerId(std::string_view tag, uint64_t job, uint32_t attempt) {
  return "gsched-" + std::string(tag) + "-" + std::to_string(job) + "-" + std::to_string(attempt);
}

std::string WorkerTag(const std::string& work_dir) {
  // FNV-1a, 32 bits: a name, not a security boundary.
  uint32_t h = 2166136261u;
  fs::path dir = fs::absolute(work_dir).lexically_normal();
  if (!dir.has_filename() && dir.has_parent_path())  // "/a/b/" names the same directory as "/a/b".
    dir = dir.parent_path();
  for (unsigned char c : dir.string()) {
    h ^= c;
    h *= 16777619u;
  }
  char out[9];
  std::snprintf(out, sizeof out, "%08x", h);
  return out;
}

std::string ContainerRuntime::Binary() const {
  return config_.binary.empty() ? std::string(config::ToString(config_.type)) : config_.binary;
}

RuntimePolicy PolicyFromConfig(const config::WorkerConfig& config) {
  return RuntimePolicy{config.images, config.network, config.limits.pids};
}

std::unique_ptr<ContainerRuntime> MakeRuntime(const config::RuntimeConfig& config,
                                              std::string shim_binary, RuntimePolicy policy) {
  switch (config.type) {
    case config::RuntimeType::kProcess:
      return std::make_unique<ProcessRuntime>(config, std::move(shim_binary), std::move(policy));
    case config::RuntimeType::kRunc:
    case config::RuntimeType::kCrun:
      return std::make_unique<OciRuntime>(config, std::move(shim_binary), std::move(policy));
    case config::RuntimeType::kPodman:
    case config::RuntimeType::kDocker:
      return std::make_unique<EngineRuntime>(config, std::move(shim_binary), std::move(policy));
  }
  return nullptr;
}

Result<std::string> ResolveImageRoot(const std::string& image,
                                     const std::vector<std::string>& roots) {
  RETURN_IF_ERROR(api::CheckImage(image));
  if (!api::IsLocalImage(image))
    return Status::InvalidArgument("image \"" + image + "\" is not a root file system path",
                                   "image");
  if (roots.empty())
    return Status::InvalidArgument("image \"" + image +
                                       "\": this node accepts no root file systems (images.roots "
                                       "is empty)",
                                   "image");
  char* real = ::realpath(image.c_str(), nullptr);
  if (real == nullptr)
    return Status::InvalidArgument(
        "image \"" + image + "\" is not a rootfs directory on this node: " + strerror(errno),
        "image");
  std::string resolved(real);
  free(real);
  struct stat st {};
  if (::stat(resolved.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return Status::InvalidArgument("image \"" + image + "\" is not a rootfs directory on this node",
                                   "image");
  std::string allowed;
  for (const std::string& root : roots) {
    char* r = ::realpath(root.c_str(), nullptr);
    if (r == nullptr)
      continue;
    std::string real_root(r);
    free(r);
    if (real_root == "/")
      continue;
    // Strictly below a root: the root itself is the directory of images, not an image.
    if (resolved.size() > real_root.size() + 1 && resolved.starts_with(real_root) &&
        resolved[real_root.size()] == '/')
      return resolved;
    allowed += (allowed.empty() ? "" : ", ") + root;
  }
  return Status::InvalidArgument("image \"" + image + "\" (" + resolved +
                                     ") is not under this node's images.roots (" + allowed + ")",
                                 "image");
}

Status CheckImageRegistry(const std::string& image, const std::vector<std::string>& registries) {
  ASSIGN_OR_RETURN(api::ImageReference ref, api::ParseImageReference(image));
  for (const std::string& r : registries)
    if (r == ref.registry)
      return Status::Ok();
  std::string allowed;
  for (const std::string& r : registries)
    allowed += (allowed.empty() ? "" : ", ") + r;
  return Status::InvalidArgument("image \"" + image + "\": registry " + ref.registry +
                                     " is not in this node's images.registries (" +
                                     (allowed.empty() ? "none allowed" : allowed) + ")",
                                 "image");
}

Result<RuntimeHandle> ContainerRuntime::Start(const JobLaunch& launch) {
  ASSIGN_OR_RETURN(std::vector<std::string> command, Command(launch));
  std::error_code ec;
  fs::create_directories(fs::path(launch.job_dir).parent_path(), ec);
  // The attempt's directory is the worker's: others may pass through (to reach `job/`), not
  // list or write it.
  RETURN_IF_ERROR(MakeDirectory(launch.job_dir, 0711));
  std::string gsched_dir = launch.gsched_dir.empty() ? launch.job_dir + "/job" : launch.gsched_dir;
  std::optional<std::pair<uid_t, gid_t>> owner;
  if (launch.identity.switch_user)
    owner = std::pair<uid_t, gid_t>(launch.identity.uid, launch.identity.gid);
  RETURN_IF_ERROR(MakeDirectory(gsched_dir, 0700, owner));
  // Everything the children need is built before fork: after it only async-signal-safe calls.
  std::vector<std::string> argv = {shim_binary_, "--shim", launch.job_dir,
                                   std::to_string(launch.max_log_bytes)};
  if (JobRunsOnHost()) {
    // A `process` job: the shim drops to its identity and runs it with its environment, which
    // the shim (root) itself never runs with.
    if (launch.identity.switch_user) {
      argv.insert(argv.end(), {"--uid", std::to_string(launch.identity.uid), "--gid",
                               std::to_string(launch.identity.gid)});
      if (!launch.identity.groups.empty()) {
        std::string groups;
        for (uint32_t g : launch.identity.groups)
          groups += (groups.empty() ? "" : ",") + std::to_string(g);
        argv.insert(argv.end(), {"--groups", groups});
      }
    }
    argv.insert(argv.end(),
                {"--cwd", launch.spec.workdir.empty() ? gsched_dir : launch.spec.workdir});
    std::string env;
    for (const auto& [k, v] : launch.env)
      env += k + "=" + v + '\0';
    RETURN_IF_ERROR(WriteFileAtomic(launch.job_dir + "/env", env, 0600));
    argv.insert(argv.end(), {"--env-file", launch.job_dir + "/env"});
  }
  argv.push_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  std::vector<std::string> envs = {
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  std::string cwd = launch.job_dir;
  std::vector<char*> c_argv = CStrings(argv);
  std::vector<char*> c_envp = CStrings(envs);
  unlink((launch.job_dir + "/pid").c_str());
  unlink((launch.job_dir + "/exit").c_str());

  // Double fork: the shim is reparented to init, so it outlives the worker and the worker never
  // has to reap it.
  pid_t middle = fork();
  if (middle < 0)
    return Status::Internal(std::string("fork: ") + strerror(errno));
  if (middle == 0) {
    setsid();
    pid_t shim = fork();
    if (shim != 0)
      _exit(shim < 0 ? 1 : 0);
    if (chdir(cwd.c_str()) != 0)
      _exit(126);
    // The worker's descriptors (its scheduler connection, log files) must not leak into the
    // shim and the job: a leaked socket would outlive a killed worker.
    if (close_range(3, ~0U, 0) != 0) {
      for (int fd = 3; fd < 1024; ++fd)
        close(fd);
    }
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(devnull, 2);
    }
    // Signal dispositions and the mask are inherited through exec; reset them.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(c_argv[0], c_argv.data(), c_envp.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(middle, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Status::Internal("could not start the shim");
  // The shim writes `pid` right after forking the job, or `exit` when it could not start it.
  // Bounded wait: 10 s in 5 ms steps.
  for (int i = 0; i < 2000; ++i) {
    if (auto handle = ReadPidFile(launch.job_dir)) {
      handle->container_id = launch.container_id;
      return *handle;
    }
    if (ReadExitFile(launch.job_dir))
      return Status::Internal("the shim could not start the job: " +
                              ReadFile(launch.job_dir + "/stderr"));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return Status::Unavailable("the shim did not report the job's pid within 10 s");
}

PollResult ContainerRuntime::Poll(const RuntimeHandle& handle) const {
  PollResult result;
  if (auto exit = ReadExitFile(handle.job_dir)) {
    result.liveness = Liveness::kExited;
    result.exit = *exit;
    // A container runtime in the foreground reports a signal as 128 + N.
    if (config_.type != config::RuntimeType::kProcess && exit->exit_code &&
        *exit->exit_code > 128 && *exit->exit_code <= 128 + 64) {
      result.exit = ExitStatus{std::nullopt, *exit->exit_code - 128};
    }
    return result;
  }
  if (SameProcess(handle.shim_pid, handle.shim_start_ticks) ||
      SameProcess(handle.pid, handle.pid_start_ticks))
    return result;
  // The shim writes `exit` before it exits; read once more in case it just did.
  if (auto exit = ReadExitFile(handle.job_dir)) {
    result.liveness = Liveness::kExited;
    result.exit = *exit;
    return result;
  }
  result.liveness = Liveness::kLost;
  return result;
}

Result<RuntimeHandle> ContainerRuntime::Adopt(const std::string& job_dir,
                                              const std::string& container_id) const {
  auto handle = ReadPidFile(job_dir);
  if (!handle)
    return Status::NotFound("no pid file in " + job_dir);
  handle->container_id = container_id;
  return *handle;
}

std::map<std::string, std::string> BuildJobEnv(const api::JobSpec& spec,
                                               const std::map<std::string, std::string>& env,
                                               uint64_t job, uint32_t attempt,
                                               std::optional<uint32_t> array_index,
                                               const std::vector<int32_t>& gpus,
                                               const std::string& container_dir) {
  std::map<std::string, std::string> out;
  out["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  out["HOME"] = container_dir;
  for (const auto* source : {&spec.env, &env})
    for (const auto& [k, v] : *source)
      if (!api::IsLoaderVariable(k))
        out[k] = v;
  out["GSCHED_JOB_ID"] = std::to_string(job);
  out["GSCHED_ATTEMPT"] = std::to_string(attempt);
  if (array_index)
    out["GSCHED_ARRAY_INDEX"] = std::to_string(*array_index);
  out["GSCHED_JOB_DIR"] = container_dir;
  out["GSCHED_CHECKPOINT_FILE"] = container_dir + "/checkpoint";
  std::string visible;
  for (int32_t g : gpus)
    visible += (visible.empty() ? "" : ",") + std::to_string(g);
  out["CUDA_VISIBLE_DEVICES"] = visible;
  out["NVIDIA_VISIBLE_DEVICES"] = visible.empty() ? "none" : visible;
  return out;
}

std::string CompressHostlist(const std::vector<std::string>& names) {
  // Groups by (prefix, suffix width) in order of first appearance; names without a numeric
  // suffix stand alone.
  struct Group {
    std::string prefix;
    size_t width = 0;
    std::vector<uint64_t> numbers;
  };
  std::vector<Group> groups;
  for (const std::string& name : names) {
    size_t digits = name.size();
    while (digits > 0 && std::isdigit(static_cast<unsigned char>(name[digits - 1])))
      --digits;
    size_t width = name.size() - digits;
    if (width == 0 || width > 18) {
      groups.push_back({name, 0, {}});
      continue;
    }
    std::string prefix = name.substr(0, digits);
    uint64_t number = std::stoull(name.substr(digits));
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const Group& g) { return g.width == width && g.prefix == prefix; });
    if (it == groups.end())
      groups.push_back({prefix, width, {number}});
    else
      it->numbers.push_back(number);
  }
  std::string out;
  for (Group& g : groups) {
    if (!out.empty())
      out += ',';
    if (g.width == 0) {
      out += g.prefix;
      continue;
    }
    std::sort(g.numbers.begin(), g.numbers.end());
    g.numbers.erase(std::unique(g.numbers.begin(), g.numbers.end()), g.numbers.end());
    auto padded = [&](uint64_t n) {
      std::string text = std::to_string(n);
      return std::string(g.width > text.size() ? g.width - text.size() : 0, '0') + text;
    };
    if (g.numbers.size() == 1) {
      out += g.prefix + padded(g.numbers[0]);
      continue;
    }
    std::string ranges;
    for (size_t i = 0; i < g.numbers.size();) {
      size_t j = i;
      while (j + 1 < g.numbers.size() && g.numbers[j + 1] == g.numbers[j] + 1)
        ++j;
      ranges += (ranges.empty() ? "" : ",") + padded(g.numbers[i]) +
                (j > i ? "-" + padded(g.numbers[j]) : "");
      i = j + 1;
    }
    out += g.prefix + "[" + ranges + "]";
  }
  return out;
}

void AddGangEnv(std::map<std::string, std::string>& env, const api::Launch& launch,
                const std::string& this_node) {
  std::vector<std::string> nodes = launch.nodes;
  if (nodes.empty())
    nodes = {this_node};
  int32_t rank = launch.node_rank.value_or(0);
  std::string list;
  for (const auto& n : nodes)
    list += (list.empty() ? "" : ",") + n;
  const std::string count = std::to_string(nodes.size());
  const int64_t gpus = static_cast<int64_t>(launch.gpus.size());
  env["GSCHED_NODELIST"] = list;
  env["GSCHED_NUM_NODES"] = count;
  env["GSCHED_NODE_RANK"] = std::to_string(rank);
  env["GSCHED_GPUS_PER_NODE"] = std::to_string(gpus);
  env["WORLD_SIZE"] =
      std::to_string(static_cast<int64_t>(nodes.size()) * std::max<int64_t>(gpus, 1));
  env["SLURM_JOB_ID"] = std::to_string(launch.job);
  env["SLURM_JOB_NAME"] = launch.spec.name;
  env["SLURM_JOB_NODELIST"] = CompressHostlist(nodes);
  env["SLURM_NNODES"] = count;
  env["SLURM_JOB_NUM_NODES"] = count;
  env["SLURM_NODEID"] = std::to_string(rank);
  env["SLURM_GPUS_ON_NODE"] = std::to_string(gpus);
  if (launch.array_index) {
    env["SLURM_ARRAY_TASK_ID"] = std::to_string(*launch.array_index);
    if (launch.array_job_id)
      env["SLURM_ARRAY_JOB_ID"] = std::to_string(*launch.array_job_id);
  }
  if (launch.rendezvous) {
    env["MASTER_ADDR"] = launch.rendezvous->address;
    env["MASTER_PORT"] = std::to_string(launch.rendezvous->port);
  }
}

std::string BuildOciConfig(const JobLaunch& launch, const std::string& rootfs,
                           const std::vector<std::string>& devices, const RuntimePolicy& policy,
                           const std::string& cgroups_path) {
  namespace json = boost::json;
  const JobIdentity& id = launch.identity;
  const bool userns = id.switch_user && id.userns_size > 0;
  json::array env;
  for (const auto& [k, v] : launch.env)
    env.emplace_back(k + "=" + v);
  json::array args;
  for (const auto& a : launch.spec.command)
    args.emplace_back(a);
  // In a user namespace the job is root of its own namespace (host ids from `id.uid`); else it
  // is the identity itself.
  json::object user{{"uid", userns ? 0 : int64_t{id.uid}}, {"gid", userns ? 0 : int64_t{id.gid}}};
  if (!userns && !id.groups.empty()) {
    json::array groups;
    for (uint32_t g : id.groups)
      groups.emplace_back(int64_t{g});
    user["additionalGids"] = std::move(groups);
  }
  json::object process{
      {"terminal", false},
      {"user", std::move(user)},
      {"args", std::move(args)},
      {"env", std::move(env)},
      {"cwd", launch.spec.workdir.empty() ? "/gsched" : launch.spec.workdir},
      {"noNewPrivileges", true},
      // No capabilities at all, in any set.
      {"capabilities",
       {{"bounding", json::array()},
        {"effective", json::array()},
        {"inheritable", json::array()},
        {"permitted", json::array()},
        {"ambient", json::array()}}},
      {"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}}},
  };
  // sysfs cannot be mounted from a user namespace that does not own the network namespace:
  // there it is the host's, bound read-only.
  json::object sys = userns && policy.network == config::NetworkMode::kHost
                         ? json::object{{"destination", "/sys"},
                                        {"type", "none"},
                                        {"source", "/sys"},
                                        {"options", {"rbind", "nosuid", "noexec", "nodev", "ro"}}}
                         : json::object{{"destination", "/sys"},
                                        {"type", "sysfs"},
                                        {"source", "sysfs"},
                                        {"options", {"nosuid", "noexec", "nodev", "ro"}}};
  json::array mounts = {
      {{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
      {{"destination", "/dev"},
       {"type", "tmpfs"},
       {"source", "tmpfs"},
       {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
      {{"destination", "/dev/pts"},
       {"type", "devpts"},
       {"source", "devpts"},
       {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}}},
      {{"destination", "/dev/shm"},
       {"type", "tmpfs"},
       {"source", "shm"},
       {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}},
      std::move(sys),
      {{"destination", "/tmp"},
       {"type", "tmpfs"},
       {"source", "tmpfs"},
       {"options", {"nosuid", "nodev", "mode=1777"}}},
      {{"destination", "/gsched"},
       {"type", "bind"},
       {"source", launch.gsched_dir.empty() ? launch.job_dir + "/job" : launch.gsched_dir},
       {"options", {"rbind", "rw", "nosuid", "nodev"}}},
  };
  if (!launch.bin_dir.empty()) {
    mounts.push_back(json::object{{"destination", std::string(kSrunMountPoint)},
                                  {"type", "bind"},
                                  {"source", launch.bin_dir},
                                  {"options", {"rbind", "ro", "nosuid", "nodev"}}});
  }
  json::array device_list;
  json::array device_rules = {{{"allow", false}, {"access", "rwm"}}};
  for (const auto& path : devices) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0 || !S_ISCHR(st.st_mode))
      continue;
    int64_t major_num = static_cast<int64_t>(major(st.st_rdev));
    int64_t minor_num = static_cast<int64_t>(minor(st.st_rdev));
    device_list.push_back({{"path", path},
                           {"type", "c"},
                           {"major", major_num},
                           {"minor", minor_num},
                           {"fileMode", 0666},
                           {"uid", 0},
                           {"gid", 0}});
    device_rules.push_back({{"allow", true},
                            {"type", "c"},
                            {"major", major_num},
                            {"minor", minor_num},
                            {"access", "rwm"}});
  }
  json::object resources{{"devices", std::move(device_rules)},
                         {"pids", {{"limit", policy.pids_limit}}}};
  if (launch.memory_limit_mib > 0)
    resources["memory"] = {{"limit", launch.memory_limit_mib * 1024 * 1024}};
  if (launch.spec.cpus_per_node > 0)
    resources["cpu"] = {{"quota", int64_t{launch.spec.cpus_per_node} * 100000}, {"period", 100000}};
  json::array namespaces = {
      {{"type", "pid"}}, {{"type", "ipc"}}, {{"type", "uts"}}, {{"type", "mount"}}};
  if (policy.network == config::NetworkMode::kNone)
    namespaces.push_back(json::object{{"type", "network"}});
  json::object linux_section{
      {"namespaces", std::move(namespaces)},
      {"devices", std::move(device_list)},
      {"resources", std::move(resources)},
      {"seccomp", JobSeccompProfile()},
      {"maskedPaths",
       {"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
        "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
        "/proc/timer_stats", "/sys/firmware", "/sys/devices/virtual/powercap",
        "/sys/kernel/debug"}},
      {"readonlyPaths", {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}},
  };
  if (!cgroups_path.empty())
    linux_section["cgroupsPath"] = cgroups_path;
  if (userns) {
    linux_section["namespaces"].as_array().push_back(json::object{{"type", "user"}});
    json::array map = {{{"containerID", 0}, {"hostID", int64_t{id.uid}}, {"size", id.userns_size}}};
    linux_section["uidMappings"] = map;
    map[0].as_object()["hostID"] = int64_t{id.gid};
    linux_section["gidMappings"] = std::move(map);
  }
  json::object config{
      {"ociVersion", "1.0.2"},
      {"process", std::move(process)},
      {"root", {{"path", fs::absolute(rootfs).string()}, {"readonly", true}}},
      {"hostname", launch.container_id},
      {"mounts", std::move(mounts)},
      {"linux", std::move(linux_section)},
  };
  return json::serialize(config);
}

std::vector<std::string> BuildEngineRunArgv(config::RuntimeType type, const std::string& binary,
                                            const JobLaunch& launch, const RuntimePolicy& policy) {
  bool podman = type == config::RuntimeType::kPodman;
  const JobIdentity& id = launch.identity;
  std::string gsched_dir = launch.gsched_dir.empty() ? launch.job_dir + "/job" : launch.gsched_dir;
  std::vector<std::string> argv = {binary,
                                   "run",
                                   "--name",
                                   launch.container_id,
                                   "--init",
                                   "-v",
                                   gsched_dir + ":/gsched",
                                   "--workdir",
                                   launch.spec.workdir.empty() ? "/gsched" : launch.spec.workdir,
                                   "--cap-drop",
                                   "ALL",
                                   "--security-opt",
                                   "no-new-privileges",
                                   "--read-only",
                                   "--tmpfs",
                                   "/tmp",
                                   "--pids-limit",
                                   std::to_string(policy.pids_limit),
                                   "--network",
                                   std::string(config::ToString(policy.network))};
  if (!launch.bin_dir.empty())
    argv.insert(argv.end(), {"-v", launch.bin_dir + ":" + std::string(kSrunMountPoint) + ":ro"});
  if (id.switch_user) {
    if (id.userns_size > 0 && podman) {
      // The container's ids 0..N-1 are the user's block of host ids.
      std::string map = "0:" + std::to_string(id.uid) + ":" + std::to_string(id.userns_size);
      argv.insert(argv.end(),
                  {"--uidmap", map, "--gidmap",
                   "0:" + std::to_string(id.gid) + ":" + std::to_string(id.userns_size)});
    } else {
      argv.insert(argv.end(), {"--user", std::to_string(id.uid) + ":" + std::to_string(id.gid)});
      if (id.userns_size == 0)
        for (uint32_t g : id.groups)
          argv.insert(argv.end(), {"--group-add", std::to_string(g)});
    }
  }
  if (podman) {
    // Raising limits is not permitted on these machines (PLATFORM.md).
    argv.insert(argv.end(), {"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"});
  }
  if (!launch.gpus.empty()) {
    std::string list;
    for (int32_t g : launch.gpus)
      list += (list.empty() ? "" : ",") + std::to_string(g);
    if (podman) {
      // Podman takes GPUs as CDI devices.
      for (int32_t g : launch.gpus)
        argv.insert(argv.end(), {"--device", "nvidia.com/gpu=" + std::to_string(g)});
    } else {
      argv.insert(argv.end(), {"--gpus", "\"device=" + list + "\""});
    }
  }
  if (launch.memory_limit_mib > 0)
    argv.insert(argv.end(), {"--memory", std::to_string(launch.memory_limit_mib) + "m"});
  if (launch.spec.cpus_per_node > 0)
    argv.insert(argv.end(), {"--cpus", std::to_string(launch.spec.cpus_per_node)});
  for (const auto& [k, v] : launch.env)
    argv.insert(argv.end(), {"-e", k + "=" + v});
  // Every option precedes the image (podman's `--rootfs` makes the image a path); `--` ends
  // the options, so that no image is ever read as one.
  bool rootfs = podman && api::IsLocalImage(launch.spec.image);
  if (rootfs)
    argv.push_back("--rootfs");
  argv.push_back("--");
  argv.push_back(launch.spec.image);
  argv.insert(argv.end(), launch.spec.command.begin(), launch.spec.command.end());
  return argv;
}

Result<int> SignalNumber(std::string_view name) {
  for (const auto& [n, v] : kSignals)
    if (name == n || (name.size() > 0 && std::string("SIG") + std::string(name) == n))
      return v;
  return Status::InvalidArgument("unknown signal \"" + std::string(name) + "\"", "signal");
}

std::string SignalName(int signal) {
  for (const auto& [n, v] : kSignals)
    if (v == signal)
      return n;
  return "SIG" + std::to_string(signal);
}

std::optional<uint64_t> ProcessStartTicks(pid_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  // "pid (comm) state ..." - comm may hold spaces and parentheses: parse after the last ')'.
  size_t close = stat.rfind(')');
  if (close == std::string::npos)
    return std::nullopt;
  std::istringstream in(stat.substr(close + 1));
  std::string field;
  // Field 3 is the state; field 22 the start time: 20 fields after the state.
  std::string state;
  if (!(in >> state) || state == "Z" || state == "X")
    return std::nullopt;
  for (int i = 4; i < 22; ++i)
    in >> field;
  uint64_t ticks = 0;
  if (!(in >> ticks))
    return std::nullopt;
  return ticks;
}

namespace {

struct ShimArgs {
  std::string dir;
  int64_t max_bytes = 0;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::vector<gid_t> groups;
  std::string cwd;
  std::string env_file;
  std::vector<std::string> command;
};

std::optional<uint32_t> ParseUint32(const std::string& s) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty() || v >= 4294967295ull)
    return std::nullopt;
  return static_cast<uint32_t>(v);
}

std::optional<ShimArgs> ParseShimArgs(const std::vector<std::string>& args) {
  if (args.size() < 4)
    return std::nullopt;
  ShimArgs out;
  out.dir = args[0];
  const std::string& max = args[1];
  auto [end, ec] = std::from_chars(max.data(), max.data() + max.size(), out.max_bytes);
  if (ec != std::errc() || end != max.data() + max.size() || out.max_bytes < 0)
    return std::nullopt;
  size_t i = 2;
  for (; i + 1 < args.size() && args[i] != "--"; i += 2) {
    const std::string& flag = args[i];
    const std::string& value = args[i + 1];
    if (flag == "--uid" || flag == "--gid") {
      auto id = ParseUint32(value);
      if (!id)
        return std::nullopt;
      (flag == "--uid" ? out.uid : out.gid) = *id;
    } else if (flag == "--groups") {
      size_t start = 0;
      while (start <= value.size()) {
        size_t comma = value.find(',', start);
        auto g =
            ParseUint32(value.substr(start, comma == std::string::npos ? comma : comma - start));
        if (!g)
          return std::nullopt;
        out.groups.push_back(*g);
        if (comma == std::string::npos)
          break;
        start = comma + 1;
      }
    } else if (flag == "--cwd") {
      out.cwd = value;
    } else if (flag == "--env-file") {
      out.env_file = value;
    } else {
      return std::nullopt;
    }
  }
  if (i >= args.size() || args[i] != "--" || i + 1 >= args.size())
    return std::nullopt;
  if (out.uid.has_value() != out.gid.has_value())
    return std::nullopt;
  out.command.assign(args.begin() + static_cast<std::ptrdiff_t>(i + 1), args.end());
  return out;
}

}  // namespace

int RunShim(const std::vector<std::string>& args) {
  auto parsed = ParseShimArgs(args);
  if (!parsed)
    return 2;
  const std::string& dir = parsed->dir;
  const int64_t max_bytes = parsed->max_bytes;
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);

  // The job's environment, for the job alone.
  std::vector<std::string> env;
  if (!parsed->env_file.empty()) {
    auto text = ReadRegularFile(parsed->env_file, 64 << 20);
    if (!text.ok()) {
      WriteFileAtomic(dir + "/exit", "exit 127\n", 0644).IgnoreError();
      return 1;
    }
    size_t start = 0;
    while (start < text->size()) {
      size_t end = text->find('\0', start);
      if (end == std::string::npos)
        end = text->size();
      env.emplace_back(*text, start, end - start);
      start = end + 1;
    }
  } else {
    for (char** e = environ; *e != nullptr; ++e)
      env.emplace_back(*e);
  }
  std::vector<char*> c_env = CStrings(env);

  // Output files in the worker's own directory, opened here: never through a link.
  constexpr int kOutFlags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
  int files[2] = {open((dir + "/stdout").c_str(), kOutFlags, 0600),
                  open((dir + "/stderr").c_str(), kOutFlags, 0600)};
  int pipes[2][2];
  if (files[0] < 0 || files[1] < 0 || pipe2(pipes[0], O_CLOEXEC) != 0 ||
      pipe2(pipes[1], O_CLOEXEC) != 0) {
    WriteFileAtomic(dir + "/exit", "exit 127\n", 0644).IgnoreError();
    return 1;
  }
  std::vector<std::string> command = parsed->command;
  std::vector<char*> c_argv = CStrings(command);
  const ShimArgs& a = *parsed;
  pid_t child = fork();
  if (child < 0) {
    WriteFileAtomic(dir + "/exit", "exit 127\n", 0644).IgnoreError();
    return 1;
  }
  if (child == 0) {
    setpgid(0, 0);
    signal(SIGHUP, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    dup2(pipes[0][1], 1);
    dup2(pipes[1][1], 2);
    if (a.uid) {
      // Groups, then the group, then the user: afterwards nothing of root is left, which the
      // last check proves.
      if (setgroups(a.groups.size(), a.groups.data()) != 0 || setgid(*a.gid) != 0 ||
          setuid(*a.uid) != 0 || getuid() != *a.uid || geteuid() != *a.uid || getgid() != *a.gid ||
          setuid(0) == 0) {
        dprintf(2, "gsched shim: cannot switch to uid %u gid %u: %s\n", *a.uid, *a.gid,
                strerror(errno));
        _exit(126);
      }
    }
    if (!a.cwd.empty() && chdir(a.cwd.c_str()) != 0) {
      dprintf(2, "gsched shim: cannot enter the working directory %s: %s\n", a.cwd.c_str(),
              strerror(errno));
      _exit(126);
    }
    // PATH lookup with the job's own PATH.
    environ = c_env.data();
    execvp(c_argv[0], c_argv.data());
    dprintf(2, "gsched shim: cannot execute %s: %s\n", c_argv[0], strerror(errno));
    _exit(127);
  }
  setpgid(child, child);
  close(pipes[0][1]);
  close(pipes[1][1]);
  auto child_ticks = ProcessStartTicks(child).value_or(0);
  auto self_ticks = ProcessStartTicks(getpid()).value_or(0);
  WriteFileAtomic(dir + "/pid",
                  std::to_string(child) + " " + std::to_string(child_ticks) + " " +
                      std::to_string(getpid()) + " " + std::to_string(self_ticks) + "\n",
                  0644)
      .IgnoreError();

  int64_t written[2] = {0, 0};
  bool truncated[2] = {false, false};
  pollfd fds[2] = {{pipes[0][0], POLLIN, 0}, {pipes[1][0], POLLIN, 0}};
  int open_fds = 2;
  bool reaped = false;
  int status = 0;
  char buf[65536];
  // Pipes close when the job and everything it started are gone; a daemonised grandchild that
  // keeps them open must not keep the job "running", so after the job is reaped the pipes are
  // drained without blocking and the shim moves on.
  while (open_fds > 0) {
    int ready = poll(fds, 2, reaped ? 0 : 200);
    if (ready < 0 && errno != EINTR)
      break;
    bool got = false;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      got = true;
      int64_t room = max_bytes - written[i];
      int64_t keep = std::min<int64_t>(room, n);
      if (keep > 0) {
        if (write(files[i], buf, static_cast<size_t>(keep)) > 0)
          written[i] += keep;
      }
      if (keep < n && !truncated[i]) {
        truncated[i] = true;
        const char note[] = "\n[output truncated]\n";
        if (write(files[i], note, sizeof note - 1) < 0) {
        }
      }
    }
    if (!reaped) {
      pid_t r = waitpid(child, &status, WNOHANG);
      if (r == child)
        reaped = true;
    } else if (!got) {
      break;
    }
  }
  if (!reaped) {
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
  }
  close(files[0]);
  close(files[1]);
  std::string exit = WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                         : "exit " + std::to_string(WEXITSTATUS(status));
  // From `waitpid`: nothing the job wrote decides it.
  WriteFileAtomic(dir + "/exit", exit + "\n", 0644).IgnoreError();
  return 0;
}

}  // namespace gsched::worker
