#include "scheduler/core/entitlement.h"

#include <algorithm>

namespace gsched::core {

std::vector<double> MaxMinSplit(std::span<const double> demand, std::span<const double> weights,
                                double capacity) {
  constexpr double kTinyWeight = 1e-9;
  const size_t n = demand.size();
  std::vector<double> out(n, 0.0);
  std::vector<uint32_t> order;
  double weight_left = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (demand[i] > 0) {
      order.push_back(i);
      weight_left += std::max(weights[i], kTinyWeight);
    }
  }
  // Ascending demand per weight: those asking least for their weight are filled first.
  auto ratio = [&](uint32_t i) { return demand[i] / std::max(weights[i], kTinyWeight); };
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const double ra = ratio(a), rb = ratio(b);
    return ra != rb ? ra < rb : a < b;
  });
  double left = std::max(0.0, capacity);
  for (size_t k = 0; k < order.size(); ++k) {
    const uint32_t i = order[k];
    const double w = std::max(weights[i], kTinyWeight);
    const double fair = weight_left > 0 ? left * w / weight_left : 0;
    out[i] = std::min(demand[i], fair);
    left -= out[i];
    weight_left -= w;
  }
  return out;
}

EntitlementSplit::EntitlementSplit(const std::vector<core::AccountInfo>& accounts)
    : shares_(accounts.size() + 1, 1.0), children_(accounts.size() + 1) {
  const uint32_t root = static_cast<uint32_t>(accounts.size());
  for (uint32_t a = 0; a < accounts.size(); ++a) {
    shares_[a] = accounts[a].shares;
    const uint32_t p = accounts[a].parent == kNoParent ? root : accounts[a].parent;
    children_[p].push_back(a);
  }
  // Breadth-first from the virtual root: parents before children (the tree has no cycle).
  top_down_.push_back(root);
  for (size_t k = 0; k < top_down_.size(); ++k) {
    for (uint32_t c : children_[top_down_[k]])
      top_down_.push_back(c);
  }
}

std::vector<double> EntitlementSplit::Split(std::span<const double> demand, double capacity) const {
  const size_t n = children_.size() - 1;
  // Subtree demand, children before parents.
  std::vector<double> subtree(n + 1, 0.0);
  for (size_t k = top_down_.size(); k-- > 0;) {
    const uint32_t a = top_down_[k];
    if (a < n)
      subtree[a] += demand[a];
    for (uint32_t c : children_[a])
      subtree[a] += subtree[c];
  }
  // Each account's entitlement for its subtree, split among its demanding children (and its own
  // jobs, as one more child with 1 share).
  std::vector<double> subtree_entitled(n + 1, 0.0), own(n, 0.0);
  subtree_entitled[n] = std::min(std::max(0.0, capacity), subtree[n]);
  std::vector<double> d, w;
  for (uint32_t a : top_down_) {
    const std::vector<uint32_t>& kids = children_[a];
    const double mine = a < n ? demand[a] : 0.0;
    if (kids.empty()) {
      if (a < n)
        own[a] = subtree_entitled[a];
      continue;
    }
    d.clear();
    w.clear();
    for (uint32_t c : kids) {
      d.push_back(subtree[c]);
      w.push_back(shares_[c]);
    }
    d.push_back(mine);
    w.push_back(1.0);
    const std::vector<double> part = MaxMinSplit(d, w, subtree_entitled[a]);
    for (size_t k = 0; k < kids.size(); ++k)
      subtree_entitled[kids[k]] = part[k];
    if (a < n)
      own[a] = part.back();
  }
  return own;
}

}  // namespace gsched::core
