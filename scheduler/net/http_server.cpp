#include "scheduler/net/http_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "scheduler/net/http_server_impl.h"

namespace gsched::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

std::string_view HttpRequest::Header(std::string_view name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string_view() : std::string_view(it->second);
}

std::optional<std::string_view> HttpRequest::Query(std::string_view name) const {
  auto it = query.find(name);
  if (it == query.end())
    return std::nullopt;
  return std::string_view(it->second);
}

namespace {

asio::awaitable<void> AcceptLoop(std::shared_ptr<HttpServer::Impl> impl) {
  while (true) {
    auto [ec, socket] = co_await impl->acceptor->async_accept(asio::make_strand(impl->ioc), kTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || impl->stopped)
        co_return;
      // Out of file descriptors or similar: back off a little instead of spinning.
      spdlog::warn("accept: {}", ec.message());
      asio::steady_timer t(impl->ioc, std::chrono::milliseconds(50));
      co_await t.async_wait(kTuple);
      continue;
    }
    uint64_t id = impl->connections_total.fetch_add(1, std::memory_order_relaxed) + 1;
    if (impl->stopped || impl->connections_open.load() >= impl->options.limits.max_connections) {
      error_code ignored;
      socket.close(ignored);
      continue;
    }
    impl->connections_open.fetch_add(1, std::memory_order_relaxed);
    detail::ConnectionSlot slot(impl, id);
    error_code ep_ec;
    auto ep = socket.remote_endpoint(ep_ec);
    std::string remote =
        ep_ec ? "unknown" : ep.address().to_string() + ":" + std::to_string(ep.port());
    socket.set_option(tcp::no_delay(true), ep_ec);
    if (impl->ssl) {
      detail::SpawnTlsSession(impl, std::move(socket), std::move(remote), std::move(slot));
    } else {
      detail::SpawnPlainSession(impl, std::move(socket), std::move(remote), std::move(slot));
    }
  }
}

Result<tcp::endpoint> ResolveListen(asio::io_context& ioc, const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return Status::InvalidArgument("must be HOST:PORT, got '" + listen + "'", "listen");
  }
  std::string host = listen.substr(0, colon);
  std::string port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty())
    host = "0.0.0.0";
  tcp::resolver resolver(ioc);
  error_code ec;
  auto results =
      resolver.resolve(host, port, tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return Status::InvalidArgument("cannot resolve '" + listen + "': " + ec.message(), "listen");
  }
  return results.begin()->endpoint();
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, HttpHandler http, WsUpgradeHandler ws)
    : impl_(std::make_shared<Impl>(std::max(1, options.threads))) {
  impl_->options = std::move(options);
  impl_->http_handler = std::move(http);
  impl_->ws_handler = std::move(ws);
}

HttpServer::~HttpServer() {
  Stop();
}

Result<std::string> HttpServer::Start() {
  if (impl_->options.tls) {
    impl_->ssl.emplace(asio::ssl::context::tls_server);
    error_code ec;
    impl_->ssl->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                            asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                            asio::ssl::context::no_tlsv1_1);
    impl_->ssl->use_certificate_chain_file(impl_->options.tls->cert, ec);
    if (ec)
      return Status::InvalidArgument("cannot load certificate: " + ec.message(), "tls.cert");
    impl_->ssl->use_private_key_file(impl_->options.tls->key, asio::ssl::context::pem, ec);
    if (ec)
      return Status::InvalidArgument("cannot load private key: " + ec.message(), "tls.key");
    if (!impl_->options.tls->client_ca.empty()) {
      impl_->ssl->load_verify_file(impl_->options.tls->client_ca, ec);
      if (ec) {
        return Status::InvalidArgument("cannot load client CA: " + ec.message(), "tls.client_ca");
      }
      // Asked for, not required: the CLI and the dashboard have no certificates; the handler
      // decides who needs one (the worker channel).
      impl_->ssl->set_verify_mode(asio::ssl::verify_peer);
    }
  }
  ASSIGN_OR_RETURN(tcp::endpoint endpoint, ResolveListen(impl_->ioc, impl_->options.listen));
  error_code ec;
  impl_->acceptor.emplace(impl_->ioc);
  impl_->acceptor->open(endpoint.protocol(), ec);
  if (!ec)
    impl_->acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec)
    impl_->acceptor->bind(endpoint, ec);
  if (!ec)
    impl_->acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::Unavailable("cannot listen on " + impl_->options.listen + ": " + ec.message());
  }
  auto bound = impl_->acceptor->local_endpoint();
  std::string address = bound.address().is_v6() ? "[" + bound.address().to_string() + "]"
                                                : bound.address().to_string();
  address += ":" + std::to_string(bound.port());
  asio::co_spawn(impl_->ioc, AcceptLoop(impl_), asio::detached);
  for (int i = 0; i < std::max(1, impl_->options.threads); ++i) {
    impl_->threads.emplace_back([impl = impl_] { impl->ioc.run(); });
  }
  return address;
}

void HttpServer::Stop() {
  if (impl_->stopped.exchange(true))
    return;
  // Close every connection, each on its strand, while the threads still run: clients and workers
  // learn at once that this server is gone (a scheduler that stops leading goes on living).
  std::vector<std::function<void()>> closers;
  {
    std::lock_guard lock(impl_->closers_mu);
    for (auto& [id, close] : impl_->closers)
      closers.push_back(close);
  }
  for (auto& close : closers)
    close();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (impl_->closes_pending.load() > 0 && !impl_->threads.empty() &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  impl_->ioc.stop();
  for (auto& t : impl_->threads)
    t.join();
  impl_->threads.clear();
  // The threads are gone: close the listening socket here so that new connections are refused.
  error_code ignored;
  if (impl_->acceptor)
    impl_->acceptor->close(ignored);
}

ServerCounters HttpServer::Counters() const {
  return {impl_->connections_open.load(),
          impl_->connections_total.load(),
          impl_->requests_total.load(),
          impl_->ws_open.load(),
          impl_->ws_dropped_slow.load(),
          static_cast<uint64_t>(std::max<int64_t>(0, impl_->ws_queued.load()))};
}

}  // namespace gsched::net
