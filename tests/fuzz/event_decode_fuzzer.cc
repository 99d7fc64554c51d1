// libFuzzer target: event decoding from arbitrary bytes (what a damaged or
// hostile log file could hold). Decoding never crashes; whatever decodes
// re-encodes to bytes that decode to the same event, and renders as the
// export's JSON and CSV without crashing.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "eventlog/event_codec.h"
#include "eventlog/event_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace convstore;
  // RocksDB hands values out at any address: decode at an odd one too.
  std::string shifted(size + 1, '\0');
  if (size > 0) std::memcpy(shifted.data() + 1, data, size);
  auto event = DecodeEvent(std::string_view(shifted).substr(1));
  auto direct =
      DecodeEvent(std::string_view(reinterpret_cast<const char*>(data), size));
  if (event.ok() != direct.ok()) std::abort();  // alignment changed the answer
  if (!event.ok()) return 0;
  const std::string encoded = EncodeEvent(*event);
  auto again = DecodeEvent(encoded);
  if (!again.ok()) std::abort();  // our own encoding must decode
  if (EncodeEvent(*again) != encoded) std::abort();  // and round-trip
  (void)EventJson(*event);
  (void)EventToCsvRow(*event);
  return 0;
}
