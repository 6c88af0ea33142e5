#include "scheduler/common/status.h"

namespace gsched {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kInvalidArgument:
      return "invalid_argument";
    case StatusCode::kUnauthenticated:
      return "unauthenticated";
    case StatusCode::kPermissionDenied:
      return "permission_denied";
    case StatusCode::kNotFound:
      return "not_found";
    case StatusCode::kAlreadyExists:
      return "already_exists";
    case StatusCode::kFailedPrecondition:
      return "failed_precondition";
    case StatusCode::kResourceExhausted:
      return "resource_exhausted";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kDeadlineExceeded:
      return "deadline_exceeded";
    case StatusCode::kInternal:
      return "internal";
  }
  return "unknown";
}

Status Status::WithFieldPrefix(std::string_view prefix) && {
  if (ok() || prefix.empty())
    return std::move(*this);
  if (field_.empty()) {
    field_ = std::string(prefix);
  } else if (field_.front() == '[') {
    field_ = std::string(prefix) + field_;
  } else {
    field_ = std::string(prefix) + "." + field_;
  }
  return std::move(*this);
}

std::string Status::ToString() const {
  if (ok())
    return "ok";
  if (field_.empty())
    return message_;
  return field_ + ": " + message_;
}

}  // namespace gsched
