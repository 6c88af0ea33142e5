// The dashboard: the static files under `ui/` at the repository root, compiled into the binary
// (`embed_ui.cmake` writes their bytes into a generated .cpp at build time), and the route that
// serves them at `/ui` and `/ui/...` without a token.
//
// Nothing here touches the file system: a path is looked up in the compiled-in table, so no
// request can reach a file outside it, whatever its `..` segments. The page itself holds no data;
// it signs in with a token and reads the REST API and the watch feed like any other client.
//
// Threading: the table is immutable; `ServeUi` is a pure function, callable from any thread.
#pragma once

#include <span>
#include <string_view>

#include "scheduler/net/http_types.h"

namespace gsched::server {

struct UiFile {
  std::string_view path;  // Relative to `ui/`: "index.html", "js/app.js".
  std::string_view body;
  std::string_view etag;  // A quoted strong validator derived from the bytes.
};

// Every embedded file, sorted by `path` (defined in the generated file).
std::span<const UiFile> UiFiles();

// The `Content-Type` for a file name, by its extension.
std::string_view UiContentType(std::string_view path);

// Answers `GET /ui`, `GET /ui/` (the page) and `GET /ui/PATH` (a file), with `ETag` revalidation
// (`If-None-Match` -> 304) and headers that keep the page to its own origin. Anything that is not
// exactly an embedded file is a 404; methods other than GET are a 405.
net::HttpResponse ServeUi(const net::HttpRequest& req);

}  // namespace gsched::server
