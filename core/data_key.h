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

// The subject whose data key seals a stream's event payloads:
// "c<conversation id>" for a conversation's two streams, "a<agent id>" for an
// agent's, empty for a stream with no subject (its payloads stay clear).
std::string DataKeySubjectOf(std::string_view stream);

}  // namespace convstore
