#include "scheduler/net/client_connection.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>

namespace gsched::net::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

// Runs one asynchronous operation on `ioc` for at most `timeout`; on expiry `cancel` closes the
// connection and the operation completes with `timed_out`.
beast::error_code RunFor(asio::io_context& ioc, Duration timeout,
                         const std::function<void(std::function<void(beast::error_code)>)>& start,
                         const std::function<void()>& cancel) {
  std::optional<beast::error_code> result;
  start([&](beast::error_code ec) { result = ec; });
  ioc.restart();
  ioc.run_for(timeout);
  if (!result) {
    cancel();
    ioc.restart();
    ioc.run();
    return asio::error::timed_out;
  }
  return *result;
}

Status NetError(std::string_view what, const ServerUrl& url, beast::error_code ec) {
  if (ec == asio::error::timed_out) {
    return {StatusCode::kDeadlineExceeded,
            std::string(what) + " " + url.host + ":" + url.port + ": timed out"};
  }
  return Status::Unavailable(std::string(what) + " " + url.host + ":" + url.port + ": " +
                             ec.message());
}

void Connection::Reset() {
  if (plain || tls) {
    beast::error_code ignored;
    Lowest().socket().close(ignored);
  }
  plain.reset();
  tls.reset();
}

Status Connection::Open() {
  Reset();
  if (url.tls && !ssl) {
    ssl.emplace(asio::ssl::context::tls_client);
    beast::error_code ec;
    if (options.ca_file.empty()) {
      ssl->set_default_verify_paths(ec);
    } else {
      ssl->load_verify_file(options.ca_file, ec);
    }
    if (ec)
      return Status::InvalidArgument("cannot load CA file: " + ec.message(), "ca_file");
    ssl->set_verify_mode(asio::ssl::verify_peer);
  }
  tcp::resolver resolver(ioc);
  beast::error_code ec;
  auto endpoints = resolver.resolve(url.host, url.port, ec);
  if (ec)
    return NetError("resolve", url, ec);
  if (url.tls) {
    tls = std::make_unique<TlsStream>(ioc, *ssl);
    if (!SSL_set_tlsext_host_name(tls->native_handle(), url.host.c_str())) {
      return Status::Unavailable("cannot set TLS host name");
    }
    tls->set_verify_callback(asio::ssl::host_name_verification(url.host));
  } else {
    plain = std::make_unique<beast::tcp_stream>(ioc);
  }
  ec = RunFor(
      ioc, options.timeout,
      [&](auto done) {
        Lowest().async_connect(endpoints,
                               [done](beast::error_code e, const tcp::endpoint&) { done(e); });
      },
      [&] { Reset(); });
  if (ec) {
    Reset();
    return NetError("connect", url, ec);
  }
  beast::error_code ignored;
  Lowest().socket().set_option(tcp::no_delay(true), ignored);
  if (tls) {
    ec = RunFor(
        ioc, options.timeout,
        [&](auto done) { tls->async_handshake(asio::ssl::stream_base::client, done); },
        [&] { Reset(); });
    if (ec) {
      Reset();
      return NetError("TLS handshake with", url, ec);
    }
  }
  return Status::Ok();
}

}  // namespace gsched::net::detail
