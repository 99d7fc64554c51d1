// Spec for core/encoding.h: timestamp formatting, UTF-8 rules, base64url,
// hex and the OpenSSL-backed digests, checked against published vectors.
#include "core/encoding.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace convstore {
namespace {

TEST(FormatRfc3339MillisTest, EpochIsMidnightJanuaryFirst1970) {
  EXPECT_EQ(FormatRfc3339Millis(0), "1970-01-01T00:00:00.000Z");
}

TEST(FormatRfc3339MillisTest, FormatsMillisecondsInUtc) {
  EXPECT_EQ(FormatRfc3339Millis(1689003005123), "2023-07-10T15:30:05.123Z");
}

TEST(FormatRfc3339MillisTest, HandlesLeapDays) {
  EXPECT_EQ(FormatRfc3339Millis(1709164800000), "2024-02-29T00:00:00.000Z");
  // 2000 is a leap year despite being a century (divisible by 400).
  EXPECT_EQ(FormatRfc3339Millis(951782400000), "2000-02-29T00:00:00.000Z");
  // The millisecond before the leap day still belongs to February 28th.
  EXPECT_EQ(FormatRfc3339Millis(1709164799999), "2024-02-28T23:59:59.999Z");
  EXPECT_EQ(FormatRfc3339Millis(1709164800000 + 86400000),
            "2024-03-01T00:00:00.000Z");
}

TEST(FormatRfc3339MillisTest, PadsSmallFields) {
  EXPECT_EQ(FormatRfc3339Millis(1), "1970-01-01T00:00:00.001Z");
  EXPECT_EQ(FormatRfc3339Millis(946684799999), "1999-12-31T23:59:59.999Z");
}

TEST(ToValidUtf8Test, KeepsValidTextAndReplacesEachBadByte) {
  EXPECT_EQ("Z\xC3\xBCrich \xF0\x9F\x91\x8B",
            ToValidUtf8("Z\xC3\xBCrich \xF0\x9F\x91\x8B"));
  EXPECT_EQ("/v1/\xEF\xBF\xBDmin", ToValidUtf8("/v1/\xADmin"));
  // A truncated sequence: each of its bytes is replaced.
  EXPECT_EQ("a\xEF\xBF\xBD\xEF\xBF\xBD", ToValidUtf8("a\xE2\x82"));
  EXPECT_TRUE(IsValidUtf8(ToValidUtf8("\xED\xA0\x80\xC0\xAF")));
}

TEST(FormatRfc3339MillisTest, BeforeTheEpochCountsBackwards) {
  EXPECT_EQ(FormatRfc3339Millis(-1), "1969-12-31T23:59:59.999Z");
}

// A damaged event may carry any int64; export must still render it.
TEST(FormatRfc3339MillisTest, TheEndsOfInt64StillFormat) {
  EXPECT_EQ(FormatRfc3339Millis(INT64_MAX), "292278994-08-17T07:12:55.807Z");
  EXPECT_EQ(FormatRfc3339Millis(INT64_MIN), "-292275055-05-16T16:47:04.192Z");
}

TEST(IsValidUtf8Test, AcceptsWellFormedText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("hello"));
  EXPECT_TRUE(IsValidUtf8("caf\xC3\xA9"));           // é, 2 bytes
  EXPECT_TRUE(IsValidUtf8("\xE2\x82\xAC"));          // €, 3 bytes
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80"));      // 😀, 4 bytes
  EXPECT_TRUE(IsValidUtf8("\xEF\xBF\xBF"));          // U+FFFF
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));      // U+10FFFF, the max
  EXPECT_TRUE(IsValidUtf8(std::string("a\0b", 3)));  // NUL is valid UTF-8
}

TEST(IsValidUtf8Test, FindsABadByteAnywhereInLongText) {
  // Long ASCII runs are checked several bytes at a time: a bad byte, a good
  // sequence or a cut one at any offset must still be seen.
  for (size_t at = 0; at < 40; ++at) {
    std::string text(48, 'a');
    text[at] = '\xC0';
    EXPECT_FALSE(IsValidUtf8(text)) << "bad byte at " << at;
    text[at] = '\xFF';
    EXPECT_FALSE(IsValidUtf8(text)) << "0xFF at " << at;
    text = std::string(48, 'a');
    text.insert(at, "\xF0\x9F\x98\x80");
    EXPECT_TRUE(IsValidUtf8(text)) << "emoji at " << at;
    text = std::string(at, 'a') + "\xE2\x82";  // a euro sign cut short
    EXPECT_FALSE(IsValidUtf8(text)) << "cut sequence after " << at;
  }
}

TEST(IsValidUtf8Test, RejectsOverlongEncodings) {
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));  // '/' in 2 bytes
  EXPECT_FALSE(IsValidUtf8("\xC1\xBF"));
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));      // '/' in 3 bytes
  EXPECT_FALSE(IsValidUtf8("\xF0\x80\x80\xAF"));  // '/' in 4 bytes
}

TEST(IsValidUtf8Test, RejectsSurrogates) {
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));  // U+D800
  EXPECT_FALSE(IsValidUtf8("\xED\xBF\xBF"));  // U+DFFF
  EXPECT_TRUE(IsValidUtf8("\xED\x9F\xBF"));   // U+D7FF, just below
}

TEST(IsValidUtf8Test, RejectsCodePointsAboveUnicodeRange) {
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(IsValidUtf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xFF"));
}

TEST(IsValidUtf8Test, RejectsTruncatedAndStraySequences) {
  EXPECT_FALSE(IsValidUtf8("\xC3"));  // missing continuation
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));
  EXPECT_FALSE(IsValidUtf8("\xF0\x9F\x98"));
  EXPECT_FALSE(IsValidUtf8("ok\xF0\x9F\x98"));  // truncated at the end
  EXPECT_FALSE(IsValidUtf8("\xE2\x28\xA1"));    // bad continuation byte
  EXPECT_FALSE(IsValidUtf8("\x80"));            // lone continuation byte
  EXPECT_FALSE(
      IsValidUtf8("a\xBF"
                  "b"));
}

TEST(CountCodePointsTest, CountsCodePointsNotBytes) {
  EXPECT_EQ(CountCodePoints(""), 0u);
  EXPECT_EQ(CountCodePoints("abc"), 3u);
  EXPECT_EQ(CountCodePoints("caf\xC3\xA9"), 4u);
  EXPECT_EQ(CountCodePoints("\xE2\x82\xAC"
                            "1"),
            2u);
  EXPECT_EQ(CountCodePoints("\xF0\x9F\x98\x80\xF0\x9F\x98\x80"), 2u);
}

TEST(Base64UrlTest, EncodesRfc4648VectorsWithoutPadding) {
  EXPECT_EQ(Base64UrlEncode(""), "");
  EXPECT_EQ(Base64UrlEncode("f"), "Zg");
  EXPECT_EQ(Base64UrlEncode("fo"), "Zm8");
  EXPECT_EQ(Base64UrlEncode("foo"), "Zm9v");
  EXPECT_EQ(Base64UrlEncode("foob"), "Zm9vYg");
  EXPECT_EQ(Base64UrlEncode("fooba"), "Zm9vYmE");
  EXPECT_EQ(Base64UrlEncode("foobar"), "Zm9vYmFy");
}

TEST(Base64UrlTest, UsesUrlSafeAlphabet) {
  // Standard base64 would give "+/8=", "----" would be "++++", "____" "////".
  EXPECT_EQ(Base64UrlEncode("\xFB\xFF"), "-_8");
  EXPECT_EQ(Base64UrlEncode("\xFB\xEF\xBE"), "----");
  EXPECT_EQ(Base64UrlEncode("\xFF\xFF\xFF"), "____");
}

TEST(Base64UrlTest, RoundTripsAllByteValuesAndLengths) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t len = 0; len <= all.size(); ++len) {
    const std::string bytes = all.substr(all.size() - len);
    const std::string text = Base64UrlEncode(bytes);
    EXPECT_EQ(text.find_first_of("+/="), std::string::npos);
    const auto decoded = Base64UrlDecode(text);
    ASSERT_TRUE(decoded.has_value()) << text;
    EXPECT_EQ(*decoded, bytes);
  }
  EXPECT_EQ(Base64UrlDecode("-_8"), std::string("\xFB\xFF"));
}

TEST(Base64UrlTest, DecodeRejectsMalformedInput) {
  EXPECT_FALSE(Base64UrlDecode("Zm9v+g").has_value());  // standard alphabet
  EXPECT_FALSE(Base64UrlDecode("Zm9v/g").has_value());
  EXPECT_FALSE(Base64UrlDecode("Zg==").has_value());   // padding
  EXPECT_FALSE(Base64UrlDecode("Zm9vY").has_value());  // len % 4 == 1
  EXPECT_FALSE(Base64UrlDecode("Zm 9v").has_value());  // whitespace
  EXPECT_FALSE(Base64UrlDecode("Zh").has_value());     // non-zero tail bits
  EXPECT_EQ(Base64UrlDecode(""), std::string());
}

TEST(HexEncodeTest, IsLowercaseTwoDigitsPerByte) {
  EXPECT_EQ(HexEncode(""), "");
  EXPECT_EQ(HexEncode(std::string("\x00\x0F\xAB\xFF", 4)), "000fabff");
}

TEST(Sha256Test, MatchesFips180Vector) {
  const std::string digest = Sha256("abc");
  EXPECT_EQ(digest.size(), 32u);
  EXPECT_EQ(HexEncode(digest),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexEncode(Sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(HmacSha256Test, MatchesRfc4231TestCase2) {
  const std::string mac = HmacSha256("Jefe", "what do ya want for nothing?");
  EXPECT_EQ(mac.size(), 32u);
  EXPECT_EQ(HexEncode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(HmacSha256Test, AcceptsEmptyKeyAndData) {
  EXPECT_EQ(HexEncode(HmacSha256("", "")),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(ConstantTimeEqualsTest, ComparesContentsAndSizes) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secret2"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
}

}  // namespace
}  // namespace convstore
