// Writing a whole file so that a crash or a reader never sees half of it: the scheduler's data
// directory (admin token, signing key, address) and the worker's job directories use the same one.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "scheduler/common/status.h"

namespace gsched {

// Writes `content` to `path` through a fresh `path.tmp` (`O_EXCL | O_NOFOLLOW`, after removing
// whatever was there), fsync, then rename: a reader sees the old or the new content, and a
// planted symlink is replaced, never written through.
Status WriteFileAtomic(const std::string& path, std::string_view content, mode_t mode = 0600);

}  // namespace gsched
