// The one door through which JSON text enters gsched: `ParseJson` parses with hard limits (size,
// nesting depth), rejects invalid UTF-8 and trailing data, and - unlike a plain
// `boost::json::parse`, which silently keeps the last of two equal keys - rejects duplicate object
// keys, so that `{"gpus_per_node": 1, "gpus_per_node": 64}` cannot mean different things to a proxy
// and to the scheduler. Every REST body, watch event and worker message goes through it.
//
// Errors are `Status` values: `kInvalidArgument` with the byte offset for malformed text and with
// the JSON path of the repeated key for duplicates (`jobs[3].env.PATH`), `kResourceExhausted` for
// a body over `max_bytes`. Nothing here throws.
//
// Threading: stateless; call from any thread.
#pragma once

#include <boost/json/value.hpp>
#include <cstddef>
#include <string_view>

#include "scheduler/common/status.h"

namespace gsched::api {

struct JsonLimits {
  // Largest accepted text. A batch of 10,000 job specs is a few MiB.
  size_t max_bytes = size_t{16} << 20;
  // Deepest accepted nesting of arrays and objects; no gsched message needs more than ~6.
  size_t max_depth = 32;
};

Result<boost::json::value> ParseJson(std::string_view text, const JsonLimits& limits = {});

}  // namespace gsched::api
