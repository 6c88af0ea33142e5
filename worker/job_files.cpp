#include "worker/job_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace gsched::worker {
namespace {

std::string Errno(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

// Why `st` is not a plain file the worker may use; empty when it is.
std::string NotPlain(const struct stat& st) {
  if (S_ISLNK(st.st_mode))
    return "a symbolic link";
  if (S_ISFIFO(st.st_mode))
    return "a FIFO";
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
    return "a device";
  if (S_ISDIR(st.st_mode))
    return "a directory";
  if (!S_ISREG(st.st_mode))
    return "not a regular file";
  if (st.st_nlink != 1)
    return "a hard link (" + std::to_string(st.st_nlink) + " links)";
  return {};
}

}  // namespace

Result<int> OpenRegularFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    if (errno == ENOENT)
      return Status::NotFound(path + " does not exist");
    if (errno == ELOOP)
      return Status::FailedPrecondition("refusing " + path + ": a symbolic link");
    return Status::FailedPrecondition(Errno("cannot open", path));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    std::string message = Errno("cannot stat", path);
    ::close(fd);
    return Status::FailedPrecondition(message);
  }
  if (std::string why = NotPlain(st); !why.empty()) {
    ::close(fd);
    return Status::FailedPrecondition("refusing " + path + ": " + why);
  }
  return fd;
}

Result<std::string> ReadRegularFile(const std::string& path, size_t max_bytes) {
  ASSIGN_OR_RETURN(int fd, OpenRegularFile(path));
  std::string out;
  char buf[8192];
  while (out.size() < max_bytes) {
    ssize_t n = ::read(fd, buf, std::min(sizeof buf, max_bytes - out.size()));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      std::string message = Errno("cannot read", path);
      ::close(fd);
      return Status::Internal(message);
    }
    if (n == 0)
      break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

Status MakeDirectory(const std::string& path, mode_t mode,
                     std::optional<std::pair<uid_t, gid_t>> owner) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST)
    return Status::Internal(Errno("cannot create", path));
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return Status::FailedPrecondition(Errno("refusing", path));
  Status result;
  if (owner && ::fchown(fd, owner->first, owner->second) != 0)
    result = Status::Internal(Errno("cannot chown", path));
  else if (::fchmod(fd, mode) != 0)
    result = Status::Internal(Errno("cannot chmod", path));
  ::close(fd);
  return result;
}

std::optional<int64_t> RegularFileMtimeNs(const std::string& path) {
  struct stat st {};
  if (::fstatat(AT_FDCWD, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
    return std::nullopt;
  return int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
}

}  // namespace gsched::worker
