// The Fair-Tree-style fair-share ranking (DESIGN.md section 3, phase 1), over decayed usage
// (`usage.h`).
//
// Ranking: at each level of the account tree, siblings are ordered by
//   level_fairshare = (shares_a / sum of sibling shares) / (usage_a / sum of sibling usage)
// highest first, where `usage_a` is the decayed usage of a's whole subtree; a sibling with no usage
// ranks as infinite; ties go by name. A depth-first walk in that order ranks the leaves: the leaf
// at rank r (0 = first) among n leaves gets the factor (n - r) / n, so the best leaf has 1.0 and
// the worst 1/n. An inner account (jobs submitted to it directly) gets the factor of its best leaf.
//
// What accounts hold now (optional): given each account's running allocation and its entitlement
// (entitlement.h: the max-min split of the cluster by shares, capped at demand; both normalised
// GPUs, for the account's own jobs), siblings whose subtree holds less than it is entitled to
// rank first, the furthest below (lowest held / entitled) first; the others follow in the usage
// order above. Decayed usage alone moves slowly (a 7-day half-life over hours of backlog), so an
// account that already holds more than its share could keep ranking first; this keeps the order
// on what each account is owed now, and the usage decides among those that are not owed
// anything.
// Pure and single-threaded.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "scheduler/core/model.h"
#include "scheduler/core/usage.h"  // DecayedUsage

namespace gsched::core {

class FairShareTree {
 public:
  // `held` and `entitled`: per account, or both empty (usage only).
  static FairShareTree Build(std::span<const AccountInfo> accounts, Timestamp now,
                             Duration half_life, std::span<const double> held = {},
                             std::span<const double> entitled = {});

  // In [0, 1]; 1.0 for the best-served leaf.
  double Factor(uint32_t account) const { return factor_[account]; }
  // Decayed usage of the account's subtree.
  double SubtreeUsage(uint32_t account) const { return subtree_usage_[account]; }
  // Leaves from the first rank to the last.
  const std::vector<uint32_t>& LeafOrder() const { return leaf_order_; }

 private:
  std::vector<double> factor_;
  std::vector<double> subtree_usage_;
  std::vector<uint32_t> leaf_order_;
};

}  // namespace gsched::core
