// `gsched-worker`: the worker agent (DESIGN.md section 6).
//
//   gsched-worker --config FILE [--scheduler URL[,URL...]] [--token-file F] [--name NAME]
//                 [--work-dir DIR] [--simulate N [--sim-running-file F]] [--log-level L]
//
// With `--sim-running-file F`, a simulator that is told to stop (SIGTERM, SIGINT) first writes
// the attempts its nodes still run to F, one `JOB ATTEMPT NODE` line each: the fault benchmarks
// compare them with the scheduler's view to show that no job runs twice.
//
// `gsched-worker --shim JOB_DIR MAX_BYTES -- CMD...` is the per-job supervisor shim (runtime.h);
// it is handled before anything else is set up.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "config/worker_config.h"
#include "scheduler/common/logging.h"
#include "scheduler/net/server_list.h"
#include "worker/agent.h"
#include "worker/gpu_inventory.h"
#include "worker/identity.h"
#include "worker/job_backends.h"
#include "worker/job_files.h"
#include "worker/node_address.h"
#include "worker/runtime.h"

namespace {

using namespace gsched;
using namespace gsched::worker;

// "http://a:8600, http://b:8600" for log lines.
std::string JoinUrls(const std::vector<std::string>& urls) {
  std::string out;
  for (const auto& url : urls)
    out += (out.empty() ? "" : ", ") + url;
  return out;
}

std::string SelfExe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("gsched-worker") : p.string();
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0)
    return "localhost";
  return buf;
}

int64_t DetectMemoryMib() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page / (1024 * 1024) : 0;
}

// Stops `ioc` if it has not run out of work `grace` after `Arm`: a clean shutdown lets connections
// close (and frees everything); a stuck one must not keep the process alive.
class ShutdownWatchdog {
 public:
  explicit ShutdownWatchdog(boost::asio::io_context& ioc) : ioc_(ioc) {}
  ~ShutdownWatchdog() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable())
      thread_.join();
  }
  void Arm(Duration grace) {
    if (thread_.joinable())
      return;
    thread_ = std::thread([this, grace] {
      std::unique_lock lock(mu_);
      if (!cv_.wait_for(lock, grace, [this] { return done_; }))
        ioc_.stop();
    });
  }

 private:
  boost::asio::io_context& ioc_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// Writes `JOB ATTEMPT NODE` for every attempt the simulated nodes run; false when it cannot.
bool WriteSimulatedRunning(const std::string& path, const std::vector<std::string>& names,
                           const std::vector<std::unique_ptr<SimulatedJobs>>& sims) {
  std::ofstream out(path, std::ios::trunc);
  for (size_t i = 0; i < sims.size() && out; ++i) {
    for (const auto& r : sims[i]->Running())
      out << r.job << ' ' << r.attempt << ' ' << names[i] << '\n';
  }
  out.close();
  return static_cast<bool>(out);
}

int Run(config::WorkerConfig cfg, int simulate, const std::string& sim_running_file) {
  std::string token;
  if (!cfg.token_file.empty()) {
    std::ifstream in(cfg.token_file);
    if (!in) {
      spdlog::error("cannot read token file {}", cfg.token_file);
      return 1;
    }
    std::getline(in, token);
  }
  if (cfg.name.empty())
    cfg.name = HostName();
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  AgentOptions options;
  options.schedulers = cfg.schedulers;
  options.ca_file = cfg.ca_file;
  options.cert_file = cfg.tls_cert;
  options.key_file = cfg.tls_key;
  options.token = token;
  options.heartbeat_interval = cfg.heartbeat_interval;
  options.reconnect = cfg.reconnect;
  options.random = [&] { return uniform(rng); };

  NodeIdentity base;
  base.site = cfg.site;
  base.block = cfg.block;
  base.labels = cfg.labels;
  base.cpus = static_cast<int32_t>(cfg.cpus > 0 ? cfg.cpus : std::thread::hardware_concurrency());
  base.memory_mib = cfg.memory_mib > 0 ? cfg.memory_mib : DetectMemoryMib();
  base.rendezvous_ports = cfg.rendezvous_ports;
  base.address = cfg.address;
  if (base.address.empty()) {
    if (auto address = AddressTowards(cfg.schedulers); address.ok()) {
      base.address = *address;
    } else {
      spdlog::warn("address: {}; gangs will reach this node by its name",
                   address.status().ToString());
    }
  }

  boost::asio::io_context ioc;
  SystemClock clock;
  boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
  std::vector<std::unique_ptr<WorkerAgent>> agents;

  if (simulate > 0) {
    // N virtual nodes on one io_context: one connection each, no threads per node. Each needs a
    // descriptor: raise the soft limit to the hard one.
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
      limit.rlim_cur = limit.rlim_max;
      setrlimit(RLIMIT_NOFILE, &limit);
    }
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 &&
        limit.rlim_cur < static_cast<rlim_t>(simulate) + 64)
      spdlog::warn("{} nodes but only {} file descriptors allowed: run several processes", simulate,
                   static_cast<uint64_t>(limit.rlim_cur));
    std::vector<std::unique_ptr<SimulatedJobs>> sims;
    std::vector<std::string> names;
    for (int i = 0; i < simulate; ++i) {
      char suffix[16];
      snprintf(suffix, sizeof suffix, "-%04d", i);
      NodeIdentity id = base;
      id.name = cfg.name + suffix;
      names.push_back(id.name);
      id.inventory = MakeFakeInventory(cfg.gpus.fake, id.name);
      sims.push_back(std::make_unique<SimulatedJobs>(ioc, clock));
      agents.push_back(std::make_unique<WorkerAgent>(ioc, options, id, *sims.back(), clock));
      WorkerAgent* agent = agents.back().get();
      sims.back()->SetSink([agent](const api::JobUpdate& u) { agent->OnJobUpdate(u); });
      agent->Start();
    }
    ShutdownWatchdog watchdog(ioc);
    signals.async_wait([&](boost::system::error_code, int) {
      // Before anything stops: what runs now, not what a shutdown leaves.
      if (!sim_running_file.empty() && !WriteSimulatedRunning(sim_running_file, names, sims))
        spdlog::error("cannot write --sim-running-file {}", sim_running_file);
      for (auto& a : agents)
        a->Stop();
      for (auto& s : sims)
        s->CancelAll();
      watchdog.Arm(Seconds(3));
    });
    spdlog::info("simulating {} nodes against {}", simulate, JoinUrls(cfg.schedulers));
    ioc.run();
    agents.clear();
    return 0;
  }

  NodeIdentity id = base;
  id.name = cfg.name;
  if (cfg.gpus.discovery == config::GpuDiscovery::kFake) {
    id.inventory = MakeFakeInventory(cfg.gpus.fake, id.name);
  } else {
    auto inventory = DiscoverNvidiaGpus(cfg.gpus.nvidia_smi);
    if (!inventory.ok()) {
      spdlog::error("GPU discovery: {}", inventory.status().ToString());
      return 1;
    }
    id.inventory = *inventory;
  }
  std::error_code ec;
  std::filesystem::create_directories(cfg.work_dir, ec);
  // Jobs running as their users pass through to their own `job/` directories; nothing here is
  // theirs to list or write.
  for (const std::string& dir : {cfg.work_dir, cfg.work_dir + "/jobs"}) {
    if (Status st = MakeDirectory(dir, 0711); !st.ok()) {
      spdlog::error("work_dir: {}", st.ToString());
      return 1;
    }
  }
  if (cfg.identity.run_as_root && geteuid() == 0)
    spdlog::warn(
        "identity.run_as_root is set: jobs run as root on this node. For development "
        "only - never on a node shared by strangers");
  spdlog::info("{}", IdentityResolver(cfg.identity, "").Describe());
  if (cfg.images.roots.empty() && cfg.runtime.type != config::RuntimeType::kProcess)
    spdlog::warn("images.roots is empty: no job can run from a local root file system");
  for (const std::string& r : cfg.images.insecure_registries)
    spdlog::warn("images.registries: {} is insecure: images come over plain http, unverified", r);
  if (!cfg.images.credentials_file.empty()) {
    // Checked again at every pull; said here so that a misconfigured node shows at once.
    struct stat st {};
    if (::lstat(cfg.images.credentials_file.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_uid != geteuid() || (st.st_mode & 077) != 0)
      spdlog::warn(
          "images.credentials_file {} is missing or not a mode 0600 file of this user: pulls "
          "will fail",
          cfg.images.credentials_file);
  }
  std::atomic<WorkerAgent*> agent_ptr{nullptr};
  auto runtime = MakeRuntime(cfg.runtime, SelfExe(), PolicyFromConfig(cfg));
  auto supervisor = std::make_unique<JobSupervisor>(cfg, std::move(runtime), clock,
                                                    [&agent_ptr](const api::JobUpdate& u) {
                                                      if (WorkerAgent* a = agent_ptr.load())
                                                        a->OnJobUpdate(u);
                                                    });
  JobSupervisor* sup = supervisor.get();
  sup->SetNodeCapacity(base.memory_mib, static_cast<int32_t>(id.inventory.gpus.size()));
  GpuInventory inventory = id.inventory;
  auto jobs = std::make_unique<SupervisedJobs>(
      std::move(supervisor), Duration(100),
      [&cfg, inventory, &agent_ptr] {
        auto health = CheckGpuHealth(cfg.gpus, inventory);
        if (!health.ok()) {
          spdlog::warn("GPU health check: {}", health.status().ToString());
          return;
        }
        if (WorkerAgent* a = agent_ptr.load())
          a->OnHealth(*health);
      },
      cfg.health_check_interval);
  auto agent = std::make_unique<WorkerAgent>(ioc, options, id, *jobs, clock);
  agent_ptr = agent.get();
  if (cfg.adopt_running_jobs) {
    sup->AdoptAll();
  }
  agent->Start();
  ShutdownWatchdog watchdog(ioc);
  signals.async_wait([&](boost::system::error_code, int) {
    // Jobs keep running under their shims; the next worker re-adopts them.
    agent->Stop();
    watchdog.Arm(Seconds(3));
  });
  spdlog::info("worker {} connecting to {}", id.name, JoinUrls(cfg.schedulers));
  ioc.run();
  // The backend's thread goes first (it reports to the agent), then the agent.
  jobs.reset();
  agent_ptr = nullptr;
  agent.reset();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "--shim")
    return gsched::worker::RunShim(std::vector<std::string>(argv + 2, argv + argc));
  CLI::App app("gsched worker agent");
  std::string config_path, scheduler, token_file, name, work_dir, log_level = "info";
  int simulate = 0;
  std::string sim_running_file;
  app.add_option("--config", config_path, "worker.yaml")->required();
  app.add_option("--scheduler", scheduler,
                 "scheduler URL, or a comma-separated list of the URLs of a high-availability "
                 "group (overrides the config)");
  app.add_option("--token-file", token_file, "worker token file (overrides the config)");
  app.add_option("--name", name, "node name (overrides the config)");
  app.add_option("--work-dir", work_dir, "work directory (overrides the config)");
  app.add_option("--simulate", simulate, "run N virtual nodes that only pretend to run jobs")
      ->check(CLI::Range(0, 100000));
  app.add_option("--sim-running-file", sim_running_file,
                 "with --simulate: on SIGTERM, write the attempts still running here");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, off");
  CLI11_PARSE(app, argc, argv);
  if (!sim_running_file.empty() && simulate == 0) {
    fprintf(stderr, "--sim-running-file needs --simulate N\n");
    return 2;
  }
  if (auto st = gsched::SetupLogging("gsched-worker", log_level); !st.ok()) {
    fprintf(stderr, "%s\n", st.ToString().c_str());
    return 2;
  }
  auto cfg = gsched::config::LoadWorkerConfig(config_path);
  if (!cfg.ok()) {
    spdlog::error("{}: {}", config_path, cfg.status().ToString());
    return 2;
  }
  if (!scheduler.empty()) {
    auto urls = gsched::net::ParseServerList(scheduler, "--scheduler");
    if (!urls.ok()) {
      spdlog::error("{}", urls.status().ToString());
      return 2;
    }
    cfg->schedulers = *std::move(urls);
  }
  if (!token_file.empty())
    cfg->token_file = token_file;
  if (!name.empty())
    cfg->name = name;
  if (!work_dir.empty())
    cfg->work_dir = work_dir;
  signal(SIGPIPE, SIG_IGN);
  return Run(*std::move(cfg), simulate, sim_running_file);
}
