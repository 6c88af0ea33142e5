#include "scheduler/server/event_log.h"

#include <algorithm>
#include <optional>

#include "scheduler/api/codec.h"

namespace gsched::server {
namespace json = boost::json;

Status EventLog::Load(const state::Store& store) {
  // Its first key is where pruning goes on from.
  ASSIGN_OR_RETURN(std::optional<std::string> last_key, store.LastKey(state::Family::kEvents));
  std::optional<uint64_t> first_seq;
  RETURN_IF_ERROR(store.Scan(state::Family::kEvents, {}, {}, [&](auto key, auto) {
    if (auto seq = state::ParseU64Key(key); seq.ok())
      first_seq = seq.value();
    return false;
  }));
  uint64_t last_seq = last_key ? state::ParseU64Key(*last_key).value_or(0) : 0;
  uint64_t capacity = RecentCapacity();
  uint64_t first_recent = last_seq > capacity ? last_seq - capacity + 1 : 0;
  RETURN_IF_ERROR(
      store.Scan(state::Family::kEvents, state::U64Key(first_recent), {}, [&](auto, auto value) {
        boost::system::error_code ec;
        json::value v = json::parse(value, ec);
        if (!ec) {
          auto e = api::DecodeEvent(v);
          if (e.ok()) {
            recent_.push_back(std::move(e).value());
            if (recent_.size() > capacity)
              recent_.pop_front();
          }
        }
        return true;
      }));
  if (last_key) {
    next_seq_ = last_seq + 1;
    first_seq_ = first_seq.value_or(next_seq_);
  } else {
    first_seq_ = next_seq_;
  }
  return Status::Ok();
}

void EventLog::Add(Change& change, std::string type, json::object data) {
  api::Event e;
  e.seq = next_seq_++;
  e.type = std::move(type);
  e.time = clock_.Now();
  e.data = std::move(data);
  change.batch.Put(state::Family::kEvents, state::U64Key(e.seq), json::serialize(api::Encode(e)));
  recent_.push_back(e);
  if (recent_.size() > RecentCapacity())
    recent_.pop_front();
  change.events.push_back(std::move(e));
}

api::Event EventLog::Ephemeral(std::string type, json::object data) const {
  api::Event e;
  e.seq = next_seq_ - 1;
  e.type = std::move(type);
  e.time = clock_.Now();
  e.data = std::move(data);
  return e;
}

Change EventLog::Prune() {
  Change change;
  uint64_t last = next_seq_ - 1;
  if (first_seq_ > last)
    return change;
  // 1. By count: keep the newest `max_events`.
  uint64_t max_events = static_cast<uint64_t>(config_.events.max_events);
  uint64_t cut = last - first_seq_ + 1 > max_events ? last - max_events : 0;
  // 2. By age, as far as the in-memory tail tells: events before the tail are older than its
  // front, so they go once the front is past the retention. Older events that the tail does not
  // cover stay until then; the count bound still holds for them.
  Timestamp horizon = clock_.Now() - config_.events.retention;
  for (const api::Event& e : recent_) {
    if (e.time >= horizon)
      break;
    cut = std::max(cut, e.seq);
  }
  // Prune in steps of at least 1/64 of the bound, so that a steady stream of events does not cost
  // a delete per tick; and never the newest event, which carries the sequence counter on restart.
  cut = std::min(cut, last - 1);
  if (cut < first_seq_ || cut - first_seq_ + 1 < std::max<uint64_t>(1, max_events / 64))
    return change;
  change.batch.DeleteRange(state::Family::kEvents, state::U64Key(first_seq_),
                           state::U64Key(cut + 1));
  first_seq_ = cut + 1;
  while (!recent_.empty() && recent_.front().seq <= cut)
    recent_.pop_front();
  return change;
}

}  // namespace gsched::server
