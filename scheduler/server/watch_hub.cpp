#include "scheduler/server/watch_hub.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>

#include "scheduler/api/codec.h"
#include "scheduler/api/event_types.h"

namespace gsched::server {
namespace json = boost::json;

namespace {

constexpr size_t kMaxNameLen = 64;

bool IsNameChar(char c, bool user) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-' || (user && c == '@');
}

Status CheckName(std::string_view value, std::string_view field, bool user) {
  if (value.empty() || value.size() > kMaxNameLen ||
      !std::all_of(value.begin(), value.end(), [user](char c) { return IsNameChar(c, user); })) {
    return Status::InvalidArgument(std::string("must be 1..64 characters of ") +
                                       (user ? "[A-Za-z0-9._@-]" : "[A-Za-z0-9._-]") + ", got '" +
                                       std::string(value.substr(0, 32)) + "'",
                                   std::string(field));
  }
  return Status::Ok();
}

Result<uint64_t> ParseSeq(std::string_view text, std::string_view field, uint64_t min) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || v < min) {
    return Status::InvalidArgument(std::string("must be an integer >= ") + std::to_string(min) +
                                       ", got '" + std::string(text.substr(0, 32)) + "'",
                                   std::string(field));
  }
  return v;
}

std::optional<std::string_view> StringOf(const json::object& data, std::string_view key) {
  const json::value* v = data.if_contains(key);
  if (v == nullptr || !v->is_string())
    return std::nullopt;
  return std::string_view(v->get_string().data(), v->get_string().size());
}

std::optional<uint64_t> UintOf(const json::object& data, std::string_view key) {
  const json::value* v = data.if_contains(key);
  if (v == nullptr)
    return std::nullopt;
  boost::system::error_code ec;
  auto n = v->to_number<uint64_t>(ec);
  if (ec)
    return std::nullopt;
  return n;
}

bool InAnySubtree(const std::string& account, const std::vector<std::string>& roots,
                  const AccountSubtree& in_subtree) {
  return std::any_of(roots.begin(), roots.end(),
                     [&](const std::string& root) { return in_subtree(account, root); });
}

}  // namespace

uint8_t TopicOf(std::string_view type) {
  if (type.starts_with("job."))
    return kTopicJobs;
  if (type.starts_with("node."))
    return kTopicNodes;
  if (type.starts_with("account."))
    return kTopicAccounts;
  if (type.starts_with("cluster."))
    return kTopicCluster;
  return 0;
}

Result<WatchRequest> ParseWatchQuery(const std::map<std::string, std::string, std::less<>>& query,
                                     const Principal& who) {
  WatchRequest r;
  for (const auto& [key, value] : query) {
    if (key == "topics") {
      r.filter.topics = 0;
      size_t i = 0;
      while (i <= value.size()) {
        size_t j = std::min(value.find(',', i), value.size());
        std::string_view t = std::string_view(value).substr(i, j - i);
        if (t == "jobs") {
          r.filter.topics |= kTopicJobs;
        } else if (t == "nodes") {
          r.filter.topics |= kTopicNodes;
        } else if (t == "accounts") {
          r.filter.topics |= kTopicAccounts;
        } else if (t == "cluster") {
          r.filter.topics |= kTopicCluster;
        } else {
          return Status::InvalidArgument(
              "must be a comma-separated list of jobs, nodes, accounts, cluster; "
              "got '" +
                  std::string(t.substr(0, 32)) + "'",
              "topics");
        }
        i = j + 1;
      }
    } else if (key == "ephemeral") {
      if (value == "1" || value == "true") {
        r.filter.ephemeral = true;
      } else if (value == "0" || value == "false") {
        r.filter.ephemeral = false;
      } else {
        return Status::InvalidArgument(
            "must be 1, true, 0 or false, got '" + std::string(value.substr(0, 32)) + "'",
            "ephemeral");
      }
    } else if (key == "since") {
      ASSIGN_OR_RETURN(r.since, ParseSeq(value, "since", 0));
    } else if (key == "job") {
      ASSIGN_OR_RETURN(r.filter.job, ParseSeq(value, "job", 1));
    } else if (key == "account") {
      RETURN_IF_ERROR(CheckName(value, "account", false));
      // A user's feed never holds other accounts: say so rather than stay silent forever.
      if (who.role == api::Role::kUser &&
          std::find(who.accounts.begin(), who.accounts.end(), value) == who.accounts.end()) {
        return Status(StatusCode::kPermissionDenied,
                      "user '" + who.user + "' is not a member of account '" + value + "'",
                      "account");
      }
      r.filter.account = value;
    } else if (key == "user") {
      RETURN_IF_ERROR(CheckName(value, "user", true));
      if (who.role == api::Role::kUser && value != who.user) {
        return Status(StatusCode::kPermissionDenied, "users may watch only their own jobs", "user");
      }
      r.filter.user = value;
    } else {
      return Status::InvalidArgument("unknown parameter '" +
                                         std::string(std::string_view(key).substr(0, 32)) +
                                         "'; known: topics, since, job, account, user, ephemeral",
                                     std::string(std::string_view(key).substr(0, 32)));
    }
  }
  return r;
}

bool WatchMatches(const Principal& who, const WatchFilter& filter, const api::Event& event,
                  const AccountSubtree& in_subtree) {
  uint8_t topic = TopicOf(event.type);
  if ((topic & filter.topics) == 0)
    return false;
  if (!filter.ephemeral && api::IsEphemeralEvent(event.type))
    return false;
  const json::object& d = event.data;
  std::optional<std::string_view> account = StringOf(d, "account");
  std::optional<std::string_view> user = StringOf(d, "user");
  // 1. The subscriber's filters.
  if (filter.job && UintOf(d, "job") != filter.job)
    return false;
  if (!filter.user.empty() && user != std::string_view(filter.user))
    return false;
  if (!filter.account.empty() && (!account || !in_subtree(std::string(*account), filter.account)))
    return false;
  // 2. Visibility.
  switch (who.role) {
    case api::Role::kAdmin:
      return true;
    case api::Role::kWorker:
      return false;
    case api::Role::kCoordinator:
      if (topic == kTopicNodes || topic == kTopicCluster)
        return true;
      return account && InAnySubtree(std::string(*account), who.accounts, in_subtree);
    case api::Role::kUser:
      if (topic == kTopicNodes || topic == kTopicCluster)
        return true;
      if (topic == kTopicJobs)
        return user && *user == who.user;
      return account &&
             std::find(who.accounts.begin(), who.accounts.end(), *account) != who.accounts.end();
  }
  return false;
}

// ---------------------------------------------------------------------------------------------

WatchHub::WatchHub(Options options, const std::deque<api::Event>& recent, const state::Store& store,
                   AccountSubtree in_subtree, Post post_to_state, uint64_t published_seq,
                   const Clock& clock)
    : options_(options),
      recent_(recent),
      store_(store),
      in_subtree_(std::move(in_subtree)),
      post_to_state_(std::move(post_to_state)),
      clock_(clock),
      published_seq_(published_seq) {
  stats_.published_seq = published_seq;
  reader_ = std::thread([this] { ReaderLoop(); });
}

WatchHub::~WatchHub() {
  Stop();
}

uint64_t WatchHub::NewSubscriberId() {
  return next_id_.fetch_add(1, std::memory_order_relaxed);
}

void WatchHub::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_)
      return;
    stopping_ = true;
    reads_.clear();
  }
  cv_.notify_all();
  if (reader_.joinable())
    reader_.join();
  subscribers_.clear();
}

void WatchHub::ReaderLoop() {
  while (true) {
    std::function<void()> read;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !reads_.empty(); });
      if (stopping_)
        return;
      read = std::move(reads_.front());
      reads_.pop_front();
    }
    read();
  }
}

size_t WatchHub::Chunk() const {
  return std::max<size_t>(1, std::min(options_.replay_chunk, options_.queue_limit / 4));
}

void WatchHub::Subscribe(uint64_t id, Principal who, WatchRequest request,
                         std::shared_ptr<net::WsConnection> connection) {
  Subscriber& sub = subscribers_[id];
  sub.who = std::move(who);
  sub.filter = std::move(request.filter);
  sub.connection = std::move(connection);
  stats_.subscribers = subscribers_.size();
  if (sub.filter.ephemeral)
    ++stats_.ephemeral_subscribers;
  if (!request.since) {
    sub.position = published_seq_;
    sub.live = true;
    return;
  }
  if (*request.since > published_seq_) {
    // A position this log never reached: the client followed another scheduler's log (its data
    // was reset). It must start over from what is here.
    SendResync(sub, published_seq_,
               "since " + std::to_string(*request.since) + " is ahead of the newest event " +
                   std::to_string(published_seq_));
    sub.position = published_seq_;
    sub.live = true;
    return;
  }
  sub.position = *request.since;
  ++stats_.replaying;
  CatchUp(id);
}

void WatchHub::Unsubscribe(uint64_t id, std::string_view reason) {
  auto it = subscribers_.find(id);
  if (it == subscribers_.end())
    return;
  Forget(it);
  if (reason.starts_with(net::kSlowConsumerReason))
    ++stats_.dropped_slow;
}

void WatchHub::Forget(std::map<uint64_t, Subscriber>::iterator it) {
  if (!it->second.live)
    --stats_.replaying;
  if (it->second.filter.ephemeral)
    --stats_.ephemeral_subscribers;
  subscribers_.erase(it);
  stats_.subscribers = subscribers_.size();
}

void WatchHub::CloseToken(std::string_view token_id) {
  for (auto it = subscribers_.begin(); it != subscribers_.end();) {
    auto next = std::next(it);
    if (it->second.who.token_id == token_id) {
      // Forgotten now, so that not one more event reaches it; its `on_close` finds nothing.
      it->second.connection->Close(1008, "token revoked");
      ++stats_.closed_revoked;
      Forget(it);
    }
    it = next;
  }
}

size_t WatchHub::FeedsOf(std::string_view token_id) const {
  return static_cast<size_t>(
      std::count_if(subscribers_.begin(), subscribers_.end(),
                    [&](const auto& entry) { return entry.second.who.token_id == token_id; }));
}

void WatchHub::CloseExpired(Timestamp now) {
  for (auto it = subscribers_.begin(); it != subscribers_.end();) {
    auto next = std::next(it);
    if (it->second.who.expires <= now) {
      it->second.connection->Close(1008, "token expired");
      ++stats_.closed_revoked;
      Forget(it);
    }
    it = next;
  }
}

void WatchHub::Publish(const std::vector<api::Event>& events) {
  Timestamp now = clock_.Now();
  for (const api::Event& e : events) {
    published_seq_ = std::max(published_seq_, e.seq);
    publish_delay_.Observe(std::chrono::duration<double>(now - e.time).count());
    if (TopicOf(e.type) == 0)
      continue;
    net::SharedText text;  // Serialised once, for the first subscriber that gets it.
    for (auto& [id, sub] : subscribers_) {
      if (!sub.live || !WatchMatches(sub.who, sub.filter, e, in_subtree_))
        continue;
      if (!text)
        text = std::make_shared<const std::string>(json::serialize(api::Encode(e)));
      Send(sub, text);
    }
  }
  for (auto& [id, sub] : subscribers_) {
    if (sub.live)
      sub.position = published_seq_;
  }
  stats_.published_seq = published_seq_;
  while (!held_ephemeral_.empty() && held_ephemeral_.front().seq <= published_seq_) {
    SendEphemeral(held_ephemeral_.front());
    held_ephemeral_.pop_front();
  }
}

void WatchHub::PublishEphemeral(std::vector<api::Event> events) {
  for (api::Event& e : events) {
    // Behind the held ones or its log event: wait, so that the order holds.
    if (!held_ephemeral_.empty() || e.seq > published_seq_) {
      if (held_ephemeral_.size() >= options_.max_held_ephemeral) {
        ++stats_.ephemeral_dropped;
        continue;
      }
      held_ephemeral_.push_back(std::move(e));
      continue;
    }
    SendEphemeral(e);
  }
}

void WatchHub::SendEphemeral(const api::Event& e) {
  if (stats_.ephemeral_subscribers == 0)
    return;
  net::SharedText text;
  for (auto& [id, sub] : subscribers_) {
    // A replaying subscriber is not sent the present before it has caught up with the past.
    if (!sub.live || !WatchMatches(sub.who, sub.filter, e, in_subtree_))
      continue;
    if (!text)
      text = std::make_shared<const std::string>(json::serialize(api::Encode(e)));
    if (Send(sub, text))
      ++stats_.ephemeral_sent;
  }
}

void WatchHub::CatchUp(uint64_t id) {
  auto it = subscribers_.find(id);
  if (it == subscribers_.end() || it->second.live)
    return;
  Subscriber& sub = it->second;
  if (sub.position >= published_seq_)
    return GoLive(sub);
  uint64_t from = sub.position + 1;
  // From memory when the tail still holds `from`.
  auto first = std::lower_bound(recent_.begin(), recent_.end(), from,
                                [](const api::Event& e, uint64_t seq) { return e.seq < seq; });
  if (first != recent_.end() && first->seq == from) {
    size_t looked = 0;
    for (auto e = first; e != recent_.end() && e->seq <= published_seq_ && looked < Chunk();
         ++e, ++looked) {
      if (WatchMatches(sub.who, sub.filter, *e, in_subtree_))
        Send(sub, std::make_shared<const std::string>(json::serialize(api::Encode(*e))));
      sub.position = e->seq;
    }
    if (sub.position >= published_seq_)
      return GoLive(sub);
    return NextRoundWhenDrained(id, sub);
  }
  // Otherwise from the store, off the state thread.
  uint64_t upto = published_seq_;
  size_t limit = Chunk();
  auto read = [this, id, from, upto, limit] {
    std::vector<StoredEvent> out;
    Status s = store_.Scan(state::Family::kEvents, state::U64Key(from), state::U64Key(upto + 1),
                           [&](std::string_view, std::string_view value) {
                             boost::system::error_code ec;
                             json::value v = json::parse(value, ec);
                             if (!ec) {
                               auto e = api::DecodeEvent(v);
                               if (e.ok())
                                 out.push_back({std::move(e).value(), std::string(value)});
                             }
                             return out.size() < limit;
                           });
    Result<std::vector<StoredEvent>> result = std::move(out);
    if (!s.ok())
      result = std::move(s);
    post_to_state_([this, id, from, upto, result = std::move(result)]() mutable {
      OnStoreRound(id, from, upto, std::move(result));
    });
  };
  {
    std::lock_guard lock(mu_);
    if (stopping_)
      return;
    reads_.push_back(std::move(read));
  }
  cv_.notify_one();
}

void WatchHub::OnStoreRound(uint64_t id, uint64_t from, uint64_t upto,
                            Result<std::vector<StoredEvent>> read) {
  auto it = subscribers_.find(id);
  if (it == subscribers_.end())
    return;
  Subscriber& sub = it->second;
  if (!read.ok()) {
    spdlog::error("watch: cannot read the event log: {}", read.status().ToString());
    sub.connection->Close(1011, "cannot read the event log");
    return;
  }
  const std::vector<StoredEvent>& events = *read;
  // The log is pruned from its oldest end only: a missing head means that part is gone.
  if (events.empty() || events.front().event.seq > from) {
    uint64_t resume_after = events.empty() ? upto : events.front().event.seq - 1;
    SendResync(sub, resume_after,
               "events " + std::to_string(from) + ".." + std::to_string(resume_after) +
                   " were pruned from the log");
    sub.position = resume_after;
  }
  for (const StoredEvent& se : events) {
    if (se.event.seq <= sub.position)
      continue;
    if (WatchMatches(sub.who, sub.filter, se.event, in_subtree_))
      Send(sub, std::make_shared<const std::string>(se.text));
    sub.position = se.event.seq;
  }
  if (sub.position >= published_seq_)
    return GoLive(sub);
  NextRoundWhenDrained(id, sub);
}

void WatchHub::NextRoundWhenDrained(uint64_t id, Subscriber& sub) {
  sub.connection->WhenQueueBelow(Chunk(),
                                 [this, id] { post_to_state_([this, id] { CatchUp(id); }); });
}

void WatchHub::GoLive(Subscriber& sub) {
  // Same turn of the state thread as the last replayed event: the next published event is the
  // first live one.
  sub.live = true;
  --stats_.replaying;
}

void WatchHub::SendResync(Subscriber& sub, uint64_t resume_after, std::string reason) {
  api::Event e;
  e.seq = resume_after;
  e.type = "resync";
  e.time = clock_.Now();
  e.data = {{"resumes_after", resume_after}, {"reason", std::move(reason)}};
  ++stats_.resyncs;
  Send(sub, std::make_shared<const std::string>(json::serialize(api::Encode(e))));
}

bool WatchHub::Send(Subscriber& sub, net::SharedText text) {
  if (!sub.connection->Send(std::move(text)))
    return false;
  ++stats_.events_sent;
  return true;
}

WatchStats WatchHub::Stats() const {
  return stats_;
}

void WatchHub::RenderMetrics(PrometheusWriter& w) const {
  w.Family("gsched_watch_subscribers", "gauge", "Open watch feed connections.");
  w.Sample("gsched_watch_subscribers", static_cast<double>(stats_.subscribers));
  w.Family("gsched_watch_replaying", "gauge", "Watch subscribers still catching up from `since`.");
  w.Sample("gsched_watch_replaying", static_cast<double>(stats_.replaying));
  w.Family("gsched_watch_events_sent_total", "counter",
           "Events queued to watch subscribers (replays and resyncs included).");
  w.Sample("gsched_watch_events_sent_total", static_cast<double>(stats_.events_sent));
  w.Family("gsched_watch_resyncs_total", "counter",
           "Resync events sent because the requested part of the log was pruned.");
  w.Sample("gsched_watch_resyncs_total", static_cast<double>(stats_.resyncs));
  w.Family("gsched_watch_dropped_slow_total", "counter",
           "Watch subscribers disconnected because their queue was full.");
  w.Sample("gsched_watch_dropped_slow_total", static_cast<double>(stats_.dropped_slow));
  w.Family("gsched_watch_ephemeral_sent_total", "counter",
           "Ephemeral events (job.reason, account.usage, cluster.summary) queued to subscribers.");
  w.Sample("gsched_watch_ephemeral_sent_total", static_cast<double>(stats_.ephemeral_sent));
  w.Family("gsched_watch_ephemeral_dropped_total", "counter",
           "Ephemeral events dropped because too many waited for their log event.");
  w.Sample("gsched_watch_ephemeral_dropped_total", static_cast<double>(stats_.ephemeral_dropped));
  w.Family("gsched_watch_closed_revoked_total", "counter",
           "Watch feeds closed because their token was revoked or expired.");
  w.Sample("gsched_watch_closed_revoked_total", static_cast<double>(stats_.closed_revoked));
  w.Family("gsched_watch_published_seq", "gauge", "The newest durable event published.");
  w.Sample("gsched_watch_published_seq", static_cast<double>(stats_.published_seq));
  w.Family("gsched_watch_publish_delay_seconds", "histogram",
           "From an event's creation to its publication to watchers (includes the durable write).");
  w.HistogramSamples("gsched_watch_publish_delay_seconds", {}, publish_delay_);
}

}  // namespace gsched::server
