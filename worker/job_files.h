// Opening files in job directories without being steered by the job (DESIGN.md section 11).
//
// A job may plant anything in the directory it can write: symlinks to host files, FIFOs that
// block an `open`, device nodes, hard links to files it does not own. Everything the worker or
// the shim reads or writes there goes through these functions: `O_NOFOLLOW | O_NONBLOCK`, then
// `fstat` on the descriptor (a regular file with one link, and the expected owner where one is
// given); anything else is refused with a message, never followed, waited on or truncated.
// Control files (state, pid, exit, output) live in the worker's own directory besides, where no
// job can write; these checks are the second wall, not the only one.
//
// Threading: stateless functions, safe from any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "scheduler/common/files.h"
#include "scheduler/common/status.h"

namespace gsched::worker {

// Reads at most `max_bytes` of a regular file with exactly one link. NotFound when it does not
// exist; FailedPrecondition for a symlink, FIFO, device, directory or hard link.
Result<std::string> ReadRegularFile(const std::string& path, size_t max_bytes = 1 << 20);

// Opens a regular file with one link for reading (`O_NOFOLLOW | O_NONBLOCK`); the caller closes
// the descriptor. Errors as `ReadRegularFile`.
Result<int> OpenRegularFile(const std::string& path);

// Whole files are written with `gsched::WriteFileAtomic` (scheduler/common/files.h).
using gsched::WriteFileAtomic;

// Creates the directory `path` (its parent must exist) or checks the existing one: a real
// directory, not a symlink; then sets `mode` and, when `owner` is given, its owner and group.
Status MakeDirectory(const std::string& path, mode_t mode,
                     std::optional<std::pair<uid_t, gid_t>> owner = std::nullopt);

// The modification time (ns since the epoch) of a regular file, not following a symlink;
// nullopt for anything else or nothing.
std::optional<int64_t> RegularFileMtimeNs(const std::string& path);

}  // namespace gsched::worker
