#include "scheduler/server/token.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tests/testutil/temp_dir.h"

namespace gsched::server {
namespace {

TokenClaims Alice(Timestamp expires) {
  return {
      "tok_0123456789abcdef", "alice", api::Role::kUser, {"kaist-nlp", "kaist-vision"}, expires};
}

TEST(TokenTest, SignedTokensVerifyWithTheirClaims) {
  TokenAuthority authority(std::string(32, 'k'));
  Timestamp now = FromUnixSeconds(1'800'000'000);
  std::string token = authority.Sign(Alice(now + Seconds(3600)));
  EXPECT_EQ(token.rfind("gs1.", 0), 0u);
  auto claims = authority.Verify(token, now);
  ASSERT_TRUE(claims.ok()) << claims.status().ToString();
  EXPECT_EQ(claims->id, "tok_0123456789abcdef");
  EXPECT_EQ(claims->user, "alice");
  EXPECT_EQ(claims->role, api::Role::kUser);
  EXPECT_EQ(claims->accounts, (std::vector<std::string>{"kaist-nlp", "kaist-vision"}));
  EXPECT_EQ(claims->expires, now + Seconds(3600));
}

TEST(TokenTest, WorkerTokensCarryTheirNodes) {
  TokenAuthority authority(std::string(32, 'k'));
  Timestamp now = FromUnixSeconds(1'800'000'000);
  TokenClaims w{"tok_1", "nvl003", api::Role::kWorker, {}, now + Seconds(60), {"nvl003-*", "x1"}};
  auto claims = authority.Verify(authority.Sign(w), now);
  ASSERT_TRUE(claims.ok()) << claims.status().ToString();
  EXPECT_EQ(claims->nodes, (std::vector<std::string>{"nvl003-*", "x1"}));
  EXPECT_TRUE(ServesNode(claims->nodes, "nvl003-n01"));
  EXPECT_TRUE(ServesNode(claims->nodes, "x1"));
  EXPECT_FALSE(ServesNode(claims->nodes, "x10"));
  EXPECT_FALSE(ServesNode(claims->nodes, "nvl004-n01"));
  EXPECT_TRUE(ServesNode({"*"}, "anything"));
  EXPECT_FALSE(ServesNode({}, "anything"));
  // A token without the claim (made before tokens named nodes) serves nothing.
  auto old = authority.Verify(authority.Sign(Alice(now + Seconds(60))), now);
  ASSERT_TRUE(old.ok());
  EXPECT_TRUE(old->nodes.empty());
}

TEST(TokenTest, ExpiredTokensAreRefused) {
  TokenAuthority authority(std::string(32, 'k'));
  Timestamp now = FromUnixSeconds(1'800'000'000);
  std::string token = authority.Sign(Alice(now + Seconds(10)));
  EXPECT_TRUE(authority.Verify(token, now + Seconds(9)).ok());
  auto late = authority.Verify(token, now + Seconds(10));
  EXPECT_EQ(late.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(late.status().message(), "token expired");
}

TEST(TokenTest, TamperingAndOtherKeysAreRefused) {
  TokenAuthority authority(std::string(32, 'k'));
  TokenAuthority other(std::string(32, 'o'));
  Timestamp now = FromUnixSeconds(1'800'000'000);
  std::string token = authority.Sign(Alice(now + Seconds(3600)));
  EXPECT_FALSE(other.Verify(token, now).ok());
  // Promote alice to admin by editing the payload: the MAC no longer matches.
  TokenClaims admin = Alice(now + Seconds(3600));
  admin.role = api::Role::kAdmin;
  std::string forged_payload = other.Sign(admin);
  std::string forged =
      forged_payload.substr(0, forged_payload.rfind('.')) + token.substr(token.rfind('.'));
  EXPECT_EQ(authority.Verify(forged, now).status().message(), "invalid token: bad signature");
  for (std::string_view junk : {"", "gs1.", "gs1..", "Bearer x", "gs1.@@@.###", "gs2.a.b"}) {
    EXPECT_EQ(authority.Verify(junk, now).status().code(), StatusCode::kUnauthenticated) << junk;
  }
}

TEST(TokenTest, KeyIsCreatedOnceWithMode0600) {
  TempDir dir;
  auto first = TokenAuthority::LoadOrCreate(dir.path());
  ASSERT_TRUE(first.ok());
  struct stat st {};
  ASSERT_EQ(stat((dir.path() + "/hmac.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto second = TokenAuthority::LoadOrCreate(dir.path());
  ASSERT_TRUE(second.ok());
  Timestamp now = FromUnixSeconds(1'800'000'000);
  // Same key on reload: a token signed before a restart still verifies.
  EXPECT_TRUE(second->Verify(first->Sign(Alice(now + Seconds(60))), now).ok());
}

TEST(Base64UrlTest, RoundTrips) {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba",
                                                       "foobar", std::string("\0\xff\xfe", 3)}) {
    EXPECT_EQ(*Base64UrlDecode(Base64UrlEncode(s)), s);
  }
  EXPECT_EQ(Base64UrlEncode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_FALSE(Base64UrlDecode("a").ok());
  EXPECT_FALSE(Base64UrlDecode("ab+c").ok());
}

TEST(TokenIdTest, LooksRightAndDiffers) {
  std::string a = NewTokenId(), b = NewTokenId();
  EXPECT_EQ(a.size(), 20u);
  EXPECT_EQ(a.rfind("tok_", 0), 0u);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace gsched::server
