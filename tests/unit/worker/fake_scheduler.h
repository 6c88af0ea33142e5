// A fake scheduler for the worker tests: gsched_net's `HttpServer` on 127.0.0.1:0 whose WebSocket
// handler at /v1/workers/connect records every message and lets the test send launch/kill, drop
// the connection or refuse new ones.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "scheduler/api/worker_messages.h"
#include "scheduler/net/http_server.h"

namespace gsched::worker::testing {

class FakeScheduler {
 public:
  FakeScheduler() {
    net::HttpServerOptions options;
    options.threads = 1;
    server_ = std::make_unique<net::HttpServer>(
        options,
        [](net::HttpRequest&&, net::Responder respond) {
          respond({404, "{}"});
        },
        [this](const net::HttpRequest& req, std::shared_ptr<net::WsConnection> conn)
            -> std::variant<net::HttpResponse, net::WsHandlers> {
          std::lock_guard lock(mu_);
          if (req.path != "/v1/workers/connect")
            return net::HttpResponse{404, "{}"};
          if (refuse_)
            return net::HttpResponse{503, "{}"};
          auth_ = std::string(req.Header("authorization"));
          ++connections_;
          conn_ = conn;
          net::WsHandlers h;
          h.on_message = [this, weak = std::weak_ptr<net::WsConnection>(conn)](std::string text) {
            std::lock_guard lock(mu_);
            if (auto m = api::DecodeWorkerMessage(text); m.ok()) {
              if (auto* hello = std::get_if<api::Hello>(&*m))
                by_node_[hello->node] = weak;
              // Like the scheduler: a final update is acknowledged (here at once).
              auto* u = std::get_if<api::JobUpdate>(&*m);
              if (u && api::IsTerminal(u->state) && ack_) {
                if (auto c = weak.lock())
                  c->Send(api::SerializeMessage(api::Ack{u->job, u->attempt}));
              }
            }
            messages_.push_back(std::move(text));
            cv_.notify_all();
          };
          h.on_close = [this, c = conn.get()](std::string) {
            std::lock_guard lock(mu_);
            if (conn_.get() == c)
              conn_.reset();
            cv_.notify_all();
          };
          return h;
        });
    auto addr = server_->Start();
    EXPECT_TRUE(addr.ok()) << addr.status().ToString();
    url_ = "http://" + addr.value_or("");
  }
  ~FakeScheduler() { server_->Stop(); }

  const std::string& url() const { return url_; }
  // Whether final updates are acknowledged (default yes).
  void Acknowledge(bool ack) {
    std::lock_guard lock(mu_);
    ack_ = ack;
  }

  // Decoded worker messages received so far.
  std::vector<api::WorkerMessage> Messages() const {
    std::lock_guard lock(mu_);
    std::vector<api::WorkerMessage> out;
    for (const auto& text : messages_) {
      auto m = api::DecodeWorkerMessage(text);
      EXPECT_TRUE(m.ok()) << text;
      if (m.ok())
        out.push_back(*m);
    }
    return out;
  }
  template <typename T>
  std::vector<T> Of() const {
    std::vector<T> out;
    for (const auto& m : Messages())
      if (auto* p = std::get_if<T>(&m))
        out.push_back(*p);
    return out;
  }
  std::vector<api::JobUpdate> UpdatesFor(uint64_t job, uint32_t attempt) const {
    std::vector<api::JobUpdate> out;
    for (const auto& u : Of<api::JobUpdate>())
      if (u.job == job && u.attempt == attempt)
        out.push_back(u);
    return out;
  }
  bool HasState(uint64_t job, uint32_t attempt, api::JobState state) const {
    for (const auto& u : UpdatesFor(job, attempt))
      if (u.state == state)
        return true;
    return false;
  }

  // Waits (bounded) until `pred` holds, re-checking on every message.
  bool WaitFor(const std::function<bool()>& pred,
               std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      std::unique_lock lock(mu_);
      if (cv_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() +
                                                      std::chrono::milliseconds(20))) ==
              std::cv_status::timeout &&
          std::chrono::steady_clock::now() >= deadline) {
        lock.unlock();
        return pred();
      }
    }
    return true;
  }

  bool Send(const api::SchedulerMessage& m) { return SendRaw(api::SerializeMessage(m)); }
  bool SendRaw(std::string text) {
    std::shared_ptr<net::WsConnection> c;
    {
      std::lock_guard lock(mu_);
      c = conn_;
    }
    return c && c->Send(std::move(text));
  }
  // Sends to the connection that said hello as `node`.
  bool SendTo(const std::string& node, const api::SchedulerMessage& m) {
    std::shared_ptr<net::WsConnection> c;
    {
      std::lock_guard lock(mu_);
      auto it = by_node_.find(node);
      if (it != by_node_.end())
        c = it->second.lock();
    }
    return c && c->Send(api::SerializeMessage(m));
  }
  void Drop() {
    std::shared_ptr<net::WsConnection> c;
    {
      std::lock_guard lock(mu_);
      c = conn_;
    }
    if (c)
      c->Close(1011, "test drops the connection");
  }
  void Refuse(bool refuse) {
    std::lock_guard lock(mu_);
    refuse_ = refuse;
  }
  bool Connected() const {
    std::lock_guard lock(mu_);
    return conn_ != nullptr;
  }
  int connections() const {
    std::lock_guard lock(mu_);
    return connections_;
  }
  std::string auth() const {
    std::lock_guard lock(mu_);
    return auth_;
  }

 private:
  std::unique_ptr<net::HttpServer> server_;
  std::string url_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> messages_;
  std::shared_ptr<net::WsConnection> conn_;
  std::map<std::string, std::weak_ptr<net::WsConnection>> by_node_;
  bool refuse_ = false;
  bool ack_ = true;
  int connections_ = 0;
  std::string auth_;
};

}  // namespace gsched::worker::testing
