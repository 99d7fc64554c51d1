#include "http/stored_record.h"

#include <boost/json.hpp>

namespace convstore::http {

namespace json = boost::json;

Result<json::object> ParseStoredRecord(std::string_view bytes,
                                       std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(bytes, ec);
  if (ec || !v.is_object()) return Status::Corruption(std::string(what));
  return std::move(v.as_object());
}

std::string StringField(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::optional<int64_t> IntField(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v && v->is_int64()) return v->as_int64();
  if (v && v->is_uint64() && v->as_uint64() <= INT64_MAX) {
    return static_cast<int64_t>(v->as_uint64());
  }
  return std::nullopt;
}

}  // namespace convstore::http
