// Several scheduler URLs and which one to try next (DESIGN.md section 12): the worker and the CLI
// are given the URLs of every scheduler of a high-availability group and follow the leader.
//
// A standby refuses API requests and WebSocket upgrades with 503 and names the leader in the
// `X-Gsched-Leader` header when it knows one. A client follows that hint only to a URL of its own
// list, compared by scheme, host and port (`ServerOrigin`): a standby must not be able to send the
// client's token anywhere else.
//
// `FailoverList` decides, with no I/O and no clock, where the next attempt goes:
//   - the first attempt goes to the URL that worked last (at first, the first URL);
//   - a failure without a usable hint moves on to the next URL of the list;
//   - a hint naming another URL of the list makes that URL the next one at once, at most `size()`
//     times per round, so that two confused standbys naming each other cannot spin;
//   - a round ends when `size()` attempts failed without a hint to follow: every URL had its
//     chance. The caller then waits (its backoff) or gives up; the next round starts where the
//     list stands.
//
// Threading: a plain value; not thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "scheduler/common/status.h"

namespace gsched::net {

// The header in which a standby names the leader's URL.
inline constexpr std::string_view kLeaderHeader = "X-Gsched-Leader";

// "http://HOST:PORT" with the scheme and host in lower case and the default port filled in: what
// two URLs of one scheduler have in common. `std::nullopt` for a URL `ParseServerUrl` refuses.
std::optional<std::string> ServerOrigin(std::string_view url);

// A list of URLs from a comma-separated string ("http://a:8600, http://b:8600"), each checked
// with `ParseServerUrl`; an error names the entry as `field[i]` (or `field` for a single URL).
Result<std::vector<std::string>> ParseServerList(std::string_view text, std::string_view field);
// Checks each URL of a list the same way (a list from a YAML sequence, say).
Status ValidateServerList(const std::vector<std::string>& urls, std::string_view field);

// The value of the leader header among `headers` (names in any case); empty when absent.
std::string LeaderHeader(const std::vector<std::pair<std::string, std::string>>& headers);

class FailoverList {
 public:
  // `urls` must not be empty; entries are expected to be valid (`ParseServerList`).
  explicit FailoverList(std::vector<std::string> urls);

  const std::vector<std::string>& urls() const { return urls_; }
  size_t size() const { return urls_.size(); }
  // The URL the next attempt goes to.
  const std::string& current() const { return urls_[current_]; }
  size_t current_index() const { return current_; }
  // The index of the URL of the list that names the same scheduler as `url`.
  std::optional<size_t> Find(std::string_view url) const;

  // The current URL worked: it stays current (the last good one) and a new round begins.
  void Succeeded();

  struct Step {
    // Every URL failed in this round: wait before the next attempt (or give up).
    bool round_over = false;
    // The next attempt goes to the leader a standby named.
    bool followed_leader = false;
    // A standby named a leader that is not in the list (ignored; worth a log line).
    bool leader_not_listed = false;
  };
  // The current URL failed; `leader` is the leader its refusal named (empty: none). Moves on to
  // the URL to try next.
  Step Failed(std::string_view leader = {});

 private:
  std::vector<std::string> urls_;
  std::vector<std::string> origins_;
  size_t current_ = 0;
  size_t failures_in_round_ = 0;
  size_t hops_in_round_ = 0;
};

}  // namespace gsched::net
