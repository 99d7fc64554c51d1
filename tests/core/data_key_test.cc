// Spec for core/data_key.h: AES-256-GCM sealing of payloads with a
// subject's data key, and which streams have a subject. No I/O.
#include "core/data_key.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace convstore {
namespace {

const DataKey kKey = {0x11, 0x22, 0x33};
const DataNonce kNonce = {0x01, 0x02};

// The sealed bytes; sealing fails only when OpenSSL cannot allocate.
std::string Seal(const DataKey& key, std::string_view aad,
                 std::string_view plaintext) {
  auto sealed = SealWithDataKey(key, kNonce, aad, plaintext);
  EXPECT_TRUE(sealed.ok()) << sealed.status().ToString();
  return sealed.ok() ? *sealed : std::string();
}

TEST(DataKeyTest, SealedBytesOpenWithTheSameKeyAndAad) {
  const std::string sealed = Seal(kKey, "position+stream", "hello, world");
  ASSERT_EQ(kDataNonceBytes + 12 + kDataTagBytes, sealed.size());
  EXPECT_EQ(std::string::npos, sealed.find("hello")) << "not in the clear";
  auto opened = OpenWithDataKey(kKey, "position+stream", sealed);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ("hello, world", *opened);
}

// Each thread reuses one cipher context: nothing of one call may carry
// into the next, whatever the call before did (a failed open included).
TEST(DataKeyTest, ASealIsTheSameWhateverTheThreadSealedOrOpenedBefore) {
  const std::string first = Seal(kKey, "aad", "secret");
  DataKey other = kKey;
  other[0] ^= 1;
  const std::string sealed_other = Seal(other, "other aad", "another secret");
  EXPECT_FALSE(OpenWithDataKey(kKey, "aad", sealed_other).ok());
  auto opened = OpenWithDataKey(other, "other aad", sealed_other);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ("another secret", *opened);
  EXPECT_EQ(first, Seal(kKey, "aad", "secret"));
}

TEST(DataKeyTest, AnotherKeyAnotherAadOrAChangedByteDoesNotOpen) {
  const std::string sealed = Seal(kKey, "aad", "secret");
  DataKey other = kKey;
  other[31] ^= 1;
  EXPECT_EQ(ErrorKind::kCorruption,
            OpenWithDataKey(other, "aad", sealed).status().kind());
  EXPECT_EQ(ErrorKind::kCorruption,
            OpenWithDataKey(kKey, "aaD", sealed).status().kind());
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string changed = sealed;
    changed[i] ^= 0x40;
    EXPECT_EQ(ErrorKind::kCorruption,
              OpenWithDataKey(kKey, "aad", changed).status().kind())
        << "byte " << i;
  }
  EXPECT_EQ(ErrorKind::kCorruption,
            OpenWithDataKey(kKey, "aad", sealed.substr(0, 20)).status().kind());
}

TEST(DataKeyTest, AnEmptyPlaintextSealsAndOpens) {
  const std::string sealed = Seal(kKey, "", "");
  auto opened = OpenWithDataKey(kKey, "", sealed);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ("", *opened);
}

// --- DataKeyOpener: OpenWithDataKey for scans, keeping keyed ciphers -------

// kKey with one byte changed.
DataKey KeyFlippedAt(size_t byte) {
  DataKey key = kKey;
  key[byte] ^= 1;
  return key;
}

// What `opener` opens `sealed` to, or "(corruption)" when it does not open.
std::string OpenedBy(DataKeyOpener& opener, const DataKey& key,
                     std::string_view aad, std::string_view sealed) {
  std::string plain = "left over from before";
  const Status s = opener.Open(key, aad, sealed, plain);
  if (s.ok()) return plain;
  return s.kind() == ErrorKind::kCorruption ? "(corruption)" : s.ToString();
}

TEST(DataKeyOpenerTest, OpensWhatOpenWithDataKeyOpensWhateverTheKeyBefore) {
  // Keys whose first bytes are equal share a kept cipher; they must still
  // be told apart by every byte.
  const DataKey same_first = KeyFlippedAt(31);
  const DataKey other_first = KeyFlippedAt(0);
  const std::string a = Seal(kKey, "aad a", "payload a");
  const std::string b = Seal(same_first, "aad b", "payload b");
  const std::string c = Seal(other_first, "aad c", std::string(1000, 'c'));
  DataKeyOpener opener;
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ("payload a", OpenedBy(opener, kKey, "aad a", a));
    EXPECT_EQ("payload a", OpenedBy(opener, kKey, "aad a", a));
    EXPECT_EQ("payload b", OpenedBy(opener, same_first, "aad b", b));
    EXPECT_EQ(std::string(1000, 'c'),
              OpenedBy(opener, other_first, "aad c", c));
    EXPECT_EQ("payload a", OpenedBy(opener, kKey, "aad a", a));
  }
}

TEST(DataKeyOpenerTest, APayloadDoesNotOpenWithAKeyThatSharesItsKeptCipher) {
  const DataKey same_first = KeyFlippedAt(31);
  const std::string a = Seal(kKey, "aad", "payload a");
  DataKeyOpener opener;
  ASSERT_EQ("payload a", OpenedBy(opener, kKey, "aad", a));
  // The cipher kept for kKey must not open `a` for another key.
  EXPECT_EQ("(corruption)", OpenedBy(opener, same_first, "aad", a));
  EXPECT_EQ("payload a", OpenedBy(opener, kKey, "aad", a));
}

TEST(DataKeyOpenerTest, AFailedOpenLeavesTheNextOpenAsIfItHadNotHappened) {
  const std::string sealed = Seal(kKey, "aad", "secret");
  DataKeyOpener opener;
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string changed = sealed;
    changed[i] ^= 0x40;
    EXPECT_EQ("(corruption)", OpenedBy(opener, kKey, "aad", changed))
        << "byte " << i;
    EXPECT_EQ("secret", OpenedBy(opener, kKey, "aad", sealed)) << "byte " << i;
  }
  EXPECT_EQ("(corruption)", OpenedBy(opener, kKey, "aaD", sealed));
  EXPECT_EQ("(corruption)",
            OpenedBy(opener, kKey, "aad", sealed.substr(0, 20)));
  EXPECT_EQ("secret", OpenedBy(opener, kKey, "aad", sealed));
  // A first open that fails, with a key not kept yet.
  const DataKey other = KeyFlippedAt(5);
  const std::string sealed_other = Seal(other, "aad", "other secret");
  DataKeyOpener fresh;
  EXPECT_EQ("(corruption)", OpenedBy(fresh, other, "aaD", sealed_other));
  EXPECT_EQ("other secret", OpenedBy(fresh, other, "aad", sealed_other));
  EXPECT_EQ("", OpenedBy(fresh, other, "", Seal(other, "", "")));
}

TEST(DataKeyTest, AConversationsTwoStreamsShareOneSubjectAndAgentsHaveTheirs) {
  EXPECT_EQ("cconv-1", DataKeySubjectOf("conversation-conv-1"));
  EXPECT_EQ("cconv-1", DataKeySubjectOf("messages-conv-1"));
  EXPECT_EQ("a0190", DataKeySubjectOf("agent-0190"));
  EXPECT_EQ("", DataKeySubjectOf("conversation-"));
  EXPECT_EQ("", DataKeySubjectOf("erasures"));
  EXPECT_EQ("", DataKeySubjectOf(""));
}

}  // namespace
}  // namespace convstore
