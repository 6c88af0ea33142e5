// JSON codecs of the wire types in types.h: strict, validating decoders and deterministic encoders.
//
// Decoders never throw. They return the value or an `kInvalidArgument` `Status` whose `field()` is
// the JSON path of the first bad field (`jobs[3].gpus_per_node`, `command[2]`, `env.PATH`) and
// whose message says what is accepted (`must be 1..64`, `must be one of high, normal, preemptible`,
// `unknown field; did you mean 'gpus_per_node'?`). Types written by people - `JobSpec`, `Account`
// (with `Quota`, `Budget`), `TokenRequest` - reject unknown fields so that a typo never silently
// drops a setting; types written by the scheduler for programs - `Job`, `Node`, `Event`,
// `TokenAnswer`, `WhoAmI`, `ApiError` - ignore unknown fields so that older readers survive newer
// writers. A `JobSpec` is strict wherever it appears, also inside a `Job`.
//
// Encoders produce the same JSON for equal values: maps are ordered, timestamps are RFC 3339 with
// milliseconds (`FormatTimestamp`), absent optional fields of a `JobSpec` are left out and absent
// ones of a `Job` are `null`. `Decode(Encode(x)) == x` for every valid `x`.
//
// Text enters through `ParseJson` (json.h); these functions work on parsed values.
//
// Threading: stateless.
#pragma once

#include <boost/json/fwd.hpp>
#include <boost/json/value.hpp>
#include <concepts>
#include <string_view>
#include <vector>

#include "scheduler/api/types.h"
#include "scheduler/common/status.h"

namespace gsched::api {

// `"TERM"`, `"SIGTERM"`, `"term"` -> `"SIGTERM"`; one of SIGTERM SIGINT SIGUSR1 SIGUSR2 SIGHUP
// SIGQUIT SIGKILL.
Result<std::string> NormalizeSignal(std::string_view name);

// `"h100"`: 1..64 characters of [a-z0-9._-]. Whether the type exists is the server's business.
Status CheckGpuTypeName(std::string_view name);

Result<JobSpec> DecodeJobSpec(const boost::json::value& v);
// What a new job must also meet (the submit path, not stored records or other readers): an image
// that `CheckImage` accepts and no loader variable (`IsLoaderVariable`) in `env`.
Status CheckNewJobSpec(const JobSpec& spec);
// `POST /v1/jobs`: one `JobSpec`, or `{"jobs": [JobSpec, ...]}` with 1..10,000 specs, each
// decoded and checked with `CheckNewJobSpec`.
Result<std::vector<JobSpec>> DecodeSubmitBody(const boost::json::value& v);
Result<Dependency> DecodeDependency(const boost::json::value& v);
Result<Reason> DecodeReason(const boost::json::value& v);
Result<Allocation> DecodeAllocation(const boost::json::value& v);
Result<AttemptRecord> DecodeAttemptRecord(const boost::json::value& v);
Result<Job> DecodeJob(const boost::json::value& v);
Result<Gpu> DecodeGpu(const boost::json::value& v);
Result<Node> DecodeNode(const boost::json::value& v);
Result<Quota> DecodeQuota(const boost::json::value& v);
Result<Budget> DecodeBudget(const boost::json::value& v);
Result<Account> DecodeAccount(const boost::json::value& v);
Result<Event> DecodeEvent(const boost::json::value& v);
Result<TokenRequest> DecodeTokenRequest(const boost::json::value& v);
Result<TokenAnswer> DecodeTokenAnswer(const boost::json::value& v);
Result<WhoAmI> DecodeWhoAmI(const boost::json::value& v);
// Takes the whole error body, `{"error": {...}}`.
Result<ApiError> DecodeApiError(const boost::json::value& v);

boost::json::value Encode(const JobSpec& spec);
boost::json::value Encode(const Dependency& dependency);
boost::json::value Encode(const Reason& reason);
boost::json::value Encode(const Allocation& allocation);
boost::json::value Encode(const AttemptRecord& attempt);
boost::json::value Encode(const Job& job);
boost::json::value Encode(const Gpu& gpu);
boost::json::value Encode(const Node& node);
boost::json::value Encode(const Quota& quota);
boost::json::value Encode(const Budget& budget);
boost::json::value Encode(const Account& account);
boost::json::value Encode(const Event& event);
boost::json::value Encode(const TokenRequest& request);
boost::json::value Encode(const TokenAnswer& answer);
boost::json::value Encode(const WhoAmI& whoami);
// The whole error body, `{"error": {"code", "message", "field"}}`; `field` only when set.
boost::json::value Encode(const ApiError& error);

// The error body for a failed `Status`: `code` is `StatusCodeName(status.code())`.
boost::json::value ErrorBody(const Status& status);

// Boost.JSON customisation point: `boost::json::value_from(x)` is `Encode(x)` for every type above.
// There is deliberately no `value_to`: decoding goes through the `Decode...` functions, which
// return a `Status` with the field path instead of throwing.
template <typename T>
requires requires(const T& t) {
  { Encode(t) } -> std::same_as<boost::json::value>;
}
void tag_invoke(const boost::json::value_from_tag&, boost::json::value& jv, const T& t) {
  jv = Encode(t);
}

}  // namespace gsched::api
