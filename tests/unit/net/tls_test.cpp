// HTTPS and WSS over loopback with a throwaway self-signed certificate made by the openssl CLI.
#include <gtest/gtest.h>

#include <cstdlib>

#include "scheduler/net/http_client.h"
#include "scheduler/net/http_server.h"
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

}  // namespace
}  // namespace gsched::net
