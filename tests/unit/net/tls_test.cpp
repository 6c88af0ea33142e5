// HTTPS and WSS over loopback with a throwaway self-signed certificate made by the openssl CLI.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <cstdlib>

#include "scheduler/net/http_client.h"
#include "scheduler/net/http_server.h"
#include "scheduler/net/ws_async_client.h"
#include "tests/testutil/temp_dir.h"

namespace gsched::net {
namespace {

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string cmd =
        "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 "
        "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout " +
        dir_.path() + "/key.pem -out " + dir_.path() + "/cert.pem >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0)
      GTEST_SKIP() << "openssl CLI not available";
    HttpServerOptions options;
    options.tls = TlsFiles{dir_.path() + "/cert.pem", dir_.path() + "/key.pem"};
    server_ = std::make_unique<HttpServer>(
        options,
        [](HttpRequest&& req, Responder respond) {
          respond({200, "tls:" + req.body});
        },
        [](const HttpRequest&,
           std::shared_ptr<WsConnection> conn) -> std::variant<HttpResponse, WsHandlers> {
          conn->Send("secure hello");
          return WsHandlers{};
        });
    auto addr = server_->Start();
    ASSERT_TRUE(addr.ok()) << addr.status().ToString();
    url_ = "https://" + *addr;
  }
  void TearDown() override {
    if (server_)
      server_->Stop();
  }
  TempDir dir_;
  std::unique_ptr<HttpServer> server_;
  std::string url_;
};

TEST_F(TlsTest, HttpsWithTheRightCa) {
  auto client =
      HttpClient::Create(url_, {.ca_file = dir_.path() + "/cert.pem", .timeout = Seconds(10)});
  ASSERT_TRUE(client.ok());
  auto r = (*client)->Post("/x", "body");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->body, "tls:body");
}

TEST_F(TlsTest, UnknownCertificateIsRefused) {
  // Without the CA the system store does not know this certificate.
  auto client = HttpClient::Create(url_, {.timeout = Seconds(10)});
  auto r = (*client)->Get("/x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
}

TEST_F(TlsTest, PlainHttpToATlsPortFailsCleanly) {
  auto plain = HttpClient::Create("http://" + url_.substr(8), {.timeout = Seconds(5)});
  EXPECT_FALSE((*plain)->Get("/x").ok());
  // The server is still fine afterwards.
  auto client =
      HttpClient::Create(url_, {.ca_file = dir_.path() + "/cert.pem", .timeout = Seconds(10)});
  EXPECT_TRUE((*client)->Get("/x").ok());
}

TEST_F(TlsTest, SecureWebSocket) {
  auto ws = WsClient::Connect(url_, "/ws",
                              {.ca_file = dir_.path() + "/cert.pem", .timeout = Seconds(10)});
  ASSERT_TRUE(ws.ok()) << ws.status().ToString();
  EXPECT_EQ(*(*ws)->Read(Seconds(10)), "secure hello");
}

// The worker's link: wss with the scheduler's CA, refused without it.
TEST_F(TlsTest, AsyncSecureWebSocketVerifiesTheServer) {
  for (bool with_ca : {true, false}) {
    boost::asio::io_context ioc;
    std::string got, closed;
    AsyncWsOptions options;
    options.connect_timeout = Seconds(10);
    if (with_ca)
      options.ca_file = dir_.path() + "/cert.pem";
    std::shared_ptr<AsyncWsClient> client;
    AsyncWsCallbacks callbacks;
    callbacks.on_message = [&](std::string m) {
      got = std::move(m);
      client->Close();
    };
    callbacks.on_close = [&](std::string reason) { closed = std::move(reason); };
    auto c = AsyncWsClient::Connect(ioc, url_, "/ws", options, std::move(callbacks));
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client = *c;
    ioc.run_for(std::chrono::seconds(20));
    if (with_ca) {
      EXPECT_EQ(got, "secure hello");
    } else {
      EXPECT_EQ(got, "");
      EXPECT_NE(closed.find("TLS handshake"), std::string::npos) << closed;
    }
    client.reset();
  }
  // An unreadable CA file is an error at once, naming the field.
  boost::asio::io_context ioc;
  AsyncWsOptions options;
  options.ca_file = dir_.path() + "/missing.pem";
  auto c = AsyncWsClient::Connect(ioc, url_, "/ws", options, {});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().field(), "ca_file");
}

}  // namespace
}  // namespace gsched::net
