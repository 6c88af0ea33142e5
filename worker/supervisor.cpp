#include "worker/supervisor.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "scheduler/api/image.h"
#include "worker/job_files.h"
#include "worker/srun.h"

namespace gsched::worker {
namespace fs = std::filesystem;
namespace json = boost::json;

struct JobSupervisor::Attempt {
  uint64_t job = 0;
  uint32_t attempt = 0;
  std::string dir;
  RuntimeHandle handle;
  api::JobState state = api::JobState::kStarting;
  Timestamp start{};
  std::optional<int64_t> time_limit_s;
  int checkpoint_signal = 15;
  int32_t grace_period_s = 30;
  // A kill in progress (time limit, `Kill`, superseded): the state it ends in and when SIGKILL
  // follows the checkpoint signal.
  std::optional<api::JobState> kill_state;
  std::string kill_message;
  std::optional<Timestamp> kill_deadline;
  bool sigkill_sent = false;
  std::optional<int64_t> checkpoint_mtime_ns;
  // Terminal outcome.
  std::optional<int32_t> exit_code;
  std::optional<std::string> signal;
  std::string message;
  bool reported = false;
  // An OCI image for runc/crun: the reference while the attempt waits for it (with the launch to
  // start once it is there), and the digest it runs.
  std::string image_reference;
  std::optional<JobLaunch> waiting_launch;
  std::string image_digest;
  bool image_acquired = false;  // Holds a use of `image_digest` in the cache.
  std::string pull_message;
  std::optional<Timestamp> pull_message_time;
};

namespace {

api::JobUpdate MakeUpdate(const JobSupervisor::Attempt& a);

}  // namespace

namespace {
api::JobUpdate MakeUpdate(const JobSupervisor::Attempt& a) {
  api::JobUpdate u;
  u.job = a.job;
  u.attempt = a.attempt;
  u.state = a.state;
  u.exit_code = a.exit_code;
  u.signal = a.signal;
  u.message = a.state == api::JobState::kStarting ? a.pull_message : a.message;
  u.image_digest = a.image_digest;
  return u;
}
}  // namespace

std::string ReadJobFile(const std::string& path, size_t max_bytes) {
  auto text = ReadRegularFile(path, max_bytes);
  return text.ok() ? *text : std::string();
}

namespace {

// The length of the UTF-8 sequence that starts at `s[i]` when it is complete and valid (1-4),
// 0 when it is invalid, or -1 when it is a valid prefix cut off by the end of `s`.
int Utf8SequenceLength(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80)
    return 1;
  int n;
  unsigned char lo = 0x80, hi = 0xBF;  // The allowed range of the second byte.
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0)
      lo = 0xA0;  // No overlong forms.
    if (c == 0xED)
      hi = 0x9F;  // No surrogates.
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0)
      lo = 0x90;
    if (c == 0xF4)
      hi = 0x8F;  // Nothing above U+10FFFF.
  } else {
    return 0;
  }
  for (int k = 1; k < n; ++k) {
    if (i + k >= s.size())
      return -1;
    unsigned char b = byte(i + k);
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
      return 0;
  }
  return n;
}

}  // namespace

api::LogChunk ReadLogChunk(const std::string& path, const api::ReadLog& request, bool ended) {
  api::LogChunk chunk;
  chunk.request = request.request;
  chunk.job = request.job;
  chunk.attempt = request.attempt;
  chunk.stream = request.stream;
  chunk.offset = chunk.next_offset = request.offset;
  // Output files are the shim's, in the worker's directory; opened as if a job had planted
  // them all the same.
  auto opened = OpenRegularFile(path);
  if (!opened.ok()) {
    if (opened.status().code() == StatusCode::kNotFound && !ended)
      return chunk;  // The job has not written anything yet.
    chunk.error = opened.status().message();
    return chunk;
  }
  int fd = *opened;
  struct stat st {};
  std::string raw(
      static_cast<size_t>(std::clamp<int64_t>(request.limit, 0, api::kMaxLogChunkBytes)), '\0');
  ssize_t n = ::fstat(fd, &st) == 0 ? ::pread(fd, raw.data(), raw.size(), request.offset) : -1;
  int read_errno = errno;
  ::close(fd);
  if (n < 0) {
    chunk.error = "cannot read " + path + ": " + std::strerror(read_errno);
    return chunk;
  }
  raw.resize(static_cast<size_t>(n));
  chunk.size = static_cast<int64_t>(st.st_size);
  bool at_end = request.offset + n >= chunk.size;
  size_t used = 0;
  chunk.data.reserve(raw.size());
  while (used < raw.size()) {
    int len = Utf8SequenceLength(raw, used);
    // Cut by the range or by the writer: the next read starts with the whole sequence - unless
    // nothing more will come, or a range too short for any sequence would never move on.
    if (len == -1 && !(at_end && ended) && (used > 0 || at_end))
      break;
    if (len <= 0) {
      chunk.data += "\xEF\xBF\xBD";  // U+FFFD
      used += 1;
    } else {
      chunk.data.append(raw, used, static_cast<size_t>(len));
      used += static_cast<size_t>(len);
    }
  }
  chunk.next_offset = request.offset + static_cast<int64_t>(used);
  chunk.eof = ended && chunk.next_offset >= chunk.size;
  return chunk;
}

api::LogChunk JobSupervisor::ReadLog(const api::ReadLog& request) const {
  bool ended = true;
  {
    std::lock_guard lock(mu_);
    auto it = attempts_.find({request.job, request.attempt});
    if (it != attempts_.end())
      ended = api::IsTerminal(it->second->state);
  }
  std::string dir = JobDir(request.job, request.attempt);
  if (ended && !fs::exists(dir)) {
    api::LogChunk chunk;
    chunk.request = request.request;
    chunk.job = request.job;
    chunk.attempt = request.attempt;
    chunk.stream = request.stream;
    chunk.offset = chunk.next_offset = request.offset;
    chunk.error = "this node has no output of job " + std::to_string(request.job) + " attempt " +
                  std::to_string(request.attempt);
    return chunk;
  }
  return ReadLogChunk(dir + "/" + std::string(api::ToString(request.stream)), request, ended);
}

JobSupervisor::JobSupervisor(const config::WorkerConfig& config,
                             std::unique_ptr<ContainerRuntime> runtime, const Clock& clock,
                             UpdateSink sink)
    : config_(config),
      runtime_(std::move(runtime)),
      clock_(clock),
      sink_(std::move(sink)),
      container_tag_(WorkerTag(config_.work_dir)),
      identities_(config_.identity, config_.work_dir + "/identities") {
  // `srun` for jobs, as this worker's version of it.
  Status st = InstallSrun(config_.work_dir + "/bin");
  srun_installed_ = st.ok();
  if (!st.ok())
    spdlog::warn("srun is not available to jobs: {}", st.ToString());
  if (runtime_->type() != config::RuntimeType::kProcess)
    images_ = std::make_unique<ImageCache>(ImageCacheConfigFrom(config_));
}

void JobSupervisor::SetNodeCapacity(int64_t memory_mib, int32_t gpus) {
  std::lock_guard lock(mu_);
  node_memory_mib_ = memory_mib;
  node_gpus_ = gpus;
}

int64_t JobSupervisor::MemoryLimitMib(const api::Launch& launch) const {
  if (launch.spec.memory_mib_per_node > 0)
    return launch.spec.memory_mib_per_node;
  if (node_memory_mib_ <= 0)
    return 0;
  // Its share of the node: by GPUs, at least one GPU's worth.
  int64_t gpus = std::max<int64_t>(static_cast<int64_t>(launch.gpus.size()), 1);
  int64_t total = std::max<int64_t>(node_gpus_, 1);
  return std::max<int64_t>(node_memory_mib_ * std::min(gpus, total) / total, 64);
}

JobSupervisor::~JobSupervisor() = default;

std::string JobSupervisor::JobDir(uint64_t job, uint32_t attempt) const {
  return config_.work_dir + "/jobs/" + std::to_string(job) + "/" + std::to_string(attempt);
}

void JobSupervisor::WriteState(const Attempt& a) const {
  json::object o{
      {"job", a.job},
      {"attempt", a.attempt},
      {"runtime", config::ToString(runtime_->type())},
      {"container_id", a.handle.container_id},
      {"pid", a.handle.pid},
      {"pid_start_ticks", a.handle.pid_start_ticks},
      {"shim_pid", a.handle.shim_pid},
      {"shim_start_ticks", a.handle.shim_start_ticks},
      {"start_time_ms", ToUnixMillis(a.start)},
      {"checkpoint_signal", a.checkpoint_signal},
      {"grace_period_s", a.grace_period_s},
      {"status", api::ToString(a.state)},
      {"message", a.message},
      {"reported", a.reported},
  };
  if (a.time_limit_s)
    o["time_limit_s"] = *a.time_limit_s;
  if (a.kill_state) {
    o["kill_state"] = api::ToString(*a.kill_state);
    o["kill_message"] = a.kill_message;
  }
  if (a.kill_deadline)
    o["kill_deadline_ms"] = ToUnixMillis(*a.kill_deadline);
  if (a.exit_code)
    o["exit_code"] = *a.exit_code;
  if (a.checkpoint_mtime_ns)
    o["checkpoint_mtime_ns"] = *a.checkpoint_mtime_ns;
  if (a.signal)
    o["signal"] = *a.signal;
  if (!a.image_digest.empty())
    o["image_digest"] = a.image_digest;
  if (Status st = WriteFileAtomic(a.dir + "/state.json", json::serialize(o) + "\n", 0600); !st.ok())
    spdlog::error("cannot write the state of job {} attempt {}: {}", a.job, a.attempt,
                  st.ToString());
}

void JobSupervisor::Finish(Attempt& a, api::JobState state, std::optional<int32_t> exit_code,
                           std::optional<std::string> signal, std::string message,
                           std::vector<api::JobUpdate>& out) {
  a.state = state;
  a.exit_code = exit_code;
  a.signal = std::move(signal);
  a.message = std::move(message);
  a.kill_deadline.reset();
  if (!a.handle.container_id.empty())
    runtime_->Cleanup(a.handle);
  if (images_ && a.waiting_launch)
    images_->Abandon(a.image_reference);
  a.waiting_launch.reset();
  if (images_ && a.image_acquired)
    images_->Release(a.image_digest);
  a.image_acquired = false;
  WriteState(a);
  out.push_back(MakeUpdate(a));
}

void JobSupervisor::Emit(std::vector<api::JobUpdate>& updates) {
  for (const auto& u : updates)
    sink_(u);
}

void JobSupervisor::Launch(const api::Launch& launch) {
  std::lock_guard emit_lock(emit_mu_);
  std::vector<api::JobUpdate> updates;
  {
    std::lock_guard lock(mu_);
    auto key = std::make_pair(launch.job, launch.attempt);
    if (attempts_.contains(key))
      return;  // Idempotent: this attempt is known.
    for (auto& [k, other] : attempts_) {
      if (k.first != launch.job)
        continue;
      if (k.second > launch.attempt) {
        spdlog::info("ignoring launch of job {} attempt {}: attempt {} is newer", launch.job,
                     launch.attempt, k.second);
        return;
      }
      if (!api::IsTerminal(other->state) && !other->kill_state)
        StartKill(*other, 0, api::JobState::kCancelled,
                  "superseded by attempt " + std::to_string(launch.attempt));
    }
    auto a = std::make_unique<Attempt>();
    a->job = launch.job;
    a->attempt = launch.attempt;
    a->dir = JobDir(launch.job, launch.attempt);
    a->start = clock_.Now();
    a->time_limit_s = launch.spec.time_limit_s;
    a->grace_period_s = launch.spec.grace_period_s;
    auto sig = SignalNumber(launch.spec.checkpoint_signal);
    a->checkpoint_signal = sig.ok() ? *sig : 15;
    Attempt& ref = *a;
    attempts_[key] = std::move(a);
    // Every level from `jobs` down is the worker's and passable (0711), whatever the umask: a job
    // running as its user, or a runtime in a user namespace, walks through them to `job/`.
    std::error_code ec;
    fs::create_directories(config_.work_dir, ec);
    Status made = MakeDirectory(config_.work_dir + "/jobs", 0711);
    if (made.ok())
      made = MakeDirectory(fs::path(ref.dir).parent_path().string(), 0711);
    if (made.ok())
      made = MakeDirectory(ref.dir, 0711);
    auto identity = identities_.Resolve(launch.user);
    if (!made.ok()) {
      Finish(ref, api::JobState::kFailed, std::nullopt, std::nullopt,
             "cannot create the job directory: " + made.ToString(), updates);
    } else if (!identity.ok()) {
      // Not a retry loop: the attempt fails, with what the user or an admin must do.
      WriteState(ref);
      updates.push_back(MakeUpdate(ref));  // starting
      Finish(ref, api::JobState::kFailed, std::nullopt, std::nullopt,
             "cannot start: " + identity.status().message(), updates);
    } else {
      WriteState(ref);
      updates.push_back(MakeUpdate(ref));  // starting
      JobLaunch jl = BuildJobLaunch(launch, ref.dir, *identity);
      ref.dir = jl.job_dir;
      if (!images_ || api::IsLocalImage(launch.spec.image)) {
        StartAttempt(ref, jl, updates);
      } else {
        // Kept for a restarted worker, which resumes the pull (`ResumePull`): the worker's own
        // file, in its own directory.
        Status kept = WriteFileAtomic(ref.dir + "/launch.json",
                                      api::SerializeMessage(api::SchedulerMessage(launch)), 0600);
        if (!kept.ok())
          spdlog::warn("job {} attempt {}: {}", launch.job, launch.attempt, kept.ToString());
        WaitForImage(ref, std::move(jl), updates);
      }
    }
    PublishRunning();
  }
  Emit(updates);
}

JobLaunch JobSupervisor::BuildJobLaunch(const api::Launch& launch, const std::string& dir,
                                        const JobIdentity& identity) const {
  JobLaunch jl;
  jl.job = launch.job;
  jl.attempt = launch.attempt;
  jl.spec = launch.spec;
  jl.gpus = launch.gpus;
  jl.job_dir = fs::absolute(dir).string();
  jl.gsched_dir = jl.job_dir + "/job";
  jl.identity = identity;
  jl.memory_limit_mib = MemoryLimitMib(launch);
  jl.container_id = ContainerId(container_tag_, launch.job, launch.attempt);
  jl.max_log_bytes = config_.logs.max_bytes_per_stream;
  bool container = runtime_->type() != config::RuntimeType::kProcess;
  jl.env = BuildJobEnv(launch.spec, launch.env, launch.job, launch.attempt, launch.array_index,
                       launch.gpus, container ? "/gsched" : jl.gsched_dir);
  AddGangEnv(jl.env, launch, config_.name);
  if (srun_installed_) {
    jl.bin_dir = fs::absolute(config_.work_dir + "/bin").string();
    jl.env["PATH"] = (container ? std::string(kSrunMountPoint) : jl.bin_dir) + ":" + jl.env["PATH"];
  }
  return jl;
}

void JobSupervisor::WaitForImage(Attempt& a, JobLaunch jl, std::vector<api::JobUpdate>& updates) {
  if (Status requested = images_->Request(jl.spec.image); !requested.ok()) {
    Finish(a, api::JobState::kFailed, std::nullopt, std::nullopt,
           "cannot start: " + requested.ToString(), updates);
    return;
  }
  // Started by `CheckImage` once the image is there.
  a.image_reference = jl.spec.image;
  a.waiting_launch = std::move(jl);
  CheckImage(a, clock_.Now(), updates);
}

bool JobSupervisor::ResumePull(Attempt& a, std::vector<api::JobUpdate>& updates) {
  auto text = ReadRegularFile(a.dir + "/launch.json", 16 << 20);
  if (!text.ok())
    return false;
  auto message = api::DecodeSchedulerMessage(*text);
  const api::Launch* launch = message.ok() ? std::get_if<api::Launch>(&*message) : nullptr;
  if (!launch || launch->job != a.job || launch->attempt != a.attempt ||
      api::IsLocalImage(launch->spec.image))
    return false;
  spdlog::info("job {} attempt {}: resuming the pull of {}", a.job, a.attempt, launch->spec.image);
  auto identity = identities_.Resolve(launch->user);
  if (!identity.ok()) {
    Finish(a, api::JobState::kFailed, std::nullopt, std::nullopt,
           "cannot start: " + identity.status().message(), updates);
    return true;
  }
  WaitForImage(a, BuildJobLaunch(*launch, a.dir, *identity), updates);
  return true;
}

void JobSupervisor::StartAttempt(Attempt& a, const JobLaunch& jl,
                                 std::vector<api::JobUpdate>& updates) {
  auto handle = runtime_->Start(jl);
  if (!handle.ok()) {
    Finish(a, api::JobState::kFailed, std::nullopt, std::nullopt,
           "cannot start: " + handle.status().ToString(), updates);
    return;
  }
  a.handle = *handle;
  a.state = api::JobState::kRunning;
  WriteState(a);
  updates.push_back(MakeUpdate(a));
}

void JobSupervisor::CheckImage(Attempt& a, Timestamp now, std::vector<api::JobUpdate>& updates) {
  if (a.kill_state) {
    // Killed (cancelled, preempted, timed out) before its image came: nothing ran.
    Finish(a, *a.kill_state, std::nullopt, std::nullopt,
           a.kill_message.empty() ? "killed while its image was pulled" : a.kill_message, updates);
    return;
  }
  ImageState image = images_->Acquire(a.image_reference);
  if (!image.digest.empty() && image.digest != a.image_digest) {
    a.image_digest = image.digest;
    WriteState(a);
  }
  switch (image.phase) {
    case ImageState::Phase::kFailed:
      Finish(a, api::JobState::kFailed, std::nullopt, std::nullopt,
             "cannot start: pulling image " + a.image_reference + ": " + image.error, updates);
      return;
    case ImageState::Phase::kReady: {
      JobLaunch jl = std::move(*a.waiting_launch);
      a.waiting_launch.reset();
      a.pull_message.clear();
      if (image.rootfs.empty()) {
        // podman/docker pull for themselves: they get the reference pinned to the digest that
        // is recorded, so what runs is what the job says ran.
        jl.spec.image = image.pinned;
      } else {
        a.image_acquired = true;
        jl.rootfs = image.rootfs;
      }
      StartAttempt(a, jl, updates);
      return;
    }
    case ImageState::Phase::kPulling:
      break;
  }
  // Progress, at most once a second: every update becomes an event for the job's watchers.
  std::string message = PullProgressMessage(image);
  if (message != a.pull_message &&
      (!a.pull_message_time || now - *a.pull_message_time >= Seconds(1))) {
    a.pull_message = std::move(message);
    a.pull_message_time = now;
    updates.push_back(MakeUpdate(a));
  }
}

void JobSupervisor::StartKill(Attempt& a, int32_t grace_s, api::JobState final_state,
                              std::string message) {
  Timestamp deadline = clock_.Now() + Seconds(std::max(grace_s, 0));
  if (!a.kill_state) {
    a.kill_state = final_state;
    a.kill_message = std::move(message);
  }
  if (a.kill_deadline && *a.kill_deadline <= deadline)
    return;  // An earlier SIGKILL is already due.
  a.kill_deadline = deadline;
  if (a.handle.pid == 0)
    return;
  Status st =
      grace_s > 0 ? runtime_->Signal(a.handle, a.checkpoint_signal) : runtime_->Kill(a.handle);
  if (grace_s <= 0)
    a.sigkill_sent = true;
  if (!st.ok())
    spdlog::info("signal to job {} attempt {}: {}", a.job, a.attempt, st.ToString());
  WriteState(a);
}

void JobSupervisor::Signal(const api::Signal& signal) {
  std::lock_guard lock(mu_);
  auto it = attempts_.find({signal.job, signal.attempt});
  if (it == attempts_.end() || api::IsTerminal(it->second->state) || it->second->handle.pid == 0)
    return;
  auto sig = SignalNumber(signal.signal);
  if (!sig.ok()) {
    spdlog::warn("signal for job {}: {}", signal.job, sig.status().ToString());
    return;
  }
  runtime_->Signal(it->second->handle, *sig).IgnoreError();
}

void JobSupervisor::Kill(const api::Kill& kill) {
  std::lock_guard lock(mu_);
  auto it = attempts_.find({kill.job, kill.attempt});
  if (it == attempts_.end() || api::IsTerminal(it->second->state))
    return;
  bool preempt = kill.reason.find("preempt") != std::string::npos;
  StartKill(*it->second, kill.grace_s,
            preempt ? api::JobState::kPreempted : api::JobState::kCancelled,
            kill.reason.empty() ? "killed by the scheduler" : kill.reason);
}

void JobSupervisor::KillAll(int32_t grace_s, const std::string& reason) {
  std::lock_guard lock(mu_);
  for (auto& [k, a] : attempts_)
    if (!api::IsTerminal(a->state))
      StartKill(*a, grace_s, api::JobState::kCancelled, reason);
}

void JobSupervisor::Check(Attempt& a, Timestamp now, std::vector<api::JobUpdate>& updates) {
  if (!api::IsTerminal(a.state) && a.waiting_launch) {
    CheckImage(a, now, updates);
    return;
  }
  if (api::IsTerminal(a.state) || a.handle.pid == 0)
    return;
  PollResult poll = runtime_->Poll(a.handle);
  if (poll.liveness == Liveness::kExited) {
    std::optional<std::string> sig;
    if (poll.exit.signal)
      sig = SignalName(*poll.exit.signal);
    api::JobState state;
    std::string message;
    if (a.kill_state) {
      state = *a.kill_state;
      message = a.kill_message;
    } else if (poll.exit.exit_code == 0) {
      state = api::JobState::kCompleted;
    } else if (runtime_->OutOfMemory(a.handle)) {
      state = api::JobState::kFailed;
      message = "out of memory: the kernel killed the job at its memory limit";
    } else {
      state = api::JobState::kFailed;
      message = sig ? "killed by " + *sig
                    : "exit code " + std::to_string(poll.exit.exit_code.value_or(-1));
    }
    Finish(a, state, poll.exit.exit_code, sig, std::move(message), updates);
    return;
  }
  if (poll.liveness == Liveness::kLost) {
    Finish(a, a.kill_state.value_or(api::JobState::kFailed), std::nullopt, std::nullopt,
           "the job's processes vanished without an exit status", updates);
    return;
  }
  // Running: checkpoint, time limit, grace deadline.
  // The job's own file: its time only, never followed.
  auto mtime = RegularFileMtimeNs(a.dir + "/job/checkpoint");
  if (mtime && mtime != a.checkpoint_mtime_ns) {
    a.checkpoint_mtime_ns = mtime;
    api::JobUpdate u = MakeUpdate(a);
    u.checkpoint_time = FromUnixMillis(*mtime / 1'000'000);
    updates.push_back(u);
  }
  if (!a.kill_state && a.time_limit_s && now >= a.start + Seconds(*a.time_limit_s)) {
    StartKill(a, a.grace_period_s, api::JobState::kTimeout,
              "time limit of " + std::to_string(*a.time_limit_s) + " s reached");
  }
  if (a.kill_deadline && !a.sigkill_sent && now >= *a.kill_deadline) {
    a.sigkill_sent = true;
    runtime_->Kill(a.handle).IgnoreError();
    WriteState(a);
  }
}

void JobSupervisor::Tick() {
  std::lock_guard emit_lock(emit_mu_);
  std::vector<api::JobUpdate> updates;
  {
    std::lock_guard lock(mu_);
    Timestamp now = clock_.Now();
    for (auto& [k, ap] : attempts_) {
      Attempt& a = *ap;
      Check(a, now, updates);
    }
    PublishRunning();
  }
  Emit(updates);
}

void JobSupervisor::MarkReported(uint64_t job, uint32_t attempt) {
  std::lock_guard lock(mu_);
  auto it = attempts_.find({job, attempt});
  if (it == attempts_.end() || !api::IsTerminal(it->second->state) || it->second->reported)
    return;
  it->second->reported = true;
  WriteState(*it->second);
}

std::vector<api::RunningAttempt> JobSupervisor::Running() const {
  std::lock_guard lock(running_mu_);
  return running_;
}

void JobSupervisor::PublishRunning() {
  std::vector<api::RunningAttempt> out;
  for (const auto& [k, a] : attempts_)
    if (!api::IsTerminal(a->state))
      out.push_back({a->job, a->attempt, a->state});
  std::lock_guard lock(running_mu_);
  running_ = std::move(out);
}

void JobSupervisor::AdoptAll() {
  std::lock_guard emit_lock(emit_mu_);
  std::vector<api::JobUpdate> updates;
  {
    std::lock_guard lock(mu_);
    std::error_code ec;
    fs::path jobs = fs::path(config_.work_dir) / "jobs";
    if (!fs::is_directory(jobs, ec))
      return;
    for (const auto& job_entry : fs::directory_iterator(jobs, ec)) {
      std::error_code ec2;
      for (const auto& attempt_entry : fs::directory_iterator(job_entry.path(), ec2)) {
        std::string path = (attempt_entry.path() / "state.json").string();
        if (!fs::exists(path, ec2))
          continue;
        auto text = ReadRegularFile(path);
        if (!text.ok()) {
          spdlog::warn("skipping {}: {}", path, text.status().ToString());
          continue;
        }
        json::error_code jec;
        json::value v = json::parse(*text, jec);
        if (jec || !v.is_object()) {
          spdlog::warn("skipping unreadable {}: {}", path, jec.message());
          continue;
        }
        const json::object& o = v.as_object();
        auto num = [&](const char* key) -> int64_t {
          const json::value* f = o.if_contains(key);
          if (!f)
            return 0;
          if (f->is_int64())
            return f->as_int64();
          if (f->is_uint64())
            return static_cast<int64_t>(f->as_uint64());
          return 0;
        };
        auto str = [&](const char* key) -> std::string {
          const json::value* f = o.if_contains(key);
          return f && f->is_string() ? std::string(f->as_string()) : std::string();
        };
        auto a = std::make_unique<Attempt>();
        a->job = static_cast<uint64_t>(num("job"));
        a->attempt = static_cast<uint32_t>(num("attempt"));
        a->dir = fs::absolute(attempt_entry.path()).string();
        a->handle.container_id = str("container_id");
        a->handle.job_dir = a->dir;
        a->handle.pid = static_cast<pid_t>(num("pid"));
        a->handle.pid_start_ticks = static_cast<uint64_t>(num("pid_start_ticks"));
        a->handle.shim_pid = static_cast<pid_t>(num("shim_pid"));
        a->handle.shim_start_ticks = static_cast<uint64_t>(num("shim_start_ticks"));
        a->start = FromUnixMillis(num("start_time_ms"));
        if (o.contains("time_limit_s"))
          a->time_limit_s = num("time_limit_s");
        a->checkpoint_signal = static_cast<int>(num("checkpoint_signal"));
        a->grace_period_s = static_cast<int32_t>(num("grace_period_s"));
        a->state = api::ParseEnum<api::JobState>(str("status")).value_or(api::JobState::kFailed);
        a->message = str("message");
        a->reported =
            o.contains("reported") && o.at("reported").is_bool() && o.at("reported").as_bool();
        if (auto ks = api::ParseEnum<api::JobState>(str("kill_state"))) {
          a->kill_state = ks;
          a->kill_message = str("kill_message");
        }
        if (o.contains("kill_deadline_ms"))
          a->kill_deadline = FromUnixMillis(num("kill_deadline_ms"));
        if (o.contains("checkpoint_mtime_ns"))
          a->checkpoint_mtime_ns = num("checkpoint_mtime_ns");
        if (o.contains("exit_code"))
          a->exit_code = static_cast<int32_t>(num("exit_code"));
        if (o.contains("signal"))
          a->signal = str("signal");
        a->image_digest = str("image_digest");
        if (!a->image_digest.empty() && !api::IsImageDigest(a->image_digest))
          a->image_digest.clear();
        auto key = std::make_pair(a->job, a->attempt);
        if (attempts_.contains(key))
          continue;
        if (str("runtime") != config::ToString(runtime_->type()))
          spdlog::warn("{}: started by runtime {}, now {}", path, str("runtime"),
                       config::ToString(runtime_->type()));
        Attempt& ref = *a;
        attempts_[key] = std::move(a);
        if (api::IsTerminal(ref.state)) {
          if (!ref.reported)
            updates.push_back(MakeUpdate(ref));
          continue;
        }
        if (ref.handle.pid == 0) {
          // The worker died between writing `starting` and the shim reporting a pid - or while
          // the attempt waited for its image, whose pull goes on.
          if (auto h = runtime_->Adopt(ref.dir, ref.handle.container_id); h.ok()) {
            ref.handle = *h;
            ref.state = api::JobState::kRunning;
          } else if (images_ && ResumePull(ref, updates)) {
            continue;
          } else {
            Finish(ref, api::JobState::kFailed, std::nullopt, std::nullopt,
                   "the worker stopped while the job was starting", updates);
            continue;
          }
        }
        // A running job from a pulled image keeps that image in the cache.
        if (images_ && !ref.image_digest.empty())
          ref.image_acquired = images_->Adopt(ref.image_digest);
        spdlog::info("adopted job {} attempt {} (pid {})", ref.job, ref.attempt, ref.handle.pid);
        Check(ref, clock_.Now(), updates);
      }
    }
    PublishRunning();
  }
  Emit(updates);
}

}  // namespace gsched::worker
