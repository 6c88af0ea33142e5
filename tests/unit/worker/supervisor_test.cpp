// The process runtime end to end: real `sh -c` jobs under the shim, supervised by `JobSupervisor`.
#include "worker/supervisor.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "worker_test_util.h"

namespace gsched::worker {
namespace {

using testing::TempDir;
using testing::UpdateLog;

class SupervisorTest : public ::testing::Test {
 protected:
  SupervisorTest() {
    config_.work_dir = dir_.path();
    config_.runtime.type = config::RuntimeType::kProcess;
    config_.logs.max_bytes_per_stream = 4096;
    // These tests are about supervision, not identities (identity_test.cpp, the e2e attacks).
    config_.identity.run_as_root = true;
  }
  std::unique_ptr<JobSupervisor> Make() {
    return std::make_unique<JobSupervisor>(
        config_, MakeRuntime(config_.runtime, testing::ShimBinary()), clock_,
        [this](const api::JobUpdate& u) { log_.Add(u); });
  }
  static api::Launch ShLaunch(uint64_t job, uint32_t attempt, std::string script) {
    api::Launch l;
    l.job = job;
    l.attempt = attempt;
    l.spec.command = {"/bin/sh", "-c", std::move(script)};
    return l;
  }
  bool WaitTerminal(JobSupervisor& s, uint64_t job, uint32_t attempt) {
    return WaitFor([&] { return log_.Terminal(job, attempt).has_value(); },
                   std::chrono::seconds(10), [&] { s.Tick(); });
  }
  std::string Stdout(JobSupervisor& s, uint64_t job, uint32_t attempt) {
    return ReadJobFile(s.JobDir(job, attempt) + "/stdout");
  }

  TempDir dir_;
  config::WorkerConfig config_;
  ManualClock clock_;
  UpdateLog log_;
};

TEST_F(SupervisorTest, EnvIsBuiltFromScratchAndExitCodeIsReported) {
  setenv("GSCHED_TEST_LEAK", "leaked", 1);
  auto s = Make();
  api::Launch l = ShLaunch(7, 2,
                           "echo JOB=$GSCHED_JOB_ID ATT=$GSCHED_ATTEMPT IDX=$GSCHED_ARRAY_INDEX "
                           "CUDA=$CUDA_VISIBLE_DEVICES NV=$NVIDIA_VISIBLE_DEVICES FOO=$FOO "
                           "BAR=$BAR LEAK=$GSCHED_TEST_LEAK; echo CK=$GSCHED_CHECKPOINT_FILE; "
                           "echo oops >&2; exit 3");
  l.spec.env = {{"FOO", "foo"}, {"BAR", "spec"}};
  l.env = {{"BAR", "scheduler"}};
  l.gpus = {1, 3};
  l.array_index = 5;
  s->Launch(l);
  ASSERT_TRUE(WaitTerminal(*s, 7, 2));
  auto updates = log_.For(7, 2);
  ASSERT_EQ(updates.size(), 3u);
  EXPECT_EQ(updates[0].state, api::JobState::kStarting);
  EXPECT_EQ(updates[1].state, api::JobState::kRunning);
  EXPECT_EQ(updates[2].state, api::JobState::kFailed);
  EXPECT_EQ(updates[2].exit_code, 3);
  EXPECT_EQ(updates[2].signal, std::nullopt);
  std::string out = Stdout(*s, 7, 2);
  EXPECT_NE(out.find("JOB=7 ATT=2 IDX=5 CUDA=1,3 NV=1,3 FOO=foo BAR=scheduler LEAK=\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("CK=" + s->JobDir(7, 2) + "/job/checkpoint"), std::string::npos) << out;
  EXPECT_EQ(ReadJobFile(s->JobDir(7, 2) + "/stderr"), "oops\n");
  EXPECT_TRUE(s->Running().empty());
}

TEST_F(SupervisorTest, ExitZeroCompletes) {
  auto s = Make();
  s->Launch(ShLaunch(1, 0, "true"));
  ASSERT_TRUE(WaitTerminal(*s, 1, 0));
  auto t = log_.Terminal(1, 0);
  EXPECT_EQ(t->state, api::JobState::kCompleted);
  EXPECT_EQ(t->exit_code, 0);
}

TEST_F(SupervisorTest, SignalledJobReportsItsSignal) {
  auto s = Make();
  s->Launch(ShLaunch(2, 0, "sleep 30"));
  ASSERT_EQ(s->Running().size(), 1u);
  s->Signal({2, 0, "SIGTERM"});
  ASSERT_TRUE(WaitTerminal(*s, 2, 0));
  auto t = log_.Terminal(2, 0);
  EXPECT_EQ(t->state, api::JobState::kFailed);
  EXPECT_EQ(t->signal, "SIGTERM");
  EXPECT_EQ(t->exit_code, std::nullopt);
}

TEST_F(SupervisorTest, TimeLimitSendsCheckpointSignalThenKillsAfterGrace) {
  auto s = Make();
  // The job ignores SIGTERM and notes that it got here; only SIGKILL ends it.
  api::Launch l = ShLaunch(3, 1,
                           "trap 'echo got-usr1' USR1; trap '' TERM; echo up; "
                           "while true; do sleep 0.05; done");
  l.spec.time_limit_s = 60;
  l.spec.grace_period_s = 30;
  l.spec.checkpoint_signal = "SIGUSR1";
  s->Launch(l);
  ASSERT_TRUE(WaitFor([&] { return Stdout(*s, 3, 1).find("up") != std::string::npos; },
                      std::chrono::seconds(10)));
  // 59 s: nothing yet.
  clock_.Advance(Seconds(59));
  s->Tick();
  EXPECT_FALSE(log_.Terminal(3, 1));
  // 60 s: the checkpoint signal (SIGUSR1), the job survives it.
  clock_.Advance(Seconds(1));
  s->Tick();
  ASSERT_TRUE(WaitFor([&] { return Stdout(*s, 3, 1).find("got-usr1") != std::string::npos; },
                      std::chrono::seconds(10)));
  s->Tick();
  EXPECT_FALSE(log_.Terminal(3, 1));
  // 60 + 30 s: SIGKILL.
  clock_.Advance(Seconds(30));
  ASSERT_TRUE(WaitTerminal(*s, 3, 1));
  auto t = log_.Terminal(3, 1);
  EXPECT_EQ(t->state, api::JobState::kTimeout);
  EXPECT_EQ(t->signal, "SIGKILL");
  EXPECT_NE(t->message.find("time limit"), std::string::npos);
}

TEST_F(SupervisorTest, StdoutFloodIsCappedAndTheJobIsNotBlocked) {
  auto s = Make();
  // 2 MB to stdout, past a 4096-byte cap; the job must still finish.
  s->Launch(ShLaunch(4, 0, "head -c 2000000 /dev/zero | tr '\\0' x; echo done >&2"));
  ASSERT_TRUE(WaitTerminal(*s, 4, 0));
  EXPECT_EQ(log_.Terminal(4, 0)->state, api::JobState::kCompleted);
  std::string out = Stdout(*s, 4, 0);
  // 4096 bytes kept + "\n[output truncated]\n" (20 bytes).
  EXPECT_EQ(out.size(), 4096u + 20u);
  EXPECT_TRUE(out.ends_with("\n[output truncated]\n"));
  EXPECT_EQ(ReadJobFile(s->JobDir(4, 0) + "/stderr"), "done\n");
}

TEST_F(SupervisorTest, CheckpointTouchIsReported) {
  auto s = Make();
  s->Launch(ShLaunch(5, 0,
                     "touch \"$GSCHED_CHECKPOINT_FILE\"; while [ ! -e go ]; do sleep 0.02; "
                     "done"));
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const auto& u : log_.For(5, 0))
          if (u.checkpoint_time)
            return true;
        return false;
      },
      std::chrono::seconds(10), [&] { s->Tick(); }));
  std::ofstream(s->JobDir(5, 0) + "/job/go") << "";
  ASSERT_TRUE(WaitTerminal(*s, 5, 0));
  EXPECT_EQ(log_.Terminal(5, 0)->state, api::JobState::kCompleted);
}

TEST_F(SupervisorTest, KillWithGraceEndsAsPreemptedOrCancelled) {
  auto s = Make();
  // Exits cleanly on SIGTERM (checkpoint and leave).
  s->Launch(ShLaunch(6, 0, "trap 'exit 0' TERM; echo up; while true; do sleep 0.02; done"));
  s->Launch(ShLaunch(8, 0, "trap '' TERM; echo up; while true; do sleep 0.02; done"));
  ASSERT_TRUE(WaitFor([&] { return Stdout(*s, 6, 0) == "up\n" && Stdout(*s, 8, 0) == "up\n"; },
                      std::chrono::seconds(10)));
  s->Kill({6, 0, 30, "preempted by job 99"});
  ASSERT_TRUE(WaitTerminal(*s, 6, 0));
  EXPECT_EQ(log_.Terminal(6, 0)->state, api::JobState::kPreempted);
  EXPECT_EQ(log_.Terminal(6, 0)->exit_code, 0);

  s->Kill({8, 0, 5, "cancelled by alice"});
  s->Tick();
  EXPECT_FALSE(log_.Terminal(8, 0));  // Ignores TERM; SIGKILL after 5 s.
  clock_.Advance(Seconds(5));
  ASSERT_TRUE(WaitTerminal(*s, 8, 0));
  EXPECT_EQ(log_.Terminal(8, 0)->state, api::JobState::kCancelled);
  EXPECT_EQ(log_.Terminal(8, 0)->signal, "SIGKILL");
}

TEST_F(SupervisorTest, IdempotentLaunchStaleAttemptsAndUnknownKills) {
  auto s = Make();
  s->Launch(ShLaunch(9, 2, "while [ ! -e go ]; do sleep 0.02; done"));
  s->Launch(ShLaunch(9, 2, "exit 1"));  // Same attempt: nothing happens.
  s->Launch(ShLaunch(9, 1, "exit 1"));  // Older attempt: ignored.
  s->Kill({9, 7, 0, "unknown attempt"});
  s->Signal({42, 0, "SIGTERM"});
  ASSERT_EQ(s->Running().size(), 1u);
  EXPECT_EQ(log_.All().size(), 2u);  // starting, running of attempt 2.
  std::ofstream(s->JobDir(9, 2) + "/job/go") << "";
  ASSERT_TRUE(WaitTerminal(*s, 9, 2));
  EXPECT_EQ(log_.Terminal(9, 2)->state, api::JobState::kCompleted);
  EXPECT_TRUE(log_.For(9, 1).empty());
  s->Launch(ShLaunch(9, 2, "exit 1"));  // Also after it ended.
  s->Tick();
  EXPECT_EQ(log_.For(9, 2).size(), 3u);
}

TEST_F(SupervisorTest, BadLaunchFailsWithAClearMessage) {
  auto s = Make();
  api::Launch l;
  l.job = 10;
  s->Launch(l);  // No command.
  auto t = log_.Terminal(10, 0);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->state, api::JobState::kFailed);
  EXPECT_NE(t->message.find("no command"), std::string::npos) << t->message;

  s->Launch(ShLaunch(11, 0, "true"));
  api::Launch missing;
  missing.job = 12;
  missing.spec.command = {"/nonexistent/binary"};
  s->Launch(missing);
  ASSERT_TRUE(WaitTerminal(*s, 12, 0));
  EXPECT_EQ(log_.Terminal(12, 0)->exit_code, 127);
  EXPECT_NE(ReadJobFile(s->JobDir(12, 0) + "/stderr").find("cannot execute"), std::string::npos);
}

TEST_F(SupervisorTest, ReadoptsAfterTheSupervisorIsRecreated) {
  {
    auto s = Make();
    s->Launch(ShLaunch(20, 0, "while [ ! -e go ]; do sleep 0.02; done; exit 4"));
    s->Launch(ShLaunch(21, 0, "exit 5"));
    // 21 ends while no supervisor runs; give it time to write its exit file.
    ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(s->JobDir(21, 0) + "/exit"); },
                        std::chrono::seconds(10)));
  }
  auto s = Make();
  s->AdoptAll();
  auto running = s->Running();
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running[0].job, 20u);
  s->Tick();
  // 21 ended while no one watched: reported now.
  ASSERT_TRUE(log_.Terminal(21, 0));
  EXPECT_EQ(log_.Terminal(21, 0)->exit_code, 5);
  s->MarkReported(21, 0);
  std::ofstream(s->JobDir(20, 0) + "/job/go") << "";
  ASSERT_TRUE(WaitTerminal(*s, 20, 0));
  EXPECT_EQ(log_.Terminal(20, 0)->exit_code, 4);
  s->MarkReported(20, 0);
  // A third supervisor: everything reported, nothing to say.
  size_t count = log_.All().size();
  auto s3 = Make();
  s3->AdoptAll();
  s3->Tick();
  EXPECT_EQ(log_.All().size(), count);
  EXPECT_TRUE(s3->Running().empty());
}

TEST_F(SupervisorTest, ReadLogServesRangesAndEndsWithEof) {
  auto s = Make();
  s->Launch(ShLaunch(11, 1, "printf 'line one\\nline two\\n'; printf 'err\\n' >&2"));
  ASSERT_TRUE(WaitTerminal(*s, 11, 1));
  // "line one\n" is 9 bytes: the first read stops there, the second takes the rest.
  auto first = s->ReadLog({1, 11, 1, api::LogStream::kStdout, 0, 9});
  EXPECT_EQ(first.data, "line one\n");
  EXPECT_EQ(first.next_offset, 9);
  EXPECT_EQ(first.size, 18);
  EXPECT_FALSE(first.eof);
  auto rest = s->ReadLog({2, 11, 1, api::LogStream::kStdout, 9, 1024});
  EXPECT_EQ(rest.data, "line two\n");
  EXPECT_EQ(rest.next_offset, 18);
  EXPECT_TRUE(rest.eof);
  EXPECT_EQ(rest.request, 2u);
  auto err = s->ReadLog({3, 11, 1, api::LogStream::kStderr, 0, 1024});
  EXPECT_EQ(err.data, "err\n");
  auto unknown = s->ReadLog({4, 12, 1, api::LogStream::kStdout, 0, 1024});
  EXPECT_NE(unknown.error, "");
}

TEST(ReadLogChunkTest, KeepsUtf8ValidAcrossChunkBoundaries) {
  TempDir dir;
  std::string path = dir.path() + "/stdout";
  // "a" + U+2713 (3 bytes: e2 9c 93) + an invalid byte ff + "z": 6 bytes.
  std::ofstream(path, std::ios::binary) << "a\xe2\x9c\x93\xffz";
  auto read = [&](int64_t offset, int64_t limit, bool ended) {
    return ReadLogChunk(path, {0, 1, 1, api::LogStream::kStdout, offset, limit}, ended);
  };
  // Two bytes cut the check mark after its first byte: the chunk stops before it.
  auto cut = read(0, 2, false);
  EXPECT_EQ(cut.data, "a");
  EXPECT_EQ(cut.next_offset, 1);
  // From there, the whole mark; the invalid byte becomes U+FFFD (ef bf bd).
  auto whole = read(1, 10, true);
  EXPECT_EQ(whole.data, "\xe2\x9c\x93\xef\xbf\xbdz");
  EXPECT_EQ(whole.next_offset, 6);
  EXPECT_TRUE(whole.eof);
  // A running job whose file ends mid-sequence: wait for the rest rather than replace it.
  std::ofstream(path, std::ios::binary | std::ios::app) << "\xe2\x9c";
  auto waiting = read(6, 10, false);
  EXPECT_EQ(waiting.data, "");
  EXPECT_EQ(waiting.next_offset, 6);
  EXPECT_FALSE(waiting.eof);
  // The job ended: the truncated sequence is replaced and the read reaches the end.
  auto final_read = read(6, 10, true);
  EXPECT_EQ(final_read.data, "\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(final_read.next_offset, 8);
  EXPECT_TRUE(final_read.eof);
  // No file yet: empty while running, an error once ended.
  EXPECT_EQ(ReadLogChunk(dir.path() + "/none", {}, false).error, "");
  EXPECT_NE(ReadLogChunk(dir.path() + "/none", {}, true).error, "");
}

}  // namespace
}  // namespace gsched::worker

namespace gsched::worker {
namespace {

// As root, a `process` job drops to its user's identity before exec: its ids, groups, working
// directory and environment are the job's, and the worker's files around it are not its own.
class SupervisorIdentityTest : public SupervisorTest {
 protected:
  void SetUp() override {
    if (geteuid() != 0)
      GTEST_SKIP() << "switching users needs root";
    config_.identity.run_as_root = false;
    config_.identity.mode = config::IdentityMode::kMap;
    config_.identity.map_file = dir_.path() + "/identities.map";
    std::ofstream(config_.identity.map_file) << "alice: 60001:60002,60100\n";
    // The job passes through the work dir to its own directory.
    std::filesystem::permissions(dir_.path(), std::filesystem::perms(0711));
  }
};

TEST_F(SupervisorIdentityTest, AProcessJobRunsAsItsUserWithoutLoaderVariables) {
  auto s = Make();
  api::Launch l = ShLaunch(31, 1,
                           "echo ids $(id -u) $(id -g) $(id -G); echo pwd $(pwd); "
                           "echo preload=$LD_PRELOAD; cat ../stdout 2>/dev/null || echo no-peek");
  l.user = "alice";
  l.env = {{"LD_PRELOAD", "/tmp/evil.so"}};
  s->Launch(l);
  ASSERT_TRUE(WaitTerminal(*s, 31, 1));
  EXPECT_EQ(log_.Terminal(31, 1)->state, api::JobState::kCompleted)
      << ReadJobFile(s->JobDir(31, 1) + "/stderr");
  EXPECT_EQ(Stdout(*s, 31, 1),
            "ids 60001 60002 60002 60100\npwd " + s->JobDir(31, 1) + "/job\npreload=\nno-peek\n");
}

TEST_F(SupervisorIdentityTest, AUserWithoutAnIdentityFailsOnceWithAClearMessage) {
  auto s = Make();
  api::Launch l = ShLaunch(32, 1, "echo should not run");
  l.user = "mallory";
  s->Launch(l);
  auto t = log_.Terminal(32, 1);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->state, api::JobState::kFailed);
  EXPECT_NE(t->message.find("mallory"), std::string::npos) << t->message;
  EXPECT_NE(t->message.find("identity.map_file"), std::string::npos) << t->message;
  EXPECT_EQ(Stdout(*s, 32, 1), "");
  // A launch with no user at all is no one's job.
  api::Launch anon = ShLaunch(33, 1, "echo should not run");
  s->Launch(anon);
  ASSERT_TRUE(log_.Terminal(33, 1).has_value());
  EXPECT_EQ(log_.Terminal(33, 1)->state, api::JobState::kFailed);
}

}  // namespace
}  // namespace gsched::worker

namespace gsched::worker {
namespace {

// `srun` is on every job's PATH: one task per --ntasks-per-node with its ranks and GPUs.
TEST_F(SupervisorTest, SrunStartsOneTaskPerRankWithItsGpus) {
  auto s = Make();
  api::Launch l =
      ShLaunch(41, 1,
               "srun --ntasks-per-node=2 --gpus-per-task=1 sh -c "
               "'echo rank=$RANK local=$LOCAL_RANK of=$SLURM_NTASKS "
               "gpu=$CUDA_VISIBLE_DEVICES' | sort; "
               "srun -n 3 --bogus true; echo bogus=$?; srun sh -c 'exit 4'; echo failed=$?");
  l.gpus = {2, 5};
  s->Launch(l);
  ASSERT_TRUE(WaitTerminal(*s, 41, 1));
  EXPECT_EQ(Stdout(*s, 41, 1),
            "rank=0 local=0 of=2 gpu=2\nrank=1 local=1 of=2 gpu=5\nbogus=2\nfailed=4\n")
      << ReadJobFile(s->JobDir(41, 1) + "/stderr");
  EXPECT_NE(ReadJobFile(s->JobDir(41, 1) + "/stderr").find("--bogus is not supported"),
            std::string::npos);
}

}  // namespace
}  // namespace gsched::worker
