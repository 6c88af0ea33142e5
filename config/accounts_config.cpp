#include "config/accounts_config.h"

#include <algorithm>
#include <functional>
#include <unordered_map>
#include <utility>

#include "config/yaml_reader.h"
#include "scheduler/common/quantity.h"

namespace gsched::config {
namespace {

constexpr size_t kMaxAccounts = 100'000;
constexpr size_t kMaxUsersPerAccount = 100'000;
constexpr int64_t kMaxGpus = 10'000'000;

struct ParsedAccount {
  AccountSpec spec;
  std::string path;  // `accounts[3]`
  int name_line = 0;
  int parent_line = 0;
  int quotas_line = 0;
  int users_line = 0;
  bool parent_set = false;
  bool usable = false;  // Has a valid, unique name.
};

std::string Join(const std::vector<std::string>& names, size_t max_shown = 5) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < max_shown; ++i)
    out += (i ? ", " : "") + names[i];
  if (names.size() > max_shown)
    out += ", ...";
  return out;
}

std::map<std::string, QuotaSpec> ReadQuotas(const YamlValue& value) {
  std::map<std::string, QuotaSpec> quotas;
  for (auto& [type, quota_value] : value.Entries(64)) {
    if (!IsValidName(type)) {
      quota_value.Error("invalid GPU type name: use 1..64 characters of [a-z0-9._-]");
      continue;
    }
    YamlMap q = quota_value.Map();
    if (!quota_value.present())
      quota_value.Error("must be a mapping {guaranteed, limit}");
    QuotaSpec quota;
    auto guaranteed = q.Required("guaranteed").Int(0, kMaxGpus);
    quota.guaranteed = guaranteed.value_or(0);
    YamlValue limit_value = q.Get("limit");
    quota.limit = limit_value.Int(0, kMaxGpus);
    if (guaranteed && quota.limit && *quota.limit < *guaranteed) {
      limit_value.Error("must be >= guaranteed (" + std::to_string(*guaranteed) + ")");
    }
    quotas.emplace(type, quota);
  }
  return quotas;
}

std::optional<BudgetSpec> ReadBudget(const YamlValue& value) {
  if (!value.present())
    return std::nullopt;
  YamlMap b = value.Map();
  BudgetSpec budget;
  auto hours = b.Required("gpu_hours").Double(0.0, 1e12, /*min_exclusive=*/true);
  auto start = b.Required("start").Time();
  YamlValue end_value = b.Required("end");
  auto end = end_value.Time();
  if (start && end && *end <= *start) {
    end_value.Error("must be after start (" + FormatTimestamp(*start) + ")");
    return std::nullopt;
  }
  if (!hours || !start || !end)
    return std::nullopt;
  budget.gpu_hours = *hours;
  budget.start = *start;
  budget.end = *end;
  return budget;
}

ParsedAccount ReadAccount(const YamlValue& value) {
  ParsedAccount a;
  a.path = value.path();
  YamlMap m = value.Map();
  YamlValue name = m.Required("name");
  a.spec.name = name.Name().value_or("");
  a.name_line = name.line();
  YamlValue parent = m.Get("parent");
  a.parent_line = parent.line();
  if (parent.present()) {
    a.parent_set = true;
    if (auto p = parent.String(64))
      a.spec.parent = *p;
  }
  a.spec.shares = m.Int("shares", a.spec.shares, 1, 1'000'000);
  a.spec.quotas = ReadQuotas(m.Get("quotas"));
  a.quotas_line = m.Get("quotas").line();
  a.spec.budget = ReadBudget(m.Get("budget"));
  a.spec.on_budget_exhausted = m.Get("on_budget_exhausted")
                                   .Enum<api::BudgetExhaustedPolicy>()
                                   .value_or(a.spec.on_budget_exhausted);
  a.spec.max_pending_jobs_per_user = m.Get("max_pending_jobs_per_user").Int(0, 100'000'000);
  a.spec.max_running_gpus_per_user = m.Get("max_running_gpus_per_user").Int(1, kMaxGpus);
  YamlValue users = m.Get("users");
  a.users_line = users.line();
  std::vector<std::string> seen;
  for (const YamlValue& user : users.List(kMaxUsersPerAccount)) {
    auto name = user.Name(64);
    if (!name) {
      if (!user.present())
        user.Error("must be a user name");
      continue;
    }
    if (std::find(seen.begin(), seen.end(), *name) != seen.end()) {
      user.Error("user '" + *name + "' is listed twice");
      continue;
    }
    seen.push_back(*name);
  }
  a.spec.users = std::move(seen);
  return a;
}

class TreeBuilder {
 public:
  TreeBuilder(std::vector<ParsedAccount> parsed, Diagnostics* diag)
      : parsed_(std::move(parsed)), diag_(diag) {}

  AccountsConfig Build() {
    IndexNames();
    if (!CheckParents())
      return {};  // Cycle and sum checks need a sound parent relation.
    if (!CheckCycles())
      return {};
    CheckGuaranteeSums();
    CheckUsersOnLeaves();
    return PreOrder();
  }

 private:
  void IndexNames() {
    for (size_t i = 0; i < parsed_.size(); ++i) {
      ParsedAccount& a = parsed_[i];
      if (a.spec.name.empty())
        continue;
      auto [it, inserted] = index_.emplace(a.spec.name, i);
      if (!inserted) {
        diag_->Add(
            a.path + ".name",
            "duplicate account '" + a.spec.name + "' (also " + parsed_[it->second].path + ")",
            a.name_line);
        continue;
      }
      a.usable = true;
    }
    // `root` is implicit; when listed it may set quotas and shares but has no parent.
    auto root = index_.find(std::string(kRootAccount));
    if (root == index_.end()) {
      ParsedAccount implicit;
      implicit.spec.name = std::string(kRootAccount);
      implicit.path = "accounts";
      implicit.usable = true;
      parsed_.push_back(std::move(implicit));
      index_.emplace(std::string(kRootAccount), parsed_.size() - 1);
      root = index_.find(std::string(kRootAccount));
    } else if (parsed_[root->second].parent_set) {
      diag_->Add(parsed_[root->second].path + ".parent", "root has no parent",
                 parsed_[root->second].parent_line);
    }
    parsed_[root->second].spec.parent.clear();
    root_index_ = root->second;
  }

  bool CheckParents() {
    bool ok = true;
    std::vector<std::string> names;
    for (const auto& [name, i] : index_)
      names.push_back(name);
    std::sort(names.begin(), names.end());
    for (size_t i = 0; i < parsed_.size(); ++i) {
      ParsedAccount& a = parsed_[i];
      if (!a.usable || i == root_index_)
        continue;
      if (a.spec.parent == a.spec.name) {
        diag_->Add(a.path + ".parent", "an account cannot be its own parent", a.parent_line);
        ok = false;
        continue;
      }
      if (index_.count(a.spec.parent) == 0) {
        std::string message = "unknown account '" + a.spec.parent + "'";
        if (auto guess = DidYouMean(a.spec.parent, names))
          message += "; did you mean '" + *guess + "'?";
        diag_->Add(a.path + ".parent", std::move(message), a.parent_line);
        ok = false;
      }
    }
    return ok;
  }

  size_t ParentOf(size_t i) const { return index_.at(parsed_[i].spec.parent); }

  // Every account must reach root. Reports each cycle once, at its first account in file order.
  bool CheckCycles() {
    // 0: unvisited, 1: on the current path, 2: reaches root.
    std::vector<int> state(parsed_.size(), 0);
    state[root_index_] = 2;
    bool ok = true;
    for (size_t start = 0; start < parsed_.size(); ++start) {
      if (!parsed_[start].usable || state[start] != 0)
        continue;
      std::vector<size_t> path;
      size_t i = start;
      while (state[i] == 0) {
        state[i] = 1;
        path.push_back(i);
        i = ParentOf(i);
      }
      if (state[i] == 1) {
        // `i` is on the current path: the cycle is path[pos..].
        auto pos = std::find(path.begin(), path.end(), i);
        std::vector<size_t> cycle(pos, path.end());
        size_t first = *std::min_element(cycle.begin(), cycle.end());
        auto rotate_at = std::find(cycle.begin(), cycle.end(), first);
        std::rotate(cycle.begin(), rotate_at, cycle.end());
        std::string chain;
        for (size_t k : cycle)
          chain += parsed_[k].spec.name + " -> ";
        chain += parsed_[first].spec.name;
        diag_->Add(parsed_[first].path + ".parent", "cycle in the account tree: " + chain,
                   parsed_[first].parent_line);
        ok = false;
      }
      // Every account on the path either reaches root or hangs off (or is in) a cycle; mark all as
      // settled so that nothing is reported twice.
      for (size_t k : path)
        state[k] = 2;
    }
    return ok;
  }

  void CheckGuaranteeSums() {
    // parent index -> GPU type -> (sum, contributors).
    std::vector<std::map<std::string, std::pair<int64_t, std::vector<std::string>>>> sums(
        parsed_.size());
    for (size_t i = 0; i < parsed_.size(); ++i) {
      const ParsedAccount& a = parsed_[i];
      if (!a.usable || i == root_index_)
        continue;
      for (const auto& [type, quota] : a.spec.quotas) {
        if (quota.guaranteed == 0)
          continue;
        auto& [sum, who] = sums[ParentOf(i)][type];
        sum += quota.guaranteed;
        who.push_back(a.spec.name + " " + std::to_string(quota.guaranteed));
      }
    }
    for (size_t p = 0; p < parsed_.size(); ++p) {
      const ParsedAccount& parent = parsed_[p];
      for (const auto& [type, entry] : sums[p]) {
        auto quota = parent.spec.quotas.find(type);
        if (quota == parent.spec.quotas.end())
          continue;  // The parent does not constrain this type.
        const auto& [sum, who] = entry;
        if (sum > quota->second.guaranteed) {
          diag_->Add(parent.path + ".quotas." + type + ".guaranteed",
                     "children of '" + parent.spec.name + "' are guaranteed " +
                         std::to_string(sum) + " " + type + " GPUs in total (" + Join(who) +
                         "), more than its " + std::to_string(quota->second.guaranteed),
                     parent.quotas_line);
        }
      }
    }
  }

  void CheckUsersOnLeaves() {
    std::vector<std::vector<std::string>> children(parsed_.size());
    for (size_t i = 0; i < parsed_.size(); ++i) {
      if (parsed_[i].usable && i != root_index_)
        children[ParentOf(i)].push_back(parsed_[i].spec.name);
    }
    for (size_t i = 0; i < parsed_.size(); ++i) {
      const ParsedAccount& a = parsed_[i];
      if (!a.spec.users.empty() && !children[i].empty()) {
        diag_->Add(a.path + ".users",
                   "users belong to leaf accounts; '" + a.spec.name + "' has child accounts (" +
                       Join(children[i]) + ")",
                   a.users_line);
      }
    }
  }

  AccountsConfig PreOrder() {
    std::vector<std::vector<size_t>> children(parsed_.size());
    for (size_t i = 0; i < parsed_.size(); ++i) {
      if (parsed_[i].usable && i != root_index_)
        children[ParentOf(i)].push_back(i);
    }
    AccountsConfig out;
    out.accounts.reserve(parsed_.size());
    // Iterative, so that a deep chain of accounts cannot exhaust the stack.
    std::vector<size_t> stack = {root_index_};
    while (!stack.empty()) {
      size_t i = stack.back();
      stack.pop_back();
      out.accounts.push_back(std::move(parsed_[i].spec));
      for (auto it = children[i].rbegin(); it != children[i].rend(); ++it)
        stack.push_back(*it);
    }
    return out;
  }

  std::vector<ParsedAccount> parsed_;
  Diagnostics* diag_;
  std::unordered_map<std::string, size_t> index_;
  size_t root_index_ = 0;
};

AccountsConfig Decode(YamlMap& root) {
  std::vector<ParsedAccount> parsed;
  for (const YamlValue& item : root.Get("accounts").List(kMaxAccounts))
    parsed.push_back(ReadAccount(item));
  return TreeBuilder(std::move(parsed), root.diagnostics()).Build();
}

}  // namespace

const AccountSpec* AccountsConfig::Find(std::string_view name) const {
  auto it = std::find_if(accounts.begin(), accounts.end(),
                         [&](const AccountSpec& a) { return a.name == name; });
  return it == accounts.end() ? nullptr : &*it;
}

std::vector<std::string> AccountsConfig::Children(std::string_view name) const {
  std::vector<std::string> out;
  for (const AccountSpec& a : accounts) {
    if (a.parent == name)
      out.push_back(a.name);
  }
  return out;
}

Result<AccountsConfig> LoadAccountsConfig(const std::string& path) {
  return DecodeYamlFile<AccountsConfig>(
      path, [](YamlMap& root, const std::filesystem::path&) { return Decode(root); });
}

Result<AccountsConfig> ParseAccountsConfig(std::string_view yaml_text,
                                           std::string_view source_name) {
  return DecodeYaml<AccountsConfig>(yaml_text, source_name,
                                    [](YamlMap& root) { return Decode(root); });
}

Status ValidateAccountsForCluster(const AccountsConfig& accounts, const ClusterConfig& cluster) {
  Diagnostics diag;
  std::map<std::string, int64_t> capacity = cluster.GpusByType();
  std::map<std::string, int64_t> top_level;
  const AccountSpec* root = accounts.Find(kRootAccount);
  for (const AccountSpec& a : accounts.accounts) {
    for (const auto& [type, quota] : a.quotas) {
      std::string path = "accounts." + a.name + ".quotas." + type;
      if (FindGpuType(cluster.gpu_types, type) == nullptr) {
        diag.Add(path, "unknown GPU type '" + type + "' in this cluster");
        continue;
      }
      if (a.parent == kRootAccount)
        top_level[type] += quota.guaranteed;
    }
  }
  for (const auto& [type, sum] : top_level) {
    int64_t have = capacity.count(type) ? capacity.at(type) : 0;
    const QuotaSpec* root_quota = nullptr;
    if (root != nullptr && root->quotas.count(type))
      root_quota = &root->quotas.at(type);
    int64_t guaranteed = root_quota ? root_quota->guaranteed : sum;
    if (guaranteed > have) {
      diag.Add("accounts." + std::string(kRootAccount) + ".quotas." + type,
               std::to_string(guaranteed) + " " + type +
                   " GPUs are guaranteed but the cluster has " + std::to_string(have));
    }
  }
  if (root != nullptr) {
    for (const auto& [type, quota] : root->quotas) {
      int64_t have = capacity.count(type) ? capacity.at(type) : 0;
      if (top_level.count(type) == 0 && quota.guaranteed > have) {
        diag.Add("accounts.root.quotas." + type, std::to_string(quota.guaranteed) + " " + type +
                                                     " GPUs are guaranteed but the cluster has " +
                                                     std::to_string(have));
      }
    }
  }
  return diag.ToStatus();
}

api::Account ToApiAccount(const AccountSpec& spec) {
  api::Account a;
  a.name = spec.name;
  a.parent = spec.name == kRootAccount ? "" : spec.parent;
  a.shares = spec.shares;
  for (const auto& [type, q] : spec.quotas)
    a.quotas[type] = {q.guaranteed, q.limit.value_or(api::kMaxQuotaGpus)};
  if (spec.budget)
    a.budget = api::Budget{spec.budget->gpu_hours, spec.budget->start, spec.budget->end};
  a.on_budget_exhausted = spec.on_budget_exhausted;
  a.max_pending_jobs_per_user = spec.max_pending_jobs_per_user;
  a.max_running_gpus_per_user = spec.max_running_gpus_per_user;
  if (!spec.users.empty())
    a.users = spec.users;
  return a;
}

}  // namespace gsched::config
