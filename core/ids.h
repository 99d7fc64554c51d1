// Identifiers: RFC 9562 UUIDv7 generation from caller-supplied time and
// entropy, and recognisers for the id forms used by the API ("conv-<uuid>",
// "msg-<uuid>", bare "<uuid>" for agents). Pure functions, thread-safe; the
// caller owns the clock and the random source.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace convstore {

inline constexpr std::string_view kConversationIdPrefix = "conv-";
inline constexpr std::string_view kMessageIdPrefix = "msg-";

// Canonical lowercase UUIDv7 string: 48-bit big-endian unix_ms, version 7,
// variant 0b10, and the remaining 74 bits (12 of rand_a, 62 of rand_b) taken
// from `random` (the high nibble of random[0] and the top two bits of
// random[2] are dropped). Requires 0 <= unix_ms < 2^48 (values outside are
// clamped), and then strings of increasing unix_ms sort in increasing order.
std::string MakeUuidV7(int64_t unix_ms, const std::array<uint8_t, 10>& random);

// True for a canonical lowercase 8-4-4-4-12 hex UUID of any version.
bool IsCanonicalUuid(std::string_view s);

// Conversation ids are "conv-<uuid>", message ids "msg-<uuid>", agent ids a
// bare "<uuid>"; each <uuid> must be canonical.
bool IsConversationId(std::string_view s);
bool IsMessageId(std::string_view s);
bool IsAgentId(std::string_view s);

// Unix ms embedded in a UUIDv7 (its first 48 bits); accepts bare,
// "conv-"- and "msg-"-prefixed ids. nullopt if the rest is not a canonical
// UUID with version 7.
std::optional<int64_t> UuidV7Millis(std::string_view id);

}  // namespace convstore
