#include "http/beast_request.h"

namespace convstore::http {

namespace bhttp = boost::beast::http;

ApiRequest ToApiRequest(bhttp::request<bhttp::string_body>&& req) {
  ApiRequest api;
  api.method = std::string(req.method_string());
  if (req.method() == bhttp::verb::head) api.method = "GET";
  api.target = std::string(req.target());
  api.authorization = std::string(req[bhttp::field::authorization]);
  api.content_type = std::string(req[bhttp::field::content_type]);
  if (auto it = req.find(bhttp::field::if_match); it != req.end()) {
    api.if_match = std::string(it->value());
  }
  if (auto it = req.find("Idempotency-Key"); it != req.end()) {
    api.idempotency_key = std::string(it->value());
  }
  if (auto it = req.find("Last-Event-ID"); it != req.end()) {
    api.last_event_id = std::string(it->value());
  }
  api.body = std::move(req.body());
  return api;
}

}  // namespace convstore::http
