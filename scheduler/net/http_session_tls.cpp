// `HttpServer` sessions over TLS: one instantiation of the session templates.
#include "scheduler/net/http_session.h"

namespace gsched::net::detail {

void SpawnTlsSession(std::shared_ptr<HttpServer::Impl> impl, tcp::socket socket, std::string remote,
                     ConnectionSlot slot) {
  auto ex = socket.get_executor();
  asio::co_spawn(ex,
                 HttpSession(impl, TlsStream(PlainStream(std::move(socket)), *impl->ssl),
                             std::move(remote), std::move(slot)),
                 OnSessionDone);
}

}  // namespace gsched::net::detail
