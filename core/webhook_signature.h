// Webhook signing and retry schedule: the Stripe-style signature header a
// delivery carries, its verification as a receiver performs it, and the
// backoff between delivery attempts. Pure functions (callers pass the time and
// the random bits; no clocks, RNG or I/O), so all are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace convstore {

// The value of the signature header sent with each delivery:
//   "t=<unix_seconds>,v1=<hex>"
// where <hex> is the lower-case hex HMAC-SHA256, keyed with `secret`, of the
// bytes "<unix_seconds>.<body>" (the decimal timestamp, a '.', then the body
// exactly as sent). This is Stripe's scheme, so receivers can reuse Stripe
// verification code. Example: secret "k", t = 1700000000, empty body gives
//   t=1700000000,v1=5c2999a43333a6877f49c8003f235c4f6de40f85b1b7414b70bd470a8db53d97
std::string WebhookSignatureHeader(std::string_view secret,
                                   int64_t unix_seconds, std::string_view body);

// What a receiver does with a delivery: true iff `header` has exactly one
// "t=<decimal>" entry with |now_unix - t| <= tolerance_s and at least one
// "v1=<hex>" entry equal to the HMAC computed from `secret`, t and `body`.
// Entries are comma-separated "key=value" pairs in any order; several v1
// entries are accepted (a sender signs with every active secret while one is
// being rotated); other keys (e.g. "v0") are ignored. Each v1 value is
// compared in constant time. A receiver should use a tolerance of about 5
// minutes and reject replays of a timestamp/signature pair it has seen.
bool VerifyWebhookSignature(std::string_view header, std::string_view secret,
                            std::string_view body, int64_t now_unix,
                            int64_t tolerance_s);

// Retry schedule. After the n-th failed attempt (n = 1, 2, ...) the sender
// waits WebhookRetryDelay(n, bits) before attempt n + 1, where
//   cap(n) = min(1 s * 2^(n-1), 1 h)
//   delay  = uniform in [cap(n)/2, cap(n)], chosen by `random_bits`
// so cap(n) runs 1 s, 2 s, 4 s, ..., 2048 s (n = 12), then 1 h from n = 13.
// The jitter spans half of each step rather than all of it ("equal jitter"
// instead of full jitter) so that every wait has a floor and the schedule
// provably covers the retry window: with WebhookMaxAttempts() = 60 attempts
// (59 waits) the minimum total wait is 2047.5 s + 47 * 1800 s = 24 h 247.5 s,
// the expected total about 36 h and the maximum about 48 h. A delivery is
// given up after WebhookMaxAttempts() attempts. Attempts < 1 count as 1.
// Deterministic: the same (attempt, random_bits) always gives the same delay;
// random_bits = 0 gives the minimum, cap(n)/2.
inline constexpr std::chrono::hours kWebhookRetryWindow{24};
inline constexpr std::chrono::milliseconds kWebhookRetryBaseDelay{1000};
inline constexpr std::chrono::milliseconds kWebhookRetryMaxDelay{3600 * 1000};

std::chrono::milliseconds WebhookRetryDelay(int attempt, uint64_t random_bits);

// The smallest number of attempts whose waits, each at its minimum
// (cap(n)/2), add up to at least kWebhookRetryWindow. Currently 60.
int WebhookMaxAttempts();

}  // namespace convstore
