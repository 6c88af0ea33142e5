// kill -9 during group commit loses nothing that was acknowledged.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <string>

#include "scheduler/state/rocksdb_store.h"
#include "tests/testutil/temp_dir.h"

extern char** environ;

namespace gsched::state {
namespace {

TEST(StoreCrashTest, AcknowledgedCommitsSurviveKill9) {
  TempDir dir;
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  std::string db = dir.path() + "/db";
  const char* argv[] = {GSCHED_CRASH_WRITER, db.c_str(), nullptr};
  pid_t pid = 0;
  ASSERT_EQ(
      posix_spawn(&pid, GSCHED_CRASH_WRITER, &actions, nullptr, const_cast<char**>(argv), environ),
      0);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);

  // Read acknowledgements until 3,000 have arrived (or 60 s pass), then kill -9 mid-stream.
  std::set<uint64_t> acked;
  std::string buffer;
  auto consume = [&](bool until_eof) {
    char chunk[4096];
    while (true) {
      pollfd p{pipe_fds[0], POLLIN, 0};
      if (poll(&p, 1, until_eof ? 10'000 : 1000) <= 0)
        return;
      ssize_t n = read(pipe_fds[0], chunk, sizeof(chunk));
      if (n <= 0)
        return;
      buffer.append(chunk, static_cast<size_t>(n));
      size_t nl;
      while ((nl = buffer.find('\n')) != std::string::npos) {
        std::string line = buffer.substr(0, nl);
        buffer.erase(0, nl + 1);
        if (line.rfind("ack ", 0) == 0)
          acked.insert(std::stoull(line.substr(4)));
      }
      if (!until_eof && acked.size() >= 3000)
        return;
    }
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (acked.size() < 3000 && std::chrono::steady_clock::now() < deadline)
    consume(false);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  consume(true);  // Acks written before the kill are still in the pipe.
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "writer exited by itself";
  ASSERT_GE(acked.size(), 3000u) << "writer too slow or failed";

  auto store = RocksDbStore::Open({.path = db});
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  size_t lost = 0;
  for (uint64_t n : acked) {
    auto job = (*store)->Get(Family::kJobs, U64Key(n));
    auto event = (*store)->Get(Family::kEvents, U64Key(n));
    if (!job.ok() || *job != "job-" + std::to_string(n) || !event.ok())
      ++lost;
  }
  EXPECT_EQ(lost, 0u) << "of " << acked.size() << " acknowledged commits";
  // Atomicity: no job without its event or the other way round, acknowledged or not.
  size_t jobs = 0, events = 0;
  ASSERT_TRUE((*store)->Scan(Family::kJobs, {}, {}, [&](auto, auto) { return ++jobs, true; }).ok());
  ASSERT_TRUE(
      (*store)->Scan(Family::kEvents, {}, {}, [&](auto, auto) { return ++events, true; }).ok());
  EXPECT_EQ(jobs, events);
}

}  // namespace
}  // namespace gsched::state
