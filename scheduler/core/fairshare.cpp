#include "scheduler/core/fairshare.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace gsched::core {

FairShareTree FairShareTree::Build(std::span<const AccountInfo> accounts, Timestamp now,
                                   Duration half_life, std::span<const double> held,
                                   std::span<const double> entitled) {
  const size_t n = accounts.size();
  FairShareTree tree;
  tree.factor_.assign(n, 0.0);
  tree.subtree_usage_.assign(n, 0.0);
  std::vector<std::vector<uint32_t>> children(n);
  std::vector<uint32_t> roots;
  for (uint32_t a = 0; a < n; ++a) {
    if (accounts[a].parent == kNoParent)
      roots.push_back(a);
    else
      children[accounts[a].parent].push_back(a);
  }
  // Subtree usage: every account adds its own decayed usage to itself and all its ancestors.
  for (uint32_t a = 0; a < n; ++a) {
    const double u = DecayedUsage(accounts[a].usage, now, half_life);
    for (uint32_t p = a, steps = 0; p != kNoParent && steps <= n; p = accounts[p].parent, ++steps)
      tree.subtree_usage_[p] += u;
  }
  // Subtree allocation and entitlement, when given.
  const bool by_allocation = held.size() == n && entitled.size() == n;
  std::vector<double> subtree_held, subtree_entitled;
  if (by_allocation) {
    subtree_held.assign(n, 0.0);
    subtree_entitled.assign(n, 0.0);
    for (uint32_t a = 0; a < n; ++a) {
      for (uint32_t p = a, steps = 0; p != kNoParent && steps <= n;
           p = accounts[p].parent, ++steps) {
        subtree_held[p] += held[a];
        subtree_entitled[p] += entitled[a];
      }
    }
  }
  // Below its entitlement: held / entitled, else infinity (owed nothing).
  auto owed = [&](uint32_t a) {
    if (!by_allocation || !(subtree_held[a] < subtree_entitled[a]))
      return std::numeric_limits<double>::infinity();
    return subtree_held[a] / subtree_entitled[a];
  };
  auto order_siblings = [&](std::vector<uint32_t>& sib) {
    double share_sum = 0, usage_sum = 0;
    for (uint32_t a : sib) {
      share_sum += accounts[a].shares;
      usage_sum += tree.subtree_usage_[a];
    }
    auto fs = [&](uint32_t a) {
      const double u = tree.subtree_usage_[a];
      if (u <= 0 || usage_sum <= 0)
        return std::numeric_limits<double>::infinity();
      const double norm_shares = share_sum > 0 ? accounts[a].shares / share_sum : 0.0;
      return norm_shares / (u / usage_sum);
    };
    std::sort(sib.begin(), sib.end(), [&](uint32_t x, uint32_t y) {
      const double ox = owed(x), oy = owed(y);
      if (ox != oy)
        return ox < oy;
      const double fx = fs(x), fy = fs(y);
      if (fx != fy)
        return fx > fy;
      return accounts[x].name < accounts[y].name;
    });
  };
  // Depth-first walk; children visited in their level order.
  std::vector<uint32_t> stack;
  order_siblings(roots);
  for (auto it = roots.rbegin(); it != roots.rend(); ++it)
    stack.push_back(*it);
  while (!stack.empty()) {
    const uint32_t a = stack.back();
    stack.pop_back();
    if (children[a].empty()) {
      tree.leaf_order_.push_back(a);
      continue;
    }
    order_siblings(children[a]);
    for (auto it = children[a].rbegin(); it != children[a].rend(); ++it)
      stack.push_back(*it);
  }
  const double leaves = static_cast<double>(tree.leaf_order_.size());
  for (size_t r = 0; r < tree.leaf_order_.size(); ++r) {
    const uint32_t leaf = tree.leaf_order_[r];
    const double f = (leaves - static_cast<double>(r)) / leaves;
    tree.factor_[leaf] = f;
    // Inner accounts take the factor of their best leaf: the first one reached in the walk.
    for (uint32_t p = accounts[leaf].parent, steps = 0; p != kNoParent && steps <= n;
         p = accounts[p].parent, ++steps) {
      tree.factor_[p] = std::max(tree.factor_[p], f);
    }
  }
  return tree;
}

}  // namespace gsched::core
