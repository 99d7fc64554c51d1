#include "http/beast_request.h"

#include <boost/beast/core/string.hpp>

namespace convstore::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

ApiRequest ToApiRequest(bhttp::request<bhttp::string_body>&& req) {
  ApiRequest api;
  api.method = std::string(req.method_string());
  if (req.method() == bhttp::verb::head) api.method = "GET";
  api.target = std::string(req.target());
  // One pass over the fields, keeping the first of each (five lookups by
  // name each searched the fields). Fields Beast does not know by name
  // are compared case-insensitively.
  bool authorization = false, content_type = false;
  for (const auto& f : req) {
    switch (f.name()) {
      case bhttp::field::authorization:
        if (!authorization) api.authorization = std::string(f.value());
        authorization = true;
        break;
      case bhttp::field::content_type:
        if (!content_type) api.content_type = std::string(f.value());
        content_type = true;
        break;
      case bhttp::field::if_match:
        if (!api.if_match) api.if_match = std::string(f.value());
        break;
      default:
        if (beast::iequals(f.name_string(), "Idempotency-Key")) {
          if (!api.idempotency_key)
            api.idempotency_key = std::string(f.value());
        } else if (beast::iequals(f.name_string(), "Last-Event-ID")) {
          if (!api.last_event_id) api.last_event_id = std::string(f.value());
        }
        break;
    }
  }
  api.body = std::move(req.body());
  return api;
}

}  // namespace convstore::http
