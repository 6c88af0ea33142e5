#include "client/api_client.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <thread>

#include "scheduler/api/codec.h"
#include "scheduler/api/json.h"
#include "scheduler/net/http_client.h"
#include "scheduler/net/server_list.h"

namespace gsched::client {
namespace {

net::ClientOptions Options(const CliConfig& config) {
  return {.token = config.token, .ca_file = config.ca_file, .timeout = config.timeout};
}

// The pause between two rounds over the list while only standbys answer (a failover under way):
// 100 ms, doubling, at most 1 s.
Duration RoundPause(int round) {
  return std::min<Duration>(Duration(100) * (1 << std::min(round, 4)), Seconds(1));
}

// The leader a standby names, from the header, else from the error body's `leader`.
std::string LeaderOf(const net::HttpResponse& r) {
  std::string leader = net::LeaderHeader(r.headers);
  if (!leader.empty())
    return leader;
  auto body = api::ParseJson(r.body);
  if (!body.ok() || !body->is_object())
    return {};
  const auto* error = body->get_object().if_contains("error");
  const auto* named =
      error && error->is_object() ? error->get_object().if_contains("leader") : nullptr;
  return named && named->is_string() ? std::string(named->get_string()) : std::string();
}

// A standby's refusal: 503 naming a leader, or saying it is a standby (no leader known yet). Any
// other 503 (a leader that cannot write) is an answer for the caller.
bool IsStandbyRefusal(const net::HttpResponse& r) {
  if (r.status != 503)
    return false;
  if (!LeaderOf(r).empty())
    return true;
  auto body = api::ParseJson(r.body);
  if (!body.ok())
    return false;
  auto error = api::DecodeApiError(*body);
  return error.ok() && error->message.find("standby") != std::string::npos;
}

// What a standby said, for the error that lists every scheduler's answer.
std::string DescribeRefusal(const net::HttpResponse& r, const net::FailoverList& list) {
  std::string leader = LeaderOf(r);
  if (leader.empty())
    return "a standby, no leader known yet";
  return "a standby; the leader is " + leader + (list.Find(leader) ? "" : " (not in the list)");
}

// What each scheduler said in a round that found no leader: "URL: what; URL: what".
class Attempts {
 public:
  void Add(const std::string& url, std::string what) { said_[url] = std::move(what); }
  std::string Describe(const net::FailoverList& list) const {
    std::string out;
    for (const auto& url : list.urls()) {
      auto it = said_.find(url);
      if (it != said_.end())
        out += (out.empty() ? "" : "; ") + url + ": " + it->second;
    }
    return out;
  }

 private:
  std::map<std::string, std::string> said_;
};

// Tries the list's schedulers in turn until `attempt` settles. `attempt(url, leader)` returns
// the outcome, or nothing to go on (after noting in `attempts` what `url` said, and setting
// `leader` when a standby named one). Rounds that met a standby are repeated, with a pause, until
// `deadline`; otherwise one round that settles nothing ends in what each scheduler said.
template <typename T, typename Attempt>
Result<T> AcrossSchedulers(net::FailoverList& list, std::chrono::steady_clock::time_point deadline,
                           Attempts& attempts, bool& standby_seen, Attempt attempt) {
  for (int round = 0;; ++round) {
    while (true) {
      std::string leader;
      if (std::optional<Result<T>> done = attempt(list.current(), leader))
        return std::move(*done);
      if (list.Failed(leader).round_over)
        break;
    }
    Duration pause = RoundPause(round);
    if (!standby_seen || std::chrono::steady_clock::now() + pause >= deadline)
      return Status::Unavailable(attempts.Describe(list));
    std::this_thread::sleep_for(pause);
  }
}

// Each request to the leader among several schedulers, as `NetConnector` (api_client.h) says.
// A refused connection sent nothing and a standby's 503 did nothing: both move on. With a single
// URL this is the plain client: its errors and answers are unchanged.
class FailoverTransport final : public Transport {
 public:
  FailoverTransport(std::shared_ptr<net::FailoverList> servers, net::ClientOptions options)
      : servers_(std::move(servers)), options_(std::move(options)) {}

  std::string server() const override { return answered_; }

  Result<net::HttpResponse> Request(std::string_view method, std::string_view target,
                                    std::string body) override {
    net::FailoverList& list = *servers_;
    if (list.size() == 1) {
      answered_ = list.current();
      ASSIGN_OR_RETURN(net::HttpClient * client, Client(list.current()));
      return client->Request(method, target, std::move(body));
    }
    const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
    Attempts attempts;
    bool standby_seen = false;
    return AcrossSchedulers<net::HttpResponse>(
        list, deadline, attempts, standby_seen,
        [&](const std::string& url,
            std::string& leader) -> std::optional<Result<net::HttpResponse>> {
          auto client = Client(url);
          if (!client.ok())
            return client.status();
          auto r = (*client)->Request(method, target, body);
          if (!r.ok()) {
            if ((*client)->MayHaveBeenSent() && !IsIdempotent(method)) {
              return Status(r.status().code(),
                            url + ": " + r.status().message() +
                                "; the request may have been carried out, so it was not sent to "
                                "another scheduler (check before trying again)");
            }
            attempts.Add(url, r.status().message());
            return std::nullopt;
          }
          if (IsStandbyRefusal(*r)) {
            standby_seen = true;
            leader = LeaderOf(*r);
            attempts.Add(url, DescribeRefusal(*r, list));
            return std::nullopt;
          }
          list.Succeeded();
          answered_ = url;
          return r;
        });
  }

 private:
  static bool IsIdempotent(std::string_view method) {
    return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE";
  }

  // One kept-alive client per scheduler.
  Result<net::HttpClient*> Client(const std::string& url) {
    auto it = clients_.find(url);
    if (it == clients_.end()) {
      ASSIGN_OR_RETURN(auto client, net::HttpClient::Create(url, options_));
      it = clients_.emplace(url, std::move(client)).first;
    }
    return it->second.get();
  }

  std::shared_ptr<net::FailoverList> servers_;
  net::ClientOptions options_;
  std::string answered_;
  std::map<std::string, std::unique_ptr<net::HttpClient>> clients_;
};

class WsWatchStream final : public WatchStream {
 public:
  explicit WsWatchStream(std::unique_ptr<net::WsClient> ws) : ws_(std::move(ws)) {}
  ~WsWatchStream() override { ws_->Close(); }
  Result<std::string> Read(Duration timeout) override { return ws_->Read(timeout); }

 private:
  std::unique_ptr<net::WsClient> ws_;
};

// The refusal of an upgrade as the single-server client reports it.
Status RefusedUpgrade(const net::HttpResponse& res) {
  return Status(res.status == 401   ? StatusCode::kUnauthenticated
                : res.status == 403 ? StatusCode::kPermissionDenied
                : res.status == 404 ? StatusCode::kNotFound
                                    : StatusCode::kInvalidArgument,
                "upgrade refused with " + std::to_string(res.status) + ": " + res.body);
}

// The watch feed from the leader, chosen as `FailoverTransport` chooses (an upgrade changes
// nothing, so any failure may be retried elsewhere).
Result<std::unique_ptr<WatchStream>> OpenWatch(net::FailoverList& list, const std::string& target,
                                               const net::ClientOptions& options) {
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  Attempts attempts;
  bool standby_seen = false;
  return AcrossSchedulers<std::unique_ptr<WatchStream>>(
      list, deadline, attempts, standby_seen,
      [&](const std::string& url,
          std::string& leader) -> std::optional<Result<std::unique_ptr<WatchStream>>> {
        auto opened = net::WsClient::Open(url, target, options);
        if (!opened.ok()) {
          if (list.size() == 1 || opened.status().code() == StatusCode::kInvalidArgument)
            return opened.status();
          attempts.Add(url, opened.status().message());
          return std::nullopt;
        }
        if (auto* ws = std::get_if<std::unique_ptr<net::WsClient>>(&*opened)) {
          list.Succeeded();
          return std::unique_ptr<WatchStream>(std::make_unique<WsWatchStream>(std::move(*ws)));
        }
        const net::HttpResponse& refusal = std::get<net::HttpResponse>(*opened);
        if (list.size() == 1 || !IsStandbyRefusal(refusal))
          return RefusedUpgrade(refusal);
        standby_seen = true;
        leader = LeaderOf(refusal);
        attempts.Add(url, DescribeRefusal(refusal, list));
        return std::nullopt;
      });
}

}  // namespace

Connector NetConnector() {
  // The schedulers of one CLI run and the one that answered last, shared by its HTTP requests
  // and its watch feed; made on first use from the first config seen (one run has one config).
  auto shared = std::make_shared<std::shared_ptr<net::FailoverList>>();
  auto choose = [shared](const CliConfig& config) -> Result<std::shared_ptr<net::FailoverList>> {
    if (!*shared) {
      Status valid = net::ValidateServerList(config.servers, "server");
      if (!valid.ok())
        return Status::InvalidArgument(config.servers.size() > 1 ? valid.ToString()
                                                                 : valid.message());
      *shared = std::make_shared<net::FailoverList>(config.servers);
    }
    return *shared;
  };
  Connector c;
  c.http = [choose](const CliConfig& config) -> Result<std::unique_ptr<Transport>> {
    ASSIGN_OR_RETURN(auto servers, choose(config));
    return std::unique_ptr<Transport>(
        std::make_unique<FailoverTransport>(std::move(servers), Options(config)));
  };
  c.watch = [choose](const CliConfig& config,
                     const std::string& target) -> Result<std::unique_ptr<WatchStream>> {
    ASSIGN_OR_RETURN(auto servers, choose(config));
    return OpenWatch(*servers, target, Options(config));
  };
  return c;
}

}  // namespace gsched::client
