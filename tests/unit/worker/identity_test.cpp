// Whom jobs run as (worker/identity.h): the map file's format, and as root the three modes, the
// refusals (uid 0, below min_uid, unknown users, an untrustworthy map file) and the pool's
// stable, distinct blocks.
#include "worker/identity.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "worker_test_util.h"

namespace gsched::worker {
namespace {

using testing::TempDir;

TEST(IdentityMap, ParsesUsersIdsAndGroups) {
  auto map = ParseIdentityMap(
      "# site accounts\n"
      "alice: 1001:1001\n"
      "bob:2002:3003,44, 45  # video, render\n"
      "\n"
      "carol@uni.edu : 5000:5000\n");
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  ASSERT_EQ(map->size(), 3u);
  EXPECT_EQ(map->at("alice"), (JobIdentity{1001, 1001, {}}));
  EXPECT_EQ(map->at("bob"), (JobIdentity{2002, 3003, {44, 45}}));
  EXPECT_EQ(map->at("carol@uni.edu").uid, 5000u);
}

TEST(IdentityMap, ErrorsNameTheLine) {
  for (const char* bad : {"alice 1001:1001", "alice: 1001", "alice: x:1", "alice: 1:1,", ": 1:1",
                          "alice: 4294967295:1", "alice: 1:1\nalice: 2:2"}) {
    auto map = ParseIdentityMap(bad);
    ASSERT_FALSE(map.ok()) << bad;
    EXPECT_NE(map.status().message().find("line "), std::string::npos) << map.status().ToString();
  }
}

class IdentityAsRoot : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0)
      GTEST_SKIP() << "switching users needs root; as another user jobs run as the worker's user";
  }
  std::string WriteMap(const std::string& text, mode_t mode = 0644) {
    std::string path = dir_.path() + "/identities.map";
    std::ofstream(path) << text;
    chmod(path.c_str(), mode);
    return path;
  }
  TempDir dir_;
};

TEST_F(IdentityAsRoot, MapModeRefusesRootLowIdsUnknownUsersAndAWritableFile) {
  config::IdentityConfig c;
  c.mode = config::IdentityMode::kMap;
  c.min_uid = 1000;
  c.map_file = WriteMap("alice: 60001:60001,60100\nroot: 0:0\nsys: 999:999\nwheel: 60002:0\n");
  IdentityResolver r(c, "");
  auto alice = r.Resolve("alice");
  ASSERT_TRUE(alice.ok()) << alice.status().ToString();
  EXPECT_EQ(*alice, (JobIdentity{60001, 60001, {60100}, 0, true}));
  for (const char* user : {"root", "sys", "wheel", "mallory", ""}) {
    auto id = r.Resolve(user);
    EXPECT_FALSE(id.ok()) << user;
    EXPECT_EQ(id.status().code(), StatusCode::kFailedPrecondition) << user;
  }
  EXPECT_NE(r.Resolve("sys").status().message().find("below identity.min_uid"), std::string::npos);
  EXPECT_NE(r.Resolve("mallory").status().message().find("not in identity.map_file"),
            std::string::npos);

  // The file changes: the next launch sees it.
  c.map_file = WriteMap("alice: 60005:60005\n");
  EXPECT_EQ(r.Resolve("alice")->uid, 60005u);
  // Writable by others: anyone could give themselves root's neighbours' ids.
  WriteMap("alice: 60005:60005\n", 0666);
  auto refused = r.Resolve("alice");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("writable by no one else"), std::string::npos)
      << refused.status().ToString();
}

TEST_F(IdentityAsRoot, NssModeUsesTheUserDatabase) {
  config::IdentityConfig c;
  c.mode = config::IdentityMode::kNss;
  c.min_uid = 1000;
  IdentityResolver r(c, "");
  auto root = r.Resolve("root");
  ASSERT_FALSE(root.ok());
  EXPECT_NE(root.status().message().find("root"), std::string::npos);
  // `nobody` is 65534 on Debian.
  auto nobody = r.Resolve("nobody");
  ASSERT_TRUE(nobody.ok()) << nobody.status().ToString();
  EXPECT_EQ(nobody->uid, 65534u);
  auto unknown = r.Resolve("no-such-user-xyz");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("user database"), std::string::npos);
}

TEST_F(IdentityAsRoot, PoolBlocksAreDistinctAndKeptAcrossRestarts) {
  config::IdentityConfig c;
  c.mode = config::IdentityMode::kPool;
  c.pool = {200000, 3, 65536};
  std::string file = dir_.path() + "/identities";
  {
    IdentityResolver r(c, file);
    auto a = r.Resolve("alice");
    auto b = r.Resolve("bob");
    ASSERT_TRUE(a.ok() && b.ok());
    // alice: block 0 = 200000, bob: block 1 = 200000 + 65536.
    EXPECT_EQ(a->uid, 200000u);
    EXPECT_EQ(b->uid, 265536u);
    EXPECT_EQ(a->userns_size, 65536u);
    EXPECT_EQ(r.Resolve("alice")->uid, 200000u);
  }
  IdentityResolver again(c, file);
  EXPECT_EQ(again.Resolve("bob")->uid, 265536u);
  EXPECT_EQ(again.Resolve("carol")->uid, 331072u);
  auto full = again.Resolve("dave");
  ASSERT_FALSE(full.ok());
  EXPECT_NE(full.status().message().find("pool is full"), std::string::npos);
}

TEST_F(IdentityAsRoot, RunAsRootIsTheWorkersOwnIdentity) {
  config::IdentityConfig c;
  c.run_as_root = true;
  IdentityResolver r(c, "");
  auto id = r.Resolve("anyone");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->uid, 0u);
  EXPECT_FALSE(id->switch_user);
}

}  // namespace
}  // namespace gsched::worker
