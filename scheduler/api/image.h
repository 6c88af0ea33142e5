// What a job's `image` may be, and which environment variables a job may not set.
//
// An image is either a local root file system (an absolute path, as HPC sites stage images) or
// an OCI reference (`[host[:port]/]path[:tag][@sha256:<64 hex>]`). The scheduler refuses what
// is obviously invalid at submit (`CheckImage`); each worker then enforces its own allow-lists
// (`images.roots`, `images.registries`), which only it knows.
//
// Loader variables (`LD_PRELOAD`, `LD_LIBRARY_PATH`, `GCONV_PATH`, ...) change what code a
// process loads: they are refused in a job's `env` (`IsLoaderVariable`), and a worker drops them
// too, so that nothing a job names is ever loaded into a process the worker starts as root.
//
// Threading: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "scheduler/common/status.h"

namespace gsched::api {

// A parsed OCI image reference. `registry` is the host (with port) the image comes from;
// references without one ("busybox:1") name Docker Hub, `docker.io`, as engines read them.
struct ImageReference {
  std::string registry;
  std::string repository;  // "library/busybox", "nvidia/pytorch".
  std::string tag;         // Empty when only a digest is given; "latest" when neither is.
  std::string digest;      // "sha256:<64 hex>" or empty.

  // "registry/repository[:tag][@digest]".
  std::string ToString() const;
  friend bool operator==(const ImageReference&, const ImageReference&) = default;
};

// Parses an OCI reference; an error says what is wrong with it.
Result<ImageReference> ParseImageReference(std::string_view image);

// Whether `digest` is "sha256:" and 64 lowercase hex digits: the only digest an image is pinned
// and recorded by (`Job::image_digest`).
bool IsImageDigest(std::string_view digest);

// Whether `image` names a local root file system (an absolute path) rather than a reference.
inline bool IsLocalImage(std::string_view image) {
  return image.starts_with('/');
}

// The submit-time check (field `image`): not empty, no leading `-` (it would be read as an
// option), no white space or control characters, an absolute path without `.` or `..` parts or
// `//`, or else a valid OCI reference.
Status CheckImage(std::string_view image);

// `LD_*` and glibc's other "unsecure" loader variables.
bool IsLoaderVariable(std::string_view name);

}  // namespace gsched::api
