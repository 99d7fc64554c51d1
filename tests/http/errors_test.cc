// How convstore refuses requests, over real HTTP (API.md, "General" and "Fine
// points"): authentication, permissions, unknown routes and methods, media
// types, malformed and oversized bodies. Every refusal has the contract's
// error body, leaks nothing, and changes nothing.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/api_assertions.h"
#include "tests/support/test_server.h"

namespace convstore::testing {
namespace {

namespace json = boost::json;

// ------------------------------------------------------------ helpers

// Parses a raw HTTP/1.1 response with a Content-Length body.
HttpResponse ParseRawResponse(const std::string& raw) {
  HttpResponse r;
  size_t end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return r;
  r.status = static_cast<unsigned>(std::stoul(raw.substr(9, 3)));
  std::istringstream in(raw.substr(0, end));
  std::string line;
  std::getline(in, line);  // status line
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(c));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    r.headers[name] = value;
  }
  r.body = raw.substr(end + 4);
  return r;
}

// Sends `head` and then `body` on a fresh connection the way a careful client
// (curl) does: it keeps reading while it writes, stops writing as soon as the
// server answers, and returns what the server sent before closing. Bounded
// to 10 s.
HttpResponse SendWhileReading(uint16_t port, const std::string& head,
                              const std::string& body) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ADD_FAILURE() << "connect failed";
    ::close(fd);
    return {};
  }
  const std::string out = head + body;
  size_t sent = 0;
  bool sending = true;
  std::string in;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, static_cast<short>(POLLIN | (sending ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, 100) < 0) break;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
      sending = false;  // answered early: read the rest
      continue;
    }
    if (sending && (p.revents & POLLOUT)) {
      size_t n = std::min<size_t>(64 * 1024, out.size() - sent);
      ssize_t w = ::send(fd, out.data() + sent, n, MSG_NOSIGNAL);
      if (w < 0) {
        sending = false;
      } else {
        sent += static_cast<size_t>(w);
        if (sent == out.size()) sending = false;
      }
    }
  }
  ::close(fd);
  return ParseRawResponse(in);
}

// ------------------------------------------------------------ fixture

class ErrorsTest : public AliceAndBobTest {
 protected:
  ErrorsTest() {
    agent_ =
        Str(CreateAgent(client_, alice_,
                        Json({{"name", "Support"}, {"instructions", "Help."}})),
            "id");
    conv_ = Str(CreateConversation(client_, alice_, agent_), "id");
    EXPECT_EQ(201u,
              client_
                  .Post("/v1/conversations/" + conv_ + "/messages", alice_,
                        Json({{"role", "user"}, {"content", "hi"}}))
                  .status);
  }

  // Everything a client can read about the store; equal before and after a
  // rejected write.
  std::string Snapshot() {
    std::string s = "head " + std::to_string(LogHead(client_)) + "\n";
    for (const std::string& target :
         {std::string("/v1/agents?limit=100"),
          std::string("/v1/conversations?limit=100"), "/v1/agents/" + agent_,
          "/v1/conversations/" + conv_,
          "/v1/conversations/" + conv_ + "/messages?limit=1000"}) {
      for (const std::string& key :
           {alice_, std::string(TestServer::kAdminKey)}) {
        HttpResponse r = client_.Get(target, key);
        s += target + " " + std::to_string(r.status) + " " + r.header("ETag") +
             " " + r.body + "\n";
      }
    }
    return s;
  }

  // A POST or PATCH with the given raw headers (no Content-Type unless given).
  HttpResponse Send(const std::string& method, const std::string& target,
                    const std::string& body,
                    std::vector<std::pair<std::string, std::string>> headers) {
    headers.emplace_back("Authorization", "Bearer " + alice_);
    return client_.Request(method, target, body, headers);
  }

  HttpResponse WithAuthorization(
      const std::string& value,
      const std::string& target = "/v1/conversations") {
    return client_.Request("GET", target, "", {{"Authorization", value}});
  }

  std::string agent_;
  std::string conv_;
};

// ------------------------------------------------------------ 401

TEST_F(ErrorsTest, MissingKeyIs401) {
  std::string before = Snapshot();
  EXPECT_TRUE(IsUnauthenticated(client_.Get("/v1/conversations", "")));
  EXPECT_TRUE(IsUnauthenticated(client_.Get("/v1/conversations/" + conv_, "")));
  EXPECT_TRUE(IsUnauthenticated(
      client_.Post("/v1/agents", "", Json({{"name", "anonymous"}}))));
  EXPECT_TRUE(IsUnauthenticated(
      client_.Post("/v1/conversations/" + conv_ + "/messages", "",
                   Json({{"role", "user"}, {"content", "anonymous"}}))));
  EXPECT_EQ(before, Snapshot());
}

TEST_F(ErrorsTest, MalformedAuthorizationIs401) {
  for (const std::string& value :
       {"Basic " + alice_, std::string("Basic x"), std::string("Bearer"),
        std::string("Bearer "), alice_, "Token " + alice_, "Bearer" + alice_}) {
    SCOPED_TRACE(value);
    EXPECT_TRUE(IsUnauthenticated(WithAuthorization(value)));
  }
}

TEST_F(ErrorsTest, UnknownKeyIs401) {
  EXPECT_TRUE(
      IsUnauthenticated(WithAuthorization("Bearer csk_not_a_real_key")));
  EXPECT_TRUE(IsUnauthenticated(WithAuthorization("Bearer " + alice_ + "x")));
  EXPECT_TRUE(IsUnauthenticated(
      WithAuthorization("Bearer " + alice_.substr(0, alice_.size() - 1))));
}

TEST_F(ErrorsTest, RevokedKeyIs401) {
  std::string carol = server_.CreateKey("carol");
  ASSERT_EQ(200u, client_.Get("/v1/conversations", carol).status);

  HttpResponse keys = client_.Get("/v1/admin/api-keys", TestServer::kAdminKey);
  ASSERT_EQ(200u, keys.status) << keys.body;
  std::string id;
  json::value listed = keys.json();
  for (const auto& k : listed.as_array()) {
    if (Str(k.as_object(), "user_id") == "carol") id = Str(k.as_object(), "id");
  }
  ASSERT_NE("", id) << keys.body;

  HttpResponse revoke =
      client_.Delete("/v1/admin/api-keys/" + id, TestServer::kAdminKey);
  EXPECT_EQ(204u, revoke.status) << revoke.body;

  EXPECT_TRUE(IsUnauthenticated(client_.Get("/v1/conversations", carol)));
  EXPECT_TRUE(IsUnauthenticated(
      client_.Post("/v1/agents", carol, Json({{"name", "after revocation"}}))));
  // Other keys are untouched, and the list shows when it was revoked.
  EXPECT_EQ(200u, client_.Get("/v1/conversations", alice_).status);
  json::value after =
      client_.Get("/v1/admin/api-keys", TestServer::kAdminKey).json();
  for (const auto& k : after.as_array()) {
    const json::object& o = k.as_object();
    if (Str(o, "id") == id) {
      EXPECT_TRUE(o.at("revoked_at").is_string()) << Json(o);
    } else {
      EXPECT_TRUE(o.at("revoked_at").is_null()) << Json(o);
    }
  }
}

TEST_F(ErrorsTest, BearerSchemeIsCaseInsensitive) {
  for (const char* scheme : {"bearer", "BEARER", "Bearer", "bEaReR"}) {
    SCOPED_TRACE(scheme);
    HttpResponse r = WithAuthorization(std::string(scheme) + " " + alice_);
    EXPECT_EQ(200u, r.status) << r.body;
  }
}

TEST_F(ErrorsTest, UnknownV1RouteWithoutKeyIs401) {
  EXPECT_TRUE(IsUnauthenticated(client_.Get("/v1/nothing-here", "")));
  EXPECT_TRUE(IsUnauthenticated(client_.Get("/v1/conversations/x/y/z", "")));
  EXPECT_TRUE(
      IsUnauthenticated(client_.Request("PUT", "/v1/conversations", "", {})));
}

TEST_F(ErrorsTest, UnknownRouteWithKeyIs404) {
  EXPECT_TRUE(
      IsError(client_.Get("/v1/nothing-here", alice_), 404, "not_found_error"));
  EXPECT_TRUE(
      IsError(client_.Get("/v1/conversations/" + conv_ + "/nope", alice_), 404,
              "not_found_error"));
  EXPECT_TRUE(IsError(client_.Get("/v2/conversations", alice_), 404,
                      "not_found_error"));
}

// A path is routed by its decoded segments: an escaped id reaches the same
// conversation, and a 404 quotes the path decoded.
TEST_F(ErrorsTest, EscapedPathSegmentsRouteAsTheirDecodedText) {
  HttpResponse plain = client_.Get("/v1/conversations/" + conv_, alice_);
  ASSERT_EQ(200u, plain.status) << plain.body;
  // "c" is %63, "-" is %2D.
  std::string escaped = conv_;
  ASSERT_EQ('c', escaped[0]);
  escaped.replace(0, 1, "%63");
  const size_t dash = escaped.find('-');
  ASSERT_NE(std::string::npos, dash);
  escaped.replace(dash, 1, "%2D");
  HttpResponse r = client_.Get("/v1/conversations/" + escaped, alice_);
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ(plain.body, r.body);

  HttpResponse missing = client_.Get("/v1/n%6Fthing%20here", alice_);
  EXPECT_TRUE(IsError(missing, 404, "not_found_error"));
  EXPECT_NE(std::string::npos,
            missing.body.find("No route for /v1/nothing here."))
      << missing.body;
}

// The message quotes the path; percent-decoded bytes that are not UTF-8 must
// not make the body invalid JSON (found by the request fuzzer).
TEST_F(ErrorsTest, APathThatDecodesToInvalidUtf8GetsAValidErrorBody) {
  EXPECT_TRUE(
      IsError(client_.Get("/v1/%ad%ffmin", alice_), 404, "not_found_error"));
  EXPECT_TRUE(IsError(client_.Request("PUT", "/v1/agents/%ff", "",
                                      {{"Authorization", "Bearer " + alice_}}),
                      405, "method_not_allowed"));
}

// ------------------------------------------------------------ 403

TEST_F(ErrorsTest, NonAdminKeyOnAdminRoutesIs403) {
  std::string before = Snapshot();
  EXPECT_TRUE(IsError(client_.Get("/v1/admin/api-keys", alice_), 403,
                      "permission_error"));
  EXPECT_TRUE(
      IsError(client_.Post("/v1/admin/api-keys", alice_,
                           Json({{"user_id", "mallory"}, {"role", "admin"}})),
              403, "permission_error"));
  EXPECT_TRUE(IsError(client_.Delete("/v1/admin/api-keys/key_x", alice_), 403,
                      "permission_error"));
  EXPECT_TRUE(IsError(client_.Get("/v1/admin/events", alice_), 403,
                      "permission_error"));
  EXPECT_EQ(before, Snapshot());
  HttpResponse keys = client_.Get("/v1/admin/api-keys", TestServer::kAdminKey);
  EXPECT_EQ(std::string::npos, keys.body.find("mallory")) << keys.body;
}

TEST_F(ErrorsTest, AnotherUsersResourcesAre403AndChangeNothing) {
  std::string before = Snapshot();
  EXPECT_TRUE(IsError(
      client_.Patch("/v1/agents/" + agent_, bob_, Json({{"name", "bob's"}})),
      403, "permission_error"));
  EXPECT_TRUE(IsError(client_.Delete("/v1/agents/" + agent_, bob_), 403,
                      "permission_error"));
  EXPECT_TRUE(IsError(client_.Patch("/v1/conversations/" + conv_, bob_,
                                    Json({{"status", "archived"}})),
                      403, "permission_error"));
  EXPECT_TRUE(
      IsError(client_.Post("/v1/conversations/" + conv_ + "/messages", bob_,
                           Json({{"role", "user"}, {"content", "x"}})),
              403, "permission_error"));
  EXPECT_TRUE(IsError(
      client_.Post("/v1/conversations", bob_, Json({{"agent_id", agent_}})),
      403, "permission_error"));
  EXPECT_EQ(before, Snapshot());
}

TEST_F(ErrorsTest, ApiKeyListNeverShowsAKey) {
  std::string carol = server_.CreateKey("carol", /*admin=*/true);
  HttpResponse r = client_.Get("/v1/admin/api-keys", TestServer::kAdminKey);
  ASSERT_EQ(200u, r.status) << r.body;
  json::value listed = r.json();
  ASSERT_EQ(4u, listed.as_array().size())
      << r.body;  // admin, alice, bob, carol
  std::set<std::string> users;
  for (const auto& k : listed.as_array()) {
    const json::object& o = k.as_object();
    EXPECT_EQ((std::set<std::string>{"id", "user_id", "role", "created_at",
                                     "revoked_at"}),
              Keys(o));
    users.insert(Str(o, "user_id"));
  }
  EXPECT_EQ((std::set<std::string>{"admin", "alice", "bob", "carol"}), users);
  for (const std::string& key :
       {std::string(TestServer::kAdminKey), alice_, bob_, carol}) {
    EXPECT_EQ(std::string::npos, r.body.find(key)) << "a key is listed";
  }
  EXPECT_EQ(std::string::npos, r.body.find("csk_")) << r.body;
}

// ------------------------------------------------------------ 405

TEST_F(ErrorsTest, UnsupportedMethodIs405WithAllow) {
  HttpResponse r = Send("PUT", "/v1/conversations", "", {});
  EXPECT_TRUE(IsError(r, 405, "method_not_allowed"));
  std::set<std::string> allow = AllowedMethods(r);
  EXPECT_TRUE(allow.count("GET") && allow.count("POST")) << r.header("Allow");
  EXPECT_FALSE(allow.count("PUT")) << r.header("Allow");

  r = Send("PUT", "/v1/conversations/" + conv_, "", {});
  EXPECT_TRUE(IsError(r, 405, "method_not_allowed"));
  allow = AllowedMethods(r);
  EXPECT_TRUE(allow.count("GET") && allow.count("PATCH") &&
              allow.count("DELETE"))
      << r.header("Allow");
  EXPECT_FALSE(allow.count("PUT")) << r.header("Allow");
  EXPECT_EQ(200u, client_.Get("/v1/conversations/" + conv_, alice_).status);

  r = Send("PUT", "/v1/agents/" + agent_, Json({{"name", "x"}}),
           {{"Content-Type", "application/json"}});
  EXPECT_TRUE(IsError(r, 405, "method_not_allowed"));
  allow = AllowedMethods(r);
  EXPECT_TRUE(allow.count("GET") && allow.count("PATCH") &&
              allow.count("DELETE"))
      << r.header("Allow");

  r = Send("GET", "/v1/conversations/" + conv_ + "/token", "", {});
  EXPECT_TRUE(IsError(r, 405, "method_not_allowed"));
  EXPECT_TRUE(AllowedMethods(r).count("POST")) << r.header("Allow");
}

// ------------------------------------------------------------ 415

TEST_F(ErrorsTest, BodyWithoutJsonContentTypeIs415) {
  std::string before = Snapshot();
  const std::string body = Json({{"name", "x"}});
  for (const auto& headers :
       std::vector<std::vector<std::pair<std::string, std::string>>>{
           {},
           {{"Content-Type", "text/plain"}},
           {{"Content-Type", "application/x-www-form-urlencoded"}},
           {{"Content-Type", "application/jsonx"}}}) {
    SCOPED_TRACE(headers.empty() ? "no Content-Type" : headers[0].second);
    EXPECT_TRUE(IsError(Send("POST", "/v1/agents", body, headers), 415,
                        "unsupported_media_type"));
    EXPECT_TRUE(IsError(Send("PATCH", "/v1/agents/" + agent_, body, headers),
                        415, "unsupported_media_type"));
    EXPECT_TRUE(
        IsError(Send("POST", "/v1/conversations/" + conv_ + "/messages",
                     Json({{"role", "user"}, {"content", "x"}}), headers),
                415, "unsupported_media_type"));
  }
  EXPECT_EQ(before, Snapshot());
}

TEST_F(ErrorsTest, JsonContentTypeWithParametersIsAccepted) {
  for (const char* type :
       {"application/json; charset=utf-8", "application/json;charset=UTF-8",
        "Application/JSON", " APPLICATION/JSON ; charset=utf-8"}) {
    SCOPED_TRACE(type);
    HttpResponse r = Send("POST", "/v1/agents", Json({{"name", type}}),
                          {{"Content-Type", type}});
    EXPECT_EQ(201u, r.status) << r.body;
  }
}

// ------------------------------------------------------------ 400

TEST_F(ErrorsTest, MalformedBodiesAre400AndChangeNothing) {
  std::string before = Snapshot();
  const std::vector<std::string> bodies = {
      "",
      "{",
      "{\"agent_id\": }",
      "not json",
      "[]",
      "[" + Json({{"agent_id", agent_}}) + "]",
      "\"" + agent_ + "\"",
      "null",
      "42",
      Json({{"agent_id", agent_}}) + " trailing",
      "{\"agent_id\":\"" + agent_ + "\",\"title\":\"\xFF\xFE\"}",  // not UTF-8
      "{\"agent_id\":\"" + agent_ + "\",\"title\":\"\xC0\xAF\"}",  // overlong
      "{\"agent_id\":\"" + agent_ +
          "\",\"title\":\"\xED\xA0\x80\"}",  // surrogate
      "{\"agent_id\":\"" + agent_ +
          "\",\"title\":\"ab\xE4\xB8\"}",  // truncated
  };
  for (const std::string& body : bodies) {
    SCOPED_TRACE(body);
    EXPECT_TRUE(IsError(client_.Post("/v1/conversations", alice_, body), 400,
                        "invalid_request_error"));
  }
  EXPECT_EQ(before, Snapshot());
}

TEST_F(ErrorsTest, MalformedBodiesOfEveryWriteRouteAre400) {
  std::string before = Snapshot();
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"POST", "/v1/agents"},
      {"PATCH", "/v1/agents/" + agent_},
      {"POST", "/v1/conversations"},
      {"PATCH", "/v1/conversations/" + conv_},
      {"POST", "/v1/conversations/" + conv_ + "/messages"},
  };
  for (const auto& [method, target] : routes) {
    for (const std::string& body :
         std::vector<std::string>{"{", "[]", "{\"title\":\"\xFF\"}"}) {
      SCOPED_TRACE(method + " " + target + " " + body);
      EXPECT_TRUE(IsError(
          Send(method, target, body, {{"Content-Type", "application/json"}}),
          400, "invalid_request_error"));
    }
  }
  EXPECT_EQ(before, Snapshot());
}

TEST_F(ErrorsTest, WrongTypesAndSizesAre400NamingTheField) {
  std::string before = Snapshot();
  json::object seventeen;
  for (int i = 0; i < 17; ++i) seventeen["k" + std::to_string(i)] = "v";
  struct Case {
    json::value metadata_or_title;
    bool is_title;
    const char* param;
  };
  const std::vector<Case> cases = {
      {json::value(5), true, "title"},
      {json::value(true), true, "title"},
      {json::value(json::array{"a"}), true, "title"},
      {json::value("x"), false, "metadata"},
      {json::value(5), false, "metadata"},
      {json::value({"a", "b"}), false, "metadata"},
      {json::value({{"k", 5}}), false, "metadata"},
      {json::value({{"k", nullptr}}), false, "metadata"},
      {json::value({{"k", {{"nested", "x"}}}}), false, "metadata"},
      {json::value(seventeen), false, "metadata"},
      {json::value({{std::string(65, 'k'), "v"}}), false, "metadata"},
      {json::value({{"", "v"}}), false, "metadata"},
      {json::value({{"k", std::string(513, 'v')}}), false, "metadata"},
  };
  for (const Case& c : cases) {
    json::object body{{"agent_id", agent_}};
    body[c.is_title ? "title" : "metadata"] = c.metadata_or_title;
    SCOPED_TRACE(Json(body).substr(0, 200));
    HttpResponse r = client_.Post("/v1/conversations", alice_, Json(body));
    EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
    EXPECT_EQ(c.param, ErrorParam(r));
    // The same value in a PATCH is refused the same way.
    body.erase("agent_id");
    r = client_.Patch("/v1/conversations/" + conv_, alice_, Json(body));
    EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
    EXPECT_EQ(c.param, ErrorParam(r));
  }
  EXPECT_EQ(before, Snapshot());
}

TEST_F(ErrorsTest, MetadataAtItsLimitsIsAccepted) {
  json::object sixteen;
  for (int i = 0; i < 15; ++i) sixteen["k" + std::to_string(i)] = "v";
  sixteen[std::string(64, 'k')] = std::string(512, 'v');
  HttpResponse r =
      client_.Post("/v1/conversations", alice_,
                   Json({{"agent_id", agent_}, {"metadata", sixteen}}));
  ASSERT_EQ(201u, r.status) << r.body;
  EXPECT_EQ(json::value(sixteen), r.json().as_object()["metadata"]);
  r = client_.Post("/v1/conversations", alice_,
                   Json({{"agent_id", agent_}, {"metadata", {{"empty", ""}}}}));
  EXPECT_EQ(201u, r.status) << r.body;
}

TEST_F(ErrorsTest, AnOversizedFieldInABodyUnder1MiBIs400Not413) {
  HttpResponse r = client_.Post(
      "/v1/agents", alice_,
      Json({{"name", "big"}, {"instructions", std::string(900 * 1024, 'i')}}));
  EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
  EXPECT_EQ("instructions", ErrorParam(r));
}

// ------------------------------------------------------------ 413

TEST_F(ErrorsTest, BodyOver1MiBIs413) {
  std::string before = Snapshot();
  const std::string body =
      Json({{"role", "user"}, {"content", std::string(2 << 20, 'x')}});
  const std::string head = "POST /v1/conversations/" + conv_ +
                           "/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Authorization: Bearer " +
                           alice_ +
                           "\r\nContent-Type: application/json\r\n"
                           "Content-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n";
  HttpResponse r = SendWhileReading(server_.port(), head, body);
  EXPECT_TRUE(IsError(r, 413, "payload_too_large"));
  EXPECT_EQ(before, Snapshot());
}

// ------------------------------------------------------------ operations

TEST_F(ErrorsTest, HealthAndReadinessNeedNoKey) {
  for (const char* target : {"/healthz", "/readyz"}) {
    SCOPED_TRACE(target);
    HttpResponse r = client_.Get(target, "");
    EXPECT_EQ(200u, r.status) << r.body;
  }
}

TEST_F(ErrorsTest, MetricsNeedNoKey) {
  HttpResponse r = client_.Get("/metrics", "");
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_NE(std::string::npos, r.body.find("convstore_log_head_position "));
  // The storage engine's backlog, each a whole number of its own line.
  for (const std::string gauge :
       {"convstore_storage_background_jobs",
        "convstore_storage_pending_compaction_bytes"}) {
    const size_t at = r.body.find("\n" + gauge + " ");
    ASSERT_NE(std::string::npos, at) << gauge << " in " << r.body;
    const size_t value = at + gauge.size() + 2;
    const size_t end = r.body.find('\n', value);
    const std::string text = r.body.substr(value, end - value);
    EXPECT_FALSE(text.empty()) << gauge;
    EXPECT_EQ(std::string::npos, text.find_first_not_of("0123456789"))
        << gauge << " " << text;
  }
}

// The OpenAPI document is public documentation: served without a key.
TEST_F(ErrorsTest, OpenApiDocumentNeedsNoKey) {
  HttpResponse r = client_.Get("/v1/openapi.json", "");
  ASSERT_EQ(200u, r.status) << r.body;
  json::value doc = r.json();
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(0u, Str(doc.as_object(), "openapi").rfind("3.1", 0)) << r.body;
}

TEST_F(ErrorsTest, ErrorsNeverContainAFilePath) {
  std::vector<HttpResponse> errors = {
      client_.Get("/v1/conversations", ""),
      WithAuthorization("Bearer nope"),
      client_.Get("/v1/nothing", alice_),
      client_.Get("/v1/conversations/conv-nope", alice_),
      client_.Get("/v1/conversations/" + conv_, bob_),
      client_.Get("/v1/conversations?after=***", alice_),
      client_.Get(
          "/v1/conversations/" + conv_ + "/messages?limit=5&after=msg-x",
          alice_),
      client_.Post("/v1/conversations", alice_, "{"),
      client_.Post("/v1/conversations", alice_, "{\"agent_id\":\"\xFF\"}"),
      client_.Post(
          "/v1/conversations", alice_,
          Json({{"agent_id", "0190c1e8-0000-7000-8000-000000000000"}})),
      client_.Patch("/v1/conversations/" + conv_, alice_,
                    Json({{"title", "x"}}), {{"If-Match", "\"9\""}}),
      Send("PUT", "/v1/agents", "", {}),
      Send("POST", "/v1/agents", "{}", {}),
      client_.Get("/v1/admin/api-keys", alice_),
  };
  for (const HttpResponse& r : errors) {
    EXPECT_GE(r.status, 400u) << r.body;
    for (const std::string& leak :
         {std::string("/tmp"), std::string("rocksdb"), std::string("RocksDB"),
          server_.data_dir(), std::string(".cc:"), std::string("/work/")}) {
      EXPECT_EQ(std::string::npos, r.body.find(leak))
          << "'" << leak << "' in " << r.body;
    }
  }
}

}  // namespace
}  // namespace convstore::testing
