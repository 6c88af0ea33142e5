#include "client/api_client.h"

#include "scheduler/net/http_client.h"

namespace gsched::client {
namespace {

net::ClientOptions Options(const CliConfig& config) {
  return {.token = config.token, .ca_file = config.ca_file, .timeout = config.timeout};
}

class HttpTransport final : public Transport {
 public:
  explicit HttpTransport(std::unique_ptr<net::HttpClient> client) : client_(std::move(client)) {}
  Result<net::HttpResponse> Request(std::string_view method, std::string_view target,
                                    std::string body) override {
    return client_->Request(method, target, std::move(body));
  }

 private:
  std::unique_ptr<net::HttpClient> client_;
};

class WsWatchStream final : public WatchStream {
 public:
  explicit WsWatchStream(std::unique_ptr<net::WsClient> ws) : ws_(std::move(ws)) {}
  ~WsWatchStream() override { ws_->Close(); }
  Result<std::string> Read(Duration timeout) override { return ws_->Read(timeout); }

 private:
  std::unique_ptr<net::WsClient> ws_;
};

}  // namespace

Connector NetConnector() {
  Connector c;
  c.http = [](const CliConfig& config) -> Result<std::unique_ptr<Transport>> {
    ASSIGN_OR_RETURN(auto client, net::HttpClient::Create(config.server, Options(config)));
    return std::unique_ptr<Transport>(std::make_unique<HttpTransport>(std::move(client)));
  };
  c.watch = [](const CliConfig& config,
               const std::string& target) -> Result<std::unique_ptr<WatchStream>> {
    ASSIGN_OR_RETURN(auto ws, net::WsClient::Connect(config.server, target, Options(config)));
    return std::unique_ptr<WatchStream>(std::make_unique<WsWatchStream>(std::move(ws)));
  };
  return c;
}

}  // namespace gsched::client
