#include "worker/node_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "scheduler/net/http_client.h"

namespace gsched::worker {

Result<std::string> AddressTowards(const std::string& scheduler_url) {
  ASSIGN_OR_RETURN(net::ServerUrl url, net::ParseServerUrl(scheduler_url));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(url.host.c_str(), url.port.c_str(), &hints, &found); rc != 0) {
    return Status::Unavailable("cannot resolve scheduler host '" + url.host +
                               "': " + gai_strerror(rc));
  }
  std::string error = "no address";
  std::string out;
  for (addrinfo* ai = found; ai && out.empty(); ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      error = std::strerror(errno);
      continue;
    }
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0) {
      char text[INET6_ADDRSTRLEN] = {};
      const void* addr =
          local.ss_family == AF_INET6
              ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(&local)->sin6_addr)
              : &reinterpret_cast<const sockaddr_in*>(&local)->sin_addr;
      if (inet_ntop(local.ss_family, addr, text, sizeof text))
        out = text;
    } else {
      error = std::strerror(errno);
    }
    close(fd);
  }
  freeaddrinfo(found);
  if (out.empty())
    return Status::Unavailable("no route to scheduler host '" + url.host + "': " + error);
  return out;
}

Result<std::string> AddressTowards(const std::vector<std::string>& scheduler_urls) {
  Status last = Status::InvalidArgument("no scheduler URL");
  for (const std::string& url : scheduler_urls) {
    auto address = AddressTowards(url);
    if (address.ok())
      return address;
    last = address.status();
  }
  return last;
}

}  // namespace gsched::worker
