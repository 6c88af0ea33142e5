// Internal to gsched_net: the HTTP and WebSocket sessions of `HttpServer`, templates over the
// stream type. Included by http_session_plain.cpp and http_session_tls.cpp only, each of which
// instantiates them for one stream type.
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/url/parse.hpp>
#include <deque>

#include "scheduler/net/http_server_impl.h"

namespace gsched::net::detail {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

std::string ErrorJson(std::string_view code, std::string_view message) {
  return R"({"error":{"code":")" + std::string(code) + R"(","message":")" + std::string(message) +
         R"("}})";
}

// Converts a Beast request; fails on a target that is not a valid origin-form URL.
// The names of a TLS client's verified certificate: its DNS subject alternative names, else its
// common name. Empty without a certificate.
inline std::vector<std::string> ClientCertificateNames(SSL* ssl) {
  std::vector<std::string> names;
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (!cert)
    return names;
  if (SSL_get_verify_result(ssl) == X509_V_OK) {
    auto* sans =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
      if (n->type == GEN_DNS) {
        const auto* data = ASN1_STRING_get0_data(n->d.dNSName);
        names.emplace_back(reinterpret_cast<const char*>(data),
                           static_cast<size_t>(ASN1_STRING_length(n->d.dNSName)));
      }
    }
    GENERAL_NAMES_free(sans);
    if (names.empty()) {
      char cn[256] = {};
      if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0)
        names.emplace_back(cn);
    }
  }
  X509_free(cert);
  return names;
}

Result<HttpRequest> ToRequest(http::request<http::string_body>&& req, const std::string& remote) {
  HttpRequest r;
  r.method = std::string(req.method_string());
  r.target = std::string(req.target());
  auto url = boost::urls::parse_origin_form(r.target);
  if (!url)
    return Status::InvalidArgument("bad request target");
  r.path = url->path();
  for (auto param : url->params())
    r.query[param.key] = param.value;
  for (const auto& field : req) {
    std::string name(field.name_string());
    for (char& c : name)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[std::move(name)] = std::string(field.value());
  }
  r.body = std::move(req.body());
  r.remote = remote;
  return r;
}

http::response<http::string_body> ToBeast(HttpResponse&& resp, unsigned version, bool keep_alive) {
  http::response<http::string_body> res{static_cast<http::status>(resp.status), version};
  res.set(http::field::server, "gsched");
  res.set(http::field::content_type, resp.content_type);
  for (auto& [k, v] : resp.headers)
    res.set(k, v);
  res.body() = std::move(resp.body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

// Calls the application's handler and resumes the coroutine with its response, on the session's
// executor, whichever thread answers.
template <typename Token>
auto AsyncHandle(const HttpHandler& handler, HttpRequest request, Token&& token) {
  return asio::async_initiate<Token, void(HttpResponse)>(
      [&handler](auto completion, HttpRequest req) {
        auto shared = std::make_shared<decltype(completion)>(std::move(completion));
        auto respond = [shared](HttpResponse resp) {
          auto ex = asio::get_associated_executor(*shared);
          asio::post(ex,
                     [shared, resp = std::move(resp)]() mutable { (*shared)(std::move(resp)); });
        };
        try {
          handler(std::move(req), respond);
        } catch (const std::exception& e) {
          spdlog::error("request handler threw: {}", e.what());
          respond({500, ErrorJson("internal", "internal error")});
        }
      },
      token, std::move(request));
}

template <typename Stream>
void CloseLowest(Stream& s) {
  beast::get_lowest_layer(s).close();
}

template <typename Stream>
class WsSession final : public WsConnection,
                        public std::enable_shared_from_this<WsSession<Stream>> {
 public:
  WsSession(std::shared_ptr<HttpServer::Impl> impl, Stream&& stream, std::string remote,
            ConnectionSlot slot)
      : impl_(std::move(impl)),
        ws_(std::move(stream)),
        remote_(std::move(remote)),
        slot_(std::move(slot)),
        drop_timer_(ws_.get_executor()) {
    impl_->ws_open.fetch_add(1, std::memory_order_relaxed);
  }
  ~WsSession() override {
    impl_->ws_queued.fetch_sub(static_cast<int64_t>(queue_.size()), std::memory_order_relaxed);
    impl_->ws_open.fetch_sub(1, std::memory_order_relaxed);
  }

  using WsConnection::Send;

  void Start(http::request<http::string_body> req, WsHandlers handlers) {
    handlers_ = std::move(handlers);
    closer_.emplace(impl_, beast::get_lowest_layer(ws_).socket(), ws_.get_executor());
    beast::get_lowest_layer(ws_).expires_never();
    // Pings after `ws_ping_interval` of silence (Beast pings at half the idle timeout), and a peer
    // that does not answer within another interval is dropped.
    auto timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
    timeouts.idle_timeout = 2 * impl_->options.limits.ws_ping_interval;
    timeouts.keep_alive_pings = true;
    ws_.set_option(timeouts);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "gsched"); }));
    ws_.read_message_max(impl_->options.limits.ws_max_message_bytes);
    ws_.async_accept(req,
                     beast::bind_front_handler(&WsSession::OnAccept, this->shared_from_this()));
  }

  bool Send(SharedText text) override {
    if (finished_.load(std::memory_order_acquire))
      return false;
    asio::post(ws_.get_executor(),
               [self = this->shared_from_this(), t = std::move(text)]() mutable {
                 self->Enqueue(std::move(t));
               });
    return true;
  }

  void Close(uint16_t code, std::string reason) override {
    asio::post(ws_.get_executor(), [self = this->shared_from_this(), code, r = std::move(reason)] {
      self->BeginClose(code, r);
    });
  }

  void WhenQueueBelow(size_t depth, std::function<void()> ready) override {
    asio::post(ws_.get_executor(),
               [self = this->shared_from_this(), depth, ready = std::move(ready)]() mutable {
                 if (self->finished_ || self->queue_.size() <= depth)
                   return ready();
                 self->drain_depth_ = depth;
                 self->drain_waiter_ = std::move(ready);
               });
  }

  const std::string& remote() const override { return remote_; }

  // Answers the upgrade request with `resp` instead of accepting it, then closes.
  void RefuseUpgrade(HttpResponse resp, unsigned version) {
    finished_ = true;
    auto res = std::make_shared<http::response<http::string_body>>(
        ToBeast(std::move(resp), version, false));
    http::async_write(ws_.next_layer(), *res,
                      [self = this->shared_from_this(), res](beast::error_code, size_t) {
                        CloseLowest(self->ws_.next_layer());
                      });
  }

 private:
  void OnAccept(beast::error_code ec) {
    if (ec)
      return Finish("handshake failed: " + ec.message());
    accepted_ = true;
    DoRead();
    if (!queue_.empty())
      DoWrite();
    else if (pending_close_)
      DoClose();
  }

  void DoRead() {
    ws_.async_read(buffer_,
                   beast::bind_front_handler(&WsSession::OnRead, this->shared_from_this()));
  }

  void OnRead(beast::error_code ec, size_t) {
    if (ec) {
      if (ec == websocket::error::closed)
        return Finish("closed by peer");
      if (ec == websocket::error::message_too_big) {
        // Beast already failed the connection with 1009; the socket is done.
        return Finish("message too big");
      }
      return Finish(ec.message());
    }
    if (!ws_.got_text()) {
      buffer_.consume(buffer_.size());
      BeginClose(static_cast<uint16_t>(websocket::close_code::bad_payload), "text messages only");
      return;
    }
    std::string message = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    if (handlers_.on_message && !closing_)
      handlers_.on_message(std::move(message));
    DoRead();
  }

  void Enqueue(SharedText text) {
    if (closing_ || finished_)
      return;
    if (queue_.size() >= impl_->options.limits.ws_queue_limit) {
      DropSlowConsumer();
      return;
    }
    queue_.push_back(std::move(text));
    impl_->ws_queued.fetch_add(1, std::memory_order_relaxed);
    if (accepted_ && !writing_)
      DoWrite();
  }

  void DoWrite() {
    writing_ = true;
    ws_.text(true);
    ws_.async_write(asio::buffer(*queue_.front()),
                    beast::bind_front_handler(&WsSession::OnWrite, this->shared_from_this()));
  }

  void OnWrite(beast::error_code ec, size_t) {
    writing_ = false;
    if (ec)
      return Finish(ec.message());
    if (!queue_.empty()) {
      queue_.pop_front();
      impl_->ws_queued.fetch_sub(1, std::memory_order_relaxed);
    }
    if (drain_waiter_ && queue_.size() <= drain_depth_) {
      auto ready = std::move(drain_waiter_);
      drain_waiter_ = nullptr;
      ready();
    }
    if (!queue_.empty())
      return DoWrite();
    if (pending_close_)
      DoClose();
  }

  // The queue is full: free it at once, so that the memory a slow peer holds stays bounded, and
  // close with a reason. For the application the connection ends now; the close frame can only
  // follow the write in flight, and a peer that does not read within `kSlowCloseGrace` never sees
  // it and loses the socket instead.
  void DropSlowConsumer() {
    static constexpr auto kSlowCloseGrace = std::chrono::seconds(10);
    std::string reason = std::string(kSlowConsumerReason) + ": queue of " +
                         std::to_string(impl_->options.limits.ws_queue_limit) + " messages full";
    // The front message may be the one being written: its buffer must outlive the write.
    size_t kept = writing_ ? 1 : 0;
    impl_->ws_queued.fetch_sub(static_cast<int64_t>(queue_.size() - kept),
                               std::memory_order_relaxed);
    if (writing_) {
      queue_.erase(queue_.begin() + 1, queue_.end());
    } else {
      queue_.clear();
    }
    BeginClose(static_cast<uint16_t>(websocket::close_code::policy_error), reason);
    Finish(reason);
    // Armed after `Finish`, which cancels it; the close handshake's end cancels it too.
    drop_timer_.expires_after(kSlowCloseGrace);
    drop_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (!ec)
        CloseLowest(self->ws_.next_layer());
    });
    // Counted after the reason is set: whoever sees the count sees a closing connection.
    impl_->ws_dropped_slow.fetch_add(1);
  }

  void BeginClose(uint16_t code, const std::string& reason) {
    if (closing_ || finished_)
      return;
    closing_ = true;
    close_reason_.code = code;
    close_reason_.reason = reason.substr(0, 120);
    if (!accepted_) {
      // Closed while the handshake is under way (a feed whose token turns out to be revoked):
      // the close frame follows the handshake, so that the peer learns why. A handshake that
      // never completes times out and ends the connection.
      pending_close_ = true;
      return;
    }
    // Deliver what is queued, then close.
    if (writing_ || !queue_.empty()) {
      pending_close_ = true;
      if (!writing_)
        DoWrite();
      return;
    }
    DoClose();
  }

  void DoClose() {
    pending_close_ = false;
    ws_.async_close(close_reason_, [self = this->shared_from_this()](beast::error_code) {
      self->drop_timer_.cancel();
      self->Finish(std::string(self->close_reason_.reason.c_str()));
    });
  }

  void Finish(std::string reason) {
    if (finished_.exchange(true))
      return;
    drop_timer_.cancel();
    if (handlers_.on_close)
      handlers_.on_close(std::move(reason));
    // Break the cycle between the application's handlers and this connection.
    handlers_ = {};
    if (drain_waiter_) {
      auto ready = std::move(drain_waiter_);
      drain_waiter_ = nullptr;
      ready();
    }
  }

  std::shared_ptr<HttpServer::Impl> impl_;
  websocket::stream<Stream> ws_;
  std::string remote_;
  ConnectionSlot slot_;
  WsHandlers handlers_;
  beast::flat_buffer buffer_;
  std::deque<SharedText> queue_;
  bool accepted_ = false;
  bool writing_ = false;
  bool closing_ = false;
  bool pending_close_ = false;
  std::optional<CloserGuard<tcp::socket, asio::any_io_executor>> closer_;
  websocket::close_reason close_reason_;
  std::atomic<bool> finished_{false};
  asio::steady_timer drop_timer_;
  std::function<void()> drain_waiter_;
  size_t drain_depth_ = 0;
};

template <typename Stream>
asio::awaitable<void> WriteError(Stream& stream, unsigned version, int status,
                                 std::string_view code, std::string_view message) {
  HttpResponse resp{status, ErrorJson(code, message)};
  auto res = ToBeast(std::move(resp), version, false);
  co_await http::async_write(stream, res, kTuple);
}

// Closes after an error answer without losing it: a peer still sending its (refused) body would
// otherwise get a reset that can discard the answer before it is read. Reads and drops what comes
// for a bounded time and size.
template <typename Stream>
asio::awaitable<void> LingeringClose(Stream& stream) {
  if constexpr (std::is_same_v<Stream, PlainStream>) {
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream.expires_after(std::chrono::seconds(2));
    char scratch[16384];
    size_t drained = 0;
    while (drained < (64u << 20)) {
      auto [ec, n] = co_await stream.async_read_some(asio::buffer(scratch), kTuple);
      if (ec)
        break;
      drained += n;
    }
  }
  co_return;
}

template <typename Stream>
asio::awaitable<void> HttpSession(std::shared_ptr<HttpServer::Impl> impl, Stream stream,
                                  std::string remote, ConnectionSlot slot) {
  const ServerLimits& limits = impl->options.limits;
  // `Stop` closes the connection, whatever the session waits for.
  CloserGuard closer(impl, beast::get_lowest_layer(stream).socket(), stream.get_executor());
  beast::flat_buffer buffer;
  std::vector<std::string> client_names;
  if constexpr (std::is_same_v<Stream, TlsStream>) {
    beast::get_lowest_layer(stream).expires_after(limits.request_timeout);
    auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kTuple);
    if (ec)
      co_return;
    client_names = ClientCertificateNames(stream.native_handle());
  }
  // A whole request, its header included, must arrive within `request_timeout` of its first byte
  // (of the accept, for a connection's first request): a client that sends half a header slowly
  // holds its connection slot that long, not `idle_timeout`. Only the wait between requests on a
  // keep-alive connection is `idle_timeout`.
  bool first_request = true;
  while (!impl->stopped.load(std::memory_order_relaxed)) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<uint32_t>(limits.max_header_bytes));
    parser.body_limit(limits.max_body_bytes);
    if (!first_request && buffer.size() == 0) {
      beast::get_lowest_layer(stream).expires_after(limits.idle_timeout);
      auto [iec, in] = co_await stream.async_read_some(buffer.prepare(4096), kTuple);
      if (iec)
        break;
      buffer.commit(in);
    }
    first_request = false;
    beast::get_lowest_layer(stream).expires_after(limits.request_timeout);
    auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, kTuple);
    if (ec == http::error::header_limit) {
      co_await WriteError(
          stream, 11, 431, "header_too_large",
          "request headers exceed " + std::to_string(limits.max_header_bytes) + " bytes");
      co_await LingeringClose(stream);
      co_return;
    }
    // Beast refuses a declared Content-Length over the body limit while reading the header.
    if (ec && ec != http::error::body_limit)
      break;
    unsigned version = parser.get().version();
    if (ec == http::error::body_limit ||
        (parser.content_length() && *parser.content_length() > limits.max_body_bytes)) {
      co_await WriteError(
          stream, version, 413, "payload_too_large",
          "request body exceeds " + std::to_string(limits.max_body_bytes) + " bytes");
      co_await LingeringClose(stream);
      co_return;
    }
    if (parser.get()[http::field::expect] == "100-continue") {
      http::response<http::empty_body> cont{http::status::continue_, version};
      auto [wec, wn] = co_await http::async_write(stream, cont, kTuple);
      if (wec)
        break;
    }
    if (!parser.is_done()) {
      auto [rec, rn] = co_await http::async_read(stream, buffer, parser, kTuple);
      if (rec == http::error::body_limit) {
        co_await WriteError(
            stream, version, 413, "payload_too_large",
            "request body exceeds " + std::to_string(limits.max_body_bytes) + " bytes");
        co_await LingeringClose(stream);
        co_return;
      }
      if (rec)
        break;
    }
    impl->requests_total.fetch_add(1, std::memory_order_relaxed);
    http::request<http::string_body> req = parser.release();
    bool keep_alive = req.keep_alive();

    if (websocket::is_upgrade(req)) {
      auto request = ToRequest(http::request<http::string_body>(req), remote);
      if (request.ok()) {
        request->client_names = client_names;
        request->connection = slot.id();
      }
      if (!request.ok()) {
        co_await WriteError(stream, version, 400, "invalid_argument", request.status().message());
        break;
      }
      auto session =
          std::make_shared<WsSession<Stream>>(impl, std::move(stream), remote, std::move(slot));
      auto decision = impl->ws_handler ? impl->ws_handler(*request, session)
                                       : std::variant<HttpResponse, WsHandlers>(HttpResponse{
                                             404, ErrorJson("not_found", "no WebSocket here")});
      if (auto* refused = std::get_if<HttpResponse>(&decision)) {
        // The stream now belongs to the session; refuse through it and let it close.
        session->RefuseUpgrade(std::move(*refused), version);
        co_return;
      }
      session->Start(std::move(req), std::get<WsHandlers>(std::move(decision)));
      co_return;
    }

    auto request = ToRequest(std::move(req), remote);
    if (request.ok()) {
      request->client_names = client_names;
      request->connection = slot.id();
    }
    HttpResponse resp;
    if (!request.ok()) {
      resp = {400, ErrorJson("invalid_argument", request.status().message())};
    } else {
      resp =
          co_await AsyncHandle(impl->http_handler, std::move(request).value(), asio::use_awaitable);
    }
    keep_alive = keep_alive && !resp.close;
    auto res = ToBeast(std::move(resp), version, keep_alive);
    // The answer gets its own `request_timeout`: the time the handler took is not the client's.
    beast::get_lowest_layer(stream).expires_after(limits.request_timeout);
    auto [wec, wn] = co_await http::async_write(stream, res, kTuple);
    if (wec || !keep_alive)
      break;
  }
  beast::error_code ignored;
  if constexpr (std::is_same_v<Stream, TlsStream>) {
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
    co_await stream.async_shutdown(kTuple);
  } else {
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }
}

// Logs a session that ended by an exception.
inline void OnSessionDone(std::exception_ptr e) {
  if (!e)
    return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("session ended by exception: {}", ex.what());
  }
}

}  // namespace
}  // namespace gsched::net::detail
