// Idempotency-Key over real HTTP (API.md, "General" and "Fine points"): a
// retry with the same key and the same bytes replays the first response
// without writing again; a different body is 422; keys are per user; secrets
// (LiveKit tokens, API keys) are never replayed from storage.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/encoding.h"
#include "tests/support/api_assertions.h"
#include "tests/support/test_server.h"

namespace convstore::testing {
namespace {

namespace json = boost::json;

// ------------------------------------------------------------ helpers

// `body` with its `"token":"..."` member cut out, byte for byte otherwise.
std::string WithoutToken(const std::string& body) {
  const std::string field = "\"token\":\"";
  size_t start = body.find(field);
  if (start == std::string::npos) return body;
  size_t end = body.find('"', start + field.size());
  if (end == std::string::npos) return body;
  ++end;
  // Drop one adjacent comma so that the rest stays valid JSON.
  if (start > 0 && body[start - 1] == ',') {
    --start;
  } else if (end < body.size() && body[end] == ',') {
    ++end;
  }
  return body.substr(0, start) + body.substr(end);
}

// The payload of a JWT signed with LiveKit's dev secret (checked).
std::optional<json::object> JwtPayload(const std::string& token) {
  size_t dot1 = token.find('.');
  size_t dot2 = dot1 == std::string::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string::npos) {
    ADD_FAILURE() << "not a JWT: " << token;
    return std::nullopt;
  }
  auto payload = Base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  auto signature = Base64UrlDecode(token.substr(dot2 + 1));
  if (!payload || !signature) {
    ADD_FAILURE() << "not base64url: " << token;
    return std::nullopt;
  }
  EXPECT_EQ(HmacSha256("secret", token.substr(0, dot2)), *signature);
  boost::system::error_code ec;
  json::value v = json::parse(*payload, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return v.as_object();
}

// ------------------------------------------------------------ fixture

class IdempotencyTest : public AliceAndBobTest {
 protected:
  IdempotencyTest() {
    agent_ = Str(CreateAgent(client_, alice_,
                             Json({{"name", "Support"},
                                   {"instructions", "Help."},
                                   {"dispatch_name", "support-agent"}})),
                 "id");
  }

  HttpResponse PostWithKey(const std::string& target, const std::string& body,
                           const std::string& idempotency_key,
                           const std::string& api_key = "") {
    return client_.Post(target, api_key.empty() ? alice_ : api_key, body,
                        {{"Idempotency-Key", idempotency_key}});
  }

  size_t CountConversations(const std::string& api_key = "") {
    HttpResponse r = client_.Get("/v1/conversations?limit=100",
                                 api_key.empty() ? alice_ : api_key);
    EXPECT_EQ(200u, r.status);
    return r.json().as_array().size();
  }

  std::string agent_;
};

// ------------------------------------------------------------ replays

TEST_F(IdempotencyTest, RetryReplaysTheFirstResponseWithAFreshToken) {
  const std::string body = Json({{"agent_id", agent_}, {"title", "Once"}});
  HttpResponse first = PostWithKey("/v1/conversations", body, "create-1");
  ASSERT_EQ(201u, first.status) << first.body;
  EXPECT_EQ("", first.header("Idempotent-Replayed"));
  uint64_t head = LogHead(client_);

  HttpResponse retry = PostWithKey("/v1/conversations", body, "create-1");
  ASSERT_EQ(201u, retry.status) << retry.body;
  EXPECT_EQ("true", retry.header("Idempotent-Replayed"));
  EXPECT_EQ(first.header("Location"), retry.header("Location"));
  EXPECT_EQ(first.header("ETag"), retry.header("ETag"));
  EXPECT_EQ(WithoutToken(first.body), WithoutToken(retry.body));
  EXPECT_NE(first.body, WithoutToken(first.body)) << "no token in " << first.body;

  // The replayed token is a valid one for the same room and user.
  json::object replayed = retry.json().as_object();
  std::optional<json::object> claims = JwtPayload(Str(replayed, "token"));
  ASSERT_TRUE(claims);
  EXPECT_EQ("alice", Str(*claims, "sub"));
  EXPECT_EQ(Str(replayed, "id"), Str((*claims)["video"].as_object(), "room"));
  EXPECT_TRUE(claims->contains("roomConfig"));

  EXPECT_EQ(head, LogHead(client_));
  EXPECT_EQ(1u, CountConversations());
}

TEST_F(IdempotencyTest, ManyRetriesStillWriteOnce) {
  const std::string body = Json({{"agent_id", agent_}});
  HttpResponse first = PostWithKey("/v1/conversations", body, "again");
  ASSERT_EQ(201u, first.status);
  for (int i = 0; i < 5; ++i) {
    HttpResponse retry = PostWithKey("/v1/conversations", body, "again");
    EXPECT_EQ(201u, retry.status);
    EXPECT_EQ(WithoutToken(first.body), WithoutToken(retry.body));
  }
  EXPECT_EQ(1u, CountConversations());
}

TEST_F(IdempotencyTest, MessageRetryAppendsOnce) {
  std::string conv = Str(CreateConversation(client_, alice_, agent_), "id");
  const std::string target = "/v1/conversations/" + conv + "/messages";
  const std::string body = Json({{"role", "user"}, {"content", "only once"}});
  HttpResponse first = PostWithKey(target, body, "turn-7");
  ASSERT_EQ(201u, first.status) << first.body;
  HttpResponse retry = PostWithKey(target, body, "turn-7");
  EXPECT_EQ(201u, retry.status);
  EXPECT_EQ(first.body, retry.body);
  EXPECT_EQ("true", retry.header("Idempotent-Replayed"));

  json::value listed = client_.Get(target + "?limit=100", alice_).json();
  ASSERT_EQ(2u, listed.as_array().size());  // the system message, then ours
  EXPECT_EQ(first.json(), listed.as_array()[1]);
}

TEST_F(IdempotencyTest, SameKeyWithADifferentBodyIs422) {
  ASSERT_EQ(201u, PostWithKey("/v1/conversations",
                              Json({{"agent_id", agent_}, {"title", "A"}}), "k")
                      .status);
  uint64_t head = LogHead(client_);
  for (const std::string& body :
       {Json({{"agent_id", agent_}, {"title", "B"}}),
        // The same JSON with other bytes is a different body too.
        Json({{"title", "A"}, {"agent_id", agent_}}),
        Json({{"agent_id", agent_}, {"title", "A"}}) + " "}) {
    SCOPED_TRACE(body);
    HttpResponse r = PostWithKey("/v1/conversations", body, "k");
    EXPECT_TRUE(IsError(r, 422, "idempotency_error"));
    EXPECT_EQ("idempotency_key_reused", ErrorField(r, "code"));
  }
  EXPECT_EQ(head, LogHead(client_));
  EXPECT_EQ(1u, CountConversations());
}

TEST_F(IdempotencyTest, KeysAreScopedPerUser) {
  std::string bobs_agent =
      Str(CreateAgent(client_, bob_, Json({{"name", "Bob's"}})), "id");
  HttpResponse alices = PostWithKey("/v1/conversations",
                                    Json({{"agent_id", agent_}}), "shared-key");
  ASSERT_EQ(201u, alices.status);

  // Bob's first use of the same key is his own request, not Alice's replay
  // and not a mismatch.
  HttpResponse bobs = PostWithKey("/v1/conversations",
                                  Json({{"agent_id", bobs_agent}}), "shared-key",
                                  bob_);
  ASSERT_EQ(201u, bobs.status) << bobs.body;
  EXPECT_EQ("", bobs.header("Idempotent-Replayed"));
  EXPECT_NE(Str(alices.json().as_object(), "id"), Str(bobs.json().as_object(), "id"));
  EXPECT_EQ(1u, CountConversations(bob_));
  EXPECT_EQ(1u, CountConversations());
}

TEST_F(IdempotencyTest, SameKeyAndBodyFromAnotherUserIsNotAReplay) {
  // A body Bob is not allowed to send: with Alice's stored response, a
  // shared key would leak her conversation to him.
  const std::string body = Json({{"agent_id", agent_}});
  HttpResponse alices = PostWithKey("/v1/conversations", body, "same");
  ASSERT_EQ(201u, alices.status);
  HttpResponse bobs = PostWithKey("/v1/conversations", body, "same", bob_);
  EXPECT_TRUE(IsError(bobs, 403, "permission_error"));
  EXPECT_EQ(std::string::npos, bobs.body.find(Str(alices.json().as_object(), "id")));
}

TEST_F(IdempotencyTest, KeyMustBeOneTo255Characters) {
  const std::string body = Json({{"agent_id", agent_}});
  for (const std::string& key : {std::string(), std::string(256, 'k')}) {
    SCOPED_TRACE(key.size());
    EXPECT_TRUE(IsError(PostWithKey("/v1/conversations", body, key), 400,
                        "invalid_request_error"));
  }
  EXPECT_EQ(0u, CountConversations());
  HttpResponse longest = PostWithKey("/v1/conversations", body, std::string(255, 'k'));
  EXPECT_EQ(201u, longest.status) << longest.body;
  EXPECT_EQ("true", PostWithKey("/v1/conversations", body, std::string(255, 'k'))
                        .header("Idempotent-Replayed"));
  EXPECT_EQ(1u, CountConversations());
}

TEST_F(IdempotencyTest, ANotFoundResponseIsReplayedToo) {
  const std::string body =
      Json({{"agent_id", "0190c1e8-0000-7000-8000-000000000000"}});
  HttpResponse first = PostWithKey("/v1/conversations", body, "missing-agent");
  ASSERT_TRUE(IsError(first, 404, "not_found_error"));
  HttpResponse retry = PostWithKey("/v1/conversations", body, "missing-agent");
  EXPECT_EQ(404u, retry.status);
  EXPECT_EQ(first.body, retry.body);
  EXPECT_EQ("true", retry.header("Idempotent-Replayed"));
  // The key is spent on that request: another body is a reuse.
  HttpResponse other = PostWithKey("/v1/conversations",
                                   Json({{"agent_id", agent_}}), "missing-agent");
  EXPECT_TRUE(IsError(other, 422, "idempotency_error"));
  EXPECT_EQ(0u, CountConversations());
}

TEST_F(IdempotencyTest, AConflictResponseIsReplayedToo) {
  std::string conv = Str(CreateConversation(client_, alice_, agent_), "id");
  ASSERT_EQ(200u, client_.Patch("/v1/conversations/" + conv, alice_,
                                Json({{"status", "completed"}})).status);
  const std::string target = "/v1/conversations/" + conv + "/messages";
  const std::string body = Json({{"role", "user"}, {"content", "late"}});
  HttpResponse first = PostWithKey(target, body, "late-turn");
  ASSERT_TRUE(IsError(first, 409, "conflict_error"));
  HttpResponse retry = PostWithKey(target, body, "late-turn");
  EXPECT_EQ(409u, retry.status);
  EXPECT_EQ(first.body, retry.body);
  EXPECT_EQ("true", retry.header("Idempotent-Replayed"));
}

TEST_F(IdempotencyTest, AnInvalidRequestResponseIsReplayedToo) {
  // Only responses with status >= 500 are not kept (API.md, Fine points).
  const std::string body = Json({{"agent_id", agent_}, {"title", ""}});
  HttpResponse first = PostWithKey("/v1/conversations", body, "bad-title");
  ASSERT_TRUE(IsError(first, 400, "invalid_request_error"));
  HttpResponse retry = PostWithKey("/v1/conversations", body, "bad-title");
  EXPECT_EQ(400u, retry.status);
  EXPECT_EQ(first.body, retry.body);
  EXPECT_EQ("true", retry.header("Idempotent-Replayed"));
}

TEST_F(IdempotencyTest, NewTokenRetryMintsAFreshValidToken) {
  std::string conv = Str(CreateConversation(client_, alice_, agent_), "id");
  const std::string target = "/v1/conversations/" + conv + "/token";
  HttpResponse first = PostWithKey(target, "", "token-1");
  ASSERT_EQ(201u, first.status) << first.body;
  HttpResponse retry = PostWithKey(target, "", "token-1");
  ASSERT_EQ(201u, retry.status) << retry.body;
  EXPECT_EQ("true", retry.header("Idempotent-Replayed"));
  json::object t = retry.json().as_object();
  EXPECT_EQ((std::set<std::string>{"room_name", "room_url", "token", "expires_at"}),
            Keys(t));
  EXPECT_EQ(conv, Str(t, "room_name"));
  std::optional<json::object> claims = JwtPayload(Str(t, "token"));
  ASSERT_TRUE(claims);
  EXPECT_EQ(conv, Str((*claims)["video"].as_object(), "room"));
}

TEST_F(IdempotencyTest, ApiKeyReplayDoesNotRevealTheKeyAgain) {
  const std::string body = Json({{"user_id", "carol"}, {"role", "user"}});
  HttpResponse first = PostWithKey("/v1/admin/api-keys", body, "carol-key",
                                   TestServer::kAdminKey);
  ASSERT_EQ(201u, first.status) << first.body;
  json::object created = first.json().as_object();
  std::string secret = Str(created, "key");
  ASSERT_EQ(0u, secret.rfind("csk_", 0)) << first.body;

  HttpResponse retry = PostWithKey("/v1/admin/api-keys", body, "carol-key",
                                   TestServer::kAdminKey);
  ASSERT_EQ(201u, retry.status) << retry.body;
  EXPECT_EQ("true", retry.header("Idempotent-Replayed"));
  json::object replayed = retry.json().as_object();
  EXPECT_FALSE(replayed.contains("key")) << retry.body;
  EXPECT_EQ(std::string::npos, retry.body.find(secret));
  for (const char* field : {"id", "user_id", "role", "created_at"}) {
    EXPECT_EQ(Str(created, field), Str(replayed, field)) << field;
  }

  // Only one key was created, and it works.
  json::value keys = client_.Get("/v1/admin/api-keys", TestServer::kAdminKey).json();
  size_t carols = 0;
  for (const auto& k : keys.as_array()) {
    if (Str(k.as_object(), "user_id") == "carol") ++carols;
  }
  EXPECT_EQ(1u, carols);
  EXPECT_EQ(200u, client_.Get("/v1/conversations", secret).status);
}

}  // namespace
}  // namespace convstore::testing
