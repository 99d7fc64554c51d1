// The JSON form of an event envelope, shared by `convstore events export`
// and GET /v1/admin/events: {position, stream, revision, event_id, type,
// recorded_at, actor, idempotency_key, payload}, or for an erased event
// (its subject's data key destroyed) {..., actor: null, idempotency_key:
// null, erased: true} with no payload. Byte-stable; pure.
#pragma once

#include <string>
#include <string_view>

#include "core/model.h"

namespace convstore {

// The event's JSON text, and its payload's (the "payload" member of it).
std::string EventJson(const RecordedEvent& event);
std::string EventPayloadJson(const EventPayload& payload);

// CSV header and one row (RFC 4180 quoting; payload as a JSON string, empty
// for an erased event).
std::string EventCsvHeader();
std::string EventToCsvRow(const RecordedEvent& event);

// Renders events, one after another, into one text buffer: JSON lines (each
// EventJson(e) + "\n") or CSV rows (each EventToCsvRow(e)), byte for byte.
// For bulk exports: its buffers are kept, so there is no allocation per
// event once they have grown. Not thread-safe.
class EventTextWriter {
 public:
  EventTextWriter() = default;
  EventTextWriter(const EventTextWriter&) = delete;
  EventTextWriter& operator=(const EventTextWriter&) = delete;

  void AppendJsonLine(const RecordedEvent& event);
  void AppendCsvRow(const RecordedEvent& event);

  // What was appended since the last Clear.
  std::string_view text() const { return text_; }
  void Clear() { text_.clear(); }

 private:
  std::string text_;
  std::string payload_text_;  // CSV: the payload's JSON, before quoting
};

}  // namespace convstore
