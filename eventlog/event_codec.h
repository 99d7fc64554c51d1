// FlatBuffers encoding of event envelopes (schema: eventlog/schema/events.fbs).
// DecodeEvent verifies the buffer first, so arbitrary bytes give a Corruption
// status, never a crash. Pure functions; safe from any thread.
#pragma once

#include <string>
#include <string_view>

#include "core/model.h"
#include "core/status.h"

namespace convstore {

std::string EncodeEvent(const RecordedEvent& event);
Result<RecordedEvent> DecodeEvent(std::string_view bytes);

}  // namespace convstore
