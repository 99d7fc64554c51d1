// Status and Result<T>: errors as values across module boundaries.
// A Status is cheap to copy when ok; an error carries a kind (which maps to an
// HTTP status in http/), a human message, and the optional `param` and `code`
// fields of the API's error body. Immutable after construction; thread-compatible.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace convstore {

enum class ErrorKind {
  kOk = 0,
  kInvalidArgument,       // 400 invalid_request_error
  kUnauthenticated,       // 401 authentication_error
  kPermissionDenied,      // 403 permission_error
  kNotFound,              // 404 not_found_error
  kConflict,              // 409 conflict_error
  kPreconditionFailed,    // 412 precondition_failed
  kIdempotencyMismatch,   // 422 idempotency_error
  kIdempotencyInFlight,   // 409 idempotency_error
  kMethodNotAllowed,      // 405 method_not_allowed
  kPayloadTooLarge,       // 413 payload_too_large
  kUnsupportedMediaType,  // 415 unsupported_media_type
  kHeadersTooLarge,       // 431 invalid_request_error
  kUnavailable,           // 503 unavailable (the log refuses writes)
  kIOError,               // 500/503: a storage fault
  kInsufficientStorage,   // 507 unavailable (the disk is full)
  kCorruption,            // 500: bytes that do not decode
  kInternal,              // 500 internal_error
};

class Status {
 public:
  Status() = default;

  static Status InvalidArgument(std::string message, std::string param = {},
                                std::string code = {}) {
    return Status(ErrorKind::kInvalidArgument, std::move(message),
                  std::move(param), std::move(code));
  }
  static Status Unauthenticated(std::string message) {
    return Status(ErrorKind::kUnauthenticated, std::move(message));
  }
  static Status PermissionDenied(std::string message) {
    return Status(ErrorKind::kPermissionDenied, std::move(message));
  }
  static Status NotFound(std::string message, std::string param = {}) {
    return Status(ErrorKind::kNotFound, std::move(message), std::move(param));
  }
  static Status Conflict(std::string message, std::string code) {
    return Status(ErrorKind::kConflict, std::move(message), {},
                  std::move(code));
  }
  static Status PreconditionFailed(std::string message) {
    return Status(ErrorKind::kPreconditionFailed, std::move(message), {},
                  "etag_mismatch");
  }
  static Status IdempotencyMismatch(std::string message) {
    return Status(ErrorKind::kIdempotencyMismatch, std::move(message), {},
                  "idempotency_key_reused");
  }
  static Status IdempotencyInFlight(std::string message) {
    return Status(ErrorKind::kIdempotencyInFlight, std::move(message), {},
                  "idempotency_in_flight");
  }
  static Status MethodNotAllowed(std::string message) {
    return Status(ErrorKind::kMethodNotAllowed, std::move(message));
  }
  static Status PayloadTooLarge(std::string message) {
    return Status(ErrorKind::kPayloadTooLarge, std::move(message));
  }
  static Status UnsupportedMediaType(std::string message) {
    return Status(ErrorKind::kUnsupportedMediaType, std::move(message));
  }
  static Status HeadersTooLarge(std::string message) {
    return Status(ErrorKind::kHeadersTooLarge, std::move(message));
  }
  static Status Unavailable(std::string message) {
    return Status(ErrorKind::kUnavailable, std::move(message));
  }
  static Status IOError(std::string message) {
    return Status(ErrorKind::kIOError, std::move(message));
  }
  static Status InsufficientStorage(std::string message) {
    return Status(ErrorKind::kInsufficientStorage, std::move(message), {},
                  "insufficient_storage");
  }
  static Status Corruption(std::string message) {
    return Status(ErrorKind::kCorruption, std::move(message));
  }
  static Status Internal(std::string message) {
    return Status(ErrorKind::kInternal, std::move(message));
  }

  bool ok() const { return kind_ == ErrorKind::kOk; }
  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }
  std::string ToString() const;

 private:
  Status(ErrorKind kind, std::string message, std::string param = {},
         std::string code = {})
      : kind_(kind),
        message_(std::move(message)),
        param_(std::move(param)),
        code_(std::move(code)) {}

  ErrorKind kind_ = ErrorKind::kOk;
  std::string message_;
  std::string param_;
  std::string code_;
};

// Result<T> holds either a value or an error Status (never an ok Status).
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

// Assigns the value of a Result expression to `lhs`, or returns its Status.
#define CONVSTORE_ASSIGN_OR_RETURN(lhs, expr) \
  do {                                        \
    auto _convstore_r = (expr);               \
    if (!_convstore_r.ok()) return _convstore_r.status(); \
    lhs = std::move(*_convstore_r);           \
  } while (0)

#define CONVSTORE_RETURN_IF_ERROR(expr)   \
  do {                                    \
    ::convstore::Status _convstore_s = (expr); \
    if (!_convstore_s.ok()) return _convstore_s; \
  } while (0)

inline std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s = message_;
  if (!param_.empty()) s += " (param " + param_ + ")";
  if (!code_.empty()) s += " [" + code_ + "]";
  return s;
}

}  // namespace convstore
