// The dashboard's files over real HTTP: served without a token, with their content types and
// caching headers, and no `/ui/..` path reaching anything else. Also the watch feed's
// `access_token` parameter, the browser's way to authenticate a WebSocket.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>

#include "tests/integration/scheduler_process.h"

namespace gsched::testing {
namespace {

std::string HeaderOf(const net::HttpResponse& r, std::string name) {
  auto lower = [](std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
  };
  for (const auto& [k, v] : r.headers)
    if (lower(k) == lower(name))
      return v;
  return "";
}

TEST(UiTest, ThePageAndItsFilesNeedNoToken) {
  SchedulerProcess s;
  auto client = s.Client("");
  for (std::string target : {"/ui", "/ui/"}) {
    auto r = client->Get(target);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200) << target;
    EXPECT_EQ(r->content_type, "text/html; charset=utf-8");
    EXPECT_NE(r->body.find("/ui/js/app.js"), std::string::npos);
    EXPECT_EQ(HeaderOf(*r, "Cache-Control"), "no-cache");
    EXPECT_FALSE(HeaderOf(*r, "ETag").empty());
    EXPECT_FALSE(HeaderOf(*r, "Content-Security-Policy").empty());
  }
  auto js = client->Get("/ui/js/app.js");
  ASSERT_TRUE(js.ok());
  EXPECT_EQ(js->status, 200);
  EXPECT_EQ(js->content_type, "text/javascript; charset=utf-8");
  auto css = client->Get("/ui/app.css");
  ASSERT_TRUE(css.ok());
  EXPECT_EQ(css->content_type, "text/css; charset=utf-8");
  // The API itself still wants a token.
  auto jobs = client->Get("/v1/jobs");
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->status, 401);
}

TEST(UiTest, DotDotPathsCannotEscape) {
  SchedulerProcess s;
  auto client = s.Client("");
  // Sent as they are (the client does not normalise targets); the server decodes `%2e` and `%2f`.
  for (std::string target :
       {"/ui/../v1/jobs", "/ui/%2e%2e/v1/jobs", "/ui/..%2fv1%2fjobs", "/ui/../../../../etc/passwd",
        "/ui/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/ui/js/../index.html", "/ui/./index.html",
        "/ui//index.html", "/ui/..", "/ui/%2e%2e", "/ui/../healthz", "/ui/nope.js"}) {
    auto r = client->Get(target);
    ASSERT_TRUE(r.ok()) << target << ": " << r.status().ToString();
    EXPECT_EQ(r->status, 404) << target;
    EXPECT_EQ(r->body, "not found\n") << target;
  }
  auto post = client->Request("POST", "/ui/", "{}");
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post->status, 405);
}

TEST(UiTest, TheWatchFeedTakesTheTokenAsAccessTokenParameter) {
  SchedulerProcess s;
  auto ws = net::WsClient::Connect(s.url(), "/v1/watch?topics=jobs&access_token=" + s.admin_token(),
                                   {.timeout = Seconds(10)});
  ASSERT_TRUE(ws.ok()) << ws.status().ToString();
  auto r =
      s.Client(s.admin_token())
          ->Post("/v1/jobs", R"({"account":"lab","image":"/i","command":["x"],"gpus_per_node":1})");
  ASSERT_TRUE(r.ok() && r->status == 201) << (r.ok() ? r->body : r.status().ToString());
  auto text = (*ws)->Read(Seconds(20));
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(Parse(*text).at("type").as_string(), "job.submitted");

  // A bad token is refused before the upgrade; so is a token given twice.
  auto bad = net::WsClient::Connect(s.url(), "/v1/watch?access_token=gs1.forged", {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("401"), std::string::npos) << bad.status().ToString();
  auto both = net::WsClient::Connect(s.url(), "/v1/watch?access_token=" + s.admin_token(),
                                     {.token = s.admin_token()});
  ASSERT_FALSE(both.ok());
  EXPECT_NE(both.status().message().find("access_token"), std::string::npos)
      << both.status().ToString();
  // Only the watch feed takes it: the REST API wants the header.
  auto rest = s.Client("")->Get("/v1/jobs?access_token=" + s.admin_token());
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(rest->status, 401);
}

}  // namespace
}  // namespace gsched::testing
