#include "http/api_response.h"

#include <boost/beast/core/string.hpp>
#include <boost/json.hpp>

#include "core/encoding.h"

namespace convstore::http {
namespace {

const char* ErrorType(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument:
    case ErrorKind::kHeadersTooLarge:
      return "invalid_request_error";
    case ErrorKind::kMethodNotAllowed:
      return "method_not_allowed";
    case ErrorKind::kPayloadTooLarge:
      return "payload_too_large";
    case ErrorKind::kUnsupportedMediaType:
      return "unsupported_media_type";
    case ErrorKind::kUnauthenticated:
      return "authentication_error";
    case ErrorKind::kPermissionDenied:
      return "permission_error";
    case ErrorKind::kNotFound:
      return "not_found_error";
    case ErrorKind::kConflict:
      return "conflict_error";
    case ErrorKind::kPreconditionFailed:
      return "precondition_failed";
    case ErrorKind::kIdempotencyMismatch:
    case ErrorKind::kIdempotencyInFlight:
      return "idempotency_error";
    case ErrorKind::kUnavailable:
    case ErrorKind::kIOError:  // answered 503: the store refuses writes
    case ErrorKind::kInsufficientStorage:
      return "unavailable";
    default:
      return "internal_error";
  }
}

}  // namespace

const std::string* ApiResponse::FindHeader(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (boost::beast::iequals(k, name)) return &v;
  }
  return nullptr;
}

unsigned HttpStatusFor(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kOk:
      return 200;
    case ErrorKind::kInvalidArgument:
      return 400;
    case ErrorKind::kUnauthenticated:
      return 401;
    case ErrorKind::kPermissionDenied:
      return 403;
    case ErrorKind::kNotFound:
      return 404;
    case ErrorKind::kConflict:
    case ErrorKind::kIdempotencyInFlight:
      return 409;
    case ErrorKind::kPreconditionFailed:
      return 412;
    case ErrorKind::kMethodNotAllowed:
      return 405;
    case ErrorKind::kPayloadTooLarge:
      return 413;
    case ErrorKind::kUnsupportedMediaType:
      return 415;
    case ErrorKind::kHeadersTooLarge:
      return 431;
    case ErrorKind::kIdempotencyMismatch:
      return 422;
    case ErrorKind::kUnavailable:
    case ErrorKind::kIOError:
      return 503;
    case ErrorKind::kInsufficientStorage:
      return 507;
    default:
      return 500;
  }
}

ApiResponse JsonResponse(unsigned status, const boost::json::value& body) {
  ApiResponse r;
  r.status = status;
  r.body = boost::json::serialize(body);
  return r;
}

ApiResponse ErrorResponse(const Status& status) {
  unsigned code = HttpStatusFor(status.kind());
  // Storage faults and corruption are reported without internals (paths,
  // RocksDB messages); those go to the server log instead.
  std::string message = status.message();
  if (status.kind() == ErrorKind::kIOError) {
    message = "The store cannot accept writes right now.";
  } else if (status.kind() == ErrorKind::kInsufficientStorage) {
    message =
        "The disk is full: the store cannot accept writes until space is "
        "freed and the server restarted.";
  } else if (code == 500) {
    message = "Internal server error.";
  }
  boost::json::object err;
  // Messages may quote the request (a path); JSON text must stay UTF-8.
  err["message"] = ToValidUtf8(message);
  err["type"] = ErrorType(status.kind());
  err["param"] = status.param().empty() ? boost::json::value(nullptr)
                                        : boost::json::value(status.param());
  err["code"] = status.code().empty() ? boost::json::value(nullptr)
                                      : boost::json::value(status.code());
  boost::json::object body;
  body["error"] = std::move(err);
  ApiResponse r = JsonResponse(code, body);
  if (code == 401) r.AddHeader("WWW-Authenticate", "Bearer");
  return r;
}

}  // namespace convstore::http
