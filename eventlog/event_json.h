// The JSON form of an event envelope, shared by `convstore events export`
// and GET /v1/admin/events: {position, stream, revision, event_id, type,
// recorded_at, actor, idempotency_key, payload}, or for an erased event
// (its subject's data key destroyed) {..., actor: null, idempotency_key:
// null, erased: true} with no payload. Byte-stable; pure.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/serializer.hpp>
#include <cstddef>
#include <string>
#include <string_view>

#include "core/model.h"

namespace convstore {

boost::json::object EventPayloadToJson(const EventPayload& payload);
boost::json::object EventToJson(const RecordedEvent& event);

// CSV header and one row (RFC 4180 quoting; payload as a JSON string, empty
// for an erased event).
std::string EventCsvHeader();
std::string EventToCsvRow(const RecordedEvent& event);

// Renders events, one after another, into one text buffer: JSON lines (each
// serialize(EventToJson(e)) + "\n") or CSV rows (each EventToCsvRow(e)),
// byte for byte. For bulk exports: each event's JSON is written into the
// object the previous one left (the same code as EventToJson, keeping keys
// and string storage) and serialized by one reused serializer, so there is
// no allocation per event once the buffers have grown. Not thread-safe.
class EventTextWriter {
 public:
  EventTextWriter() = default;
  EventTextWriter(const EventTextWriter&) = delete;
  EventTextWriter& operator=(const EventTextWriter&) = delete;

  void AppendJsonLine(const RecordedEvent& event);
  void AppendCsvRow(const RecordedEvent& event);

  // What was appended since the last Clear.
  std::string_view text() const { return {text_.bytes.data(), text_.size}; }
  void Clear() { text_.size = 0; }

 private:
  // A growable text: bytes[0, size) is the text, the rest is room.
  struct Text {
    std::string bytes;
    size_t size = 0;
    char* Room(size_t n);  // at least n bytes of room at bytes[size]
    void Append(std::string_view s);
    void Append(char c);
  };

  // Appends serialize(object) to `out`.
  void Serialize(const boost::json::object& object, Text& out);

  boost::json::object event_;    // JSON lines: the last event's JSON
  boost::json::object payload_;  // CSV: the last event's payload JSON
  boost::json::serializer serializer_;
  Text text_;
  Text payload_text_;  // CSV: payload_ serialized, before quoting
};

}  // namespace convstore
