// The replicated log's records (DESIGN.md section 12). The leader appends each group of committed
// batches to etcd, under `<prefix>log/<seq>` (seq as 16 hex digits, so that key order is log
// order), before it acknowledges any of them. A group larger than one etcd request is cut into
// parts with consecutive seqs; a reader applies a group only once it has every part.
//
// Record: "GSL1" | epoch u64 | part u32 | parts u32 | a piece of the group's mutations (all
// little-endian). Mutations, back to back: kind u8 | family u8 | varint key size | key | varint
// value size | value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "scheduler/common/status.h"
#include "scheduler/state/store.h"

namespace gsched::ha {

struct LogRecord {
  uint64_t epoch = 0;  // The leader's epoch that wrote it.
  uint32_t part = 0;   // 0-based.
  uint32_t parts = 1;
  std::string_view payload;  // Into the decoded text.
};

// The mutations of `batches`, in order, cut into records of at most `max_record_bytes`.
std::vector<std::string> EncodeGroup(uint64_t epoch, const std::vector<state::WriteBatch>& batches,
                                     size_t max_record_bytes);
Result<LogRecord> DecodeRecord(std::string_view record);
// The batch of a group's payload (its parts' payloads joined in order).
Result<state::WriteBatch> DecodeMutations(std::string_view payload);

// "<prefix>log/" + 16 hex digits; and back (`kInvalidArgument` for anything else).
std::string LogKey(std::string_view log_prefix, uint64_t seq);
Result<uint64_t> ParseLogKey(std::string_view log_prefix, std::string_view key);

}  // namespace gsched::ha
