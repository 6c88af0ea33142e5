// A job is a stranger's code (DESIGN.md section 11): attacks a tenant's job makes on the node that
// runs it, each run for real - the real scheduler, a real `gsched-worker` as root (as on a GPU
// node) with runc, or the `process` runtime, and jobs that try. Every attack here succeeded
// against a worker without isolation (jobs as root, control files in the job's directory, any
// host directory as an image); each test says what must hold instead.
//
// Needs root, runc and busybox (CI has them); otherwise each test says why it skipped.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/e2e/system_fixture.h"

namespace gsched::testing {
namespace {

namespace fs = std::filesystem;

// Ids of their own (the other runc tests map alice to 60001): tests run in parallel, and some
// count a user's processes on the host. carol and dave appear in one test each.
constexpr uint32_t kAliceUid = 61001;
constexpr uint32_t kCarolUid = 61003;
constexpr uint32_t kDaveUid = 61004;

// Host processes whose real uid is `uid`.
int ProcessesOf(uint32_t uid) {
  int n = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    struct stat st {};
    if (stat(entry.path().c_str(), &st) == 0 && st.st_uid == uid)
      ++n;
  }
  return n;
}

// Lets users other than root pass through the test's directories to the image and their job
// directories (as a site's paths are), whatever the umask made them.
void OpenPathsForJobs(const std::string& dir) {
  fs::permissions(dir, fs::perms(0711));
  std::error_code ec;
  fs::permissions(dir + "/node-1", fs::perms(0711), ec);
  for (auto it = fs::recursive_directory_iterator(dir + "/images", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory() && !it->is_symlink())
      fs::permissions(it->path(), fs::perms(0755), ec);
  }
  fs::permissions(dir + "/images", fs::perms(0755), ec);
}

// What a tenant can do from inside a runc container, with identities from a map file.
class RuncAttackTest : public SystemTest {
 protected:
  std::string Runtime() const override { return "runc"; }
  void SetUp() override {
    if (geteuid() != 0 || !fs::exists("/usr/sbin/runc") || !fs::exists("/bin/busybox"))
      GTEST_SKIP() << "needs root, /usr/sbin/runc and /bin/busybox (CI has them)";
    rootfs_ = s_.dir() + "/images/busybox";
    MakeBusyboxRootfs(rootfs_, {"sh", "echo", "cat", "sleep", "id", "ln", "rm", "mkfifo", "awk",
                                "grep", "touch", "mount", "unshare", "ls", "true", "wc"});
    std::ofstream(s_.dir() + "/identities.map")
        << "alice: 61001:61001\nbob: 61002:61002\ncarol: 61003:61003\ndave: 61004:61004\n";
    secret_ = s_.dir() + "/host-secret";
    std::ofstream(secret_) << "TOPSECRET host file\n";
    bob_ = s_.Token("bob", "user", {"proj-a"});
    SystemTest::SetUp();
  }
  std::string WorkerExtraConfig() const override {
    return "identity: {mode: map, map_file: " + s_.dir() + "/identities.map}\n" +
           "images: {roots: [" + s_.dir() + "/images]}\n" +
           "limits: {pids: 64}\n"
           "memory_mib: 8192\n";
  }
  // A job running `script` with `sh -c` in the busybox image; `extra` adds spec fields.
  std::string Spec(const std::string& script, const std::string& extra = "",
                   const std::string& image = "") {
    boost::json::object spec{{"image", image.empty() ? rootfs_ : image},
                             {"gpu_type", "h100"},
                             {"time_limit_s", 120},
                             {"command", boost::json::array{"sh", "-c", script}}};
    if (!extra.empty()) {
      boost::json::value more = boost::json::parse("{" + extra + "}");
      for (const auto& [k, v] : more.as_object())
        spec[k] = v;
    }
    return boost::json::serialize(spec);
  }
  bool WaitEnded(uint64_t id, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return WaitFor(
        [&] {
          std::string s = State(id);
          return s != "pending" && s != "starting" && s != "running" && s != "?";
        },
        timeout);
  }
  // The last attempt's message: how it ended, in the worker's words.
  std::string Message(uint64_t id) {
    auto j = Job(id);
    if (!j.is_object() || j.at("attempts").as_array().empty())
      return "";
    return std::string(j.at("attempts").as_array().back().at("message").as_string());
  }
  std::string Describe(uint64_t id) {
    return boost::json::serialize(Job(id)) + "\n--- worker\n" + worker_->Log() +
           worker_->JobFiles();
  }
  std::string JobDir(uint64_t id) {
    return s_.dir() + "/node-1/work/jobs/" + std::to_string(id) + "/1";
  }

  std::string rootfs_;
  std::string secret_;
  std::string bob_;
};

TEST_F(RuncAttackTest, JobsRunAsTheirUsersWithoutPrivilegeOrAWayToGainIt) {
  uint64_t id = Submit(
      Spec("id -u; id -g; grep -E '^Cap(Eff|Prm|Bnd)|^NoNewPrivs|^Seccomp:' /proc/self/status; "
           "touch /bin/x 2>/dev/null && echo root-writable; "
           "mount -t tmpfs none /tmp 2>/dev/null && echo mounted; "
           "unshare -U -r true 2>/dev/null && echo unshared; "
           "cat /proc/kcore 2>/dev/null | wc -c"));
  ASSERT_TRUE(WaitEnded(id)) << Describe(id);
  EXPECT_EQ(State(id), "completed") << Describe(id);
  EXPECT_EQ(Logs(id),
            "61001\n61001\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
            "CapBnd:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n0\n")
      << Logs(id, "stderr");
}

TEST_F(RuncAttackTest, ALinkInPlaceOfItsOutputNeverServesAHostFile) {
  // The job swaps what used to be its stdout file for links to a host file, then writes.
  uint64_t id = Submit(Spec("rm -f /gsched/stdout /gsched/stderr; ln -s " + secret_ +
                            " /gsched/stdout; ln -s " + secret_ +
                            " /gsched/stderr; echo printed; echo oops >&2"));
  ASSERT_TRUE(WaitEnded(id)) << Describe(id);
  EXPECT_EQ(Logs(id), "printed\n");
  EXPECT_EQ(Logs(id, "stderr"), "oops\n");
  EXPECT_EQ(ReadFile(secret_), "TOPSECRET host file\n");
}

TEST_F(RuncAttackTest, ImagesComeOnlyFromUnderTheRoots) {
  fs::create_symlink("/usr", s_.dir() + "/images/escape");
  for (const std::string& image :
       {std::string("/usr"), std::string("/"), s_.dir() + "/images/escape", s_.dir() + "/images",
        s_.dir() + "/images/busybox/../../node-1"}) {
    auto r = s_.Client(alice_)->Post("/v1/jobs", Spec("id", "", image));
    ASSERT_TRUE(r.ok());
    if (r->status == 400) {  // `..` parts are refused at submit already.
      EXPECT_EQ(Parse(r->body).at("error").at("field"), "image") << image;
      continue;
    }
    ASSERT_EQ(r->status, 201) << r->body;
    uint64_t id = Parse(r->body).at("id").to_number<uint64_t>();
    ASSERT_TRUE(WaitEnded(id)) << Describe(id);
    EXPECT_EQ(State(id), "failed") << image;
    EXPECT_NE(Message(id).find("images.roots"), std::string::npos) << image << ": " << Message(id);
  }
  // An image that would be an engine's option never gets past the scheduler.
  for (const char* image : {"--privileged", "-v=/:/host", "", "./rootfs"}) {
    auto r = s_.Client(alice_)->Post("/v1/jobs", Spec("id", "", image[0] ? image : " "));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 400) << image << ": " << r->body;
    EXPECT_EQ(Parse(r->body).at("error").at("field"), "image") << image;
  }
}

TEST_F(RuncAttackTest, LoaderVariablesAreRefusedAtSubmit) {
  auto r = s_.Client(alice_)->Post("/v1/jobs",
                                   Spec("true", R"("env": {"LD_PRELOAD": "/gsched/evil.so"})"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_EQ(Parse(r->body).at("error").at("field"), "env.LD_PRELOAD") << r->body;
}

TEST_F(RuncAttackTest, FifosAndLinksPlantedByAJobBlockNothingAndOverwriteNothing) {
  std::string victim = s_.dir() + "/victim";
  std::ofstream(victim) << "precious\n";
  // Every name the worker or its shim ever used in the job's directory becomes a trap: FIFOs
  // that block an open, links that redirect a write.
  uint64_t trap = Submit(
      Spec("cd /gsched; for f in exit pid state.json checkpoint; do rm -f $f; mkfifo $f; done; "
           "for f in exit.tmp pid.tmp state.json.tmp stdout.tmp; do ln -s " +
           victim + " $f; done; echo trapped; sleep 1"));
  ASSERT_TRUE(WaitEnded(trap)) << Describe(trap);
  EXPECT_EQ(State(trap), "completed") << Describe(trap);
  EXPECT_EQ(Logs(trap), "trapped\n");
  EXPECT_EQ(ReadFile(victim), "precious\n");
  // The node still works for the next user.
  uint64_t next = Submit(Spec("echo bob ran"), bob_);
  ASSERT_TRUE(WaitEnded(next)) << Describe(next);
  EXPECT_EQ(State(next), "completed") << Describe(next);
}

TEST_F(RuncAttackTest, AJobCannotForgeItsExitStatusOrItsState) {
  uint64_t id =
      Submit(Spec("echo 'exit 0' > /gsched/exit; "
                  "echo '{\"job\": 1, \"attempt\": 1, \"status\": \"completed\", \"pid\": 1}' > "
                  "/gsched/state.json; sleep 2; exit 3"));
  ASSERT_TRUE(WaitEnded(id)) << Describe(id);
  EXPECT_EQ(State(id), "failed") << Describe(id);
  EXPECT_EQ(Job(id).at("exit_code"), 3) << Describe(id);
}

TEST_F(RuncAttackTest, TwoUsersJobsCannotReadEachOthersFiles) {
  uint64_t a = Submit(
      Spec("echo alice-private > /gsched/notes; echo written; sleep 30", R"("grace_period_s": 1)"));
  ASSERT_TRUE(WaitFor([&] { return Logs(a) == "written\n"; })) << Describe(a);
  // Bob's job looks for alice's files where it can.
  uint64_t b = Submit(Spec("ls /gsched; cat /gsched/notes 2>/dev/null || echo no notes; "
                           "cat " +
                           JobDir(a) + "/job/notes 2>/dev/null || echo no path"),
                      bob_);
  ASSERT_TRUE(WaitEnded(b)) << Describe(b);
  EXPECT_EQ(Logs(b, "stdout", bob_), "no notes\nno path\n");
  // On the host, alice's directory is alice's alone.
  struct stat st {};
  ASSERT_EQ(stat((JobDir(a) + "/job").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kAliceUid);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(stat((JobDir(a) + "/job/notes").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kAliceUid);
  ASSERT_EQ(stat(JobDir(a).c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_mode & 0777, 0711u);
  ASSERT_TRUE(s_.Client(alice_)->Post("/v1/jobs/" + std::to_string(a) + "/cancel", "").ok());
  ASSERT_TRUE(WaitEnded(a)) << Describe(a);
}

TEST_F(RuncAttackTest, AForkBombIsHeldByThePidsLimitAndDiesWithItsJob) {
  // The first shell lights it and becomes `sleep` (no fork of its own left to fail); one CPU, so
  // that the test machine stays usable. carol runs nothing else.
  std::string carol = s_.Token("carol", "user", {"proj-a"});
  uint64_t bomb = Submit(Spec("echo lit; b() { b | b & }; b; exec sleep 60",
                              R"("grace_period_s": 1, "cpus_per_node": 1)"),
                         carol);
  ASSERT_TRUE(WaitFor([&] { return Logs(bomb, "stdout", carol) == "lit\n"; })) << Describe(bomb);
  // While it rages, the node runs another user's job, and the bomb never has more than the
  // pids limit (64) of processes.
  uint64_t next = Submit(Spec("echo still here"), bob_);
  int most = 0;
  ASSERT_TRUE(WaitFor([&] {
    most = std::max(most, ProcessesOf(kCarolUid));
    return State(next) == "completed";
  })) << Describe(next);
  EXPECT_LE(most, 64);
  EXPECT_GT(most, 1);
  ASSERT_TRUE(s_.Client(carol)->Post("/v1/jobs/" + std::to_string(bomb) + "/cancel", "").ok());
  ASSERT_TRUE(WaitEnded(bomb)) << Describe(bomb);
  EXPECT_EQ(State(bomb), "cancelled");
  EXPECT_TRUE(WaitFor([&] { return ProcessesOf(kCarolUid) == 0; }, std::chrono::seconds(10)))
      << ProcessesOf(kCarolUid) << " processes left";
}

TEST_F(RuncAttackTest, AMemoryBombIsKilledAtItsLimitAndReported) {
  // A string that doubles until the job's 64 MiB are gone.
  uint64_t id =
      Submit(Spec("awk 'BEGIN { s = \"x\"; while (1) s = s s }'", R"("memory_mib_per_node": 64)"));
  ASSERT_TRUE(WaitEnded(id, std::chrono::seconds(60))) << Describe(id);
  EXPECT_EQ(State(id), "failed") << Describe(id);
  EXPECT_NE(Message(id).find("out of memory"), std::string::npos) << Describe(id);
  // A job that asks for no memory still has a limit: its share of the node (1 of 8 GPUs of
  // 8192 MiB = 1024 MiB), read from its cgroup on the host while it runs.
  uint64_t share = Submit(Spec("echo up; sleep 30", R"("grace_period_s": 1)"));
  ASSERT_TRUE(WaitFor([&] { return Logs(share) == "up\n"; })) << Describe(share);
  auto state = boost::json::parse(ReadFile(JobDir(share) + "/state.json"));
  std::string container(state.at("container_id").as_string());
  // cgroup v1 (these machines), else v2.
  std::string limit =
      ReadFile("/sys/fs/cgroup/memory/gsched/" + container + "/memory.limit_in_bytes");
  if (limit.empty())
    limit = ReadFile("/sys/fs/cgroup/gsched/" + container + "/memory.max");
  EXPECT_EQ(limit, std::to_string(1024LL << 20) + "\n") << Describe(share);
  ASSERT_TRUE(s_.Client(alice_)->Post("/v1/jobs/" + std::to_string(share) + "/cancel", "").ok());
  ASSERT_TRUE(WaitEnded(share)) << Describe(share);
}

TEST_F(RuncAttackTest, AUserWithoutAnIdentityFailsOnceWithTheReason) {
  uint64_t id = Submit(Spec("echo should not run"), s_.Token("mallory", "user", {"proj-a"}));
  ASSERT_TRUE(WaitEnded(id)) << Describe(id);
  EXPECT_EQ(State(id), "failed");
  EXPECT_NE(Message(id).find("mallory"), std::string::npos) << Message(id);
  EXPECT_NE(Message(id).find("identity"), std::string::npos) << Message(id);
  EXPECT_EQ(Job(id).at("attempts").as_array().size(), 1u);
}

// The same node with `pool` identities: container root is the user's block of host ids, in a
// user namespace, and with `network: none` the job has only its own loopback.
class RuncPoolAttackTest : public RuncAttackTest {
 protected:
  void SetUp() override {
    RuncAttackTest::SetUp();
    if (IsSkipped())
      return;
  }
  std::string WorkerExtraConfig() const override {
    return "identity: {mode: pool, pool: {first_uid: 300000, users: 16, ids_per_user: 65536}}\n"
           "images: {roots: [" +
           s_.dir() + "/images]}\nnetwork: none\n";
  }
};

TEST_F(RuncPoolAttackTest, ContainerRootIsAnUnprivilegedHostUserWithoutTheHostNetwork) {
  // The runtime enters the image and the job's directory as the mapped user.
  OpenPathsForJobs(s_.dir());
  uint64_t id =
      Submit(Spec("id -u; cat /proc/self/uid_map; cat /proc/net/dev | wc -l; "
                  "touch /gsched/made-here; unshare -U true 2>/dev/null && echo unshared; "
                  "echo end"));
  ASSERT_TRUE(WaitEnded(id)) << Describe(id);
  EXPECT_EQ(State(id), "completed") << Describe(id);
  // Root inside, host 300000 (alice's block, the first) outside; /proc/net/dev: two header lines
  // and lo.
  std::string out = Logs(id);
  EXPECT_EQ(out.substr(0, 2), "0\n") << out;
  EXPECT_NE(out.find("300000"), std::string::npos) << out;
  EXPECT_NE(out.find("\n3\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("unshared"), std::string::npos) << out;
  struct stat st {};
  ASSERT_EQ(stat((JobDir(id) + "/job/made-here").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 300000u);
  // Bob gets the next block.
  uint64_t b = Submit(Spec("cat /proc/self/uid_map"), bob_);
  ASSERT_TRUE(WaitEnded(b)) << Describe(b);
  EXPECT_NE(Logs(b, "stdout", bob_).find("365536"), std::string::npos) << Describe(b);
}

// The `process` runtime (development, plain host processes) still drops to the user: its jobs
// can see the host, so file permissions are the wall.
class ProcessAttackTest : public RuncAttackTest {
 protected:
  std::string Runtime() const override { return "process"; }
  void SetUp() override {
    if (geteuid() != 0)
      GTEST_SKIP() << "switching users needs root";
    RuncAttackTest::SetUp();
  }
};

TEST_F(ProcessAttackTest, AHostProcessJobRunsAsItsUserAndCannotReachOthersFiles) {
  // The work directory must be passable for jobs to reach their own directories.
  OpenPathsForJobs(s_.dir());
  fs::permissions(secret_, fs::perms(0600));
  uint64_t a = Submit(Spec("id -u; echo alice-private > notes; echo written; sleep 30",
                           R"("grace_period_s": 1)", "/"));
  ASSERT_TRUE(WaitFor([&] { return Logs(a) == "61001\nwritten\n"; })) << Describe(a);
  std::string dave = s_.Token("dave", "user", {"proj-a"});
  uint64_t b = Submit(Spec("id -u; cat " + JobDir(a) +
                               "/job/notes 2>/dev/null || echo denied; "
                               "cat " +
                               JobDir(a) +
                               "/stdout 2>/dev/null || echo denied; "
                               "ln " +
                               secret_ +
                               " hard 2>/dev/null && echo linked; "
                               "rm -f " +
                               JobDir(a) + "/exit 2>/dev/null; ln -s " + secret_ +
                               " $GSCHED_JOB_DIR/stdout; echo done",
                           "", "/"),
                      dave);
  ASSERT_TRUE(WaitEnded(b)) << Describe(b);
  EXPECT_EQ(Logs(b, "stdout", dave), "61004\ndenied\ndenied\ndone\n") << Logs(b, "stderr", dave);
  EXPECT_EQ(State(a), "running");
  ASSERT_TRUE(s_.Client(alice_)->Post("/v1/jobs/" + std::to_string(a) + "/cancel", "").ok());
  ASSERT_TRUE(WaitEnded(a)) << Describe(a);
  EXPECT_TRUE(WaitFor([&] { return ProcessesOf(kDaveUid) == 0; }, std::chrono::seconds(10)));
}

}  // namespace
}  // namespace gsched::testing
