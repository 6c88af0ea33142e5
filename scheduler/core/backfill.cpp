#include "scheduler/core/backfill.h"

#include <algorithm>
#include <limits>
#include <tuple>

namespace gsched::core {

namespace {

// Events in time order, then by node; a total order (events that compare equal are alike), so a
// heap and a sort give the same sequence. std::*_heap keep the greatest on top: `Later` puts the
// earliest event there.
// (Function objects, not functions: passed as pointers, the comparisons would not be inlined.)
auto Key(const FreeEvent& e) {
  return std::tie(e.at_ms, e.node, e.gpus, e.cpus, e.memory_mib);
}
constexpr auto Later = [](const FreeEvent& x, const FreeEvent& y) { return Key(x) > Key(y); };
constexpr auto Earlier = [](const FreeEvent& x, const FreeEvent& y) { return Key(x) < Key(y); };

}  // namespace

struct Timeline::Search {
  const NodePool* pool = nullptr;
  uint32_t type = 0;
  Shape shape;
  uint64_t last_used = 0;
  // Per node at the cursor: usable GPUs, free CPUs and memory; whether the node is of the type
  // and labels at all (`relevant`) and whether it holds one slice of the shape (`cand`).
  std::vector<int32_t> gpus, cpus;
  std::vector<int64_t> mem;
  std::vector<uint8_t> relevant, cand;
  // Candidate nodes per block, per site and in all.
  std::vector<int32_t> per_block, per_site;
  int32_t global = 0;
  // The cursor. Events merge in time order, running before added at equal times; `in_added`:
  // the last event applied was the `added_pos`-th of the added group at `at_ms` (counting from
  // 1); else a running one, or none yet (`at_ms` = now).
  int64_t at_ms = 0;
  bool in_added = false;
  size_t added_pos = 0;
  size_t running_next = 0;
  // How much of `NodePool::changes` and of the added events it has taken in.
  size_t changes_seen = 0;
  size_t added_seen = 0;

  bool IsCand(uint32_t n) const {
    return gpus[n] >= shape.gpus_per_node && cpus[n] >= shape.cpus_per_node &&
           mem[n] >= shape.memory_mib_per_node;
  }
  // Brings `cand` and the counts in line with node n's values.
  void Recount(uint32_t n) {
    const uint8_t now = IsCand(n) ? 1 : 0;
    if (now == cand[n])
      return;
    const int32_t d = now ? 1 : -1;
    cand[n] = now;
    per_block[pool->Block(n)] += d;
    per_site[pool->Site(n)] += d;
    global += d;
  }
  // Applies a free; true when it made node n a new candidate.
  bool Apply(const FreeEvent& e) {
    if (!relevant[e.node])
      return false;
    gpus[e.node] += e.gpus;
    cpus[e.node] += e.cpus;
    mem[e.node] += e.memory_mib;
    const uint8_t was = cand[e.node];
    Recount(e.node);
    return !was && cand[e.node];
  }
  // The nodes where the shape fits now: the tightest block that holds it, else (unless
  // `topology: block`) the tightest site, else (unless `topology: site`) anywhere; the nodes with
  // the fewest usable GPUs first. `added`: the node that just became a candidate when the search
  // did not fit before it, so only its block and site can newly hold the shape; -1 to look at
  // every block and site.
  std::optional<std::vector<uint32_t>> Fits(int64_t added) const {
    const int32_t want = shape.nodes;
    if (global < want)
      return std::nullopt;
    auto best_of = [&](const std::vector<int32_t>& count, uint32_t hint) {
      int32_t best = -1;
      if (added >= 0)
        return count[hint] >= want ? static_cast<int32_t>(hint) : -1;
      for (uint32_t d = 0; d < count.size(); ++d) {
        if (count[d] >= want && (best < 0 || count[d] < count[best]))
          best = static_cast<int32_t>(d);
      }
      return best;
    };
    // The `want` candidates with the fewest usable GPUs (ties: lowest index).
    auto take = [&](std::vector<uint32_t> nodes) {
      const auto middle = nodes.begin() + want;
      std::partial_sort(nodes.begin(), middle, nodes.end(), [&](uint32_t x, uint32_t y) {
        return gpus[x] != gpus[y] ? gpus[x] < gpus[y] : x < y;
      });
      nodes.erase(middle, nodes.end());
      return nodes;
    };
    auto candidates = [&](auto in_domain) {
      std::vector<uint32_t> nodes;
      for (uint32_t i = 0; i < cand.size(); ++i) {
        if (cand[i] && in_domain(i))
          nodes.push_back(i);
      }
      return nodes;
    };
    const uint32_t node = added >= 0 ? static_cast<uint32_t>(added) : 0;
    const int32_t block = best_of(per_block, added >= 0 ? pool->Block(node) : 0);
    if (block >= 0) {
      std::vector<uint32_t> nodes;
      for (uint32_t i : pool->BlockNodes(static_cast<uint32_t>(block))) {
        if (cand[i])
          nodes.push_back(i);
      }
      return take(std::move(nodes));
    }
    if (shape.topology == api::Topology::kBlock)
      return std::nullopt;
    const int32_t site = best_of(per_site, added >= 0 ? pool->Site(node) : 0);
    if (site >= 0)
      return take(
          candidates([&](uint32_t i) { return pool->Site(i) == static_cast<uint32_t>(site); }));
    if (shape.topology == api::Topology::kSite)
      return std::nullopt;
    return take(candidates([](uint32_t) { return true; }));
  }
};

Timeline::Timeline(const Snapshot& snapshot, Timestamp now)
    : snapshot_(&snapshot), now_ms_(ToUnixMillis(now)) {}

Timeline::Timeline(const Snapshot& snapshot, Timestamp now, std::vector<int64_t> running_end_ms)
    : snapshot_(&snapshot),
      now_ms_(ToUnixMillis(now)),
      running_end_ms_(std::move(running_end_ms)) {}

Timeline::~Timeline() = default;

void Timeline::Build(const NodePool& pool) const {
  built_ = true;
  const size_t types = std::max<size_t>(1, snapshot_->gpu_types.size());
  sorted_.resize(types);
  heap_.resize(types);
  for (size_t r = 0; r < snapshot_->running.size(); ++r) {
    const RunningJobInfo& job = snapshot_->running[r];
    int64_t at = r < running_end_ms_.size() ? running_end_ms_[r]
                                            : ToUnixMillis(job.start_time + job.time_limit);
    if (job.terminating_deadline)
      at = std::min(at, ToUnixMillis(*job.terminating_deadline));
    at = std::max(at, now_ms_);
    for (const NodeAllocation& a : job.allocation) {
      const int32_t gpus = Popcount(a.gpus & pool.HealthyMask(a.node));
      heap_[pool.Type(a.node)].push_back({at, a.node, gpus, a.cpus, a.memory_mib});
    }
  }
  for (std::vector<FreeEvent>& heap : heap_)
    std::make_heap(heap.begin(), heap.end(), Later);
}

const FreeEvent* Timeline::Event(const NodePool& pool, uint32_t type, size_t i) const {
  if (!built_)
    Build(pool);
  if (type >= heap_.size())
    return nullptr;
  std::vector<FreeEvent>& sorted = sorted_[type];
  std::vector<FreeEvent>& heap = heap_[type];
  while (i >= sorted.size() && !heap.empty()) {
    if (sorted.size() >= heap.size() / 4 && heap.size() > 64) {
      // A search this deep tends to go on: one sort of the rest beats popping it event by event.
      std::sort(heap.begin(), heap.end(), Earlier);
      sorted.insert(sorted.end(), heap.begin(), heap.end());
      heap.clear();
      break;
    }
    std::pop_heap(heap.begin(), heap.end(), Later);
    sorted.push_back(heap.back());
    heap.pop_back();
  }
  return i < sorted.size() ? &sorted[i] : nullptr;
}

void Timeline::AddStart(const std::vector<NodeAllocation>& allocation, Timestamp end,
                        const NodePool& pool) {
  const int64_t at = ToUnixMillis(end);
  std::vector<FreeEvent>& slot = added_[at];
  for (const NodeAllocation& a : allocation) {
    const FreeEvent e{at, a.node, Popcount(a.gpus & pool.HealthyMask(a.node)), a.cpus,
                      a.memory_mib};
    slot.push_back(e);
    added_log_.push_back(e);
  }
}

void Timeline::AddRelease(uint32_t node, int32_t gpus, Timestamp at) {
  const FreeEvent e{std::max(ToUnixMillis(at), now_ms_), node, gpus, 0, 0};
  added_[e.at_ms].push_back(e);
  added_log_.push_back(e);
}

Timeline::Search& Timeline::SearchFor(const NodePool& pool, const Shape& shape,
                                      uint32_t type) const {
  ++search_clock_;
  for (const std::unique_ptr<Search>& s : searches_) {
    if (s->pool == &pool && s->type == type && s->shape == shape) {
      s->last_used = search_clock_;
      CatchUp(*s, pool);
      return *s;
    }
  }
  if (searches_.size() < kMaxSearches) {
    searches_.push_back(std::make_unique<Search>());
  } else {
    std::sort(searches_.begin(), searches_.end(),
              [](const auto& a, const auto& b) { return a->last_used > b->last_used; });
  }
  Search& s = *searches_.back();
  const size_t n = pool.node_count();
  s.pool = &pool;
  s.type = type;
  s.shape = shape;
  s.last_used = search_clock_;
  s.gpus.assign(n, 0);
  s.cpus.assign(n, 0);
  s.mem.assign(n, 0);
  s.relevant.assign(n, 0);
  s.cand.assign(n, 0);
  s.per_block.assign(pool.block_count(), 0);
  s.per_site.assign(pool.site_count(), 0);
  s.global = 0;
  s.at_ms = now_ms_;
  s.in_added = false;
  s.added_pos = 0;
  s.running_next = 0;
  // The pool as it is now includes every change and start so far; the starts' frees all lie
  // ahead of the cursor (at or after now).
  s.changes_seen = pool.changes().size();
  s.added_seen = added_log_.size();
  for (uint32_t i = 0; i < n; ++i) {
    if (!pool.Matches(i, type, shape))
      continue;  // Never read: `relevant` filters the replay.
    s.relevant[i] = 1;
    s.gpus[i] = pool.UsableGpus(i);
    s.cpus[i] = pool.FreeCpus(i);
    s.mem[i] = pool.FreeMemory(i);
    s.Recount(i);
  }
  return s;
}

void Timeline::CatchUp(Search& s, const NodePool& pool) const {
  const std::vector<PoolChange>& changes = pool.changes();
  for (; s.changes_seen < changes.size(); ++s.changes_seen) {
    const PoolChange& c = changes[s.changes_seen];
    if (!s.relevant[c.node])
      continue;
    s.gpus[c.node] += c.usable_gpus;
    s.cpus[c.node] += c.cpus;
    s.mem[c.node] += c.memory_mib;
    s.Recount(c.node);
  }
  // A start's free before the cursor is replayed now; one at or after it lies ahead in the
  // merge (an added group at the cursor's time only grows at its end).
  for (; s.added_seen < added_log_.size(); ++s.added_seen) {
    const FreeEvent& e = added_log_[s.added_seen];
    if (e.at_ms < s.at_ms)
      s.Apply(e);
  }
}

std::optional<Reservation> Timeline::Earliest(const NodePool& pool, const Shape& shape,
                                              uint32_t type, JobId job, Timestamp until) const {
  const int64_t until_ms =
      until == Timestamp::max() ? std::numeric_limits<int64_t>::max() : ToUnixMillis(until);
  if (until_ms < now_ms_)
    return std::nullopt;
  Search& s = SearchFor(pool, shape, type);
  // The previous fit of this shape was at the cursor; nothing fits earlier now.
  if (s.at_ms > until_ms)
    return std::nullopt;
  auto make = [&](int64_t at, const std::vector<uint32_t>& nodes) {
    Reservation r{job, type, FromUnixMillis(std::max(at, now_ms_)), {}};
    for (uint32_t i : nodes)
      r.nodes.push_back({i, shape.gpus_per_node});
    return r;
  };
  if (auto fit = s.Fits(-1))
    return make(s.at_ms, *fit);
  // Replay both event streams in time order from the cursor.
  auto added = s.in_added ? added_.find(s.at_ms) : added_.lower_bound(s.at_ms);
  size_t pos = s.in_added ? s.added_pos : 0;
  for (;;) {
    while (added != added_.end() && pos >= added->second.size()) {
      ++added;
      pos = 0;
    }
    const FreeEvent* e = Event(pool, s.type, s.running_next);
    if (!e && added == added_.end())
      return std::nullopt;
    const bool running_next = added == added_.end() || (e && e->at_ms <= added->first);
    const int64_t at = running_next ? e->at_ms : added->first;
    if (at > until_ms)
      return std::nullopt;  // Everything left is later than `until`.
    const FreeEvent& next = running_next ? *e : added->second[pos];
    if (running_next) {
      ++s.running_next;
      s.in_added = false;
    } else {
      s.added_pos = ++pos;
      s.in_added = true;
    }
    s.at_ms = at;
    if (s.Apply(next)) {
      if (auto fit = s.Fits(next.node))
        return make(at, *fit);
    }
  }
}

}  // namespace gsched::core
