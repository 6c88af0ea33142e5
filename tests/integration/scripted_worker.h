// A worker played by the test over a real WebSocket to `/v1/workers/connect`: it sends exactly
// the messages the test gives and reads the scheduler's one by one. For the worker channel and
// the control-plane attack tests.
//
// Threading: one test thread.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "scheduler/api/worker_messages.h"
#include "scheduler/net/http_client.h"
#include "tests/integration/scheduler_process.h"

namespace gsched::testing {

// A hello for `node` in site s0, block b0: 64 CPUs, 512 GiB, eight h100 GPUs.
inline api::Hello EightGpuHello(const std::string& node) {
  api::Hello h;
  h.node = node;
  h.site = "s0";
  h.block = "b0";
  h.cpus = 64;
  h.memory_mib = 512 * 1024;
  for (int i = 0; i < 8; ++i) {
    api::Gpu g;
    g.index = i;
    g.uuid = "GPU-" + node + "-" + std::to_string(i);
    g.type = "h100";
    h.gpus.push_back(g);
  }
  return h;
}

class ScriptedWorker {
 public:
  ScriptedWorker(const SchedulerProcess& s, const std::string& token) {
    auto ws = net::WsClient::Connect(s.url(), "/v1/workers/connect",
                                     {.token = token, .timeout = Seconds(10)});
    EXPECT_TRUE(ws.ok()) << ws.status().ToString();
    if (ws.ok())
      ws_ = std::move(ws).value();
  }
  bool ok() const { return ws_ != nullptr; }
  void Send(const api::WorkerMessage& m) { ASSERT_TRUE(ws_->Write(api::SerializeMessage(m)).ok()); }
  // A send that may find the connection closed.
  bool TrySend(const api::WorkerMessage& m) { return ws_->Write(api::SerializeMessage(m)).ok(); }
  // The next scheduler message, or a failure after 10 s.
  api::SchedulerMessage Next() {
    auto text = ws_->Read(Seconds(10));
    EXPECT_TRUE(text.ok()) << text.status().ToString();
    if (!text.ok())
      return api::Drain{"no message"};
    auto m = api::DecodeSchedulerMessage(*text);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? *m : api::SchedulerMessage(api::Drain{"bad message"});
  }
  // Reads until the server closes the connection: its close reason, or nothing when it stays
  // open for `wait`.
  std::optional<std::string> ClosedWithin(Duration wait) {
    auto deadline = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < deadline) {
      auto text = ws_->Read(
          std::chrono::duration_cast<Duration>(deadline - std::chrono::steady_clock::now()));
      if (!text.ok() && text.status().code() == StatusCode::kUnavailable)
        return text.status().message();
      if (!text.ok())
        return std::nullopt;
    }
    return std::nullopt;
  }

 private:
  std::unique_ptr<net::WsClient> ws_;
};

}  // namespace gsched::testing
