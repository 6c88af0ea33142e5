// Names of watch-feed event types that the server and its clients both need to tell apart.
#pragma once

#include <string_view>

namespace gsched::api {

// Event types that describe the present rather than a change: sent on the watch feed only to
// subscribers that ask (`ephemeral=1`), never written to the event log, never replayed; each
// repeats the seq of the log event it follows.
inline bool IsEphemeralEvent(std::string_view type) {
  return type == "job.reason" || type == "account.usage" || type == "cluster.summary";
}

}  // namespace gsched::api
