// FlatBuffers encoding of event envelopes (schema: eventlog/schema/events.fbs).
// DecodeEvent verifies the buffer first, so arbitrary bytes give a Corruption
// status, never a crash. Pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/model.h"
#include "core/status.h"

namespace convstore {

std::string EncodeEvent(const RecordedEvent& event);
Result<RecordedEvent> DecodeEvent(std::string_view bytes);

// Decodes many events, one after another, into one RecordedEvent, reusing
// its strings and its own aligned copy buffer: no allocation per event once
// warm (for scans of the log). Same values and errors as DecodeEvent.
// Not thread-safe.
class EventDecoder {
 public:
  // On error `event` holds unspecified (but valid) values.
  Status Decode(std::string_view bytes, RecordedEvent& event);

 private:
  std::vector<uint64_t> aligned_;
};

}  // namespace convstore
