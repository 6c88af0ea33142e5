#include "scheduler/server/ui_assets.h"

#include <algorithm>
#include <array>
#include <utility>

namespace gsched::server {
namespace {

using net::HttpResponse;

constexpr std::array<std::pair<std::string_view, std::string_view>, 10> kTypes{{
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"},
}};

// The page talks to its own origin only: the REST API and the watch feed (CSP 'self' covers the
// same-origin ws: and wss: URLs), no inline script, no framing.
constexpr std::string_view kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

HttpResponse Plain(int status, std::string body) {
  return HttpResponse{status, std::move(body), "text/plain; charset=utf-8", {}};
}

// A path below `/ui/` names an embedded file only when every segment is a plain name: no empty,
// `.` or `..` segment, no backslash, no NUL. The lookup would miss them anyway; refusing them
// here keeps that property from resting on the table's contents.
bool PlainRelativePath(std::string_view rel) {
  if (rel.empty())
    return false;
  size_t i = 0;
  while (i <= rel.size()) {
    size_t j = std::min(rel.find('/', i), rel.size());
    std::string_view seg = rel.substr(i, j - i);
    if (seg.empty() || seg == "." || seg == ".." ||
        seg.find_first_of(std::string_view("\\\0", 2)) != std::string_view::npos)
      return false;
    i = j + 1;
  }
  return true;
}

const UiFile* Find(std::string_view rel) {
  auto files = UiFiles();
  auto it = std::lower_bound(files.begin(), files.end(), rel,
                             [](const UiFile& f, std::string_view p) { return f.path < p; });
  return it != files.end() && it->path == rel ? &*it : nullptr;
}

// Whether an `If-None-Match` list holds `etag` (or is `*`).
bool Matches(std::string_view if_none_match, std::string_view etag) {
  size_t i = 0;
  while (i < if_none_match.size()) {
    size_t j = std::min(if_none_match.find(',', i), if_none_match.size());
    std::string_view tag = if_none_match.substr(i, j - i);
    while (!tag.empty() && tag.front() == ' ')
      tag.remove_prefix(1);
    while (!tag.empty() && tag.back() == ' ')
      tag.remove_suffix(1);
    if (tag.starts_with("W/"))
      tag.remove_prefix(2);
    if (tag == "*" || tag == etag)
      return true;
    i = j + 1;
  }
  return false;
}

}  // namespace

std::string_view UiContentType(std::string_view path) {
  size_t dot = path.rfind('.');
  if (dot != std::string_view::npos && path.find('/', dot) == std::string_view::npos) {
    std::string_view ext = path.substr(dot);
    for (const auto& [e, type] : kTypes) {
      if (e == ext)
        return type;
    }
  }
  return "application/octet-stream";
}

HttpResponse ServeUi(const net::HttpRequest& req) {
  if (req.method != "GET") {
    HttpResponse r = Plain(405, "only GET\n");
    r.headers.push_back({"Allow", "GET"});
    return r;
  }
  std::string_view rel;
  if (req.path == "/ui" || req.path == "/ui/") {
    rel = "index.html";
  } else if (req.path.starts_with("/ui/")) {
    rel = std::string_view(req.path).substr(4);
  } else {
    return Plain(404, "not found\n");
  }
  const UiFile* file = PlainRelativePath(rel) ? Find(rel) : nullptr;
  if (!file)
    return Plain(404, "not found\n");
  HttpResponse r;
  r.content_type = std::string(UiContentType(file->path));
  // The files change with the binary, not with their names: the browser keeps them but asks
  // again each time, and an unchanged file costs a 304.
  r.headers.push_back({"Cache-Control", "no-cache"});
  r.headers.push_back({"ETag", std::string(file->etag)});
  r.headers.push_back({"X-Content-Type-Options", "nosniff"});
  r.headers.push_back({"Referrer-Policy", "no-referrer"});
  if (r.content_type.starts_with("text/html"))
    r.headers.push_back({"Content-Security-Policy", std::string(kContentSecurityPolicy)});
  // `headers` directly rather than `HttpRequest::Header`, which lives with the server's sockets.
  auto inm = req.headers.find("if-none-match");
  if (inm != req.headers.end() && Matches(inm->second, file->etag)) {
    r.status = 304;
    return r;
  }
  r.status = 200;
  r.body = std::string(file->body);
  return r;
}

}  // namespace gsched::server
