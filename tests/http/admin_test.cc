// The admin read routes over real HTTP (API.md, "Operations" and "Fine
// points"): GET /v1/admin/events (envelope shape, gapless positions, `from`
// inclusive, `limit` bounds, Link rel="next" paging, admin only) and
// GET /v1/admin/projections (shape).

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "tests/support/api_assertions.h"
#include "tests/support/test_server.h"

namespace convstore::testing {
namespace {

namespace json = boost::json;

const std::set<std::string> kEnvelopeKeys = {
    "position",   "stream", "revision", "event_id",        "type",
    "recorded_at", "actor", "payload",  "idempotency_key"};
const std::set<std::string> kEventTypes = {
    "AgentCreated",        "AgentUpdated",
    "AgentDeleted",        "ConversationCreated",
    "ConversationUpdated", "ConversationStatusChanged",
    "MessageAppended"};

// A store holding every event type: two users, agents (one with
// instructions, so its conversation starts with a system message), a patched
// and a deleted agent, conversations patched and completed, and messages
// (one sent with an Idempotency-Key).
class AdminEventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpClient c = server_.Client();
    user_key_ = server_.CreateKey("user-a");
    other_key_ = server_.CreateKey("user-b");
    agent_ = CreateAgent(c, user_key_,
                         R"({"name":"Support","instructions":"Be kind."})");
    json::object doomed = CreateAgent(c, other_key_, R"({"name":"Doomed"})");
    ASSERT_EQ(200u, c.Patch("/v1/agents/" + Str(agent_, "id"), user_key_,
                            R"({"name":"Support 2"})")
                        .status);
    ASSERT_EQ(204u,
              c.Delete("/v1/agents/" + Str(doomed, "id"), other_key_).status);
    conversation_ = CreateConversation(c, user_key_, Str(agent_, "id"), "Hi");
    const std::string conv = Str(conversation_, "id");
    HttpResponse m = c.Post("/v1/conversations/" + conv + "/messages",
                            user_key_,
                            R"({"role":"user","content":"hello, \"world\""})",
                            {{"Idempotency-Key", "idem-42"}});
    ASSERT_EQ(201u, m.status) << m.body;
    message_ = m.json().as_object();
    ASSERT_EQ(201u, c.Post("/v1/conversations/" + conv + "/messages",
                           user_key_, R"({"role":"assistant","content":"hi"})")
                        .status);
    ASSERT_EQ(200u, c.Patch("/v1/conversations/" + conv, user_key_,
                            R"({"title":"Renamed"})")
                        .status);
    ASSERT_EQ(200u, c.Patch("/v1/conversations/" + conv, user_key_,
                            R"({"status":"completed"})")
                        .status);
  }

  // GET /v1/admin/events with the admin key, asserting 200 and an array.
  json::array Events(const std::string& query = "") {
    HttpClient c = server_.Client();
    HttpResponse r = c.Get("/v1/admin/events" + query, TestServer::kAdminKey);
    EXPECT_EQ(200u, r.status) << r.body;
    EXPECT_EQ(0u, r.header("Content-Type").rfind("application/json", 0))
        << r.header("Content-Type");
    json::value v = r.json();
    EXPECT_TRUE(v.is_array()) << r.body;
    return v.is_array() ? v.as_array() : json::array();
  }

  TestServer server_;
  std::string user_key_, other_key_;
  json::object agent_, conversation_, message_;
};

TEST_F(AdminEventsTest, EveryEnvelopeHasExactlyTheDocumentedFields) {
  json::array events = Events();
  ASSERT_FALSE(events.empty());
  for (const json::value& e : events) {
    ASSERT_TRUE(e.is_object()) << json::serialize(e);
    const json::object& o = e.as_object();
    EXPECT_EQ(kEnvelopeKeys, Keys(o)) << json::serialize(e);
    EXPECT_TRUE(o.at("position").is_number()) << json::serialize(e);
    EXPECT_TRUE(o.at("revision").is_number()) << json::serialize(e);
    EXPECT_TRUE(o.at("stream").is_string()) << json::serialize(e);
    EXPECT_FALSE(Str(o, "event_id").empty()) << json::serialize(e);
    EXPECT_EQ(1u, kEventTypes.count(Str(o, "type"))) << json::serialize(e);
    EXPECT_TRUE(std::regex_match(Str(o, "recorded_at"), kTimestamp))
        << json::serialize(e);
    EXPECT_TRUE(o.at("actor").is_string()) << json::serialize(e);
    EXPECT_TRUE(o.at("idempotency_key").is_null() ||
                o.at("idempotency_key").is_string())
        << json::serialize(e);
    EXPECT_TRUE(o.at("payload").is_object()) << json::serialize(e);
  }
}

TEST_F(AdminEventsTest, EventIdsAreUnique) {
  std::set<std::string> ids;
  json::array events = Events();
  for (const json::value& e : events) ids.insert(Str(e, "event_id"));
  EXPECT_EQ(events.size(), ids.size());
}

TEST_F(AdminEventsTest, PositionsAreGaplessFromOneAndRevisionsPerStreamFromZero) {
  json::array events = Events();
  ASSERT_GE(events.size(), 9u);  // every write of SetUp is at least one event
  std::map<std::string, uint64_t> next_revision;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(i + 1, U64(events[i], "position")) << json::serialize(events[i]);
    uint64_t& want = next_revision[Str(events[i], "stream")];
    EXPECT_EQ(want, U64(events[i], "revision")) << json::serialize(events[i]);
    ++want;
  }
}

TEST_F(AdminEventsTest, EveryEventTypeIsRecordedOnItsDocumentedStream) {
  const std::string agent = Str(agent_, "id");
  const std::string conv = Str(conversation_, "id");
  std::multiset<std::string> seen;
  for (const json::value& e : Events()) {
    const std::string type = Str(e, "type");
    const std::string stream = Str(e, "stream");
    seen.insert(type);
    if (type.rfind("Agent", 0) == 0) {
      EXPECT_EQ(0u, stream.rfind("agent-", 0)) << json::serialize(e);
    } else if (type == "MessageAppended") {
      EXPECT_EQ("messages-" + conv, stream) << json::serialize(e);
    } else {
      EXPECT_EQ("conversation-" + conv, stream) << json::serialize(e);
    }
    if (type == "AgentCreated" && Str(e.at("payload"), "id") == agent) {
      EXPECT_EQ("agent-" + agent, stream);
      EXPECT_EQ("user-a", Str(e, "actor"));
    }
  }
  for (const std::string& type : kEventTypes) {
    EXPECT_GE(seen.count(type), 1u) << "no " << type << " event";
  }
  // The system message (agent instructions) and the two appended ones.
  EXPECT_EQ(3u, seen.count("MessageAppended"));
}

TEST_F(AdminEventsTest, MessagePayloadIsTheMessageAndCarriesTheIdempotencyKey) {
  const json::value* found = nullptr;
  json::array events = Events();
  for (const json::value& e : events) {
    if (Str(e, "type") == "MessageAppended" &&
        Str(e.at("payload"), "id") == Str(message_, "id")) {
      found = &e;
    }
  }
  ASSERT_NE(nullptr, found) << "no MessageAppended for " << Str(message_, "id");
  EXPECT_EQ(json::value(message_), found->at("payload"));
  EXPECT_EQ("idem-42", Str(*found, "idempotency_key"));
  EXPECT_EQ("user-a", Str(*found, "actor"));
}

TEST_F(AdminEventsTest, DefaultLimitReturnsTheWholeSmallLogWithoutNextLink) {
  HttpClient c = server_.Client();
  HttpResponse r = c.Get("/v1/admin/events", TestServer::kAdminKey);
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ("", NextLink(r));
  HttpResponse status = c.Get("/v1/admin/projections", TestServer::kAdminKey);
  ASSERT_EQ(200u, status.status);
  EXPECT_EQ(U64(status.json(), "head"), r.json().as_array().size());
}

TEST_F(AdminEventsTest, FromIsInclusive) {
  json::array all = Events();
  json::array from3 = Events("?from=3");
  ASSERT_EQ(all.size() - 2, from3.size());
  EXPECT_EQ(3u, U64(from3.front(), "position"));
  for (size_t i = 0; i < from3.size(); ++i) EXPECT_EQ(all[i + 2], from3[i]);
}

TEST_F(AdminEventsTest, FromAtTheHeadReturnsTheLastEventAndPastItNothing) {
  json::array all = Events();
  const uint64_t head = all.size();
  json::array last = Events("?from=" + std::to_string(head));
  ASSERT_EQ(1u, last.size());
  EXPECT_EQ(all.back(), last.front());
  HttpClient c = server_.Client();
  HttpResponse past = c.Get("/v1/admin/events?from=" + std::to_string(head + 1),
                            TestServer::kAdminKey);
  ASSERT_EQ(200u, past.status) << past.body;
  EXPECT_EQ(json::value(json::array()), past.json());
  EXPECT_EQ("", NextLink(past));
}

TEST_F(AdminEventsTest, LimitCapsThePageAndAddsANextLink) {
  HttpClient c = server_.Client();
  HttpResponse r = c.Get("/v1/admin/events?limit=1", TestServer::kAdminKey);
  ASSERT_EQ(200u, r.status) << r.body;
  ASSERT_EQ(1u, r.json().as_array().size());
  EXPECT_EQ(1u, U64(r.json().as_array()[0], "position"));
  EXPECT_NE("", NextLink(r));
}

TEST_F(AdminEventsTest, LimitAcceptsOneToTenThousand) {
  for (const char* limit : {"1", "10000"}) {
    HttpClient c = server_.Client();
    HttpResponse r = c.Get(std::string("/v1/admin/events?limit=") + limit,
                           TestServer::kAdminKey);
    EXPECT_EQ(200u, r.status) << limit << ": " << r.body;
  }
}

TEST_F(AdminEventsTest, LimitOutsideOneToTenThousandIsBadRequestNamingLimit) {
  HttpClient c = server_.Client();
  for (const char* limit : {"0", "10001", "-1", "abc", "", "1.5", "99999999999"}) {
    HttpResponse r = c.Get(std::string("/v1/admin/events?limit=") + limit,
                           TestServer::kAdminKey);
    EXPECT_TRUE(IsError(r, 400, "invalid_request_error", "limit"))
        << "limit=" << limit;
  }
}

TEST_F(AdminEventsTest, BadFromIsBadRequestNamingFrom) {
  HttpClient c = server_.Client();
  for (const char* from :
       {"0", "-1", "abc", "", "1x", "+1", "99999999999999999999"}) {
    HttpResponse r = c.Get(std::string("/v1/admin/events?from=") + from,
                           TestServer::kAdminKey);
    EXPECT_TRUE(IsError(r, 400, "invalid_request_error", "from"))
        << "from=" << from;
  }
}

TEST_F(AdminEventsTest, FollowingNextLinksVisitsEveryEventExactlyOnce) {
  const json::array all = Events();
  for (size_t limit : {1u, 2u, 4u}) {
    std::vector<json::value> seen;
    std::string target = "/v1/admin/events?limit=" + std::to_string(limit);
    HttpClient c = server_.Client();
    for (size_t page = 0; !target.empty() && page <= all.size() + 1; ++page) {
      HttpResponse r = c.Get(target, TestServer::kAdminKey);
      ASSERT_EQ(200u, r.status) << target << ": " << r.body;
      json::value body = r.json();
      const json::array& items = body.as_array();
      EXPECT_LE(items.size(), limit) << target;
      seen.insert(seen.end(), items.begin(), items.end());
      target = NextLink(r);
      if (!target.empty()) {
        EXPECT_EQ(0u, target.rfind("/v1/admin/events?", 0)) << target;
      }
    }
    EXPECT_EQ("", target) << "paging did not end, limit " << limit;
    ASSERT_EQ(all.size(), seen.size()) << "limit " << limit;
    for (size_t i = 0; i < all.size(); ++i) {
      EXPECT_EQ(all[i], seen[i]) << "limit " << limit << ", item " << i;
    }
  }
}

TEST_F(AdminEventsTest, PagingStartsAtFrom) {
  const json::array all = Events();
  HttpClient c = server_.Client();
  HttpResponse r = c.Get("/v1/admin/events?from=2&limit=2", TestServer::kAdminKey);
  ASSERT_EQ(200u, r.status) << r.body;
  ASSERT_EQ(2u, r.json().as_array().size());
  EXPECT_EQ(all[1], r.json().as_array()[0]);
  std::string next = NextLink(r);
  ASSERT_NE("", next);
  HttpResponse r2 = c.Get(next, TestServer::kAdminKey);
  ASSERT_EQ(200u, r2.status) << r2.body;
  ASSERT_FALSE(r2.json().as_array().empty());
  EXPECT_EQ(all[3], r2.json().as_array()[0]);
}

TEST_F(AdminEventsTest, NonAdminKeyIsForbidden) {
  HttpClient c = server_.Client();
  EXPECT_TRUE(IsError(c.Get("/v1/admin/events", user_key_), 403,
                      "permission_error"));
  EXPECT_TRUE(IsError(c.Get("/v1/admin/projections", user_key_), 403,
                      "permission_error"));
  EXPECT_TRUE(IsError(c.Get("/v1/admin/api-keys", user_key_), 403,
                      "permission_error"));
}

TEST_F(AdminEventsTest, NoKeyIsUnauthenticated) {
  HttpClient c = server_.Client();
  EXPECT_TRUE(IsError(c.Get("/v1/admin/events", ""), 401,
                      "authentication_error"));
  EXPECT_TRUE(IsError(c.Get("/v1/admin/projections", ""), 401,
                      "authentication_error"));
}

TEST_F(AdminEventsTest, AnotherAdminKeyMayReadTheEvents) {
  std::string admin2 = server_.CreateKey("ops", /*admin=*/true);
  HttpClient c = server_.Client();
  HttpResponse r = c.Get("/v1/admin/events", admin2);
  EXPECT_EQ(200u, r.status) << r.body;
}

TEST_F(AdminEventsTest, OtherMethodsAreNotAllowed) {
  HttpClient c = server_.Client();
  HttpResponse r = c.Post("/v1/admin/events", TestServer::kAdminKey, "{}");
  EXPECT_EQ(405u, r.status) << r.body;
  EXPECT_EQ("GET", r.header("Allow"));
}

// ------------------------------------------------------------ projections

TEST_F(AdminEventsTest, ProjectionsStatusShowsReadModelsHeadAndIdleRebuild) {
  HttpClient c = server_.Client();
  HttpResponse r = c.Get("/v1/admin/projections", TestServer::kAdminKey);
  ASSERT_EQ(200u, r.status) << r.body;
  json::value v = r.json();
  ASSERT_TRUE(v.is_object()) << r.body;
  EXPECT_EQ((std::set<std::string>{"head", "read_models", "rebuild"}),
            Keys(v.as_object()));
  const uint64_t head = U64(v, "head");
  EXPECT_EQ(Events().size(), head);

  ASSERT_TRUE(v.at("read_models").is_array()) << r.body;
  ASSERT_FALSE(v.at("read_models").as_array().empty()) << r.body;
  for (const json::value& rm : v.at("read_models").as_array()) {
    ASSERT_TRUE(rm.is_object()) << r.body;
    EXPECT_EQ((std::set<std::string>{"name", "generation", "checkpoint", "lag"}),
              Keys(rm.as_object()));
    EXPECT_TRUE(rm.at("name").is_string());
    EXPECT_EQ("rm_", Str(rm, "generation"));
    EXPECT_EQ(head, U64(rm, "checkpoint"));
    EXPECT_EQ(0u, U64(rm, "lag"));
  }

  ASSERT_TRUE(v.at("rebuild").is_object()) << r.body;
  const json::object& rb = v.at("rebuild").as_object();
  EXPECT_EQ((std::set<std::string>{"state", "from_generation", "to_generation",
                                   "started_at", "finished_at", "events",
                                   "error"}),
            Keys(rb));
  EXPECT_EQ("idle", Str(rb, "state"));
  EXPECT_TRUE(rb.at("started_at").is_null());
  EXPECT_TRUE(rb.at("finished_at").is_null());
  EXPECT_TRUE(rb.at("error").is_null());
}

}  // namespace
}  // namespace convstore::testing
