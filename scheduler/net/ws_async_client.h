// `AsyncWsClient`: one outgoing WebSocket connection driven by a caller-provided `io_context`, for
// programs that hold many connections on one thread (`gsched-worker --simulate`, thousands of
// virtual nodes) and for the worker agent's scheduler link.
//
// Callbacks run on the io_context's thread(s): `on_open` once the handshake succeeded,
// `on_message` per text message, `on_close` exactly once when the connection ends (also when it
// never opened). When the server answered the upgrade with an HTTP error (a 503 from a standby
// scheduler, a 403), `on_refused` gets that answer first, headers included. Writes go through a
// bounded queue with one write in flight; when the queue is full the connection is closed with
// "send queue full" rather than growing without bound.
//
// `http://` URLs speak plain `ws://`; `https://` URLs speak `wss://`: TLS 1.2+ with the server's
// certificate verified against `ca_file` (else the system's store) and its name checked against
// the URL's host, as the blocking clients do.
//
// Threading: `Send` and `Close` may be called from any thread (they post to the io_context).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "scheduler/common/clock.h"
#include "scheduler/common/status.h"
#include "scheduler/net/http_types.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace gsched::net {

struct AsyncWsCallbacks {
  std::function<void()> on_open;
  std::function<void(std::string message)> on_message;
  std::function<void(std::string reason)> on_close;
  // The server refused the upgrade with this answer (status, headers, body); `on_close` follows.
  std::function<void(const HttpResponse& answer)> on_refused;
};

struct AsyncWsOptions {
  std::string token;  // "Authorization: Bearer TOKEN" when not empty.
  // For https URLs: the CA certificates (PEM) that sign the server's; empty: the system's store.
  std::string ca_file;
  // For https URLs, mutual TLS: this client's certificate chain and private key (PEM); empty:
  // none is presented.
  std::string cert_file;
  std::string key_file;
  Duration connect_timeout = Seconds(10);
  size_t queue_limit = 4096;
  size_t max_message_bytes = 16 << 20;
};

class AsyncWsClient {
 public:
  // Starts connecting to `url` (http://host:port or https://host:port) and upgrading at
  // `target`. A bad URL or an unreadable `ca_file` is reported at once; connection and
  // certificate errors arrive through `on_close`.
  static Result<std::shared_ptr<AsyncWsClient>> Connect(boost::asio::io_context& ioc,
                                                        std::string_view url,
                                                        std::string_view target,
                                                        AsyncWsOptions options,
                                                        AsyncWsCallbacks callbacks);
  virtual ~AsyncWsClient() = default;
  // Queues a text message (sent once open). Returns false when the connection is closing or
  // closed.
  virtual bool Send(std::string text) = 0;
  // Closes normally; `on_close` follows.
  virtual void Close() = 0;
};

}  // namespace gsched::net
