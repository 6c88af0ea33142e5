#include "worker/command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace gsched::worker {

Result<CommandOutput> RunCommandOutput(const std::vector<std::string>& argv, size_t max_bytes) {
  return RunCommandOutput(argv, CommandOptions{kCommandTimeout, max_bytes, nullptr});
}

Result<CommandOutput> RunCommandOutput(const std::vector<std::string>& argv,
                                       const CommandOptions& options) {
  const size_t max_bytes = options.max_bytes;
  if (argv.empty())
    return Status::InvalidArgument("empty command");
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0)
    return Status::Internal(std::string("pipe: ") + strerror(errno));
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return Status::Internal(std::string("pipe: ") + strerror(errno));
  }
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]})
      close(fd);
    return Status::Internal(std::string("fork: ") + strerror(errno));
  }
  if (pid == 0) {
    setpgid(0, 0);  // Its own group: a command that outlives its deadline goes with its children.
    // A worker killed while a command runs (a pull can take minutes) takes the command with it.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
      dup2(devnull, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    execvp(args[0], args.data());
    dprintf(2, "exec %s: %s", args[0], strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid);  // Also here: whichever runs first.
  close(out_pipe[1]);
  close(err_pipe[1]);
  CommandOutput result;
  bool too_big = false;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[8192];
  // A hung runtime must not hang the supervisor that waits for it: past the deadline the
  // command's group is killed.
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  bool timed_out = false;
  bool cancelled = false;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    cancelled = options.cancel != nullptr && options.cancel->load();
    if (left.count() <= 0 || cancelled) {
      timed_out = !cancelled;
      kill(-pid, SIGKILL);
      for (auto& f : fds)
        if (f.fd >= 0)
          close(f.fd);
      break;
    }
    // With a cancel flag, look at it at least every 100 ms.
    int wait_ms = static_cast<int>(left.count());
    if (options.cancel != nullptr)
      wait_ms = std::min(wait_ms, 100);
    if (poll(fds, 2, wait_ms) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0)
        continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      std::string& sink = i == 0 ? result.out : result.err;
      if (sink.size() + static_cast<size_t>(n) > max_bytes)
        too_big = true;
      else
        sink.append(buf, static_cast<size_t>(n));
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (cancelled)
    return Status::Unavailable(argv[0] + ": cancelled (the worker is stopping)");
  if (timed_out)
    return Status::Unavailable(argv[0] + ": no answer within " +
                               std::to_string(options.timeout.count() / 1000) + " s; killed");
  if (too_big)
    return Status::ResourceExhausted(argv[0] + ": output larger than " + std::to_string(max_bytes) +
                                     " bytes");
  return result;
}

Result<std::string> RunCommand(const std::vector<std::string>& argv, size_t max_bytes) {
  ASSIGN_OR_RETURN(CommandOutput output, RunCommandOutput(argv, max_bytes));
  if (output.exit_code != 0) {
    std::string cmd;
    for (const auto& a : argv)
      cmd += (cmd.empty() ? "" : " ") + a;
    return Status::Unavailable(cmd + ": exit code " + std::to_string(output.exit_code) + ": " +
                               output.err);
  }
  return std::move(output.out);
}

}  // namespace gsched::worker
