// `WsClient`: the blocking WebSocket client (tests, the CLI's watch).
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "scheduler/net/client_connection.h"
#include "scheduler/net/http_client.h"

namespace gsched::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using detail::Connection;
using detail::NetError;
using detail::RunFor;
using detail::TlsStream;

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
  ASSIGN_OR_RETURN(Opened opened, Open(url, target, std::move(options)));
  if (auto* client = std::get_if<std::unique_ptr<WsClient>>(&opened))
    return std::move(*client);
  const HttpResponse& res = std::get<HttpResponse>(opened);
  return Status(res.status == 401   ? StatusCode::kUnauthenticated
                : res.status == 403 ? StatusCode::kPermissionDenied
                : res.status == 404 ? StatusCode::kNotFound
                                    : StatusCode::kInvalidArgument,
                "upgrade refused with " + std::to_string(res.status) + ": " + res.body);
}

Result<WsClient::Opened> WsClient::Open(std::string_view url, std::string_view target,
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
      HttpResponse answer;
      answer.status = static_cast<int>(res.result_int());
      answer.content_type = std::string(res[http::field::content_type]);
      answer.body = std::move(res.body());
      for (const auto& f : res)
        answer.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
      return Opened(std::move(answer));
    }
    return NetError("WebSocket handshake with", c.url, ec);
  }
  return Opened(std::unique_ptr<WsClient>(new WsClient(std::move(impl))));
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
