// The etcd client and the leader's replicated store against a real etcd on loopback.
#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include "scheduler/ha/etcd_client.h"
#include "scheduler/ha/log_record.h"
#include "scheduler/ha/replicated_store.h"
#include "tests/testutil/etcd_cluster.h"

namespace gsched::testing {
namespace {

using ha::Compare;
using ha::EtcdClient;
using ha::TxnOp;

class HaStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!EtcdCluster::Available())
      GTEST_SKIP() << "no etcd at " << kEtcdBin << " (scripts/setup installs etcd-server)";
    etcd_ = std::make_unique<EtcdCluster>(1);
  }
  ha::EtcdOptions Options() const {
    // A dead endpoint first: every call has to move on to the live one.
    return {
        .endpoints = {"http://127.0.0.1:" + std::to_string(FreeLoopbackPort()), etcd_->Endpoint(0)},
        .attempt_timeout = Seconds(1),
        .call_timeout = Seconds(5)};
  }
  std::unique_ptr<EtcdCluster> etcd_;
};

TEST_F(HaStoreTest, EtcdClientTransactsRangesAndKeepsLeases) {
  EtcdClient c(Options());
  // Create-if-absent, as an election does.
  auto first = c.Txn({{"/t/leader", Compare::Target::kCreateRevision, 0}},
                     {TxnOp::Put("/t/leader", "http://a")}, {TxnOp::Range("/t/leader")});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(first->succeeded);
  EXPECT_EQ(c.endpoint(), etcd_->Endpoint(0));
  auto second = c.Txn({{"/t/leader", Compare::Target::kCreateRevision, 0}},
                      {TxnOp::Put("/t/leader", "http://b")}, {TxnOp::Range("/t/leader")});
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->succeeded);
  ASSERT_EQ(second->ranges.size(), 1u);
  ASSERT_EQ(second->ranges[0].kvs.size(), 1u);
  EXPECT_EQ(second->ranges[0].kvs[0].value, "http://a");
  EXPECT_EQ(second->ranges[0].kvs[0].mod_revision, first->revision);
  // Binary keys and values survive base64; ranges are ordered and limited.
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(c.Put(std::string("/t/r/") + char('a' + i), std::string("\0\xff", 2)).ok());
  auto r = c.Range("/t/r/", ha::PrefixEnd("/t/r/"), 3);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->kvs.size(), 3u);
  EXPECT_TRUE(r->more);
  EXPECT_EQ(r->kvs[0].key, "/t/r/a");
  EXPECT_EQ(r->kvs[2].value, std::string("\0\xff", 2));
  ASSERT_TRUE(c.DeleteRange("/t/r/", ha::PrefixEnd("/t/r/")).ok());
  EXPECT_TRUE(c.Range("/t/r/", ha::PrefixEnd("/t/r/"))->kvs.empty());
  // A lease: renewed while it lives, gone once revoked, and its keys with it.
  auto lease = c.Grant(Seconds(5));
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  ASSERT_TRUE(c.Put("/t/leased", "x", *lease).ok());
  auto ttl = c.KeepAlive(*lease);
  ASSERT_TRUE(ttl.ok()) << ttl.status().ToString();
  EXPECT_EQ(*ttl, Seconds(5));
  ASSERT_TRUE(c.Revoke(*lease).ok());
  EXPECT_EQ(c.KeepAlive(*lease).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(c.Range("/t/leased")->kvs.empty());
}

TEST_F(HaStoreTest, EtcdClientGivesUpOnDeadEndpointsByTheDeadline) {
  EtcdClient c({.endpoints = {"http://127.0.0.1:" + std::to_string(FreeLoopbackPort())},
                .attempt_timeout = Duration(200),
                .call_timeout = Duration(500)});
  auto r = c.Range("/t/x");
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
}

TEST(PrefixEndTest, EndsEveryKeyOfThePrefix) {
  EXPECT_EQ(ha::PrefixEnd("/a/"), "/a0");
  EXPECT_EQ(ha::PrefixEnd(std::string("a\xff", 2)), "b");
}

class ReplicatedStoreTest : public HaStoreTest {
 protected:
  void SetUp() override {
    HaStoreTest::SetUp();
    if (IsSkipped())
      return;
    EtcdClient c(Options());
    auto won =
        c.Txn({{kLeader, Compare::Target::kCreateRevision, 0}}, {TxnOp::Put(kLeader, "http://me")});
    ASSERT_TRUE(won.ok() && won->succeeded);
    epoch_ = won->revision;
  }
  std::unique_ptr<ha::ReplicatedStore> Open(size_t max_record_bytes) {
    auto local = state::RocksDbStore::Open({.path = dir_.path() + "/db"});
    EXPECT_TRUE(local.ok());
    ha::ReplicatedStoreOptions o;
    o.etcd = Options();
    o.leader_key = kLeader;
    o.log_prefix = kLog;
    o.epoch = epoch_;
    o.next_seq = 1;
    o.max_record_bytes = max_record_bytes;
    o.on_lost = [this](const Status&) { lost_.fetch_add(1); };
    return std::make_unique<ha::ReplicatedStore>(std::move(local).value(), std::move(o));
  }
  std::vector<ha::KeyValue> LogRecords() {
    EtcdClient c(Options());
    return c.Range(kLog, ha::PrefixEnd(kLog))->kvs;
  }

  static constexpr char kLeader[] = "/t/leader";
  static constexpr char kLog[] = "/t/log/";
  TempDir dir_;
  int64_t epoch_ = 0;
  std::atomic<int> lost_{0};
};

TEST_F(ReplicatedStoreTest, ACommitIsInTheLogAndOnDiskWhenAcknowledged) {
  auto store = Open(/*max_record_bytes=*/512);
  state::WriteBatch b;
  for (int i = 0; i < 4; ++i)
    b.Put(state::Family::kJobs, state::U64Key(i), std::string(400, 'a' + i));
  ASSERT_TRUE(store->Commit(std::move(b)).ok());
  // Cut into parts, each its own record, in seq order.
  auto records = LogRecords();
  ASSERT_GE(records.size(), 4u);
  std::string payload;
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(*ha::ParseLogKey(kLog, records[i].key), i + 1);
    auto r = ha::DecodeRecord(records[i].value);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->epoch, static_cast<uint64_t>(epoch_));
    payload.append(r->payload);
  }
  auto batch = ha::DecodeMutations(payload);
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->size(), 4u);
  EXPECT_EQ(*store->Get(state::Family::kJobs, state::U64Key(3)), std::string(400, 'd'));
  EXPECT_EQ(*ha::AppliedSeq(*store), records.size());
  EXPECT_EQ(store->Figures().records, records.size());
  EXPECT_EQ(lost_.load(), 0);
}

TEST_F(ReplicatedStoreTest, ManyCommittersShareGroups) {
  auto store = Open(1'000'000);
  std::vector<std::future<Status>> done;
  for (int i = 0; i < 200; ++i) {
    auto p = std::make_shared<std::promise<Status>>();
    done.push_back(p->get_future());
    state::WriteBatch b;
    b.Put(state::Family::kJobs, state::U64Key(i), "v");
    store->CommitAsync(std::move(b), [p](Status s) { p->set_value(std::move(s)); });
  }
  for (auto& f : done)
    ASSERT_TRUE(f.get().ok());
  EXPECT_LT(store->Figures().records, 200u);  // Fewer etcd writes than commits.
  EXPECT_EQ(*ha::AppliedSeq(*store), store->Figures().last_seq);
  EXPECT_TRUE(store->Get(state::Family::kJobs, state::U64Key(199)).ok());
}

TEST_F(ReplicatedStoreTest, ADeposedLeaderAcknowledgesNothing) {
  auto store = Open(1'000'000);
  state::WriteBatch before;
  before.Put(state::Family::kJobs, "before", "1");
  ASSERT_TRUE(store->Commit(std::move(before)).ok());
  // Another scheduler takes the leader key (what an expired lease and a new election do).
  EtcdClient other(Options());
  ASSERT_TRUE(other.Put(kLeader, "http://other").ok());
  state::WriteBatch after;
  after.Put(state::Family::kJobs, "after", "1");
  Status s = store->Commit(std::move(after));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("not the leader"), std::string::npos) << s.message();
  EXPECT_EQ(lost_.load(), 1);
  EXPECT_TRUE(store->fenced());
  // Neither in etcd nor on disk.
  EXPECT_EQ(LogRecords().size(), 1u);
  EXPECT_EQ(store->Get(state::Family::kJobs, "after").status().code(), StatusCode::kNotFound);
  // Everything later fails at once, and `on_lost` ran only once.
  state::WriteBatch later;
  later.Put(state::Family::kJobs, "later", "1");
  EXPECT_EQ(store->Commit(std::move(later)).code(), StatusCode::kUnavailable);
  EXPECT_EQ(lost_.load(), 1);
}

TEST_F(ReplicatedStoreTest, FencingFromOutsideStopsWrites) {
  auto store = Open(1'000'000);
  store->Fence(Status::Unavailable("the lease expired"));
  state::WriteBatch b;
  b.Put(state::Family::kJobs, "x", "1");
  EXPECT_EQ(store->Commit(std::move(b)).code(), StatusCode::kUnavailable);
  EXPECT_TRUE(LogRecords().empty());
  EXPECT_EQ(lost_.load(), 1);
}

}  // namespace
}  // namespace gsched::testing
