#include "scheduler/ha/ha_scheduler.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>
#include <type_traits>

#include "scheduler/api/codec.h"
#include "scheduler/common/files.h"
#include "scheduler/ha/etcd_client.h"
#include "scheduler/ha/log_record.h"
#include "scheduler/ha/replicated_store.h"
#include "scheduler/net/http_client.h"
#include "scheduler/net/http_server.h"
#include "scheduler/net/server_list.h"
#include "scheduler/server/metrics.h"
#include "scheduler/server/service.h"
#include "scheduler/server/token.h"

namespace gsched::ha {
namespace json = boost::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(50);
constexpr int64_t kPollPage = 256;                // Log records read per poll.
constexpr uint64_t kRetainWithoutStandby = 1000;  // Records kept when no standby is registered.
constexpr auto kTrimInterval = std::chrono::seconds(2);
constexpr auto kRegisterInterval = std::chrono::seconds(1);
constexpr auto kCheckpointLife = std::chrono::minutes(10);
constexpr size_t kCheckpointChunk = size_t{16} << 20;
constexpr size_t kMaxCheckpoints = 4;

enum class Role { kStandby, kLeader };

std::string RandomHex(size_t bytes) {
  std::string id = server::NewTokenId();  // "tok_" + 16 hex digits.
  return id.substr(4, bytes * 2);
}

Result<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Status::Unavailable("cannot read " + path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

net::HttpResponse JsonResponse(int status, const json::value& body) {
  return {status, json::serialize(body)};
}

// The log as a standby reads it: records in seq order, groups applied once complete.
struct Follower {
  uint64_t next = 1;        // The seq expected next.
  uint64_t last_seen = 0;   // The last seq read (complete group or not).
  uint64_t last_epoch = 0;  // The epoch of the last record read.
  // A group whose parts are still arriving.
  bool partial = false;
  uint64_t partial_epoch = 0;
  uint32_t partial_next = 0;
  std::string payload;
};

}  // namespace

struct HaScheduler::Impl {
  config::SchedulerConfig config;
  std::string address;    // Bound HOST:PORT.
  std::string advertise;  // URL the others reach this scheduler at.
  std::string name;
  std::string leader_key, log_prefix, standby_prefix, init_key, key_key;
  EtcdOptions etcd_options;
  std::unique_ptr<EtcdClient> etcd;  // The role thread's.
  std::optional<server::TokenAuthority> authority;

  std::thread role_thread;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool lost = false;
  std::string leader_url;  // Under `mu`: what standbys point clients to.

  std::atomic<Role> role{Role::kStandby};
  std::atomic<int64_t> epoch{0};
  std::atomic<uint64_t> applied{0};
  std::atomic<uint64_t> failovers{0}, stepdowns{0};

  // Lease (role thread).
  int64_t lease = 0;
  Clock::time_point lease_valid_until{};
  Clock::time_point next_keepalive{};

  // Standby parts (role thread).
  std::unique_ptr<state::RocksDbStore> local;
  std::unique_ptr<net::HttpServer> standby_http;
  Follower follower;
  Clock::time_point next_register{};
  uint64_t registered_applied = UINT64_MAX;
  int64_t registered_lease = 0;

  // Leader parts.
  std::unique_ptr<server::SchedulerService> service;
  ReplicatedStore* replicated = nullptr;  // Owned by `service`; under `ha_mu` for other threads.
  uint64_t trimmed_upto = 0;

  // Checkpoints being copied by standbys, and the standbys' lag (leader; under `ha_mu`).
  struct Checkpoint {
    std::string dir;
    uint64_t seq = 0;
    std::map<std::string, uint64_t> files;
    Clock::time_point expires;
  };
  std::mutex ha_mu;
  std::map<std::string, Checkpoint> checkpoints;
  std::vector<std::pair<std::string, uint64_t>> standby_lag;
  // Requests under /v1/ha/ run here, off the network threads.
  boost::asio::io_context ha_ioc;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> ha_work;
  std::thread ha_thread;

  bool Stopping() {
    std::lock_guard lock(mu);
    return stopping;
  }
  // Waits `d` or until stopping / lost; true when one of them happened.
  bool WaitFor(Clock::duration d) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, d, [&] { return stopping || lost; });
  }

  // ---- Start ----------------------------------------------------------------------------------
  Status Init() {
    std::error_code ec;
    fs::create_directories(config.data_dir, ec);
    if (ec)
      return Status::Unavailable("cannot create data_dir " + config.data_dir + ": " + ec.message());
    const std::string& p = config.ha.etcd_prefix;
    leader_key = p + "leader";
    log_prefix = p + "log/";
    standby_prefix = p + "standbys/";
    init_key = p + "initialized";
    key_key = p + "signing_key";
    Duration ttl = config.ha.lease_ttl;
    etcd_options = {.endpoints = config.ha.etcd_endpoints,
                    .ca_file = config.ha.etcd_ca_file,
                    .attempt_timeout = std::max<Duration>(Duration(200), ttl / 5),
                    .call_timeout = std::max<Duration>(Duration(500), ttl / 3)};
    etcd = std::make_unique<EtcdClient>(etcd_options);
    RETURN_IF_ERROR(ShareSigningKey());
    RETURN_IF_ERROR(OpenLocal());
    RETURN_IF_ERROR(StartStandbyHttp());
    std::string scheme = config.tls.enabled() ? "https" : "http";
    advertise =
        config.ha.advertise_url.empty() ? scheme + "://" + address : config.ha.advertise_url;
    while (advertise.ends_with('/'))
      advertise.pop_back();
    // Where this scheduler listens, in either role (the leader's service writes it again).
    RETURN_IF_ERROR(WriteFileAtomic(config.data_dir + "/scheduler.addr",
                                    scheme + "://" + address + "\n", 0644));
    name = config.ha.name;
    if (name.empty())
      name = advertise.substr(advertise.find("://") + 3);
    spdlog::info("high availability: {} as '{}' at {}, etcd {}, lease {} ms", config.ha.etcd_prefix,
                 name, advertise, config.ha.etcd_endpoints.front(), ttl.count());
    ha_work.emplace(ha_ioc.get_executor());
    ha_thread = std::thread([this] { ha_ioc.run(); });
    role_thread = std::thread([this] { Run(); });
    return Status::Ok();
  }

  // Every scheduler signs and checks tokens with one key: the first to start puts its own in
  // etcd; the others take that one (etcd holds the whole state already; protect it accordingly).
  Status ShareSigningKey() {
    // This scheduler's own key (made on first start), offered to the pool.
    RETURN_IF_ERROR(server::TokenAuthority::LoadOrCreate(config.data_dir).status());
    std::string path = config.data_dir + "/hmac.key";
    ASSIGN_OR_RETURN(std::string mine, ReadWholeFile(path));
    ASSIGN_OR_RETURN(TxnResult r, etcd->Txn({{key_key, Compare::Target::kCreateRevision, 0}},
                                            {TxnOp::Put(key_key, mine)}, {TxnOp::Range(key_key)}));
    std::string shared = mine;
    if (!r.succeeded) {
      if (r.ranges.empty() || r.ranges[0].kvs.empty())
        return Status::Unavailable("etcd: the signing key vanished while reading it");
      shared = r.ranges[0].kvs[0].value;
      if (shared != mine) {
        spdlog::warn("taking the pool's token signing key from etcd (replacing {})", path);
        RETURN_IF_ERROR(WriteFileAtomic(path, shared, 0600));
      }
    }
    authority.emplace(shared);
    return Status::Ok();
  }

  Status OpenLocal() {
    ASSIGN_OR_RETURN(local, state::RocksDbStore::Open({.path = config.data_dir + "/db",
                                                       .min_free_bytes = static_cast<uint64_t>(
                                                           config.min_free_disk_bytes)}));
    ASSIGN_OR_RETURN(uint64_t seq, AppliedSeq(*local));
    applied.store(seq);
    follower = Follower{};
    follower.next = seq + 1;
    follower.last_seen = seq;
    return Status::Ok();
  }

  // ---- The standby's face ---------------------------------------------------------------------
  Status StartStandbyHttp() {
    net::HttpServerOptions options;
    options.listen = config.listen;
    options.limits.max_body_bytes = 64 << 10;
    options.limits.max_connections = static_cast<size_t>(config.limits.max_connections);
    options.limits.request_timeout = config.limits.request_timeout;
    options.limits.idle_timeout = config.limits.idle_timeout;
    if (config.tls.enabled())
      options.tls = net::TlsFiles{config.tls.cert, config.tls.key, config.tls.client_ca};
    options.threads = 1;
    standby_http = std::make_unique<net::HttpServer>(
        options,
        [this](net::HttpRequest&& req, net::Responder respond) { respond(StandbyAnswer(req)); },
        [this](const net::HttpRequest& req, std::shared_ptr<net::WsConnection>)
            -> std::variant<net::HttpResponse, net::WsHandlers> { return StandbyAnswer(req); });
    auto bound = standby_http->Start();
    if (!bound.ok()) {
      standby_http.reset();
      return std::move(bound).status();
    }
    // The same address in every role, the port too when the config asked for any free one.
    address = *bound;
    config.listen = address;
    return Status::Ok();
  }

  std::string Leader() {
    std::lock_guard lock(mu);
    return leader_url;
  }

  net::HttpResponse StandbyAnswer(const net::HttpRequest& req) {
    std::string leader = Leader();
    if (req.path == "/healthz") {
      json::object o{{"status", "ok"}, {"role", "standby"}, {"applied_seq", applied.load()}};
      if (!leader.empty())
        o["leader"] = leader;
      return JsonResponse(200, o);
    }
    if (req.path == "/metrics") {
      server::PrometheusWriter w;
      RenderMetrics(w);
      return {200, w.text(), "text/plain; version=0.0.4"};
    }
    if ((req.path == "/ui" || req.path.starts_with("/ui/")) && !leader.empty()) {
      net::HttpResponse r{307, "", "text/plain"};
      r.headers.push_back({"Location", leader + req.target});
      return r;
    }
    std::string message = leader.empty()
                              ? "this scheduler is a standby and no leader is known right now"
                              : "this scheduler is a standby; the leader is " + leader;
    json::object inner{{"code", "unavailable"}, {"message", message}};
    if (!leader.empty())
      inner["leader"] = leader;
    net::HttpResponse r = JsonResponse(503, json::object{{"error", std::move(inner)}});
    if (!leader.empty())
      r.headers.push_back({std::string(net::kLeaderHeader), leader});
    r.headers.push_back({"Retry-After", "1"});
    return r;
  }

  void RenderMetrics(server::PrometheusWriter& w) {
    bool leading = role.load() == Role::kLeader;
    w.Family("gsched_ha_leader", "gauge", "1 while this scheduler leads, 0 while a standby.");
    w.Sample("gsched_ha_leader", leading ? 1 : 0);
    w.Family("gsched_ha_role", "gauge", "This scheduler's role: 1 for the one it has.");
    w.Sample("gsched_ha_role", {{"role", "leader"}}, leading ? 1 : 0);
    w.Sample("gsched_ha_role", {{"role", "standby"}}, leading ? 0 : 1);
    w.Family("gsched_ha_epoch", "gauge",
             "The epoch this scheduler leads in (the leader key's etcd revision); 0 as a standby.");
    w.Sample("gsched_ha_epoch", leading ? static_cast<double>(epoch.load()) : 0);
    w.Family("gsched_ha_log_seq", "gauge",
             "The last log record applied to this scheduler's database.");
    w.Sample("gsched_ha_log_seq", static_cast<double>(applied.load()));
    w.Family("gsched_ha_failovers_total", "counter",
             "Times this scheduler took the lead over from another one.");
    w.Sample("gsched_ha_failovers_total", static_cast<double>(failovers.load()));
    w.Family(
        "gsched_ha_stepdowns_total", "counter",
        "Times this scheduler lost the lead (lease expired or a write fenced) and stepped down.");
    w.Sample("gsched_ha_stepdowns_total", static_cast<double>(stepdowns.load()));
    std::lock_guard lock(ha_mu);
    w.Family(
        "gsched_ha_standby_lag_records", "gauge",
        "Log records the leader has written that a standby has not applied yet (leader only).");
    for (const auto& [standby, lag] : standby_lag)
      w.Sample("gsched_ha_standby_lag_records", {{"standby", standby}}, static_cast<double>(lag));
    if (replicated != nullptr) {
      ReplicationFigures f = replicated->Figures();
      w.Family("gsched_ha_log_records_total", "counter",
               "Log records this leader appended to etcd (one etcd transaction each).");
      w.Sample("gsched_ha_log_records_total", static_cast<double>(f.records));
      w.Family("gsched_ha_log_groups_total", "counter",
               "Groups of commits this leader appended (commits share a group like a sync).");
      w.Sample("gsched_ha_log_groups_total", static_cast<double>(f.groups));
      w.Family("gsched_ha_log_etcd_seconds_total", "counter",
               "Time the leader waited for etcd to answer its log writes.");
      w.Sample("gsched_ha_log_etcd_seconds_total", f.etcd_seconds);
      w.Family("gsched_ha_log_local_seconds_total", "counter",
               "Time the leader spent writing logged groups to its own RocksDB.");
      w.Sample("gsched_ha_log_local_seconds_total", f.local_seconds);
    }
  }

  // ---- The lease ------------------------------------------------------------------------------
  // Grants one when there is none, renews it when due. False while there is none.
  bool KeepLease() {
    auto now = Clock::now();
    if (lease != 0 && now >= lease_valid_until) {
      spdlog::warn("lease {:x} expired before it could be renewed", lease);
      lease = 0;
    }
    if (lease == 0) {
      auto granted = etcd->Grant(config.ha.lease_ttl);
      if (!granted.ok()) {
        spdlog::warn("etcd: no lease: {}", granted.status().ToString());
        return false;
      }
      lease = *granted;
      lease_valid_until = now + config.ha.lease_ttl;
      next_keepalive = now + config.ha.lease_ttl / 3;
      return true;
    }
    if (now < next_keepalive)
      return true;
    auto ttl = etcd->KeepAlive(lease);
    if (ttl.ok()) {
      lease_valid_until = now + *ttl;
      next_keepalive = now + config.ha.lease_ttl / 3;
      return true;
    }
    if (ttl.status().code() == StatusCode::kNotFound) {
      spdlog::warn("lease {:x} is gone: {}", lease, ttl.status().message());
      lease = 0;
      return false;
    }
    // etcd out of reach: the lease holds until `lease_valid_until`; try again soon.
    next_keepalive = now + std::chrono::milliseconds(200);
    return now < lease_valid_until;
  }

  // ---- Following the log ----------------------------------------------------------------------
  // Applies a page of records; `kFailedPrecondition` when the log no longer holds `next`.
  Status ApplyPage(const std::vector<KeyValue>& kvs) {
    state::WriteBatch batch;
    uint64_t complete = 0;
    for (const KeyValue& kv : kvs) {
      ASSIGN_OR_RETURN(uint64_t seq, ParseLogKey(log_prefix, kv.key));
      if (seq != follower.next) {
        return Status::FailedPrecondition("the log continues at " + std::to_string(seq) +
                                          ", this database needs " + std::to_string(follower.next));
      }
      ASSIGN_OR_RETURN(LogRecord r, DecodeRecord(kv.value));
      follower.next = seq + 1;
      follower.last_seen = seq;
      follower.last_epoch = r.epoch;
      if (r.part == 0) {
        if (follower.partial)
          spdlog::warn("log: dropping an unfinished group of epoch {}", follower.partial_epoch);
        follower.partial = true;
        follower.partial_epoch = r.epoch;
        follower.partial_next = 0;
        follower.payload.clear();
      }
      if (!follower.partial || r.epoch != follower.partial_epoch ||
          r.part != follower.partial_next) {
        follower.partial = false;
        continue;  // A piece of a group whose start this follower never saw complete.
      }
      follower.payload.append(r.payload);
      ++follower.partial_next;
      if (follower.partial_next < r.parts)
        continue;
      follower.partial = false;
      ASSIGN_OR_RETURN(state::WriteBatch group, DecodeMutations(follower.payload));
      follower.payload.clear();
      batch.Append(std::move(group));
      complete = seq;
    }
    if (complete == 0)
      return Status::Ok();
    batch.Put(state::Family::kMeta, std::string(kAppliedSeqKey), state::U64Key(complete));
    RETURN_IF_ERROR(local->Commit(std::move(batch)));
    applied.store(complete);
    return Status::Ok();
  }

  // One poll: the leader key, the initialised mark and the next page of the log, at one revision.
  struct Poll {
    std::optional<KeyValue> leader;
    bool initialized = false;
    std::vector<KeyValue> records;
    bool more = false;
  };
  Result<Poll> ReadLog() {
    ASSIGN_OR_RETURN(TxnResult r, etcd->Txn({}, {TxnOp::Range(leader_key), TxnOp::Range(init_key),
                                                 TxnOp::Range(LogKey(log_prefix, follower.next),
                                                              PrefixEnd(log_prefix), kPollPage)}));
    if (r.ranges.size() != 3)
      return Status::Internal("etcd: a poll answered " + std::to_string(r.ranges.size()) +
                              " ranges");
    Poll p;
    if (!r.ranges[0].kvs.empty())
      p.leader = r.ranges[0].kvs[0];
    p.initialized = !r.ranges[1].kvs.empty();
    p.records = std::move(r.ranges[2].kvs);
    p.more = r.ranges[2].more;
    return p;
  }

  // Keeps `<prefix>standbys/<name>` = {"applied": N, "url": ...} under this scheduler's lease,
  // so that the leader trims only what every live standby has applied.
  void Register() {
    auto now = Clock::now();
    if (lease == 0 || now < next_register ||
        (lease == registered_lease && applied.load() == registered_applied)) {
      return;
    }
    json::object v{{"applied", applied.load()}, {"url", advertise}};
    if (etcd->Put(standby_prefix + name, json::serialize(v), lease).ok()) {
      registered_applied = applied.load();
      registered_lease = lease;
    }
    next_register = now + kRegisterInterval;
  }

  // Follows the log until this scheduler wins the lead (its epoch) or stops (0).
  int64_t Follow() {
    role.store(Role::kStandby);
    Clock::time_point quiet_until{};
    auto complain = [&](const std::string& what) {
      if (Clock::now() >= quiet_until) {
        spdlog::warn("standby: {}", what);
        quiet_until = Clock::now() + std::chrono::seconds(5);
      }
    };
    while (!Stopping()) {
      bool have_lease = KeepLease();
      Register();
      auto poll = ReadLog();
      if (!poll.ok()) {
        complain(poll.status().ToString());
        WaitFor(kPollInterval * 4);
        continue;
      }
      {
        std::lock_guard lock(mu);
        leader_url = poll->leader ? poll->leader->value : "";
      }
      // A database that never applied the log, in a pool that has one, starts from a copy.
      bool behind = applied.load() == 0 && poll->initialized;
      if (!behind) {
        Status s = ApplyPage(poll->records);
        if (s.code() == StatusCode::kFailedPrecondition) {
          behind = true;
        } else if (!s.ok()) {
          complain("cannot apply the log: " + s.ToString());
          WaitFor(kPollInterval * 20);
          continue;
        }
      }
      if (behind) {
        if (!poll->leader) {
          complain(
              "this database is behind the start of the log and no leader is there to copy "
              "from; it cannot lead");
          WaitFor(kPollInterval * 10);
          continue;
        }
        if (Status s = Bootstrap(poll->leader->value); !s.ok()) {
          complain("copying the leader's database failed: " + s.ToString());
          WaitFor(kPollInterval * 20);
        }
        continue;
      }
      if (poll->more)
        continue;
      if (!poll->leader && have_lease) {
        if (int64_t won = Campaign(poll->initialized); won != 0)
          return won;
      }
      WaitFor(kPollInterval);
    }
    return 0;
  }

  int64_t Campaign(bool initialized) {
    std::vector<Compare> conditions{{leader_key, Compare::Target::kCreateRevision, 0}};
    // A scheduler with an empty database may only found a pool, never take one over.
    if (applied.load() == 0)
      conditions.push_back({init_key, Compare::Target::kCreateRevision, 0});
    auto r = etcd->Txn(conditions,
                       {TxnOp::Put(leader_key, advertise, lease), TxnOp::Put(init_key, name)});
    if (!r.ok()) {
      spdlog::warn("campaign: {}", r.status().ToString());
      return 0;
    }
    if (!r->succeeded)
      return 0;
    int64_t won = r->revision;
    spdlog::info("took the lead at epoch {}", won);
    // Only this scheduler can append now: apply everything there is.
    for (;;) {
      auto page = etcd->Range(LogKey(log_prefix, follower.next), PrefixEnd(log_prefix), kPollPage);
      Status s = page.ok() ? ApplyPage(page->kvs) : page.status();
      if (!s.ok()) {
        spdlog::error("cannot apply the rest of the log after winning, stepping down: {}",
                      s.ToString());
        ResignLease();
        return 0;
      }
      if (!page->more)
        break;
    }
    (void)etcd->DeleteRange(standby_prefix + name, "");
    registered_applied = UINT64_MAX;
    if (initialized)
      failovers.fetch_add(1);  // The pool had a leader before this one.
    return won;
  }

  void ResignLease() {
    if (lease != 0)
      (void)etcd->Revoke(lease);
    lease = 0;
  }

  // Copies the leader's database (a RocksDB checkpoint, file by file) over the local one.
  Status Bootstrap(const std::string& leader) {
    spdlog::info("copying the database of the leader {}", leader);
    server::TokenClaims claims{server::NewTokenId(),
                               "scheduler:" + name,
                               api::Role::kAdmin,
                               {},
                               SystemClock().Now() + Seconds(900)};
    ASSIGN_OR_RETURN(auto client, net::HttpClient::Create(leader, {.token = authority->Sign(claims),
                                                                   .timeout = Seconds(20)}));
    ASSIGN_OR_RETURN(net::HttpResponse manifest, client->Get("/v1/ha/checkpoint"));
    if (manifest.status != 200)
      return Status::Unavailable("checkpoint: HTTP " + std::to_string(manifest.status) + ": " +
                                 manifest.body.substr(0, 300));
    boost::system::error_code ec;
    json::value m = json::parse(manifest.body, ec);
    if (ec || !m.is_object() || !m.as_object().contains("id") || !m.at("id").is_string() ||
        !m.as_object().contains("files") || !m.at("files").is_array())
      return Status::Unavailable("checkpoint: a manifest that does not read");
    std::string id(m.at("id").as_string());
    std::string incoming = config.data_dir + "/db.incoming";
    fs::remove_all(incoming, ec);
    fs::create_directories(incoming, ec);
    if (ec)
      return Status::Unavailable("cannot create " + incoming + ": " + ec.message());
    uint64_t total = 0;
    for (const json::value& f : m.at("files").as_array()) {
      if (!f.is_object() || !f.as_object().contains("name") || !f.at("name").is_string())
        return Status::Unavailable("checkpoint: a file without a name");
      std::string file(f.at("name").as_string());
      if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..")
        return Status::Unavailable("checkpoint: refusing the file name '" + file + "'");
      uint64_t size = f.as_object().contains("size") && f.at("size").is_number()
                          ? f.at("size").to_number<uint64_t>()
                          : 0;
      int fd = ::open((incoming + "/" + file).c_str(),
                      O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
      if (fd < 0)
        return Status::Unavailable("cannot create " + incoming + "/" + file);
      uint64_t offset = 0;
      Status s;
      while (offset < size && s.ok()) {
        auto chunk = client->Get("/v1/ha/checkpoint/" + id + "/" + file +
                                 "?offset=" + std::to_string(offset));
        if (!chunk.ok())
          s = chunk.status();
        else if (chunk->status != 200 || chunk->body.empty())
          s = Status::Unavailable("checkpoint file " + file + ": HTTP " +
                                  std::to_string(chunk->status));
        else if (::write(fd, chunk->body.data(), chunk->body.size()) !=
                 static_cast<ssize_t>(chunk->body.size()))
          s = Status::Unavailable("cannot write " + file + ": " + std::strerror(errno));
        else
          offset += chunk->body.size();
      }
      if (s.ok() && ::fsync(fd) != 0)
        s = Status::Unavailable("cannot sync " + file);
      ::close(fd);
      RETURN_IF_ERROR(s);
      total += size;
    }
    (void)client->Request("DELETE", "/v1/ha/checkpoint/" + id);
    // Swap the databases: the local one goes only once the copy is complete on disk.
    local.reset();
    std::string db = config.data_dir + "/db", old = config.data_dir + "/db.old";
    fs::remove_all(old, ec);
    if (fs::exists(db))
      fs::rename(db, old, ec);
    if (!ec)
      fs::rename(incoming, db, ec);
    if (ec)
      return Status::Unavailable("cannot put the copied database in place: " + ec.message());
    fs::remove_all(old, ec);
    RETURN_IF_ERROR(OpenLocal());
    spdlog::info("copied {} bytes of the leader's database; it had applied the log to {}", total,
                 applied.load());
    return Status::Ok();
  }

  // ---- Leading --------------------------------------------------------------------------------
  void Lead(int64_t won) {
    epoch.store(won);
    {
      std::lock_guard lock(mu);
      lost = false;
      leader_url = advertise;
    }
    ReplicatedStoreOptions options;
    options.etcd = etcd_options;
    // A write may wait for etcd as long as the lease may hold, not longer.
    options.etcd.call_timeout = config.ha.lease_ttl;
    options.leader_key = leader_key;
    options.log_prefix = log_prefix;
    options.epoch = won;
    options.next_seq = std::max(follower.last_seen, applied.load()) + 1;
    options.on_lost = [this](const Status&) {
      {
        std::lock_guard lock(mu);
        lost = true;
      }
      cv.notify_all();
    };
    auto store = std::make_unique<ReplicatedStore>(std::move(local), std::move(options));
    ReplicatedStore* raw = store.get();
    // The log always shows where a leader started: a standby with an empty database then knows
    // it must copy one.
    state::WriteBatch start;
    start.Put(state::Family::kMeta, "ha_epoch", std::to_string(won));
    Status s = store->Commit(std::move(start));
    if (s.ok()) {
      {
        std::lock_guard lock(ha_mu);
        replicated = raw;
      }
      applied.store(raw->Figures().last_seq);
      server::ServiceHooks hooks;
      hooks.health = [this] {
        return json::serialize(json::object{{"status", "ok"},
                                            {"role", "leader"},
                                            {"epoch", epoch.load()},
                                            {"applied_seq", applied.load()}});
      };
      hooks.metrics = [this](server::PrometheusWriter& w) { RenderMetrics(w); };
      hooks.ha_request = [this](const net::HttpRequest& req, net::Responder respond) {
        boost::asio::post(
            ha_ioc, [this, req, respond = std::move(respond)]() mutable { respond(ServeHa(req)); });
      };
      hooks.store_may_be_deposed = true;
      role.store(Role::kLeader);
      // Loading the state takes seconds with a million jobs: the lease is kept alive meanwhile.
      auto started = WithLeaseKept([&] {
        return server::SchedulerService::Start(config, std::move(store), std::move(hooks));
      });
      if (started.ok()) {
        service = std::move(started).value();
        spdlog::info("leading at epoch {} on {}", won, advertise);
        LeadUntilLost(*raw);
      } else {
        spdlog::error("cannot start the service as leader: {}", started.status().ToString());
      }
    } else {
      spdlog::error("cannot write the first record as leader: {}", s.ToString());
    }
    role.store(Role::kStandby);
    bool stop = Stopping();
    {
      std::lock_guard lock(ha_mu);
      replicated = nullptr;
      for (auto& [id, c] : checkpoints) {
        std::error_code ec;
        fs::remove_all(c.dir, ec);
      }
      checkpoints.clear();
      standby_lag.clear();
    }
    if (service) {
      service->Stop();
      service.reset();
    }
    store.reset();
    epoch.store(0);
    {
      std::lock_guard lock(mu);
      leader_url.clear();
    }
    // Resigning lets a standby take over at once instead of after the lease.
    ResignLease();
    if (!stop) {
      stepdowns.fetch_add(1);
      spdlog::warn("stepped down; following the log as a standby");
    }
  }

  // Runs `f` on this thread while another renews the lease every ttl/3 (on its own etcd client).
  template <typename F>
  std::invoke_result_t<F&> WithLeaseKept(F&& f) {
    std::mutex keeper_mu;
    std::condition_variable keeper_cv;
    bool done = false;
    Clock::time_point valid_until = lease_valid_until;
    std::thread keeper([&, lease = lease] {
      EtcdClient client(etcd_options);
      std::unique_lock lock(keeper_mu);
      while (!keeper_cv.wait_for(lock, config.ha.lease_ttl / 3, [&] { return done; })) {
        lock.unlock();
        auto now = Clock::now();
        auto ttl = client.KeepAlive(lease);
        lock.lock();
        if (ttl.ok())
          valid_until = now + *ttl;
      }
    });
    auto result = f();
    {
      std::lock_guard lock(keeper_mu);
      done = true;
    }
    keeper_cv.notify_all();
    keeper.join();
    lease_valid_until = std::max(lease_valid_until, valid_until);
    return result;
  }

  void LeadUntilLost(ReplicatedStore& store) {
    auto next_trim = Clock::now();
    for (;;) {
      if (WaitFor(config.ha.lease_ttl / 3))
        return;
      auto now = Clock::now();
      bool held = lease != 0 && now < lease_valid_until;
      if (held) {
        auto ttl = etcd->KeepAlive(lease);
        if (ttl.ok())
          lease_valid_until = now + *ttl;
        else if (ttl.status().code() == StatusCode::kNotFound)
          held = false;
        else
          held = Clock::now() < lease_valid_until;
      }
      if (!held) {
        store.Fence(Status::Unavailable("the lease expired"));
        lease = 0;
        return;
      }
      applied.store(store.Figures().last_seq);
      if (now >= next_trim) {
        Trim(store.Figures().last_seq);
        next_trim = now + kTrimInterval;
      }
    }
  }

  // Deletes the log records every standby (and every checkpoint being copied) is past.
  void Trim(uint64_t last) {
    auto standbys = etcd->Range(standby_prefix, PrefixEnd(standby_prefix));
    if (!standbys.ok())
      return;
    uint64_t floor = last;
    std::vector<std::pair<std::string, uint64_t>> lag;
    for (const KeyValue& kv : standbys->kvs) {
      boost::system::error_code ec;
      json::value v = json::parse(kv.value, ec);
      uint64_t at = 0;
      if (!ec && v.is_object() && v.as_object().contains("applied") && v.at("applied").is_number())
        at = v.at("applied").to_number<uint64_t>(ec);
      floor = std::min(floor, at);
      lag.emplace_back(kv.key.substr(standby_prefix.size()), last > at ? last - at : 0);
    }
    bool pinned = false;
    {
      std::lock_guard lock(ha_mu);
      auto now = Clock::now();
      for (auto it = checkpoints.begin(); it != checkpoints.end();) {
        if (now >= it->second.expires) {
          std::error_code ec;
          fs::remove_all(it->second.dir, ec);
          it = checkpoints.erase(it);
          continue;
        }
        floor = std::min(floor, it->second.seq);
        pinned = true;
        ++it;
      }
      standby_lag = std::move(lag);
    }
    if (standbys->kvs.empty() && !pinned)
      floor = last > kRetainWithoutStandby ? last - kRetainWithoutStandby : 0;
    floor = std::min(floor, last > 0 ? last - 1 : 0);  // The last record stays: it marks the end.
    if (floor <= trimmed_upto)
      return;
    if (etcd->DeleteRange(LogKey(log_prefix, 0), LogKey(log_prefix, floor + 1)).ok())
      trimmed_upto = floor;
  }

  // /v1/ha/checkpoint[/ID[/FILE]] on the ha thread.
  net::HttpResponse ServeHa(const net::HttpRequest& req) {
    auto error = [](const Status& s) {
      return net::HttpResponse{s.code() == StatusCode::kNotFound ? 404 : 503,
                               json::serialize(api::ErrorBody(s))};
    };
    std::string_view rest = req.path;
    if (!rest.starts_with("/v1/ha/checkpoint"))
      return error(Status::NotFound("no route " + req.path));
    rest.remove_prefix(std::string_view("/v1/ha/checkpoint").size());
    std::lock_guard lock(ha_mu);
    if (replicated == nullptr)
      return error(Status::Unavailable("not leading"));
    if (rest.empty() && req.method == "GET") {
      // Each copy holds disk space until it is fetched or expires: a few at a time are enough
      // for standbys starting together, and no token can make more.
      if (checkpoints.size() >= kMaxCheckpoints) {
        return {429, json::serialize(api::ErrorBody(Status::ResourceExhausted(
                         std::to_string(kMaxCheckpoints) +
                         " checkpoints are being copied already; try again later")))};
      }
      std::string id = RandomHex(8);
      Checkpoint c;
      c.dir = config.data_dir + "/checkpoints/" + id;
      c.seq = replicated->Figures().last_seq;  // At most what the copy holds.
      std::error_code ec;
      fs::create_directories(config.data_dir + "/checkpoints", ec);
      if (Status s = replicated->local().CreateCheckpoint(c.dir); !s.ok())
        return error(s);
      json::array files;
      for (const auto& entry : fs::directory_iterator(c.dir, ec)) {
        if (!entry.is_regular_file())
          continue;
        uint64_t size = entry.file_size();
        c.files[entry.path().filename().string()] = size;
        files.push_back({{"name", entry.path().filename().string()}, {"size", size}});
      }
      c.expires = Clock::now() + kCheckpointLife;
      checkpoints[id] = c;
      spdlog::info("checkpoint {} made for {} (log seq {})", id, req.remote, c.seq);
      return JsonResponse(200, json::object{{"id", id}, {"seq", c.seq}, {"files", files}});
    }
    if (!rest.starts_with('/'))
      return error(Status::NotFound("no route " + req.path));
    rest.remove_prefix(1);
    std::string id(rest.substr(0, rest.find('/')));
    auto it = checkpoints.find(id);
    if (it == checkpoints.end())
      return error(Status::NotFound("no checkpoint " + id));
    if (rest.find('/') == std::string_view::npos) {
      if (req.method != "DELETE")
        return error(Status::NotFound("no route " + req.path));
      std::error_code ec;
      fs::remove_all(it->second.dir, ec);
      checkpoints.erase(it);
      return {200, "{}"};
    }
    std::string file(rest.substr(rest.find('/') + 1));
    auto f = it->second.files.find(file);
    if (f == it->second.files.end())
      return error(Status::NotFound("no file " + file + " in checkpoint " + id));
    uint64_t offset = 0;
    if (auto q = req.Query("offset")) {
      auto [p, e] = std::from_chars(q->data(), q->data() + q->size(), offset);
      if (e != std::errc() || p != q->data() + q->size())
        return {400, json::serialize(api::ErrorBody(
                         Status::InvalidArgument("offset must be a number", "offset")))};
    }
    std::ifstream in(it->second.dir + "/" + file, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(offset));
    std::string chunk(static_cast<size_t>(std::min<uint64_t>(
                          kCheckpointChunk, f->second > offset ? f->second - offset : 0)),
                      '\0');
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    chunk.resize(static_cast<size_t>(in.gcount()));
    it->second.expires = Clock::now() + kCheckpointLife;
    return {200, std::move(chunk), "application/octet-stream"};
  }

  // ---- The role loop --------------------------------------------------------------------------
  void Run() {
    while (!Stopping()) {
      if (!local) {
        if (Status s = OpenLocal(); !s.ok()) {
          spdlog::error("cannot open the local database: {}", s.ToString());
          WaitFor(std::chrono::seconds(1));
          continue;
        }
      }
      if (!standby_http) {
        if (Status s = StartStandbyHttp(); !s.ok()) {
          spdlog::error("cannot listen on {} as a standby: {}", config.listen, s.ToString());
          WaitFor(std::chrono::milliseconds(200));
          continue;
        }
      }
      int64_t won = Follow();
      if (won == 0)
        break;
      standby_http->Stop();
      standby_http.reset();
      Lead(won);
    }
    if (standby_http)
      standby_http->Stop();
    standby_http.reset();
    if (lease != 0) {
      (void)etcd->DeleteRange(standby_prefix + name, "");
      ResignLease();
    }
    local.reset();
  }

  void Shutdown() {
    {
      std::lock_guard lock(mu);
      if (stopping)
        return;
      stopping = true;
    }
    cv.notify_all();
    if (role_thread.joinable())
      role_thread.join();
    ha_work.reset();
    ha_ioc.stop();
    if (ha_thread.joinable())
      ha_thread.join();
  }
};

HaScheduler::HaScheduler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HaScheduler::~HaScheduler() {
  Stop();
}

Result<std::unique_ptr<HaScheduler>> HaScheduler::Start(config::SchedulerConfig config) {
  auto impl = std::make_unique<Impl>();
  impl->config = std::move(config);
  if (Status s = impl->Init(); !s.ok()) {
    impl->Shutdown();
    return s;
  }
  return std::unique_ptr<HaScheduler>(new HaScheduler(std::move(impl)));
}

const std::string& HaScheduler::address() const {
  return impl_->address;
}

void HaScheduler::Stop() {
  impl_->Shutdown();
}

}  // namespace gsched::ha
