#include "worker/identity.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <sstream>

#include "worker/job_files.h"

namespace gsched::worker {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

std::optional<uint32_t> ParseId(std::string_view s) {
  s = Trim(s);
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty() || v >= 4294967295ull)
    return std::nullopt;
  return static_cast<uint32_t>(v);
}

}  // namespace

Result<std::map<std::string, JobIdentity>> ParseIdentityMap(std::string_view text) {
  std::map<std::string, JobIdentity> out;
  size_t line_no = 0;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    ++line_no;
    if (size_t hash = line.find('#'); hash != std::string_view::npos)
      line = line.substr(0, hash);
    line = Trim(line);
    if (line.empty())
      continue;
    auto bad = [&](const std::string& why) {
      return Status::InvalidArgument("line " + std::to_string(line_no) + ": " + why);
    };
    size_t colon = line.find(':');
    if (colon == std::string_view::npos)
      return bad("expected 'user: uid:gid[,group...]'");
    std::string user(Trim(line.substr(0, colon)));
    if (user.empty())
      return bad("no user name");
    std::string_view ids = Trim(line.substr(colon + 1));
    size_t colon2 = ids.find(':');
    if (colon2 == std::string_view::npos)
      return bad("expected uid:gid after the user name");
    JobIdentity id;
    auto uid = ParseId(ids.substr(0, colon2));
    if (!uid)
      return bad("invalid uid");
    id.uid = *uid;
    std::string_view rest = ids.substr(colon2 + 1);
    bool first = true;
    while (true) {
      size_t comma = rest.find(',');
      auto g = ParseId(rest.substr(0, comma));
      if (!g)
        return bad(first ? "invalid gid" : "invalid group");
      if (first)
        id.gid = *g;
      else
        id.groups.push_back(*g);
      first = false;
      if (comma == std::string_view::npos)
        break;
      rest = rest.substr(comma + 1);
    }
    if (!out.emplace(user, id).second)
      return bad("user '" + user + "' appears twice");
  }
  return out;
}

IdentityResolver::IdentityResolver(config::IdentityConfig config, std::string pool_file)
    : config_(std::move(config)), pool_file_(std::move(pool_file)) {}

std::string IdentityResolver::Describe() const {
  if (config_.run_as_root || geteuid() != 0) {
    return "jobs run as the worker's own user (uid " + std::to_string(geteuid()) + ")" +
           (config_.run_as_root
                ? ": identity.run_as_root is set - for development only, never on a "
                  "shared node"
                : ": the worker is not root and cannot switch users");
  }
  std::string out = "jobs run as their users (identity." + std::string(ToString(config_.mode));
  if (config_.mode == config::IdentityMode::kMap)
    out += ", " + config_.map_file;
  if (config_.mode == config::IdentityMode::kPool)
    out += ", uids from " + std::to_string(config_.pool.first_uid) + ", " +
           std::to_string(config_.pool.ids_per_user) + " per user";
  return out + ", min_uid " + std::to_string(config_.min_uid) + ")";
}

Status IdentityResolver::Check(const std::string& user, const JobIdentity& id) const {
  auto refuse = [&](const std::string& why) {
    return Status::FailedPrecondition("user " + user +
                                      " has no usable identity on this node: " + why);
  };
  if (id.uid == 0 || id.gid == 0)
    return refuse("uid or gid 0 (root) is refused");
  if (id.uid < config_.min_uid)
    return refuse("uid " + std::to_string(id.uid) + " is below identity.min_uid " +
                  std::to_string(config_.min_uid));
  for (uint32_t g : id.groups)
    if (g == 0)
      return refuse("group 0 (root) is refused");
  return Status::Ok();
}

Result<JobIdentity> IdentityResolver::Resolve(const std::string& user) {
  if (config_.run_as_root || geteuid() != 0) {
    JobIdentity id;
    id.uid = geteuid();
    id.gid = getegid();
    id.switch_user = false;
    return id;
  }
  if (user.empty())
    return Status::FailedPrecondition("the launch names no user: the job cannot run as anyone");
  Result<JobIdentity> id = Status::Internal("no identity mode");
  switch (config_.mode) {
    case config::IdentityMode::kNss:
      id = FromNss(user);
      break;
    case config::IdentityMode::kMap: {
      std::lock_guard lock(mu_);
      id = FromMap(user);
      break;
    }
    case config::IdentityMode::kPool: {
      std::lock_guard lock(mu_);
      id = FromPool(user);
      break;
    }
  }
  if (!id.ok())
    return id;
  RETURN_IF_ERROR(Check(user, *id));
  return id;
}

Result<JobIdentity> IdentityResolver::FromNss(const std::string& user) const {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  int rc = getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0 || found == nullptr)
    return Status::FailedPrecondition("user " + user +
                                      " is not known to this node's user database (nss)");
  JobIdentity id;
  id.uid = pw.pw_uid;
  id.gid = pw.pw_gid;
  int n = 64;
  std::vector<gid_t> groups(static_cast<size_t>(n));
  if (getgrouplist(user.c_str(), pw.pw_gid, groups.data(), &n) < 0) {
    groups.resize(static_cast<size_t>(n));
    if (getgrouplist(user.c_str(), pw.pw_gid, groups.data(), &n) < 0)
      return Status::Internal("getgrouplist(" + user + ") failed");
  }
  groups.resize(static_cast<size_t>(n));
  for (gid_t g : groups)
    if (g != id.gid)
      id.groups.push_back(g);
  return id;
}

Result<JobIdentity> IdentityResolver::FromMap(const std::string& user) {
  struct stat st {};
  if (::stat(config_.map_file.c_str(), &st) != 0)
    return Status::FailedPrecondition("identity.map_file " + config_.map_file + " cannot be read");
  if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & (S_IWGRP | S_IWOTH)))
    return Status::FailedPrecondition(
        "identity.map_file " + config_.map_file +
        " must belong to root and be writable by no one else: refusing to trust it");
  std::pair<int64_t, int64_t> version{
      int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec, st.st_size};
  if (version != map_version_) {
    ASSIGN_OR_RETURN(std::string text, ReadRegularFile(config_.map_file, 16 << 20));
    auto parsed = ParseIdentityMap(text);
    if (!parsed.ok())
      return Status::FailedPrecondition("identity.map_file " + config_.map_file + ": " +
                                        parsed.status().message());
    map_ = *std::move(parsed);
    map_version_ = version;
  }
  auto it = map_.find(user);
  if (it == map_.end())
    return Status::FailedPrecondition("user " + user + " is not in identity.map_file " +
                                      config_.map_file);
  return it->second;
}

Result<JobIdentity> IdentityResolver::FromPool(const std::string& user) {
  if (!pool_loaded_) {
    auto text = ReadRegularFile(pool_file_, 64 << 20);
    if (!text.ok() && text.status().code() != StatusCode::kNotFound)
      return Status::Internal("cannot read the identity pool " + pool_file_ + ": " +
                              text.status().message());
    std::istringstream in(text.ok() ? *text : std::string());
    std::string name;
    int64_t index = 0;
    while (in >> name >> index) {
      if (index < 0 || index >= config_.pool.users)
        return Status::Internal("identity pool " + pool_file_ + ": index " + std::to_string(index) +
                                " of " + name + " is outside the pool");
      pool_[name] = index;
    }
    pool_loaded_ = true;
  }
  auto it = pool_.find(user);
  if (it == pool_.end()) {
    // The lowest free block.
    std::vector<bool> used(static_cast<size_t>(config_.pool.users), false);
    for (const auto& [n, i] : pool_)
      used[static_cast<size_t>(i)] = true;
    int64_t free = 0;
    while (free < config_.pool.users && used[static_cast<size_t>(free)])
      ++free;
    if (free == config_.pool.users)
      return Status::FailedPrecondition("the identity pool is full (identity.pool.users = " +
                                        std::to_string(config_.pool.users) + ")");
    pool_[user] = free;
    std::string out;
    for (const auto& [n, i] : pool_)
      out += n + " " + std::to_string(i) + "\n";
    if (Status st = WriteFileAtomic(pool_file_, out, 0600); !st.ok()) {
      pool_.erase(user);
      return st;
    }
    it = pool_.find(user);
  }
  JobIdentity id;
  id.uid = static_cast<uint32_t>(config_.pool.first_uid + it->second * config_.pool.ids_per_user);
  id.gid = id.uid;
  id.userns_size = static_cast<uint32_t>(config_.pool.ids_per_user);
  return id;
}

}  // namespace gsched::worker
