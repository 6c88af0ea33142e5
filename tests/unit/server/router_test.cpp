#include "scheduler/server/router.h"

#include <gtest/gtest.h>

#include <string>

namespace gsched::server {
namespace {

using Table = Router<std::string>;

// The name of the route `method path` finds, with its parameters as "name=value" after it;
// "none" when nothing matches.
std::string Find(const Table& t, std::string_view method, std::string_view path,
                 std::initializer_list<std::string_view> params = {}) {
  auto m = t.Find(method, path);
  if (!m)
    return "none";
  std::string out = *m->handler;
  for (std::string_view p : params)
    out += " " + std::string(p) + "=" + std::string(m->params.Get(p));
  return out;
}

Table Api() {
  Table t;
  EXPECT_TRUE(t.Add("GET", "/v1/jobs", "list").ok());
  EXPECT_TRUE(t.Add("GET", "/v1/jobs/{id}", "get").ok());
  EXPECT_TRUE(t.Add("GET", "/v1/jobs/{id}/logs", "logs").ok());
  EXPECT_TRUE(t.Add("POST", "/v1/jobs/{id}/cancel", "cancel").ok());
  EXPECT_TRUE(t.Add("POST", "/v1/nodes/{name}/drain", "drain").ok());
  EXPECT_TRUE(t.Add("DELETE", "/v1/tokens/{id}", "revoke").ok());
  return t;
}

TEST(RouterTest, FindsTheRouteByMethodAndPathWithItsParameters) {
  Table t = Api();
  EXPECT_EQ(Find(t, "GET", "/v1/jobs"), "list");
  EXPECT_EQ(Find(t, "GET", "/v1/jobs/42", {"id"}), "get id=42");
  EXPECT_EQ(Find(t, "GET", "/v1/jobs/42/logs", {"id"}), "logs id=42");
  EXPECT_EQ(Find(t, "POST", "/v1/jobs/7/cancel", {"id"}), "cancel id=7");
  EXPECT_EQ(Find(t, "POST", "/v1/nodes/gpu-n01/drain", {"name"}), "drain name=gpu-n01");
  EXPECT_EQ(Find(t, "DELETE", "/v1/tokens/abc", {"id"}), "revoke id=abc");
  // Parameters are not validated here: the handler parses them and names the field.
  EXPECT_EQ(Find(t, "GET", "/v1/jobs/not-a-number", {"id"}), "get id=not-a-number");
}

TEST(RouterTest, NothingMatchesAnotherMethodOrAnotherShape) {
  Table t = Api();
  EXPECT_EQ(Find(t, "POST", "/v1/jobs/42"), "none");
  EXPECT_EQ(Find(t, "DELETE", "/v1/jobs/42"), "none");
  EXPECT_EQ(Find(t, "POST", "/v1/jobs/42/explode"), "none");
  EXPECT_EQ(Find(t, "GET", "/v1/jobs/42/logs/more"), "none");
  EXPECT_EQ(Find(t, "GET", "/v2/jobs"), "none");
  EXPECT_EQ(Find(t, "GET", "/"), "none");
  EXPECT_EQ(Find(t, "get", "/v1/jobs"), "none");  // Methods are case-sensitive, as in HTTP.
}

TEST(RouterTest, EmptySegmentsAreIgnored) {
  Table t = Api();
  EXPECT_EQ(Find(t, "GET", "//v1///jobs/5/", {"id"}), "get id=5");
  EXPECT_EQ(PathSegments("/a//b/"), (std::vector<std::string_view>{"a", "b"}));
  EXPECT_TRUE(PathSegments("///").empty());
}

TEST(RouterTest, ALiteralSegmentWinsOverAParameterWhateverTheOrder) {
  Table t;
  ASSERT_TRUE(t.Add("GET", "/v1/jobs/{id}", "get").ok());
  ASSERT_TRUE(t.Add("GET", "/v1/jobs/stats", "stats").ok());
  EXPECT_EQ(Find(t, "GET", "/v1/jobs/stats"), "stats");
  EXPECT_EQ(Find(t, "GET", "/v1/jobs/9", {"id"}), "get id=9");
}

TEST(RouterTest, TheSameRouteTwiceIsRefused) {
  Table t;
  ASSERT_TRUE(t.Add("GET", "/v1/jobs/{id}", "first").ok());
  Status s = t.Add("GET", "/v1/jobs/{job}", "second");  // Same shape, another parameter name.
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_TRUE(t.Add("POST", "/v1/jobs/{id}", "other method").ok());
  EXPECT_EQ(Find(t, "GET", "/v1/jobs/1"), "first");
  EXPECT_EQ(t.size(), 2u);
}

}  // namespace
}  // namespace gsched::server
