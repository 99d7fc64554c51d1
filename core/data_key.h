// Data keys: every conversation and every agent has its own AES-256 key, and
// the payloads of its events are stored sealed with it (AES-256-GCM). Erasing
// the subject destroys the key, which makes those payloads unreadable while
// their envelopes (position, stream, type) stay in the log: crypto-shredding.
// Pure functions of their inputs (the caller supplies keys and nonces);
// thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace convstore {

inline constexpr size_t kDataKeyBytes = 32;
inline constexpr size_t kDataNonceBytes = 12;
inline constexpr size_t kDataTagBytes = 16;
using DataKey = std::array<uint8_t, kDataKeyBytes>;
using DataNonce = std::array<uint8_t, kDataNonceBytes>;

// nonce | ciphertext | 16-byte tag. `aad` is authenticated, not stored: the
// same aad must be given to open it (it binds the bytes to their place).
// A nonce must never repeat under one key. Internal only when OpenSSL
// cannot allocate (never a half-sealed payload).
Result<std::string> SealWithDataKey(const DataKey& key, const DataNonce& nonce,
                                    std::string_view aad,
                                    std::string_view plaintext);
// The plaintext; Corruption when `sealed` was not sealed with this key and
// aad, or was changed since.
Result<std::string> OpenWithDataKey(const DataKey& key, std::string_view aad,
                                    std::string_view sealed);

// Opens payloads sealed with many data keys, one after another, as
// OpenWithDataKey does, keeping the keyed cipher of the last keys it used:
// opening the next payload of the same subject then skips OpenSSL's key
// set-up, about a quarter of an open. For scans of the log (rebuild,
// export); it holds key material until destroyed, so keep one only as long
// as the scan. Not thread-safe.
class DataKeyOpener {
 public:
  DataKeyOpener();
  ~DataKeyOpener();
  DataKeyOpener(const DataKeyOpener&) = delete;
  DataKeyOpener& operator=(const DataKeyOpener&) = delete;

  // The plaintext into `plain` (its storage reused); Corruption as
  // OpenWithDataKey, and then `plain` holds unspecified bytes.
  Status Open(const DataKey& key, std::string_view aad, std::string_view sealed,
              std::string& plain);

 private:
  struct Slot;  // a key and a cipher context keyed with it
  // Keys are random, so a key's first byte picks its slot: a scan of
  // interleaved conversations keeps up to this many keyed (~1 KiB each).
  static constexpr size_t kSlots = 64;
  std::unique_ptr<Slot[]> slots_;  // allocated by the first Open
};

// The subject whose data key seals a stream's event payloads:
// "c<conversation id>" for a conversation's two streams, "a<agent id>" for an
// agent's, empty for a stream with no subject (its payloads stay clear).
std::string DataKeySubjectOf(std::string_view stream);

}  // namespace convstore
