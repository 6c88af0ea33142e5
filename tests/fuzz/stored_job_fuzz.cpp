// libFuzzer target: arbitrary bytes as a stored job record (scheduler/server/stored_job.h), in
// both encodings and at both levels of detail. Decoding must never crash, hang or allocate without
// bound; a record that decodes must encode and decode back to the same record.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "scheduler/server/stored_job.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using gsched::server::DecodeStoredJob;
  using gsched::server::StoredJobDetail;
  if (size == 0)
    return 0;
  // The first byte picks the encoding to aim at (V1, JSON, V2, V3 or raw), so that most inputs
  // get past the format byte.
  std::string value;
  switch (data[0] % 5) {
    case 0:
      value.push_back(gsched::server::kStoredJobBinaryV1);
      break;
    case 1:
      value.push_back('{');
      break;
    case 2:
      value.push_back(gsched::server::kStoredJobBinaryV2);
      break;
    case 3:
      value.push_back(gsched::server::kStoredJobBinaryV3);
      break;
    default:
      break;
  }
  value.append(reinterpret_cast<const char*>(data + 1), size - 1);
  for (StoredJobDetail detail : {StoredJobDetail::kWhole, StoredJobDetail::kStateIfFinished}) {
    auto record = DecodeStoredJob("job/1", value, detail);
    if (!record.ok() || detail != StoredJobDetail::kWhole)
      continue;
    const std::string again = gsched::server::EncodeStoredJob(*record);
    auto back = DecodeStoredJob("job/1", again);
    if (!back.ok() || !(*back == *record))
      std::abort();  // The binary form does not round-trip what it decoded.
  }
  return 0;
}
