// Internal to gsched_net: what the HTTP server's translation units share. The server's
// sessions are templates over the stream (plain TCP or TLS); each is compiled in its own
// translation unit (http_session_plain.cpp, http_session_tls.cpp) so that the two heaviest
// instantiations of Beast build in parallel. Not for use outside scheduler/net.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "scheduler/net/http_server.h"

namespace gsched::net {

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  HttpServerOptions options;
  HttpHandler http_handler;
  WsUpgradeHandler ws_handler;
  boost::asio::io_context ioc;
  std::optional<boost::asio::ssl::context> ssl;
  std::optional<boost::asio::ip::tcp::acceptor> acceptor;
  std::vector<std::thread> threads;
  std::atomic<bool> stopped{false};

  std::atomic<uint64_t> connections_open{0};
  std::atomic<uint64_t> connections_total{0};
  std::atomic<uint64_t> requests_total{0};
  std::atomic<uint64_t> ws_open{0};
  std::atomic<uint64_t> ws_dropped_slow{0};
  // Messages in WebSocket queues, the ones being written included.
  std::atomic<int64_t> ws_queued{0};

  // How `Stop` closes each live connection: a function that posts a close onto the connection's
  // strand. Sessions register when they start and unregister when they end.
  std::mutex closers_mu;
  std::map<uint64_t, std::function<void()>> closers;
  uint64_t next_closer = 1;
  std::atomic<int64_t> closes_pending{0};

  uint64_t AddCloser(std::function<void()> close) {
    std::lock_guard lock(closers_mu);
    closers.emplace(next_closer, std::move(close));
    return next_closer++;
  }
  void RemoveCloser(uint64_t id) {
    std::lock_guard lock(closers_mu);
    closers.erase(id);
  }

  explicit Impl(int threads) : ioc(threads) {}
};

namespace detail {

// Counts an open connection for as long as it lives, and names it (`HttpRequest::connection`);
// moved into the WebSocket session on upgrade. Its end is the connection's end.
class ConnectionSlot {
 public:
  ConnectionSlot(std::shared_ptr<HttpServer::Impl> impl, uint64_t id)
      : impl_(std::move(impl)), id_(id) {}
  ConnectionSlot(ConnectionSlot&& o) noexcept : impl_(std::move(o.impl_)), id_(o.id_) {}
  ConnectionSlot& operator=(ConnectionSlot&&) = delete;
  ~ConnectionSlot() {
    if (!impl_)
      return;
    impl_->connections_open.fetch_sub(1, std::memory_order_relaxed);
    if (impl_->options.on_connection_end)
      impl_->options.on_connection_end(id_);
  }
  uint64_t id() const { return id_; }

 private:
  std::shared_ptr<HttpServer::Impl> impl_;
  uint64_t id_ = 0;
};

// Registers a close of `socket` for `Stop`, for as long as it lives. `Executor` is the strand every
// use of the socket runs on; the close runs there too, and not after the guard is gone.
template <typename Socket, typename Executor>
class CloserGuard {
 public:
  CloserGuard(std::shared_ptr<HttpServer::Impl> impl, Socket& socket, Executor executor)
      : impl_(std::move(impl)), alive_(std::make_shared<bool>(true)) {
    id_ = impl_->AddCloser([impl = impl_.get(), alive = alive_, s = &socket, executor] {
      impl->closes_pending.fetch_add(1);
      boost::asio::post(executor, [impl, alive, s] {
        if (*alive) {
          boost::system::error_code ignored;
          s->shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
          s->close(ignored);
        }
        impl->closes_pending.fetch_sub(1);
      });
    });
  }
  ~CloserGuard() {
    *alive_ = false;
    impl_->RemoveCloser(id_);
  }
  CloserGuard(const CloserGuard&) = delete;
  CloserGuard& operator=(const CloserGuard&) = delete;

 private:
  std::shared_ptr<HttpServer::Impl> impl_;
  std::shared_ptr<bool> alive_;
  uint64_t id_ = 0;
};

// Start a session on an accepted connection, on the socket's strand. Defined in
// http_session_plain.cpp and http_session_tls.cpp.
void SpawnPlainSession(std::shared_ptr<HttpServer::Impl> impl, boost::asio::ip::tcp::socket socket,
                       std::string remote, ConnectionSlot slot);
void SpawnTlsSession(std::shared_ptr<HttpServer::Impl> impl, boost::asio::ip::tcp::socket socket,
                     std::string remote, ConnectionSlot slot);

}  // namespace detail
}  // namespace gsched::net
