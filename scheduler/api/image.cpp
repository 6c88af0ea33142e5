#include "scheduler/api/image.h"

#include <array>

namespace gsched::api {
namespace {

bool IsLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// A repository path component: [a-z0-9]+ with single separators (".", "_", "__", "-"+) between.
bool IsPathComponent(std::string_view s) {
  if (s.empty() || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back()))
    return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (IsLowerAlnum(c))
      continue;
    if (c != '.' && c != '_' && c != '-')
      return false;
    if (c == '.' && !IsLowerAlnum(s[i + 1]))
      return false;
    if (c == '_' && !(IsLowerAlnum(s[i + 1]) || (s[i + 1] == '_' && IsLowerAlnum(s[i + 2]))))
      return false;
  }
  return true;
}

// A registry host: DNS labels or an IPv4 address, optionally ":port".
bool IsRegistryHost(std::string_view s) {
  if (s.empty() || s.size() > 255)
    return false;
  std::string_view host = s;
  if (size_t colon = s.rfind(':'); colon != std::string_view::npos) {
    std::string_view port = s.substr(colon + 1);
    if (port.empty() || port.size() > 5)
      return false;
    int value = 0;
    for (char c : port) {
      if (c < '0' || c > '9')
        return false;
      value = value * 10 + (c - '0');
    }
    if (value < 1 || value > 65535)
      return false;
    host = s.substr(0, colon);
  }
  if (host.empty() || host.front() == '-' || host.front() == '.' || host.back() == '.' ||
      host.find("..") != std::string_view::npos)
    return false;
  for (char c : host)
    if (!(IsLowerAlnum(c) || (c >= 'A' && c <= 'Z') || c == '.' || c == '-'))
      return false;
  return true;
}

bool IsTag(std::string_view s) {
  if (s.empty() || s.size() > 128)
    return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool word = IsLowerAlnum(c) || (c >= 'A' && c <= 'Z') || c == '_';
    if (!word && (i == 0 || (c != '.' && c != '-')))
      return false;
  }
  return true;
}

}  // namespace

std::string ImageReference::ToString() const {
  std::string out = registry + "/" + repository;
  if (!tag.empty())
    out += ":" + tag;
  if (!digest.empty())
    out += "@" + digest;
  return out;
}

bool IsImageDigest(std::string_view digest) {
  if (!digest.starts_with("sha256:") || digest.size() != 7 + 64)
    return false;
  for (char c : digest.substr(7))
    if (!IsHex(c))
      return false;
  return true;
}

Result<ImageReference> ParseImageReference(std::string_view image) {
  if (image.empty())
    return Status::InvalidArgument("must not be empty", "image");
  if (image.size() > 1024)
    return Status::InvalidArgument("an image reference is at most 1024 characters", "image");
  ImageReference ref;
  std::string_view rest = image;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    std::string_view digest = rest.substr(at + 1);
    if (!IsImageDigest(digest))
      return Status::InvalidArgument("a digest must be sha256: and 64 lowercase hex digits",
                                     "image");
    ref.digest = std::string(digest);
    rest = rest.substr(0, at);
  }
  // The registry is the first component when it looks like a host (has '.' or ':' or is
  // "localhost"), as container engines read references.
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    std::string_view first = rest.substr(0, slash);
    if (first.find_first_of(".:") != std::string_view::npos || first == "localhost") {
      if (!IsRegistryHost(first))
        return Status::InvalidArgument("invalid registry host \"" + std::string(first) + "\"",
                                       "image");
      ref.registry = std::string(first);
      rest = rest.substr(slash + 1);
    }
  }
  // A tag follows the last ':' after the last '/'.
  size_t last_slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || colon > last_slash)) {
    std::string_view tag = rest.substr(colon + 1);
    if (!IsTag(tag))
      return Status::InvalidArgument("invalid tag \"" + std::string(tag) + "\"", "image");
    ref.tag = std::string(tag);
    rest = rest.substr(0, colon);
  }
  if (rest.empty() || rest.size() > 255)
    return Status::InvalidArgument("the repository name must be 1..255 characters", "image");
  size_t start = 0;
  while (true) {
    size_t end = rest.find('/', start);
    std::string_view part = rest.substr(start, end == std::string_view::npos ? end : end - start);
    if (!IsPathComponent(part))
      return Status::InvalidArgument(
          "invalid repository name \"" + std::string(rest) +
              "\": lowercase letters, digits and . _ - between them, parts split by /",
          "image");
    if (end == std::string_view::npos)
      break;
    start = end + 1;
  }
  ref.repository = std::string(rest);
  if (ref.registry.empty()) {
    ref.registry = "docker.io";
    if (ref.repository.find('/') == std::string::npos)
      ref.repository = "library/" + ref.repository;
  }
  if (ref.tag.empty() && ref.digest.empty())
    ref.tag = "latest";
  return ref;
}

Status CheckImage(std::string_view image) {
  if (image.empty())
    return Status::InvalidArgument("must not be empty", "image");
  if (image.front() == '-')
    return Status::InvalidArgument("must not start with '-'", "image");
  for (char c : image) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == ' ')
      return Status::InvalidArgument("must not contain white space or control characters", "image");
  }
  if (!IsLocalImage(image)) {
    if (image.starts_with('.') || image.starts_with('~'))
      return Status::InvalidArgument(
          "a root file system must be an absolute path; otherwise give an OCI reference", "image");
    return ParseImageReference(image).status();
  }
  if (image.size() > 4096)
    return Status::InvalidArgument("a path is at most 4096 characters", "image");
  if (image.find("//") != std::string_view::npos)
    return Status::InvalidArgument("must not contain '//'", "image");
  size_t start = 1;
  while (start <= image.size()) {
    size_t end = image.find('/', start);
    std::string_view part =
        image.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (part == "." || part == "..")
      return Status::InvalidArgument("must not contain '.' or '..' parts", "image");
    if (end == std::string_view::npos)
      break;
    start = end + 1;
  }
  return Status::Ok();
}

bool IsLoaderVariable(std::string_view name) {
  // glibc drops these for set-uid programs (UNSECURE_ENVVARS); TMPDIR and TZDIR are harmless.
  static constexpr std::array<std::string_view, 11> kNames = {
      "GCONV_PATH",   "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES",      "LOCALDOMAIN", "LOCPATH",
      "MALLOC_TRACE", "NIS_PATH",    "NLSPATH",        "RESOLV_HOST_CONF", "RES_OPTIONS"};
  if (name.starts_with("LD_"))
    return true;
  for (std::string_view n : kNames)
    if (name == n)
      return true;
  return false;
}

}  // namespace gsched::api
