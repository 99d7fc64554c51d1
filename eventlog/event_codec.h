// FlatBuffers encoding of event envelopes (schema: eventlog/schema/events.fbs).
// DecodeEvent verifies the buffer first, so arbitrary bytes give a Corruption
// status, never a crash. Pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/data_key.h"
#include "core/model.h"
#include "core/status.h"

namespace convstore {

// The key and a fresh nonce a payload is sealed with (core/data_key.h).
struct PayloadSeal {
  DataKey key;
  DataNonce nonce;
};
// A subject's data key (DataKeySubjectOf), or nullopt once it was destroyed.
using DataKeyLookup =
    std::function<Result<std::optional<DataKey>>(std::string_view subject)>;

// The envelope with its payload in the clear.
std::string EncodeEvent(const RecordedEvent& event);
// The envelope with its payload sealed (its type stays readable). Internal
// only when sealing fails (OpenSSL cannot allocate).
Result<std::string> EncodeSealedEvent(const RecordedEvent& event,
                                      const PayloadSeal& seal);
// A sealed payload is opened with the key `keys` gives for its stream's
// subject. Without `keys`, or when the key is gone, the event decodes with
// erased = true and an empty payload of its type.
Result<RecordedEvent> DecodeEvent(std::string_view bytes,
                                  const DataKeyLookup* keys = nullptr);

// Decodes many events, one after another, into one RecordedEvent, reusing
// its strings, its own buffers and the keyed ciphers of recent data keys:
// no allocation per event once warm (for scans of the log; it holds key
// material while it lives). Same values and errors as DecodeEvent.
// Not thread-safe.
class EventDecoder {
 public:
  // On error `event` holds unspecified (but valid) values.
  Status Decode(std::string_view bytes, RecordedEvent& event,
                const DataKeyLookup* keys = nullptr);

 private:
  std::vector<uint64_t> aligned_;
  std::vector<uint64_t> opened_aligned_;  // for opened sealed payloads
  DataKeyOpener opener_;
  std::string plain_;  // the last opened payload
};

}  // namespace convstore
