#include "scheduler/net/ws_async_client.h"

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <deque>
#include <type_traits>

#include "scheduler/net/http_client.h"

namespace gsched::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// The Beast websocket client example's shape, with a write queue; `Stream` is the plain or the
// TLS stream under the WebSocket.
template <class Stream>
class Session final : public AsyncWsClient, public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  // `ssl` is used (and kept alive) for TLS sessions only.
  Session(asio::io_context& ioc, ServerUrl url, std::string target, AsyncWsOptions options,
          AsyncWsCallbacks callbacks, std::shared_ptr<asio::ssl::context> ssl)
      : ioc_(ioc),
        resolver_(ioc),
        ssl_(std::move(ssl)),
        ws_(MakeStream(ioc, ssl_.get())),
        url_(std::move(url)),
        target_(std::move(target)),
        options_(std::move(options)),
        callbacks_(std::move(callbacks)) {}

  void Start() {
    if constexpr (kTls) {
      // SNI, and the certificate must name the host we asked for.
      if (!SSL_set_tlsext_host_name(ws_.next_layer().native_handle(), url_.host.c_str()))
        return Fail("cannot set the TLS host name");
      ws_.next_layer().set_verify_callback(asio::ssl::host_name_verification(url_.host));
    }
    resolver_.async_resolve(url_.host, url_.port,
                            [self = this->shared_from_this()](beast::error_code ec,
                                                              tcp::resolver::results_type results) {
                              self->OnResolve(ec, std::move(results));
                            });
  }

  bool Send(std::string text) override {
    if (closing_.load())
      return false;
    asio::post(ioc_, [self = this->shared_from_this(), text = std::move(text)]() mutable {
      self->DoSend(std::move(text));
    });
    return true;
  }

  void Close() override {
    if (closing_.exchange(true))
      return;
    asio::post(ioc_, [self = this->shared_from_this()] { self->DoClose(); });
  }

 private:
  void OnResolve(beast::error_code ec, tcp::resolver::results_type results) {
    if (ec)
      return Fail("resolve " + url_.host + ": " + ec.message());
    beast::get_lowest_layer(ws_).expires_after(options_.connect_timeout);
    beast::get_lowest_layer(ws_).async_connect(
        results, [self = this->shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
          self->OnConnect(ec);
        });
  }

  void OnConnect(beast::error_code ec) {
    if (ec)
      return Fail("connect to " + url_.host + ":" + url_.port + ": " + ec.message());
    if constexpr (kTls) {
      ws_.next_layer().async_handshake(
          asio::ssl::stream_base::client,
          [self = this->shared_from_this()](beast::error_code ec) { self->OnTlsHandshake(ec); });
    } else {
      Upgrade();
    }
  }

  void OnTlsHandshake(beast::error_code ec) {
    if (ec)
      return Fail("TLS handshake with " + url_.host + ":" + url_.port + ": " + ec.message());
    Upgrade();
  }

  void Upgrade() {
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout timeouts =
        websocket::stream_base::timeout::suggested(beast::role_type::client);
    timeouts.handshake_timeout = options_.connect_timeout;
    ws_.set_option(timeouts);
    ws_.read_message_max(options_.max_message_bytes);
    std::string token = options_.token;
    ws_.set_option(websocket::stream_base::decorator([token](websocket::request_type& req) {
      req.set(beast::http::field::user_agent, "gsched-worker");
      if (!token.empty())
        req.set(beast::http::field::authorization, "Bearer " + token);
    }));
    ws_.async_handshake(
        response_, url_.host + ":" + url_.port, target_,
        [self = this->shared_from_this()](beast::error_code ec) { self->OnHandshake(ec); });
  }

  void OnHandshake(beast::error_code ec) {
    if (ec) {
      std::string why = "upgrade at " + target_ + ": " + ec.message();
      if (response_.result_int() != 0 && response_.result_int() != 101) {
        if (callbacks_.on_refused) {
          HttpResponse answer;
          answer.status = static_cast<int>(response_.result_int());
          answer.body = response_.body();
          answer.content_type = std::string(response_[beast::http::field::content_type]);
          for (const auto& f : response_)
            answer.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
          callbacks_.on_refused(answer);
        }
        why += " (HTTP " + std::to_string(response_.result_int()) + ")";
        // The server's reason, when it sent one (its error body, printable bytes only).
        std::string reason;
        for (char c : std::string_view(response_.body()).substr(0, 512))
          reason += (c >= 0x20 && c < 0x7f) ? c : ' ';
        if (!reason.empty())
          why += ": " + reason;
      }
      return Fail(why);
    }
    open_ = true;
    ws_.text(true);
    if (callbacks_.on_open)
      callbacks_.on_open();
    if (closing_.load())
      return DoClose();
    Read();
    WriteNext();
  }

  void Read() {
    ws_.async_read(buffer_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      self->OnRead(ec);
    });
  }

  void OnRead(beast::error_code ec) {
    if (ec) {
      std::string reason = ws_.reason().reason.c_str();
      return Fail(reason.empty() ? ec.message() : reason);
    }
    std::string message = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    if (callbacks_.on_message)
      callbacks_.on_message(std::move(message));
    if (!done_)
      Read();
  }

  void DoSend(std::string text) {
    if (done_)
      return;
    if (queue_.size() >= options_.queue_limit) {
      Fail("send queue full");
      return;
    }
    queue_.push_back(std::move(text));
    if (open_ && !writing_)
      WriteNext();
  }

  void WriteNext() {
    if (writing_ || queue_.empty() || done_)
      return;
    writing_ = true;
    ws_.async_write(asio::buffer(queue_.front()),
                    [self = this->shared_from_this()](beast::error_code ec, size_t) {
                      self->writing_ = false;
                      if (ec)
                        return self->Fail("write: " + ec.message());
                      self->queue_.pop_front();
                      self->WriteNext();
                    });
  }

  void DoClose() {
    if (done_)
      return;
    if (!open_) {
      // Still connecting: cancel; the pending handler reports the end.
      resolver_.cancel();
      beast::get_lowest_layer(ws_).close();
      return Fail("closed by the client");
    }
    ws_.async_close(websocket::close_code::normal,
                    [self = this->shared_from_this()](beast::error_code) {
                      self->Fail("closed by the client");
                    });
  }

  void Fail(std::string reason) {
    if (done_)
      return;
    done_ = true;
    closing_ = true;
    queue_.clear();
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
    if (callbacks_.on_close) {
      auto cb = std::move(callbacks_.on_close);
      callbacks_ = {};
      cb(std::move(reason));
    }
  }

  static websocket::stream<Stream> MakeStream(asio::io_context& ioc, asio::ssl::context* ssl) {
    if constexpr (kTls)
      return websocket::stream<Stream>(ioc, *ssl);
    else
      return websocket::stream<Stream>(ioc);
  }

  asio::io_context& ioc_;
  tcp::resolver resolver_;
  std::shared_ptr<asio::ssl::context> ssl_;
  websocket::stream<Stream> ws_;
  websocket::response_type response_;
  beast::flat_buffer buffer_;
  ServerUrl url_;
  std::string target_;
  AsyncWsOptions options_;
  AsyncWsCallbacks callbacks_;
  std::deque<std::string> queue_;
  bool open_ = false;
  bool writing_ = false;
  bool done_ = false;
  std::atomic<bool> closing_{false};
};

}  // namespace

Result<std::shared_ptr<AsyncWsClient>> AsyncWsClient::Connect(asio::io_context& ioc,
                                                              std::string_view url,
                                                              std::string_view target,
                                                              AsyncWsOptions options,
                                                              AsyncWsCallbacks callbacks) {
  ASSIGN_OR_RETURN(ServerUrl parsed, ParseServerUrl(url));
  if (!parsed.tls) {
    auto session =
        std::make_shared<Session<PlainStream>>(ioc, std::move(parsed), std::string(target),
                                               std::move(options), std::move(callbacks), nullptr);
    asio::post(ioc, [session] { session->Start(); });
    return std::shared_ptr<AsyncWsClient>(session);
  }
  auto ssl = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ssl->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1);
  beast::error_code ec;
  if (options.ca_file.empty())
    ssl->set_default_verify_paths(ec);
  else
    ssl->load_verify_file(options.ca_file, ec);
  if (ec)
    return Status::InvalidArgument(
        "cannot load the CA file '" + options.ca_file + "': " + ec.message(), "ca_file");
  ssl->set_verify_mode(asio::ssl::verify_peer);
  if (!options.cert_file.empty()) {
    ssl->use_certificate_chain_file(options.cert_file, ec);
    if (ec) {
      return Status::InvalidArgument(
          "cannot load the certificate '" + options.cert_file + "': " + ec.message(), "tls_cert");
    }
    ssl->use_private_key_file(options.key_file, asio::ssl::context::pem, ec);
    if (ec) {
      return Status::InvalidArgument(
          "cannot load the private key '" + options.key_file + "': " + ec.message(), "tls_key");
    }
  }
  auto session = std::make_shared<Session<TlsStream>>(ioc, std::move(parsed), std::string(target),
                                                      std::move(options), std::move(callbacks),
                                                      std::move(ssl));
  asio::post(ioc, [session] { session->Start(); });
  return std::shared_ptr<AsyncWsClient>(session);
}

}  // namespace gsched::net
