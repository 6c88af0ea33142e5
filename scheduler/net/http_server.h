// `HttpServer`: HTTP/1.1 with keep-alive and WebSocket upgrades over Beast, optionally TLS.
//
// A pool of `threads` runs the sessions; each connection lives on its own strand. HTTP sessions are
// coroutines; WebSocket sessions are callback-driven objects with a bounded write queue and one
// write in flight (the Beast chat example's shape), because their writes are triggered from other
// threads. Limits (body, header, timeouts, connection count, WebSocket message size and queue) are
// enforced here; authentication and routing are the handler's.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "scheduler/common/status.h"
#include "scheduler/net/http_types.h"

namespace gsched::net {

struct HttpServerOptions {
  std::string listen = "127.0.0.1:0";  // HOST:PORT; port 0 takes a free port.
  ServerLimits limits;
  std::optional<TlsFiles> tls;
  int threads = 2;
  // Called once when a connection ends (HTTP or WebSocket, either side, or `Stop`), with the id its
  // requests carried in `HttpRequest::connection`. Runs on a network thread; must not block.
  std::function<void(uint64_t connection)> on_connection_end;
};

struct ServerCounters {
  uint64_t connections_open = 0;
  uint64_t connections_total = 0;
  uint64_t requests_total = 0;
  uint64_t ws_open = 0;
  uint64_t ws_dropped_slow = 0;
  uint64_t ws_queued = 0;  // Messages waiting in WebSocket queues, those being written included.
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler http, WsUpgradeHandler ws);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the threads. Returns the bound "HOST:PORT".
  Result<std::string> Start();
  // Stops accepting, closes every connection and joins the threads. Idempotent.
  void Stop();
  ServerCounters Counters() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace gsched::net
