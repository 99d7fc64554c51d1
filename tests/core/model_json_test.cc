// Spec for core/model_json.h pieces that need no store: joining rendered
// JSON into an array, room URLs, and the stored list form of a conversation.
#include "core/model_json.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <string>
#include <vector>

namespace convstore {
namespace {

TEST(JoinJsonArrayTest, EmptyIsAnEmptyArray) {
  EXPECT_EQ("[]", JoinJsonArray({}));
}

TEST(JoinJsonArrayTest, JoinsRenderedMessagesByteForByte) {
  Message a{"msg-1", "conv-1", MessageRole::kUser, "h\xC3\xA9llo, \"you\"", 0};
  Message b{"msg-2", "conv-1", MessageRole::kAssistant, "hi", 1};
  const std::vector<std::string> items = {RenderMessage(a), RenderMessage(b)};
  const std::string joined = JoinJsonArray(items);
  EXPECT_EQ("[" + items[0] + "," + items[1] + "]", joined);
  const boost::json::value parsed = boost::json::parse(joined);
  ASSERT_EQ(2u, parsed.as_array().size());
  EXPECT_EQ("h\xC3\xA9llo, \"you\"",
            parsed.as_array()[0].at("content").as_string());
}

TEST(RenderMessageTest, WritesTheBytesOfTheMessageObject) {
  // The rendered row is what GET .../messages serves and what a rebuild must
  // reproduce, so it is exactly json::serialize of the documented object,
  // whatever the content holds.
  for (const std::string& content :
       {std::string(""), std::string("plain"),
        std::string("quote \" backslash \\ slash / tab \t nl \n"),
        std::string("ctl \x01\x1f del \x7f"), std::string("nul \0 mid", 9),
        std::string("del \x7f alone, nothing else to escape"),
        std::string("a quote at the end, past eight bytes\""),
        std::string("h\xC3\xA9llo \xF0\x9F\x8E\x99 \xE2\x80\xA8"),
        std::string(5000, 'x') + "\"" + std::string(300, '\n')}) {
    for (MessageRole role :
         {MessageRole::kUser, MessageRole::kAssistant, MessageRole::kSystem}) {
      Message m{"msg-0189406c-94c5-7000-8000-000000000003",
                "conv-0189406c-94c5-7000-8000-000000000001", role, content,
                1688999405123};
      boost::json::object o;
      o["id"] = m.id;
      o["conversation_id"] = m.conversation_id;
      o["role"] = ToString(m.role);
      o["content"] = m.content;
      o["created_at"] = "2023-07-10T14:30:05.123Z";
      EXPECT_EQ(boost::json::serialize(o), RenderMessage(m))
          << ToString(role) << " " << content.substr(0, 40);
    }
  }
}

TEST(AppendJsonStringTest, WritesWhatSerializeWritesForEveryByteAtEveryPlace) {
  // Every byte value at every offset of strings from empty to longer than
  // two of the sixteen-byte steps the escape check takes (shorter ones are
  // padded to one step), appended after text already there.
  for (size_t size = 0; size <= 40; ++size) {
    for (int byte = 0; byte < 256; ++byte) {
      for (size_t at = 0; at < std::max<size_t>(size, 1); ++at) {
        std::string s(size, 'a');
        if (size > 0) s[at] = static_cast<char>(byte);
        std::string out = "before";
        AppendJsonString(s, out);
        ASSERT_EQ("before" + boost::json::serialize(boost::json::string(s)),
                  out)
            << "byte " << byte << " at " << at << " of " << size;
      }
    }
  }
}

TEST(RoomUrlTemplateTest, FillsTheLiveKitUrlAndEveryRoom) {
  RoomUrlTemplate t("{livekit_url}/room/{room}?again={room}", "wss://lk.test");
  EXPECT_EQ("wss://lk.test/room/conv-1?again=conv-1", t.Render("conv-1"));
  EXPECT_EQ("https://x/y",
            RoomUrlTemplate("https://x/y", "wss://a").Render("r"));
  EXPECT_EQ("r", RoomUrlTemplate("{room}", "").Render("r"));
}

TEST(RoomUrlTemplateTest, AppendsTheUrlAsTheJsonStringOfItsRendering) {
  // Escapes in the template, in the LiveKit URL and in the room itself.
  const RoomUrlTemplate t("{livekit_url}/r\\oom/{room}?\"q\"={room}\t",
                          "wss://lk\u0001.test/caf\xC3\xA9");
  for (std::string_view room :
       {"conv-0189406c", "", "a\"b\\c", "tab\there\x7f", "\xC3\xA9\n"}) {
    std::string out = "[";
    t.AppendJson(room, out);
    EXPECT_EQ("[" + boost::json::serialize(boost::json::string(t.Render(room))),
              out)
        << room;
  }
}

TEST(RoomUrlTemplateTest, EscapesAByteThatNeedsItAtAnyOffsetOfALongRoom) {
  const RoomUrlTemplate t("wss://lk/{room}", "");
  // Bytes that need an escape, and their neighbours that do not.
  for (char c : {'"', '\\', '\x01', '\x1f', '\0', ' ', '!', '#', '[', ']',
                 '\x7f', '\x80', '\xff'}) {
    // Shorter than, as long as and longer than the sixteen bytes the check
    // looks at in one step (then its tail overlaps bytes already seen).
    for (size_t size : {5, 16, 24, 33}) {
      for (size_t at = 0; at < size; ++at) {
        std::string room(size, 'a');
        room[at] = c;
        std::string out;
        t.AppendJson(room, out);
        EXPECT_EQ(boost::json::serialize(boost::json::string(t.Render(room))),
                  out)
            << static_cast<int>(static_cast<unsigned char>(c)) << " at " << at
            << " of " << size;
      }
    }
  }
}

Conversation SampleConversation() {
  Conversation c;
  c.id = "conv-0189406c-94c5-7000-8000-000000000001";
  c.agent_id = "agent-0189406c-94c5-7000-8000-000000000002";
  c.title = "Caf\xC3\xA9 \"orders\", line 2\nend\\";
  c.created_by = "user-1";
  c.status = ConversationStatus::kCompleted;
  c.metadata = {{"k\"ey", "v\u0001"}, {"lang", "fr"}};
  c.created_at_ms = 1688999405123;
  c.updated_at_ms = 1688999406000;
  return c;
}

TEST(ConversationListEntryTest, RendersTheSameBytesAsTheObject) {
  Conversation c = SampleConversation();
  for (const char* url : {"wss://lk/room/x", "", "a\"b\\c\u00e9"}) {
    std::string stored = EncodeConversationListEntry(c, 7, 42);
    auto entry = DecodeConversationListEntry(stored);
    ASSERT_TRUE(entry.ok()) << entry.status().ToString();
    std::string out;
    // A template without "{room}" renders as itself.
    AppendConversationJson(*entry, RoomUrlTemplate(url, ""), c.id, out);
    EXPECT_EQ(boost::json::serialize(ConversationToJson(c, url)), out);
  }
  c.metadata.clear();
  c.title.clear();
  std::string stored = EncodeConversationListEntry(c, 7, 42);
  auto entry = DecodeConversationListEntry(stored);
  ASSERT_TRUE(entry.ok());
  std::string out;
  AppendConversationJson(*entry, RoomUrlTemplate("u/{room}", ""), "r\"1", out);
  EXPECT_EQ(boost::json::serialize(ConversationToJson(c, "u/r\"1")), out);
}

TEST(ConversationListEntryTest, CarriesWhatListsFilterOnAndAccessChecksNeed) {
  Conversation c = SampleConversation();
  std::string stored = EncodeConversationListEntry(c, 7, 42);
  auto entry = DecodeConversationListEntry(stored);
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(ConversationStatus::kCompleted, entry->status);
  EXPECT_EQ(c.agent_id, entry->agent_id);
  EXPECT_EQ(c.created_by, entry->created_by);
  EXPECT_EQ(7u, entry->revision);
  EXPECT_EQ(42u, entry->status_position);
}

TEST(ConversationListEntryTest, DamagedBytesAreCorruptionNotACrash) {
  const std::string stored =
      EncodeConversationListEntry(SampleConversation(), 7, 42);
  for (size_t n = 0; n < stored.size(); ++n) {
    auto entry = DecodeConversationListEntry(stored.substr(0, n));
    EXPECT_FALSE(entry.ok()) << "prefix of " << n << " bytes decoded";
  }
  EXPECT_FALSE(DecodeConversationListEntry(stored + "x").ok());
  std::string bad_status = stored;
  bad_status[4] = 7;
  EXPECT_FALSE(DecodeConversationListEntry(bad_status).ok());
  EXPECT_FALSE(DecodeConversationListEntry("").ok());
}

}  // namespace
}  // namespace convstore
