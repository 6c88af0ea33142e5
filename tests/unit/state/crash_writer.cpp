// Test helper for `store_crash_test`: opens a `RocksDbStore` at argv[1] and commits batches from
// several threads as fast as it can, forever. After each commit is acknowledged it prints
// "ack N\n" to stdout, N being the key it wrote. The test kills it with SIGKILL and checks that
// every acknowledged N is on disk.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "scheduler/state/rocksdb_store.h"

using gsched::state::Family;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  auto store = gsched::state::RocksDbStore::Open({.path = argv[1]});
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  std::atomic<uint64_t> next{1};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      while (true) {
        uint64_t n = next.fetch_add(1);
        gsched::state::WriteBatch batch;
        // Two families in one batch: both or neither must survive.
        batch.Put(Family::kJobs, gsched::state::U64Key(n), "job-" + std::to_string(n));
        batch.Put(Family::kEvents, gsched::state::U64Key(n), "event-" + std::to_string(n));
        gsched::Status s = (*store)->Commit(std::move(batch));
        if (!s.ok()) {
          std::fprintf(stderr, "commit: %s\n", s.ToString().c_str());
          _exit(1);
        }
        std::string line = "ack " + std::to_string(n) + "\n";
        // One write(2) per line: lines from different threads never interleave.
        if (write(STDOUT_FILENO, line.data(), line.size()) < 0)
          _exit(1);
      }
    });
  }
  for (auto& t : threads)
    t.join();
}
