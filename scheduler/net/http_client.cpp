#include "scheduler/net/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <functional>

namespace gsched::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

Result<ServerUrl> ParseServerUrl(std::string_view url) {
  ServerUrl out;
  std::string_view rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    out.tls = true;
    rest = url.substr(8);
  } else {
    return Status::InvalidArgument(
        "must start with http:// or https://, got '" + std::string(url) + "'", "server");
  }
  rest = rest.substr(0, rest.find('/'));
  size_t colon = rest.rfind(':');
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos)
      return Status::InvalidArgument("bad IPv6 host", "server");
    out.host = std::string(rest.substr(1, close - 1));
    colon = rest.find(':', close);
  } else {
    out.host = std::string(rest.substr(0, colon));
  }
  out.port = colon == std::string_view::npos ? (out.tls ? "443" : "80")
                                             : std::string(rest.substr(colon + 1));
  if (out.host.empty() || out.port.empty()) {
    return Status::InvalidArgument("missing host or port in '" + std::string(url) + "'", "server");
  }
  return out;
}

namespace {

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

// One connection, plain or TLS, with its own I/O context.
struct Connection {
  asio::io_context ioc;
  ServerUrl url;
  ClientOptions options;
  std::optional<asio::ssl::context> ssl;
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<TlsStream> tls;

  beast::tcp_stream& Lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
  void Reset() {
    if (plain || tls) {
      beast::error_code ignored;
      Lowest().socket().close(ignored);
    }
    plain.reset();
    tls.reset();
  }

  Status Open() {
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

  bool is_open() { return (plain || tls) && Lowest().socket().is_open(); }
};

}  // namespace

struct HttpClient::Impl {
  Connection conn;
  beast::flat_buffer buffer;
};

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::~HttpClient() = default;

Result<std::unique_ptr<HttpClient>> HttpClient::Create(std::string_view url,
                                                       ClientOptions options) {
  ASSIGN_OR_RETURN(ServerUrl parsed, ParseServerUrl(url));
  auto impl = std::make_unique<Impl>();
  impl->conn.url = std::move(parsed);
  impl->conn.options = std::move(options);
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(impl)));
}

Result<HttpResponse> HttpClient::Request(std::string_view method, std::string_view target,
                                         std::string body, std::string_view content_type) {
  Connection& c = impl_->conn;
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, c.url.host);
  req.set(http::field::user_agent, "gsched");
  if (!c.options.token.empty())
    req.set(http::field::authorization, "Bearer " + c.options.token);
  if (!body.empty() || method == "POST" || method == "PUT") {
    req.set(http::field::content_type, content_type);
  }
  req.body() = std::move(body);
  req.keep_alive(true);
  req.prepare_payload();

  // A kept-alive connection may have been closed by the server meanwhile: retry once on a fresh
  // connection when the failure shows the request was not read (write failed, or the connection
  // ended before any byte of an answer).
  for (int round = 0; round < 2; ++round) {
    bool reused = c.is_open();
    if (!reused)
      RETURN_IF_ERROR(c.Open());
    beast::error_code ec = RunFor(
        c.ioc, c.options.timeout,
        [&](auto done) {
          auto on_write = [done](beast::error_code e, size_t) { done(e); };
          if (c.tls) {
            http::async_write(*c.tls, req, on_write);
          } else {
            http::async_write(*c.plain, req, on_write);
          }
        },
        [&] { c.Reset(); });
    if (ec) {
      c.Reset();
      if (reused && round == 0)
        continue;
      return NetError("send to", c.url, ec);
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 << 20);
    ec = RunFor(
        c.ioc, c.options.timeout,
        [&](auto done) {
          auto on_read = [done](beast::error_code e, size_t) { done(e); };
          if (c.tls) {
            http::async_read(*c.tls, impl_->buffer, parser, on_read);
          } else {
            http::async_read(*c.plain, impl_->buffer, parser, on_read);
          }
        },
        [&] { c.Reset(); });
    if (ec) {
      c.Reset();
      impl_->buffer.clear();
      if (reused && round == 0 &&
          (ec == http::error::end_of_stream || ec == asio::error::connection_reset)) {
        continue;
      }
      return NetError("read from", c.url, ec);
    }
    auto res = parser.release();
    HttpResponse out;
    out.status = static_cast<int>(res.result_int());
    out.content_type = std::string(res[http::field::content_type]);
    out.body = std::move(res.body());
    for (const auto& f : res) {
      out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    }
    if (!res.keep_alive())
      c.Reset();
    return out;
  }
  return Status::Unavailable("unreachable");
}

struct WsClient::Impl {
  Connection conn;
  std::unique_ptr<websocket::stream<beast::tcp_stream>> ws_plain;
  std::unique_ptr<websocket::stream<TlsStream>> ws_tls;
  beast::flat_buffer buffer;
  bool closed = false;
  std::string close_reason;

  template <typename F>
  auto With(F&& f) {
    return ws_tls ? f(*ws_tls) : f(*ws_plain);
  }
  void Abort() {
    beast::error_code ignored;
    With([&](auto& ws) { beast::get_lowest_layer(ws).socket().close(ignored); });
  }
};

WsClient::WsClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WsClient::~WsClient() {
  Close();
}

Result<std::unique_ptr<WsClient>> WsClient::Connect(std::string_view url, std::string_view target,
                                                    ClientOptions options) {
  ASSIGN_OR_RETURN(ServerUrl parsed, ParseServerUrl(url));
  auto impl = std::make_unique<Impl>();
  Connection& c = impl->conn;
  c.url = std::move(parsed);
  c.options = std::move(options);
  RETURN_IF_ERROR(c.Open());
  if (c.tls) {
    impl->ws_tls = std::make_unique<websocket::stream<TlsStream>>(std::move(*c.tls));
  } else {
    impl->ws_plain = std::make_unique<websocket::stream<beast::tcp_stream>>(std::move(*c.plain));
  }
  c.plain.reset();
  c.tls.reset();
  websocket::response_type res;
  std::string host = c.url.host + ":" + c.url.port;
  std::string token = c.options.token;
  beast::error_code ec = RunFor(
      c.ioc, c.options.timeout,
      [&](auto done) {
        impl->With([&](auto& ws) {
          ws.read_message_max(64 << 20);
          ws.set_option(websocket::stream_base::decorator([token](websocket::request_type& req) {
            req.set(http::field::user_agent, "gsched");
            if (!token.empty())
              req.set(http::field::authorization, "Bearer " + token);
          }));
          ws.async_handshake(res, host, target, done);
        });
      },
      [&] { impl->Abort(); });
  if (ec) {
    if (ec == websocket::error::upgrade_declined) {
      Status s(res.result_int() == 401   ? StatusCode::kUnauthenticated
               : res.result_int() == 403 ? StatusCode::kPermissionDenied
               : res.result_int() == 404 ? StatusCode::kNotFound
                                         : StatusCode::kInvalidArgument,
               "upgrade refused with " + std::to_string(res.result_int()) + ": " + res.body());
      return s;
    }
    return NetError("WebSocket handshake with", c.url, ec);
  }
  return std::unique_ptr<WsClient>(new WsClient(std::move(impl)));
}

Result<std::string> WsClient::Read(Duration timeout) {
  if (impl_->closed)
    return Status::Unavailable("closed: " + impl_->close_reason);
  beast::error_code ec = RunFor(
      impl_->conn.ioc, timeout,
      [&](auto done) {
        impl_->With([&](auto& ws) {
          ws.async_read(impl_->buffer, [done](beast::error_code e, size_t) { done(e); });
        });
      },
      [&] { impl_->Abort(); });
  if (ec == asio::error::timed_out) {
    impl_->closed = true;
    impl_->close_reason = "read timed out";
    return Status(StatusCode::kDeadlineExceeded, "no message within " + FormatDuration(timeout));
  }
  if (ec) {
    impl_->closed = true;
    impl_->close_reason =
        impl_->With([](auto& ws) { return std::string(ws.reason().reason.c_str()); });
    if (impl_->close_reason.empty())
      impl_->close_reason = ec.message();
    return Status::Unavailable("closed: " + impl_->close_reason);
  }
  std::string msg = beast::buffers_to_string(impl_->buffer.data());
  impl_->buffer.consume(impl_->buffer.size());
  return msg;
}

Status WsClient::Write(std::string_view text) {
  if (impl_->closed)
    return Status::Unavailable("closed: " + impl_->close_reason);
  beast::error_code ec = RunFor(
      impl_->conn.ioc, impl_->conn.options.timeout,
      [&](auto done) {
        impl_->With([&](auto& ws) {
          ws.text(true);
          ws.async_write(asio::buffer(text), [done](beast::error_code e, size_t) { done(e); });
        });
      },
      [&] { impl_->Abort(); });
  if (ec) {
    impl_->closed = true;
    return NetError("write to", impl_->conn.url, ec);
  }
  return Status::Ok();
}

void WsClient::Close() {
  if (!impl_ || impl_->closed)
    return;
  impl_->closed = true;
  RunFor(
      impl_->conn.ioc, Seconds(2),
      [&](auto done) {
        impl_->With([&](auto& ws) { ws.async_close(websocket::close_code::normal, done); });
      },
      [&] { impl_->Abort(); })
      .clear();
}

}  // namespace gsched::net
