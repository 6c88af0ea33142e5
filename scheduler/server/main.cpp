// gsched-scheduler --config FILE [--listen HOST:PORT] [--data-dir DIR]
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iostream>

#include "config/scheduler_config.h"
#include "scheduler/common/logging.h"
#include "scheduler/ha/ha_scheduler.h"
#include "scheduler/server/service.h"

int main(int argc, char** argv) {
  CLI::App app{"gsched-scheduler: the fair-share GPU scheduler daemon"};
  std::string config_path;
  std::string listen;
  std::string data_dir;
  app.add_option("--config", config_path, "scheduler.yaml")->required();
  app.add_option("--listen", listen, "HOST:PORT to listen on; port 0 takes a free port");
  app.add_option("--data-dir", data_dir, "where RocksDB, the signing key and admin.token live");
  CLI11_PARSE(app, argc, argv);

  auto config = gsched::config::LoadSchedulerConfig(config_path);
  if (!config.ok()) {
    std::cerr << "gsched-scheduler: " << config_path << ": " << config.status().ToString() << "\n";
    return 2;
  }
  if (!listen.empty())
    config->listen = listen;
  if (!data_dir.empty())
    config->data_dir = data_dir;
  if (auto s =
          gsched::SetupLogging("gsched-scheduler", gsched::config::ToString(config->log_level));
      !s.ok()) {
    std::cerr << "gsched-scheduler: " << s.ToString() << "\n";
    return 2;
  }

  // Every connection is a file descriptor, and so is every RocksDB file: take all the descriptors
  // the hard limit allows (a soft limit of 1,024 is common), and keep `max_connections` below what
  // remains, so that a flood of connections is refused at the slot count and never leaves the
  // server unable to accept or the database unable to open a file.
  constexpr int64_t kReservedDescriptors = 512;
  if (rlimit nofile{}; getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
    if (nofile.rlim_cur < nofile.rlim_max) {
      nofile.rlim_cur = nofile.rlim_max;
      setrlimit(RLIMIT_NOFILE, &nofile);
      getrlimit(RLIMIT_NOFILE, &nofile);
    }
    if (nofile.rlim_cur != RLIM_INFINITY) {
      int64_t room = static_cast<int64_t>(nofile.rlim_cur) - kReservedDescriptors;
      if (room < config->limits.max_connections) {
        int64_t lowered = std::max<int64_t>(16, room);
        spdlog::warn(
            "limits.max_connections lowered from {} to {}: only {} file descriptors allowed "
            "(raise the hard limit, e.g. LimitNOFILE=)",
            config->limits.max_connections, lowered, static_cast<uint64_t>(nofile.rlim_cur));
        config->limits.max_connections = lowered;
      }
    }
  }

  // Block the stop signals in every thread; the main thread waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  if (config->ha.enabled()) {
    // One of several schedulers sharing etcd (DESIGN.md section 12): a standby until it leads.
    auto ha = gsched::ha::HaScheduler::Start(std::move(config).value());
    if (!ha.ok()) {
      std::cerr << "gsched-scheduler: " << ha.status().ToString() << "\n";
      return 1;
    }
    std::printf("listening on http://%s\n", (*ha)->address().c_str());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fprintf(stderr, "gsched-scheduler: signal %d, shutting down\n", sig);
    (*ha)->Stop();
    return 0;
  }

  auto service = gsched::server::SchedulerService::Start(std::move(config).value());
  if (!service.ok()) {
    std::cerr << "gsched-scheduler: " << service.status().ToString() << "\n";
    return 1;
  }
  std::printf("listening on http://%s\n", (*service)->address().c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::fprintf(stderr, "gsched-scheduler: signal %d, shutting down\n", sig);
  (*service)->Stop();
  return 0;
}
