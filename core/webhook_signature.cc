#include "core/webhook_signature.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <vector>

#include "core/encoding.h"

namespace convstore {
namespace {

std::string SignedPayload(int64_t unix_seconds, std::string_view body) {
  std::string payload = std::to_string(unix_seconds);
  payload.push_back('.');
  payload.append(body);
  return payload;
}

std::string ExpectedV1(std::string_view secret, int64_t unix_seconds,
                       std::string_view body) {
  return HexEncode(HmacSha256(secret, SignedPayload(unix_seconds, body)));
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// Digits only (no sign, no spaces), fits in int64.
std::optional<int64_t> ParseUnixSeconds(std::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || s.front() == '-') {
    return std::nullopt;
  }
  return value;
}

// cap(n) = min(base * 2^(n-1), max), in milliseconds.
int64_t RetryCapMs(int attempt) {
  const int n = std::max(attempt, 1);
  const int64_t base = kWebhookRetryBaseDelay.count();
  const int64_t max = kWebhookRetryMaxDelay.count();
  // 2^22 s is far past the 1 h cap; stop doubling before it could overflow.
  if (n - 1 >= 22) return max;
  return std::min(base << (n - 1), max);
}

}  // namespace

std::string WebhookSignatureHeader(std::string_view secret,
                                   int64_t unix_seconds,
                                   std::string_view body) {
  return "t=" + std::to_string(unix_seconds) +
         ",v1=" + ExpectedV1(secret, unix_seconds, body);
}

bool VerifyWebhookSignature(std::string_view header, std::string_view secret,
                            std::string_view body, int64_t now_unix,
                            int64_t tolerance_s) {
  if (now_unix < 0 || tolerance_s < 0) return false;
  std::optional<int64_t> timestamp;
  bool duplicate_timestamp = false;
  std::vector<std::string_view> signatures;
  while (!header.empty()) {
    const size_t comma = header.find(',');
    const std::string_view item = Trim(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view()
                                             : header.substr(comma + 1);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view key = item.substr(0, eq);
    const std::string_view value = item.substr(eq + 1);
    if (key == "t") {
      if (timestamp.has_value()) duplicate_timestamp = true;
      timestamp = ParseUnixSeconds(value);
      if (!timestamp.has_value()) return false;
    } else if (key == "v1") {
      signatures.push_back(value);
    }
  }
  if (!timestamp.has_value() || duplicate_timestamp || signatures.empty()) {
    return false;
  }
  // Both are non-negative, so the difference cannot overflow.
  const int64_t age =
      *timestamp > now_unix ? *timestamp - now_unix : now_unix - *timestamp;
  if (age > tolerance_s) return false;
  const std::string expected = ExpectedV1(secret, *timestamp, body);
  bool match = false;
  for (std::string_view candidate : signatures) {
    // No early exit: every entry costs the same whether or not one matched.
    match |= ConstantTimeEquals(expected, candidate);
  }
  return match;
}

std::chrono::milliseconds WebhookRetryDelay(int attempt, uint64_t random_bits) {
  const int64_t cap = RetryCapMs(attempt);
  const int64_t low = cap / 2;
  const auto span = static_cast<uint64_t>(cap - low) + 1;  // [low, cap]
  return std::chrono::milliseconds(low +
                                   static_cast<int64_t>(random_bits % span));
}

int WebhookMaxAttempts() {
  const int64_t window_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(kWebhookRetryWindow)
          .count();
  int64_t total_ms = 0;
  int waits = 0;
  while (total_ms < window_ms) {
    ++waits;
    total_ms += RetryCapMs(waits) / 2;
  }
  return waits + 1;  // one more attempt than waits
}

}  // namespace convstore
