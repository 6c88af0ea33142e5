// Plain HTTP and WebSocket types shared by the server, its routes and the clients. No Beast here:
// routes are functions from `HttpRequest` to `HttpResponse`, tested without sockets.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "scheduler/common/clock.h"

namespace gsched::net {

struct HttpRequest {
  std::string method;                                       // "GET", "POST", ...
  std::string target;                                       // As sent: "/v1/jobs?state=pending".
  std::string path;                                         // Percent-decoded path: "/v1/jobs".
  std::map<std::string, std::string, std::less<>> query;    // Decoded; the last value wins.
  std::map<std::string, std::string, std::less<>> headers;  // Names in lower case.
  std::string body;
  std::string remote;  // "127.0.0.1:54321".
  // The server's id of the connection the request came on: unique for the server's life, the same
  // for every request of a keep-alive connection. 0 when not from a server (tests).
  uint64_t connection = 0;
  // Over TLS with `TlsFiles::client_ca`: the names (DNS subject alternative names, else the common
  // name) of the client's certificate, verified against that CA; empty without one.
  std::vector<std::string> client_names;

  // The header's value, or "" when absent. `name` in lower case.
  std::string_view Header(std::string_view name) const;
  std::optional<std::string_view> Query(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;  // Close the connection after this answer, even if the client keeps it.
};

// Answers a request. Call it exactly once, from any thread.
using Responder = std::function<void(HttpResponse)>;
// Handles one request. Runs on a network thread and must not block: long work (a durable write,
// the scheduler's state) is handed elsewhere and answered through the `Responder` later.
using HttpHandler = std::function<void(HttpRequest&&, Responder)>;

// A message's text, immutable and shared: the watch feed serialises an event once and queues the
// same buffer on every connection that gets it.
using SharedText = std::shared_ptr<const std::string>;

// One accepted WebSocket. Thread-safe.
class WsConnection {
 public:
  virtual ~WsConnection() = default;
  // Queues a text message. When the connection's queue is full the connection is closed with
  // "slow consumer" rather than buffering without bound. Returns false when it was not queued.
  virtual bool Send(SharedText text) = 0;
  bool Send(std::string text) { return Send(std::make_shared<const std::string>(std::move(text))); }
  // Closes with a WebSocket close code (1000 normal, 1008 policy, 1011 error) and a reason.
  virtual void Close(uint16_t code, std::string reason) = 0;
  // Calls `ready` once at most `depth` messages wait in the queue (at once when that holds
  // already), or once the connection has ended. A producer with more to send than the queue holds
  // (a watch replay) paces itself with it. One waiter at a time: a new one replaces the old.
  // `ready` runs on the connection's strand and must not block.
  virtual void WhenQueueBelow(size_t depth, std::function<void()> ready) = 0;
  virtual const std::string& remote() const = 0;
};

// The start of the close reason of a connection dropped because its queue was full.
inline constexpr std::string_view kSlowConsumerReason = "slow consumer";

struct WsHandlers {
  // A text message from the peer. Runs on the connection's strand; must not block.
  std::function<void(std::string message)> on_message;
  // The connection ended (either side, or an error); called once.
  std::function<void(std::string reason)> on_close;
};

// Decides on an upgrade request: a response refuses it (401, 403, 404, ...), handlers accept it.
// `connection` may be used (and kept) by the handlers; messages sent before the handshake completes
// are delivered after it.
using WsUpgradeHandler = std::function<std::variant<HttpResponse, WsHandlers>(
    const HttpRequest& request, std::shared_ptr<WsConnection> connection)>;

struct ServerLimits {
  size_t max_body_bytes = 8 << 20;
  size_t max_header_bytes = 16 << 10;
  // To read a whole request (header and body) from its first byte, and to write its answer.
  Duration request_timeout = Seconds(30);
  Duration idle_timeout = Seconds(120);  // Between requests on a keep-alive connection.
  size_t max_connections = 10'000;
  size_t ws_max_message_bytes = 1 << 20;
  size_t ws_queue_limit = 4096;  // Messages queued per WebSocket before it is dropped.
  // An idle WebSocket is pinged this often; a peer that does not answer within another period is
  // dropped.
  Duration ws_ping_interval = Seconds(20);
};

struct TlsFiles {
  std::string cert;  // PEM certificate chain.
  std::string key;   // PEM private key.
  // PEM CA certificates: clients may present a certificate signed by one of them (mutual TLS);
  // a certificate that does not verify ends the handshake. Empty: clients are not asked.
  std::string client_ca;
};

}  // namespace gsched::net
