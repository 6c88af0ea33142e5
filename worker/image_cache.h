// `ImageCache`: OCI images for the runc/crun runtimes of one node (DESIGN.md sections 6 and 11).
//
// A job's `image` may be an OCI reference (`host[:port]/path:tag` or `...@sha256:<digest>`). The
// cache resolves it to a digest (`skopeo inspect --raw`, the SHA-256 of the manifest), pulls that
// digest with `skopeo copy` into a private OCI layout and unpacks it with `umoci raw unpack` into
// `dir/sha256/<hex>/rootfs`: one tree per digest, owned by root, shared read-only by every job on
// the node that runs it (the runtimes mount it read-only; in `pool` mode the user namespace sees
// it as the image's files, as for local roots). The layout is deleted after the unpack.
//
// Invariants:
//   - only references whose registry is in `registries` are fetched (`Request` refuses others);
//   - one pull per digest at a time: a second reference (or tag) that resolves to a digest being
//     pulled waits for that pull, and every job that asks for a reference already in flight joins
//     its fetch;
//   - a pull never leaves a partial tree under `sha256/`: it is assembled under `tmp/` and renamed
//     into place; `tmp/` is emptied when the cache opens;
//   - the trees' total size stays under `max_bytes` by removing the least recently used trees
//     that no job uses and no job waits for; a tree in use is never removed, so the cache may
//     exceed the cap while all of it is in use;
//   - registry credentials (`credentials_file`, a containers-auth.json) reach `skopeo` only as a
//     file name, and any secret of that file is cut from the messages a failed pull returns.
//
// With `resolve_only` (podman/docker, which pull for themselves) a fetch stops after step one and
// says ready with the digest; no tree is made and nothing is evicted.
//
// Usage per job attempt: `Request(reference)`, then `Acquire(reference)` on every supervisor tick
// until it says ready (the job then holds a use of the digest) or failed; `Abandon(reference)` if
// the attempt ends while it waits; `Release(digest)` when a job that acquired the image ends;
// `Adopt(digest)` for a running job re-adopted after a worker restart.
//
// Threading: all public methods are thread-safe (one mutex) and return quickly; each fetch runs
// on its own thread. The destructor cancels running commands and joins the threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "config/worker_config.h"
#include "scheduler/common/clock.h"
#include "scheduler/common/status.h"

namespace gsched::worker {

struct ImageCacheConfig {
  std::string dir;                               // Created when missing (mode 0711).
  std::vector<std::string> registries;           // The allow-list, "host[:port]".
  std::vector<std::string> insecure_registries;  // Plain http, no TLS verification.
  std::string credentials_file;                  // containers-auth.json; empty: none.
  int64_t max_bytes = int64_t{50} << 30;
  Duration pull_timeout = Seconds(1800);
  std::string skopeo = "skopeo";
  std::string umoci = "umoci";
  // podman/docker pull for themselves: the cache only resolves references to digests (which the
  // engine is then given, so that it runs exactly what is recorded) and keeps no trees.
  bool resolve_only = false;
};
// The cache of a worker: `images.*`, the directory defaulting to `work_dir/images`.
ImageCacheConfig ImageCacheConfigFrom(const config::WorkerConfig& config);

// What `Acquire` says about a reference.
struct ImageState {
  enum class Phase { kPulling, kReady, kFailed };
  Phase phase = Phase::kPulling;
  std::string digest;  // "sha256:<hex>" once resolved.
  std::string rootfs;  // kReady: the tree to run from (empty when `resolve_only`).
  // kReady: the reference pinned to its digest, "host[:port]/path@sha256:<hex>".
  std::string pinned;
  // kPulling: bytes downloaded so far and the image's compressed size (0 while unknown);
  // `unpacking` once the download is complete.
  int64_t done_bytes = 0;
  int64_t total_bytes = 0;
  bool unpacking = false;
  std::string error;  // kFailed: the registry's or tool's message, without credentials.
};

// "pulling image: 412 of 1,930 MiB" and its variants, for the job's reason while it starts.
std::string PullProgressMessage(const ImageState& state);

class ImageCache {
 public:
  // Opens the cache: creates `config.dir`, empties its `tmp/` and reads the trees already there.
  explicit ImageCache(ImageCacheConfig config);
  ~ImageCache();
  ImageCache(const ImageCache&) = delete;
  ImageCache& operator=(const ImageCache&) = delete;

  // One more job waits for `reference`: starts its fetch unless one is in flight. Refuses a
  // reference that does not parse or whose registry is not allowed (field `image`).
  Status Request(const std::string& reference);
  // Where the fetch of `reference` stands. Once ready, the caller holds a use of the digest (until
  // `Release`) and no longer waits; once failed, it no longer waits either.
  ImageState Acquire(const std::string& reference);
  // A job that waited for `reference` no longer does (it was killed before the image came).
  void Abandon(const std::string& reference);
  // A job that acquired `digest` ended.
  void Release(const std::string& digest);
  // A job found running after a restart uses `digest`; false when that tree is not cached.
  bool Adopt(const std::string& digest);

  // Introspection, for tests and logs.
  int64_t size_bytes() const;
  std::vector<std::string> cached_digests() const;
  // The tree of `digest` (whether or not it is cached).
  std::string RootfsOf(const std::string& digest) const;

 private:
  struct Fetch;
  struct Entry {
    int64_t bytes = 0;
    int64_t last_used_ns = 0;  // Wall clock: ordering only; kept as the mtime of `image.json`.
    int32_t users = 0;
  };

  void Run(std::shared_ptr<Fetch> fetch);
  // The pull of one digest: download, unpack, move into place. Returns the tree's size.
  Result<int64_t> Pull(const std::shared_ptr<Fetch>& fetch, const std::string& source,
                       const std::string& digest, bool insecure,
                       std::chrono::steady_clock::time_point deadline);
  // Removes least recently used trees until the cap holds. Called with `mu_` held.
  void EvictLocked();
  bool WaitedForLocked(const std::string& digest) const;
  void TouchLocked(const std::string& digest, Entry& entry);
  // `message` without any secret of the credentials file.
  std::string Scrub(std::string message) const;

  const ImageCacheConfig config_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;                             // A pull of a digest ended.
  std::map<std::string, std::shared_ptr<Fetch>> fetches_;  // By reference.
  std::map<std::string, Entry> entries_;                   // By digest: the trees on disk.
  std::set<std::string> pulling_;                          // Digests being pulled.
  // The fetches' threads; those whose fetch is done are joined by the next `Request`.
  std::list<std::pair<std::shared_ptr<Fetch>, std::thread>> threads_;
  uint64_t next_tmp_ = 0;
};

}  // namespace gsched::worker
