// Byte-level encodings shared by the store: RFC 3339 timestamps, UTF-8
// validation, base64url, hex, SHA-256/HMAC-SHA256 and constant-time compare.
// All functions are pure and thread-safe; none read clocks or do I/O, so
// callers pass timestamps in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace convstore {

// RFC 3339 in UTC with millisecond precision and a 'Z' suffix, e.g.
// "2023-07-10T15:30:05.123Z". Defined for any unix_ms >= 0 (computed with a
// civil-from-days algorithm, so it does not depend on gmtime or the TZ).
std::string FormatRfc3339Millis(int64_t unix_ms);
// The same text in a fixed buffer, for loops that format many timestamps
// (an export) without an allocation each.
class Rfc3339Millis {
 public:
  explicit Rfc3339Millis(int64_t unix_ms);
  std::string_view view() const { return {text_, size_}; }

 private:
  char text_[32];
  size_t size_ = 0;
};

// Strict UTF-8 (RFC 3629): rejects overlong forms, surrogates
// (U+D800..U+DFFF), code points above U+10FFFF, stray continuation bytes and
// truncated sequences.
bool IsValidUtf8(std::string_view s);

// `s` with every byte that does not start a well-formed sequence replaced by
// U+FFFD, for echoing untrusted bytes (a request path) inside JSON text.
std::string ToValidUtf8(std::string_view s);

// Number of Unicode code points in `utf8`, which must be valid UTF-8 (for
// invalid input the result counts non-continuation bytes).
size_t CountCodePoints(std::string_view utf8);

// RFC 4648 §5 base64url without '=' padding.
std::string Base64UrlEncode(std::string_view bytes);

// Inverse of Base64UrlEncode. Accepts only the unpadded canonical form:
// returns nullopt for characters outside the alphabet (including '='), an
// impossible length (len % 4 == 1) or non-zero trailing bits.
std::optional<std::string> Base64UrlDecode(std::string_view text);

// Lowercase hexadecimal, two digits per byte.
std::string HexEncode(std::string_view bytes);

// SHA-256 and HMAC-SHA256 via OpenSSL; both return the raw 32-byte digest.
std::string Sha256(std::string_view data);
std::string HmacSha256(std::string_view key, std::string_view data);

// Equality whose running time depends only on the sizes, not the contents
// (for comparing secrets/MACs). False if the sizes differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace convstore
