// Internal to gsched_net: the blocking clients' connection (plain or TLS, its own I/O
// context) and their timed run of one operation, shared by http_client.cpp and ws_client.cpp.
// Not for use outside scheduler/net.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "scheduler/net/http_client.h"

namespace gsched::net::detail {

using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

// Runs one asynchronous operation on `ioc` for at most `timeout`; on expiry `cancel` closes the
// connection and the operation completes with `timed_out`.
boost::system::error_code RunFor(
    boost::asio::io_context& ioc, Duration timeout,
    const std::function<void(std::function<void(boost::system::error_code)>)>& start,
    const std::function<void()>& cancel);

Status NetError(std::string_view what, const ServerUrl& url, boost::system::error_code ec);

// One connection, plain or TLS, with its own I/O context.
struct Connection {
  boost::asio::io_context ioc;
  ServerUrl url;
  ClientOptions options;
  std::optional<boost::asio::ssl::context> ssl;
  std::unique_ptr<boost::beast::tcp_stream> plain;
  std::unique_ptr<TlsStream> tls;

  boost::beast::tcp_stream& Lowest() { return tls ? boost::beast::get_lowest_layer(*tls) : *plain; }
  void Reset();
  // Resolves, connects and (for https) handshakes, within `options.timeout` each.
  Status Open();
  bool is_open() { return (plain || tls) && Lowest().socket().is_open(); }
};

}  // namespace gsched::net::detail
