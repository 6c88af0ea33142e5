#include "scheduler/ha/log_record.h"

#include <gtest/gtest.h>

namespace gsched::ha {
namespace {

state::WriteBatch Sample() {
  state::WriteBatch b;
  b.Put(state::Family::kJobs, state::U64Key(7), std::string(300, 'j'));
  b.Delete(state::Family::kNodes, "gpu-n01");
  b.DeleteRange(state::Family::kEvents, state::U64Key(1), state::U64Key(100));
  b.Put(state::Family::kMeta, "next_job_id", "8");
  return b;
}

std::vector<state::WriteBatch> Group(int copies) {
  std::vector<state::WriteBatch> g;
  for (int i = 0; i < copies; ++i)
    g.push_back(Sample());
  return g;
}

TEST(LogRecordTest, AGroupRoundTripsInOneRecord) {
  auto records = EncodeGroup(42, Group(2), 1'000'000);
  ASSERT_EQ(records.size(), 1u);
  auto r = DecodeRecord(records[0]);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->epoch, 42u);
  EXPECT_EQ(r->part, 0u);
  EXPECT_EQ(r->parts, 1u);
  auto batch = DecodeMutations(r->payload);
  ASSERT_TRUE(batch.ok());
  state::WriteBatch expected;
  for (auto& b : Group(2))
    expected.Append(std::move(b));
  ASSERT_EQ(batch->size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& got = batch->mutations()[i];
    const auto& want = expected.mutations()[i];
    EXPECT_EQ(got.kind, want.kind);
    EXPECT_EQ(got.family, want.family);
    EXPECT_EQ(got.key, want.key);
    EXPECT_EQ(got.value, want.value);
  }
}

TEST(LogRecordTest, ALargeGroupIsCutIntoPartsThatJoinBack) {
  auto records = EncodeGroup(3, Group(10), 256);
  ASSERT_GT(records.size(), 10u);
  std::string payload;
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_LE(records[i].size(), 256u);
    auto r = DecodeRecord(records[i]);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->part, i);
    EXPECT_EQ(r->parts, records.size());
    payload.append(r->payload);
  }
  auto batch = DecodeMutations(payload);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ(batch->size(), 40u);
  // One part alone is not a batch.
  EXPECT_FALSE(DecodeMutations(DecodeRecord(records[0])->payload).ok());
}

TEST(LogRecordTest, AnEmptyGroupIsOneEmptyRecord) {
  auto records = EncodeGroup(1, {}, 1000);
  ASSERT_EQ(records.size(), 1u);
  auto batch = DecodeMutations(DecodeRecord(records[0])->payload);
  ASSERT_TRUE(batch.ok());
  EXPECT_TRUE(batch->empty());
}

TEST(LogRecordTest, RefusesWhatIsNotARecord) {
  EXPECT_FALSE(DecodeRecord("").ok());
  EXPECT_FALSE(DecodeRecord("GSL1short").ok());
  std::string r = EncodeGroup(1, Group(1), 1000)[0];
  r[0] = 'X';
  EXPECT_FALSE(DecodeRecord(r).ok());
  // Part 2 of 2 does not exist.
  std::string bad = EncodeGroup(1, Group(1), 1000)[0];
  bad[12] = 2;
  bad[16] = 2;
  EXPECT_FALSE(DecodeRecord(bad).ok());
  // A family or kind out of range, and a key longer than what is left.
  EXPECT_FALSE(DecodeMutations(std::string("\x00\x09\x01k\x00", 5)).ok());
  EXPECT_FALSE(DecodeMutations(std::string("\x07\x00\x01k\x00", 5)).ok());
  EXPECT_FALSE(DecodeMutations(std::string("\x00\x00\x05k", 4)).ok());
  EXPECT_FALSE(DecodeMutations(std::string("\x00", 1)).ok());
}

TEST(LogRecordTest, LogKeysSortLikeTheirSeqs) {
  EXPECT_EQ(LogKey("/p/log/", 0x1f), "/p/log/000000000000001f");
  EXPECT_LT(LogKey("/p/log/", 9), LogKey("/p/log/", 10));
  EXPECT_LT(LogKey("/p/log/", 255), LogKey("/p/log/", 256));
  EXPECT_EQ(*ParseLogKey("/p/log/", LogKey("/p/log/", 123456789)), 123456789u);
  EXPECT_FALSE(ParseLogKey("/p/log/", "/p/log/12").ok());
  EXPECT_FALSE(ParseLogKey("/p/log/", "/q/log/000000000000001f").ok());
  EXPECT_FALSE(ParseLogKey("/p/log/", "/p/log/00000000000000zz").ok());
}

}  // namespace
}  // namespace gsched::ha
