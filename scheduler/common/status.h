// `Status` and `Result<T>`: how every gsched function that can fail says so.
//
// A `Status` is a code, a message and, for validation errors, the path of the offending field
// (`jobs[3].gpus_per_node`). Decoders build the path bottom-up: a nested decoder reports
// `gpus_per_node`, its caller prefixes `jobs[3]` with `WithFieldPrefix`. "Does not fit" is not an
// error: the scheduling core returns reasons as data; a `Status` means something broke or was
// invalid.
//
// Both types are values, cheap to move, and `[[nodiscard]]`: ignoring one is written out on purpose
// with `IgnoreError()`.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace gsched {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // Bad input: a field, a flag, a file. HTTP 400.
  kUnauthenticated,     // No or bad credentials. HTTP 401.
  kPermissionDenied,    // Authenticated but not allowed. HTTP 403.
  kNotFound,            // HTTP 404.
  kAlreadyExists,       // HTTP 409.
  kFailedPrecondition,  // The request is valid but the state forbids it. HTTP 409.
  kResourceExhausted,   // Rate or size limit. HTTP 429 / 413.
  kUnavailable,         // Try again later; the peer or the disk is not there. HTTP 503.
  kDeadlineExceeded,
  kInternal,  // A bug or a broken invariant. HTTP 500.
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message, std::string field = {})
      : code_(code), message_(std::move(message)), field_(std::move(field)) {}

  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string message, std::string field = {}) {
    return {StatusCode::kInvalidArgument, std::move(message), std::move(field)};
  }
  static Status NotFound(std::string message) {
    return {StatusCode::kNotFound, std::move(message)};
  }
  static Status AlreadyExists(std::string message) {
    return {StatusCode::kAlreadyExists, std::move(message)};
  }
  static Status FailedPrecondition(std::string message) {
    return {StatusCode::kFailedPrecondition, std::move(message)};
  }
  static Status PermissionDenied(std::string message) {
    return {StatusCode::kPermissionDenied, std::move(message)};
  }
  static Status Unauthenticated(std::string message) {
    return {StatusCode::kUnauthenticated, std::move(message)};
  }
  static Status ResourceExhausted(std::string message) {
    return {StatusCode::kResourceExhausted, std::move(message)};
  }
  static Status Unavailable(std::string message) {
    return {StatusCode::kUnavailable, std::move(message)};
  }
  static Status Internal(std::string message) {
    return {StatusCode::kInternal, std::move(message)};
  }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // The JSON or YAML path of the offending field; empty when the error is not about one field.
  const std::string& field() const { return field_; }

  // Prefixes the field path: `WithFieldPrefix("jobs[3]")` turns `gpus_per_node` into
  // `jobs[3].gpus_per_node` and `[2]` into `jobs[3][2]`. A status without a field gets `prefix`.
  Status WithFieldPrefix(std::string_view prefix) &&;

  // `field: message` for validation errors, `message` otherwise.
  std::string ToString() const;

  // Marks an error as deliberately ignored.
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_ && a.field_ == b.field_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::string field_;
};

// Either a `T` or a non-OK `Status`.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Result built from an OK Status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const& {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  Status status() && { return ok() ? Status() : std::move(std::get<Status>(v_)); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }
  void IgnoreError() const {}

 private:
  std::variant<T, Status> v_;
};

}  // namespace gsched

#define GSCHED_CONCAT_INNER(a, b) a##b
#define GSCHED_CONCAT(a, b) GSCHED_CONCAT_INNER(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define RETURN_IF_ERROR(expr)                 \
  do {                                        \
    ::gsched::Status gsched_status_ = (expr); \
    if (!gsched_status_.ok())                 \
      return gsched_status_;                  \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, MakeX());` binds the value or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  GSCHED_ASSIGN_OR_RETURN_IMPL(GSCHED_CONCAT(gsched_result_, __LINE__), lhs, expr)
#define GSCHED_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok())                                     \
    return std::move(tmp).status();                  \
  lhs = std::move(tmp).value()
