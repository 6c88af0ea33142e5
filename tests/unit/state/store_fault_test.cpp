// A write that RocksDB reports failed (an I/O error from the device, not a disk found short of room
// beforehand) is held and retried until it succeeds: nothing is answered before it is durable,
// nothing answered is lost, and the store takes writes again by itself (DESIGN.md section 11).
// The errors come from a file system wrapper that fails every write and sync while armed.
#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "scheduler/state/rocksdb_store.h"
#include "tests/testutil/subprocess.h"
#include "tests/testutil/temp_dir.h"

namespace gsched::state {
namespace {

using namespace std::chrono_literals;

// Fails appends, syncs and the creation of new files while `failing` is set, as a device with
// I/O errors does.
class FailingFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit FailingFileSystem(std::shared_ptr<rocksdb::FileSystem> base)
      : FileSystemWrapper(std::move(base)) {}
  static const char* kClassName() { return "FailingFileSystem"; }
  const char* Name() const override { return kClassName(); }

  std::atomic<bool> failing{false};
  std::atomic<int> errors{0};

  rocksdb::IOStatus Error() {
    errors.fetch_add(1);
    return rocksdb::IOStatus::IOError("injected I/O error");
  }

  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> f, FailingFileSystem* fs)
        : FSWritableFileOwnerWrapper(std::move(f)), fs_(fs) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* d) override {
      return fs_->failing ? fs_->Error() : FSWritableFileOwnerWrapper::Append(data, o, d);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                             const rocksdb::DataVerificationInfo& v,
                             rocksdb::IODebugContext* d) override {
      return fs_->failing ? fs_->Error() : FSWritableFileOwnerWrapper::Append(data, o, v, d);
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
      return fs_->failing ? fs_->Error() : FSWritableFileOwnerWrapper::Sync(o, d);
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
      return fs_->failing ? fs_->Error() : FSWritableFileOwnerWrapper::Fsync(o, d);
    }

   private:
    FailingFileSystem* fs_;
  };

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* d) override {
    if (failing)
      return Error();
    std::unique_ptr<rocksdb::FSWritableFile> f;
    rocksdb::IOStatus s = FileSystemWrapper::NewWritableFile(name, o, &f, d);
    if (s.ok())
      *result = std::make_unique<File>(std::move(f), this);
    return s;
  }
};

class StoreFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs_ = std::make_shared<FailingFileSystem>(rocksdb::FileSystem::Default());
    env_ = rocksdb::NewCompositeEnv(fs_);
  }
  std::unique_ptr<RocksDbStore> Open() {
    auto s = RocksDbStore::Open({.path = dir_.path(), .min_free_bytes = 0, .env = env_.get()});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  static WriteBatch Put(const std::string& key, const std::string& value) {
    WriteBatch b;
    b.Put(Family::kJobs, key, value);
    return b;
  }

  TempDir dir_;
  std::shared_ptr<FailingFileSystem> fs_;
  std::unique_ptr<rocksdb::Env> env_;
};

TEST_F(StoreFaultTest, AFailedWriteIsHeldAndRetriedUntilTheDeviceRecovers) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit(Put("before", "1")).ok());

  fs_->failing = true;
  std::vector<std::future<Status>> answers;
  for (int i = 0; i < 5; ++i) {
    auto done = std::make_shared<std::promise<Status>>();
    answers.push_back(done->get_future());
    store->CommitAsync(Put("during-" + std::to_string(i), "2"),
                       [done](Status s) { done->set_value(std::move(s)); });
  }
  // The device refuses: nothing is answered, the store says it is failing, reads go on.
  ASSERT_TRUE(WaitFor([&] { return store->Stats().failing; }, 10s));
  ASSERT_TRUE(WaitFor([&] { return fs_->errors.load() >= 2; }, 10s));  // Retried.
  for (auto& a : answers)
    EXPECT_EQ(a.wait_for(0ms), std::future_status::timeout);
  EXPECT_GE(store->Stats().write_failures, 1u);
  // Reads go on, or say that the database is being reopened; they never block on the device.
  auto read = store->Get(Family::kJobs, "before");
  if (read.ok())
    EXPECT_EQ(*read, "1");
  else
    EXPECT_EQ(read.status().code(), StatusCode::kUnavailable) << read.status().ToString();

  // The device recovers: every held commit lands, in order, and is answered.
  fs_->failing = false;
  for (auto& a : answers) {
    ASSERT_EQ(a.wait_for(30s), std::future_status::ready);
    EXPECT_TRUE(a.get().ok());
  }
  EXPECT_FALSE(store->Stats().failing);
  ASSERT_TRUE(store->Commit(Put("after", "3")).ok());
  for (std::string key : {"before", "during-0", "during-4", "after"})
    EXPECT_TRUE(store->Get(Family::kJobs, key).ok()) << key;

  // Everything answered is durable: it is there after the store is closed and opened again.
  store.reset();
  store = Open();
  ASSERT_NE(store, nullptr);
  for (std::string key :
       {"before", "during-0", "during-1", "during-2", "during-3", "during-4", "after"})
    EXPECT_TRUE(store->Get(Family::kJobs, key).ok()) << key;
}

TEST_F(StoreFaultTest, ClosingWhileWritesFailAnswersTheHeldCommitsWithAnError) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  fs_->failing = true;
  auto done = std::make_shared<std::promise<Status>>();
  auto answer = done->get_future();
  store->CommitAsync(Put("k", "v"), [done](Status s) { done->set_value(std::move(s)); });
  ASSERT_TRUE(WaitFor([&] { return store->Stats().failing; }, 10s));
  store.reset();  // Must not hang or crash while the device still fails.
  ASSERT_EQ(answer.wait_for(0ms), std::future_status::ready);
  EXPECT_EQ(answer.get().code(), StatusCode::kUnavailable);
  // The commit was never acknowledged; whatever the database holds, it opens again.
  fs_->failing = false;
  EXPECT_NE(Open(), nullptr);
}

}  // namespace
}  // namespace gsched::state
