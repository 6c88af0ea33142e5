#include "scheduler/server/ui_assets.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace gsched::server {
namespace {

using net::HttpRequest;

HttpRequest Get(std::string path) {
  HttpRequest r;
  r.method = "GET";
  r.target = path;
  r.path = std::move(path);
  return r;
}

std::string HeaderOf(const net::HttpResponse& r, std::string_view name) {
  for (const auto& [k, v] : r.headers)
    if (k == name)
      return v;
  return "";
}

TEST(UiAssetsTest, TheTableIsSortedAndHoldsThePage) {
  auto files = UiFiles();
  ASSERT_FALSE(files.empty());
  std::set<std::string_view> etags;
  for (size_t i = 0; i < files.size(); ++i) {
    if (i > 0) {
      EXPECT_LT(files[i - 1].path, files[i].path);
    }
    EXPECT_FALSE(files[i].body.empty()) << files[i].path;
    EXPECT_TRUE(etags.insert(files[i].etag).second) << files[i].path;
  }
  for (std::string_view p : {"index.html", "app.css", "js/app.js"})
    EXPECT_EQ(ServeUi(Get("/ui/" + std::string(p))).status, 200) << p;
}

TEST(UiAssetsTest, ThePageIsServedAtUiAndUiSlash) {
  for (std::string path : {"/ui", "/ui/", "/ui/index.html"}) {
    auto r = ServeUi(Get(path));
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
    EXPECT_NE(r.body.find("<title>gsched</title>"), std::string::npos);
    EXPECT_EQ(HeaderOf(r, "Cache-Control"), "no-cache");
    EXPECT_NE(HeaderOf(r, "Content-Security-Policy").find("script-src 'self'"), std::string::npos);
    EXPECT_EQ(HeaderOf(r, "X-Content-Type-Options"), "nosniff");
  }
}

TEST(UiAssetsTest, ContentTypesFollowTheExtension) {
  EXPECT_EQ(UiContentType("js/app.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(UiContentType("app.css"), "text/css; charset=utf-8");
  EXPECT_EQ(UiContentType("favicon.svg"), "image/svg+xml");
  EXPECT_EQ(UiContentType("x.woff2"), "font/woff2");
  EXPECT_EQ(UiContentType("noext"), "application/octet-stream");
  EXPECT_EQ(UiContentType("dir.js/file"), "application/octet-stream");
  EXPECT_EQ(ServeUi(Get("/ui/js/app.js")).content_type, "text/javascript; charset=utf-8");
}

TEST(UiAssetsTest, AMatchingETagGetsA304) {
  auto first = ServeUi(Get("/ui/app.css"));
  std::string etag = HeaderOf(first, "ETag");
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(etag.front(), '"');
  for (std::string inm : {etag, "\"other\", " + etag, "W/" + etag, std::string("*")}) {
    HttpRequest r = Get("/ui/app.css");
    r.headers["if-none-match"] = inm;
    auto again = ServeUi(r);
    EXPECT_EQ(again.status, 304) << inm;
    EXPECT_TRUE(again.body.empty());
    EXPECT_EQ(HeaderOf(again, "ETag"), etag);
  }
  HttpRequest stale = Get("/ui/app.css");
  stale.headers["if-none-match"] = "\"stale\"";
  EXPECT_EQ(ServeUi(stale).status, 200);
}

TEST(UiAssetsTest, OnlyPlainPathsToEmbeddedFilesAreServed) {
  // Paths arrive percent-decoded: "%2e%2e" is already "..".
  for (std::string path : std::initializer_list<std::string>{
           "/ui/../v1/jobs", "/ui/../../etc/passwd", "/ui/js/../index.html", "/ui/./index.html",
           "/ui//index.html", "/ui/index.html/", "/ui/js\\app.js",
           std::string("/ui/index.html\0", 15), "/ui/missing.js", "/ui/js", "/ui/js/", "/uix",
           "/ui.html"}) {
    auto r = ServeUi(Get(path));
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(r.body, "not found\n") << path;
  }
}

TEST(UiAssetsTest, OnlyGet) {
  HttpRequest r = Get("/ui/");
  r.method = "POST";
  auto res = ServeUi(r);
  EXPECT_EQ(res.status, 405);
  EXPECT_EQ(HeaderOf(res, "Allow"), "GET");
}

}  // namespace
}  // namespace gsched::server
