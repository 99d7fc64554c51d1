// Spec for core/webhook_signature.h: the header matches Stripe's scheme byte
// for byte (expected HMACs computed with `openssl dgst -sha256 -hmac`), a
// receiver's verification accepts exactly the genuine, fresh deliveries, and
// the retry schedule grows, stays in bounds and covers the 24 h window.
#include "core/webhook_signature.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <limits>
#include <string>

namespace convstore {
namespace {

using std::chrono::milliseconds;

constexpr char kSecret[] = "whsec_test_secret";
constexpr char kBody[] = R"({"id":"evt_1","type":"conversation.completed"})";
constexpr int64_t kT = 1700000000;

// printf '%s' '1700000000.{"id":"evt_1","type":"conversation.completed"}' |
//   openssl dgst -sha256 -hmac 'whsec_test_secret'
constexpr char kExpectedV1[] =
    "435b9047c08a5971fd03463db2833cf7c0f53d62ab30f3cddaadb0277e6a86c7";

TEST(WebhookSignatureTest, FixedVector) {
  EXPECT_EQ(WebhookSignatureHeader(kSecret, kT, kBody),
            std::string("t=1700000000,v1=") + kExpectedV1);
}

TEST(WebhookSignatureTest, EmptyBody) {
  // printf '%s' '1700000000.' | openssl dgst -sha256 -hmac 'k'
  EXPECT_EQ(WebhookSignatureHeader("k", kT, ""),
            "t=1700000000,v1="
            "5c2999a43333a6877f49c8003f235c4f6de40f85b1b7414b70bd470a8db53d97");
}

TEST(WebhookSignatureTest, VerifyAcceptsOwnSignature) {
  const std::string header = WebhookSignatureHeader(kSecret, kT, kBody);
  EXPECT_TRUE(VerifyWebhookSignature(header, kSecret, kBody, kT, 300));
  EXPECT_TRUE(VerifyWebhookSignature(header, kSecret, kBody, kT + 300, 300));
  EXPECT_TRUE(VerifyWebhookSignature(header, kSecret, kBody, kT - 300, 300));
}

TEST(WebhookSignatureTest, VerifyRejectsWrongSecret) {
  const std::string header = WebhookSignatureHeader(kSecret, kT, kBody);
  EXPECT_FALSE(VerifyWebhookSignature(header, "whsec_other", kBody, kT, 300));
  EXPECT_FALSE(VerifyWebhookSignature(header, "", kBody, kT, 300));
}

TEST(WebhookSignatureTest, VerifyRejectsChangedBody) {
  const std::string header = WebhookSignatureHeader(kSecret, kT, kBody);
  std::string body = kBody;
  body.back() = ' ';
  EXPECT_FALSE(VerifyWebhookSignature(header, kSecret, body, kT, 300));
  EXPECT_FALSE(VerifyWebhookSignature(header, kSecret, "", kT, 300));
  EXPECT_FALSE(VerifyWebhookSignature(header, kSecret, std::string(kBody) + " ",
                                      kT, 300));
}

TEST(WebhookSignatureTest, VerifyRejectsStaleAndFutureTimestamps) {
  const std::string header = WebhookSignatureHeader(kSecret, kT, kBody);
  EXPECT_FALSE(VerifyWebhookSignature(header, kSecret, kBody, kT + 301, 300));
  EXPECT_FALSE(VerifyWebhookSignature(header, kSecret, kBody, kT + 86400, 300));
  EXPECT_FALSE(VerifyWebhookSignature(header, kSecret, kBody, kT - 301, 300));
}

TEST(WebhookSignatureTest, VerifyRejectsChangedTimestamp) {
  // The timestamp is signed: moving it forward invalidates the signature.
  const std::string header = "t=1700000001,v1=" + std::string(kExpectedV1);
  EXPECT_FALSE(VerifyWebhookSignature(header, kSecret, kBody, kT + 1, 300));
}

TEST(WebhookSignatureTest, VerifyAcceptsAnyOfSeveralV1Entries) {
  const std::string other = WebhookSignatureHeader("old_secret", kT, kBody);
  const std::string other_v1 = other.substr(other.find("v1=") + 3);
  const std::string header =
      "t=1700000000,v1=" + other_v1 + ",v0=ignored,v1=" + kExpectedV1;
  EXPECT_TRUE(VerifyWebhookSignature(header, kSecret, kBody, kT, 300));
  EXPECT_TRUE(VerifyWebhookSignature(header, "old_secret", kBody, kT, 300));
  EXPECT_FALSE(VerifyWebhookSignature(header, "third", kBody, kT, 300));
  // Order of entries and spaces after commas do not matter.
  EXPECT_TRUE(VerifyWebhookSignature(
      std::string("v1=") + kExpectedV1 + ", t=1700000000", kSecret, kBody, kT,
      300));
}

TEST(WebhookSignatureTest, VerifyRejectsMalformedHeaders) {
  const std::string v1 = std::string("v1=") + kExpectedV1;
  for (const std::string& header : {
           std::string(),
           v1,                                 // no timestamp
           std::string("t=1700000000"),        // no signature
           "t=1700000000,t=1700000000," + v1,  // two timestamps
           "t=-1700000000," + v1,              // signed timestamp
           "t=17000000x0," + v1,               // not a number
           "t=99999999999999999999999," + v1,  // overflow
           "t=," + v1,                         // empty timestamp
           "t=1700000000,v1=" + std::string(kExpectedV1).substr(1),
           "t=1700000000,V1=" + std::string(kExpectedV1),  // key is exact
       }) {
    EXPECT_FALSE(VerifyWebhookSignature(header, kSecret, kBody, kT, 300))
        << header;
  }
  // Upper-case hex is not what the sender produces: rejected.
  std::string upper = kExpectedV1;
  for (char& c : upper)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_FALSE(VerifyWebhookSignature("t=1700000000,v1=" + upper, kSecret,
                                      kBody, kT, 300));
}

// cap(n) as the header documents it, computed independently.
milliseconds Cap(int n) {
  int64_t ms = 1000;
  for (int i = 1; i < n && ms < 3600 * 1000; ++i) ms *= 2;
  return milliseconds(std::min<int64_t>(ms, 3600 * 1000));
}

TEST(WebhookRetryTest, FirstDelayIsAboutOneSecond) {
  EXPECT_EQ(WebhookRetryDelay(1, 0), milliseconds(500));
  EXPECT_LE(WebhookRetryDelay(1, ~uint64_t{0}), milliseconds(1000));
  EXPECT_EQ(WebhookRetryDelay(1, 500), milliseconds(1000));
  // Attempts below 1 are treated as the first.
  EXPECT_EQ(WebhookRetryDelay(0, 123), WebhookRetryDelay(1, 123));
  EXPECT_EQ(WebhookRetryDelay(-5, 123), WebhookRetryDelay(1, 123));
}

TEST(WebhookRetryTest, Deterministic) {
  for (int n = 1; n <= 70; ++n) {
    EXPECT_EQ(WebhookRetryDelay(n, 0x9e3779b97f4a7c15ull),
              WebhookRetryDelay(n, 0x9e3779b97f4a7c15ull));
  }
}

TEST(WebhookRetryTest, StaysWithinBoundsForEveryAttempt) {
  uint64_t x = 88172645463325252ull;  // xorshift64: a fixed spread of bits
  for (int n = 1; n <= WebhookMaxAttempts() + 10; ++n) {
    const milliseconds cap = Cap(n);
    EXPECT_EQ(WebhookRetryDelay(n, 0), cap / 2) << n;
    for (uint64_t bits : {uint64_t{0}, uint64_t{1}, ~uint64_t{0},
                          static_cast<uint64_t>(cap.count() / 2)}) {
      const milliseconds d = WebhookRetryDelay(n, bits);
      EXPECT_GE(d, cap / 2) << n << " " << bits;
      EXPECT_LE(d, cap) << n << " " << bits;
    }
    for (int i = 0; i < 200; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      const milliseconds d = WebhookRetryDelay(n, x);
      EXPECT_GE(d, cap / 2) << n;
      EXPECT_LE(d, cap) << n;
      EXPECT_LE(d, std::chrono::hours(1)) << n;
    }
  }
  // Far past the cap, and at the int limit, the wait is still at most 1 h.
  EXPECT_LE(WebhookRetryDelay(1000, ~uint64_t{0}), std::chrono::hours(1));
  EXPECT_LE(WebhookRetryDelay(std::numeric_limits<int>::max(), ~uint64_t{0}),
            std::chrono::hours(1));
  EXPECT_GE(WebhookRetryDelay(std::numeric_limits<int>::max(), 0),
            std::chrono::minutes(30));
}

TEST(WebhookRetryTest, GrowsUntilTheCap) {
  for (int n = 1; n < WebhookMaxAttempts(); ++n) {
    const milliseconds lo = WebhookRetryDelay(n, 0);
    const milliseconds next_lo = WebhookRetryDelay(n + 1, 0);
    // Doubles until the 1 h cap (whose minimum is 30 min), then stays.
    EXPECT_EQ(next_lo, std::min<milliseconds>(2 * lo, std::chrono::minutes(30)))
        << n;
    EXPECT_GE(next_lo, lo) << n;
  }
  EXPECT_EQ(WebhookRetryDelay(12, 0), milliseconds(1024 * 1000));
  EXPECT_EQ(WebhookRetryDelay(13, 0), std::chrono::minutes(30));
  EXPECT_EQ(WebhookRetryDelay(40, 0), std::chrono::minutes(30));
}

TEST(WebhookRetryTest, MinimumWaitsCoverTheRetryWindow) {
  const int attempts = WebhookMaxAttempts();
  EXPECT_EQ(attempts, 60);  // as documented in the header
  milliseconds total{0};
  for (int n = 1; n < attempts; ++n) total += WebhookRetryDelay(n, 0);
  EXPECT_GE(total, kWebhookRetryWindow);
  EXPECT_EQ(kWebhookRetryWindow, std::chrono::hours(24));
  // ... and it is the smallest such count: one wait fewer falls short.
  EXPECT_LT(total - WebhookRetryDelay(attempts - 1, 0), kWebhookRetryWindow);
  // The documented minimum total: 2047.5 s + 47 * 1800 s.
  EXPECT_EQ(total, milliseconds(2047500 + 47 * 1800 * 1000));
}

}  // namespace
}  // namespace convstore
