// A fake scheduler for CLI tests: a real `gsched_net` HttpServer on 127.0.0.1:0 that records every
// request and answers canned, DESIGN.md-shaped JSON per "METHOD /path". The watch feed answers an
// upgrade with the queued events.
#pragma once

#include <boost/json/serialize.hpp>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "scheduler/net/http_server.h"

namespace gsched::client {

class FakeServer {
 public:
  FakeServer() {
    net::HttpServerOptions options;
    options.listen = "127.0.0.1:0";
    server_ = std::make_unique<net::HttpServer>(
        options,
        [this](net::HttpRequest&& req, net::Responder respond) { respond(Handle(std::move(req))); },
        [this](const net::HttpRequest& req, std::shared_ptr<net::WsConnection> conn)
            -> std::variant<net::HttpResponse, net::WsHandlers> {
          std::vector<std::string> events;
          bool close = false;
          {
            std::lock_guard lock(mu_);
            requests_.push_back(req);
            if (refuse_watch_)
              return *refuse_watch_;
            events = events_;
            if (!connections_.empty()) {
              std::tie(events, close) = connections_.front();
              connections_.pop_front();
            }
          }
          for (auto& e : events)
            conn->Send(e);
          if (close) {
            // Closing before the handshake completes would drop the queued events; close a
            // little later, as a server going away mid-stream does.
            std::lock_guard lock(mu_);
            closers_.emplace_back([conn] {
              std::this_thread::sleep_for(std::chrono::milliseconds(100));
              conn->Close(1001, "going away");
            });
          }
          return net::WsHandlers{[](std::string) {}, [](std::string) {}};
        });
    auto addr = server_->Start();
    url_ = addr.ok() ? "http://" + *addr : "http://127.0.0.1:1";
  }
  ~FakeServer() {
    for (auto& t : closers_)
      t.join();
    server_->Stop();
  }

  const std::string& url() const { return url_; }

  // Answers "METHOD /path" (the path without the query) with `status` and `body`.
  void On(const std::string& method_path, int status, std::string body) {
    std::lock_guard lock(mu_);
    routes_[method_path] = {net::HttpResponse{status, std::move(body), "application/json"}};
  }
  // Adds an answer after the current ones: answers are given in order, the last one repeats.
  void ThenOn(const std::string& method_path, int status, std::string body) {
    std::lock_guard lock(mu_);
    routes_[method_path].push_back(net::HttpResponse{status, std::move(body), "application/json"});
  }
  void OnJson(const std::string& method_path, int status, const boost::json::value& body) {
    On(method_path, status, boost::json::serialize(body));
  }
  void OnText(const std::string& method_path, std::string text) {
    std::lock_guard lock(mu_);
    routes_[method_path] = {net::HttpResponse{200, std::move(text), "text/plain"}};
  }
  void QueueEvent(std::string event) {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(event));
  }
  // The next watch connection gets `events` instead of the queued ones, then is closed when
  // `close`.
  void QueueConnection(std::vector<std::string> events, bool close) {
    std::lock_guard lock(mu_);
    connections_.emplace_back(std::move(events), close);
  }
  // Answers the next watch upgrades with this response instead of accepting them.
  void RefuseWatch(int status, std::string body) {
    std::lock_guard lock(mu_);
    refuse_watch_ = net::HttpResponse{status, std::move(body)};
  }
  std::vector<net::HttpRequest> Requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  // "GET /v1/jobs?user=alice" for each request.
  std::vector<std::string> Lines() {
    std::vector<std::string> out;
    for (const auto& r : Requests())
      out.push_back(r.method + " " + r.target);
    return out;
  }
  void Stop() { server_->Stop(); }

 private:
  net::HttpResponse Handle(net::HttpRequest&& req) {
    std::lock_guard lock(mu_);
    std::string key = req.method + " " + req.path;
    requests_.push_back(std::move(req));
    auto it = routes_.find(key);
    if (it == routes_.end()) {
      return {404, R"({"error": {"code": "not_found", "message": "no route )" + key + R"("}})"};
    }
    auto answer = it->second.front();
    if (it->second.size() > 1)
      it->second.pop_front();
    return {answer.status, answer.body, answer.content_type};
  }

  std::mutex mu_;
  std::map<std::string, std::deque<net::HttpResponse>> routes_;
  std::vector<net::HttpRequest> requests_;
  std::vector<std::string> events_;
  std::optional<net::HttpResponse> refuse_watch_;
  std::deque<std::pair<std::vector<std::string>, bool>> connections_;
  std::vector<std::thread> closers_;
  std::unique_ptr<net::HttpServer> server_;
  std::string url_;
};

}  // namespace gsched::client
