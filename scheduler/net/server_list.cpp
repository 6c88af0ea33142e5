#include "scheduler/net/server_list.h"

#include <algorithm>
#include <cctype>

#include "scheduler/common/text.h"
#include "scheduler/net/http_client.h"

namespace gsched::net {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

std::optional<std::string> ServerOrigin(std::string_view url) {
  // The scheme is matched in lower case: "HTTP://A:1" and "http://a:1" are one scheduler.
  std::string lowered = Lower(url);
  auto parsed = ParseServerUrl(lowered);
  if (!parsed.ok())
    return std::nullopt;
  std::string host =
      parsed->host.find(':') != std::string::npos ? "[" + parsed->host + "]" : parsed->host;
  return std::string(parsed->tls ? "https://" : "http://") + host + ":" + parsed->port;
}

Result<std::vector<std::string>> ParseServerList(std::string_view text, std::string_view field) {
  std::vector<std::string> urls = SplitList(text);
  RETURN_IF_ERROR(ValidateServerList(urls, field));
  return urls;
}

Status ValidateServerList(const std::vector<std::string>& urls, std::string_view field) {
  if (urls.empty())
    return Status::InvalidArgument("must name at least one URL", std::string(field));
  for (size_t i = 0; i < urls.size(); ++i) {
    std::string name =
        urls.size() == 1 ? std::string(field) : std::string(field) + "[" + std::to_string(i) + "]";
    if (urls[i].empty())
      return Status::InvalidArgument("empty URL in the list", name);
    if (auto parsed = ParseServerUrl(urls[i]); !parsed.ok())
      return Status::InvalidArgument(parsed.status().message(), name);
  }
  return Status::Ok();
}

std::string LeaderHeader(const std::vector<std::pair<std::string, std::string>>& headers) {
  for (const auto& [name, value] : headers) {
    if (Lower(name) == Lower(kLeaderHeader))
      return value;
  }
  return {};
}

FailoverList::FailoverList(std::vector<std::string> urls) : urls_(std::move(urls)) {
  for (const auto& url : urls_)
    origins_.push_back(ServerOrigin(url).value_or(url));
}

std::optional<size_t> FailoverList::Find(std::string_view url) const {
  auto origin = ServerOrigin(url);
  if (!origin)
    return std::nullopt;
  for (size_t i = 0; i < origins_.size(); ++i) {
    if (origins_[i] == *origin)
      return i;
  }
  return std::nullopt;
}

void FailoverList::Succeeded() {
  failures_in_round_ = 0;
  hops_in_round_ = 0;
}

FailoverList::Step FailoverList::Failed(std::string_view leader) {
  Step step;
  if (!leader.empty()) {
    std::optional<size_t> at = Find(leader);
    if (!at) {
      step.leader_not_listed = true;
    } else if (*at != current_ && hops_in_round_ < urls_.size()) {
      // Straight to the leader: that hop is not a failure of the round.
      ++hops_in_round_;
      current_ = *at;
      step.followed_leader = true;
      return step;
    }
  }
  current_ = (current_ + 1) % urls_.size();
  if (++failures_in_round_ >= urls_.size()) {
    step.round_over = true;
    failures_in_round_ = 0;
    hops_in_round_ = 0;
  }
  return step;
}

}  // namespace gsched::net
