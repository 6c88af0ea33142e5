// Container runtimes behind one interface, and the shim every job runs under.
//
// Every job attempt runs under a small supervisor process, the shim (`gsched-worker --shim`,
// `RunShim` below), started detached from the worker (double fork + `setsid`), so that jobs survive
// a worker restart or `kill -9`. The shim
//   1. forks the job's command in its own process group (for `process`: the job, after dropping
//      to the job's identity; for `runc`/`crun`: `runc run` in the foreground; for
//      `podman`/`docker`: `podman run ...`), stdout/stderr on pipes;
//   2. writes `pid` in the attempt's directory (job pid and start time, its own pid and start
//      time; start times from /proc/<pid>/stat guard against pid reuse);
//   3. copies the pipes to the `stdout` and `stderr` files through descriptors it opened itself,
//      each cut off at `max_bytes` with one "[output truncated]" line; it keeps draining past the
//      cap, so a job that floods its output neither blocks nor fills memory or disk;
//   4. reaps the job and writes `exit` ("exit N" or "signal N", from `waitpid`) atomically.
// The worker learns how a job ended from the `exit` file alone, whether it was running when the
// job ended or restarted long after.
//
// Two directories per attempt (DESIGN.md section 11): `JobLaunch::job_dir`, the worker's own
// (mode 0711, owned by the worker: `pid`, `exit`, `stdout`, `stderr`, `env`, `bundle/`,
// `state.json`), which the job can neither see in a container nor write on the host; and
// `JobLaunch::gsched_dir` inside it (`job/`, owned by the job's identity, mode 0700), mounted at
// `/gsched`: the checkpoint file and whatever the job writes there. Nothing the job can write
// is ever opened by the worker except through `job_files.h`.
//
// Runtimes differ only in the command the shim runs, how a signal reaches the job and what is left
// to clean up; `Start`, `Poll` and adoption are shared.
//
// Threading: a runtime object is stateless apart from its config and safe from any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/worker_config.h"
#include "scheduler/api/types.h"
#include "scheduler/api/worker_messages.h"
#include "scheduler/common/status.h"
#include "worker/identity.h"

namespace gsched::worker {

// What a runtime needs to start one job attempt.
struct JobLaunch {
  uint64_t job = 0;
  uint32_t attempt = 0;
  api::JobSpec spec;
  std::vector<int32_t> gpus;
  // The job's complete environment (spec env, scheduler env, GSCHED_*, *_VISIBLE_DEVICES).
  std::map<std::string, std::string> env;
  // The attempt's directory on the host, the worker's own (control files, output, bundle).
  std::string job_dir;
  // The job's own directory (`job_dir/job`): mounted at /gsched in containers, the working
  // directory of `process` jobs.
  std::string gsched_dir;
  // The worker's directory of job tools (`srun`): mounted read-only at `kSrunMountPoint` in
  // containers; empty: none.
  std::string bin_dir;
  // For runc/crun when `spec.image` is an OCI reference: the cached tree of its digest
  // (`ImageCache`), made by the worker. Empty otherwise.
  std::string rootfs;
  // Whom the job runs as.
  JobIdentity identity;
  // The job's memory limit: its request, else its share of the node; 0: none (process runtime).
  int64_t memory_limit_mib = 0;
  // The container's name for runc/crun/podman/docker (`ContainerId`); also its hostname.
  std::string container_id;
  int64_t max_log_bytes = int64_t{100} << 20;
};

// The running attempt as the runtime knows it; persisted in the state file.
struct RuntimeHandle {
  std::string container_id;  // `JobLaunch::container_id`.
  std::string job_dir;
  pid_t pid = 0;  // The job's process (for containers: the runtime's foreground process).
  uint64_t pid_start_ticks = 0;
  pid_t shim_pid = 0;
  uint64_t shim_start_ticks = 0;
};

// What a site allows jobs on this node (worker config `images`, `network`, `limits`).
struct RuntimePolicy {
  config::ImagesConfig images;
  config::NetworkMode network = config::NetworkMode::kHost;
  int64_t pids_limit = 4096;
};
RuntimePolicy PolicyFromConfig(const config::WorkerConfig& config);

// How a job ended: exactly one of the two is set.
struct ExitStatus {
  std::optional<int32_t> exit_code;
  std::optional<int32_t> signal;

  friend bool operator==(const ExitStatus&, const ExitStatus&) = default;
};

enum class Liveness { kRunning, kExited, kLost };

struct PollResult {
  Liveness liveness = Liveness::kRunning;
  ExitStatus exit;  // For `kExited`.
};

class ContainerRuntime {
 public:
  virtual ~ContainerRuntime() = default;
  virtual config::RuntimeType type() const = 0;

  // Starts the attempt under the shim and returns once the shim reported the job's pid.
  Result<RuntimeHandle> Start(const JobLaunch& launch);
  // Delivers `signal` to the job (its process group, or the container's processes).
  virtual Status Signal(const RuntimeHandle& handle, int signal) = 0;
  Status Kill(const RuntimeHandle& handle) { return Signal(handle, 9); }
  // Reads the exit file, else checks that the job's process is still the one started.
  PollResult Poll(const RuntimeHandle& handle) const;
  // Re-reads the handle of an attempt started by an earlier worker from its job directory.
  Result<RuntimeHandle> Adopt(const std::string& job_dir, const std::string& container_id) const;
  // Removes what the runtime keeps after the job ended (containers, bundles). Best effort.
  virtual void Cleanup(const RuntimeHandle& handle) = 0;
  // After the job exited and before `Cleanup`: whether the kernel's OOM killer struck in the
  // job's cgroup.
  virtual bool OutOfMemory(const RuntimeHandle&) const { return false; }

  // The command the shim runs for `launch` (after `Prepare`); exposed for tests.
  virtual Result<std::vector<std::string>> Command(const JobLaunch& launch) = 0;

 protected:
  ContainerRuntime(config::RuntimeConfig config, std::string shim_binary, RuntimePolicy policy)
      : config_(std::move(config)),
        shim_binary_(std::move(shim_binary)),
        policy_(std::move(policy)) {}
  // The runtime's executable.
  std::string Binary() const;
  // Whether the job is a host process (the `process` runtime): the shim then drops it to its
  // identity, enters its working directory and gives it `launch.env`. Containers get all three
  // through their own configuration.
  virtual bool JobRunsOnHost() const { return false; }

  config::RuntimeConfig config_;
  std::string shim_binary_;
  RuntimePolicy policy_;
};

// Creates the runtime of `config.type`. `shim_binary` is the `gsched-worker` executable.
std::unique_ptr<ContainerRuntime> MakeRuntime(const config::RuntimeConfig& config,
                                              std::string shim_binary, RuntimePolicy policy = {});

// The real path of a local root file system `image` when it lies under one of `roots` (after
// resolving symlinks and `..`), else an error naming `images.roots`.
Result<std::string> ResolveImageRoot(const std::string& image,
                                     const std::vector<std::string>& roots);
// Whether an OCI reference's registry is in `registries`; an error saying which are allowed.
Status CheckImageRegistry(const std::string& image, const std::vector<std::string>& registries);

// The name of a job attempt's container: "gsched-<tag>-<job>-<attempt>". Container names, runc's
// state and the cgroup runc derives from the name are global on a host, while job ids are unique
// only within one scheduler: the tag tells apart the workers of one host (`WorkerTag`).
std::string ContainerId(std::string_view tag, uint64_t job, uint32_t attempt);
// A worker's tag: 8 hex digits of a hash of its absolute `work_dir`, which no other worker on the
// host shares and which stays the same across restarts (so a restarted worker finds its
// containers).
std::string WorkerTag(const std::string& work_dir);

// The job's environment built from scratch: `spec.env`, then the scheduler's `env`, then
// GSCHED_JOB_ID, GSCHED_ATTEMPT, GSCHED_ARRAY_INDEX (when given), GSCHED_CHECKPOINT_FILE,
// GSCHED_JOB_DIR, CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES ("none" without GPUs), PATH
// and HOME defaults. Loader variables (`api::IsLoaderVariable`) are dropped whoever set them.
// `container_dir` is the job directory as the job sees it.
std::map<std::string, std::string> BuildJobEnv(const api::JobSpec& spec,
                                               const std::map<std::string, std::string>& env,
                                               uint64_t job, uint32_t attempt,
                                               std::optional<uint32_t> array_index,
                                               const std::vector<int32_t>& gpus,
                                               const std::string& container_dir);

// What every node of an attempt learns about its gang (DESIGN.md section 6), added to `env`:
// GSCHED_NODELIST (the gang's nodes in rank order, comma-separated), GSCHED_NUM_NODES,
// GSCHED_NODE_RANK, GSCHED_GPUS_PER_NODE, WORLD_SIZE (nodes x GPUs per node, at least the node
// count), and the Slurm names that ported scripts read: SLURM_JOB_ID, SLURM_JOB_NAME,
// SLURM_JOB_NODELIST (`CompressHostlist`), SLURM_NNODES, SLURM_JOB_NUM_NODES, SLURM_NODEID,
// SLURM_GPUS_ON_NODE, and for array tasks SLURM_ARRAY_JOB_ID and SLURM_ARRAY_TASK_ID. A launch
// without `nodes` (an older scheduler) is a gang of one: `this_node`.
void AddGangEnv(std::map<std::string, std::string>& env, const api::Launch& launch,
                const std::string& this_node);

// Slurm's compressed host list: names that differ only in a numeric suffix of the same width
// share a prefix and bracketed ranges, in order of first appearance:
// {"n01", "n02", "n03", "gpu7"} -> "n[01-03],gpu7".
std::string CompressHostlist(const std::vector<std::string>& names);

// The OCI runtime-spec `config.json` for runc/crun: `rootfs` read-only, the job's directory
// bind-mounted at /gsched, env, args, cwd; the job's identity (`process.user`, or a user
// namespace mapping container root to the identity's ids), no capabilities, noNewPrivileges,
// the seccomp profile of `seccomp.h`, masked and read-only /proc paths, the pids limit, the memory
// limit (`launch.memory_limit_mib`), CPU limits when the spec sets them, a network namespace when
// `policy.network` is none, and only the GPU device nodes in `devices` (paths such as
// /dev/nvidia0 that exist on the host). `cgroups_path` (empty: the runtime's default) names the
// container's cgroup.
std::string BuildOciConfig(const JobLaunch& launch, const std::string& rootfs,
                           const std::vector<std::string>& devices,
                           const RuntimePolicy& policy = {}, const std::string& cgroups_path = {});

// The argv of `podman run` / `docker run` for `launch`: named container, the job's identity
// (`--user`, `--group-add`; in a user namespace `--uidmap`/`--gidmap` for podman), no
// capabilities, no-new-privileges, read-only root with a /tmp tmpfs, pids and memory limits,
// the network, GPUs, env, the job's directory at /gsched, then `--` and the image: an image can
// never be read as an option. A local image (an absolute path, already checked against
// `images.roots`) is `--rootfs` for podman.
std::vector<std::string> BuildEngineRunArgv(config::RuntimeType type, const std::string& binary,
                                            const JobLaunch& launch,
                                            const RuntimePolicy& policy = {});

// Signal names: "SIGTERM" <-> 15. Unknown names are an error.
Result<int> SignalNumber(std::string_view name);
std::string SignalName(int signal);

// The start time of `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat), or nullopt
// when there is no such process (or it is a zombie).
std::optional<uint64_t> ProcessStartTicks(pid_t pid);

// The shim's `main`: `args` are what follows `--shim`:
//   JOB_DIR MAX_BYTES [--uid N --gid N [--groups G,G...]] [--cwd DIR] [--env-file F] -- CMD...
// With `--uid`, the job drops to that identity (setgroups, setgid, setuid) before `--cwd` and
// exec; `--env-file` (NUL-separated NAME=value, read by the shim) is the job's environment,
// which the shim itself never runs with.
int RunShim(const std::vector<std::string>& args);

}  // namespace gsched::worker
