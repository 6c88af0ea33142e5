// The image cache without a registry: the allow-list, what a reopened cache keeps and evicts, the
// progress message, and the errors of a failing pull (a stand-in `skopeo` script) without the
// credentials in them. Pulls from a real registry are in tests/e2e/image_test.cpp.
#include "worker/image_cache.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/testutil/subprocess.h"
#include "tests/testutil/temp_dir.h"

namespace gsched::worker {
namespace {

namespace fs = std::filesystem;
using gsched::TempDir;

const std::string kDigestA = "sha256:" + std::string(64, 'a');
const std::string kDigestB = "sha256:" + std::string(64, 'b');
const std::string kDigestC = "sha256:" + std::string(64, 'c');

// A tree as a pull leaves it: `sha256/<hex>/rootfs` and `image.json` with its size, last used
// `age_s` seconds ago.
void PlaceImage(const std::string& dir, const std::string& digest, int64_t bytes, int age_s) {
  std::string entry = dir + "/sha256/" + digest.substr(7);
  fs::create_directories(entry + "/rootfs/bin");
  std::ofstream(entry + "/image.json")
      << R"({"digest":")" << digest << R"(","bytes":)" << bytes << "}\n";
  auto when = fs::file_time_type::clock::now() - std::chrono::seconds(age_s);
  fs::last_write_time(entry + "/image.json", when);
}

ImageCacheConfig Config(const std::string& dir) {
  ImageCacheConfig c;
  c.dir = dir;
  c.registries = {"registry.lab:5000"};
  c.max_bytes = int64_t{10} << 20;
  return c;
}

ImageState WaitDone(ImageCache& cache, const std::string& reference) {
  ImageState state;
  EXPECT_TRUE(WaitFor([&] {
    state = cache.Acquire(reference);
    return state.phase != ImageState::Phase::kPulling;
  }));
  return state;
}

TEST(PullProgressMessage, SaysHowFarThePullGot) {
  ImageState s;
  EXPECT_EQ(PullProgressMessage(s), "pulling image: resolving the reference");
  s.digest = kDigestA;
  // 412 MiB of 1,930 MiB (the total rounds up: 1,929.5 MiB is 1,930).
  s.done_bytes = int64_t{412} << 20;
  s.total_bytes = (int64_t{1930} << 20) - (int64_t{1} << 19);
  EXPECT_EQ(PullProgressMessage(s), "pulling image: 412 of 1,930 MiB");
  s.total_bytes = 0;
  EXPECT_EQ(PullProgressMessage(s), "pulling image: 412 MiB");
  s.total_bytes = int64_t{1234567} << 20;
  s.unpacking = true;
  EXPECT_EQ(PullProgressMessage(s), "pulling image: unpacking 1,234,567 MiB");
  s.phase = ImageState::Phase::kReady;
  EXPECT_EQ(PullProgressMessage(s), "");
}

TEST(ImageCacheTest, RefusesRegistriesOutsideTheAllowListAndBadReferences) {
  TempDir dir;
  ImageCache cache(Config(dir.path() + "/images"));
  Status st = cache.Request("nvcr.io/nvidia/pytorch:25.01-py3");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.field(), "image");
  EXPECT_NE(st.message().find("registry nvcr.io is not in this node's images.registries "
                              "(registry.lab:5000)"),
            std::string::npos)
      << st.message();
  EXPECT_FALSE(cache.Request("registry.lab:5000/UPPER:1").ok());
  EXPECT_FALSE(cache.Request("registry.lab:5000/x@sha256:123").ok());
  EXPECT_EQ(cache.Acquire("registry.lab:5000/never:1").phase, ImageState::Phase::kFailed);
}

TEST(ImageCacheTest, AReopenedCacheKeepsItsTreesAndEvictsTheLeastRecentlyUsedOverTheCap) {
  TempDir dir;
  std::string images = dir.path() + "/images";
  // 4 + 4 + 4 MiB against a 10 MiB cap: the oldest (A, used 300 s ago) goes.
  PlaceImage(images, kDigestA, int64_t{4} << 20, 300);
  PlaceImage(images, kDigestB, int64_t{4} << 20, 200);
  PlaceImage(images, kDigestC, int64_t{4} << 20, 100);
  // Half-done work of a stopped worker, and a tree without its record.
  fs::create_directories(images + "/tmp/" + std::string(64, 'd') + "-0/layout");
  fs::create_directories(images + "/sha256/" + std::string(64, 'e') + "/rootfs");
  ImageCache cache(Config(images));
  EXPECT_EQ(cache.cached_digests(), (std::vector<std::string>{kDigestB, kDigestC}));
  EXPECT_EQ(cache.size_bytes(), int64_t{8} << 20);
  EXPECT_FALSE(fs::exists(images + "/sha256/" + kDigestA.substr(7)));
  EXPECT_FALSE(fs::exists(images + "/sha256/" + std::string(64, 'e')));
  EXPECT_TRUE(fs::is_empty(images + "/tmp"));
  EXPECT_EQ(cache.RootfsOf(kDigestB), images + "/sha256/" + kDigestB.substr(7) + "/rootfs");
  // A job found running from B keeps it; A is gone and cannot be adopted.
  EXPECT_TRUE(cache.Adopt(kDigestB));
  EXPECT_FALSE(cache.Adopt(kDigestA));
  // The cache directories are the worker's, passable by jobs' users (mode 0711).
  struct stat st {};
  ASSERT_EQ(stat((images + "/sha256").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0711u);
}

// A stand-in for skopeo that fails the way a registry refusing a login does, repeating what it
// was given: the credentials must not reach the job's message.
class ImageCachePullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    skopeo_ = dir_.path() + "/skopeo";
    std::ofstream(skopeo_) << "#!/bin/sh\n"
                           << "echo \"$@\" > " << dir_.path() << "/skopeo.args\n"
                           << "echo 'time=\"2026-12-03T10:00:00Z\" level=fatal msg=\"Error "
                              "parsing image name \\\"docker://registry.lab:5000/x:1\\\": "
                              "unauthorized: login alice:s3cret-pw failed (token "
                              "YWxpY2U6czNjcmV0LXB3)\"' >&2\n"
                           << "exit 1\n";
    fs::permissions(skopeo_, fs::perms(0755));
    credentials_ = dir_.path() + "/auth.json";
    // "YWxpY2U6czNjcmV0LXB3" is base64 of "alice:s3cret-pw".
    std::ofstream(credentials_)
        << R"({"auths":{"registry.lab:5000":{"auth":"YWxpY2U6czNjcmV0LXB3"}}})";
    fs::permissions(credentials_, fs::perms(0600));
  }
  ImageCacheConfig PullConfig() {
    ImageCacheConfig c = Config(dir_.path() + "/images");
    c.skopeo = skopeo_;
    c.credentials_file = credentials_;
    c.pull_timeout = Seconds(20);
    return c;
  }

  TempDir dir_;
  std::string skopeo_;
  std::string credentials_;
};

TEST_F(ImageCachePullTest, AFailedPullSaysWhyWithoutTheCredentials) {
  ImageCache cache(PullConfig());
  ASSERT_TRUE(cache.Request("registry.lab:5000/x:1").ok());
  ImageState state = WaitDone(cache, "registry.lab:5000/x:1");
  ASSERT_EQ(state.phase, ImageState::Phase::kFailed);
  EXPECT_EQ(state.error, "resolving: unauthorized: login *** failed (token ***)");
  // The credentials reach skopeo as a file name only; the registry is spoken to with TLS.
  std::ifstream args(dir_.path() + "/skopeo.args");
  std::string line;
  std::getline(args, line);
  EXPECT_EQ(line, "inspect --raw --retry-times 1 --authfile " + credentials_ +
                      " docker://registry.lab:5000/x:1");
}

TEST_F(ImageCachePullTest, CredentialsOthersCanReadAreRefused) {
  fs::permissions(credentials_, fs::perms(0644));
  ImageCache cache(PullConfig());
  ASSERT_TRUE(cache.Request("registry.lab:5000/x:1").ok());
  ImageState state = WaitDone(cache, "registry.lab:5000/x:1");
  ASSERT_EQ(state.phase, ImageState::Phase::kFailed);
  EXPECT_NE(state.error.find("images.credentials_file " + credentials_ +
                             " must be a regular file of the worker's user with mode 0600"),
            std::string::npos)
      << state.error;
  EXPECT_FALSE(fs::exists(dir_.path() + "/skopeo.args"));
}

}  // namespace
}  // namespace gsched::worker
