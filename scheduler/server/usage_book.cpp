#include "scheduler/server/usage_book.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>
#include <optional>

#include "scheduler/core/usage.h"

namespace gsched::server {
namespace json = boost::json;

namespace {

// The usage ledger shares the `usage` family with the per-account fair-share entries, under keys
// `!ledger/<unix hour, 10 digits>/<job, 20 digits>/<attempt>`. Account names begin with one of
// `A-Z a-z 0-9 . _ -`, all above '!', so the ledger sorts before every account entry and loading
// the accounts' entries starts at `kFirstAccountKey`, past the whole ledger.
constexpr std::string_view kLedgerPrefix = "!ledger/";
constexpr std::string_view kFirstAccountKey = "-";
static_assert(kLedgerPrefix < kFirstAccountKey);
constexpr int64_t kHourMs = 3'600'000;

std::string LedgerKey(int64_t hour, uint64_t job, uint32_t attempt) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "!ledger/%010lld/%020llu/%u", static_cast<long long>(hour),
                static_cast<unsigned long long>(job), attempt);
  return buf;
}
std::string LedgerHourKey(int64_t hour) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "!ledger/%010lld/", static_cast<long long>(hour));
  return buf;
}

}  // namespace

Status UsageBook::Load(const state::Store& store, const Quarantine& quarantine) {
  return store.Scan(state::Family::kUsage, kFirstAccountKey, {}, [&](auto key, auto value) {
    boost::system::error_code ec;
    json::value v = json::parse(value, ec);
    const json::object* o = ec ? nullptr : v.if_object();
    auto number = [&](const char* k) -> std::optional<double> {
      const json::value* x = o->if_contains(k);
      if (x == nullptr)
        return 0.0;
      if (!x->is_number())
        return std::nullopt;
      return x->to_number<double>();
    };
    std::optional<double> value_n, at_n, budget_n;
    if (o != nullptr) {
      value_n = number("value");
      at_n = number("at");
      budget_n = number("budget_used");
    }
    if (!value_n || !at_n || !budget_n)
      return quarantine(key, value, "malformed usage");
    UsageEntry u;
    u.value = *value_n;
    u.at = FromUnixMillis(static_cast<int64_t>(*at_n));
    usage_[std::string(key)] = u;
    if (o->contains("budget_used"))
      budget_used_[std::string(key)] = *budget_n;
    return true;
  });
}

void UsageBook::ChargeAttempt(Change& change, const std::map<std::string, api::Account>& accounts,
                              const api::Job& job, const std::string& gpu_type, double cost,
                              double gpus, Timestamp start, Timestamp end, double rate) {
  const double charge = core::AttemptUsage(gpus, cost, start, end, rate);
  const std::string& account = job.spec.account;
  UsageEntry& u = usage_[account];
  u = core::AddUsage(u, charge, end, half_life_);
  json::object o{
      {"value", u.value},
      {"at", ToUnixMillis(u.at)},
      {"budget_used", ChargeBudgets(accounts, account, gpus * cost * rate, start, end, change)}};
  change.batch.Put(state::Family::kUsage, account, json::serialize(o));
  // The ledger: the attempt's charge split over the hours it spanned.
  int64_t from = ToUnixMillis(start), to = ToUnixMillis(end);
  for (int64_t hour = from / kHourMs; from < to && hour * kHourMs < to; ++hour) {
    int64_t overlap = std::min(to, (hour + 1) * kHourMs) - std::max(from, hour * kHourMs);
    double hours = charge * static_cast<double>(overlap) / static_cast<double>(to - from) / 3600.0;
    json::object row{
        {"account", account}, {"user", job.user}, {"gpu_type", gpu_type}, {"gpu_hours", hours}};
    change.batch.Put(state::Family::kUsage, LedgerKey(hour, job.id, job.attempt),
                     json::serialize(row));
  }
}

double UsageBook::ChargeBudgets(const std::map<std::string, api::Account>& accounts,
                                const std::string& account, double normalised_gpus, Timestamp from,
                                Timestamp to, Change& change) {
  double own = 0;
  std::string name = account;
  for (size_t steps = 0; !name.empty() && steps <= accounts.size(); ++steps) {
    auto acc = accounts.find(name);
    if (acc == accounts.end())
      break;
    double& used = budget_used_[name];
    if (const auto& b = acc->second.budget)
      used += core::BudgetCharge(normalised_gpus, from, to, b->start, b->end);
    if (name == account) {
      own = used;
    } else if (acc->second.budget) {
      // An ancestor's record keeps its own fair-share usage as it is.
      const UsageEntry& u = usage_[name];
      json::object o{{"value", u.value}, {"at", ToUnixMillis(u.at)}, {"budget_used", used}};
      change.batch.Put(state::Family::kUsage, name, json::serialize(o));
    }
    name = acc->second.parent;
  }
  return own;
}

double UsageBook::DecayedSeconds(const std::string& account, Timestamp now) const {
  auto it = usage_.find(account);
  return it == usage_.end() ? 0.0 : core::DecayedUsage(it->second, now, half_life_);
}

double UsageBook::BudgetUsed(const std::string& account) const {
  auto it = budget_used_.find(account);
  return it == budget_used_.end() ? 0.0 : it->second;
}

Status UsageBook::ReadLedger(
    const state::Store& store, Timestamp since_t, Timestamp until_t,
    const std::function<bool(const std::string&, const std::string&)>& visible, Sums& sums) {
  int64_t since = ToUnixMillis(since_t), until = ToUnixMillis(until_t);
  int64_t first = since / kHourMs, last = (until + kHourMs - 1) / kHourMs;
  return store.Scan(state::Family::kUsage, LedgerHourKey(first), LedgerHourKey(last),
                    [&](std::string_view, std::string_view value) {
                      boost::system::error_code ec;
                      json::value v = json::parse(value, ec);
                      if (ec || !v.is_object())
                        return true;
                      const json::object& o = v.get_object();
                      auto str = [&](std::string_view k) {
                        const json::value* f = o.if_contains(k);
                        return f && f->is_string() ? std::string(f->get_string()) : std::string();
                      };
                      const json::value* h = o.if_contains("gpu_hours");
                      std::string account = str("account"), user = str("user");
                      if (h && h->is_number() && visible(account, user))
                        sums[{account, user, str("gpu_type")}] += h->to_number<double>();
                      return true;
                    });
}

}  // namespace gsched::server
