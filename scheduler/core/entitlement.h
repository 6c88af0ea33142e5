// Demand-aware entitlement (DESIGN.md section 8; the fair-share order of section 3 aims at it):
// the hierarchical max-min split of the capacity by shares, capped at what each account asks for
// (running + pending, in normalised GPUs), so that what one account does not ask for goes to its
// siblings. The simulator measures `fair_share_error` against it; the scheduling pass orders and
// paces accounts by what they hold against it. Pure and single-threaded.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "scheduler/core/model.h"

namespace gsched::core {

// The hierarchical max-min split of `capacity` by shares, capped at demand. Built once per tree;
// `Split` is cheap enough to run at every pass (two walks over the accounts and a sort of each
// account's demanding children). An account with jobs of its own and children competes for its
// own jobs as one more child with 1 share (the replay puts jobs on leaves only).
class EntitlementSplit {
 public:
  explicit EntitlementSplit(const std::vector<AccountInfo>& accounts);

  // `demand[a]`: what account `a`'s own jobs ask for (running + pending, normalised GPUs).
  // Returns each account's entitlement for its own jobs (0 for those without demand); the
  // entitlements add up to min(capacity, total demand).
  std::vector<double> Split(std::span<const double> demand, double capacity) const;

 private:
  std::vector<double> shares_;
  std::vector<std::vector<uint32_t>> children_;  // Per account; index `size()` is a virtual root.
  std::vector<uint32_t> top_down_;               // Parents before children.
};

// Water-filling among siblings: each gets min(demand, level x weight), with the level set so that
// the parts add up to min(capacity, sum of demands). Weights <= 0 count as a tiny weight.
std::vector<double> MaxMinSplit(std::span<const double> demand, std::span<const double> weights,
                                double capacity);

}  // namespace gsched::core
