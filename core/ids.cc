#include "core/ids.h"

#include <algorithm>

namespace convstore {
namespace {

constexpr size_t kUuidLength = 36;
constexpr int64_t kMaxUuidV7Millis = (int64_t{1} << 48) - 1;

bool IsDashPosition(size_t i) {
  return i == 8 || i == 13 || i == 18 || i == 23;
}

bool IsLowerHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int HexValue(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

}  // namespace

std::string MakeUuidV7(int64_t unix_ms, const std::array<uint8_t, 10>& random) {
  // Clamping (rather than wrapping) keeps ids ordered by time even for
  // out-of-contract inputs.
  const auto ms =
      static_cast<uint64_t>(std::clamp<int64_t>(unix_ms, 0, kMaxUuidV7Millis));
  std::array<uint8_t, 16> b{};
  for (int i = 0; i < 6; ++i) {
    b[i] = static_cast<uint8_t>(ms >> (8 * (5 - i)));
  }
  b[6] = static_cast<uint8_t>(0x70 | (random[0] & 0x0F));  // ver | rand_a hi
  b[7] = random[1];                                        // rand_a lo
  b[8] = static_cast<uint8_t>(0x80 | (random[2] & 0x3F));  // var | rand_b hi
  std::copy(random.begin() + 3, random.end(), b.begin() + 9);

  static constexpr char kDigits[] = "0123456789abcdef";
  // Written in place: two ids per append, and push_back's checks were
  // most of their cost.
  std::string out(kUuidLength, '-');
  size_t at = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) ++at;  // over a '-'
    out[at++] = kDigits[b[i] >> 4];
    out[at++] = kDigits[b[i] & 0x0F];
  }
  return out;
}

bool IsCanonicalUuid(std::string_view s) {
  if (s.size() != kUuidLength) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (IsDashPosition(i) ? s[i] != '-' : !IsLowerHex(s[i])) return false;
  }
  return true;
}

bool IsConversationId(std::string_view s) {
  return s.starts_with(kConversationIdPrefix) &&
         IsCanonicalUuid(s.substr(kConversationIdPrefix.size()));
}

bool IsMessageId(std::string_view s) {
  return s.starts_with(kMessageIdPrefix) &&
         IsCanonicalUuid(s.substr(kMessageIdPrefix.size()));
}

bool IsAgentId(std::string_view s) { return IsCanonicalUuid(s); }

std::optional<int64_t> UuidV7Millis(std::string_view id) {
  if (id.starts_with(kConversationIdPrefix)) {
    id.remove_prefix(kConversationIdPrefix.size());
  } else if (id.starts_with(kMessageIdPrefix)) {
    id.remove_prefix(kMessageIdPrefix.size());
  }
  // Version nibble is the first digit of the third group.
  if (!IsCanonicalUuid(id) || id[14] != '7') return std::nullopt;
  // The 48-bit timestamp is the first 12 hex digits: "xxxxxxxx-xxxx".
  int64_t ms = 0;
  for (size_t i = 0; i < 13; ++i) {
    if (i == 8) continue;
    ms = (ms << 4) | HexValue(id[i]);
  }
  return ms;
}

}  // namespace convstore
