#include "tests/sim/scenario.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <map>
#include <sstream>

#include "tests/testutil/builders.h"

namespace gsched::sim {

namespace {

using testutil::ClusterBuilder;

template <typename T>
T Get(const YAML::Node& n, const char* key, T fallback) {
  return n[key] ? n[key].as<T>() : fallback;
}

Result<Scenario> Build(const YAML::Node& root, Timestamp start) {
  Scenario sc;
  sc.name = Get<std::string>(root, "name", "scenario");
  sc.run_for = Seconds(Get<int64_t>(root, "run_s", 3600));
  SimConfig config;
  if (const YAML::Node c = root["config"]) {
    config.interval = Seconds(Get<int64_t>(c, "interval_s", 30));
    config.policy.backfill.depth = Get<int32_t>(c, "backfill_depth", config.policy.backfill.depth);
    config.policy.backfill.enabled = Get<bool>(c, "backfill", true);
    config.policy.half_life = Seconds(Get<int64_t>(c, "half_life_s", 7 * 86400));
    config.policy.age_max = Seconds(Get<int64_t>(c, "age_max_s", 7 * 86400));
    config.policy.max_starts_per_cycle =
        Get<int32_t>(c, "max_starts_per_cycle", config.policy.max_starts_per_cycle);
    if (const YAML::Node w = c["weights"]) {
      config.policy.weights.fairshare =
          Get<double>(w, "fairshare", config.policy.weights.fairshare);
      config.policy.weights.age = Get<double>(w, "age", config.policy.weights.age);
      config.policy.weights.size = Get<double>(w, "size", config.policy.weights.size);
      config.policy.weights.priority_class =
          Get<double>(w, "class", config.policy.weights.priority_class);
    }
    if (const YAML::Node p = c["preemption"]) {
      config.policy.preemption.enabled = Get<bool>(p, "enabled", config.policy.preemption.enabled);
      config.policy.preemption.min_runtime = Seconds(Get<int64_t>(p, "min_runtime_s", 600));
      config.policy.preemption.max_per_cycle =
          Get<int32_t>(p, "max_per_cycle", config.policy.preemption.max_per_cycle);
      config.policy.preemption.max_per_account_per_hour = Get<int32_t>(
          p, "max_per_account_per_hour", config.policy.preemption.max_per_account_per_hour);
    }
  }
  ClusterBuilder cluster;
  cluster.Now(start);
  for (const YAML::Node& t : root["gpu_types"])
    cluster.GpuType(t["name"].as<std::string>(), Get<double>(t, "cost", 1.0));
  for (const YAML::Node& n : root["nodes"]) {
    cluster.AddNodes(Get<int>(n, "count", 1), Get<std::string>(n, "prefix", "n"),
                     Get<std::string>(n, "type", "h100"), Get<uint32_t>(n, "gpus", 8),
                     Get<int>(n, "nodes_per_block", 32), Get<int>(n, "blocks_per_site", 1000));
  }
  std::map<std::string, bool> known_accounts{{"root", true}};
  size_t i = 0;
  for (const YAML::Node& a : root["accounts"]) {
    const std::string field = "accounts[" + std::to_string(i++) + "]";
    testutil::AccountBuilder b(a["name"].as<std::string>());
    const std::string parent = Get<std::string>(a, "parent", "root");
    if (!known_accounts.contains(parent))
      return Status::InvalidArgument("unknown parent account " + parent, field + ".parent");
    known_accounts[a["name"].as<std::string>()] = true;
    b.Parent(parent).Shares(Get<double>(a, "shares", 1));
    for (const auto& kv : a["guaranteed"])
      b.Guaranteed(kv.first.as<std::string>(), kv.second.as<int32_t>());
    for (const auto& kv : a["limit"])
      b.Limit(kv.first.as<std::string>(), kv.second.as<int32_t>());
    if (const YAML::Node bud = a["budget"]) {
      b.Budget(Get<double>(bud, "gpu_hours", 0), Get<double>(bud, "consumed", 0),
               start + Seconds(Get<int64_t>(bud, "start_s", 0)),
               start + Seconds(Get<int64_t>(bud, "end_s", 86400 * 30)));
    }
    const std::string on = Get<std::string>(a, "on_budget_exhausted", "preemptible");
    auto policy = api::ParseEnum<api::BudgetExhaustedPolicy>(on);
    if (!policy)
      return Status::InvalidArgument("one of: " + api::EnumNames<api::BudgetExhaustedPolicy>(),
                                     field + ".on_budget_exhausted");
    b.OnBudgetExhausted(*policy);
    if (a["max_running_gpus_per_user"])
      b.MaxRunningGpusPerUser(a["max_running_gpus_per_user"].as<int32_t>());
    cluster.Add(std::move(b));
  }
  std::vector<std::pair<core::PendingJobInfo, Duration>> jobs;
  std::vector<std::pair<std::string, std::string>> owners;  // account, user per job
  auto parse_job = [&](const YAML::Node& j, uint64_t id, int64_t submit_s, const std::string& field,
                       Duration run) -> Result<core::PendingJobInfo> {
    core::PendingJobInfo p;
    p.id = JobId(id);
    const std::string account = Get<std::string>(j, "account", "root");
    if (!known_accounts.contains(account))
      return Status::InvalidArgument("unknown account " + account, field + ".account");
    owners.emplace_back(account, Get<std::string>(j, "user", "u"));
    p.nodes = Get<int32_t>(j, "nodes", 1);
    p.gpus_per_node = Get<int32_t>(j, "gpus", 1);
    p.cpus_per_node = Get<int32_t>(j, "cpus", 0);
    p.memory_mib_per_node = Get<int64_t>(j, "memory_mib", 0);
    p.time_limit = Seconds(Get<int64_t>(j, "time_limit_s", 3600));
    auto cls = api::ParseEnum<api::PriorityClass>(Get<std::string>(j, "class", "normal"));
    if (!cls)
      return Status::InvalidArgument("one of: " + api::EnumNames<api::PriorityClass>(),
                                     field + ".class");
    p.priority_class = *cls;
    auto topo = api::ParseEnum<api::Topology>(Get<std::string>(j, "topology", "any"));
    if (!topo)
      return Status::InvalidArgument("one of: " + api::EnumNames<api::Topology>(),
                                     field + ".topology");
    p.topology = *topo;
    p.submit_time = start + Seconds(submit_s);
    p.grace_period = Seconds(Get<int64_t>(j, "grace_s", 60));
    p.held = Get<bool>(j, "held", false);
    (void)run;
    return p;
  };
  i = 0;
  for (const YAML::Node& j : root["jobs"]) {
    const std::string field = "jobs[" + std::to_string(i++) + "]";
    const Duration run = Seconds(Get<int64_t>(j, "run_s", 600));
    ASSIGN_OR_RETURN(core::PendingJobInfo p, parse_job(j, Get<uint64_t>(j, "id", 0),
                                                       Get<int64_t>(j, "submit_s", 0), field, run));
    jobs.emplace_back(std::move(p), run);
  }
  i = 0;
  for (const YAML::Node& s : root["streams"]) {
    const std::string field = "streams[" + std::to_string(i++) + "]";
    const uint64_t first = Get<uint64_t>(s, "first_id", 1);
    const int64_t count = Get<int64_t>(s, "count", 1);
    const int64_t every_ms = static_cast<int64_t>(Get<double>(s, "every_s", 1.0) * 1000);
    const int64_t start_s = Get<int64_t>(s, "start_s", 0);
    const int64_t run_s = Get<int64_t>(s, "run_s", 600);
    const int64_t jitter = Get<int64_t>(s, "run_jitter_s", 0);
    for (int64_t k = 0; k < count; ++k) {
      // Deterministic jitter: a cheap hash of the job index.
      const int64_t h =
          jitter > 0
              ? static_cast<int64_t>((uint64_t(k) * 2654435761u) % uint64_t(2 * jitter + 1)) -
                    jitter
              : 0;
      const Duration run = Seconds(std::max<int64_t>(1, run_s + h));
      ASSIGN_OR_RETURN(core::PendingJobInfo p,
                       parse_job(s, first + static_cast<uint64_t>(k), 0, field, run));
      p.submit_time = start + Seconds(start_s) + Duration(k * every_ms);
      jobs.emplace_back(std::move(p), run);
    }
  }
  // Users and accounts resolved through the builder, then dropped from the snapshot.
  std::map<std::string, bool> users;
  for (const auto& [account, user] : owners) {
    if (!users[user]) {
      users[user] = true;
      cluster.Add(testutil::MakeJob(0).Account(account).User(user));
    }
  }
  core::Snapshot snapshot = cluster.Build();
  RETURN_IF_ERROR(core::ValidateSnapshot(snapshot));
  std::map<std::string, uint32_t> account_index, user_index;
  for (uint32_t a = 0; a < snapshot.accounts.size(); ++a)
    account_index[snapshot.accounts[a].name] = a;
  for (uint32_t u = 0; u < snapshot.users.size(); ++u)
    user_index[snapshot.users[u]] = u;
  sc.simulation = std::make_unique<Simulation>(std::move(snapshot), config, start);
  for (size_t k = 0; k < jobs.size(); ++k) {
    jobs[k].first.account = account_index.at(owners[k].first);
    jobs[k].first.user = user_index.at(owners[k].second);
    sc.simulation->Submit(std::move(jobs[k].first), jobs[k].second);
  }
  return sc;
}

}  // namespace

Result<Scenario> ParseScenario(const std::string& yaml_text, Timestamp start) {
  try {
    return Build(YAML::Load(yaml_text), start);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(std::string("bad scenario YAML: ") + e.what());
  }
}

Result<Scenario> LoadScenario(const std::string& path, Timestamp start) {
  std::ifstream in(path);
  if (!in)
    return Status::NotFound("cannot read scenario " + path);
  std::stringstream text;
  text << in.rdbuf();
  return ParseScenario(text.str(), start);
}

}  // namespace gsched::sim
