// A job for the gang tests, linked statically so that it also runs in a bare busybox root file
// system: rank 0 listens on MASTER_ADDR:MASTER_PORT, every other rank connects there, and each
// pair swaps a line. Prints what it received; exits non-zero, saying why, on any failure. Every
// wait is bounded (60 s), so a probe whose peer never comes ends by itself.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr int kWaitMs = 60'000;

int Fail(const char* what) {
  std::fprintf(stderr, "rendezvous probe: %s: %s\n", what, std::strerror(errno));
  return 1;
}

bool Env(const char* name, std::string& out) {
  const char* v = std::getenv(name);
  if (!v || !*v) {
    std::fprintf(stderr, "rendezvous probe: %s is not set\n", name);
    return false;
  }
  out = v;
  return true;
}

// One line from `fd`, waiting at most kWaitMs.
bool ReadLine(int fd, std::string& line) {
  line.clear();
  char c;
  while (line.size() < 4096) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, kWaitMs) != 1)
      return false;
    if (read(fd, &c, 1) != 1)
      return false;
    if (c == '\n')
      return true;
    line += c;
  }
  return false;
}

bool WriteAll(int fd, const std::string& text) {
  return write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

}  // namespace

int main() {
  std::string rank, nodes, addr, port;
  if (!Env("GSCHED_NODE_RANK", rank) || !Env("GSCHED_NUM_NODES", nodes) ||
      !Env("MASTER_ADDR", addr) || !Env("MASTER_PORT", port)) {
    return 2;
  }
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::atoi(port.c_str())));
  if (inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1) {
    std::fprintf(stderr, "rendezvous probe: MASTER_ADDR '%s' is not an IPv4 address\n",
                 addr.c_str());
    return 2;
  }
  const int peers = std::atoi(nodes.c_str()) - 1;
  if (rank == "0") {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
      return Fail(("bind " + addr + ":" + port).c_str());
    if (listen(s, 64) != 0)
      return Fail("listen");
    std::printf("rank 0 listening on %s:%s\n", addr.c_str(), port.c_str());
    std::fflush(stdout);
    for (int i = 0; i < peers; ++i) {
      pollfd p{s, POLLIN, 0};
      if (poll(&p, 1, kWaitMs) != 1) {
        std::fprintf(stderr, "rendezvous probe: no peer came\n");
        return 3;
      }
      sockaddr_in from{};
      socklen_t len = sizeof from;
      int c = accept(s, reinterpret_cast<sockaddr*>(&from), &len);
      if (c < 0)
        return Fail("accept");
      std::string line;
      if (!ReadLine(c, line))
        return Fail("read");
      char from_text[INET_ADDRSTRLEN] = {};
      inet_ntop(AF_INET, &from.sin_addr, from_text, sizeof from_text);
      std::printf("rank 0 got '%s' from %s\n", line.c_str(), from_text);
      if (!WriteAll(c, "welcome from rank 0\n"))
        return Fail("write");
      close(c);
    }
    close(s);
    return 0;
  }
  // Rank 0 may not listen yet: try again until it does, for at most kWaitMs.
  for (int tries = 0; tries < kWaitMs / 50; ++tries) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      close(s);
      if (errno != ECONNREFUSED)
        return Fail("connect");
      usleep(50'000);
      continue;
    }
    std::string line;
    if (!WriteAll(s, "hello from rank " + rank + "\n") || !ReadLine(s, line))
      return Fail("exchange");
    std::printf("rank %s got '%s'\n", rank.c_str(), line.c_str());
    close(s);
    return 0;
  }
  std::fprintf(stderr, "rendezvous probe: rank 0 never listened at %s:%s\n", addr.c_str(),
               port.c_str());
  return 3;
}
