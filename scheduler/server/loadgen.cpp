// gsched-loadgen --server URL --token-file F --jobs N --concurrency C [--batch B]
//
// Submits N one-GPU jobs over C concurrent keep-alive connections, B specs per request, and prints
// one JSON line: {"jobs", "seconds", "jobs_per_s", "p50_ms", "p99_ms"} (latency per request).
// Every request is acknowledged only after the scheduler's durable write, so this measures durable
// submissions. Jobs carry `GSCHED_SIM_DURATION_S` for simulated workers.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

#include "scheduler/net/http_client.h"

int main(int argc, char** argv) {
  CLI::App app{"gsched-loadgen: durable submissions against a scheduler"};
  std::string server, token_file, account, gpu_type;
  int64_t jobs = 10'000, concurrency = 32, batch = 1, duration_s = 60, gpus = 1;
  app.add_option("--server", server, "scheduler URL, e.g. http://127.0.0.1:8600")->required();
  app.add_option("--token-file", token_file, "file holding a bearer token")->required();
  app.add_option("--jobs", jobs, "jobs to submit")
      ->check(CLI::Range(int64_t{1}, int64_t{100'000'000}));
  app.add_option("--concurrency", concurrency, "parallel connections")->check(CLI::Range(1, 4096));
  app.add_option("--batch", batch, "job specs per request")->check(CLI::Range(1, 10'000));
  app.add_option("--account", account, "account to submit to (default: the token's)");
  app.add_option("--gpu-type", gpu_type, "GPU type the jobs ask for (default: any)");
  app.add_option("--gpus", gpus, "GPUs per job")->check(CLI::Range(0, 64));
  app.add_option("--duration", duration_s, "GSCHED_SIM_DURATION_S of each job")
      ->check(CLI::Range(0, 86400));
  CLI11_PARSE(app, argc, argv);

  std::ifstream in(token_file);
  std::string token;
  if (!std::getline(in, token) || token.empty()) {
    std::cerr << "gsched-loadgen: cannot read a token from " << token_file << "\n";
    return 2;
  }
  std::string spec = R"({"image":"/images/sim","command":["sleep"],"gpus_per_node":)" +
                     std::to_string(gpus) +
                     R"(,"time_limit_s":3600,"env":{"GSCHED_SIM_DURATION_S":")" +
                     std::to_string(duration_s) + "\"}";
  if (!account.empty())
    spec += R"(,"account":")" + account + "\"";
  if (!gpu_type.empty())
    spec += R"(,"gpu_type":")" + gpu_type + "\"";
  spec += "}";

  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::atomic<int64_t> failed{0};
  std::mutex mu;
  std::vector<double> latencies_ms;
  std::string first_error;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int64_t c = 0; c < concurrency; ++c) {
    threads.emplace_back([&] {
      auto client = gsched::net::HttpClient::Create(server, {.token = token});
      if (!client.ok()) {
        failed++;
        return;
      }
      std::vector<double> mine;
      while (true) {
        int64_t start = next.fetch_add(batch);
        if (start >= jobs)
          break;
        int64_t n = std::min(batch, jobs - start);
        std::string body;
        if (batch == 1) {
          body = spec;
        } else {
          body = R"({"jobs":[)";
          for (int64_t i = 0; i < n; ++i)
            body += (i ? "," : "") + spec;
          body += "]}";
        }
        auto r0 = std::chrono::steady_clock::now();
        auto r = (*client)->Post("/v1/jobs", std::move(body));
        mine.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - r0)
                .count());
        if (!r.ok() || r->status != 201) {
          failed += n;
          std::lock_guard lock(mu);
          if (first_error.empty())
            first_error = r.ok() ? r->body : r.status().ToString();
          continue;
        }
        done += n;
      }
      std::lock_guard lock(mu);
      latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads)
    t.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double p) {
    if (latencies_ms.empty())
      return 0.0;
    return latencies_ms[std::min(latencies_ms.size() - 1,
                                 static_cast<size_t>(p * latencies_ms.size()))];
  };
  std::printf(
      "{\"jobs\":%lld,\"seconds\":%.3f,\"jobs_per_s\":%.0f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,"
      "\"failed\":%lld}\n",
      static_cast<long long>(done.load()), seconds, done.load() / seconds, pct(0.50), pct(0.99),
      static_cast<long long>(failed.load()));
  if (!first_error.empty())
    std::fprintf(stderr, "gsched-loadgen: first error: %s\n", first_error.c_str());
  return failed.load() == 0 ? 0 : 1;
}
