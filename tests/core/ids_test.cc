// Spec for core/ids.h: UUIDv7 layout (RFC 9562), time ordering, and the
// recognisers for conversation, message and agent ids.
#include "core/ids.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <string>
#include <vector>

namespace convstore {
namespace {

constexpr std::array<uint8_t, 10> kZeros{};
constexpr std::array<uint8_t, 10> kOnes{0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                        0xFF, 0xFF, 0xFF, 0xFF, 0xFF};

TEST(MakeUuidV7Test, IsCanonicalWithVersionAndVariant) {
  const std::array<uint8_t, 10> random{0x12, 0x34, 0x56, 0x78, 0x9A,
                                       0xBC, 0xDE, 0xF0, 0x11, 0x22};
  const std::string id = MakeUuidV7(1689003005123, random);
  EXPECT_TRUE(IsCanonicalUuid(id)) << id;
  // 1689003005123 == 0x0189406c94c3 big-endian in the first 48 bits; the
  // version nibble 7 replaces the top of random[0]; the variant bits 0b10
  // replace the top of random[2] (0x56 -> 0x96).
  EXPECT_EQ(id, "0189406c-94c3-7234-9678-9abcdef01122");
  EXPECT_EQ(id[14], '7');
  EXPECT_EQ(id[19], '9');
}

TEST(MakeUuidV7Test, VersionAndVariantHoldForAnyRandomBytes) {
  for (const auto& random : {kZeros, kOnes}) {
    const std::string id = MakeUuidV7(0, random);
    EXPECT_EQ(id[14], '7') << id;
    EXPECT_TRUE(id[19] == '8' || id[19] == '9' || id[19] == 'a' ||
                id[19] == 'b')
        << id;
  }
  EXPECT_EQ(MakeUuidV7(0, kZeros), "00000000-0000-7000-8000-000000000000");
  EXPECT_EQ(MakeUuidV7(0, kOnes), "00000000-0000-7fff-bfff-ffffffffffff");
}

TEST(MakeUuidV7Test, StringsSortByTime) {
  // Later time with smaller random bytes still sorts after earlier time.
  std::vector<std::string> ids;
  for (int64_t ms : {int64_t{0}, int64_t{1}, int64_t{255}, int64_t{256},
                     int64_t{1689003005123}, int64_t{1689003005124},
                     (int64_t{1} << 48) - 1}) {
    ids.push_back(MakeUuidV7(ms, ms % 2 == 0 ? kOnes : kZeros));
  }
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_LT(MakeUuidV7(1000, kOnes), MakeUuidV7(1001, kZeros));
}

TEST(MakeUuidV7Test, EmbeddedMillisRoundTrip) {
  for (int64_t ms :
       {int64_t{0}, int64_t{1689003005123}, (int64_t{1} << 48) - 1}) {
    EXPECT_EQ(UuidV7Millis(MakeUuidV7(ms, kOnes)), ms);
  }
}

TEST(IsCanonicalUuidTest, AcceptsLowercaseAnyVersion) {
  EXPECT_TRUE(IsCanonicalUuid("0189406c-94c3-7234-9678-9abcdef01122"));
  EXPECT_TRUE(IsCanonicalUuid("f47ac10b-58cc-4372-a567-0e02b2c3d479"));  // v4
  EXPECT_TRUE(IsCanonicalUuid("00000000-0000-0000-0000-000000000000"));
}

TEST(IsCanonicalUuidTest, RejectsNonCanonicalForms) {
  EXPECT_FALSE(IsCanonicalUuid(""));
  EXPECT_FALSE(IsCanonicalUuid("0189406C-94C3-7234-9678-9ABCDEF01122"));
  EXPECT_FALSE(IsCanonicalUuid("0189406c-94c3-7234-9678-9abcdef0112"));
  EXPECT_FALSE(IsCanonicalUuid("0189406c-94c3-7234-9678-9abcdef011223"));
  EXPECT_FALSE(IsCanonicalUuid("0189406c94c372349678-9abcdef01122----"));
  EXPECT_FALSE(IsCanonicalUuid("0189406c-94c3-7234-9678-9abcdef0112g"));
  EXPECT_FALSE(IsCanonicalUuid("{0189406c-94c3-7234-9678-9abcdef01122}"));
  EXPECT_FALSE(IsCanonicalUuid("0189406c94c372349678-9abcdef01122"));
}

TEST(IdFormsTest, ConversationMessageAndAgentIdsHaveDistinctPrefixes) {
  const std::string uuid = "0189406c-94c3-7234-9678-9abcdef01122";
  EXPECT_TRUE(IsConversationId("conv-" + uuid));
  EXPECT_TRUE(IsMessageId("msg-" + uuid));
  EXPECT_TRUE(IsAgentId(uuid));

  EXPECT_FALSE(IsConversationId(uuid));
  EXPECT_FALSE(IsConversationId("msg-" + uuid));
  EXPECT_FALSE(IsConversationId("CONV-" + uuid));
  EXPECT_FALSE(IsConversationId("conv-"));
  EXPECT_FALSE(IsMessageId(uuid));
  EXPECT_FALSE(IsMessageId("conv-" + uuid));
  EXPECT_FALSE(IsAgentId("conv-" + uuid));
  EXPECT_FALSE(IsAgentId("msg-" + uuid));
}

TEST(UuidV7MillisTest, ReadsPrefixedAndBareIds) {
  const std::string uuid = "0189406c-94c3-7234-9678-9abcdef01122";
  EXPECT_EQ(UuidV7Millis(uuid), 1689003005123);
  EXPECT_EQ(UuidV7Millis("conv-" + uuid), 1689003005123);
  EXPECT_EQ(UuidV7Millis("msg-" + uuid), 1689003005123);
}

TEST(UuidV7MillisTest, RejectsNonV7AndMalformedIds) {
  EXPECT_EQ(UuidV7Millis("f47ac10b-58cc-4372-a567-0e02b2c3d479"),
            std::nullopt);  // v4
  EXPECT_EQ(UuidV7Millis("not-a-uuid"), std::nullopt);
  EXPECT_EQ(UuidV7Millis("agent-0189406c-94c3-7234-9678-9abcdef01122"),
            std::nullopt);
  EXPECT_EQ(UuidV7Millis(""), std::nullopt);
}

}  // namespace
}  // namespace convstore
