// `HttpServer` sessions over plain TCP: one instantiation of the session templates.
#include "scheduler/net/http_session.h"

namespace gsched::net::detail {

void SpawnPlainSession(std::shared_ptr<HttpServer::Impl> impl, tcp::socket socket,
                       std::string remote, ConnectionSlot slot) {
  auto ex = socket.get_executor();
  asio::co_spawn(
      ex, HttpSession(impl, PlainStream(std::move(socket)), std::move(remote), std::move(slot)),
      OnSessionDone);
}

}  // namespace gsched::net::detail
