// A fake standby scheduler for the failover tests (DESIGN.md section 12): gsched_net's
// `HttpServer` on 127.0.0.1:0 that answers as a standby does - every request and every WebSocket
// upgrade under /v1/ with 503, the leader in `X-Gsched-Leader` (absent while it knows none) and
// in the error body - and `GET /healthz` with its role. It counts what it refused.
//
// Threading: the setters and counters may be called from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <variant>

#include "scheduler/net/http_server.h"
#include "scheduler/net/server_list.h"

namespace gsched::testing {

class FakeStandby {
 public:
  explicit FakeStandby(std::string leader = {}) : leader_(std::move(leader)) {
    net::HttpServerOptions options;
    options.threads = 1;
    server_ = std::make_unique<net::HttpServer>(
        options,
        [this](net::HttpRequest&& req, net::Responder respond) {
          ++requests_;
          respond(Answer(req.path));
        },
        [this](const net::HttpRequest& req, std::shared_ptr<net::WsConnection>)
            -> std::variant<net::HttpResponse, net::WsHandlers> {
          ++upgrades_;
          return Answer(req.path);
        });
    auto addr = server_->Start();
    url_ = addr.ok() ? "http://" + *addr : "http://127.0.0.1:1";
  }
  ~FakeStandby() { server_->Stop(); }

  const std::string& url() const { return url_; }
  // The leader it names from now on; empty: none known (an election under way).
  void SetLeader(std::string leader) {
    std::lock_guard lock(mu_);
    leader_ = std::move(leader);
  }
  int requests() const { return requests_; }
  int upgrades() const { return upgrades_; }

 private:
  net::HttpResponse Answer(const std::string& path) {
    std::string leader;
    {
      std::lock_guard lock(mu_);
      leader = leader_;
    }
    if (path == "/healthz") {
      return {200, leader.empty()
                       ? R"({"status":"ok","role":"standby"})"
                       : R"({"status":"ok","role":"standby","leader":")" + leader + R"("})"};
    }
    net::HttpResponse r;
    r.status = 503;
    if (leader.empty()) {
      r.body =
          R"({"error":{"code":"unavailable","message":"this scheduler is a standby; no leader )"
          R"(is known right now"}})";
    } else {
      r.body = R"({"error":{"code":"unavailable","message":"this scheduler is a standby; the )"
               R"(leader is )" +
               leader + R"(","leader":")" + leader + R"("}})";
      r.headers.emplace_back(std::string(net::kLeaderHeader), leader);
    }
    return r;
  }

  std::mutex mu_;
  std::string leader_;
  std::atomic<int> requests_{0};
  std::atomic<int> upgrades_{0};
  std::unique_ptr<net::HttpServer> server_;
  std::string url_;
};

}  // namespace gsched::testing
