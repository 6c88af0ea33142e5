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
  // The URL of the scheduler that answered last; empty when unknown.
  virtual std::string server() const { return {}; }
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

// Real HTTP and WebSocket clients. With several URLs in `CliConfig::servers` (the schedulers of a
// high-availability group, DESIGN.md section 12) every request and every watch connection goes
// to the leader among them:
//   - the scheduler that answered last in this run is asked first;
//   - a failed connection moves on to the next URL; a standby's 503 moves on to the leader it
//     names (`X-Gsched-Leader`, else the error body's `leader`) when that URL is in the list, at
//     most once per URL per round, else to the next URL; a leader outside the list is never
//     contacted (the token goes nowhere else);
//   - a request that was written before its connection failed may have been carried out: only
//     GET, HEAD, PUT and DELETE are sent again elsewhere. A POST (a submission, a cancel) is not:
//     the API has no client-supplied key by which a scheduler could recognise a repeated
//     submission, so the error says that the request may have been carried out;
//   - while a scheduler answers as a standby with no leader yet (an election under way), rounds
//     over the list repeat with a short pause until `timeout`; when no scheduler answers at all
//     the error comes at once and says what each one said ("URL: why; URL: why").
// One connector serves one CLI run (the last good scheduler is kept in memory only).
Connector NetConnector();

}  // namespace gsched::client
