// Seeded random mutations of valid bodies: flipped bits, inserted and deleted bytes, duplicated
// chunks. Decoding must never crash; it either fails with a non-OK `Status` that says something,
// or succeeds - and then the value must survive an encode/decode round trip unchanged.
// A failing case prints its seed and iteration.
#include <gtest/gtest.h>

#include <array>
#include <boost/json/serialize.hpp>
#include <random>
#include <string>

#include "scheduler/api/codec.h"
#include "scheduler/api/json.h"
#include "scheduler/api/worker_messages.h"
#include "tests/unit/api/test_util.h"

namespace gsched::api {
namespace {

constexpr uint64_t kSeed = 20261123;
constexpr int kMutationsPerFile = 2500;  // x 8 files = 20,000 variants.

// Bytes that matter to JSON and UTF-8, and some that do not.
constexpr std::array<char, 24> kInteresting = {'{', '}', '[', ']',  '"', ',',    ':',    '\\',
                                               '0', '1', '9', '-',  'e', '.',    'n',    't',
                                               'u', ' ', 'x', '\0', 'A', '\x80', '\xc3', '\xff'};

std::string Mutate(std::string text, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> ops(1, 4);
  int n = ops(rng);
  for (int i = 0; i < n && !text.empty(); ++i) {
    std::uniform_int_distribution<size_t> pos(0, text.size() - 1);
    size_t p = pos(rng);
    switch (rng() % 5) {
      case 0:  // Flip one bit.
        text[p] = static_cast<char>(text[p] ^ (1 << (rng() % 8)));
        break;
      case 1:  // Insert an interesting byte.
        text.insert(text.begin() + static_cast<std::ptrdiff_t>(p),
                    kInteresting[rng() % kInteresting.size()]);
        break;
      case 2:  // Delete a few bytes.
        text.erase(p, 1 + rng() % 4);
        break;
      case 3: {  // Duplicate a chunk (repeats keys, array elements, ...).
        size_t len = 1 + rng() % 32;
        std::string chunk = text.substr(p, len);
        text.insert(std::min(text.size(), p + len), chunk);
        break;
      }
      default:  // Replace a byte with a digit (changes numbers, breaks strings).
        text[p] = static_cast<char>('0' + rng() % 10);
        break;
    }
  }
  return text;
}

// Decodes `v` with `decode`; when it is accepted, checks that encoding and decoding again gives
// the same value.
template <typename DecodeFn>
void CheckValue(const boost::json::value& v, DecodeFn decode, const std::string& where) {
  auto decoded = decode(v);
  if (!decoded.ok()) {
    EXPECT_FALSE(decoded.status().message().empty()) << where;
    return;
  }
  auto again = decode(Encode(*decoded));
  ASSERT_TRUE(again.ok()) << where
                          << ": re-decoding the encoding failed: " << again.status().ToString();
  EXPECT_TRUE(*again == *decoded) << where;
}

template <typename DecodeText>
void CheckMessage(std::string_view text, DecodeText decode, const std::string& where) {
  auto decoded = decode(text);
  if (!decoded.ok()) {
    EXPECT_FALSE(decoded.status().message().empty()) << where;
    return;
  }
  auto again = decode(SerializeMessage(*decoded));
  ASSERT_TRUE(again.ok()) << where << ": " << again.status().ToString();
  EXPECT_TRUE(*again == *decoded) << where;
}

Result<std::vector<JobSpec>> DecodeBatch(const boost::json::value& v) {
  return DecodeSubmitBody(v);
}

class MutationTest : public ::testing::TestWithParam<std::string> {};

TEST_P(MutationTest, NeverCrashesAndAcceptedValuesRoundTrip) {
  const std::string file = GetParam();
  const std::string original = testing::ReadDataFile(file);
  std::mt19937_64 rng(kSeed ^ std::hash<std::string>()(file));
  int parsed = 0;
  for (int i = 0; i < kMutationsPerFile; ++i) {
    std::string text = Mutate(original, rng);
    std::string where = file + " seed " + std::to_string(kSeed) + " iteration " +
                        std::to_string(i) + ": " + text.substr(0, 120);
    if (file.starts_with("worker_")) {
      CheckMessage(
          text, [](std::string_view t) { return DecodeWorkerMessage(t); }, where);
      continue;
    }
    if (file.starts_with("scheduler_")) {
      CheckMessage(
          text, [](std::string_view t) { return DecodeSchedulerMessage(t); }, where);
      continue;
    }
    auto v = ParseJson(text);
    if (!v.ok()) {
      EXPECT_NE(v.status().code(), StatusCode::kOk) << where;
      continue;
    }
    ++parsed;
    if (file.starts_with("job_spec")) {
      CheckValue(*v, DecodeJobSpec, where);
    } else if (file.starts_with("submit")) {
      auto jobs = DecodeBatch(*v);
      if (jobs.ok()) {
        for (const JobSpec& spec : *jobs)
          CheckValue(Encode(spec), DecodeJobSpec, where);
      }
    } else if (file.starts_with("job")) {
      CheckValue(*v, DecodeJob, where);
    } else if (file.starts_with("account")) {
      CheckValue(*v, DecodeAccount, where);
    } else if (file.starts_with("node")) {
      CheckValue(*v, DecodeNode, where);
    }
  }
  // Mutations of one or a few bytes still leave some valid JSON to exercise the decoders.
  if (!file.starts_with("worker_") && !file.starts_with("scheduler_")) {
    EXPECT_GT(parsed, 0) << file;
  }
}

// Replaces one randomly chosen value anywhere in the document (or removes it from its object) with
// a value of another type or at the edge of a range, so that every field's checks are reached.
void MutateValue(boost::json::value& root, std::mt19937_64& rng) {
  static const std::array<boost::json::value, 14> kReplacements = {
      nullptr,
      true,
      0,
      -1,
      1.5,
      8.0,
      1e300,
      "",
      "x",
      boost::json::array{},
      boost::json::object{},
      static_cast<uint64_t>(18446744073709551615u),
      "2027-01-01T00:00:00Z",
      boost::json::array{1, "a"}};
  boost::json::value* v = &root;
  // Walk down a random path; stop at a random depth.
  while (rng() % 4 != 0) {
    if (auto* o = v->if_object(); o != nullptr && !o->empty()) {
      auto it = o->begin() + static_cast<std::ptrdiff_t>(rng() % o->size());
      if (rng() % 8 == 0) {
        o->erase(it);
        return;
      }
      v = &it->value();
    } else if (auto* a = v->if_array(); a != nullptr && !a->empty()) {
      v = &(*a)[rng() % a->size()];
    } else {
      break;
    }
  }
  *v = kReplacements[rng() % kReplacements.size()];
}

TEST_P(MutationTest, ValueMutationsAreRejectedOrRoundTrip) {
  const std::string file = GetParam();
  const boost::json::value original = testing::Json(testing::ReadDataFile(file));
  std::mt19937_64 rng(kSeed + 1);
  int accepted = 0;
  for (int i = 0; i < kMutationsPerFile; ++i) {
    boost::json::value v = original;
    MutateValue(v, rng);
    std::string where = file + " seed " + std::to_string(kSeed + 1) + " iteration " +
                        std::to_string(i) + ": " + boost::json::serialize(v).substr(0, 300);
    std::string text = boost::json::serialize(v);
    if (file.starts_with("worker_")) {
      CheckMessage(
          text, [](std::string_view t) { return DecodeWorkerMessage(t); }, where);
    } else if (file.starts_with("scheduler_")) {
      CheckMessage(
          text, [](std::string_view t) { return DecodeSchedulerMessage(t); }, where);
    } else if (file.starts_with("job_spec")) {
      accepted += DecodeJobSpec(v).ok();
      CheckValue(v, DecodeJobSpec, where);
    } else if (file.starts_with("submit")) {
      auto jobs = DecodeBatch(v);
      accepted += jobs.ok();
      if (jobs.ok()) {
        for (const JobSpec& spec : *jobs)
          CheckValue(Encode(spec), DecodeJobSpec, where);
      }
    } else if (file.starts_with("job")) {
      accepted += DecodeJob(v).ok();
      CheckValue(v, DecodeJob, where);
    } else if (file.starts_with("account")) {
      accepted += DecodeAccount(v).ok();
      CheckValue(v, DecodeAccount, where);
    } else if (file.starts_with("node")) {
      accepted += DecodeNode(v).ok();
      CheckValue(v, DecodeNode, where);
    }
  }
  // Some replacements are valid (a null optional, a removed defaulted field), most are not.
  if (!file.starts_with("worker_") && !file.starts_with("scheduler_")) {
    EXPECT_GT(accepted, 0) << file;
    EXPECT_LT(accepted, kMutationsPerFile) << file;
  }
}

INSTANTIATE_TEST_SUITE_P(Files, MutationTest,
                         ::testing::Values("job_spec.json", "submit_batch.json", "job.json",
                                           "job_pending.json", "account.json", "node.json",
                                           "worker_hello.json", "scheduler_launch.json"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param.substr(0, info.param.find('.'));
                           return name;
                         });

}  // namespace
}  // namespace gsched::api
