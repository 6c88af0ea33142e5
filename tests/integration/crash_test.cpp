// kill -9 the scheduler while clients submit, change quotas and cancel; after the restart every
// acknowledged change is there, nothing is duplicated, ids go on increasing and the event log has
// no gap.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "scheduler/state/rocksdb_store.h"
#include "tests/integration/scheduler_process.h"

namespace gsched::testing {
namespace {

TEST(CrashTest, NothingAcknowledgedIsLostAfterKill9) {
  SchedulerProcess s;
  std::string alice = s.Token("alice", "user", {"proj-a"});
  std::string admin = s.admin_token();

  std::mutex mu;
  std::map<std::string, uint64_t> acked_jobs;  // Job name -> id, for acknowledged submissions.
  std::set<uint64_t> acked_cancels;
  int64_t acked_shares = 0;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> submitted{0};

  std::vector<std::thread> threads;
  // Eight submitters, each job named uniquely so that a duplicate would show.
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto client = s.Client(alice);
      for (int i = 0; !stop && i < 100'000; ++i) {
        std::string name = "t" + std::to_string(t) + "-" + std::to_string(i);
        auto r =
            client->Post("/v1/jobs", R"({"name":")" + name + R"(","image":"/i","command":["x"]})");
        if (!r.ok())
          break;  // The scheduler died: this answer never came.
        if (r->status != 201)
          continue;
        std::lock_guard lock(mu);
        acked_jobs[name] = Parse(r->body).at("id").to_number<uint64_t>();
        submitted++;
      }
    });
  }
  // A quota changer: shares 1, 2, 3, ... acknowledged in order.
  threads.emplace_back([&] {
    auto client = s.Client(admin);
    for (int64_t shares = 1; !stop && shares < 100'000; ++shares) {
      auto r = client->Request("PUT", "/v1/accounts/proj-b",
                               R"({"parent":"lab","shares":)" + std::to_string(shares) + "}");
      if (!r.ok())
        break;
      if (r->status == 200) {
        std::lock_guard lock(mu);
        acked_shares = shares;
      }
    }
  });
  // A canceller of acknowledged jobs.
  threads.emplace_back([&] {
    auto client = s.Client(alice);
    while (!stop) {
      uint64_t target = 0;
      {
        std::lock_guard lock(mu);
        for (auto it = acked_jobs.rbegin(); it != acked_jobs.rend(); ++it) {
          if (!acked_cancels.contains(it->second)) {
            target = it->second;
            break;
          }
        }
      }
      if (target == 0) {
        std::this_thread::yield();
        continue;
      }
      auto r = client->Post("/v1/jobs/" + std::to_string(target) + "/cancel", "");
      if (!r.ok())
        break;
      if (r->status == 200) {
        std::lock_guard lock(mu);
        acked_cancels.insert(target);
      }
    }
  });

  ASSERT_TRUE(WaitFor([&] { return submitted.load() >= 2000; }, std::chrono::seconds(60)));
  s.Crash();
  stop = true;
  for (auto& t : threads)
    t.join();
  ASSERT_GT(acked_cancels.size(), 0u);
  ASSERT_GT(acked_shares, 0);

  s.Start();
  auto client = s.Client(admin);
  // Every acknowledged job is there with its spec; no name appears twice.
  std::map<std::string, uint64_t> stored;
  uint64_t after = 0, max_id = 0;
  while (true) {
    auto r = client->Get("/v1/jobs?limit=10000&after=" + std::to_string(after));
    ASSERT_TRUE(r.ok() && r->status == 200);
    auto page = Parse(r->body);
    const auto& jobs = page.at("jobs").as_array();
    for (const auto& j : jobs) {
      std::string name(j.at("spec").at("name").as_string());
      uint64_t id = j.at("id").to_number<uint64_t>();
      EXPECT_FALSE(stored.contains(name)) << "duplicate job " << name;
      stored[name] = id;
      max_id = std::max(max_id, id);
      if (acked_cancels.contains(id)) {
        EXPECT_EQ(j.at("state").as_string(), "cancelled") << id;
      }
    }
    if (jobs.empty() || !page.as_object().contains("next_after"))
      break;
    after = page.at("next_after").to_number<uint64_t>();
  }
  size_t lost = 0;
  for (const auto& [name, id] : acked_jobs) {
    auto it = stored.find(name);
    if (it == stored.end() || it->second != id)
      ++lost;
  }
  EXPECT_EQ(lost, 0u) << "of " << acked_jobs.size() << " acknowledged submissions";

  // The quota change acknowledged last (or a later one that was written but not yet answered).
  auto accounts = Parse(client->Get("/v1/accounts")->body);
  int64_t shares = 0;
  for (const auto& a : accounts.at("accounts").as_array()) {
    if (a.at("name").as_string() == "proj-b")
      shares = a.at("shares").as_int64();
  }
  EXPECT_GE(shares, acked_shares);

  // Ids go on increasing.
  auto r = client->Post("/v1/jobs",
                        R"({"name":"after","image":"/i","command":["x"],"account":"proj-a"})");
  ASSERT_EQ(r->status, 201) << r->body;
  EXPECT_GT(Parse(r->body).at("id").to_number<uint64_t>(), max_id);

  // The event log has no gap: read it from the store once the scheduler is stopped.
  s.Stop();
  auto store = state::RocksDbStore::Open({.path = s.data_dir() + "/db"});
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  uint64_t expected = 1, count = 0;
  bool gapless = true;
  ASSERT_TRUE((*store)
                  ->Scan(state::Family::kEvents, {}, {},
                         [&](std::string_view key, std::string_view) {
                           uint64_t seq = *state::ParseU64Key(key);
                           if (seq != expected)
                             gapless = false;
                           expected = seq + 1;
                           ++count;
                           return true;
                         })
                  .ok());
  EXPECT_TRUE(gapless) << "event log has a gap before seq " << expected;
  EXPECT_GT(count, acked_jobs.size());
}

}  // namespace
}  // namespace gsched::testing
