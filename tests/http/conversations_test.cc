// The conversations resource over real HTTP, as the documented pages
// (seeds/create-conversation.txt) and API.md describe it: the created object
// and its LiveKit token, the system message, get, list (filters, paging),
// patch (status transitions, ETag), fresh tokens, ownership and ids.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/encoding.h"
#include "tests/support/api_assertions.h"
#include "tests/support/test_server.h"

namespace convstore::testing {
namespace {

namespace json = boost::json;

// ------------------------------------------------------------ helpers

const std::regex kConversationId(
    "conv-[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
constexpr const char* kUnknownConversation =
    "conv-0190c1e8-0000-7000-8000-000000000000";

std::vector<std::string> Reversed(std::vector<std::string> v) {
  return std::vector<std::string>(v.rbegin(), v.rend());
}

struct Jwt {
  json::object header;
  json::object payload;
};

// Decodes a compact JWS and checks its HS256 signature with `secret`.
std::optional<Jwt> DecodeJwt(const std::string& token,
                             const std::string& secret = "secret") {
  size_t dot1 = token.find('.');
  size_t dot2 = dot1 == std::string::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string::npos || token.find('.', dot2 + 1) != std::string::npos) {
    ADD_FAILURE() << "not a three-part JWT: " << token;
    return std::nullopt;
  }
  auto header = Base64UrlDecode(token.substr(0, dot1));
  auto payload = Base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  auto signature = Base64UrlDecode(token.substr(dot2 + 1));
  if (!header || !payload || !signature) {
    ADD_FAILURE() << "a JWT part is not base64url: " << token;
    return std::nullopt;
  }
  EXPECT_EQ(HmacSha256(secret, token.substr(0, dot2)), *signature)
      << "the token is not signed with the LiveKit API secret";
  boost::system::error_code ec1, ec2;
  json::value h = json::parse(*header, ec1);
  json::value p = json::parse(*payload, ec2);
  if (ec1 || ec2 || !h.is_object() || !p.is_object()) {
    ADD_FAILURE() << "JWT header or payload is not a JSON object";
    return std::nullopt;
  }
  return Jwt{h.as_object(), p.as_object()};
}

json::value ExpectedVideoGrant(const std::string& room) {
  return {{"room", room},
          {"roomJoin", true},
          {"canPublish", true},
          {"canSubscribe", true},
          {"canPublishData", true}};
}

// ------------------------------------------------------------ fixture

class ConversationsTest : public AliceAndBobTest {
 protected:
  ConversationsTest() {
    support_ = CreateAgent(
        client_, alice_,
        Json({{"name", "Support"},
              {"instructions", "You are a helpful product support agent..."},
              {"dispatch_name", "support-agent"}}));
    plain_ = CreateAgent(client_, alice_, Json({{"name", "Plain"}}));
  }

  std::string SupportId() { return Str(support_, "id"); }
  std::string PlainId() { return Str(plain_, "id"); }

  HttpResponse Create(const json::value& body, const std::string& key = "") {
    return client_.Post("/v1/conversations", key.empty() ? alice_ : key,
                        Json(body));
  }
  json::object NewConversation(const std::string& agent_id) {
    return CreateConversation(client_, alice_, agent_id);
  }
  std::string NewConversationId(const std::string& agent_id) {
    return Str(NewConversation(agent_id), "id");
  }
  HttpResponse Get(const std::string& id, const std::string& key = "") {
    return client_.Get("/v1/conversations/" + id, key.empty() ? alice_ : key);
  }
  HttpResponse Patch(const std::string& id, const json::value& body,
                     std::vector<std::pair<std::string, std::string>> extra = {}) {
    return client_.Patch("/v1/conversations/" + id, alice_, Json(body),
                         std::move(extra));
  }
  HttpResponse SetStatus(const std::string& id, const char* status) {
    return Patch(id, {{"status", status}});
  }
  HttpResponse NewToken(const std::string& id, const std::string& key = "") {
    return client_.Post("/v1/conversations/" + id + "/token",
                        key.empty() ? alice_ : key, "");
  }
  HttpResponse Messages(const std::string& id) {
    return client_.Get("/v1/conversations/" + id + "/messages", alice_);
  }

  // Every page from `target`, following Link (at most 100 pages).
  std::vector<std::string> ListAll(const std::string& target,
                                   const std::string& key,
                                   std::vector<size_t>* page_sizes = nullptr) {
    std::vector<std::string> ids;
    std::string next = target;
    for (int page = 0; !next.empty(); ++page) {
      if (page == 100) {
        ADD_FAILURE() << "more than 100 pages";
        break;
      }
      HttpResponse r = client_.Get(next, key);
      EXPECT_EQ(200u, r.status) << next << ": " << r.body;
      if (r.status != 200) break;
      json::value items = r.json();
      for (const auto& item : items.as_array()) {
        EXPECT_FALSE(item.as_object().contains("token")) << "list item has a token";
      }
      std::vector<std::string> page_ids = Ids(items.as_array());
      if (page_sizes) page_sizes->push_back(page_ids.size());
      ids.insert(ids.end(), page_ids.begin(), page_ids.end());
      next = NextLink(r);
      if (!next.empty()) {
        EXPECT_EQ(0u, next.rfind("/v1/conversations?", 0)) << next;
      }
    }
    return ids;
  }
  std::vector<std::string> ListAll(const std::string& target) {
    return ListAll(target, alice_);
  }

  json::object support_;  // has instructions and a dispatch_name
  json::object plain_;    // has neither
};

// ------------------------------------------------------------ create

TEST_F(ConversationsTest, CreateReturnsExactlyTheDocumentedFieldsPlusMetadata) {
  HttpResponse r = Create({{"agent_id", SupportId()},
                           {"title", "Product Support Session"}});
  ASSERT_EQ(201u, r.status) << r.body;
  json::object c = r.json().as_object();
  EXPECT_EQ((std::set<std::string>{"id", "agent_id", "title", "created_at",
                                   "updated_at", "created_by", "status",
                                   "room_name", "room_url", "token",
                                   "metadata"}),
            Keys(c));
  EXPECT_TRUE(std::regex_match(Str(c, "id"), kConversationId)) << Str(c, "id");
  EXPECT_EQ(SupportId(), Str(c, "agent_id"));
  EXPECT_EQ("Product Support Session", Str(c, "title"));
  EXPECT_TRUE(std::regex_match(Str(c, "created_at"), kTimestamp))
      << Str(c, "created_at");
  EXPECT_EQ(Str(c, "created_at"), Str(c, "updated_at"));
  EXPECT_EQ("alice", Str(c, "created_by"));
  EXPECT_EQ("active", Str(c, "status"));
  EXPECT_EQ(Str(c, "id"), Str(c, "room_name"));
  EXPECT_EQ("ws://localhost:7880/room/" + Str(c, "id"), Str(c, "room_url"));
  EXPECT_EQ(json::value(json::object()), c["metadata"]);
  EXPECT_EQ("/v1/conversations/" + Str(c, "id"), r.header("Location"));
  EXPECT_EQ("\"0\"", r.header("ETag"));
}

TEST_F(ConversationsTest, TitleDefaultsToNewConversation) {
  json::object c = NewConversation(SupportId());
  EXPECT_EQ("New Conversation", Str(c, "title"));
}

TEST_F(ConversationsTest, CreateKeepsTheGivenMetadata) {
  HttpResponse r = Create({{"agent_id", PlainId()},
                           {"metadata", {{"customer", "c-42"}, {"channel", "web"}}}});
  ASSERT_EQ(201u, r.status) << r.body;
  EXPECT_EQ(json::value({{"customer", "c-42"}, {"channel", "web"}}),
            r.json().as_object()["metadata"]);
}

TEST_F(ConversationsTest, TokenIsASignedLiveKitJwtForTheRoom) {
  json::object c = NewConversation(SupportId());
  std::optional<Jwt> jwt = DecodeJwt(Str(c, "token"));
  ASSERT_TRUE(jwt);
  EXPECT_EQ("HS256", Str(jwt->header, "alg"));
  json::object& p = jwt->payload;
  EXPECT_EQ("devkey", Str(p, "iss"));
  EXPECT_EQ("alice", Str(p, "sub"));
  ASSERT_TRUE(p["nbf"].is_int64() && p["exp"].is_int64()) << Json(p);
  EXPECT_EQ(3600, p["exp"].as_int64() - p["nbf"].as_int64());
  EXPECT_NEAR(static_cast<double>(NowMillis() / 1000),
              static_cast<double>(p["nbf"].as_int64()), 60);
  EXPECT_EQ(ExpectedVideoGrant(Str(c, "id")), p["video"]);
}

TEST_F(ConversationsTest, TokenDispatchesTheAgentWhenItHasADispatchName) {
  json::object c = NewConversation(SupportId());
  std::optional<Jwt> jwt = DecodeJwt(Str(c, "token"));
  ASSERT_TRUE(jwt);
  ASSERT_TRUE(jwt->payload.contains("roomConfig")) << Json(jwt->payload);
  json::object config = jwt->payload["roomConfig"].as_object();
  EXPECT_EQ(Str(c, "id"), Str(config, "name"));
  ASSERT_TRUE(config["agents"].is_array());
  ASSERT_EQ(1u, config["agents"].as_array().size());
  json::object agent = config["agents"].as_array()[0].as_object();
  EXPECT_EQ("support-agent", Str(agent, "agentName"));
  EXPECT_EQ(json::value({{"conversation_id", Str(c, "id")}}),
            json::parse(Str(agent, "metadata")));
}

TEST_F(ConversationsTest, TokenHasNoRoomConfigWithoutADispatchName) {
  json::object c = NewConversation(PlainId());
  std::optional<Jwt> jwt = DecodeJwt(Str(c, "token"));
  ASSERT_TRUE(jwt);
  EXPECT_FALSE(jwt->payload.contains("roomConfig")) << Json(jwt->payload);
  EXPECT_EQ(ExpectedVideoGrant(Str(c, "id")), jwt->payload["video"]);
}

TEST_F(ConversationsTest, TokenFollowsTheAgentsCurrentDispatchName) {
  ASSERT_EQ(200u, client_.Patch("/v1/agents/" + SupportId(), alice_,
                                Json({{"dispatch_name", nullptr}})).status);
  json::object c = NewConversation(SupportId());
  std::optional<Jwt> jwt = DecodeJwt(Str(c, "token"));
  ASSERT_TRUE(jwt);
  EXPECT_FALSE(jwt->payload.contains("roomConfig")) << Json(jwt->payload);

  ASSERT_EQ(200u, client_.Patch("/v1/agents/" + PlainId(), alice_,
                                Json({{"dispatch_name", "late-worker"}})).status);
  c = NewConversation(PlainId());
  jwt = DecodeJwt(Str(c, "token"));
  ASSERT_TRUE(jwt);
  ASSERT_TRUE(jwt->payload.contains("roomConfig")) << Json(jwt->payload);
  EXPECT_EQ("late-worker",
            Str(jwt->payload["roomConfig"].at("agents").at(0).as_object(),
                "agentName"));
}

TEST_F(ConversationsTest, FirstMessageIsTheAgentsInstructions) {
  json::object c = NewConversation(SupportId());
  HttpResponse r = Messages(Str(c, "id"));
  ASSERT_EQ(200u, r.status) << r.body;
  json::array messages = r.json().as_array();
  ASSERT_EQ(1u, messages.size()) << r.body;
  json::object m = messages[0].as_object();
  EXPECT_EQ("system", Str(m, "role"));
  EXPECT_EQ("You are a helpful product support agent...", Str(m, "content"));
  EXPECT_EQ(Str(c, "id"), Str(m, "conversation_id"));
  EXPECT_EQ(Str(c, "created_at"), Str(m, "created_at"));
}

TEST_F(ConversationsTest, NoSystemMessageWhenTheAgentHasNoInstructions) {
  std::string id = NewConversationId(PlainId());
  HttpResponse r = Messages(id);
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ(json::value(json::array()), Parsed(r));
}

TEST_F(ConversationsTest, CreateWithoutAgentIdIs400) {
  uint64_t head = LogHead(client_);
  for (const json::value& body :
       {json::value(json::object()), json::value({{"agent_id", nullptr}}),
        json::value({{"agent_id", 5}}), json::value({{"title", "t"}})}) {
    SCOPED_TRACE(Json(body));
    HttpResponse r = Create(body);
    EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
    EXPECT_EQ("agent_id", ErrorParam(r));
  }
  EXPECT_EQ(head, LogHead(client_));
}

TEST_F(ConversationsTest, CreateWithUnknownAgentIs404) {
  for (const char* agent : {"0190c1e8-0000-7000-8000-000000000000", "nope"}) {
    SCOPED_TRACE(agent);
    HttpResponse r = Create({{"agent_id", agent}});
    EXPECT_TRUE(IsError(r, 404, "not_found_error"));
    EXPECT_EQ("agent_id", ErrorParam(r));
  }
  EXPECT_EQ("[]", client_.Get("/v1/conversations", alice_).body);
}

TEST_F(ConversationsTest, TitleMustBeOneTo256Characters) {
  for (const json::value& title :
       {json::value(""), json::value(std::string(257, 't')), json::value(5)}) {
    SCOPED_TRACE(Json(title));
    HttpResponse r = Create({{"agent_id", PlainId()}, {"title", title}});
    EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
    EXPECT_EQ("title", ErrorParam(r));
  }
  EXPECT_EQ("[]", client_.Get("/v1/conversations", alice_).body);
}

TEST_F(ConversationsTest, TitleLengthCountsCharactersNotBytes) {
  std::string title;
  for (int i = 0; i < 256; ++i) title += "\xE4\xB8\x96";  // 世, 3 bytes
  HttpResponse r = Create({{"agent_id", PlainId()}, {"title", title}});
  ASSERT_EQ(201u, r.status) << r.body;
  EXPECT_EQ(title, Str(r.json().as_object(), "title"));
}

// ------------------------------------------------------------ get

TEST_F(ConversationsTest, GetReturnsTheConversationWithoutAToken) {
  HttpResponse created = Create({{"agent_id", SupportId()},
                                 {"title", "T"},
                                 {"metadata", {{"k", "v"}}}});
  ASSERT_EQ(201u, created.status);
  json::object expected = created.json().as_object();
  expected.erase("token");

  HttpResponse r = Get(Str(expected, "id"));
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ(json::value(expected), r.json());
  EXPECT_EQ("\"0\"", r.header("ETag"));
}

TEST_F(ConversationsTest, UnknownOrMalformedIdIs404Everywhere) {
  for (const std::string& id :
       {std::string(kUnknownConversation), std::string("nope"),
        std::string("conv-nope"), SupportId()}) {
    SCOPED_TRACE(id);
    EXPECT_TRUE(IsError(Get(id), 404, "not_found_error"));
    EXPECT_TRUE(IsError(Patch(id, {{"title", "x"}}), 404, "not_found_error"));
    EXPECT_TRUE(IsError(NewToken(id), 404, "not_found_error"));
    EXPECT_TRUE(IsError(Messages(id), 404, "not_found_error"));
    EXPECT_TRUE(IsError(client_.Post("/v1/conversations/" + id + "/messages",
                                     alice_,
                                     Json({{"role", "user"}, {"content", "hi"}})),
                        404, "not_found_error"));
  }
}

TEST_F(ConversationsTest, AnotherUsersConversationIs403Everywhere) {
  std::string id = Str(CreateConversation(client_, alice_, PlainId(),
                                          "alice-private-title"),
                       "id");
  uint64_t head = LogHead(client_);
  std::vector<HttpResponse> responses = {
      Get(id, bob_),
      client_.Patch("/v1/conversations/" + id, bob_, Json({{"title", "bob"}})),
      NewToken(id, bob_),
      client_.Get("/v1/conversations/" + id + "/messages", bob_),
      client_.Post("/v1/conversations/" + id + "/messages", bob_,
                   Json({{"role", "user"}, {"content", "hi"}})),
  };
  for (const HttpResponse& r : responses) {
    EXPECT_TRUE(IsError(r, 403, "permission_error"));
    EXPECT_EQ(std::string::npos, r.body.find("alice-private-title")) << r.body;
  }
  EXPECT_EQ(head, LogHead(client_));
  EXPECT_EQ("alice-private-title", Str(Get(id).json().as_object(), "title"));
}

TEST_F(ConversationsTest, AdminKeyReadsAnyUsersConversation) {
  std::string id = NewConversationId(PlainId());
  HttpResponse r = Get(id, TestServer::kAdminKey);
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ(id, Str(r.json().as_object(), "id"));
}

// ------------------------------------------------------------ list

TEST_F(ConversationsTest, ListIsNewestFirstWithoutTokens) {
  std::vector<std::string> created;
  for (int i = 0; i < 4; ++i) created.push_back(NewConversationId(PlainId()));
  HttpResponse r = client_.Get("/v1/conversations", alice_);
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ(0u, r.header("Content-Type").rfind("application/json", 0));
  EXPECT_EQ(Reversed(created), Ids(r.json().as_array()));
  EXPECT_EQ("", r.header("Link"));
  json::object first = r.json().as_array()[0].as_object();
  json::object got = Get(created.back()).json().as_object();
  EXPECT_EQ(json::value(got), json::value(first));
}

TEST_F(ConversationsTest, ListIsInCreationOrderEvenWithinOneMillisecond) {
  // Creates sent at once commit together, mostly within one millisecond; the
  // log's positions say which was created first.
  constexpr int kThreads = 4;
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<unsigned> statuses(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([this, t, &statuses] {
        HttpClient client(server_.port());
        statuses[t] = client.Post("/v1/conversations", alice_,
                                  Json({{"agent_id", PlainId()}})).status;
      });
    }
    for (std::thread& t : threads) t.join();
    for (unsigned status : statuses) ASSERT_EQ(201u, status);
  }

  HttpResponse events =
      client_.Get("/v1/admin/events?limit=10000", TestServer::kAdminKey);
  ASSERT_EQ(200u, events.status) << events.body;
  std::vector<std::string> log_order;
  json::value all = events.json();
  for (const auto& e : all.as_array()) {
    const json::object& o = e.as_object();
    if (Str(o, "type") == "ConversationCreated") {
      log_order.push_back(Str(o.at("payload").as_object(), "id"));
    }
  }
  ASSERT_EQ(static_cast<size_t>(kThreads * kRounds), log_order.size());
  EXPECT_EQ(Reversed(log_order), ListAll("/v1/conversations?limit=100"));
}

TEST_F(ConversationsTest, ListDefaultsToTwentyItems) {
  for (int i = 0; i < 21; ++i) NewConversationId(PlainId());
  HttpResponse r = client_.Get("/v1/conversations", alice_);
  ASSERT_EQ(200u, r.status);
  EXPECT_EQ(20u, r.json().as_array().size());
  EXPECT_NE("", NextLink(r));
}

TEST_F(ConversationsTest, ListPagesVisitEveryConversationExactlyOnce) {
  std::vector<std::string> created;
  for (int i = 0; i < 7; ++i) created.push_back(NewConversationId(PlainId()));
  std::vector<size_t> sizes;
  EXPECT_EQ(Reversed(created), ListAll("/v1/conversations?limit=3", alice_, &sizes));
  EXPECT_EQ((std::vector<size_t>{3, 3, 1}), sizes);
}

TEST_F(ConversationsTest, ListFiltersByAgentId) {
  std::vector<std::string> with_support;
  for (int i = 0; i < 5; ++i) {
    with_support.push_back(NewConversationId(SupportId()));
    NewConversationId(PlainId());
  }
  EXPECT_EQ(Reversed(with_support),
            ListAll("/v1/conversations?agent_id=" + SupportId()));
  // The filter survives paging: the Link carries it on.
  std::vector<size_t> sizes;
  EXPECT_EQ(Reversed(with_support),
            ListAll("/v1/conversations?limit=2&agent_id=" + SupportId(), alice_,
                    &sizes));
  EXPECT_EQ((std::vector<size_t>{2, 2, 1}), sizes);
}

TEST_F(ConversationsTest, ListFiltersByStatus) {
  std::string active = NewConversationId(PlainId());
  std::string completed1 = NewConversationId(PlainId());
  std::string archived = NewConversationId(PlainId());
  std::string completed2 = NewConversationId(PlainId());
  ASSERT_EQ(200u, SetStatus(completed1, "completed").status);
  ASSERT_EQ(200u, SetStatus(completed2, "completed").status);
  ASSERT_EQ(200u, SetStatus(archived, "archived").status);

  EXPECT_EQ(std::vector<std::string>{active},
            ListAll("/v1/conversations?status=active"));
  EXPECT_EQ((std::vector<std::string>{completed2, completed1}),
            ListAll("/v1/conversations?status=completed"));
  EXPECT_EQ(std::vector<std::string>{archived},
            ListAll("/v1/conversations?status=archived"));
  // The filter survives paging.
  std::vector<size_t> sizes;
  EXPECT_EQ((std::vector<std::string>{completed2, completed1}),
            ListAll("/v1/conversations?status=completed&limit=1", alice_, &sizes));
  EXPECT_EQ((std::vector<size_t>{1, 1}), sizes);
  EXPECT_EQ((std::vector<std::string>{completed2, archived, completed1, active}),
            ListAll("/v1/conversations"));
}

TEST_F(ConversationsTest, ListWithUnknownStatusIs400) {
  HttpResponse r = client_.Get("/v1/conversations?status=open", alice_);
  EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
  EXPECT_EQ("status", ErrorParam(r));
}

TEST_F(ConversationsTest, ListLimitMustBeOneTo100) {
  for (const char* limit : {"0", "101", "-3", "ten"}) {
    SCOPED_TRACE(limit);
    HttpResponse r =
        client_.Get(std::string("/v1/conversations?limit=") + limit, alice_);
    EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
    EXPECT_EQ("limit", ErrorParam(r));
  }
  NewConversationId(PlainId());
  NewConversationId(PlainId());
  HttpResponse one = client_.Get("/v1/conversations?limit=1", alice_);
  ASSERT_EQ(200u, one.status);
  EXPECT_EQ(1u, one.json().as_array().size());
  HttpResponse hundred = client_.Get("/v1/conversations?limit=100", alice_);
  ASSERT_EQ(200u, hundred.status);
  EXPECT_EQ(2u, hundred.json().as_array().size());
}

TEST_F(ConversationsTest, ListWithMalformedAfterIs400) {
  NewConversationId(PlainId());
  for (const std::string& after :
       {std::string("!!!"), Base64UrlEncode("hello"), std::string("conv-x"),
        std::string(kUnknownConversation)}) {
    SCOPED_TRACE(after);
    HttpResponse r = client_.Get("/v1/conversations?after=" + after, alice_);
    EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
    EXPECT_EQ("after", ErrorParam(r));
  }
}

TEST_F(ConversationsTest, UserListsOnlyTheirOwnWhileAdminListsEveryone) {
  json::object bobs_agent = CreateAgent(client_, bob_, Json({{"name", "b"}}));
  std::string a1 = NewConversationId(PlainId());
  std::string b1 =
      Str(CreateConversation(client_, bob_, Str(bobs_agent, "id")), "id");
  std::string a2 = NewConversationId(PlainId());

  EXPECT_EQ((std::vector<std::string>{a2, a1}), ListAll("/v1/conversations"));
  EXPECT_EQ(std::vector<std::string>{b1}, ListAll("/v1/conversations", bob_));
  EXPECT_EQ((std::vector<std::string>{a2, b1, a1}),
            ListAll("/v1/conversations", TestServer::kAdminKey));
  EXPECT_EQ((std::vector<std::string>{a2, b1, a1}),
            ListAll("/v1/conversations?limit=2", TestServer::kAdminKey));
}

// ------------------------------------------------------------ patch

TEST_F(ConversationsTest, PatchTitleAndMetadataReplacesTheMetadataWhole) {
  HttpResponse created = Create({{"agent_id", PlainId()},
                                 {"metadata", {{"a", "1"}, {"b", "2"}}}});
  ASSERT_EQ(201u, created.status);
  json::object c = created.json().as_object();
  WaitForClockPast(Str(c, "updated_at"));

  HttpResponse r = Patch(Str(c, "id"), {{"title", "Renamed"},
                                        {"metadata", {{"c", "3"}}}});
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ("\"1\"", r.header("ETag"));
  json::object p = r.json().as_object();
  EXPECT_EQ("Renamed", Str(p, "title"));
  EXPECT_EQ(json::value({{"c", "3"}}), p["metadata"]);
  EXPECT_EQ(Str(c, "created_at"), Str(p, "created_at"));
  EXPECT_GT(Str(p, "updated_at"), Str(c, "updated_at"));
  EXPECT_FALSE(p.contains("token"));

  HttpResponse got = Get(Str(c, "id"));
  EXPECT_EQ(r.json(), got.json());
  EXPECT_EQ("\"1\"", got.header("ETag"));
}

TEST_F(ConversationsTest, PatchOfTheTitleAloneKeepsTheMetadata) {
  HttpResponse created = Create({{"agent_id", PlainId()},
                                 {"metadata", {{"a", "1"}}}});
  std::string id = Str(created.json().as_object(), "id");
  HttpResponse r = Patch(id, {{"title", "Only the title"}});
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ(json::value({{"a", "1"}}), r.json().as_object()["metadata"]);
}

TEST_F(ConversationsTest, PatchThatChangesNothingWritesNothing) {
  json::object c = NewConversation(PlainId());
  std::string id = Str(c, "id");
  uint64_t head = LogHead(client_);
  HttpResponse r = Patch(id, {{"title", Str(c, "title")}, {"status", "active"}});
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ("\"0\"", r.header("ETag"));
  EXPECT_EQ(head, LogHead(client_));
  EXPECT_EQ(Str(c, "updated_at"), Str(Get(id).json().as_object(), "updated_at"));
}

TEST_F(ConversationsTest, PatchWithInvalidFieldsIs400) {
  std::string id = NewConversationId(PlainId());
  struct Case {
    json::value body;
    const char* param;
  };
  std::vector<Case> cases = {
      {{{"title", ""}}, "title"},
      {{{"title", std::string(257, 't')}}, "title"},
      {{{"title", 5}}, "title"},
      {{{"status", "closed"}}, "status"},
      {{{"status", 1}}, "status"},
      {{{"metadata", "x"}}, "metadata"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(Json(c.body));
    HttpResponse r = Patch(id, c.body);
    EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
    EXPECT_EQ(c.param, ErrorParam(r));
  }
  EXPECT_EQ("\"0\"", Get(id).header("ETag"));
}

TEST_F(ConversationsTest, PatchWithStaleIfMatchIs412AndChangesNothing) {
  std::string id = NewConversationId(PlainId());
  ASSERT_EQ(200u, Patch(id, {{"title", "one"}}).status);
  HttpResponse r = Patch(id, {{"title", "two"}}, {{"If-Match", "\"0\""}});
  EXPECT_TRUE(IsError(r, 412, "precondition_failed"));
  HttpResponse got = Get(id);
  EXPECT_EQ("one", Str(got.json().as_object(), "title"));
  EXPECT_EQ("\"1\"", got.header("ETag"));
}

TEST_F(ConversationsTest, PatchWithCurrentOrStarIfMatchSucceeds) {
  std::string id = NewConversationId(PlainId());
  HttpResponse r = Patch(id, {{"title", "one"}}, {{"If-Match", "\"0\""}});
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ("\"1\"", r.header("ETag"));
  r = Patch(id, {{"title", "two"}}, {{"If-Match", "*"}});
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ("\"2\"", r.header("ETag"));
}

TEST_F(ConversationsTest, StatusMovesFromActiveToCompletedToArchived) {
  json::object c = NewConversation(PlainId());
  std::string id = Str(c, "id");
  WaitForClockPast(Str(c, "updated_at"));

  HttpResponse r = SetStatus(id, "completed");
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ("completed", Str(r.json().as_object(), "status"));
  EXPECT_EQ("\"1\"", r.header("ETag"));
  EXPECT_GT(Str(r.json().as_object(), "updated_at"), Str(c, "updated_at"));

  r = SetStatus(id, "archived");
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ("archived", Str(r.json().as_object(), "status"));
  EXPECT_EQ("\"2\"", r.header("ETag"));
  EXPECT_EQ("archived", Str(Get(id).json().as_object(), "status"));
}

TEST_F(ConversationsTest, StatusMovesFromActiveStraightToArchived) {
  std::string id = NewConversationId(PlainId());
  HttpResponse r = SetStatus(id, "archived");
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ("archived", Str(Get(id).json().as_object(), "status"));
}

TEST_F(ConversationsTest, StatusNeverMovesBackwards) {
  std::string completed = NewConversationId(PlainId());
  ASSERT_EQ(200u, SetStatus(completed, "completed").status);
  std::string archived = NewConversationId(PlainId());
  ASSERT_EQ(200u, SetStatus(archived, "archived").status);

  struct Case {
    std::string id;
    const char* to;
    const char* stays;
  };
  for (const Case& c : std::vector<Case>{{completed, "active", "completed"},
                                         {archived, "completed", "archived"},
                                         {archived, "active", "archived"}}) {
    SCOPED_TRACE(std::string(c.stays) + " -> " + c.to);
    HttpResponse before = Get(c.id);
    uint64_t head = LogHead(client_);
    HttpResponse r = SetStatus(c.id, c.to);
    EXPECT_TRUE(IsError(r, 409, "conflict_error"));
    EXPECT_EQ("invalid_status_transition", ErrorField(r, "code"));
    HttpResponse after = Get(c.id);
    EXPECT_EQ(before.body, after.body);
    EXPECT_EQ(before.header("ETag"), after.header("ETag"));
    EXPECT_EQ(c.stays, Str(after.json().as_object(), "status"));
    EXPECT_EQ(head, LogHead(client_));
  }
}

TEST_F(ConversationsTest, RejectedTransitionAlsoDropsTheOtherChanges) {
  std::string id = NewConversationId(PlainId());
  ASSERT_EQ(200u, SetStatus(id, "completed").status);
  HttpResponse r = Patch(id, {{"title", "sneaky"}, {"status", "active"}});
  EXPECT_TRUE(IsError(r, 409, "conflict_error"));
  EXPECT_EQ("New Conversation", Str(Get(id).json().as_object(), "title"));
}

TEST_F(ConversationsTest, TitleAndMetadataCanBePatchedWhenArchived) {
  std::string id = NewConversationId(PlainId());
  ASSERT_EQ(200u, SetStatus(id, "archived").status);
  HttpResponse r = Patch(id, {{"title", "Filed away"}, {"metadata", {{"k", "v"}}}});
  ASSERT_EQ(200u, r.status) << r.body;
  json::object got = Get(id).json().as_object();
  EXPECT_EQ("Filed away", Str(got, "title"));
  EXPECT_EQ(json::value({{"k", "v"}}), got["metadata"]);
  EXPECT_EQ("archived", Str(got, "status"));
}

TEST_F(ConversationsTest, AppendingAMessageChangesNeitherETagNorUpdatedAt) {
  json::object c = NewConversation(PlainId());
  std::string id = Str(c, "id");
  WaitForClockPast(Str(c, "updated_at"));
  ASSERT_EQ(201u, client_.Post("/v1/conversations/" + id + "/messages", alice_,
                               Json({{"role", "user"}, {"content", "hello"}}))
                      .status);
  HttpResponse got = Get(id);
  EXPECT_EQ("\"0\"", got.header("ETag"));
  EXPECT_EQ(Str(c, "updated_at"), Str(got.json().as_object(), "updated_at"));
}

// ------------------------------------------------------------ token

TEST_F(ConversationsTest, NewTokenForAnActiveConversation) {
  std::string id = NewConversationId(SupportId());
  HttpResponse r = NewToken(id);
  ASSERT_EQ(201u, r.status) << r.body;
  json::object t = r.json().as_object();
  EXPECT_EQ((std::set<std::string>{"room_name", "room_url", "token",
                                   "expires_at"}),
            Keys(t));
  EXPECT_EQ(id, Str(t, "room_name"));
  EXPECT_EQ("ws://localhost:7880/room/" + id, Str(t, "room_url"));
  EXPECT_TRUE(std::regex_match(Str(t, "expires_at"), kTimestamp));
  std::optional<Jwt> jwt = DecodeJwt(Str(t, "token"));
  ASSERT_TRUE(jwt);
  EXPECT_EQ("alice", Str(jwt->payload, "sub"));
  EXPECT_EQ(ExpectedVideoGrant(id), jwt->payload["video"]);
  EXPECT_TRUE(jwt->payload.contains("roomConfig"));
  ASSERT_TRUE(jwt->payload["exp"].is_int64());
  EXPECT_EQ(FormatRfc3339Millis(jwt->payload["exp"].as_int64() * 1000),
            Str(t, "expires_at"));
}

TEST_F(ConversationsTest, NewTokenWritesNothing) {
  std::string id = NewConversationId(PlainId());
  uint64_t head = LogHead(client_);
  ASSERT_EQ(201u, NewToken(id).status);
  EXPECT_EQ(head, LogHead(client_));
  EXPECT_EQ("\"0\"", Get(id).header("ETag"));
}

TEST_F(ConversationsTest, NewTokenForAConversationNotActiveIs409) {
  std::string completed = NewConversationId(PlainId());
  ASSERT_EQ(200u, SetStatus(completed, "completed").status);
  std::string archived = NewConversationId(PlainId());
  ASSERT_EQ(200u, SetStatus(archived, "archived").status);
  for (const std::string& id : {completed, archived}) {
    HttpResponse r = NewToken(id);
    EXPECT_TRUE(IsError(r, 409, "conflict_error"));
    EXPECT_EQ("conversation_not_active", ErrorCode(r));
  }
}

}  // namespace
}  // namespace convstore::testing
