#include "scheduler/ha/log_record.h"

#include <cstring>

namespace gsched::ha {
namespace {

constexpr std::string_view kMagic = "GSL1";
constexpr size_t kHeaderBytes = 4 + 8 + 4 + 4;

template <typename T>
void PutFixed(std::string& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i)
    out += static_cast<char>((v >> (8 * i)) & 0xff);
}
template <typename T>
T GetFixed(std::string_view in) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    v |= static_cast<T>(static_cast<uint8_t>(in[i])) << (8 * i);
  return v;
}

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

bool GetVarint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    auto b = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0)
      return true;
  }
  return false;
}

bool GetBytes(std::string_view& in, std::string& out) {
  uint64_t n = 0;
  if (!GetVarint(in, n) || n > in.size())
    return false;
  out.assign(in.substr(0, n));
  in.remove_prefix(n);
  return true;
}

}  // namespace

std::vector<std::string> EncodeGroup(uint64_t epoch, const std::vector<state::WriteBatch>& batches,
                                     size_t max_record_bytes) {
  std::string payload;
  for (const state::WriteBatch& b : batches) {
    for (const state::Mutation& m : b.mutations()) {
      payload += static_cast<char>(m.kind);
      payload += static_cast<char>(m.family);
      PutVarint(payload, m.key.size());
      payload += m.key;
      PutVarint(payload, m.value.size());
      payload += m.value;
    }
  }
  size_t piece = max_record_bytes > kHeaderBytes + 1 ? max_record_bytes - kHeaderBytes : 1;
  auto parts = static_cast<uint32_t>(std::max<size_t>(1, (payload.size() + piece - 1) / piece));
  std::vector<std::string> out;
  out.reserve(parts);
  for (uint32_t p = 0; p < parts; ++p) {
    std::string r(kMagic);
    PutFixed<uint64_t>(r, epoch);
    PutFixed<uint32_t>(r, p);
    PutFixed<uint32_t>(r, parts);
    r.append(std::string_view(payload).substr(size_t{p} * piece, piece));
    out.push_back(std::move(r));
  }
  return out;
}

Result<LogRecord> DecodeRecord(std::string_view record) {
  if (record.size() < kHeaderBytes || !record.starts_with(kMagic))
    return Status::InvalidArgument("not a log record (" + std::to_string(record.size()) +
                                   " bytes)");
  LogRecord r;
  r.epoch = GetFixed<uint64_t>(record.substr(4));
  r.part = GetFixed<uint32_t>(record.substr(12));
  r.parts = GetFixed<uint32_t>(record.substr(16));
  if (r.parts == 0 || r.part >= r.parts) {
    return Status::InvalidArgument("log record part " + std::to_string(r.part) + " of " +
                                   std::to_string(r.parts));
  }
  r.payload = record.substr(kHeaderBytes);
  return r;
}

Result<state::WriteBatch> DecodeMutations(std::string_view payload) {
  state::WriteBatch batch;
  while (!payload.empty()) {
    if (payload.size() < 2)
      return Status::InvalidArgument("log record: truncated mutation");
    auto kind = static_cast<uint8_t>(payload[0]);
    auto family = static_cast<uint8_t>(payload[1]);
    payload.remove_prefix(2);
    if (kind > static_cast<uint8_t>(state::Mutation::Kind::kDeleteRange) ||
        family >= state::kFamilyCount) {
      return Status::InvalidArgument("log record: bad mutation kind " + std::to_string(kind) +
                                     " or family " + std::to_string(family));
    }
    std::string key, value;
    if (!GetBytes(payload, key) || !GetBytes(payload, value))
      return Status::InvalidArgument("log record: truncated mutation");
    auto f = static_cast<state::Family>(family);
    switch (static_cast<state::Mutation::Kind>(kind)) {
      case state::Mutation::Kind::kPut:
        batch.Put(f, std::move(key), std::move(value));
        break;
      case state::Mutation::Kind::kDelete:
        batch.Delete(f, std::move(key));
        break;
      case state::Mutation::Kind::kDeleteRange:
        batch.DeleteRange(f, std::move(key), std::move(value));
        break;
    }
  }
  return batch;
}

std::string LogKey(std::string_view log_prefix, uint64_t seq) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string key(log_prefix);
  for (int shift = 60; shift >= 0; shift -= 4)
    key += kHex[(seq >> shift) & 15];
  return key;
}

Result<uint64_t> ParseLogKey(std::string_view log_prefix, std::string_view key) {
  if (!key.starts_with(log_prefix) || key.size() != log_prefix.size() + 16)
    return Status::InvalidArgument("not a log key");
  uint64_t seq = 0;
  for (char c : key.substr(log_prefix.size())) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0)
      return Status::InvalidArgument("not a log key");
    seq = (seq << 4) | static_cast<uint64_t>(d);
  }
  return seq;
}

}  // namespace gsched::ha
