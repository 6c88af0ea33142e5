// `JobSupervisor`: runs the job attempts of one node through a `ContainerRuntime` and turns what
// happens to them into `JobUpdate`s.
//
// Per attempt a directory `work_dir/jobs/<JOB>/<ATTEMPT>/`, the worker's own, holds `stdout`,
// `stderr`, the shim's `pid` and `exit` files (runtime.h) and `state.json`, written atomically
// (tmp + rename) on every change, so that a restarted worker re-adopts the attempt (`AdoptAll`)
// and reports how it ended even when that happened while no worker ran. Its `job/` directory is
// the job's (/gsched: `checkpoint` = $GSCHED_CHECKPOINT_FILE, its own files); the worker only
// reads the checkpoint's mtime there, without following links.
//
// Invariants: one record per (job, attempt); at most one live attempt per job (a launch for an
// older attempt than the one known is ignored; a newer one kills the older first); every
// attempt gets exactly one terminal update per supervisor lifetime; `state.json` says `reported`
// once the terminal update was handed to the sink and acknowledged via `MarkReported`, and such
// attempts are not reported again after a restart.
//
// Time limits: at start + time_limit the job's checkpoint signal, after grace_period_s SIGKILL,
// state `timeout`. `Kill{grace_s, reason}`: checkpoint signal, grace, SIGKILL, state `preempted`
// when the reason says preempt, else `cancelled`.
//
// Images: with runc/crun, an attempt whose image is an OCI reference stays `starting` while the
// node's `ImageCache` pulls it; each tick asks the cache how far it got (sent as the `starting`
// update's message, "pulling image: 412 of 1,930 MiB", at most once a second) and starts the
// attempt once the image is there, or fails it with the pull's error. Every update carries the
// digest the attempt runs (`image_digest`), and `state.json` keeps it so that a restarted worker
// still counts the running job as a user of that image. A restarted worker resumes the pulls its
// predecessor had under way (from the attempt's `launch.json`).
//
// Threading: all public methods are thread-safe (one mutex). `Tick` does the periodic work (exit
// files, time limits, grace deadlines, checkpoint mtimes); the owner calls it from one thread.
// Updates are delivered through the sink outside the lock.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/worker_config.h"
#include "scheduler/api/worker_messages.h"
#include "scheduler/common/clock.h"
#include "worker/identity.h"
#include "worker/image_cache.h"
#include "worker/runtime.h"

namespace gsched::worker {

using UpdateSink = std::function<void(const api::JobUpdate&)>;

class JobSupervisor {
 public:
  JobSupervisor(const config::WorkerConfig& config, std::unique_ptr<ContainerRuntime> runtime,
                const Clock& clock, UpdateSink sink);
  ~JobSupervisor();
  JobSupervisor(const JobSupervisor&) = delete;
  JobSupervisor& operator=(const JobSupervisor&) = delete;

  // The node's memory and GPUs: a job that asks for no memory is limited to its share (by
  // GPUs). Without it (0), such jobs have no memory limit.
  void SetNodeCapacity(int64_t memory_mib, int32_t gpus);

  // Starts the attempt (idempotent) under its user's identity (`IdentityResolver`). Sends
  // `starting` then `running`, or `failed` with a message when it cannot start (no identity for
  // the user, an image outside `images.roots`, no command, ...).
  void Launch(const api::Launch& launch);
  // Delivers a signal; unknown attempts are ignored.
  void Signal(const api::Signal& signal);
  // Checkpoint signal, `grace_s`, SIGKILL; unknown attempts are ignored.
  void Kill(const api::Kill& kill);
  // Kills every live attempt (drain with kill, shutdown of a simulator); grace as given.
  void KillAll(int32_t grace_s, const std::string& reason);

  // Periodic work; call every ~50-200 ms.
  void Tick();

  // Scans `work_dir/jobs/*/*/state.json`: live attempts are adopted, attempts that ended while no
  // worker ran are reported (once), unreadable ones are skipped with a log line.
  void AdoptAll();

  // The attempt's terminal update was sent: remember it across restarts.
  void MarkReported(uint64_t job, uint32_t attempt);

  // The node's image cache (runc/crun), or null.
  ImageCache* images() { return images_.get(); }

  // Attempts not yet ended (starting or running).
  std::vector<api::RunningAttempt> Running() const;
  // The directory of an attempt.
  std::string JobDir(uint64_t job, uint32_t attempt) const;
  // A chunk of an attempt's stdout or stderr (`ReadLogChunk`); `eof` once the attempt ended.
  api::LogChunk ReadLog(const api::ReadLog& request) const;

  struct Attempt;

 private:
  void WriteState(const Attempt& a) const;
  // Polls one live attempt: exit, checkpoint, time limit, grace deadline.
  void Check(Attempt& a, Timestamp now, std::vector<api::JobUpdate>& updates);
  void Finish(Attempt& a, api::JobState state, std::optional<int32_t> exit_code,
              std::optional<std::string> signal, std::string message,
              std::vector<api::JobUpdate>& out);
  void StartKill(Attempt& a, int32_t grace_s, api::JobState final_state, std::string message);
  void Emit(std::vector<api::JobUpdate>& updates);
  // Copies the live attempts for `Running`, which the network thread reads without waiting for
  // a slow `Launch` that holds `mu_`.
  void PublishRunning();
  // The job's memory limit: its request, else its share of the node.
  int64_t MemoryLimitMib(const api::Launch& launch) const;
  // What the runtime needs to start `launch` in the attempt directory `dir`.
  JobLaunch BuildJobLaunch(const api::Launch& launch, const std::string& dir,
                           const JobIdentity& identity) const;
  // Has the image cache fetch the attempt's OCI image; `CheckImage` starts it once it is there.
  void WaitForImage(Attempt& a, JobLaunch jl, std::vector<api::JobUpdate>& updates);
  // After a restart: an attempt that was waiting for its image (its `launch.json` kept) waits
  // again; false when there is nothing to resume.
  bool ResumePull(Attempt& a, std::vector<api::JobUpdate>& updates);
  // Starts an attempt whose launch is complete (its image, when pulled, in `jl.rootfs`).
  void StartAttempt(Attempt& a, const JobLaunch& jl, std::vector<api::JobUpdate>& updates);
  // An attempt waiting for its image: progress, failure, or the start once it is there.
  void CheckImage(Attempt& a, Timestamp now, std::vector<api::JobUpdate>& updates);

  const config::WorkerConfig& config_;
  std::unique_ptr<ContainerRuntime> runtime_;
  const Clock& clock_;
  UpdateSink sink_;
  const std::string container_tag_;  // `WorkerTag` of the work dir: part of container names.
  IdentityResolver identities_;
  // runc/crun only: where OCI references are pulled to.
  std::unique_ptr<ImageCache> images_;
  bool srun_installed_ = false;
  mutable std::mutex mu_;
  int64_t node_memory_mib_ = 0;
  int32_t node_gpus_ = 0;
  std::map<std::pair<uint64_t, uint32_t>, std::unique_ptr<Attempt>> attempts_;
  mutable std::mutex running_mu_;
  std::vector<api::RunningAttempt> running_;
  // Serialises sink calls so updates leave in the order they were made.
  std::mutex emit_mu_;
};

// Reads `request.limit` bytes at `request.offset` of the file at `path` into a `LogChunk`.
// `data` is valid UTF-8: a byte that starts no valid sequence becomes U+FFFD, and a sequence cut
// by the end of the range is left for the next read (`next_offset` stops before it) unless the
// file ends there and `ended` says nothing more will come. `eof` is `ended` and the end reached.
// A missing file is an empty chunk while the attempt runs, an error once it ended.
api::LogChunk ReadLogChunk(const std::string& path, const api::ReadLog& request, bool ended);

// Reads how a job attempt's stdout looks (for tests and `logs`): at most `max_bytes`.
std::string ReadJobFile(const std::string& path, size_t max_bytes = 1 << 20);

}  // namespace gsched::worker
