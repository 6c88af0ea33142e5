// The record of one job in the store's `jobs` family: the job, plus what only the scheduler keeps
// (its last checkpoint, whether it runs as preemptible).
//
// Two encodings, told apart by the first byte:
// - JSON (`{"job": {...}, "checkpoint": ms, "preemptible": true}`), first byte '{': what every
//   record was before the binary form, still read.
// - Binary, first byte `kStoredJobBinaryV1` (0x01), `kStoredJobBinaryV2` (0x02) or
//   `kStoredJobBinaryV3` (0x03): the fields
//   in a fixed order, integers as varints, strings and lists length-prefixed, enums by name (so
//   that reordering an enum does not change what a record means). Decoding it skips the JSON
//   parse and the field look-ups that made a restart with 1,000,000 stored jobs spend most of its
//   time decoding (restart.1m). V2 adds each attempt's `message` after its exit code and, at the
//   end, who placed a hold (`held_by`, `held_by_role`); V3, written for every job since, adds at
//   the end the running attempt's `rendezvous`, its gang's progress and the digest of the image
//   that ran (`image_digest`). Older records stay readable (no attempt messages, no hold's author,
//   no rendezvous, no digest). A new field needs a new format byte whose decoder reads it.
// Decoding never trusts the bytes: a truncated or garbled record is an error that names the key,
// never a crash or a huge allocation. A scheduler older than the binary form cannot read it: a
// data directory does not go back to one.
//
// Threading: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "scheduler/api/types.h"
#include "scheduler/common/clock.h"
#include "scheduler/common/status.h"

namespace gsched::server {

inline constexpr char kStoredJobBinaryV1 = '\x01';
inline constexpr char kStoredJobBinaryV2 = '\x02';
inline constexpr char kStoredJobBinaryV3 = '\x03';

// How one node's part of a multi-node attempt ended, as its worker reported it.
struct PartEnd {
  api::JobState state = api::JobState::kCompleted;
  std::optional<int32_t> exit_code;
  std::optional<std::string> signal;
  std::string message;

  friend bool operator==(const PartEnd&, const PartEnd&) = default;
};

// What a multi-node attempt has seen end while other nodes still run: the nodes whose part
// ended, and the first part that failed (which ends the gang, and names its end).
struct GangProgress {
  std::vector<std::string> parts_ended;
  std::optional<PartEnd> failure;

  friend bool operator==(const GangProgress&, const GangProgress&) = default;
};

struct StoredJobRecord {
  api::Job job;
  std::optional<Timestamp> checkpoint;
  bool preemptible = false;
  GangProgress gang;  // Since V3.

  friend bool operator==(const StoredJobRecord&, const StoredJobRecord&) = default;
};

// The binary form.
std::string EncodeStoredJob(const api::Job& job, std::optional<Timestamp> checkpoint,
                            bool preemptible, const GangProgress& gang = {});
inline std::string EncodeStoredJob(const StoredJobRecord& record) {
  return EncodeStoredJob(record.job, record.checkpoint, record.preemptible, record.gang);
}
// The JSON form (for tests and tools; the scheduler writes the binary form).
std::string EncodeStoredJobJson(const StoredJobRecord& record);

// How much of a record to decode.
enum class StoredJobDetail {
  kWhole,
  // A finished job only has `job.id` and `job.state` filled: loading needs no more of the
  // history, which can be large.
  kStateIfFinished,
};

// Either form. `key` is the record's key in the store, named in every error.
Result<StoredJobRecord> DecodeStoredJob(std::string_view key, std::string_view value,
                                        StoredJobDetail detail = StoredJobDetail::kWhole);

}  // namespace gsched::server
