// libFuzzer target: arbitrary bytes through the path a request body takes - ParseJson, every
// decoder, and into ClusterState's validation (submit, account changes, worker messages) on an
// in-memory state. It must never crash, hang or corrupt the state's invariants.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "scheduler/api/codec.h"
#include "scheduler/api/json.h"
#include "scheduler/api/worker_messages.h"
#include "scheduler/server/cluster_state.h"

namespace {

struct World {
  gsched::config::SchedulerConfig config;
  gsched::ManualClock clock;
  gsched::server::ClusterState state{config, clock};
  World() {
    gsched::api::Account lab;
    lab.name = "lab";
    state.PutAccount(Admin(), lab).IgnoreError();
    gsched::api::Hello hello;
    hello.node = "n1";
    for (int i = 0; i < 8; ++i)
      hello.gpus.push_back({i, "GPU-" + std::to_string(i), "h100"});
    state.WorkerHello(Worker(), hello).IgnoreError();
  }
  static gsched::server::Principal Admin() {
    return {"root", gsched::api::Role::kAdmin, {}, "a", {}};
  }
  static gsched::server::Principal User() {
    return {"u", gsched::api::Role::kUser, {"lab"}, "u", {}};
  }
  static gsched::server::Principal Worker() {
    return {"w", gsched::api::Role::kWorker, {}, "w", {}};
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = new World;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto value = gsched::api::ParseJson(text);
  if (auto m = gsched::api::DecodeWorkerMessage(text); m.ok()) {
    if (auto* u = std::get_if<gsched::api::JobUpdate>(&*m))
      world->state.WorkerJobUpdate("n1", *u).IgnoreError();
    if (auto* g = std::get_if<gsched::api::GpuHealthReport>(&*m))
      world->state.WorkerGpuHealth(*g).IgnoreError();
  }
  gsched::api::DecodeSchedulerMessage(text).IgnoreError();
  if (!value.ok())
    return 0;
  if (auto specs = gsched::api::DecodeSubmitBody(*value); specs.ok()) {
    std::vector<uint64_t> ids;
    world->state.Submit(World::User(), std::move(specs).value(), &ids).IgnoreError();
    // Keep the state small: cancel what was queued.
    for (uint64_t id : ids)
      world->state.Cancel(World::User(), id).IgnoreError();
  }
  if (auto account = gsched::api::DecodeAccount(*value); account.ok()) {
    if (account->name.empty())
      account->name = "fuzz";
    world->state.PutAccount(World::Admin(), std::move(account).value()).IgnoreError();
  }
  gsched::api::DecodeJob(*value).IgnoreError();
  gsched::api::DecodeNode(*value).IgnoreError();
  gsched::api::DecodeTokenRequest(*value).IgnoreError();
  gsched::api::DecodeEvent(*value).IgnoreError();
  return 0;
}
