// A conversation's messages over real HTTP, as the documented page
// (seeds/get-conversation-messages.txt) and API.md describe them: append,
// the full transcript (streamed, oldest first), pages with limit/after and
// Link, and the field limits.

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "tests/support/api_assertions.h"
#include "tests/support/test_server.h"

namespace convstore::testing {
namespace {

namespace json = boost::json;

// ------------------------------------------------------------ helpers

const std::regex kMessageId(
    "msg-[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");

json::array ParsedArray(const HttpResponse& r) {
  json::value v = Parsed(r);
  if (!v.is_array()) {
    ADD_FAILURE() << "not a JSON array: " << r.body.substr(0, 200);
    return {};
  }
  return v.as_array();
}

std::string Repeat(std::string_view s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

// ------------------------------------------------------------ fixture

class MessagesTest : public ::testing::Test {
 protected:
  MessagesTest()
      : client_(server_.Client()), alice_(server_.CreateKey("alice")) {
    agent_ =
        Str(CreateAgent(client_, alice_, Json({{"name", "No instructions"}})),
            "id");
    conv_ = NewConversation();
  }

  std::string NewConversation() {
    return Str(CreateConversation(client_, alice_, agent_), "id");
  }
  std::string Path(const std::string& conv) {
    return "/v1/conversations/" + conv + "/messages";
  }

  HttpResponse Append(const std::string& conv, const json::value& body) {
    return client_.Post(Path(conv), alice_, Json(body));
  }
  HttpResponse Append(const json::value& body) { return Append(conv_, body); }
  // Appends one message and returns it (asserting 201).
  json::object Say(const std::string& content, const char* role = "user",
                   const std::string& conv = "") {
    HttpResponse r = Append(conv.empty() ? conv_ : conv,
                            {{"role", role}, {"content", content}});
    EXPECT_EQ(201u, r.status) << r.body;
    json::value v = Parsed(r);
    return v.is_object() ? v.as_object() : json::object();
  }

  HttpResponse List(const std::string& query = "",
                    const std::string& conv = "") {
    return client_.Get(Path(conv.empty() ? conv_ : conv) + query, alice_);
  }

  // Every page from `query`, following Link (at most 100 pages).
  std::vector<std::string> ListAllIds(const std::string& query,
                                      std::vector<size_t>* page_sizes) {
    std::vector<std::string> ids;
    std::string next = Path(conv_) + query;
    for (int page = 0; !next.empty(); ++page) {
      if (page == 100) {
        ADD_FAILURE() << "more than 100 pages";
        break;
      }
      HttpResponse r = client_.Get(next, alice_);
      EXPECT_EQ(200u, r.status) << next << ": " << r.body;
      if (r.status != 200) break;
      std::vector<std::string> page_ids = Ids(ParsedArray(r));
      page_sizes->push_back(page_ids.size());
      ids.insert(ids.end(), page_ids.begin(), page_ids.end());
      next = NextLink(r);
      if (!next.empty()) {
        EXPECT_EQ(0u, next.rfind(Path(conv_) + "?", 0)) << next;
      }
    }
    return ids;
  }

  HttpResponse Complete(const std::string& conv, const char* status) {
    return client_.Patch("/v1/conversations/" + conv, alice_,
                         Json({{"status", status}}));
  }

  TestServer server_;
  HttpClient client_;
  std::string alice_;
  std::string agent_;
  std::string conv_;
};

// ------------------------------------------------------------ append

TEST_F(MessagesTest, AppendReturns201WithExactlyTheDocumentedFields) {
  HttpResponse r = Append(
      {{"role", "assistant"}, {"content", "Hello! How can I help you today?"}});
  ASSERT_EQ(201u, r.status) << r.body;
  json::object m = r.json().as_object();
  EXPECT_EQ((std::set<std::string>{"id", "conversation_id", "role", "content",
                                   "created_at"}),
            Keys(m));
  EXPECT_TRUE(std::regex_match(Str(m, "id"), kMessageId)) << Str(m, "id");
  EXPECT_EQ(conv_, Str(m, "conversation_id"));
  EXPECT_EQ("assistant", Str(m, "role"));
  EXPECT_EQ("Hello! How can I help you today?", Str(m, "content"));
  EXPECT_TRUE(std::regex_match(Str(m, "created_at"), kTimestamp))
      << Str(m, "created_at");
}

TEST_F(MessagesTest, TheAppendAnswerIsTheMessageByteForByteAsListed) {
  HttpResponse first = Append(
      {{"role", "user"}, {"content", "Quotes \" and \u00e9 and\nlines"}});
  ASSERT_EQ(201u, first.status) << first.body;
  HttpResponse second = Append({{"role", "assistant"}, {"content", "Sure."}});
  ASSERT_EQ(201u, second.status) << second.body;

  HttpResponse list = List();
  ASSERT_EQ(200u, list.status) << list.body;
  const size_t at = list.body.find(first.body);
  ASSERT_NE(std::string::npos, at) << first.body << " not in " << list.body;
  EXPECT_EQ(at + first.body.size() + 1, list.body.find(second.body))
      << "the two answers, in order and comma-separated, are the list's items";
}

TEST_F(MessagesTest, EveryRoleIsAccepted) {
  for (const char* role : {"system", "user", "assistant"}) {
    EXPECT_EQ(role, Str(Say("hi", role), "role"));
  }
}

TEST_F(MessagesTest, UnknownFieldsAreIgnored) {
  HttpResponse r =
      Append({{"role", "user"}, {"content", "hi"}, {"mood", "happy"}});
  ASSERT_EQ(201u, r.status) << r.body;
  EXPECT_FALSE(r.json().as_object().contains("mood"));
}

// ------------------------------------------------------------ list

TEST_F(MessagesTest, ListReturnsEveryMessageOldestFirst) {
  std::vector<json::value> said;
  said.emplace_back(Say("Hello! How can I help you today?", "assistant"));
  said.emplace_back(Say("I need help with product setup", "user"));
  said.emplace_back(Say("Sure.", "assistant"));

  HttpResponse r = List();
  ASSERT_EQ(200u, r.status) << r.body;
  // A transcript that fits in one 64 KiB chunk goes out whole, with its
  // length; longer ones are streamed (below).
  EXPECT_FALSE(r.chunked);
  EXPECT_EQ(std::to_string(r.body.size()), r.header("Content-Length"));
  EXPECT_EQ(0u, r.header("Content-Type").rfind("application/json", 0))
      << r.header("Content-Type");
  EXPECT_EQ(json::value(json::array(said.begin(), said.end())), Parsed(r));
}

TEST_F(MessagesTest, AConversationWithoutMessagesListsAnEmptyArray) {
  HttpResponse r = List();
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ(json::value(json::array()), Parsed(r));
}

TEST_F(MessagesTest, AnEmptyPageIsAnEmptyArrayWithoutLink) {
  HttpResponse r = List("?limit=10");
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ(json::value(json::array()), Parsed(r));
  EXPECT_EQ("", r.header("Link"));
}

TEST_F(MessagesTest, ListShowsOnlyThatConversationsMessages) {
  std::string other = NewConversation();
  std::string mine = Str(Say("mine"), "id");
  std::string theirs = Str(Say("theirs", "user", other), "id");
  EXPECT_EQ(std::vector<std::string>{mine}, Ids(ParsedArray(List())));
  EXPECT_EQ(std::vector<std::string>{theirs},
            Ids(ParsedArray(List("", other))));
  EXPECT_EQ(std::vector<std::string>{mine}, Ids(ParsedArray(List("?limit=5"))));
}

TEST_F(MessagesTest, ThreeHundredUnicodeMessagesRoundTripByteIdentically) {
  const std::
      vector<std::string>
          samples =
              {
                  "h\xC3\xA9llo w\xC3\xB6rld",  // héllo wörld
                  "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95"
                  "\x8C",  // 你好，世界
                  "\xF0\x9F\x8E\x99\xEF\xB8\x8F mic \xF0\x9F\x98\x80",  // 🎙️
                                                                        // mic 😀
                  "quote \" backslash \\ slash / newline \n tab \t",
                  "control \x01 and nul-free \x7F",
                  "\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D RTL",  // שלום RTL
              };
  std::vector<std::string> contents;
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i) {
    // About 700 bytes each, so the streamed transcript spans many chunks.
    contents.push_back(std::to_string(i) + ": " +
                       Repeat(samples[i % samples.size()] + " ", 20));
    json::object m = Say(contents.back(), i % 2 ? "assistant" : "user");
    ids.push_back(Str(m, "id"));
    ASSERT_EQ(contents.back(), Str(m, "content"));
  }

  HttpResponse r = List();
  ASSERT_EQ(200u, r.status);
  EXPECT_TRUE(r.chunked) << "a 210 KB transcript is streamed in chunks";
  json::array listed = ParsedArray(r);
  ASSERT_EQ(300u, listed.size());
  for (size_t i = 0; i < listed.size(); ++i) {
    const json::object& m = listed[i].as_object();
    ASSERT_EQ(ids[i], Str(m, "id")) << "message " << i;
    ASSERT_EQ(contents[i], Str(m, "content")) << "message " << i;
    ASSERT_EQ(i % 2 ? "assistant" : "user", Str(m, "role")) << "message " << i;
  }
}

TEST_F(MessagesTest, PagesVisitEveryMessageExactlyOnce) {
  std::vector<std::string> said;
  for (int i = 0; i < 25; ++i)
    said.push_back(Str(Say("m" + std::to_string(i)), "id"));
  std::vector<size_t> sizes;
  EXPECT_EQ(said, ListAllIds("?limit=10", &sizes));
  EXPECT_EQ((std::vector<size_t>{10, 10, 5}), sizes);
}

// The store keeps a transcript in pages of 16 messages: a cursor on any
// message, near a page's edge or not, resumes right after it, and the whole
// transcript reads back in order, with another conversation's appends
// interleaved.
TEST_F(MessagesTest, AfterAnyMessageOfALongTranscriptResumesRightAfterIt) {
  const std::string other = NewConversation();
  std::vector<std::string> said;
  std::vector<std::string> theirs;
  for (int i = 0; i < 40; ++i) {
    said.push_back(Str(Say("m" + std::to_string(i)), "id"));
    theirs.push_back(Str(Say("o" + std::to_string(i), "user", other), "id"));
  }
  EXPECT_EQ(said, Ids(ParsedArray(List())));
  EXPECT_EQ(theirs, Ids(ParsedArray(List("", other))));
  for (size_t i = 0; i < said.size(); ++i) {
    SCOPED_TRACE("after message " + std::to_string(i));
    HttpResponse r = List("?limit=3&after=" + said[i]);
    ASSERT_EQ(200u, r.status) << r.body;
    const size_t end = std::min(said.size(), i + 4);
    EXPECT_EQ(
        std::vector<std::string>(said.begin() + i + 1, said.begin() + end),
        Ids(ParsedArray(r)));
    EXPECT_EQ(end < said.size(), !NextLink(r).empty());
  }
  std::vector<size_t> sizes;
  EXPECT_EQ(said, ListAllIds("?limit=16", &sizes));
  EXPECT_EQ((std::vector<size_t>{16, 16, 8}), sizes);
}

TEST_F(MessagesTest, AFullLastPageHasNoLink) {
  std::vector<std::string> said;
  for (int i = 0; i < 6; ++i)
    said.push_back(Str(Say("m" + std::to_string(i)), "id"));
  std::vector<size_t> sizes;
  EXPECT_EQ(said, ListAllIds("?limit=3", &sizes));
  EXPECT_EQ((std::vector<size_t>{3, 3}), sizes);
}

TEST_F(MessagesTest, AfterStartsRightAfterThatMessage) {
  std::vector<std::string> said;
  for (int i = 0; i < 5; ++i)
    said.push_back(Str(Say("m" + std::to_string(i)), "id"));
  HttpResponse r = List("?limit=2&after=" + said[1]);
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ((std::vector<std::string>{said[2], said[3]}), Ids(ParsedArray(r)));
  r = List("?after=" + said[3]);
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ(std::vector<std::string>{said[4]}, Ids(ParsedArray(r)));
  r = List("?after=" + said[4]);
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ(json::value(json::array()), Parsed(r));
}

TEST_F(MessagesTest, AfterThatIsNotAMessageOfThisConversationIs400) {
  Say("here");
  std::string other = NewConversation();
  std::string elsewhere = Str(Say("elsewhere", "user", other), "id");
  for (const std::string& after :
       {elsewhere, std::string("msg-0190c1e8-0000-7000-8000-000000000000"),
        std::string("garbage"), conv_}) {
    SCOPED_TRACE(after);
    HttpResponse r = List("?limit=10&after=" + after);
    EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
    EXPECT_EQ("after", ErrorParam(r));
  }
}

TEST_F(MessagesTest, LimitMustBeOneTo1000) {
  Say("one");
  for (const char* limit : {"0", "1001", "-1", "many"}) {
    SCOPED_TRACE(limit);
    HttpResponse r = List(std::string("?limit=") + limit);
    EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
    EXPECT_EQ("limit", ErrorParam(r));
  }
  EXPECT_EQ(1u, ParsedArray(List("?limit=1")).size());
  EXPECT_EQ(1u, ParsedArray(List("?limit=1000")).size());
}

// ------------------------------------------------------------ validation

TEST_F(MessagesTest, RoleMustBeSystemUserOrAssistant) {
  uint64_t head = LogHead(client_);
  for (const json::value& body :
       {json::value({{"role", "bot"}, {"content", "x"}}),
        json::value({{"role", "USER"}, {"content", "x"}}),
        json::value({{"role", ""}, {"content", "x"}}),
        json::value({{"role", 1}, {"content", "x"}}),
        json::value({{"content", "x"}})}) {
    SCOPED_TRACE(Json(body));
    HttpResponse r = Append(body);
    EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
    EXPECT_EQ("role", ErrorParam(r));
  }
  EXPECT_EQ(head, LogHead(client_));
}

TEST_F(MessagesTest, ContentMustBeANonEmptyString) {
  uint64_t head = LogHead(client_);
  for (const json::value& body :
       {json::value({{"role", "user"}, {"content", ""}}),
        json::value({{"role", "user"}, {"content", 5}}),
        json::value({{"role", "user"}, {"content", nullptr}}),
        json::value({{"role", "user"}})}) {
    SCOPED_TRACE(Json(body));
    HttpResponse r = Append(body);
    EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
    EXPECT_EQ("content", ErrorParam(r));
  }
  EXPECT_EQ(head, LogHead(client_));
}

TEST_F(MessagesTest, ContentOf65536BytesIsAcceptedAndReadBackWhole) {
  std::string content(65536, 'c');
  json::object m = Say(content);
  EXPECT_EQ(content, Str(m, "content"));
  Say("after the big one");
  Say(std::string(65536, 'd'));
  json::array listed = ParsedArray(List());
  ASSERT_EQ(3u, listed.size());
  EXPECT_EQ(content, Str(listed[0].as_object(), "content"));
  EXPECT_EQ("after the big one", Str(listed[1].as_object(), "content"));
  EXPECT_EQ(std::string(65536, 'd'), Str(listed[2].as_object(), "content"));
}

TEST_F(MessagesTest, ContentOf65537BytesIs400) {
  HttpResponse r =
      Append({{"role", "user"}, {"content", std::string(65537, 'c')}});
  EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
  EXPECT_EQ("content", ErrorParam(r));
  EXPECT_EQ(0u, ParsedArray(List("?limit=10")).size());
}

TEST_F(MessagesTest, ContentLimitCountsUtf8Bytes) {
  const std::string emoji = "\xF0\x9F\x98\x80";  // 😀, 4 bytes
  std::string exactly = Repeat(emoji, 65536 / 4);
  EXPECT_EQ(exactly, Str(Say(exactly), "content"));
  HttpResponse r = Append({{"role", "user"}, {"content", exactly + "a"}});
  EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
  EXPECT_EQ("content", ErrorParam(r));
}

// ------------------------------------------------------------ status

TEST_F(MessagesTest, AppendToACompletedOrArchivedConversationIs409) {
  Say("before");
  std::string archived = NewConversation();
  ASSERT_EQ(200u, Complete(conv_, "completed").status);
  ASSERT_EQ(200u, Complete(archived, "archived").status);
  uint64_t head = LogHead(client_);
  for (const std::string& conv : {conv_, archived}) {
    SCOPED_TRACE(conv);
    HttpResponse r = Append(conv, {{"role", "user"}, {"content", "too late"}});
    EXPECT_TRUE(IsError(r, 409, "conflict_error"));
    EXPECT_EQ("conversation_not_active", ErrorField(r, "code"));
  }
  EXPECT_EQ(head, LogHead(client_));
  EXPECT_EQ(1u, ParsedArray(List("?limit=10")).size());
}

TEST_F(MessagesTest, MessagesStayReadableAfterTheConversationEnds) {
  json::object said = Say("kept");
  ASSERT_EQ(200u, Complete(conv_, "archived").status);
  HttpResponse r = List();
  ASSERT_EQ(200u, r.status);
  EXPECT_EQ(json::value(json::array{said}), Parsed(r));
}

}  // namespace
}  // namespace convstore::testing
