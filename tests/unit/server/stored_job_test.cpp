// The stored form of a job: binary round trips, the older JSON records, and damaged records.
#include "scheduler/server/stored_job.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>

#include "scheduler/state/store.h"

namespace gsched::server {
namespace {

// A job with every optional part present and something in every list and map.
StoredJobRecord FullRecord() {
  StoredJobRecord r;
  api::Job& j = r.job;
  j.id = 42;
  j.spec.name = "train";
  j.spec.account = "lab";
  j.spec.image = "/images/pytorch";
  j.spec.command = {"python", "train.py", "--lr=0.1", ""};
  j.spec.env = {{"A", "1"}, {"EMPTY", ""}, {"UTF8", "h\xc3\xa9"}};
  j.spec.workdir = "/w";
  j.spec.nodes = 2;
  j.spec.gpus_per_node = 8;
  j.spec.gpu_type = {"h100", "h200"};
  j.spec.cpus_per_node = 64;
  j.spec.memory_mib_per_node = int64_t{1} << 20;  // 1 TiB.
  j.spec.time_limit_s = 3600;
  j.spec.priority_class = api::PriorityClass::kPreemptible;
  j.spec.topology = api::Topology::kBlock;
  j.spec.array = "0-9%2";
  j.spec.depends_on = {{api::DependencyType::kAfterAny, 7}, {api::DependencyType::kAfterOk, 9}};
  j.spec.checkpoint_signal = "SIGUSR1";
  j.spec.grace_period_s = 120;
  j.spec.requeue = true;
  j.spec.labels = {{"team", "vision"}};
  j.user = "alice";
  j.state = api::JobState::kRunning;
  j.submit_time = FromUnixMillis(1'800'000'000'123);
  j.start_time = FromUnixMillis(1'800'000'100'000);
  j.attempt = 2;
  j.allocation = {{"n1", {0, 1, 2, 3, 4, 5, 6, 7}}, {"n2", {63}}};
  j.exit_code = -9;
  j.signal = "SIGKILL";
  j.reason = api::Reason{api::ReasonCode::kQuota,
                         "quota",
                         {{"limit", 8}, {"account", "lab"}},
                         FromUnixMillis(1'800'000'200'000)};
  j.array_job_id = 40;
  j.array_index = 2;
  j.borrowing = true;
  j.held = true;
  j.priority = 1234.5;
  api::AttemptRecord a;
  a.attempt = 1;
  a.allocation = {{"n3", {1}}};
  a.start_time = FromUnixMillis(1'800'000'050'000);
  a.end_time = FromUnixMillis(1'800'000'060'000);
  a.state = api::JobState::kNodeFail;
  a.exit_code = 1;
  a.message = "the worker on node-1 no longer runs it";
  j.attempts = {a};
  r.checkpoint = FromUnixMillis(1'800'000'150'000);
  r.preemptible = true;
  j.held = true;
  j.held_by = "root";
  j.held_by_role = api::Role::kAdmin;
  j.rendezvous = api::Rendezvous{"10.0.0.3", 29512};
  r.gang.parts_ended = {"n2"};
  r.gang.failure = PartEnd{api::JobState::kFailed, 3, std::nullopt, "exit 3"};
  j.image_digest = "sha256:" + std::string(64, 'a');
  return r;
}

const std::string kKey = state::U64Key(42);

// A V1 record (before attempts kept their messages and holds named who placed them) still
// reads: V2's bytes without the attempt's message and without the hold's tail.
TEST(StoredJobTest, VersionOneRecordsStillRead) {
  StoredJobRecord r = FullRecord();
  r.job.held_by.clear();
  r.job.held_by_role.reset();
  r.job.rendezvous.reset();
  r.gang = {};
  r.job.image_digest.clear();
  std::string v3 = EncodeStoredJob(r);
  // V3's tail: no rendezvous, no ended parts, no failure, an empty digest; a byte each.
  std::string v2 = v3.substr(0, v3.size() - 4);
  // The attempt's message is a length byte and its text, right after the attempt's exit code;
  // the V2 tail of an empty `held_by` and no role is two bytes (length 0, absent).
  const std::string& message = r.job.attempts[0].message;
  size_t at = v2.find(static_cast<char>(message.size()) + message);
  ASSERT_NE(at, std::string::npos);
  std::string v1 = v2.substr(0, at) + v2.substr(at + 1 + message.size());
  v1 = std::string(1, kStoredJobBinaryV1) + v1.substr(1, v1.size() - 3);
  auto back = DecodeStoredJob(kKey, v1);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  r.job.attempts[0].message.clear();
  EXPECT_EQ(*back, r);
}

// A V2 record (before running attempts kept their rendezvous and jobs the digest of the image
// that ran) still reads: V3's bytes without the tail.
TEST(StoredJobTest, VersionTwoRecordsStillRead) {
  StoredJobRecord r = FullRecord();
  r.job.rendezvous.reset();
  r.gang = {};
  r.job.image_digest.clear();
  std::string v3 = EncodeStoredJob(r);
  ASSERT_EQ(v3.substr(v3.size() - 4), std::string(4, '\x00'));  // V3's tail, all empty.
  std::string v2 = std::string(1, kStoredJobBinaryV2) + v3.substr(1, v3.size() - 5);
  auto back = DecodeStoredJob(kKey, v2);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, r);
  // Read as V3, the same bytes end early.
  EXPECT_FALSE(DecodeStoredJob(kKey, std::string(1, kStoredJobBinaryV3) + v2.substr(1)).ok());
}

TEST(StoredJobTest, AMalformedDigestIsAnError) {
  StoredJobRecord r = FullRecord();
  r.job.image_digest = "sha256:" + std::string(64, 'X');
  auto back = DecodeStoredJob(kKey, EncodeStoredJob(r));
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.status().message().find("image_digest"), std::string::npos)
      << back.status().ToString();
}

TEST(StoredJobTest, BinaryRoundTrips) {
  for (const StoredJobRecord& r : {FullRecord(), StoredJobRecord{}}) {
    std::string bytes = EncodeStoredJob(r);
    ASSERT_EQ(bytes[0], kStoredJobBinaryV3);
    auto back = DecodeStoredJob(kKey, bytes);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, r);
  }
}

TEST(StoredJobTest, ANonFiniteNumberIsAnError) {
  // The binary form carries doubles as raw bits: NaN or infinity would not survive the JSON the
  // API answers with, so decoding refuses them.
  StoredJobRecord r = FullRecord();
  r.job.priority = std::numeric_limits<double>::quiet_NaN();
  auto back = DecodeStoredJob(kKey, EncodeStoredJob(r));
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.status().message().find("finite"), std::string::npos) << back.status().ToString();
  r.job.priority = std::numeric_limits<double>::infinity();
  EXPECT_FALSE(DecodeStoredJob(kKey, EncodeStoredJob(r)).ok());
}

TEST(StoredJobTest, BinaryIsSmallerThanJson) {
  // Not a requirement, but the point: a one-GPU pending job as loadgen submits it.
  StoredJobRecord r;
  r.job.id = 1'000'000;
  r.job.user = "bench";
  r.job.spec.account = "bench";
  r.job.spec.image = "/images/sim";
  r.job.spec.command = {"sleep"};
  r.job.spec.env = {{"GSCHED_SIM_DURATION_S", "60"}};
  r.job.submit_time = FromUnixMillis(1'800'000'000'000);
  EXPECT_LT(EncodeStoredJob(r).size() * 3, EncodeStoredJobJson(r).size());
}

TEST(StoredJobTest, OlderJsonRecordsAreRead) {
  StoredJobRecord r = FullRecord();
  auto back = DecodeStoredJob(kKey, EncodeStoredJobJson(r));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, r);
  // A record as the scheduler wrote them before the binary form (no checkpoint, not preemptible).
  r.checkpoint.reset();
  r.preemptible = false;
  back = DecodeStoredJob(kKey, EncodeStoredJobJson(r));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, r);
}

TEST(StoredJobTest, AFinishedJobCanBeReadForItsStateAlone) {
  StoredJobRecord finished = FullRecord();
  finished.job.state = api::JobState::kCompleted;
  StoredJobRecord active = FullRecord();
  for (const auto& encode : {EncodeStoredJob, EncodeStoredJobJson}) {
    auto f = DecodeStoredJob(kKey, encode(finished), StoredJobDetail::kStateIfFinished);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    EXPECT_EQ(f->job.state, api::JobState::kCompleted);
    EXPECT_EQ(f->job.id, 42u);
    EXPECT_TRUE(f->job.user.empty());  // Nothing more was read.
    auto a = DecodeStoredJob(kKey, encode(active), StoredJobDetail::kStateIfFinished);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_EQ(*a, active);
  }
}

TEST(StoredJobTest, EveryTruncationIsAnErrorNamingTheRecord) {
  for (const std::string& whole :
       {EncodeStoredJob(FullRecord()), EncodeStoredJobJson(FullRecord())}) {
    for (size_t n = 0; n < whole.size(); ++n) {
      auto r = DecodeStoredJob(kKey, std::string_view(whole).substr(0, n));
      ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes";
      EXPECT_NE(r.status().message().find("job record 42"), std::string::npos)
          << r.status().ToString();
    }
  }
  auto r = DecodeStoredJob(kKey, EncodeStoredJob(FullRecord()).substr(0, 30));
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos) << r.status().ToString();
}

TEST(StoredJobTest, DamagedRecordsAreErrorsNotCrashes) {
  // Unknown format byte, trailing bytes, an impossible count, a bad enum name.
  auto bad = [](std::string bytes) { return DecodeStoredJob(kKey, bytes).status(); };
  EXPECT_NE(bad("zzz").message().find("unknown format byte 0x7a"), std::string::npos);
  EXPECT_NE(bad("").message().find("job record 42: empty"), std::string::npos);
  EXPECT_NE(bad(EncodeStoredJob(FullRecord()) + "x").message().find("bytes after the record"),
            std::string::npos);
  // Format byte, state "pending", id 1, user "", submit 0, no start, no end, attempt 0, then an
  // allocation count of 2^62.
  std::string huge = std::string(1, kStoredJobBinaryV1) + "\x07pending" + "\x01" +
                     std::string(5, '\0') + "\x80\x80\x80\x80\x80\x80\x80\x80\x40";
  EXPECT_NE(bad(huge).message().find("count beyond the record"), std::string::npos)
      << bad(huge).ToString();
  std::string state = std::string(1, kStoredJobBinaryV1) + "\x07pendinX";
  EXPECT_NE(bad(state).message().find("'state'"), std::string::npos) << bad(state).ToString();
  // A key that is not a job id is named by its bytes.
  EXPECT_NE(DecodeStoredJob("ab", "").status().message().find("key 0x6162"), std::string::npos);

  // Random damage, seeded: each result is a record or an error naming the key.
  const std::string whole = EncodeStoredJob(FullRecord());
  for (uint32_t seed = 0; seed < 2000; ++seed) {
    std::mt19937 rng(seed);
    std::string bytes = whole;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i)
      bytes[1 + rng() % (bytes.size() - 1)] = static_cast<char>(rng());
    auto r = DecodeStoredJob(kKey, bytes);
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("job record 42"), std::string::npos)
          << "seed " << seed << ": " << r.status().ToString();
    }
  }
}

}  // namespace
}  // namespace gsched::server
