// Blocking HTTP/1.1 and WebSocket clients for the CLI, the load generator, the worker's tests and
// integration tests. Each client owns one connection (kept alive and re-opened once when the server
// closed it) and its own I/O context; every operation has a deadline. Not thread-safe: one client
// per thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "scheduler/common/clock.h"
#include "scheduler/common/quantity.h"
#include "scheduler/common/status.h"
#include "scheduler/net/http_types.h"

namespace gsched::net {

struct ClientOptions {
  std::string token;    // Sent as "Authorization: Bearer TOKEN" when not empty.
  std::string ca_file;  // PEM CA bundle for https; empty: the system's.
  Duration timeout = Seconds(30);
};

// "http://host:port" or "https://host:port" (a path after it is ignored).
struct ServerUrl {
  bool tls = false;
  std::string host;
  std::string port;
};
Result<ServerUrl> ParseServerUrl(std::string_view url);

class HttpClient {
 public:
  static Result<std::unique_ptr<HttpClient>> Create(std::string_view url, ClientOptions options);
  ~HttpClient();

  // Sends one request and reads the answer. Connection failures are `kUnavailable`; an HTTP error
  // status is not an error here: the caller reads `status`.
  Result<HttpResponse> Request(std::string_view method, std::string_view target,
                               std::string body = {},
                               std::string_view content_type = "application/json");
  // After a failed `Request`: whether the whole request was written before the failure (the
  // answer did not come), so that the server may have carried it out. False when the connection
  // or the write failed: the server cannot have acted on it.
  bool MayHaveBeenSent() const;
  Result<HttpResponse> Get(std::string_view target) { return Request("GET", target); }
  Result<HttpResponse> Post(std::string_view target, std::string body) {
    return Request("POST", target, std::move(body));
  }

  struct Impl;

 private:
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class WsClient {
 public:
  // Connects and upgrades at `target` ("/v1/watch?topics=jobs"). A refused upgrade returns the
  // server's status and body in the error message.
  static Result<std::unique_ptr<WsClient>> Connect(std::string_view url, std::string_view target,
                                                   ClientOptions options);
  // Like `Connect`, but a refused upgrade is the server's answer (status, headers, body), so that
  // a caller can read what a standby says about the leader. Errors are connection failures.
  using Opened = std::variant<std::unique_ptr<WsClient>, HttpResponse>;
  static Result<Opened> Open(std::string_view url, std::string_view target, ClientOptions options);
  ~WsClient();

  // The next text message; `kDeadlineExceeded` after `timeout`, `kUnavailable` once closed (the
  // message then holds the close reason).
  Result<std::string> Read(Duration timeout);
  Status Write(std::string_view text);
  void Close();

  struct Impl;

 private:
  explicit WsClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gsched::net
