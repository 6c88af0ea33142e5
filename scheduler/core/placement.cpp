#include "scheduler/core/placement.h"

#include <algorithm>
#include <limits>

namespace gsched::core {

Shape ShapeOf(const PendingJobInfo& job) {
  return Shape{job.nodes,    job.gpus_per_node,  job.cpus_per_node, job.memory_mib_per_node,
               job.topology, job.required_labels};
}

GpuMask ChooseGpus(GpuMask free, int count, const std::vector<GpuMask>& nvlink) {
  const int have = Popcount(free);
  if (count <= 0)
    return 0;
  auto lowest = [&] {
    GpuMask out = 0, rest = free;
    for (int i = 0; i < count && rest; ++i) {
      const GpuMask bit = rest & (~rest + 1);
      out |= bit;
      rest &= ~bit;
    }
    return out;
  };
  if (nvlink.empty() || count == 1 || count >= have)
    return lowest();
  // Greedy from every start GPU: add the free GPU with the most links into the set so far.
  GpuMask best = 0;
  int best_edges = -1;
  for (GpuMask starts = free; starts; starts &= starts - 1) {
    const int s = __builtin_ctzll(starts);
    GpuMask set = GpuMask{1} << s;
    int edges = 0;
    for (int k = 1; k < count; ++k) {
      int pick = -1, pick_links = -1;
      for (GpuMask rest = free & ~set; rest; rest &= rest - 1) {
        const int g = __builtin_ctzll(rest);
        const int links = g < static_cast<int>(nvlink.size()) ? Popcount(nvlink[g] & set) : 0;
        if (links > pick_links) {
          pick = g;
          pick_links = links;
        }
      }
      set |= GpuMask{1} << pick;
      edges += pick_links;
    }
    if (edges > best_edges) {
      best = set;
      best_edges = edges;
    }
  }
  return best;
}

NodePool::NodePool(const Snapshot& snapshot) : NodePool(snapshot, SumRunning(snapshot).nodes) {}

NodePool::NodePool(const Snapshot& snapshot, const std::vector<NodeUse>& use)
    : snapshot_(&snapshot) {
  const size_t n = snapshot.nodes.size();
  const size_t types = std::max<size_t>(1, snapshot.gpu_types.size());
  type_.resize(n);
  block_.resize(n);
  site_.resize(n);
  labels_.resize(n);
  schedulable_.resize(n);
  free_mask_.resize(n);
  healthy_mask_.resize(n);
  free_cpus_.resize(n);
  free_mem_.resize(n);
  reserved_.assign(n, 0);
  reserved_from_.assign(n, std::numeric_limits<int64_t>::max());
  reserved_by_.assign(n, JobId{});
  free_by_type_.assign(types, 0);
  buckets_.resize(types * (kMaxGpus + 1));
  bucket_key_.assign(n, -1);
  bucket_pos_.assign(n, 0);
  block_hist_.assign(snapshot.blocks.size() * (kMaxGpus + 1), 0);
  block_reserved_nodes_.assign(snapshot.blocks.size(), 0);
  block_types_.assign(snapshot.blocks.size(), 0);
  reserved_nodes_by_type_.resize(types);
  block_free_.assign(snapshot.blocks.size(), 0);
  site_count_ = snapshot.sites.size();
  for (uint32_t i = 0; i < n; ++i) {
    const NodeInfo& node = snapshot.nodes[i];
    type_[i] = node.gpu_type;
    block_[i] = node.block;
    site_[i] = node.site;
    labels_[i] = node.labels;
    schedulable_[i] = node.state == api::NodeState::kUp;
    const GpuMask all = node.gpu_count >= 64 ? ~GpuMask{0} : (GpuMask{1} << node.gpu_count) - 1;
    healthy_mask_[i] = all & ~node.unhealthy_gpus;
    free_mask_[i] = healthy_mask_[i] & ~use[i].gpus;
    free_cpus_[i] = node.cpus - use[i].cpus;
    free_mem_[i] = node.memory_mib - use[i].memory_mib;
    block_types_[node.block] |= TypeMask{1} << (node.gpu_type & 63);
  }
  // Nodes by block, in index order (counting sort into one array).
  block_start_.assign(snapshot.blocks.size() + 1, 0);
  for (uint32_t i = 0; i < n; ++i)
    ++block_start_[block_[i] + 1];
  for (size_t b = 1; b < block_start_.size(); ++b)
    block_start_[b] += block_start_[b - 1];
  block_list_.resize(n);
  {
    std::vector<uint32_t> fill(block_start_.begin(), block_start_.end() - 1);
    for (uint32_t i = 0; i < n; ++i)
      block_list_[fill[block_[i]]++] = i;
  }
  // Sized before they are filled: a pool is built every pass, and growing hundreds of small
  // vectors one push at a time was most of its cost.
  {
    std::vector<uint32_t> per_bucket(buckets_.size(), 0);
    for (uint32_t i = 0; i < n; ++i) {
      if (schedulable_[i])
        ++per_bucket[BucketIndex(type_[i], BucketKey(i))];
    }
    for (size_t b = 0; b < per_bucket.size(); ++b)
      buckets_[b].reserve(per_bucket[b]);
  }
  for (uint32_t i = 0; i < n; ++i) {
    if (schedulable_[i]) {
      free_by_type_[type_[i]] += FreeGpus(i);
      block_free_[block_[i]] += FreeGpus(i);
      Rebucket(i);
    }
  }
}

int NodePool::BucketKey(uint32_t n) const {
  return std::clamp(UsableGpus(n), 0, kMaxGpus);
}

void NodePool::Unbucket(uint32_t n) {
  const int key = bucket_key_[n];
  if (key < 0)
    return;
  std::vector<uint32_t>& b = buckets_[BucketIndex(type_[n], key)];
  const uint32_t pos = bucket_pos_[n];
  b[pos] = b.back();
  bucket_pos_[b[pos]] = pos;
  b.pop_back();
  bucket_key_[n] = -1;
  --block_hist_[size_t{block_[n]} * (kMaxGpus + 1) + key];
}

void NodePool::Rebucket(uint32_t n) {
  Unbucket(n);
  if (!schedulable_[n])
    return;
  const int key = BucketKey(n);
  std::vector<uint32_t>& b = buckets_[BucketIndex(type_[n], key)];
  bucket_pos_[n] = static_cast<uint32_t>(b.size());
  b.push_back(n);
  bucket_key_[n] = key;
  ++block_hist_[size_t{block_[n]} * (kMaxGpus + 1) + key];
}

bool NodePool::Candidate(uint32_t n, uint32_t type, const Shape& s, int64_t end_ms,
                         bool respect) const {
  if (!Matches(n, type, s) || !FitsHost(n, s))
    return false;
  const int32_t free = FreeGpus(n);
  if (!respect)
    return free >= s.gpus_per_node;
  if (free - reserved_[n] >= s.gpus_per_node)
    return true;
  // A job that is over before the node's first reservation delays nobody.
  return free >= s.gpus_per_node && end_ms <= reserved_from_[n];
}

NodeAllocation NodePool::Allocate(uint32_t n, const Shape& s) const {
  const NodeInfo& info = snapshot_->nodes[n];
  return NodeAllocation{n, ChooseGpus(free_mask_[n], s.gpus_per_node, info.nvlink), s.cpus_per_node,
                        s.memory_mib_per_node};
}

std::optional<Placement> NodePool::FindSingle(const Shape& s, uint32_t type, int64_t end_ms,
                                              bool respect) const {
  if (respect) {
    for (int c = std::max(0, s.gpus_per_node); c <= kMaxGpus; ++c) {
      // Equally tight nodes: prefer the fullest block among the first few that fit.
      int64_t best_block_free = std::numeric_limits<int64_t>::max();
      uint32_t best = 0;
      int seen = 0;
      for (uint32_t n : buckets_[BucketIndex(type, c)]) {
        if ((labels_[n] & s.labels) != s.labels || !FitsHost(n, s))
          continue;
        if (block_free_[block_[n]] < best_block_free) {
          best_block_free = block_free_[block_[n]];
          best = n;
        }
        if (++seen == kTieBreakScan)
          break;
      }
      if (seen > 0)
        return Placement{type, {Allocate(best, s)}};
    }
  }
  // Reserved nodes (for jobs short enough), or every node when reservations are ignored.
  const std::vector<uint32_t>* scan = &reserved_nodes_by_type_[type];
  std::vector<uint32_t> all;
  if (!respect) {
    for (uint32_t n = 0; n < type_.size(); ++n) {
      if (type_[n] == type)
        all.push_back(n);
    }
    scan = &all;
  }
  int best_left = std::numeric_limits<int>::max();
  uint32_t best = 0;
  for (uint32_t n : *scan) {
    if (!Candidate(n, type, s, end_ms, respect))
      continue;
    const int left = FreeGpus(n) - s.gpus_per_node;
    if (left < best_left) {
      best_left = left;
      best = n;
    }
  }
  if (best_left == std::numeric_limits<int>::max())
    return std::nullopt;
  return Placement{type, {Allocate(best, s)}};
}

std::optional<Placement> NodePool::FindGang(const Shape& s, uint32_t type, int64_t end_ms,
                                            bool respect) const {
  const int g = s.gpus_per_node;
  const size_t want = static_cast<size_t>(s.nodes);
  const TypeMask type_bit = TypeMask{1} << (type & 63);
  // Candidates per block, gathered once.
  struct Cand {
    int32_t left;
    uint32_t block;
    uint32_t node;
  };
  std::vector<Cand> cands;
  std::vector<int32_t> per_block(block_count(), 0);
  std::vector<int32_t> per_site(site_count_, 0);
  for (uint32_t b = 0; b < block_count(); ++b) {
    if (!(block_types_[b] & type_bit))
      continue;
    if (respect) {
      int32_t bound = block_reserved_nodes_[b];
      const int32_t* hist = &block_hist_[size_t{b} * (kMaxGpus + 1)];
      for (int c = std::max(0, g); c <= kMaxGpus; ++c)
        bound += hist[c];
      if (bound == 0 || (s.topology == api::Topology::kBlock && static_cast<size_t>(bound) < want))
        continue;
    }
    for (uint32_t n : BlockNodes(b)) {
      if (Candidate(n, type, s, end_ms, respect)) {
        cands.push_back({FreeGpus(n) - g, b, n});
        ++per_block[b];
        ++per_site[site_[n]];
      }
    }
  }
  if (cands.size() < want)
    return std::nullopt;
  auto take = [&](auto in_domain) {
    std::vector<Cand> chosen;
    for (const Cand& c : cands) {
      if (in_domain(c))
        chosen.push_back(c);
    }
    std::partial_sort(chosen.begin(), chosen.begin() + static_cast<ptrdiff_t>(want), chosen.end(),
                      [](const Cand& x, const Cand& y) {
                        if (x.left != y.left)
                          return x.left < y.left;
                        if (x.block != y.block)
                          return x.block < y.block;
                        return x.node < y.node;
                      });
    Placement p{type, {}};
    p.nodes.reserve(want);
    for (size_t i = 0; i < want; ++i)
      p.nodes.push_back(Allocate(chosen[i].node, s));
    return p;
  };
  // Tightest block.
  int32_t best_block = -1;
  for (uint32_t b = 0; b < per_block.size(); ++b) {
    if (static_cast<size_t>(per_block[b]) >= want &&
        (best_block < 0 || per_block[b] < per_block[best_block]))
      best_block = static_cast<int32_t>(b);
  }
  if (best_block >= 0)
    return take([&](const Cand& c) { return c.block == static_cast<uint32_t>(best_block); });
  if (s.topology == api::Topology::kBlock)
    return std::nullopt;
  int32_t best_site = -1;
  for (uint32_t st = 0; st < per_site.size(); ++st) {
    if (static_cast<size_t>(per_site[st]) >= want &&
        (best_site < 0 || per_site[st] < per_site[best_site]))
      best_site = static_cast<int32_t>(st);
  }
  if (best_site >= 0)
    return take([&](const Cand& c) { return site_[c.node] == static_cast<uint32_t>(best_site); });
  if (s.topology == api::Topology::kSite)
    return std::nullopt;
  return take([](const Cand&) { return true; });
}

std::optional<Placement> NodePool::Find(const Shape& shape, uint32_t type, Timestamp end,
                                        bool respect_reservations) const {
  if (type >= free_by_type_.size() || shape.gpus_per_node > kMaxGpus || shape.nodes < 1)
    return std::nullopt;
  if (int64_t{shape.nodes} * shape.gpus_per_node > free_by_type_[type])
    return std::nullopt;
  const int64_t end_ms = ToUnixMillis(end);
  if (shape.nodes == 1)
    return FindSingle(shape, type, end_ms, respect_reservations);
  return FindGang(shape, type, end_ms, respect_reservations);
}

void NodePool::Commit(const Placement& placement) {
  for (const NodeAllocation& a : placement.nodes) {
    const int before = FreeGpus(a.node);
    free_mask_[a.node] &= ~a.gpus;
    free_cpus_[a.node] -= a.cpus;
    free_mem_[a.node] -= a.memory_mib;
    free_by_type_[type_[a.node]] -= before - FreeGpus(a.node);
    block_free_[block_[a.node]] -= before - FreeGpus(a.node);
    Rebucket(a.node);
    changes_.push_back({a.node, FreeGpus(a.node) - before, -a.cpus, -a.memory_mib});
  }
}

void NodePool::Reserve(uint32_t node, int32_t gpus, Timestamp from, JobId job) {
  if (reserved_[node] == 0) {
    reserved_by_[node] = job;
    reserved_nodes_by_type_[type_[node]].push_back(node);
    ++block_reserved_nodes_[block_[node]];
  }
  reserved_[node] += gpus;
  reserved_from_[node] = std::min(reserved_from_[node], ToUnixMillis(from));
  Rebucket(node);
  changes_.push_back({node, -gpus, 0, 0});
}

CapacityReport NodePool::Capacity(const Shape& shape, uint32_t type) const {
  CapacityReport r;
  std::vector<int64_t> per_block(block_count(), 0), per_site(site_count_, 0);
  for (uint32_t n = 0; n < type_.size(); ++n) {
    if (type_[n] != type || (labels_[n] & shape.labels) != shape.labels)
      continue;
    const NodeInfo& info = snapshot_->nodes[n];
    if (info.gpu_count >= static_cast<uint32_t>(shape.gpus_per_node))
      ++r.big_enough_nodes;
    if (!schedulable_[n]) {
      if (info.state == api::NodeState::kDown || info.state == api::NodeState::kUnhealthy)
        r.unhealthy_free += FreeGpus(n);
      continue;
    }
    const int64_t f = FreeGpus(n);
    r.free_total += f;
    r.largest_node = std::max(r.largest_node, f);
    per_block[block_[n]] += f;
    per_site[site_[n]] += f;
    // Unhealthy GPUs count whether or not a job still holds them: simpler, and only used to
    // tell `node_health` from `resources`.
    r.unhealthy_free += Popcount(info.unhealthy_gpus & ~healthy_mask_[n]);
  }
  for (int64_t b : per_block)
    r.largest_block = std::max(r.largest_block, b);
  for (int64_t s : per_site)
    r.largest_site = std::max(r.largest_site, s);
  return r;
}

}  // namespace gsched::core
