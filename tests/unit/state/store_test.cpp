#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "scheduler/state/memory_store.h"
#include "scheduler/state/rocksdb_store.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/wait.h"

namespace gsched::state {
namespace {

// The same invariants hold for every `Store`.
template <typename T>
class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if constexpr (std::is_same_v<T, RocksDbStore>) {
      auto s = RocksDbStore::Open({.path = dir_.path()});
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      store_ = std::move(s).value();
    } else {
      store_ = std::make_unique<MemoryStore>();
    }
  }
  TempDir dir_;
  std::unique_ptr<Store> store_;
};

using StoreTypes = ::testing::Types<MemoryStore, RocksDbStore>;
TYPED_TEST_SUITE(StoreTest, StoreTypes);

std::vector<std::string> Keys(const Store& store, Family f, std::string_view begin = {},
                              std::string_view end = {}) {
  std::vector<std::string> keys;
  Status s = store.Scan(f, begin, end, [&](std::string_view k, std::string_view) {
    keys.emplace_back(k);
    return true;
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return keys;
}

TYPED_TEST(StoreTest, PutGetDelete) {
  WriteBatch b;
  b.Put(Family::kJobs, "a", "1");
  b.Put(Family::kAccounts, "a", "2");
  ASSERT_TRUE(this->store_->Commit(std::move(b)).ok());
  EXPECT_EQ(*this->store_->Get(Family::kJobs, "a"), "1");
  EXPECT_EQ(*this->store_->Get(Family::kAccounts, "a"), "2");
  EXPECT_EQ(this->store_->Get(Family::kNodes, "a").status().code(), StatusCode::kNotFound);

  WriteBatch d;
  d.Delete(Family::kJobs, "a");
  ASSERT_TRUE(this->store_->Commit(std::move(d)).ok());
  EXPECT_EQ(this->store_->Get(Family::kJobs, "a").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*this->store_->Get(Family::kAccounts, "a"), "2");
}

TYPED_TEST(StoreTest, LastKeyIsTheGreatestOfItsFamily) {
  EXPECT_EQ(*this->store_->LastKey(Family::kEvents), std::nullopt);
  WriteBatch b;
  for (uint64_t seq : {3, 300, 70000})
    b.Put(Family::kEvents, U64Key(seq), "e");
  b.Put(Family::kJobs, U64Key(999999), "j");
  ASSERT_TRUE(this->store_->Commit(std::move(b)).ok());
  auto last = this->store_->LastKey(Family::kEvents);
  ASSERT_TRUE(last.ok() && last->has_value());
  EXPECT_EQ(*ParseU64Key(**last), 70000u);
}

TYPED_TEST(StoreTest, ScanIsOrderedAndBounded) {
  WriteBatch b;
  for (uint64_t id : {300u, 2u, 70000u, 1u})
    b.Put(Family::kJobs, U64Key(id), "x");
  ASSERT_TRUE(this->store_->Commit(std::move(b)).ok());
  std::vector<uint64_t> ids;
  for (const auto& k : Keys(*this->store_, Family::kJobs))
    ids.push_back(*ParseU64Key(k));
  EXPECT_EQ(ids, (std::vector<uint64_t>{1, 2, 300, 70000}));
  // [2, 300) holds only 2.
  EXPECT_EQ(Keys(*this->store_, Family::kJobs, U64Key(2), U64Key(300)).size(), 1u);
  // Stopping early.
  int seen = 0;
  ASSERT_TRUE(this->store_
                  ->Scan(Family::kJobs, {}, {},
                         [&](std::string_view, std::string_view) { return ++seen < 2; })
                  .ok());
  EXPECT_EQ(seen, 2);
}

TYPED_TEST(StoreTest, DeleteRangeRemovesHalfOpenInterval) {
  WriteBatch b;
  for (uint64_t seq = 1; seq <= 10; ++seq)
    b.Put(Family::kEvents, U64Key(seq), "e");
  ASSERT_TRUE(this->store_->Commit(std::move(b)).ok());
  WriteBatch prune;
  prune.DeleteRange(Family::kEvents, U64Key(1), U64Key(8));  // Removes 1..7.
  ASSERT_TRUE(this->store_->Commit(std::move(prune)).ok());
  EXPECT_EQ(Keys(*this->store_, Family::kEvents).size(), 3u);
}

TYPED_TEST(StoreTest, ConcurrentCommitsAllLand) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        WriteBatch b;
        b.Put(Family::kJobs, U64Key(static_cast<uint64_t>(t * kPerThread + i)), "v");
        if (!this->store_->Commit(std::move(b)).ok())
          failures++;
      }
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Keys(*this->store_, Family::kJobs).size(), size_t{kThreads * kPerThread});
  CommitStats stats = this->store_->Stats();
  EXPECT_EQ(stats.commits, uint64_t{kThreads * kPerThread});
  EXPECT_LE(stats.syncs, stats.commits);
}

TEST(RocksDbStoreTest, GroupCommitSharesSyncs) {
  TempDir dir;
  auto store = RocksDbStore::Open({.path = dir.path()});
  ASSERT_TRUE(store.ok());
  // 2,000 commits queued at once from one thread: the writer must group them, so there are far
  // fewer syncs than commits (each sync costs ~0.1 ms here; one per commit would be ~0.2 s).
  constexpr int kCommits = 2000;
  std::atomic<int> done{0};
  std::atomic<int> failed{0};
  for (int i = 0; i < kCommits; ++i) {
    WriteBatch b;
    b.Put(Family::kJobs, U64Key(static_cast<uint64_t>(i)), "v");
    (*store)->CommitAsync(std::move(b), [&](Status s) {
      if (!s.ok())
        failed++;
      done++;
    });
  }
  ASSERT_TRUE(WaitFor([&] { return done.load() >= kCommits; }, std::chrono::seconds(60)));
  ASSERT_EQ(done.load(), kCommits);
  EXPECT_EQ(failed.load(), 0);
  CommitStats stats = (*store)->Stats();
  EXPECT_EQ(stats.commits, uint64_t{kCommits});
  EXPECT_LT(stats.syncs, stats.commits);
  EXPECT_GT(stats.max_group, 1u);
}

TEST(RocksDbStoreTest, QueueIsBounded) {
  TempDir dir;
  auto store = RocksDbStore::Open({.path = dir.path(), .max_queue = 1});
  ASSERT_TRUE(store.ok());
  int exhausted = 0;
  int answered = 0;
  std::mutex mu;
  for (int i = 0; i < 500; ++i) {
    WriteBatch b;
    b.Put(Family::kJobs, U64Key(static_cast<uint64_t>(i)), std::string(1000, 'x'));
    (*store)->CommitAsync(std::move(b), [&](Status s) {
      std::lock_guard lock(mu);
      ++answered;
      if (s.code() == StatusCode::kResourceExhausted)
        ++exhausted;
    });
  }
  store->reset();
  EXPECT_EQ(answered, 500);
  // With room for one waiting commit, a burst of 500 cannot all be queued.
  EXPECT_GT(exhausted, 0);
}

TEST(RocksDbStoreTest, DataSurvivesReopen) {
  TempDir dir;
  {
    auto store = RocksDbStore::Open({.path = dir.path()});
    ASSERT_TRUE(store.ok());
    WriteBatch b;
    b.Put(Family::kMeta, "next_job_id", "42");
    ASSERT_TRUE((*store)->Commit(std::move(b)).ok());
  }
  auto store = RocksDbStore::Open({.path = dir.path()});
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(*(*store)->Get(Family::kMeta, "next_job_id"), "42");
}

TEST(RocksDbStoreTest, OpenFailsClearlyOnABadPath) {
  TempDir dir;
  std::string file = dir.path() + "/not-a-dir";
  FILE* f = std::fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  auto store = RocksDbStore::Open({.path = file + "/db"});
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("cannot open database"), std::string::npos);
}

TEST(U64KeyTest, SortsNumerically) {
  EXPECT_LT(U64Key(255), U64Key(256));
  EXPECT_LT(U64Key(1), U64Key(uint64_t{1} << 40));
  EXPECT_EQ(*ParseU64Key(U64Key(0xdeadbeefcafe)), 0xdeadbeefcafeu);
  EXPECT_FALSE(ParseU64Key("short").ok());
}

}  // namespace
}  // namespace gsched::state
