// The event log on its own: gap-free sequence numbers, the in-memory tail, ephemeral events
// outside the log, pruning by count and by age, and a restart continuing the stored log. A manual
// clock and a memory store; every batch the log hands back is committed as the service would.
#include "scheduler/server/event_log.h"

#include <gtest/gtest.h>

#include "scheduler/state/memory_store.h"

namespace gsched::server {
namespace {

class EventLogTest : public ::testing::Test {
 protected:
  EventLogTest() {
    config_.watch.memory_events = 1000;
    config_.events.max_events = 64;  // Prunes in steps of max(1, 64 / 64) = 1 event.
    config_.events.retention = Seconds(3600);
  }

  // Adds `n` events of type `type` in one change, committed.
  Change Add(EventLog& log, int n, const std::string& type = "job.state") {
    Change change;
    for (int i = 0; i < n; ++i)
      log.Add(change, type, {{"i", i}});
    EXPECT_TRUE(store_.Commit(change.batch).ok());
    return change;
  }
  Change Prune(EventLog& log) {
    Change change = log.Prune();
    EXPECT_TRUE(store_.Commit(change.batch).ok());
    return change;
  }
  // The sequence numbers stored in the `events` family, in order.
  std::vector<uint64_t> Stored() const {
    std::vector<uint64_t> seqs;
    EXPECT_TRUE(store_
                    .Scan(state::Family::kEvents, {}, {},
                          [&](std::string_view key, std::string_view) {
                            seqs.push_back(state::ParseU64Key(key).value());
                            return true;
                          })
                    .ok());
    return seqs;
  }
  static std::vector<uint64_t> Seqs(const std::deque<api::Event>& events) {
    std::vector<uint64_t> out;
    for (const api::Event& e : events)
      out.push_back(e.seq);
    return out;
  }
  static std::vector<uint64_t> Range(uint64_t first, uint64_t last) {
    std::vector<uint64_t> out;
    for (uint64_t s = first; s <= last; ++s)
      out.push_back(s);
    return out;
  }

  config::SchedulerConfig config_;
  ManualClock clock_;
  state::MemoryStore store_;
};

TEST_F(EventLogTest, AnEmptyLogStartsAtOne) {
  EventLog log(config_, clock_);
  ASSERT_TRUE(log.Load(store_).ok());
  EXPECT_EQ(log.last_seq(), 0u);
  EXPECT_EQ(log.first_seq(), 1u);  // last_seq() + 1: empty.
  EXPECT_TRUE(log.recent().empty());
}

TEST_F(EventLogTest, EventsGetGapFreeSequenceNumbersAndGoIntoTheirChange) {
  EventLog log(config_, clock_);
  ASSERT_TRUE(log.Load(store_).ok());
  Change first = Add(log, 2);
  clock_.Advance(Seconds(5));
  Change second = Add(log, 1, "node.state");
  ASSERT_EQ(first.events.size(), 2u);
  EXPECT_EQ(first.events[0].seq, 1u);
  EXPECT_EQ(first.events[1].seq, 2u);
  ASSERT_EQ(second.events.size(), 1u);
  EXPECT_EQ(second.events[0].seq, 3u);
  EXPECT_EQ(second.events[0].type, "node.state");
  EXPECT_EQ(second.events[0].time, clock_.Now());
  EXPECT_EQ(first.events[0].time, clock_.Now() - Seconds(5));
  // One put per event, keyed by its seq.
  ASSERT_EQ(first.batch.size(), 2u);
  EXPECT_EQ(first.batch.mutations()[0].family, state::Family::kEvents);
  EXPECT_EQ(first.batch.mutations()[0].key, state::U64Key(1));
  EXPECT_EQ(Stored(), Range(1, 3));
  EXPECT_EQ(log.last_seq(), 3u);
  EXPECT_EQ(log.first_seq(), 1u);
  EXPECT_EQ(Seqs(log.recent()), Range(1, 3));
}

TEST_F(EventLogTest, TheTailInMemoryKeepsTheNewestEvents) {
  config_.watch.memory_events = 3;
  EventLog log(config_, clock_);
  ASSERT_TRUE(log.Load(store_).ok());
  Add(log, 5);
  EXPECT_EQ(Seqs(log.recent()), Range(3, 5));
  EXPECT_EQ(Stored(), Range(1, 5));  // The log itself keeps them all.
}

TEST_F(EventLogTest, EphemeralEventsCarryTheNewestSeqAndStayOutOfTheLog) {
  EventLog log(config_, clock_);
  ASSERT_TRUE(log.Load(store_).ok());
  Add(log, 2);
  clock_.Advance(Seconds(1));
  api::Event e = log.Ephemeral("cluster.summary", {{"gpus", 8}});
  EXPECT_EQ(e.seq, 2u);
  EXPECT_EQ(e.type, "cluster.summary");
  EXPECT_EQ(e.time, clock_.Now());
  EXPECT_EQ(log.last_seq(), 2u);
  EXPECT_EQ(Seqs(log.recent()), Range(1, 2));
  // The next log event takes the next seq: ephemeral events leave no gap.
  EXPECT_EQ(Add(log, 1).events[0].seq, 3u);
}

TEST_F(EventLogTest, ARestartContinuesTheStoredLog) {
  {
    EventLog log(config_, clock_);
    ASSERT_TRUE(log.Load(store_).ok());
    Add(log, 70);
    Prune(log);  // Keeps the newest 64: 7..70.
  }
  config_.watch.memory_events = 10;
  EventLog log(config_, clock_);
  ASSERT_TRUE(log.Load(store_).ok());
  EXPECT_EQ(log.first_seq(), 7u);
  EXPECT_EQ(log.last_seq(), 70u);
  // Only the newest `memory_events` are read back.
  EXPECT_EQ(Seqs(log.recent()), Range(61, 70));
  EXPECT_EQ(Add(log, 1).events[0].seq, 71u);
}

TEST_F(EventLogTest, PruningByCountKeepsTheNewestMaxEvents) {
  EventLog log(config_, clock_);
  ASSERT_TRUE(log.Load(store_).ok());
  Add(log, 64);
  EXPECT_TRUE(Prune(log).batch.empty());  // At the bound: nothing to do.
  Add(log, 36);
  // 100 events, at most 64: cut = 100 - 64 = 36, so 37..100 stay.
  Change c = Prune(log);
  ASSERT_EQ(c.batch.size(), 1u);
  EXPECT_EQ(c.batch.mutations()[0].kind, state::Mutation::Kind::kDeleteRange);
  EXPECT_EQ(log.first_seq(), 37u);
  EXPECT_EQ(Stored(), Range(37, 100));
  EXPECT_EQ(Seqs(log.recent()), Range(37, 100));
}

TEST_F(EventLogTest, PruningByCountWaitsForAStepOfOneSixtyFourthOfTheBound) {
  config_.events.max_events = 640;  // Step: 640 / 64 = 10 events.
  EventLog log(config_, clock_);
  ASSERT_TRUE(log.Load(store_).ok());
  Add(log, 649);
  // 9 over the bound: fewer than 10, nothing deleted yet.
  EXPECT_TRUE(Prune(log).batch.empty());
  EXPECT_EQ(log.first_seq(), 1u);
  Add(log, 1);
  // 10 over: 1..10 go.
  EXPECT_FALSE(Prune(log).batch.empty());
  EXPECT_EQ(log.first_seq(), 11u);
  EXPECT_EQ(Stored().front(), 11u);
  EXPECT_EQ(Stored().size(), 640u);
}

TEST_F(EventLogTest, PruningByAgeDropsEventsOlderThanTheRetention) {
  EventLog log(config_, clock_);
  ASSERT_TRUE(log.Load(store_).ok());
  Add(log, 3);  // 1..3 at t0.
  clock_.Advance(Seconds(1800));
  Add(log, 2);  // 4..5 at t0 + 30 min.
  clock_.Advance(Seconds(1801));
  // Now t0 + 60 min 1 s: 1..3 are past the hour's retention, 4..5 are not.
  Prune(log);
  EXPECT_EQ(log.first_seq(), 4u);
  EXPECT_EQ(Stored(), Range(4, 5));
  EXPECT_EQ(Seqs(log.recent()), Range(4, 5));
}

TEST_F(EventLogTest, TheNewestEventIsNeverPruned) {
  EventLog log(config_, clock_);
  ASSERT_TRUE(log.Load(store_).ok());
  Add(log, 3);
  clock_.Advance(Seconds(2 * 3600));
  // All three are past the retention; the newest stays, as it carries the counter over a restart.
  Prune(log);
  EXPECT_EQ(log.first_seq(), 3u);
  EXPECT_EQ(Stored(), Range(3, 3));
  EventLog restarted(config_, clock_);
  ASSERT_TRUE(restarted.Load(store_).ok());
  EXPECT_EQ(restarted.last_seq(), 3u);
  EXPECT_EQ(Add(restarted, 1).events[0].seq, 4u);
}

}  // namespace
}  // namespace gsched::server
