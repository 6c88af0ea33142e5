#include "worker/runtime.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "worker/command.h"

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

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return {};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool WriteFileAtomic(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return false;
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      close(fd);
      return false;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  fsync(fd);
  close(fd);
  return rename(tmp.c_str(), path.c_str()) == 0;
}

// The pid file the shim writes: "JOB_PID JOB_TICKS SHIM_PID SHIM_TICKS".
std::optional<RuntimeHandle> ReadPidFile(const std::string& job_dir) {
  std::istringstream in(ReadFile(job_dir + "/pid"));
  RuntimeHandle h;
  if (!(in >> h.pid >> h.pid_start_ticks >> h.shim_pid >> h.shim_start_ticks))
    return std::nullopt;
  h.job_dir = job_dir;
  return h;
}

std::optional<ExitStatus> ReadExitFile(const std::string& job_dir) {
  std::istringstream in(ReadFile(job_dir + "/exit"));
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
  ProcessRuntime(config::RuntimeConfig config, std::string shim)
      : ContainerRuntime(std::move(config), std::move(shim)) {}
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
  bool PassJobEnv() const override { return true; }
};

// runc and crun: an OCI bundle in the job directory, `runc run` in the foreground under the shim.
class OciRuntime final : public ContainerRuntime {
 public:
  OciRuntime(config::RuntimeConfig config, std::string shim)
      : ContainerRuntime(std::move(config), std::move(shim)) {}
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
  Result<std::vector<std::string>> Command(const JobLaunch& launch) override {
    const std::string& rootfs = launch.spec.image;
    std::error_code ec;
    if (rootfs.empty() || !fs::is_directory(rootfs, ec))
      return Status::InvalidArgument(
          "image \"" + rootfs + "\" is not a rootfs directory on this node", "image");
    if (launch.spec.command.empty())
      return Status::InvalidArgument("the job has no command", "command");
    std::vector<std::string> devices;
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
    std::string bundle = launch.job_dir + "/bundle";
    fs::create_directories(bundle, ec);
    if (ec)
      return Status::Internal("cannot create " + bundle + ": " + ec.message());
    if (!WriteFileAtomic(bundle + "/config.json", BuildOciConfig(launch, rootfs, devices)))
      return Status::Internal("cannot write " + bundle + "/config.json");
    auto args = Base();
    args.insert(args.end(), {"run", "--bundle", bundle, launch.container_id});
    return args;
  }

 private:
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
  EngineRuntime(config::RuntimeConfig config, std::string shim)
      : ContainerRuntime(std::move(config), std::move(shim)) {}
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
    if (launch.spec.image.empty())
      return Status::InvalidArgument("the job has no image", "image");
    return BuildEngineRunArgv(config_.type, Binary(), launch);
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

std::unique_ptr<ContainerRuntime> MakeRuntime(const config::RuntimeConfig& config,
                                              std::string shim_binary) {
  switch (config.type) {
    case config::RuntimeType::kProcess:
      return std::make_unique<ProcessRuntime>(config, std::move(shim_binary));
    case config::RuntimeType::kRunc:
    case config::RuntimeType::kCrun:
      return std::make_unique<OciRuntime>(config, std::move(shim_binary));
    case config::RuntimeType::kPodman:
    case config::RuntimeType::kDocker:
      return std::make_unique<EngineRuntime>(config, std::move(shim_binary));
  }
  return nullptr;
}

Result<RuntimeHandle> ContainerRuntime::Start(const JobLaunch& launch) {
  ASSIGN_OR_RETURN(std::vector<std::string> command, Command(launch));
  std::error_code ec;
  fs::create_directories(launch.job_dir, ec);
  if (ec)
    return Status::Internal("cannot create " + launch.job_dir + ": " + ec.message());
  std::string cwd = launch.job_dir;
  if (PassJobEnv() && !launch.spec.workdir.empty()) {
    if (!fs::is_directory(launch.spec.workdir, ec))
      return Status::InvalidArgument("workdir \"" + launch.spec.workdir + "\" does not exist",
                                     "workdir");
    cwd = launch.spec.workdir;
  }
  // Everything the children need is built before fork: after it only async-signal-safe calls.
  std::vector<std::string> argv = {shim_binary_, "--shim", launch.job_dir,
                                   std::to_string(launch.max_log_bytes), "--"};
  argv.insert(argv.end(), command.begin(), command.end());
  std::vector<std::string> envs;
  if (PassJobEnv()) {
    for (const auto& [k, v] : launch.env)
      envs.push_back(k + "=" + v);
  } else {
    envs.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  }
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
    if (fs::exists(launch.job_dir + "/exit", ec))
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
  for (const auto& [k, v] : spec.env)
    out[k] = v;
  for (const auto& [k, v] : env)
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

std::string BuildOciConfig(const JobLaunch& launch, const std::string& rootfs,
                           const std::vector<std::string>& devices) {
  namespace json = boost::json;
  json::array env;
  for (const auto& [k, v] : launch.env)
    env.emplace_back(k + "=" + v);
  json::array args;
  for (const auto& a : launch.spec.command)
    args.emplace_back(a);
  json::object process{
      {"terminal", false},
      {"user", {{"uid", 0}, {"gid", 0}}},
      {"args", std::move(args)},
      {"env", std::move(env)},
      {"cwd", launch.spec.workdir.empty() ? "/gsched" : launch.spec.workdir},
      {"noNewPrivileges", true},
      {"capabilities",
       {{"bounding", {"CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"}},
        {"effective", {"CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"}},
        {"permitted", {"CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"}}}},
      {"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}}},
  };
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
      {{"destination", "/sys"},
       {"type", "sysfs"},
       {"source", "sysfs"},
       {"options", {"nosuid", "noexec", "nodev", "ro"}}},
      {{"destination", "/tmp"},
       {"type", "tmpfs"},
       {"source", "tmpfs"},
       {"options", {"nosuid", "nodev", "mode=1777"}}},
      {{"destination", "/gsched"},
       {"type", "bind"},
       {"source", launch.job_dir},
       {"options", {"rbind", "rw"}}},
  };
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
  json::object resources{{"devices", std::move(device_rules)}};
  if (launch.spec.memory_mib_per_node > 0)
    resources["memory"] = {{"limit", launch.spec.memory_mib_per_node * 1024 * 1024}};
  if (launch.spec.cpus_per_node > 0)
    resources["cpu"] = {{"quota", int64_t{launch.spec.cpus_per_node} * 100000}, {"period", 100000}};
  json::object linux_section{
      {"namespaces",
       {{{"type", "pid"}}, {{"type", "ipc"}}, {{"type", "uts"}}, {{"type", "mount"}}}},
      {"devices", std::move(device_list)},
      {"resources", std::move(resources)},
      {"maskedPaths", {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"}},
      {"readonlyPaths", {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}},
  };
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
                                            const JobLaunch& launch) {
  bool podman = type == config::RuntimeType::kPodman;
  std::vector<std::string> argv = {binary,
                                   "run",
                                   "--name",
                                   launch.container_id,
                                   "--init",
                                   "-v",
                                   launch.job_dir + ":/gsched",
                                   "--workdir",
                                   launch.spec.workdir.empty() ? "/gsched" : launch.spec.workdir};
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
  if (launch.spec.memory_mib_per_node > 0)
    argv.insert(argv.end(), {"--memory", std::to_string(launch.spec.memory_mib_per_node) + "m"});
  if (launch.spec.cpus_per_node > 0)
    argv.insert(argv.end(), {"--cpus", std::to_string(launch.spec.cpus_per_node)});
  for (const auto& [k, v] : launch.env)
    argv.insert(argv.end(), {"-e", k + "=" + v});
  // Every option precedes the image (podman's `--rootfs DIR` ends the options).
  if (podman && !launch.spec.image.empty() && launch.spec.image.front() == '/') {
    argv.insert(argv.end(), {"--rootfs", launch.spec.image});
  } else {
    argv.push_back(launch.spec.image);
  }
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

int RunShim(const std::vector<std::string>& args) {
  // JOB_DIR MAX_BYTES -- CMD...
  if (args.size() < 4 || args[2] != "--")
    return 2;
  const std::string& dir = args[0];
  int64_t max_bytes = std::stoll(args[1]);
  std::vector<std::string> command(args.begin() + 3, args.end());
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);

  int files[2] = {open((dir + "/stdout").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644),
                  open((dir + "/stderr").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)};
  int pipes[2][2];
  if (files[0] < 0 || files[1] < 0 || pipe2(pipes[0], O_CLOEXEC) != 0 ||
      pipe2(pipes[1], O_CLOEXEC) != 0) {
    WriteFileAtomic(dir + "/exit", "exit 127\n");
    return 1;
  }
  std::vector<char*> c_argv = CStrings(command);
  pid_t child = fork();
  if (child < 0) {
    WriteFileAtomic(dir + "/exit", "exit 127\n");
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
    execvp(c_argv[0], c_argv.data());
    dprintf(2, "gsched shim: cannot execute %s: %s\n", c_argv[0], strerror(errno));
    _exit(127);
  }
  setpgid(child, child);
  close(pipes[0][1]);
  close(pipes[1][1]);
  auto child_ticks = ProcessStartTicks(child).value_or(0);
  auto self_ticks = ProcessStartTicks(getpid()).value_or(0);
  WriteFileAtomic(dir + "/pid", std::to_string(child) + " " + std::to_string(child_ticks) + " " +
                                    std::to_string(getpid()) + " " + std::to_string(self_ticks) +
                                    "\n");

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
  WriteFileAtomic(dir + "/exit", exit + "\n");
  return 0;
}

}  // namespace gsched::worker
