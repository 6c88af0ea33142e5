#include "worker/image_cache.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "scheduler/api/image.h"
#include "worker/command.h"
#include "worker/job_files.h"
#include "worker/runtime.h"

namespace gsched::worker {
namespace fs = std::filesystem;
namespace json = boost::json;

struct ImageCache::Fetch {
  std::string reference;
  ImageState state;  // Guarded by `mu_`.
  int32_t waiters = 0;
  bool done = false;
  // While downloading: the layout whose blobs grow (progress is read from their sizes).
  std::string layout_dir;
};

namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
// The mount points every container needs, made in the tree once (see runtime.cpp).
constexpr const char* kMountPoints[] = {"proc", "dev", "sys", "tmp", "gsched", "gsched-bin"};

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Disk use of a tree (allocated blocks), not following links.
int64_t TreeBytes(const std::string& root) {
  int64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::none, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0)
      total += static_cast<int64_t>(st.st_blocks) * 512;
  }
  return total;
}

// Bytes of the blobs in an OCI layout, finished (`blobs/sha256/`) or being written (skopeo writes
// each blob to a temporary file in the layout's top directory, then renames it).
int64_t LayoutBytes(const std::string& layout) {
  int64_t total = 0;
  for (const std::string& dir : {layout, layout + "/blobs/sha256"}) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      struct stat st {};
      if (::lstat(e.path().c_str(), &st) == 0 && S_ISREG(st.st_mode))
        total += st.st_size;
    }
  }
  return total;
}

// skopeo and umoci log through logrus: `time="..." level=fatal msg="..."`. The message alone,
// without the "Error parsing image name ...: " preamble that repeats the reference.
std::string ToolMessage(const CommandOutput& out) {
  std::string text = out.err.empty() ? out.out : out.err;
  size_t msg = text.rfind("msg=\"");
  if (msg != std::string::npos) {
    std::string m;
    for (size_t i = msg + 5; i < text.size() && text[i] != '"'; ++i) {
      if (text[i] == '\\' && i + 1 < text.size())
        ++i;
      m += text[i];
    }
    text = m;
    if (text.starts_with("Error parsing image name")) {
      size_t colon = text.find("\": ");
      if (colon != std::string::npos)
        text = text.substr(colon + 3);
    }
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.pop_back();
  if (text.size() > 1000)
    text = text.substr(0, 1000) + "...";
  return text.empty() ? "exit code " + std::to_string(out.exit_code) : text;
}

std::string Base64Decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z')
      return c - 'A';
    if (c >= 'a' && c <= 'z')
      return c - 'a' + 26;
    if (c >= '0' && c <= '9')
      return c - '0' + 52;
    if (c == '+' || c == '-')
      return 62;
    if (c == '/' || c == '_')
      return 63;
    return -1;
  };
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (char c : in) {
    int v = value(c);
    if (v < 0)
      continue;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xff);
    }
  }
  return out;
}

// The thousands of a MiB figure: 1930 -> "1,930".
std::string Grouped(int64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0)
      out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

std::string PullProgressMessage(const ImageState& state) {
  if (state.phase == ImageState::Phase::kReady)
    return "";
  if (state.digest.empty())
    return "pulling image: resolving the reference";
  int64_t done = state.done_bytes / kMiB;
  int64_t total = (state.total_bytes + kMiB - 1) / kMiB;
  if (state.unpacking)
    return "pulling image: unpacking " + Grouped(total) + " MiB";
  if (state.total_bytes <= 0)
    return "pulling image: " + Grouped(done) + " MiB";
  return "pulling image: " + Grouped(std::min(done, total)) + " of " + Grouped(total) + " MiB";
}

ImageCacheConfig ImageCacheConfigFrom(const config::WorkerConfig& config) {
  ImageCacheConfig c;
  c.resolve_only = config.runtime.type == config::RuntimeType::kPodman ||
                   config.runtime.type == config::RuntimeType::kDocker;
  c.dir = config.images.cache_dir.empty() ? config.work_dir + "/images" : config.images.cache_dir;
  c.dir = fs::absolute(c.dir).lexically_normal().string();
  c.registries = config.images.registries;
  c.insecure_registries = config.images.insecure_registries;
  c.credentials_file = config.images.credentials_file;
  c.max_bytes = config.images.cache_max_bytes;
  c.pull_timeout = config.images.pull_timeout;
  return c;
}

ImageCache::ImageCache(ImageCacheConfig config) : config_(std::move(config)) {
  std::error_code ec;
  fs::create_directories(config_.dir, ec);
  for (const std::string& d : {config_.dir, config_.dir + "/sha256", config_.dir + "/tmp"})
    if (Status st = MakeDirectory(d, 0711); !st.ok())
      spdlog::error("image cache: {}", st.ToString());
  // Whatever a stopped worker left half done.
  for (const auto& e : fs::directory_iterator(config_.dir + "/tmp", ec))
    fs::remove_all(e.path(), ec);
  for (const auto& e : fs::directory_iterator(config_.dir + "/sha256", ec)) {
    std::string hex = e.path().filename().string();
    std::string digest = "sha256:" + hex;
    struct stat st {};
    std::string meta = e.path().string() + "/image.json";
    if (!api::IsImageDigest(digest) || ::lstat(meta.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      fs::remove_all(e.path(), ec);
      continue;
    }
    auto text = ReadRegularFile(meta, 1 << 16);
    json::error_code jec;
    json::value v = text.ok() ? json::parse(*text, jec) : json::value();
    const json::value* bytes = v.is_object() ? v.as_object().if_contains("bytes") : nullptr;
    if (!bytes || !bytes->is_int64()) {
      fs::remove_all(e.path(), ec);
      continue;
    }
    Entry entry;
    entry.bytes = bytes->as_int64();
    entry.last_used_ns = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
    entries_[digest] = entry;
  }
  std::lock_guard lock(mu_);
  EvictLocked();
}

ImageCache::~ImageCache() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& [fetch, thread] : threads_)
    if (thread.joinable())
      thread.join();
}

std::string ImageCache::RootfsOf(const std::string& digest) const {
  std::string hex = digest.substr(digest.find(':') + 1);
  return config_.dir + "/sha256/" + hex + "/rootfs";
}

Status ImageCache::Request(const std::string& reference) {
  RETURN_IF_ERROR(CheckImageRegistry(reference, config_.registries));
  std::lock_guard lock(mu_);
  // A thread whose fetch is done needs `mu_` no more: joining it here cannot wait long.
  for (auto t = threads_.begin(); t != threads_.end();) {
    if (t->first->done) {
      t->second.join();
      t = threads_.erase(t);
    } else {
      ++t;
    }
  }
  auto it = fetches_.find(reference);
  // A finished fetch nobody waits for is not reused: a tag may have moved since.
  if (it != fetches_.end() && !(it->second->done && it->second->waiters == 0)) {
    ++it->second->waiters;
    return Status::Ok();
  }
  auto fetch = std::make_shared<Fetch>();
  fetch->reference = reference;
  fetch->waiters = 1;
  fetches_[reference] = fetch;
  threads_.emplace_back(fetch, std::thread([this, fetch] { Run(fetch); }));
  return Status::Ok();
}

ImageState ImageCache::Acquire(const std::string& reference) {
  std::lock_guard lock(mu_);
  auto it = fetches_.find(reference);
  if (it == fetches_.end()) {
    ImageState s;
    s.phase = ImageState::Phase::kFailed;
    s.error = "no pull of " + reference + " was requested";
    return s;
  }
  Fetch& f = *it->second;
  ImageState s = f.state;
  if (s.phase == ImageState::Phase::kPulling) {
    if (!f.layout_dir.empty())
      s.done_bytes = LayoutBytes(f.layout_dir);
    return s;
  }
  f.waiters = std::max(f.waiters - 1, 0);
  if (s.phase == ImageState::Phase::kReady && !config_.resolve_only) {
    auto e = entries_.find(s.digest);
    if (e == entries_.end()) {
      // Cannot happen while the fetch has waiters; said plainly should it ever.
      s.phase = ImageState::Phase::kFailed;
      s.error = "the image " + s.digest + " left the cache before the job started";
      return s;
    }
    ++e->second.users;
    TouchLocked(s.digest, e->second);
  }
  if (f.waiters == 0 && f.done)
    fetches_.erase(it);
  return s;
}

void ImageCache::Abandon(const std::string& reference) {
  std::lock_guard lock(mu_);
  auto it = fetches_.find(reference);
  if (it == fetches_.end())
    return;
  it->second->waiters = std::max(it->second->waiters - 1, 0);
  if (it->second->waiters == 0 && it->second->done)
    fetches_.erase(it);
  EvictLocked();
}

void ImageCache::Release(const std::string& digest) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(digest);
  if (it == entries_.end())
    return;
  it->second.users = std::max(it->second.users - 1, 0);
  TouchLocked(digest, it->second);
  EvictLocked();
}

bool ImageCache::Adopt(const std::string& digest) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(digest);
  if (it == entries_.end())
    return false;
  ++it->second.users;
  return true;
}

int64_t ImageCache::size_bytes() const {
  std::lock_guard lock(mu_);
  int64_t total = 0;
  for (const auto& [d, e] : entries_)
    total += e.bytes;
  return total;
}

std::vector<std::string> ImageCache::cached_digests() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [d, e] : entries_)
    out.push_back(d);
  return out;
}

void ImageCache::TouchLocked(const std::string& digest, Entry& entry) {
  entry.last_used_ns = std::max(NowNs(), entry.last_used_ns + 1);
  std::string meta = config_.dir + "/sha256/" + digest.substr(7) + "/image.json";
  struct timespec times[2];
  times[0].tv_sec = times[1].tv_sec = entry.last_used_ns / 1'000'000'000;
  times[0].tv_nsec = times[1].tv_nsec = entry.last_used_ns % 1'000'000'000;
  ::utimensat(AT_FDCWD, meta.c_str(), times, AT_SYMLINK_NOFOLLOW);
}

bool ImageCache::WaitedForLocked(const std::string& digest) const {
  for (const auto& [ref, f] : fetches_)
    if (f->waiters > 0 && f->state.digest == digest)
      return true;
  return false;
}

void ImageCache::EvictLocked() {
  int64_t total = 0;
  for (const auto& [d, e] : entries_)
    total += e.bytes;
  // At most one pass per entry: each round removes one tree or stops.
  for (size_t round = entries_.size(); total > config_.max_bytes && round > 0; --round) {
    auto victim = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second.users > 0 || WaitedForLocked(it->first))
        continue;
      if (victim == entries_.end() || it->second.last_used_ns < victim->second.last_used_ns)
        victim = it;
    }
    if (victim == entries_.end())
      break;
    // Out of `sha256/` at once (a rename), then removed.
    std::string hex = victim->first.substr(7);
    std::string doomed = config_.dir + "/tmp/evicted-" + hex + "-" + std::to_string(next_tmp_++);
    std::error_code ec;
    fs::rename(config_.dir + "/sha256/" + hex, doomed, ec);
    if (ec) {
      spdlog::error("image cache: cannot remove {}: {}", victim->first, ec.message());
      break;
    }
    fs::remove_all(doomed, ec);
    spdlog::info("image cache: evicted {} ({} MiB; cache {} of {} MiB)", victim->first,
                 victim->second.bytes / kMiB, (total - victim->second.bytes) / kMiB,
                 config_.max_bytes / kMiB);
    total -= victim->second.bytes;
    entries_.erase(victim);
  }
}

std::string ImageCache::Scrub(std::string message) const {
  if (config_.credentials_file.empty())
    return message;
  auto text = ReadRegularFile(config_.credentials_file, 1 << 20);
  if (!text.ok())
    return message;
  json::error_code ec;
  json::value v = json::parse(*text, ec);
  const json::value* auths = !ec && v.is_object() ? v.as_object().if_contains("auths") : nullptr;
  if (!auths || !auths->is_object())
    return message;
  std::vector<std::string> secrets;
  for (const auto& [host, entry] : auths->as_object()) {
    if (!entry.is_object())
      continue;
    for (const char* key : {"auth", "password", "identitytoken", "registrytoken"}) {
      const json::value* s = entry.as_object().if_contains(key);
      if (!s || !s->is_string() || s->as_string().empty())
        continue;
      secrets.emplace_back(s->as_string());
      if (std::string_view(key) == "auth") {
        std::string plain = Base64Decode(s->as_string());
        secrets.push_back(plain);
        if (size_t colon = plain.find(':'); colon != std::string::npos)
          secrets.push_back(plain.substr(colon + 1));
      }
    }
  }
  for (const std::string& secret : secrets) {
    if (secret.size() < 3)
      continue;  // Too short to cut without mangling the message; no real secret is this short.
    for (size_t at = message.find(secret); at != std::string::npos; at = message.find(secret, at))
      message.replace(at, secret.size(), "***");
  }
  return message;
}

void ImageCache::Run(std::shared_ptr<Fetch> fetch) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(config_.pull_timeout.count());
  auto fail = [&](std::string message) {
    std::lock_guard lock(mu_);
    fetch->state.phase = ImageState::Phase::kFailed;
    fetch->state.error = Scrub(std::move(message));
    fetch->layout_dir.clear();
    fetch->done = true;
  };
  auto left = [&] {
    return std::max(std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now()),
                    std::chrono::milliseconds(1));
  };
  auto parsed = api::ParseImageReference(fetch->reference);
  if (!parsed.ok())
    return fail(parsed.status().message());
  const api::ImageReference& ref = *parsed;
  bool insecure = std::find(config_.insecure_registries.begin(), config_.insecure_registries.end(),
                            ref.registry) != config_.insecure_registries.end();
  std::vector<std::string> auth;
  if (!config_.credentials_file.empty()) {
    // Readable by the worker's user alone: a credential others can read is already leaked.
    struct stat st {};
    if (::lstat(config_.credentials_file.c_str(), &st) != 0)
      return fail("images.credentials_file " + config_.credentials_file + ": " + strerror(errno));
    if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 077) != 0)
      return fail("images.credentials_file " + config_.credentials_file +
                  " must be a regular file of the worker's user with mode 0600");
    auth = {"--authfile", config_.credentials_file};
  }

  // 1. Resolve: the manifest the reference names, and its digest.
  std::string repo = "docker://" + ref.registry + "/" + ref.repository;
  std::string source = ref.digest.empty() ? repo + ":" + ref.tag : repo + "@" + ref.digest;
  std::vector<std::string> inspect = {config_.skopeo, "inspect", "--raw", "--retry-times", "1"};
  if (insecure)
    inspect.push_back("--tls-verify=false");
  inspect.insert(inspect.end(), auth.begin(), auth.end());
  inspect.push_back(source);
  auto out = RunCommandOutput(inspect, CommandOptions{left(), 4 << 20, &stopping_});
  if (!out.ok())
    return fail("resolving: " + out.status().message());
  if (out->exit_code != 0)
    return fail("resolving: " + ToolMessage(*out));
  std::string digest = "sha256:" + Sha256Hex(out->out);
  if (!ref.digest.empty() && digest != ref.digest)
    return fail("the registry answered with a manifest whose digest is " + digest);
  int64_t total = 0;
  {
    json::error_code jec;
    json::value m = json::parse(out->out, jec);
    if (!jec && m.is_object()) {
      auto size_of = [](const json::value& d) -> int64_t {
        const json::value* s = d.is_object() ? d.as_object().if_contains("size") : nullptr;
        return s && s->is_int64() ? std::max<int64_t>(s->as_int64(), 0) : 0;
      };
      if (const json::value* layers = m.as_object().if_contains("layers");
          layers && layers->is_array())
        for (const json::value& l : layers->as_array())
          total += size_of(l);
      if (const json::value* c = m.as_object().if_contains("config"))
        total += size_of(*c);
    }
  }

  // 2. One pull per digest: wait for a pull of the same digest, else pull.
  {
    std::unique_lock lock(mu_);
    fetch->state.digest = digest;
    fetch->state.total_bytes = total;
    fetch->state.pinned = ref.registry + "/" + ref.repository + "@" + digest;
    if (config_.resolve_only) {
      fetch->state.phase = ImageState::Phase::kReady;
      fetch->done = true;
      return;
    }
    cv_.wait(lock, [&] { return stopping_ || !pulling_.contains(digest); });
    if (stopping_) {
      fetch->state.phase = ImageState::Phase::kFailed;
      fetch->state.error = "the worker is stopping";
      fetch->done = true;
      return;
    }
    if (entries_.contains(digest)) {
      fetch->state.phase = ImageState::Phase::kReady;
      fetch->state.rootfs = RootfsOf(digest);
      fetch->done = true;
      return;
    }
    pulling_.insert(digest);
  }
  auto pulled = Pull(fetch, repo + "@" + digest, digest, insecure, deadline);
  std::lock_guard lock(mu_);
  pulling_.erase(digest);
  cv_.notify_all();
  fetch->layout_dir.clear();
  if (!pulled.ok()) {
    fetch->state.phase = ImageState::Phase::kFailed;
    fetch->state.error = Scrub(pulled.status().message());
    fetch->done = true;
    return;
  }
  Entry entry;
  entry.bytes = *pulled;
  entries_[digest] = entry;
  TouchLocked(digest, entries_[digest]);
  fetch->state.phase = ImageState::Phase::kReady;
  fetch->state.rootfs = RootfsOf(digest);
  fetch->done = true;
  EvictLocked();
}

Result<int64_t> ImageCache::Pull(const std::shared_ptr<Fetch>& fetch, const std::string& source,
                                 const std::string& digest, bool insecure,
                                 std::chrono::steady_clock::time_point deadline) {
  auto left = [&] {
    return std::max(std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now()),
                    std::chrono::milliseconds(1));
  };
  std::string hex = digest.substr(7);
  std::string tmp;
  {
    std::lock_guard lock(mu_);
    tmp = config_.dir + "/tmp/" + hex + "-" + std::to_string(next_tmp_++);
  }
  std::error_code ec;
  fs::remove_all(tmp, ec);
  RETURN_IF_ERROR(MakeDirectory(tmp, 0700));
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(dir, e);
    }
  } cleanup{tmp};
  std::string layout = tmp + "/layout";
  RETURN_IF_ERROR(MakeDirectory(layout, 0700));
  {
    std::lock_guard lock(mu_);
    fetch->layout_dir = layout;
  }
  spdlog::info("image cache: pulling {} ({})", fetch->reference, digest);
  std::vector<std::string> copy = {config_.skopeo, "copy", "--quiet", "--retry-times", "1"};
  if (insecure)
    copy.push_back("--src-tls-verify=false");
  if (!config_.credentials_file.empty())
    copy.insert(copy.end(), {"--src-authfile", config_.credentials_file});
  copy.insert(copy.end(), {source, "oci:" + layout + ":image"});
  ASSIGN_OR_RETURN(CommandOutput out,
                   RunCommandOutput(copy, CommandOptions{left(), 1 << 20, &stopping_}));
  if (out.exit_code != 0)
    return Status::Unavailable("downloading: " + ToolMessage(out));
  {
    std::lock_guard lock(mu_);
    fetch->state.done_bytes = LayoutBytes(layout);
    fetch->state.total_bytes = std::max(fetch->state.total_bytes, fetch->state.done_bytes);
    fetch->state.unpacking = true;
    fetch->layout_dir.clear();
  }
  std::string rootfs = tmp + "/rootfs";
  std::vector<std::string> unpack = {config_.umoci, "raw", "unpack"};
  if (::geteuid() != 0)
    unpack.push_back("--rootless");
  unpack.insert(unpack.end(), {"--image", layout + ":image", rootfs});
  ASSIGN_OR_RETURN(out, RunCommandOutput(unpack, CommandOptions{left(), 1 << 20, &stopping_}));
  if (out.exit_code != 0)
    return Status::Unavailable("unpacking: " + ToolMessage(out));
  fs::remove_all(layout, ec);
  // The tree is shared by every job that runs it: readable and passable by all (a job in a user
  // namespace reaches it as "others"), writable by none but root, mount points made once here.
  if (::chmod(rootfs.c_str(), 0755) != 0)
    return Status::Internal("chmod " + rootfs + ": " + strerror(errno));
  for (const char* dir : kMountPoints) {
    std::string path = rootfs + "/" + dir;
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode))
        return Status::InvalidArgument("image " + fetch->reference + ": /" + dir +
                                           " must be a directory, not a link or a file",
                                       "image");
      continue;
    }
    if (::mkdir(path.c_str(), 0755) != 0)
      return Status::Internal("cannot create the mount point " + path + ": " + strerror(errno));
  }
  int64_t bytes = TreeBytes(rootfs);
  json::object meta{{"digest", digest}, {"reference", fetch->reference}, {"bytes", bytes}};
  RETURN_IF_ERROR(WriteFileAtomic(tmp + "/image.json", json::serialize(meta) + "\n", 0644));
  if (::chmod(tmp.c_str(), 0711) != 0)
    return Status::Internal("chmod " + tmp + ": " + strerror(errno));
  std::string final_dir = config_.dir + "/sha256/" + hex;
  fs::remove_all(final_dir, ec);  // A tree without its record (a crash mid-eviction).
  fs::rename(tmp, final_dir, ec);
  if (ec)
    return Status::Internal("cannot move " + tmp + " to " + final_dir + ": " + ec.message());
  cleanup.dir.clear();
  spdlog::info("image cache: {} is {} ({} MiB unpacked)", fetch->reference, digest, bytes / kMiB);
  return bytes;
}

}  // namespace gsched::worker
