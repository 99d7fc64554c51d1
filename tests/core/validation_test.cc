// Spec for core/validation.h: parsing and validating request bodies. Every
// failure is InvalidArgument (HTTP 400) with `param` naming the field (empty
// for body-level faults); limits are checked exactly at and one past each
// bound. Pure functions: no I/O here.
#include "core/validation.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/encoding.h"

namespace convstore {
namespace {

// "é" is 2 bytes, "世" 3 bytes, "👋" 4 bytes of UTF-8; each one code point.
constexpr std::string_view kTwoByte = "\xC3\xA9";
constexpr std::string_view kThreeByte = "\xE4\xB8\x96";
constexpr std::string_view kFourByte = "\xF0\x9F\x91\x8B";

std::string Repeat(std::string_view unit, size_t n) {
  std::string s;
  s.reserve(unit.size() * n);
  for (size_t i = 0; i < n; ++i) s.append(unit);
  return s;
}

// A JSON string literal for text holding no quote, backslash or control char.
std::string Q(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Asserts `r` is a 400 naming `param`.
template <typename T>
void ExpectInvalid(const Result<T>& r, std::string_view param) {
  ASSERT_FALSE(r.ok()) << "expected a 400 naming '" << param << "'";
  EXPECT_EQ(r.status().kind(), ErrorKind::kInvalidArgument)
      << r.status().ToString();
  EXPECT_EQ(r.status().param(), param) << r.status().ToString();
  EXPECT_FALSE(r.status().message().empty());
}

template <typename T>
void ExpectOk(const Result<T>& r) {
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

// Metadata object text with `n` keys k0..k(n-1) mapped to "v".
std::string MetadataWithKeys(size_t n) {
  std::string s = "{";
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) s += ",";
    s += Q("k" + std::to_string(i)) + ":" + Q("v");
  }
  return s + "}";
}

// ---------------------------------------------------------------------------
// Body-level faults, the same for every parser.

struct NamedParser {
  const char* name;
  std::function<Status(std::string_view)> parse;
};

template <typename T>
std::function<Status(std::string_view)> Wrap(Result<T> (*f)(std::string_view)) {
  return [f](std::string_view body) { return f(body).status(); };
}

std::vector<NamedParser> AllParsers() {
  return {
      {"ParseCreateAgent", Wrap(&ParseCreateAgent)},
      {"ParseUpdateAgent", Wrap(&ParseUpdateAgent)},
      {"ParseCreateConversation", Wrap(&ParseCreateConversation)},
      {"ParseUpdateConversation", Wrap(&ParseUpdateConversation)},
      {"ParseAppendMessage", Wrap(&ParseAppendMessage)},
      {"ParseCreateApiKey", Wrap(&ParseCreateApiKey)},
      {"ParseCreateWebhook", Wrap(&ParseCreateWebhook)},
  };
}

void ExpectBodyRejected(std::string_view body) {
  for (const NamedParser& p : AllParsers()) {
    Status s = p.parse(body);
    EXPECT_EQ(s.kind(), ErrorKind::kInvalidArgument)
        << p.name << " on body [" << body << "]: " << s.ToString();
    EXPECT_EQ(s.param(), "") << p.name << " on body [" << body << "]";
  }
}

TEST(BodyTest, InvalidJsonIsRejected) {
  for (std::string_view body :
       {"", " ", "{", "}", "{\"name\":", "{\"name\":\"a\"", "{'name':'a'}",
        "{name:\"a\"}", "{\"name\":\"a\",}", "{\"name\":\"a\"} x",
        "{\"name\":\"a\"}{}", "nul", "{\"a\":01}"}) {
    ExpectBodyRejected(body);
  }
}

TEST(BodyTest, NonObjectJsonIsRejected) {
  for (std::string_view body :
       {"null", "true", "false", "0", "1.5", "\"text\"", "[]",
        "[{\"name\":\"a\"}]"}) {
    ExpectBodyRejected(body);
  }
}

TEST(BodyTest, InvalidUtf8IsRejected) {
  const std::vector<std::string> bodies = {
      "{\"name\":\"\xFF\"}",          // a byte never valid in UTF-8
      "{\"name\":\"\xC0\xAF\"}",      // overlong '/'
      "{\"name\":\"\xE2\x82\"}",      // truncated 3-byte sequence
      "{\"name\":\"\x80\"}",          // stray continuation byte
      "{\"name\":\"\xED\xA0\x80\"}",  // encoded surrogate U+D800
      "{\"name\":\"\xF4\x90\x80\x80\"}",  // above U+10FFFF
      "{\"x\xFF\":\"a\"}",            // in a key of an unknown field
  };
  for (const std::string& body : bodies) ExpectBodyRejected(body);
}

TEST(BodyTest, EscapedLoneSurrogateNeverYieldsInvalidUtf8) {
  // "\ud800" is a JSON escape of half a surrogate pair: either the body is
  // rejected as a 400, or what comes out is still valid UTF-8.
  auto agent = ParseCreateAgent(R"({"name":"\ud800"})");
  if (agent.ok()) {
    EXPECT_TRUE(IsValidUtf8(agent->name));
  } else {
    EXPECT_EQ(agent.status().kind(), ErrorKind::kInvalidArgument);
  }
  auto message = ParseAppendMessage(R"({"role":"user","content":"a\udc00b"})");
  if (message.ok()) {
    EXPECT_TRUE(IsValidUtf8(message->content));
  } else {
    EXPECT_EQ(message.status().kind(), ErrorKind::kInvalidArgument);
  }
}

TEST(BodyTest, EscapedSurrogatePairDecodesToOneCodePoint) {
  auto r = ParseCreateAgent(R"({"name":"\ud83d\udc4b"})");
  ExpectOk(r);
  EXPECT_EQ(r->name, kFourByte);
}

// ---------------------------------------------------------------------------
// POST /v1/agents

TEST(ParseCreateAgentTest, NameAloneTakesDefaults) {
  auto r = ParseCreateAgent(R"({"name":"Support bot"})");
  ExpectOk(r);
  EXPECT_EQ(r->name, "Support bot");
  EXPECT_EQ(r->instructions, "");
  EXPECT_EQ(r->dispatch_name, std::nullopt);
  EXPECT_TRUE(r->metadata.empty());
}

TEST(ParseCreateAgentTest, ReadsEveryField) {
  auto r = ParseCreateAgent(
      R"({"name":"n","instructions":"Be brief.","dispatch_name":"worker-1",)"
      R"("metadata":{"b":"2","a":"1"}})");
  ExpectOk(r);
  EXPECT_EQ(r->name, "n");
  EXPECT_EQ(r->instructions, "Be brief.");
  EXPECT_EQ(r->dispatch_name, std::optional<std::string>("worker-1"));
  // Insertion order is kept.
  EXPECT_EQ(r->metadata, (Metadata{{"b", "2"}, {"a", "1"}}));
}

TEST(ParseCreateAgentTest, UnknownFieldsAreIgnored) {
  auto r = ParseCreateAgent(
      R"({"name":"n","id":"forged","created_by":"mallory","extra":{"x":[1]}})");
  ExpectOk(r);
  EXPECT_EQ(r->name, "n");
}

TEST(ParseCreateAgentTest, MissingNameIsRejected) {
  ExpectInvalid(ParseCreateAgent("{}"), "name");
  ExpectInvalid(ParseCreateAgent(R"({"instructions":"x"})"), "name");
}

TEST(ParseCreateAgentTest, NullNameIsRejected) {
  ExpectInvalid(ParseCreateAgent(R"({"name":null})"), "name");
}

TEST(ParseCreateAgentTest, EmptyNameIsRejected) {
  ExpectInvalid(ParseCreateAgent(R"({"name":""})"), "name");
}

TEST(ParseCreateAgentTest, NameOf128CodePointsIsAccepted) {
  std::string name = Repeat(kThreeByte, 128);  // 384 bytes
  auto r = ParseCreateAgent("{\"name\":" + Q(name) + "}");
  ExpectOk(r);
  EXPECT_EQ(r->name, name);
}

TEST(ParseCreateAgentTest, NameOf129CodePointsIsRejected) {
  ExpectInvalid(ParseCreateAgent("{\"name\":" + Q(Repeat("a", 129)) + "}"),
                "name");
  ExpectInvalid(
      ParseCreateAgent("{\"name\":" + Q(Repeat(kThreeByte, 129)) + "}"),
      "name");
}

TEST(ParseCreateAgentTest, InstructionsOf32768BytesAreAccepted) {
  std::string text = Repeat(kTwoByte, 16384);  // 32768 bytes
  auto r = ParseCreateAgent("{\"name\":\"n\",\"instructions\":" + Q(text) + "}");
  ExpectOk(r);
  EXPECT_EQ(r->instructions, text);
}

TEST(ParseCreateAgentTest, InstructionsOf32769BytesAreRejected) {
  ExpectInvalid(ParseCreateAgent("{\"name\":\"n\",\"instructions\":" +
                                 Q(Repeat("a", 32769)) + "}"),
                "instructions");
  // Bytes, not characters: 16384 two-byte chars plus one byte.
  ExpectInvalid(ParseCreateAgent("{\"name\":\"n\",\"instructions\":" +
                                 Q(Repeat(kTwoByte, 16384) + "a") + "}"),
                "instructions");
}

TEST(ParseCreateAgentTest, EmptyAndNullInstructionsMeanNone) {
  auto empty = ParseCreateAgent(R"({"name":"n","instructions":""})");
  ExpectOk(empty);
  EXPECT_EQ(empty->instructions, "");
  auto null = ParseCreateAgent(R"({"name":"n","instructions":null})");
  ExpectOk(null);
  EXPECT_EQ(null->instructions, "");
}

TEST(ParseCreateAgentTest, NullDispatchNameMeansNone) {
  auto r = ParseCreateAgent(R"({"name":"n","dispatch_name":null})");
  ExpectOk(r);
  EXPECT_EQ(r->dispatch_name, std::nullopt);
}

TEST(ParseCreateAgentTest, DispatchNameLimits) {
  auto at = ParseCreateAgent("{\"name\":\"n\",\"dispatch_name\":" +
                             Q(Repeat("d", 128)) + "}");
  ExpectOk(at);
  EXPECT_EQ(at->dispatch_name, std::optional<std::string>(Repeat("d", 128)));
  ExpectInvalid(ParseCreateAgent("{\"name\":\"n\",\"dispatch_name\":" +
                                 Q(Repeat("d", 129)) + "}"),
                "dispatch_name");
  ExpectInvalid(ParseCreateAgent(R"({"name":"n","dispatch_name":""})"),
                "dispatch_name");
}

TEST(ParseCreateAgentTest, WrongTypesAreRejected) {
  ExpectInvalid(ParseCreateAgent(R"({"name":5})"), "name");
  ExpectInvalid(ParseCreateAgent(R"({"name":["n"]})"), "name");
  ExpectInvalid(ParseCreateAgent(R"({"name":{"n":1}})"), "name");
  ExpectInvalid(ParseCreateAgent(R"({"name":true})"), "name");
  ExpectInvalid(ParseCreateAgent(R"({"name":"n","instructions":1})"),
                "instructions");
  ExpectInvalid(ParseCreateAgent(R"({"name":"n","instructions":[]})"),
                "instructions");
  ExpectInvalid(ParseCreateAgent(R"({"name":"n","dispatch_name":true})"),
                "dispatch_name");
  ExpectInvalid(ParseCreateAgent(R"({"name":"n","metadata":"x"})"),
                "metadata");
  ExpectInvalid(ParseCreateAgent(R"({"name":"n","metadata":[]})"),
                "metadata");
}

TEST(ParseCreateAgentTest, NullMetadataMeansEmpty) {
  auto r = ParseCreateAgent(R"({"name":"n","metadata":null})");
  ExpectOk(r);
  EXPECT_TRUE(r->metadata.empty());
}

TEST(ParseCreateAgentTest, MetadataLimitsApply) {
  ExpectInvalid(ParseCreateAgent("{\"name\":\"n\",\"metadata\":" +
                                 MetadataWithKeys(17) + "}"),
                "metadata");
  ExpectInvalid(ParseCreateAgent(R"({"name":"n","metadata":{"":"v"}})"),
                "metadata");
}

// ---------------------------------------------------------------------------
// PATCH /v1/agents/{id}

TEST(ParseUpdateAgentTest, EmptyObjectChangesNothing) {
  auto r = ParseUpdateAgent("{}");
  ExpectOk(r);
  EXPECT_EQ(r->name, std::nullopt);
  EXPECT_EQ(r->instructions, std::nullopt);
  EXPECT_EQ(r->dispatch_name, std::nullopt);
  EXPECT_EQ(r->metadata, std::nullopt);
}

TEST(ParseUpdateAgentTest, ReadsEveryField) {
  auto r = ParseUpdateAgent(
      R"({"name":"m","instructions":"i","dispatch_name":"w","metadata":{"k":"v"}})");
  ExpectOk(r);
  EXPECT_EQ(r->name, std::optional<std::string>("m"));
  EXPECT_EQ(r->instructions, std::optional<std::string>("i"));
  ASSERT_TRUE(r->dispatch_name.has_value());
  EXPECT_EQ(*r->dispatch_name, std::optional<std::string>("w"));
  EXPECT_EQ(r->metadata, std::optional<Metadata>(Metadata{{"k", "v"}}));
}

TEST(ParseUpdateAgentTest, NullDispatchNameClearsIt) {
  auto r = ParseUpdateAgent(R"({"dispatch_name":null})");
  ExpectOk(r);
  ASSERT_TRUE(r->dispatch_name.has_value()) << "null must mean 'clear'";
  EXPECT_EQ(*r->dispatch_name, std::nullopt);
}

TEST(ParseUpdateAgentTest, NullInstructionsClearThem) {
  auto r = ParseUpdateAgent(R"({"instructions":null})");
  ExpectOk(r);
  EXPECT_EQ(r->instructions, std::optional<std::string>(""));
}

TEST(ParseUpdateAgentTest, EmptyMetadataObjectReplacesWithEmpty) {
  auto r = ParseUpdateAgent(R"({"metadata":{}})");
  ExpectOk(r);
  EXPECT_EQ(r->metadata, std::optional<Metadata>(Metadata{}));
}

TEST(ParseUpdateAgentTest, NullOrEmptyNameIsRejected) {
  ExpectInvalid(ParseUpdateAgent(R"({"name":null})"), "name");
  ExpectInvalid(ParseUpdateAgent(R"({"name":""})"), "name");
}

TEST(ParseUpdateAgentTest, LimitsApply) {
  auto at = ParseUpdateAgent("{\"name\":" + Q(Repeat(kFourByte, 128)) + "}");
  ExpectOk(at);
  ExpectInvalid(
      ParseUpdateAgent("{\"name\":" + Q(Repeat(kFourByte, 129)) + "}"),
      "name");
  ExpectOk(ParseUpdateAgent("{\"instructions\":" + Q(Repeat("i", 32768)) +
                            "}"));
  ExpectInvalid(
      ParseUpdateAgent("{\"instructions\":" + Q(Repeat("i", 32769)) + "}"),
      "instructions");
  ExpectInvalid(
      ParseUpdateAgent("{\"dispatch_name\":" + Q(Repeat("d", 129)) + "}"),
      "dispatch_name");
  ExpectInvalid(ParseUpdateAgent("{\"metadata\":" + MetadataWithKeys(17) + "}"),
                "metadata");
}

TEST(ParseUpdateAgentTest, WrongTypesAreRejected) {
  ExpectInvalid(ParseUpdateAgent(R"({"name":1})"), "name");
  ExpectInvalid(ParseUpdateAgent(R"({"instructions":false})"), "instructions");
  ExpectInvalid(ParseUpdateAgent(R"({"dispatch_name":7})"), "dispatch_name");
  ExpectInvalid(ParseUpdateAgent(R"({"metadata":"k=v"})"), "metadata");
}

TEST(ParseUpdateAgentTest, UnknownFieldsAreIgnored) {
  auto r = ParseUpdateAgent(R"({"id":"x","created_at":"then"})");
  ExpectOk(r);
  EXPECT_EQ(r->name, std::nullopt);
}

// ---------------------------------------------------------------------------
// POST /v1/conversations

TEST(ParseCreateConversationTest, TitleDefaultsToNewConversation) {
  auto r = ParseCreateConversation(R"({"agent_id":"a1"})");
  ExpectOk(r);
  EXPECT_EQ(r->agent_id, "a1");
  EXPECT_EQ(r->title, "New Conversation");
  EXPECT_TRUE(r->metadata.empty());
}

TEST(ParseCreateConversationTest, NullTitleTakesTheDefault) {
  auto r = ParseCreateConversation(R"({"agent_id":"a1","title":null})");
  ExpectOk(r);
  EXPECT_EQ(r->title, "New Conversation");
}

TEST(ParseCreateConversationTest, ReadsEveryField) {
  auto r = ParseCreateConversation(
      R"({"agent_id":"a1","title":"Call with Ana","metadata":{"z":"1","y":""}})");
  ExpectOk(r);
  EXPECT_EQ(r->agent_id, "a1");
  EXPECT_EQ(r->title, "Call with Ana");
  EXPECT_EQ(r->metadata, (Metadata{{"z", "1"}, {"y", ""}}));
}

TEST(ParseCreateConversationTest, MissingOrNullAgentIdIsRejected) {
  ExpectInvalid(ParseCreateConversation("{}"), "agent_id");
  ExpectInvalid(ParseCreateConversation(R"({"title":"t"})"), "agent_id");
  ExpectInvalid(ParseCreateConversation(R"({"agent_id":null})"), "agent_id");
}

TEST(ParseCreateConversationTest, AgentIdOfWrongTypeIsRejected) {
  ExpectInvalid(ParseCreateConversation(R"({"agent_id":42})"), "agent_id");
  ExpectInvalid(ParseCreateConversation(R"({"agent_id":["a"]})"), "agent_id");
  ExpectInvalid(ParseCreateConversation(R"({"agent_id":""})"), "agent_id");
}

TEST(ParseCreateConversationTest, TitleOf256CodePointsIsAccepted) {
  // Multi-byte characters count as one each: 256 chars, 768 bytes.
  std::string title = Repeat(kThreeByte, 256);
  auto r = ParseCreateConversation("{\"agent_id\":\"a\",\"title\":" + Q(title) +
                                   "}");
  ExpectOk(r);
  EXPECT_EQ(r->title, title);
  std::string emoji = Repeat(kFourByte, 256);  // 1024 bytes
  auto e = ParseCreateConversation("{\"agent_id\":\"a\",\"title\":" + Q(emoji) +
                                   "}");
  ExpectOk(e);
  EXPECT_EQ(e->title, emoji);
}

TEST(ParseCreateConversationTest, TitleOf257CodePointsIsRejected) {
  ExpectInvalid(ParseCreateConversation("{\"agent_id\":\"a\",\"title\":" +
                                        Q(Repeat("t", 257)) + "}"),
                "title");
  ExpectInvalid(ParseCreateConversation("{\"agent_id\":\"a\",\"title\":" +
                                        Q(Repeat(kTwoByte, 257)) + "}"),
                "title");
}

TEST(ParseCreateConversationTest, EmptyTitleIsRejected) {
  ExpectInvalid(ParseCreateConversation(R"({"agent_id":"a","title":""})"),
                "title");
}

TEST(ParseCreateConversationTest, TitleOfWrongTypeIsRejected) {
  ExpectInvalid(ParseCreateConversation(R"({"agent_id":"a","title":3})"),
                "title");
  ExpectInvalid(ParseCreateConversation(R"({"agent_id":"a","title":{}})"),
                "title");
}

TEST(ParseCreateConversationTest, UnknownFieldsAreIgnored) {
  auto r = ParseCreateConversation(
      R"({"agent_id":"a","status":"archived","token":"x","room_name":"r"})");
  ExpectOk(r);
  EXPECT_EQ(r->title, "New Conversation");
}

// Metadata rules, shown on the conversation body (all parsers share them).
std::string ConvWithMetadata(const std::string& metadata) {
  return "{\"agent_id\":\"a\",\"metadata\":" + metadata + "}";
}

TEST(MetadataTest, SixteenKeysAreAccepted) {
  auto r = ParseCreateConversation(ConvWithMetadata(MetadataWithKeys(16)));
  ExpectOk(r);
  ASSERT_EQ(r->metadata.size(), 16u);
  EXPECT_EQ(r->metadata[0], (std::pair<std::string, std::string>("k0", "v")));
  EXPECT_EQ(r->metadata[15], (std::pair<std::string, std::string>("k15", "v")));
}

TEST(MetadataTest, SeventeenKeysAreRejected) {
  ExpectInvalid(ParseCreateConversation(ConvWithMetadata(MetadataWithKeys(17))),
                "metadata");
}

TEST(MetadataTest, KeyOf64CodePointsIsAccepted) {
  std::string key = Repeat(kTwoByte, 64);
  auto r = ParseCreateConversation(
      ConvWithMetadata("{" + Q(key) + ":\"v\"}"));
  ExpectOk(r);
  EXPECT_EQ(r->metadata, (Metadata{{key, "v"}}));
}

TEST(MetadataTest, KeyOf65CodePointsIsRejected) {
  ExpectInvalid(ParseCreateConversation(
                    ConvWithMetadata("{" + Q(Repeat("k", 65)) + ":\"v\"}")),
                "metadata");
  ExpectInvalid(ParseCreateConversation(ConvWithMetadata(
                    "{" + Q(Repeat(kTwoByte, 65)) + ":\"v\"}")),
                "metadata");
}

TEST(MetadataTest, EmptyKeyIsRejected) {
  ExpectInvalid(ParseCreateConversation(ConvWithMetadata(R"({"":"v"})")),
                "metadata");
}

TEST(MetadataTest, ValueOf512CodePointsIsAccepted) {
  std::string value = Repeat(kFourByte, 512);  // 2048 bytes
  auto r =
      ParseCreateConversation(ConvWithMetadata("{\"k\":" + Q(value) + "}"));
  ExpectOk(r);
  EXPECT_EQ(r->metadata, (Metadata{{"k", value}}));
}

TEST(MetadataTest, ValueOf513CodePointsIsRejected) {
  ExpectInvalid(ParseCreateConversation(
                    ConvWithMetadata("{\"k\":" + Q(Repeat("v", 513)) + "}")),
                "metadata");
  ExpectInvalid(ParseCreateConversation(ConvWithMetadata(
                    "{\"k\":" + Q(Repeat(kFourByte, 513)) + "}")),
                "metadata");
}

TEST(MetadataTest, EmptyValueIsAccepted) {
  auto r = ParseCreateConversation(ConvWithMetadata(R"({"k":""})"));
  ExpectOk(r);
  EXPECT_EQ(r->metadata, (Metadata{{"k", ""}}));
}

TEST(MetadataTest, NonStringValuesAreRejected) {
  for (std::string_view value :
       {"1", "true", "null", "[]", "{}", "[\"a\"]", "{\"x\":\"y\"}", "1.5"}) {
    ExpectInvalid(ParseCreateConversation(
                      ConvWithMetadata("{\"k\":" + std::string(value) + "}")),
                  "metadata");
  }
}

TEST(MetadataTest, NonObjectMetadataIsRejected) {
  for (std::string_view m : {"\"k\"", "1", "true", "[]", "[[\"k\",\"v\"]]"}) {
    ExpectInvalid(ParseCreateConversation(ConvWithMetadata(std::string(m))),
                  "metadata");
  }
}

TEST(MetadataTest, NullMetadataMeansEmpty) {
  auto r = ParseCreateConversation(ConvWithMetadata("null"));
  ExpectOk(r);
  EXPECT_TRUE(r->metadata.empty());
}

// ---------------------------------------------------------------------------
// PATCH /v1/conversations/{id}

TEST(ParseUpdateConversationTest, EmptyObjectChangesNothing) {
  auto r = ParseUpdateConversation("{}");
  ExpectOk(r);
  EXPECT_EQ(r->title, std::nullopt);
  EXPECT_EQ(r->status, std::nullopt);
  EXPECT_EQ(r->metadata, std::nullopt);
}

TEST(ParseUpdateConversationTest, ReadsEveryStatus) {
  const std::pair<const char*, ConversationStatus> cases[] = {
      {"active", ConversationStatus::kActive},
      {"completed", ConversationStatus::kCompleted},
      {"archived", ConversationStatus::kArchived},
  };
  for (const auto& [text, status] : cases) {
    auto r = ParseUpdateConversation("{\"status\":" + Q(text) + "}");
    ExpectOk(r);
    EXPECT_EQ(r->status, std::optional<ConversationStatus>(status)) << text;
  }
}

TEST(ParseUpdateConversationTest, UnknownStatusIsRejected) {
  for (std::string_view s : {"deleted", "Active", "ACTIVE", "", " active",
                             "complete", "archive"}) {
    ExpectInvalid(ParseUpdateConversation("{\"status\":" + Q(s) + "}"),
                  "status");
  }
}

TEST(ParseUpdateConversationTest, StatusOfWrongTypeOrNullIsRejected) {
  ExpectInvalid(ParseUpdateConversation(R"({"status":0})"), "status");
  ExpectInvalid(ParseUpdateConversation(R"({"status":["active"]})"), "status");
  ExpectInvalid(ParseUpdateConversation(R"({"status":null})"), "status");
}

TEST(ParseUpdateConversationTest, TitleLimits) {
  auto at = ParseUpdateConversation("{\"title\":" + Q(Repeat(kTwoByte, 256)) +
                                    "}");
  ExpectOk(at);
  EXPECT_EQ(at->title, std::optional<std::string>(Repeat(kTwoByte, 256)));
  ExpectInvalid(
      ParseUpdateConversation("{\"title\":" + Q(Repeat(kTwoByte, 257)) + "}"),
      "title");
  ExpectInvalid(ParseUpdateConversation(R"({"title":""})"), "title");
  ExpectInvalid(ParseUpdateConversation(R"({"title":null})"), "title");
  ExpectInvalid(ParseUpdateConversation(R"({"title":12})"), "title");
}

TEST(ParseUpdateConversationTest, MetadataReplacesTheWholeObject) {
  auto r = ParseUpdateConversation(R"({"metadata":{"a":"1"}})");
  ExpectOk(r);
  EXPECT_EQ(r->metadata, std::optional<Metadata>(Metadata{{"a", "1"}}));
  auto cleared = ParseUpdateConversation(R"({"metadata":{}})");
  ExpectOk(cleared);
  EXPECT_EQ(cleared->metadata, std::optional<Metadata>(Metadata{}));
  ExpectInvalid(
      ParseUpdateConversation("{\"metadata\":" + MetadataWithKeys(17) + "}"),
      "metadata");
  ExpectInvalid(ParseUpdateConversation(R"({"metadata":{"k":1}})"), "metadata");
}

TEST(ParseUpdateConversationTest, UnknownFieldsAreIgnored) {
  auto r = ParseUpdateConversation(R"({"agent_id":"other","title":"t"})");
  ExpectOk(r);
  EXPECT_EQ(r->title, std::optional<std::string>("t"));
}

// ---------------------------------------------------------------------------
// POST /v1/conversations/{id}/messages

TEST(ParseAppendMessageTest, ReadsEveryRole) {
  const std::pair<const char*, MessageRole> cases[] = {
      {"system", MessageRole::kSystem},
      {"user", MessageRole::kUser},
      {"assistant", MessageRole::kAssistant},
  };
  for (const auto& [text, role] : cases) {
    auto r = ParseAppendMessage("{\"role\":" + Q(text) + ",\"content\":\"hi\"}");
    ExpectOk(r);
    EXPECT_EQ(r->role, role) << text;
    EXPECT_EQ(r->content, "hi");
  }
}

// The body is parsed into a small buffer first; a longer one goes on in the
// heap, whole.
TEST(ParseAppendMessageTest, ContentLongerThanTheParseBufferIsWhole) {
  const std::string content = Repeat("abc", 4000);  // 12,000 bytes
  auto r = ParseAppendMessage(
      "{\"role\":\"assistant\",\"content\":" + Q(content) + "}");
  ExpectOk(r);
  EXPECT_EQ(r->content, content);
  EXPECT_EQ(r->role, MessageRole::kAssistant);
}

TEST(ParseAppendMessageTest, ContentEscapesAreDecoded) {
  auto r = ParseAppendMessage(
      R"({"role":"user","content":"line1\nline2 \"q\" \\ \u00e9 \t"})");
  ExpectOk(r);
  EXPECT_EQ(r->content, "line1\nline2 \"q\" \\ \xC3\xA9 \t");
}

TEST(ParseAppendMessageTest, MissingOrNullRoleIsRejected) {
  ExpectInvalid(ParseAppendMessage(R"({"content":"hi"})"), "role");
  ExpectInvalid(ParseAppendMessage(R"({"role":null,"content":"hi"})"), "role");
}

TEST(ParseAppendMessageTest, UnknownRoleIsRejected) {
  for (std::string_view role :
       {"tool", "function", "User", "SYSTEM", "", "assistant "}) {
    ExpectInvalid(
        ParseAppendMessage("{\"role\":" + Q(role) + ",\"content\":\"hi\"}"),
        "role");
  }
}

TEST(ParseAppendMessageTest, RoleOfWrongTypeIsRejected) {
  ExpectInvalid(ParseAppendMessage(R"({"role":1,"content":"hi"})"), "role");
  ExpectInvalid(ParseAppendMessage(R"({"role":["user"],"content":"hi"})"),
                "role");
}

TEST(ParseAppendMessageTest, MissingOrNullContentIsRejected) {
  ExpectInvalid(ParseAppendMessage(R"({"role":"user"})"), "content");
  ExpectInvalid(ParseAppendMessage(R"({"role":"user","content":null})"),
                "content");
}

TEST(ParseAppendMessageTest, EmptyContentIsRejected) {
  ExpectInvalid(ParseAppendMessage(R"({"role":"user","content":""})"),
                "content");
}

TEST(ParseAppendMessageTest, ContentOfWrongTypeIsRejected) {
  ExpectInvalid(ParseAppendMessage(R"({"role":"user","content":5})"),
                "content");
  ExpectInvalid(ParseAppendMessage(R"({"role":"user","content":{"t":"x"}})"),
                "content");
  ExpectInvalid(ParseAppendMessage(R"({"role":"user","content":["x"]})"),
                "content");
}

TEST(ParseAppendMessageTest, ContentOf65536BytesIsAccepted) {
  std::string ascii = Repeat("c", 65536);
  auto a = ParseAppendMessage("{\"role\":\"user\",\"content\":" + Q(ascii) + "}");
  ExpectOk(a);
  EXPECT_EQ(a->content.size(), 65536u);
  std::string multi = Repeat(kFourByte, 16384);  // 65536 bytes
  auto m = ParseAppendMessage("{\"role\":\"user\",\"content\":" + Q(multi) + "}");
  ExpectOk(m);
  EXPECT_EQ(m->content, multi);
}

TEST(ParseAppendMessageTest, ContentOf65537BytesIsRejected) {
  ExpectInvalid(ParseAppendMessage("{\"role\":\"user\",\"content\":" +
                                   Q(Repeat("c", 65537)) + "}"),
                "content");
  // Bytes, not characters: 16384 four-byte chars plus one byte.
  ExpectInvalid(ParseAppendMessage("{\"role\":\"user\",\"content\":" +
                                   Q(Repeat(kFourByte, 16384) + "c") + "}"),
                "content");
}

TEST(ParseAppendMessageTest, UnknownFieldsAreIgnored) {
  auto r = ParseAppendMessage(
      R"({"role":"assistant","content":"x","id":"msg-forged","created_at":1})");
  ExpectOk(r);
  EXPECT_EQ(r->role, MessageRole::kAssistant);
}

// ---------------------------------------------------------------------------
// POST /v1/admin/api-keys

TEST(ParseCreateApiKeyTest, RoleDefaultsToUser) {
  auto r = ParseCreateApiKey(R"({"user_id":"alice"})");
  ExpectOk(r);
  EXPECT_EQ(r->user_id, "alice");
  EXPECT_EQ(r->role, KeyRole::kUser);
  auto null_role = ParseCreateApiKey(R"({"user_id":"alice","role":null})");
  ExpectOk(null_role);
  EXPECT_EQ(null_role->role, KeyRole::kUser);
}

TEST(ParseCreateApiKeyTest, ReadsAdminRole) {
  auto r = ParseCreateApiKey(R"({"user_id":"ops@example.com","role":"admin"})");
  ExpectOk(r);
  EXPECT_EQ(r->role, KeyRole::kAdmin);
}

TEST(ParseCreateApiKeyTest, UnknownRoleIsRejected) {
  ExpectInvalid(ParseCreateApiKey(R"({"user_id":"a","role":"root"})"), "role");
  ExpectInvalid(ParseCreateApiKey(R"({"user_id":"a","role":"Admin"})"), "role");
  ExpectInvalid(ParseCreateApiKey(R"({"user_id":"a","role":1})"), "role");
}

TEST(ParseCreateApiKeyTest, UserIdIsRequiredAndChecked) {
  ExpectInvalid(ParseCreateApiKey("{}"), "user_id");
  ExpectInvalid(ParseCreateApiKey(R"({"user_id":null})"), "user_id");
  ExpectInvalid(ParseCreateApiKey(R"({"user_id":7})"), "user_id");
  ExpectInvalid(ParseCreateApiKey(R"({"user_id":""})"), "user_id");
  ExpectInvalid(ParseCreateApiKey(R"({"user_id":"a b"})"), "user_id");
  ExpectInvalid(ParseCreateApiKey(R"({"user_id":"a/b"})"), "user_id");
  ExpectOk(ParseCreateApiKey("{\"user_id\":" + Q(Repeat("u", 128)) + "}"));
  ExpectInvalid(ParseCreateApiKey("{\"user_id\":" + Q(Repeat("u", 129)) + "}"),
                "user_id");
}

TEST(IsValidUserIdTest, AllowsOnlyTheDocumentedAlphabet) {
  EXPECT_TRUE(IsValidUserId("A-z_0.9@host:1"));
  EXPECT_FALSE(IsValidUserId(""));
  EXPECT_FALSE(IsValidUserId(std::string("a\0b", 3)));
  EXPECT_FALSE(IsValidUserId("caf\xC3\xA9"));
  EXPECT_FALSE(IsValidUserId("a\nb"));
  EXPECT_TRUE(IsValidUserId(Repeat("x", 128)));
  EXPECT_FALSE(IsValidUserId(Repeat("x", 129)));
}

// ---------------------------------------------------------------------------
// POST /v1/webhooks

TEST(ParseCreateWebhookTest, ReadsUrlEventsAndDescription) {
  auto r = ParseCreateWebhook(
      R"({"url":"https://crm.example.com/hooks?x=1","events":)"
      R"(["conversation.completed","message.created"],"description":"CRM"})");
  ExpectOk(r);
  EXPECT_EQ(r->url, "https://crm.example.com/hooks?x=1");
  EXPECT_EQ(r->events, (std::vector<WebhookEventKind>{
                           WebhookEventKind::kConversationCompleted,
                           WebhookEventKind::kMessageCreated}));
  EXPECT_EQ(r->description, "CRM");
  auto no_description = ParseCreateWebhook(
      R"({"url":"http://127.0.0.1:9000/h","events":["conversation.created"],)"
      R"("description":null})");
  ExpectOk(no_description);
  EXPECT_EQ(no_description->description, std::nullopt);
}

TEST(ParseCreateWebhookTest, UrlMustBeAbsoluteHttpWithAHost) {
  for (std::string_view url :
       {"", "/relative", "example.com/hook", "ftp://example.com/hook",
        "mailto:a@example.com", "http://", "https:///path",
        "http://user:pass@example.com/", "http://example.com/#frag",
        "http://exa mple.com/", "http://example.com:99999/",
        "http://example.com:0/", "http://example.com:/"}) {
    std::string body =
        R"({"url":")" + std::string(url) + R"(","events":["message.created"]})";
    ExpectInvalid(ParseCreateWebhook(body), "url");
  }
  ExpectInvalid(ParseCreateWebhook(R"({"events":["message.created"]})"), "url");
  ExpectInvalid(ParseCreateWebhook(R"({"url":7,"events":["message.created"]})"),
                "url");
  std::string long_url = "https://example.com/" + std::string(2030, 'a');
  ExpectInvalid(ParseCreateWebhook(R"({"url":")" + long_url +
                                   R"(","events":["message.created"]})"),
                "url");
}

TEST(ParseCreateWebhookTest, EventsMustBeDistinctKnownKinds) {
  for (std::string_view events :
       {"null", "[]", "\"message.created\"", "[\"message.created\",1]",
        "[\"message.deleted\"]", "[\"Message.Created\"]",
        "[\"message.created\",\"message.created\"]"}) {
    std::string body =
        R"({"url":"http://example.com/","events":)" + std::string(events) + "}";
    ExpectInvalid(ParseCreateWebhook(body), "events");
  }
  ExpectInvalid(ParseCreateWebhook(R"({"url":"http://example.com/"})"),
                "events");
}

TEST(ParseCreateWebhookTest, DescriptionIsAtMost500Characters) {
  auto body = [](const std::string& d) {
    return R"({"url":"http://example.com/","events":["message.created"],)"
           R"("description":")" +
           d + "\"}";
  };
  std::string five_hundred;
  for (int i = 0; i < 500; ++i) five_hundred += "\u00e9";  // 2 bytes each
  ExpectOk(ParseCreateWebhook(body(five_hundred)));
  ExpectInvalid(ParseCreateWebhook(body(five_hundred + "x")), "description");
  ExpectInvalid(
      ParseCreateWebhook(
          R"({"url":"http://example.com/","events":["message.created"],)"
          R"("description":5})"),
      "description");
}

}  // namespace
}  // namespace convstore
