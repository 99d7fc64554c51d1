// The JSON form of an event envelope, shared by `convstore events export`
// and GET /v1/admin/events: {position, stream, revision, event_id, type,
// recorded_at, actor, idempotency_key, payload}. Byte-stable; pure.
#pragma once

#include <boost/json/object.hpp>
#include <string>

#include "core/model.h"

namespace convstore {

boost::json::object EventPayloadToJson(const EventPayload& payload);
boost::json::object EventToJson(const RecordedEvent& event);

// CSV header and one row (RFC 4180 quoting; payload as a JSON string).
std::string EventCsvHeader();
std::string EventToCsvRow(const RecordedEvent& event);

}  // namespace convstore
