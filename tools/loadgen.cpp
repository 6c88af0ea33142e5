// gsched-loadgen --server URL --token-file F --jobs N --concurrency C [--batch B] [--requeue]
//                [--acked-ids FILE] [--retry-seconds S]
//
// Submits N one-GPU jobs over C concurrent keep-alive connections, B specs per request, and prints
// one JSON line: {"jobs", "seconds", "jobs_per_s", "p50_ms", "p99_ms", "failed", "retried"}
// (latency per request). Every request is acknowledged only after the scheduler's durable write, so
// this measures durable submissions. Jobs carry `GSCHED_SIM_DURATION_S` for simulated workers.
// `--acked-ids FILE` writes the id of every job the scheduler acknowledged (HTTP 201), one per
// line: the fault runs check that each of them survives a `kill -9` of the scheduler. A request
// that gets no answer (the scheduler gone) is retried on a new connection for `--retry-seconds`
// (default 0), then counts its jobs as `failed`; the run goes on with the next one. `--server`
// may list several schedulers (a high-availability group, comma-separated): a request with no
// answer, or a standby's 503, goes to the next one (or to the leader the standby names), within
// the same `--retry-seconds`.
//
// gsched-loadgen --server URL --token-file F --watchers W [--rate R] [--seconds S] [--pid P]
//
// The watch feed's fan-out: W subscribers to `/v1/watch?topics=jobs` on one thread while jobs
// churn (R submissions per second, each cancelled at once: two events). For every delivery the
// latency is the arrival time minus the event's `time` (stamped when the scheduler made the
// change, before its durable write). Prints one JSON line: {"subscribers", "events",
// "deliveries", "missing", "events_per_s", "deliveries_per_s", "p50_ms", "p99_ms", "max_ms",
// "dropped", "scheduler_cpu"} (`scheduler_cpu`: cores used by process P over the run).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <vector>

#include "scheduler/common/quantity.h"
#include "scheduler/common/status.h"
#include "scheduler/net/http_client.h"
#include "scheduler/net/server_list.h"
#include "scheduler/net/ws_async_client.h"

namespace {

// CPU seconds (user + system) used so far by process `pid`, or -1.
double CpuSeconds(int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos)
    return -1;
  std::istringstream fields(stat.substr(paren + 2));
  std::string f;
  double ticks = 0;
  // After the name: state is field 3; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i >= 14)
      ticks += std::stod(f);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The job ids of a 201 answer to `POST /v1/jobs`: `{"id":N}` or `{"ids":[N,...]}`. Any other
// shape is an error: an acknowledgement this cannot read must not pass as "no ids".
gsched::Result<std::vector<uint64_t>> AckedIds(std::string_view body) {
  std::vector<uint64_t> ids;
  size_t at = body.find("\"ids\":[");
  if (at != std::string_view::npos) {
    const char* p = body.data() + at + 7;
    const char* end = body.data() + body.size();
    while (p < end && *p != ']') {
      uint64_t v = 0;
      auto [next, ec] = std::from_chars(p, end, v);
      if (ec != std::errc())
        return gsched::Status::InvalidArgument("unreadable acknowledgement: " + std::string(body));
      ids.push_back(v);
      p = next;
      if (p < end && *p == ',')
        ++p;
    }
    return ids;
  }
  at = body.find("\"id\":");
  if (at == std::string_view::npos)
    return gsched::Status::InvalidArgument("acknowledgement without ids: " + std::string(body));
  uint64_t v = 0;
  auto [next, ec] = std::from_chars(body.data() + at + 5, body.data() + body.size(), v);
  if (ec != std::errc())
    return gsched::Status::InvalidArgument("unreadable acknowledgement: " + std::string(body));
  ids.push_back(v);
  return ids;
}

// The unsigned number after `"key":` in a compact JSON text, or 0.
uint64_t NumberAfter(const std::string& text, std::string_view key) {
  size_t at = text.find(key);
  if (at == std::string::npos)
    return 0;
  uint64_t v = 0;
  const char* p = text.data() + at + key.size();
  std::from_chars(p, text.data() + text.size(), v);
  return v;
}

int RunWatchFanout(const std::string& server, const std::string& token, int64_t watchers,
                   int64_t rate, int64_t seconds, int64_t pid) {
  namespace asio = boost::asio;
  using Clock = std::chrono::system_clock;
  asio::io_context ioc(1);
  auto work = asio::make_work_guard(ioc);
  std::atomic<int64_t> open{0}, closed{0};
  std::atomic<uint64_t> deliveries{0}, distinct{0};
  // Touched by the I/O thread only until it is joined.
  std::unordered_map<uint64_t, int64_t> event_ms;  // seq -> the event's time, parsed once.
  std::vector<int32_t> latency_ms;
  std::string first_close;
  std::vector<std::shared_ptr<gsched::net::AsyncWsClient>> clients;
  for (int64_t i = 0; i < watchers; ++i) {
    gsched::net::AsyncWsCallbacks cb;
    cb.on_open = [&] { ++open; };
    cb.on_message = [&](std::string m) {
      int64_t now =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
              .count();
      uint64_t seq = NumberAfter(m, "\"seq\":");
      auto [it, fresh] = event_ms.try_emplace(seq, 0);
      if (fresh) {
        size_t t = m.find("\"time\":\"");
        size_t end = t == std::string::npos ? t : m.find('"', t + 8);
        if (end != std::string::npos) {
          auto ts = gsched::ParseTimestamp(std::string_view(m).substr(t + 8, end - t - 8));
          if (ts.ok())
            it->second = gsched::ToUnixMillis(*ts);
        }
        ++distinct;
      }
      latency_ms.push_back(static_cast<int32_t>(now - it->second));
      ++deliveries;
    };
    cb.on_close = [&](std::string reason) {
      if (closed++ == 0)
        first_close = std::move(reason);
    };
    auto c = gsched::net::AsyncWsClient::Connect(ioc, server, "/v1/watch?topics=jobs",
                                                 {.token = token}, std::move(cb));
    if (!c.ok()) {
      std::cerr << "gsched-loadgen: " << c.status().ToString() << "\n";
      return 2;
    }
    clients.push_back(std::move(c).value());
  }
  std::thread io([&] { ioc.run(); });
  auto wait_until = [](const std::function<bool()>& ready, std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!ready() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return ready();
  };
  wait_until([&] { return open + closed >= watchers; }, std::chrono::seconds(60));

  // Churn: `rate` submissions per second, each cancelled at once.
  auto client = gsched::net::HttpClient::Create(server, {.token = token});
  if (!client.ok()) {
    std::cerr << "gsched-loadgen: " << client.status().ToString() << "\n";
    return 2;
  }
  std::string spec = R"({"image":"/images/sim","command":["sleep"],"gpus_per_node":1})";
  double cpu0 = pid > 0 ? CpuSeconds(pid) : -1;
  auto t0 = std::chrono::steady_clock::now();
  auto period = std::chrono::nanoseconds(1'000'000'000 / std::max<int64_t>(1, rate));
  int64_t failed = 0;
  for (int64_t i = 0; i < rate * seconds; ++i) {
    std::this_thread::sleep_until(t0 + i * period);
    auto r = (*client)->Post("/v1/jobs", spec);
    if (!r.ok() || r->status != 201) {
      ++failed;
      continue;
    }
    uint64_t id = NumberAfter(r->body, "\"id\":");
    auto c = (*client)->Post("/v1/jobs/" + std::to_string(id) + "/cancel", "");
    failed += !c.ok() || c->status != 200;
  }
  // Every event to every open subscriber, or no progress for a few seconds.
  uint64_t last = 0;
  auto settled = [&] { return deliveries >= distinct * static_cast<uint64_t>(open - closed); };
  while (!settled()) {
    last = deliveries;
    if (!wait_until([&] { return settled() || deliveries > last; }, std::chrono::seconds(3)))
      break;
  }
  double run_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double cpu = pid > 0 ? (CpuSeconds(pid) - cpu0) / run_s : -1;
  int64_t dropped = closed.load();  // Before our own closes below.
  for (auto& c : clients)
    c->Close();
  work.reset();
  io.join();

  std::sort(latency_ms.begin(), latency_ms.end());
  auto pct = [&](double p) -> int32_t {
    if (latency_ms.empty())
      return 0;
    return latency_ms[std::min(latency_ms.size() - 1,
                               static_cast<size_t>(p * static_cast<double>(latency_ms.size())))];
  };
  uint64_t expected = distinct.load() * static_cast<uint64_t>(open.load());
  std::printf(
      "{\"subscribers\":%lld,\"connected\":%lld,\"events\":%llu,\"deliveries\":%llu,"
      "\"missing\":%lld,\"seconds\":%.2f,\"events_per_s\":%.1f,\"deliveries_per_s\":%.0f,"
      "\"p50_ms\":%d,\"p99_ms\":%d,\"max_ms\":%d,\"dropped\":%lld,\"failed_requests\":%lld,"
      "\"scheduler_cpu\":%.2f}\n",
      static_cast<long long>(watchers), static_cast<long long>(open.load()),
      static_cast<unsigned long long>(distinct.load()),
      static_cast<unsigned long long>(deliveries.load()),
      static_cast<long long>(expected) - static_cast<long long>(deliveries.load()), run_s,
      static_cast<double>(distinct.load()) / run_s, static_cast<double>(deliveries.load()) / run_s,
      pct(0.50), pct(0.99), latency_ms.empty() ? 0 : latency_ms.back(),
      static_cast<long long>(dropped), static_cast<long long>(failed), cpu);
  if (dropped > 0)
    std::fprintf(stderr, "gsched-loadgen: first subscriber closed: %s\n", first_close.c_str());
  return failed == 0 && dropped == 0 ? 0 : 1;
}

}  // namespace

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
  bool requeue = false;
  app.add_flag("--requeue", requeue, "jobs requeue after a node failure or preemption");
  int64_t retry_s = 0;
  app.add_option("--retry-seconds", retry_s,
                 "retry a request that got no answer (scheduler down) for this long")
      ->check(CLI::Range(0, 3600));
  std::string acked_path;
  app.add_option("--acked-ids", acked_path,
                 "write the id of every acknowledged job to this file, one per line");
  int64_t watchers = 0, rate = 20, churn_s = 20, pid = 0;
  app.add_option("--watchers", watchers, "watch feed subscribers: measure the fan-out instead")
      ->check(CLI::Range(0, 100'000));
  app.add_option("--rate", rate, "with --watchers: submissions (each then cancelled) per second")
      ->check(CLI::Range(1, 100'000));
  app.add_option("--seconds", churn_s, "with --watchers: how long jobs churn")
      ->check(CLI::Range(1, 3600));
  app.add_option("--pid", pid, "with --watchers: the scheduler's pid, to report its CPU use");
  CLI11_PARSE(app, argc, argv);

  std::ifstream in(token_file);
  std::string token;
  if (!std::getline(in, token) || token.empty()) {
    std::cerr << "gsched-loadgen: cannot read a token from " << token_file << "\n";
    return 2;
  }
  auto server_list = gsched::net::ParseServerList(server, "--server");
  if (!server_list.ok()) {
    std::cerr << "gsched-loadgen: " << server_list.status().ToString() << "\n";
    return 2;
  }
  if (watchers > 0)
    return RunWatchFanout(server_list->front(), token, watchers, rate, churn_s, pid);
  std::FILE* acked = nullptr;
  if (!acked_path.empty()) {
    acked = std::fopen(acked_path.c_str(), "w");
    if (acked == nullptr) {
      std::cerr << "gsched-loadgen: --acked-ids: cannot write " << acked_path << ": "
                << std::strerror(errno) << "\n";
      return 2;
    }
  }
  std::string spec = R"({"image":"/images/sim","command":["sleep"],"gpus_per_node":)" +
                     std::to_string(gpus) +
                     R"(,"time_limit_s":3600,"env":{"GSCHED_SIM_DURATION_S":")" +
                     std::to_string(duration_s) + "\"}";
  if (!account.empty())
    spec += R"(,"account":")" + account + "\"";
  if (!gpu_type.empty())
    spec += R"(,"gpu_type":")" + gpu_type + "\"";
  if (requeue)
    spec += R"(,"requeue":true)";
  spec += "}";

  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::atomic<int64_t> failed{0};
  std::atomic<int64_t> retried{0};
  int64_t unreadable = 0;  // Acknowledgements whose ids could not be read; guarded by `mu`.
  std::mutex mu;
  std::vector<double> latencies_ms;
  std::string first_error;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int64_t c = 0; c < concurrency; ++c) {
    threads.emplace_back([&] {
      gsched::net::FailoverList servers(*server_list);
      auto client = gsched::net::HttpClient::Create(servers.current(), {.token = token});
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
        auto r = (*client)->Post("/v1/jobs", retry_s > 0 ? body : std::move(body));
        // No answer at all (the scheduler gone), or a standby's refusal: again on a new
        // connection, to the next scheduler of the list, until one answers or `--retry-seconds`
        // have passed. Any other answer, even 503, is not retried.
        auto give_up = r0 + std::chrono::seconds(retry_s);
        auto refused_by_standby = [&] {
          return r.ok() && r->status == 503 && servers.size() > 1 &&
                 (!gsched::net::LeaderHeader(r->headers).empty() ||
                  r->body.find("standby") != std::string::npos);
        };
        while ((!r.ok() || refused_by_standby()) && std::chrono::steady_clock::now() < give_up) {
          ++retried;
          auto step =
              servers.Failed(r.ok() ? gsched::net::LeaderHeader(r->headers) : std::string());
          if (!step.followed_leader)
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
          auto fresh = gsched::net::HttpClient::Create(servers.current(), {.token = token});
          if (!fresh.ok())
            continue;
          client = std::move(fresh);
          r = (*client)->Post("/v1/jobs", body);
        }
        if (r.ok() && !refused_by_standby())
          servers.Succeeded();
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
        if (acked != nullptr) {
          auto ids = AckedIds(r->body);
          std::lock_guard lock(mu);
          if (!ids.ok()) {
            if (first_error.empty())
              first_error = ids.status().ToString();
            ++unreadable;
            continue;
          }
          for (uint64_t id : *ids)
            std::fprintf(acked, "%llu\n", static_cast<unsigned long long>(id));
        }
      }
      std::lock_guard lock(mu);
      latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads)
    t.join();
  if (acked != nullptr && std::fclose(acked) != 0) {
    std::cerr << "gsched-loadgen: --acked-ids: cannot write " << acked_path << "\n";
    return 2;
  }
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
      "\"failed\":%lld,\"retried\":%lld}\n",
      static_cast<long long>(done.load()), seconds, done.load() / seconds, pct(0.50), pct(0.99),
      static_cast<long long>(failed.load()), static_cast<long long>(retried.load()));
  if (!first_error.empty())
    std::fprintf(stderr, "gsched-loadgen: first error: %s\n", first_error.c_str());
  return failed.load() == 0 && unreadable == 0 ? 0 : 1;
}
