// A real etcd cluster for high-availability tests: `members` etcd processes on 127.0.0.1 with
// ports the kernel just handed out, each with its own data dir, fast elections (heartbeat 50 ms,
// election timeout 500 ms). Members can be killed (SIGKILL) and started again on the same data.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "scheduler/net/http_client.h"
#include "tests/testutil/subprocess.h"
#include "tests/testutil/temp_dir.h"

namespace gsched::testing {

inline constexpr char kEtcdBin[] = "/usr/bin/etcd";

// A port on 127.0.0.1 that was free a moment ago.
inline int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

class EtcdCluster {
 public:
  static bool Available() { return std::filesystem::exists(kEtcdBin); }

  explicit EtcdCluster(int members) {
    for (int i = 0; i < members; ++i) {
      client_ports_.push_back(FreeLoopbackPort());
      peer_ports_.push_back(FreeLoopbackPort());
    }
    for (int i = 0; i < members; ++i) {
      if (!initial_cluster_.empty())
        initial_cluster_ += ",";
      initial_cluster_ += Name(i) + "=http://127.0.0.1:" + std::to_string(peer_ports_[i]);
    }
    processes_.resize(members);
    for (int i = 0; i < members; ++i)
      Start(i);
    for (int i = 0; i < members; ++i)
      EXPECT_TRUE(WaitHealthy(i)) << "etcd member " << i << " is not healthy:\n" << Log(i);
  }

  std::string Endpoint(int i) const {
    return "http://127.0.0.1:" + std::to_string(client_ports_[i]);
  }
  // "[http://127.0.0.1:A, http://127.0.0.1:B]" for a YAML config.
  std::string EndpointsYaml() const {
    std::string out = "[";
    for (size_t i = 0; i < client_ports_.size(); ++i)
      out += (i ? ", " : "") + Endpoint(static_cast<int>(i));
    return out + "]";
  }

  void Start(int i) {
    std::string c = Endpoint(i), p = "http://127.0.0.1:" + std::to_string(peer_ports_[i]);
    processes_[i] = std::make_unique<Subprocess>(
        std::vector<std::string>{
            kEtcdBin, "--name=" + Name(i), "--data-dir=" + dir_.path() + "/" + Name(i),
            "--listen-client-urls=" + c, "--advertise-client-urls=" + c, "--listen-peer-urls=" + p,
            "--initial-advertise-peer-urls=" + p, "--initial-cluster=" + initial_cluster_,
            "--initial-cluster-state=new", "--initial-cluster-token=gsched-test",
            "--heartbeat-interval=50", "--election-timeout=500", "--logger=zap",
            "--log-level=warn"},
        dir_.path() + "/" + Name(i) + ".log");
  }
  void Kill(int i) { processes_[i]->Kill(SIGKILL); }

  // The member answers and its cluster has a leader.
  bool WaitHealthy(int i, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return WaitFor(
        [&] {
          auto c = net::HttpClient::Create(Endpoint(i), {.timeout = Seconds(1)});
          if (!c.ok())
            return false;
          auto r = (*c)->Get("/health");
          return r.ok() && r->status == 200 && r->body.find("\"true\"") != std::string::npos;
        },
        timeout);
  }
  std::string Log(int i) const { return processes_[i] ? processes_[i]->Log() : ""; }

 private:
  static std::string Name(int i) { return "m" + std::to_string(i); }

  TempDir dir_;
  std::vector<int> client_ports_, peer_ports_;
  std::string initial_cluster_;
  std::vector<std::unique_ptr<Subprocess>> processes_;
};

}  // namespace gsched::testing
