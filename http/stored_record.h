// Reading the JSON records the stores beside the log keep (API keys,
// idempotent responses, webhooks): the object, and its fields with a
// default when absent or of another type, so that a field added later reads
// as its default in older records. Pure functions; thread-safe.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace convstore::http {

// The object `bytes` holds; Corruption naming `what` if it is not one.
Result<boost::json::object> ParseStoredRecord(std::string_view bytes,
                                              std::string_view what);

std::string StringField(const boost::json::object& o, std::string_view key);
// A number that fits in int64; nullopt when absent or not one.
std::optional<int64_t> IntField(const boost::json::object& o,
                                std::string_view key);

}  // namespace convstore::http
