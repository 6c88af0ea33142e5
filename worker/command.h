// Running a short external command (nvidia-smi, `runc state`, `runc kill`) and collecting its
// output, without a shell. For commands that finish quickly; job processes are started by the
// runtimes, not here.
//
// Threading: stateless; safe from any thread (uses fork/exec, no global state).
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "scheduler/common/status.h"

namespace gsched::worker {

struct CommandOutput {
  int exit_code = 0;  // 128 + signal when a signal ended it.
  std::string out;
  std::string err;
};

// How long a command may take before it (and its process group) is killed.
inline constexpr std::chrono::seconds kCommandTimeout{30};

// How a command runs: how long it may take, how much output it may write, and a flag that,
// once set by another thread, kills it (a worker that stops does not wait for a long pull).
struct CommandOptions {
  std::chrono::milliseconds timeout = kCommandTimeout;
  size_t max_bytes = 1 << 20;
  const std::atomic<bool>* cancel = nullptr;
};

// Runs `argv` and waits for it, at most `kCommandTimeout`. Fails only when it cannot be started,
// does not finish in time, or its output exceeds `max_bytes`; the exit code is in the result.
Result<CommandOutput> RunCommandOutput(const std::vector<std::string>& argv,
                                       size_t max_bytes = 1 << 20);
// The same with `options`; a cancelled command is `Unavailable`.
Result<CommandOutput> RunCommandOutput(const std::vector<std::string>& argv,
                                       const CommandOptions& options);

// The same, but a non-zero exit is an error carrying the command's stderr.
Result<std::string> RunCommand(const std::vector<std::string>& argv, size_t max_bytes = 1 << 20);

}  // namespace gsched::worker
