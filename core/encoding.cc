#include "core/encoding.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace convstore {
namespace {

constexpr int64_t kMillisPerDay = 86'400'000;

// Floor division: unlike '/', rounds toward negative infinity, so that
// pre-epoch inputs still land on the right day.
int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

struct CivilDate {
  int64_t year;
  unsigned month;  // 1..12
  unsigned day;    // 1..31
};

// Howard Hinnant's civil_from_days: proleptic Gregorian date of a day count
// relative to 1970-01-01. Exact for the whole int64 day range we can reach.
CivilDate CivilFromDays(int64_t z) {
  z += 719468;
  const int64_t era = FloorDiv(z, 146097);
  const auto doe = static_cast<unsigned>(z - era * 146097);  // [0, 146096]
  const unsigned yoe =
      (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);  // [0, 365]
  const unsigned mp = (5 * doy + 2) / 153;                       // [0, 11]
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;               // [1, 31]
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;                  // [1, 12]
  return {m <= 2 ? y + 1 : y, m, d};
}

constexpr char kBase64UrlAlphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Maps a byte to its 6-bit value, or -1 if it is not in the alphabet.
int Base64UrlValue(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// OpenSSL may treat a null pointer as "no data" differently from an empty
// buffer; string_view::data() can be null for empty views, so never pass it.
const unsigned char* Bytes(std::string_view s) {
  static const unsigned char kEmpty = 0;
  return s.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

Rfc3339Millis::Rfc3339Millis(int64_t unix_ms) {
  const int64_t days = FloorDiv(unix_ms, kMillisPerDay);
  // The remainder, not unix_ms - days * kMillisPerDay: that product
  // overflows for timestamps near the ends of int64 (a damaged event's).
  int64_t ms_of_day = unix_ms % kMillisPerDay;
  if (ms_of_day < 0) ms_of_day += kMillisPerDay;
  const CivilDate date = CivilFromDays(days);
  const auto ms = static_cast<unsigned>(ms_of_day);
  // As printf's "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ", without its cost
  // (it was a fifth of an export's time).
  char* p = text_;  // at most 30 bytes: "-292275055-05-16T16:47:04.192Z"
  auto put = [&p](uint64_t v, int width) {
    char digits[24];
    const int n = static_cast<int>(
        std::to_chars(digits, digits + sizeof(digits), v).ptr - digits);
    for (int i = n; i < width; ++i) *p++ = '0';
    p = std::copy(digits, digits + n, p);
  };
  if (date.year < 0) {
    *p++ = '-';
    put(static_cast<uint64_t>(-date.year), 3);
  } else {
    put(static_cast<uint64_t>(date.year), 4);
  }
  *p++ = '-';
  put(date.month, 2);
  *p++ = '-';
  put(date.day, 2);
  *p++ = 'T';
  put(ms / 3'600'000, 2);
  *p++ = ':';
  put(ms / 60'000 % 60, 2);
  *p++ = ':';
  put(ms / 1000 % 60, 2);
  *p++ = '.';
  put(ms % 1000, 3);
  *p++ = 'Z';
  size_ = static_cast<size_t>(p - text_);
}

std::string FormatRfc3339Millis(int64_t unix_ms) {
  return std::string(Rfc3339Millis(unix_ms).view());
}

namespace {

// The length of the well-formed UTF-8 sequence starting at s[i], or 0 when
// the bytes there are not one.
size_t Utf8SequenceAt(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  // The ranges allowed for the second byte (RFC 3629 §4) are what rule out
  // overlongs (E0, F0), surrogates (ED) and values above U+10FFFF (F4).
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 == 0xE0) {
    len = 3;
    lo = 0xA0;
  } else if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) {
    len = 3;
  } else if (b0 == 0xED) {
    len = 3;
    hi = 0x9F;
  } else if (b0 == 0xF0) {
    len = 4;
    lo = 0x90;
  } else if (b0 >= 0xF1 && b0 <= 0xF3) {
    len = 4;
  } else if (b0 == 0xF4) {
    len = 4;
    hi = 0x8F;
  } else {
    return 0;  // 0x80..0xC1 (continuation/overlong lead) or 0xF5..0xFF.
  }
  if (s.size() - i < len) return 0;
  const auto b1 = static_cast<unsigned char>(s[i + 1]);
  if (b1 < lo || b1 > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
  }
  return len;
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    // Most text is ASCII: eight such bytes pass at once (every append's
    // content is checked here; byte by byte it cost 8 instructions a byte).
    if (s.size() - i >= 8) {
      uint64_t word;
      std::memcpy(&word, s.data() + i, 8);
      if ((word & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    const size_t len = Utf8SequenceAt(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string ToValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t len = Utf8SequenceAt(s, i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

size_t CountCodePoints(std::string_view utf8) {
  size_t count = 0;
  for (char c : utf8) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
  }
  return count;
}

std::string Base64UrlEncode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) |
                       (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    out.push_back(kBase64UrlAlphabet[(v >> 18) & 0x3F]);
    out.push_back(kBase64UrlAlphabet[(v >> 12) & 0x3F]);
    out.push_back(kBase64UrlAlphabet[(v >> 6) & 0x3F]);
    out.push_back(kBase64UrlAlphabet[v & 0x3F]);
  }
  const size_t rest = bytes.size() - i;
  if (rest == 1) {
    const uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
    out.push_back(kBase64UrlAlphabet[(v >> 18) & 0x3F]);
    out.push_back(kBase64UrlAlphabet[(v >> 12) & 0x3F]);
  } else if (rest == 2) {
    const uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) |
                       (static_cast<unsigned char>(bytes[i + 1]) << 8);
    out.push_back(kBase64UrlAlphabet[(v >> 18) & 0x3F]);
    out.push_back(kBase64UrlAlphabet[(v >> 12) & 0x3F]);
    out.push_back(kBase64UrlAlphabet[(v >> 6) & 0x3F]);
  }
  return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  // A single leftover character carries only 6 bits: never a whole byte.
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = Base64UrlValue(static_cast<unsigned char>(c));
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // Leftover bits must be zero so each byte string has exactly one encoding;
  // otherwise e.g. signatures could be altered without changing their value.
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0x0F]);
  }
  return out;
}

namespace {

// SHA-256, looked up once: naming it by EVP_sha256() makes OpenSSL 3 look
// it up in its provider store on every call (a request's API key is hashed
// on each request).
const EVP_MD* Sha256Digest() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

}  // namespace

std::string Sha256(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int md_len = 0;
  if (EVP_Digest(Bytes(data), data.size(), md.data(), &md_len, Sha256Digest(),
                 nullptr) != 1) {
    // Only fails on allocation failure or a broken OpenSSL install; there is
    // no sensible digest to return, so treat it like bad_alloc.
    throw std::runtime_error("EVP_Digest(SHA-256) failed");
  }
  return std::string(reinterpret_cast<const char*>(md.data()), md_len);
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int md_len = 0;
  if (HMAC(Sha256Digest(), Bytes(key), static_cast<int>(key.size()),
           Bytes(data), data.size(), md.data(), &md_len) == nullptr) {
    throw std::runtime_error("HMAC(SHA-256) failed");
  }
  return std::string(reinterpret_cast<const char*>(md.data()), md_len);
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Sizes are not secret (a MAC's length is public), so an early exit on a
  // size mismatch leaks nothing useful.
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(Bytes(a), Bytes(b), a.size()) == 0;
}

}  // namespace convstore
