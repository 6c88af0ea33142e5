// The CLI's door to the scheduler: a small `Transport` interface (one HTTP request) and a
// `WatchStream` (the WebSocket feed), with implementations over `gsched_net`'s blocking clients.
// Commands only see these interfaces, so tests may run them against a fake server on
// 127.0.0.1:0 (the usual way) or against an in-memory transport.
//
// Threading: one transport per command run; not thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "client/cli_config.h"
#include "scheduler/common/status.h"
#include "scheduler/net/http_types.h"

namespace gsched::client {

class Transport {
 public:
  virtual ~Transport() = default;
  // Connection failures are `kUnavailable` (exit code 3); an HTTP error status is a response.
  virtual Result<net::HttpResponse> Request(std::string_view method, std::string_view target,
                                            std::string body) = 0;
};

class WatchStream {
 public:
  virtual ~WatchStream() = default;
  // The next message; `kDeadlineExceeded` after `timeout`, `kUnavailable` once closed.
  virtual Result<std::string> Read(Duration timeout) = 0;
};

struct Connector {
  std::function<Result<std::unique_ptr<Transport>>(const CliConfig&)> http;
  std::function<Result<std::unique_ptr<WatchStream>>(const CliConfig&, const std::string& target)>
      watch;
};

// Real HTTP and WebSocket clients.
Connector NetConnector();

}  // namespace gsched::client
