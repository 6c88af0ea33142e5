// The transport over real loopback sockets: a server on 127.0.0.1:0 and the blocking clients.
#include "scheduler/net/http_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "scheduler/net/http_client.h"
#include "tests/testutil/wait.h"

namespace gsched::net {
namespace {

// Echoes method, path, a query parameter and the body; answers /slow from another thread.
void EchoHandler(HttpRequest&& req, Responder respond) {
  if (req.path == "/slow") {
    std::thread([respond, body = req.body] { respond({202, "late:" + body}); }).detach();
    return;
  }
  std::string q(req.Query("q").value_or("-"));
  respond({200,
           req.method + " " + req.path + " " + q + " " + std::string(req.Header("x-test")) + " " +
               req.body,
           "text/plain"});
}

class ServerTest : public ::testing::Test {
 protected:
  void StartServer(ServerLimits limits = {}, WsUpgradeHandler ws = nullptr) {
    HttpServerOptions options;
    options.listen = "127.0.0.1:0";
    options.limits = limits;
    server_ = std::make_unique<HttpServer>(options, EchoHandler, std::move(ws));
    auto addr = server_->Start();
    ASSERT_TRUE(addr.ok()) << addr.status().ToString();
    url_ = "http://" + *addr;
  }
  std::unique_ptr<HttpClient> Client() {
    auto c = HttpClient::Create(url_, {.timeout = Seconds(10)});
    EXPECT_TRUE(c.ok());
    return std::move(c).value();
  }
  void TearDown() override {
    if (server_)
      server_->Stop();
  }
  std::unique_ptr<HttpServer> server_;
  std::string url_;
};

TEST_F(ServerTest, RequestsShareOneKeepAliveConnection) {
  StartServer();
  auto client = Client();
  for (int i = 0; i < 20; ++i) {
    auto r = client->Request("POST", "/v1/x%20y?q=a%26b", "body" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "POST /v1/x y a&b  body" + std::to_string(i));
  }
  EXPECT_EQ(server_->Counters().connections_total, 1u);
  EXPECT_EQ(server_->Counters().requests_total, 20u);
}

TEST_F(ServerTest, ResponderMayAnswerFromAnotherThread) {
  StartServer();
  auto r = Client()->Post("/slow", "x");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(r->body, "late:x");
}

TEST_F(ServerTest, OversizedBodyGets413) {
  StartServer({.max_body_bytes = 1024});
  auto client = Client();
  auto r = client->Post("/v1/jobs", std::string(4096, 'x'));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(r->body.find("payload_too_large"), std::string::npos);
  // The client reconnects and goes on.
  auto ok = client->Post("/v1/jobs", "small");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->status, 200);
}

TEST_F(ServerTest, OversizedHeadersGet431) {
  StartServer({.max_header_bytes = 2048});
  auto client = Client();
  auto r = client->Request("GET", "/?q=" + std::string(4096, 'a'));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 431);
}

TEST_F(ServerTest, UnreachableServerIsUnavailable) {
  StartServer();
  server_->Stop();
  auto r = Client()->Get("/");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
}

TEST(ServerUrlTest, Parses) {
  EXPECT_EQ(ParseServerUrl("http://127.0.0.1:8600")->port, "8600");
  EXPECT_TRUE(ParseServerUrl("https://gsched.example:443/x")->tls);
  EXPECT_EQ(ParseServerUrl("http://[::1]:9")->host, "::1");
  EXPECT_FALSE(ParseServerUrl("ftp://x").ok());
  EXPECT_FALSE(ParseServerUrl("http://:80").ok());
}

// A WebSocket endpoint that echoes with a prefix and refuses upgrades without "ok" in the query.
struct EchoWs {
  std::mutex mu;
  std::vector<std::shared_ptr<WsConnection>> connections;
  // Shared with the handlers: `Stop` closes live connections, so a close handler may run after
  // the test body (and this object) ended, until the fixture stops the server.
  std::shared_ptr<std::atomic<int>> closed = std::make_shared<std::atomic<int>>(0);

  WsUpgradeHandler Handler() {
    return [this](const HttpRequest& req,
                  std::shared_ptr<WsConnection> conn) -> std::variant<HttpResponse, WsHandlers> {
      if (!req.Query("ok"))
        return HttpResponse{401, R"({"error":{"code":"unauthenticated"}})"};
      {
        std::lock_guard lock(mu);
        connections.push_back(conn);
      }
      std::weak_ptr<WsConnection> weak = conn;
      conn->Send("hello");
      if (req.Query("close_now"))
        conn->Close(1008, "closed during the handshake");  // Before the upgrade is answered.
      return WsHandlers{[weak](std::string m) {
                          if (auto c = weak.lock())
                            c->Send("echo:" + m);
                        },
                        [closed = closed](std::string) { ++*closed; }};
    };
  }
};

TEST_F(ServerTest, WebSocketEchoAndClose) {
  EchoWs echo;
  StartServer({}, echo.Handler());
  auto ws = WsClient::Connect(url_, "/ws?ok=1", {.timeout = Seconds(10)});
  ASSERT_TRUE(ws.ok()) << ws.status().ToString();
  EXPECT_EQ(*(*ws)->Read(Seconds(10)), "hello");
  ASSERT_TRUE((*ws)->Write("ping").ok());
  EXPECT_EQ(*(*ws)->Read(Seconds(10)), "echo:ping");
  (*ws)->Close();
  EXPECT_TRUE(WaitFor([&] { return echo.closed->load() != 0; }, std::chrono::seconds(10)));
  EXPECT_EQ(echo.closed->load(), 1);
}

TEST_F(ServerTest, RefusedUpgradeCarriesTheStatus) {
  EchoWs echo;
  StartServer({}, echo.Handler());
  auto ws = WsClient::Connect(url_, "/ws", {.timeout = Seconds(10)});
  ASSERT_FALSE(ws.ok());
  EXPECT_EQ(ws.status().code(), StatusCode::kUnauthenticated);
}

TEST_F(ServerTest, ServerSideCloseReachesTheClientWithItsReason) {
  EchoWs echo;
  StartServer({}, echo.Handler());
  auto ws = WsClient::Connect(url_, "/ws?ok=1", {.timeout = Seconds(10)});
  ASSERT_TRUE(ws.ok());
  EXPECT_EQ(*(*ws)->Read(Seconds(10)), "hello");
  {
    std::lock_guard lock(echo.mu);
    echo.connections[0]->Close(1008, "go away");
  }
  auto r = (*ws)->Read(Seconds(10));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("go away"), std::string::npos) << r.status().message();
}

TEST_F(ServerTest, CloseDuringTheHandshakeFollowsItWithTheReason) {
  EchoWs echo;
  StartServer({}, echo.Handler());
  auto ws = WsClient::Connect(url_, "/ws?ok=1&close_now=1", {.timeout = Seconds(10)});
  ASSERT_TRUE(ws.ok()) << ws.status().ToString();
  // What was queued first, then the close with its reason (not a cut socket).
  EXPECT_EQ(*(*ws)->Read(Seconds(10)), "hello");
  auto r = (*ws)->Read(Seconds(10));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("closed during the handshake"), std::string::npos)
      << r.status().message();
}

TEST_F(ServerTest, SlowConsumerIsDroppedNotBuffered) {
  EchoWs echo;
  StartServer({.ws_queue_limit = 16}, echo.Handler());
  auto ws = WsClient::Connect(url_, "/ws?ok=1", {.timeout = Seconds(10)});
  ASSERT_TRUE(ws.ok());
  std::shared_ptr<WsConnection> conn;
  {
    std::lock_guard lock(echo.mu);
    conn = echo.connections[0];
  }
  // The client never reads. 64 KiB messages fill the socket buffers, then the 16-slot queue; the
  // server must drop the connection instead of buffering all 2,000 (125 MiB).
  std::string big(64 << 10, 'x');
  for (int i = 0; i < 2000 && server_->Counters().ws_dropped_slow == 0; ++i)
    conn->Send(big);
  EXPECT_TRUE(
      WaitFor([&] { return server_->Counters().ws_dropped_slow != 0; }, std::chrono::seconds(10)));
  EXPECT_EQ(server_->Counters().ws_dropped_slow, 1u);
  EXPECT_FALSE(conn->Send("more"));
}

}  // namespace
}  // namespace gsched::net
