// OCI images by reference, end to end (issue "Real images"): a real registry (Debian's
// `docker-registry`, the reference registry) on 127.0.0.1 with a free port and storage in the
// test's directory; images built by the test from /bin/busybox with `umoci` and pushed with
// `skopeo`; the real scheduler, a real worker with runc as root, and the real CLI. Jobs run by tag
// and by digest, two jobs share one pull, a registry outside the allow-list and a missing tag
// fail with the reason, the cache stays under its cap by evicting what no job uses, and `pool`
// identities run a pulled image in their user namespace.
//
// Skips with the reason where root, runc, busybox, skopeo, umoci or docker-registry is missing
// (`scripts/setup` installs them; CI has them).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/e2e/system_fixture.h"

namespace gsched::testing {
namespace {

namespace fs = std::filesystem;

// A TCP port that was free a moment ago on 127.0.0.1 (the registry cannot be told to take port 0
// and report it).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

bool Listening(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

// How many lines of `text` contain `needle`.
size_t CountLines(const std::string& text, const std::string& needle) {
  size_t n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.find(needle) != std::string::npos)
      ++n;
  return n;
}

class ImageTest : public SystemTest {
 protected:
  std::string Runtime() const override { return "runc"; }

  void SetUp() override {
    for (const char* tool : {"/usr/sbin/runc", "/bin/busybox", "/usr/bin/skopeo", "/usr/bin/umoci",
                             "/usr/bin/docker-registry"})
      if (!fs::exists(tool))
        GTEST_SKIP() << tool << " is missing (scripts/setup installs it; CI has it)";
    if (geteuid() != 0)
      GTEST_SKIP() << "needs root (runc jobs as other users, umoci unpack)";
    port_ = FreePort();
    ASSERT_GT(port_, 0);
    registry_ = "127.0.0.1:" + std::to_string(port_);
    std::ofstream(s_.dir() + "/registry.yml")
        << "version: 0.1\n"
        << "log: {level: warn}\n"
        << "storage: {filesystem: {rootdirectory: " << s_.dir() << "/registry-data}}\n"
        << "http: {addr: \"" << registry_ << "\"}\n";
    registry_process_ = std::make_unique<Subprocess>(
        std::vector<std::string>{"/usr/bin/docker-registry", "serve", s_.dir() + "/registry.yml"},
        s_.dir() + "/registry.log");
    ASSERT_TRUE(WaitFor([&] { return Listening(port_); }, std::chrono::seconds(20)))
        << ReadFile(s_.dir() + "/registry.log");
    std::ofstream(s_.dir() + "/identities.map") << "alice: 61001:61001\n";
    SystemTest::SetUp();
  }

  // The worker never had any image: only the registry is allowed, over plain http.
  std::string WorkerExtraConfig() const override {
    return "identity: {mode: map, map_file: " + s_.dir() + "/identities.map}\n" +
           "images:\n  registries: [{host: \"" + registry_ + "\", insecure: true}, nvcr.io]\n" +
           "  cache_max_bytes: " + std::to_string(CacheMaxBytes()) + "\n" + "memory_mib: 8192\n";
  }
  virtual int64_t CacheMaxBytes() const { return int64_t{1} << 30; }

  // Runs a tool to its end; its output on failure.
  void Run(const std::vector<std::string>& argv) {
    std::string log = s_.dir() + "/tool-" + std::to_string(++tool_runs_) + ".log";
    Subprocess p(argv, log);
    int status = p.Wait(std::chrono::seconds(60));
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << argv[0] << " " << argv[1] << ":\n"
                                                               << ReadFile(log);
  }
  std::string Output(const std::vector<std::string>& argv) {
    std::string out = s_.dir() + "/tool-" + std::to_string(++tool_runs_) + ".out";
    Subprocess p(argv, out, {.err_path = out + ".err"});
    p.Wait(std::chrono::seconds(60));
    return ReadFile(out);
  }

  // Builds `demo/busybox:TAG` from /bin/busybox with umoci (`/etc/image-id` says TAG; a file of
  // `padding_bytes` makes it bigger), pushes it and returns its digest.
  std::string PushImage(const std::string& tag, int64_t padding_bytes = 0) {
    std::string work = s_.dir() + "/build-" + tag + "-" + std::to_string(padding_bytes);
    std::string layout = work + "/layout";
    fs::create_directories(work);
    Run({"/usr/bin/umoci", "init", "--layout", layout});
    Run({"/usr/bin/umoci", "new", "--image", layout + ":" + tag});
    Run({"/usr/bin/umoci", "unpack", "--image", layout + ":" + tag, work + "/bundle"});
    std::string rootfs = work + "/bundle/rootfs";
    MakeBusyboxRootfs(rootfs, {"sh", "echo", "cat", "id", "ls", "true"});
    std::ofstream(rootfs + "/etc/image-id") << "image " << tag << "\n";
    if (padding_bytes > 0) {
      std::ofstream pad(rootfs + "/padding", std::ios::binary);
      // Bytes that gzip cannot shrink much, so that the layer and the tree both grow.
      uint64_t x = 88172645463325252ull;
      for (int64_t i = 0; i < padding_bytes; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pad.put(static_cast<char>(x));
      }
    }
    Run({"/usr/bin/umoci", "repack", "--image", layout + ":" + tag, work + "/bundle"});
    Run({"/usr/bin/skopeo", "copy", "--quiet", "--dest-tls-verify=false",
         "oci:" + layout + ":" + tag, "docker://" + registry_ + "/demo/busybox:" + tag});
    std::string digest = Output({"/usr/bin/skopeo", "inspect", "--tls-verify=false", "--format",
                                 "{{.Digest}}", "docker://" + registry_ + "/demo/busybox:" + tag});
    while (!digest.empty() && digest.back() == '\n')
      digest.pop_back();
    EXPECT_EQ(digest.size(), 71u) << digest;
    return digest;
  }

  std::string Spec(const std::string& image, const std::string& script) {
    boost::json::object spec{{"image", image},
                             {"gpu_type", "h100"},
                             {"time_limit_s", 120},
                             {"command", boost::json::array{"sh", "-c", script}}};
    return boost::json::serialize(spec);
  }
  bool WaitEnded(uint64_t id) {
    return WaitFor(
        [&] {
          std::string s = State(id);
          return s != "pending" && s != "starting" && s != "running" && s != "?";
        },
        std::chrono::seconds(60));
  }
  std::string Message(uint64_t id) {
    auto j = Job(id);
    if (!j.is_object() || j.at("attempts").as_array().empty())
      return "";
    return std::string(j.at("attempts").as_array().back().at("message").as_string());
  }
  std::string Digest(uint64_t id) {
    auto j = Job(id);
    const boost::json::value* d =
        j.is_object() ? j.as_object().if_contains("image_digest") : nullptr;
    return d && d->is_string() ? std::string(d->as_string()) : "";
  }
  std::string Describe(uint64_t id) {
    return boost::json::serialize(Job(id)) + "\n--- worker\n" + worker_->Log() +
           worker_->JobFiles() + "\n--- registry\n" + ReadFile(s_.dir() + "/registry.log");
  }
  std::string CacheDir() const { return s_.dir() + "/node-1/work/images/sha256"; }
  bool Cached(const std::string& digest) const {
    return fs::exists(CacheDir() + "/" + digest.substr(7));
  }

  int port_ = 0;
  std::string registry_;
  std::unique_ptr<Subprocess> registry_process_;
  int tool_runs_ = 0;
};

TEST_F(ImageTest, AJobRunsByTagAndByDigestAndRecordsTheDigest) {
  std::string digest = PushImage("1");
  std::string by_tag = registry_ + "/demo/busybox:1";
  ASSERT_FALSE(Cached(digest));

  uint64_t id =
      Submit(Spec(by_tag, "cat /etc/image-id; id -u; touch /bin/x 2>/dev/null || echo ro"));
  ASSERT_TRUE(WaitEnded(id)) << Describe(id);
  ASSERT_EQ(State(id), "completed") << Describe(id);
  // The image's own file, as alice (61001), on a read-only root.
  EXPECT_EQ(Logs(id), "image 1\n61001\nro\n") << Logs(id, "stderr");
  EXPECT_EQ(Digest(id), digest) << Describe(id);
  EXPECT_TRUE(Cached(digest));

  // `gsched show` names the digest that ran.
  CliResult show = Cli({"show", std::to_string(id)});
  EXPECT_EQ(show.code, 0) << show.Text();
  EXPECT_NE(show.out.find("Image digest:"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find(digest), std::string::npos) << show.out;

  // Pinned by digest: the same tree, no second pull.
  uint64_t pinned = Submit(Spec(registry_ + "/demo/busybox@" + digest, "cat /etc/image-id"));
  ASSERT_TRUE(WaitEnded(pinned)) << Describe(pinned);
  ASSERT_EQ(State(pinned), "completed") << Describe(pinned);
  EXPECT_EQ(Logs(pinned), "image 1\n");
  EXPECT_EQ(Digest(pinned), digest);
  EXPECT_EQ(CountLines(worker_->Log(), "image cache: pulling"), 1u) << worker_->Log();

  // The tag moves to another image: a new job runs the new digest, the old record stays.
  std::string moved = PushImage("1", 1000);
  ASSERT_NE(moved, digest);
  uint64_t again = Submit(Spec(by_tag, "true"));
  ASSERT_TRUE(WaitEnded(again)) << Describe(again);
  EXPECT_EQ(State(again), "completed") << Describe(again);
  EXPECT_EQ(Digest(again), moved);
  EXPECT_EQ(Digest(id), digest);
}

TEST_F(ImageTest, JobsWaitingForOneImageShareOnePull) {
  std::string digest = PushImage("shared");
  std::string by_tag = registry_ + "/demo/busybox:shared";
  std::string by_digest = registry_ + "/demo/busybox@" + digest;
  // One batch: all three are launched in the same pass, while the first pull is under way.
  boost::json::array jobs;
  for (const std::string& image : {by_tag, by_tag, by_digest})
    jobs.push_back(boost::json::parse(Spec(image, "cat /etc/image-id")));
  auto r = s_.Client(alice_)->Post("/v1/jobs",
                                   boost::json::serialize(boost::json::object{{"jobs", jobs}}));
  ASSERT_TRUE(r.ok() && r->status == 201) << (r.ok() ? r->body : r.status().ToString());
  auto ids = boost::json::parse(r->body).at("ids").as_array();
  ASSERT_EQ(ids.size(), 3u);
  for (const auto& v : ids) {
    uint64_t id = v.to_number<uint64_t>();
    ASSERT_TRUE(WaitEnded(id)) << Describe(id);
    EXPECT_EQ(State(id), "completed") << Describe(id);
    EXPECT_EQ(Logs(id), "image shared\n");
    EXPECT_EQ(Digest(id), digest);
  }
  // One download and one unpack for the digest, however many jobs and references waited.
  EXPECT_EQ(CountLines(worker_->Log(), "image cache: pulling"), 1u) << worker_->Log();
}

TEST_F(ImageTest, ARegistryOutsideTheAllowListIsRefused) {
  // At submit the reference is valid; the worker refuses it with its allow-list.
  uint64_t id = Submit(Spec("registry.example.org/lab/trainer:1", "true"));
  ASSERT_TRUE(WaitEnded(id)) << Describe(id);
  EXPECT_EQ(State(id), "failed");
  EXPECT_NE(Message(id).find("registry.example.org is not in this node's images.registries"),
            std::string::npos)
      << Message(id);
  EXPECT_EQ(Digest(id), "");
  // A reference without a registry is Docker Hub's, which this node does not allow either.
  uint64_t hub = Submit(Spec("busybox:1", "true"));
  ASSERT_TRUE(WaitEnded(hub)) << Describe(hub);
  EXPECT_NE(Message(hub).find("registry docker.io is not in"), std::string::npos) << Message(hub);
}

TEST_F(ImageTest, AMissingTagFailsTheAttemptWithTheRegistrysMessage) {
  PushImage("1");
  uint64_t id = Submit(Spec(registry_ + "/demo/busybox:nope", "true"));
  ASSERT_TRUE(WaitEnded(id)) << Describe(id);
  EXPECT_EQ(State(id), "failed");
  std::string message = Message(id);
  EXPECT_NE(message.find("pulling image " + registry_ + "/demo/busybox:nope"), std::string::npos)
      << message;
  EXPECT_NE(message.find("manifest unknown"), std::string::npos) << message;
  // A digest that the registry does not have.
  uint64_t unknown =
      Submit(Spec(registry_ + "/demo/busybox@sha256:" + std::string(64, '0'), "true"));
  ASSERT_TRUE(WaitEnded(unknown)) << Describe(unknown);
  EXPECT_EQ(State(unknown), "failed");
  EXPECT_NE(Message(unknown).find("manifest unknown"), std::string::npos) << Message(unknown);
  EXPECT_TRUE(fs::is_empty(CacheDir()));
}

// A cap of 5 MiB: busybox alone is about 1.9 MiB unpacked, the padded image about 3.4 MiB; both
// together (5.3 MiB) do not fit, either alone does.
class ImageCacheCapTest : public ImageTest {
 protected:
  int64_t CacheMaxBytes() const override { return int64_t{5} << 20; }
};

TEST_F(ImageCacheCapTest, TheLeastRecentlyUsedImageNoJobUsesIsEvicted) {
  std::string small = PushImage("small");
  std::string big = PushImage("big", int64_t{3} << 19);
  uint64_t first = Submit(Spec(registry_ + "/demo/busybox:small", "cat /etc/image-id"));
  ASSERT_TRUE(WaitEnded(first)) << Describe(first);
  ASSERT_EQ(State(first), "completed") << Describe(first);
  ASSERT_TRUE(Cached(small));

  // A job holds the big image while it runs; the small one, used by no job, goes.
  // It waits for `go` in its own directory (/gsched), which the test writes from the host.
  uint64_t second =
      Submit(Spec(registry_ + "/demo/busybox:big",
                  "cat /etc/image-id; echo started; n=0; while [ ! -e /gsched/go ] "
                  "&& [ $n -lt 3000 ]; do sleep 0.02; n=$((n+1)); done; echo finished"));
  ASSERT_TRUE(WaitFor([&] { return Logs(second).find("started") != std::string::npos; }))
      << Describe(second);
  EXPECT_TRUE(Cached(big));
  EXPECT_FALSE(Cached(small)) << worker_->Log();
  EXPECT_NE(worker_->Log().find("image cache: evicted " + small), std::string::npos)
      << worker_->Log();

  // The small one comes back by pulling again while the big one is in use: the cache goes over
  // its cap (5.3 MiB) rather than remove an image a job runs from.
  uint64_t third = Submit(Spec(registry_ + "/demo/busybox:small", "cat /etc/image-id"));
  ASSERT_TRUE(WaitEnded(third)) << Describe(third);
  EXPECT_EQ(State(third), "completed") << Describe(third);
  EXPECT_EQ(Logs(third), "image small\n");
  // Once its job ended, the small image is the only one no job uses: it goes, the cap holds.
  EXPECT_TRUE(Cached(big));
  EXPECT_FALSE(Cached(small)) << worker_->Log();
  std::ofstream(s_.dir() + "/node-1/work/jobs/" + std::to_string(second) + "/1/job/go") << "";
  ASSERT_TRUE(WaitEnded(second)) << Describe(second);
  EXPECT_EQ(State(second), "completed") << Describe(second);
  EXPECT_EQ(Logs(second), "image big\nstarted\nfinished\n");
  // Unused now but within the cap (3.4 MiB): it stays for the next job.
  EXPECT_TRUE(Cached(big));
  EXPECT_EQ(CountLines(worker_->Log(), "image cache: pulling"), 3u) << worker_->Log();
}

TEST_F(ImageCacheCapTest, AJobReadoptedAfterAWorkerRestartKeepsItsImage) {
  std::string small = PushImage("small");
  std::string big = PushImage("big", int64_t{3} << 19);
  uint64_t running = Submit(Spec(registry_ + "/demo/busybox:big",
                                 "echo started; n=0; while [ ! -e /gsched/go ] && [ $n -lt 3000 ]; "
                                 "do sleep 0.02; n=$((n+1)); done; echo finished"));
  ASSERT_TRUE(WaitFor([&] { return Logs(running).find("started") != std::string::npos; }))
      << Describe(running);
  // kill -9 of the worker; the job runs on under its shim, and the new worker adopts it - and
  // with it its use of the big image.
  worker_->Crash();
  worker_->Start();
  // The small image does not fit beside the big one (5.3 MiB > 5 MiB): once its job ended it is
  // the one to go, never the big one a running job uses.
  uint64_t other = Submit(Spec(registry_ + "/demo/busybox:small", "cat /etc/image-id"));
  ASSERT_TRUE(WaitEnded(other)) << Describe(other);
  EXPECT_EQ(State(other), "completed") << Describe(other);
  EXPECT_TRUE(Cached(big)) << worker_->Log();
  EXPECT_FALSE(Cached(small)) << worker_->Log();
  std::ofstream(s_.dir() + "/node-1/work/jobs/" + std::to_string(running) + "/1/job/go") << "";
  ASSERT_TRUE(WaitEnded(running)) << Describe(running);
  EXPECT_EQ(State(running), "completed") << Describe(running);
  EXPECT_EQ(Logs(running), "started\nfinished\n");
  EXPECT_EQ(Digest(running), big);
}

// `pool` identities: container root is alice's block of host ids in a user namespace; the shared
// tree, owned by host root, is readable to it and read-only.
class ImagePoolTest : public ImageTest {
 protected:
  std::string WorkerExtraConfig() const override {
    return "identity: {mode: pool, pool: {first_uid: 300000, users: 16, ids_per_user: 65536}}\n"
           "images:\n  registries: [{host: \"" +
           registry_ + "\", insecure: true}]\nnetwork: none\n";
  }
};

TEST_F(ImagePoolTest, APulledImageRunsInTheUserNamespace) {
  // The runtime enters the cached tree and the job's directory as the mapped user.
  fs::permissions(s_.dir(), fs::perms(0711));
  fs::permissions(s_.dir() + "/node-1", fs::perms(0711));
  fs::permissions(s_.dir() + "/node-1/work", fs::perms(0711));
  std::string digest = PushImage("1");
  uint64_t id = Submit(Spec(registry_ + "/demo/busybox:1",
                            "id -u; cat /etc/image-id; touch /bin/x 2>/dev/null || echo ro"));
  ASSERT_TRUE(WaitEnded(id)) << Describe(id);
  EXPECT_EQ(State(id), "completed") << Describe(id);
  EXPECT_EQ(Logs(id), "0\nimage 1\nro\n") << Logs(id, "stderr");
  EXPECT_EQ(Digest(id), digest);
}

// A registry that accepts connections and never answers: the job stays `starting` with the pull
// as its reason, and cancelling it ends it without it ever running.
class ImageHangTest : public ImageTest {
 protected:
  void SetUp() override {
    hang_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    ASSERT_EQ(bind(hang_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(listen(hang_fd_, 16), 0);
    ASSERT_EQ(getsockname(hang_fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    hang_ = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
    ImageTest::SetUp();
  }
  void TearDown() override {
    // Closing it resets the pending connections: the worker's skopeo gives up at once.
    if (hang_fd_ >= 0)
      close(hang_fd_);
    ImageTest::TearDown();
  }
  std::string WorkerExtraConfig() const override {
    return "identity: {mode: map, map_file: " + s_.dir() + "/identities.map}\n" +
           "images:\n  registries: [{host: \"" + hang_ + "\", insecure: true}]\n" +
           "  pull_timeout: 2m\n";
  }

  int hang_fd_ = -1;
  std::string hang_;
};

TEST_F(ImageHangTest, AStartingJobShowsThePullAsItsReasonAndCanBeCancelled) {
  uint64_t id = Submit(Spec(hang_ + "/demo/busybox:1", "echo ran"));
  auto reason = [&]() -> std::string {
    auto j = Job(id);
    const boost::json::value* r = j.is_object() ? j.as_object().if_contains("reason") : nullptr;
    if (!r || !r->is_object())
      return "";
    return std::string(r->at("code").as_string()) + ": " +
           std::string(r->at("message").as_string());
  };
  ASSERT_TRUE(WaitFor([&] { return !reason().empty(); })) << Describe(id);
  EXPECT_EQ(State(id), "starting");
  EXPECT_EQ(reason(), "image_pull: pulling image: resolving the reference");
  CliResult show = Cli({"show", std::to_string(id)});
  EXPECT_NE(show.out.find("Starting:"), std::string::npos) << show.Text();
  EXPECT_NE(show.out.find("pulling image: resolving the reference."), std::string::npos)
      << show.Text();

  // kill -9 of the worker mid-pull: the new one resumes the pull rather than fail the attempt.
  worker_->Crash();
  worker_->Start();
  ASSERT_TRUE(WaitFor([&] {
    return worker_->Log().find("job " + std::to_string(id) + " attempt 1: resuming the pull of " +
                               hang_ + "/demo/busybox:1") != std::string::npos;
  })) << Describe(id);
  ASSERT_TRUE(WaitFor([&] {
    auto r = s_.Client(s_.admin_token())->Get("/v1/nodes");
    return r.ok() && r->body.find(R"("state":"up")") != std::string::npos;
  })) << Describe(id);
  EXPECT_EQ(State(id), "starting") << Describe(id);

  CliResult cancel = Cli({"cancel", std::to_string(id)});
  EXPECT_EQ(cancel.code, 0) << cancel.Text();
  ASSERT_TRUE(WaitEnded(id)) << Describe(id);
  EXPECT_EQ(State(id), "cancelled") << Describe(id);
  // Nothing ran: the shim never started.
  EXPECT_FALSE(fs::exists(s_.dir() + "/node-1/work/jobs/" + std::to_string(id) + "/1/pid"));
}

// podman and docker pull for themselves. The worker resolves the reference against the same
// allow-list and gives the engine the reference pinned to the digest it records. The engine here
// is a stand-in script that prints the image it was asked to run (no engine on these machines).
class ImageEngineTest : public ImageTest {
 protected:
  std::string Runtime() const override { return "podman, binary: " + s_.dir() + "/fake-podman"; }
  void SetUp() override {
    std::ofstream(s_.dir() + "/fake-podman")
        << "#!/bin/sh\n"
           "# `run [options] -- IMAGE COMMAND...`: prints IMAGE; `kill`, `rm`: nothing to do.\n"
           "[ \"$1\" = run ] || exit 0\n"
           "while [ $# -gt 0 ] && [ \"$1\" != -- ]; do shift; done\n"
           "echo \"image: $2\"\n";
    fs::permissions(s_.dir() + "/fake-podman", fs::perms(0755));
    ImageTest::SetUp();
  }
};

TEST_F(ImageEngineTest, TheEngineRunsTheDigestThatIsRecorded) {
  std::string digest = PushImage("1");
  uint64_t id = Submit(Spec(registry_ + "/demo/busybox:1", "true"));
  ASSERT_TRUE(WaitEnded(id)) << Describe(id);
  ASSERT_EQ(State(id), "completed") << Describe(id);
  EXPECT_EQ(Logs(id), "image: " + registry_ + "/demo/busybox@" + digest + "\n");
  EXPECT_EQ(Digest(id), digest);
  // Nothing is unpacked for an engine.
  EXPECT_FALSE(Cached(digest));
  uint64_t refused = Submit(Spec("registry.example.org/lab/trainer:1", "true"));
  ASSERT_TRUE(WaitEnded(refused)) << Describe(refused);
  EXPECT_EQ(State(refused), "failed");
  EXPECT_NE(Message(refused).find("not in this node's images.registries"), std::string::npos)
      << Message(refused);
}

}  // namespace
}  // namespace gsched::testing
