#include "scheduler/net/http_client.h"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "scheduler/net/client_connection.h"

namespace gsched::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using detail::Connection;
using detail::NetError;
using detail::RunFor;
using detail::TlsStream;

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

struct HttpClient::Impl {
  Connection conn;
  beast::flat_buffer buffer;
  bool sent = false;  // The last request was written whole.
};

bool HttpClient::MayHaveBeenSent() const {
  return impl_->sent;
}

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
    impl_->sent = false;
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
    impl_->sent = true;
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

}  // namespace gsched::net
