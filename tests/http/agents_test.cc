// The agents resource over real HTTP: create, list (newest first, paged with
// Link rel="next"), get, patch (ETag, If-Match), delete, ownership and the
// field limits of the contract (API.md, "Agents").

#include <gtest/gtest.h>

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

// ------------------------------------------------------------ fixture

class AgentsTest : public AliceAndBobTest {
 protected:
  json::object NewAgent(const std::string& name, const std::string& key = "") {
    return CreateAgent(client_, key.empty() ? alice_ : key,
                       Json({{"name", name}}));
  }

  HttpResponse Get(const std::string& id) {
    return client_.Get("/v1/agents/" + id, alice_);
  }

  // Every page of the caller's agents from `target`, following Link.
  std::vector<std::string> ListAll(const std::string& target,
                                   std::vector<size_t>* page_sizes = nullptr) {
    std::vector<std::string> ids;
    std::string next = target;
    for (int page = 0; !next.empty(); ++page) {
      if (page == 100) {
        ADD_FAILURE() << "more than 100 pages";
        break;
      }
      HttpResponse r = client_.Get(next, alice_);
      EXPECT_EQ(200u, r.status) << r.body;
      if (r.status != 200) break;
      std::vector<std::string> page_ids = Ids(r.json().as_array());
      if (page_sizes) page_sizes->push_back(page_ids.size());
      ids.insert(ids.end(), page_ids.begin(), page_ids.end());
      next = NextLink(r);
      if (!next.empty()) {
        EXPECT_EQ(0u, next.rfind("/v1/agents?", 0)) << next;
      }
    }
    return ids;
  }

};

// ------------------------------------------------------------ create

TEST_F(AgentsTest, CreateReturns201WithEveryField) {
  HttpResponse r = client_.Post(
      "/v1/agents", alice_,
      Json({{"name", "Support"},
            {"instructions", "You are a helpful product support agent."},
            {"dispatch_name", "support-agent"},
            {"metadata", {{"team", "emea"}}}}));
  ASSERT_EQ(201u, r.status) << r.body;
  json::object a = r.json().as_object();
  EXPECT_EQ((std::set<std::string>{"id", "name", "instructions",
                                   "dispatch_name", "metadata", "created_by",
                                   "created_at", "updated_at"}),
            Keys(a));
  EXPECT_TRUE(std::regex_match(Str(a, "id"), kUuidV7)) << Str(a, "id");
  EXPECT_EQ("Support", Str(a, "name"));
  EXPECT_EQ("You are a helpful product support agent.", Str(a, "instructions"));
  EXPECT_EQ("support-agent", Str(a, "dispatch_name"));
  EXPECT_EQ(json::value({{"team", "emea"}}), a["metadata"]);
  EXPECT_EQ("alice", Str(a, "created_by"));
  EXPECT_TRUE(std::regex_match(Str(a, "created_at"), kTimestamp))
      << Str(a, "created_at");
  EXPECT_EQ(Str(a, "created_at"), Str(a, "updated_at"));
  EXPECT_EQ("/v1/agents/" + Str(a, "id"), r.header("Location"));
  EXPECT_EQ("\"0\"", r.header("ETag"));
}

TEST_F(AgentsTest, CreateWithOnlyANameLeavesTheOptionalFieldsEmpty) {
  json::object a = NewAgent("Bare");
  EXPECT_EQ("", Str(a, "instructions"));
  EXPECT_TRUE(a["dispatch_name"].is_null()) << a["dispatch_name"];
  EXPECT_EQ(json::value(json::object()), a["metadata"]);
}

TEST_F(AgentsTest, GetReturnsTheCreatedAgentWithItsETag) {
  HttpResponse created = client_.Post(
      "/v1/agents", alice_,
      Json({{"name", "Support"}, {"instructions", "Be kind."}}));
  ASSERT_EQ(201u, created.status);
  std::string id = Str(created.json().as_object(), "id");

  HttpResponse r = Get(id);
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ(created.json(), r.json());
  EXPECT_EQ("\"0\"", r.header("ETag"));
}

// ------------------------------------------------------------ list

TEST_F(AgentsTest, ListIsNewestFirst) {
  std::vector<std::string> created;
  for (int i = 0; i < 5; ++i) {
    created.push_back(Str(NewAgent("agent " + std::to_string(i)), "id"));
  }
  HttpResponse r = client_.Get("/v1/agents", alice_);
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ(std::vector<std::string>(created.rbegin(), created.rend()),
            Ids(r.json().as_array()));
  EXPECT_EQ("", r.header("Link"));
}

TEST_F(AgentsTest, ListItemsAreWholeAgents) {
  json::object a = CreateAgent(
      client_, alice_,
      Json({{"name", "Full"}, {"instructions", "x"}, {"dispatch_name", "w"}}));
  HttpResponse r = client_.Get("/v1/agents", alice_);
  ASSERT_EQ(200u, r.status);
  ASSERT_EQ(1u, r.json().as_array().size());
  EXPECT_EQ(json::value(a), r.json().as_array()[0]);
}

TEST_F(AgentsTest, ListPagesThroughEveryAgentExactlyOnceWithLinkNext) {
  std::vector<std::string> created;
  for (int i = 0; i < 7; ++i) {
    created.push_back(Str(NewAgent("agent " + std::to_string(i)), "id"));
  }
  std::vector<size_t> page_sizes;
  std::vector<std::string> listed = ListAll("/v1/agents?limit=3", &page_sizes);
  EXPECT_EQ(std::vector<std::string>(created.rbegin(), created.rend()), listed);
  EXPECT_EQ((std::vector<size_t>{3, 3, 1}), page_sizes);
}

TEST_F(AgentsTest, ListWhoseLastPageIsFullHasNoLinkAfterIt) {
  for (int i = 0; i < 4; ++i) NewAgent("agent " + std::to_string(i));
  std::vector<size_t> page_sizes;
  EXPECT_EQ(4u, ListAll("/v1/agents?limit=2", &page_sizes).size());
  EXPECT_EQ((std::vector<size_t>{2, 2}), page_sizes);
}

TEST_F(AgentsTest, ListShowsOnlyTheCallersAgents) {
  std::string mine = Str(NewAgent("mine"), "id");
  NewAgent("theirs", bob_);
  EXPECT_EQ(std::vector<std::string>{mine}, ListAll("/v1/agents"));
}

TEST_F(AgentsTest, ListLimitOutsideOneToHundredIs400) {
  for (const char* limit : {"0", "101", "-1", "abc", ""}) {
    SCOPED_TRACE(limit);
    HttpResponse r = client_.Get(std::string("/v1/agents?limit=") + limit, alice_);
    EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
    EXPECT_EQ("limit", ErrorParam(r));
  }
  EXPECT_EQ(200u, client_.Get("/v1/agents?limit=1", alice_).status);
  EXPECT_EQ(200u, client_.Get("/v1/agents?limit=100", alice_).status);
}

TEST_F(AgentsTest, ListWithMalformedAfterIs400) {
  NewAgent("a");
  HttpResponse r = client_.Get("/v1/agents?after=not*a*cursor", alice_);
  EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
  EXPECT_EQ("after", ErrorParam(r));
}

// ------------------------------------------------------------ patch

TEST_F(AgentsTest, PatchChangesTheFieldsAndIncrementsTheETag) {
  json::object a = CreateAgent(
      client_, alice_,
      Json({{"name", "Old"}, {"instructions", "old"}, {"dispatch_name", "w1"}}));
  std::string id = Str(a, "id");
  WaitForClockPast(Str(a, "updated_at"));

  HttpResponse r = client_.Patch(
      "/v1/agents/" + id, alice_,
      Json({{"name", "New"},
            {"instructions", "new"},
            {"dispatch_name", "w2"},
            {"metadata", {{"k", "v"}}}}));
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ("\"1\"", r.header("ETag"));
  json::object p = r.json().as_object();
  EXPECT_EQ("New", Str(p, "name"));
  EXPECT_EQ("new", Str(p, "instructions"));
  EXPECT_EQ("w2", Str(p, "dispatch_name"));
  EXPECT_EQ(json::value({{"k", "v"}}), p["metadata"]);
  EXPECT_EQ(Str(a, "created_at"), Str(p, "created_at"));
  EXPECT_GT(Str(p, "updated_at"), Str(a, "updated_at"));

  HttpResponse got = Get(id);
  EXPECT_EQ(r.json(), got.json());
  EXPECT_EQ("\"1\"", got.header("ETag"));
}

TEST_F(AgentsTest, PatchOfOneFieldKeepsTheOthers) {
  json::object a = CreateAgent(
      client_, alice_,
      Json({{"name", "Keep"},
            {"instructions", "keep me"},
            {"dispatch_name", "w"},
            {"metadata", {{"k", "v"}}}}));
  HttpResponse r = client_.Patch("/v1/agents/" + Str(a, "id"), alice_,
                                 Json({{"name", "Renamed"}}));
  ASSERT_EQ(200u, r.status) << r.body;
  json::object p = r.json().as_object();
  EXPECT_EQ("Renamed", Str(p, "name"));
  EXPECT_EQ("keep me", Str(p, "instructions"));
  EXPECT_EQ("w", Str(p, "dispatch_name"));
  EXPECT_EQ(json::value({{"k", "v"}}), p["metadata"]);
}

TEST_F(AgentsTest, PatchThatChangesNothingWritesNothing) {
  json::object a = CreateAgent(client_, alice_,
                               Json({{"name", "Same"}, {"instructions", "i"}}));
  std::string id = Str(a, "id");
  WaitForClockPast(Str(a, "updated_at"));
  uint64_t head = LogHead(client_);

  HttpResponse r = client_.Patch("/v1/agents/" + id, alice_,
                                 Json({{"name", "Same"}, {"instructions", "i"}}));
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ("\"0\"", r.header("ETag"));
  EXPECT_EQ(json::value(a), r.json());
  EXPECT_EQ(head, LogHead(client_));
  EXPECT_EQ("\"0\"", Get(id).header("ETag"));
}

TEST_F(AgentsTest, PatchWithStaleIfMatchIs412AndChangesNothing) {
  std::string id = Str(NewAgent("v0"), "id");
  ASSERT_EQ(200u, client_.Patch("/v1/agents/" + id, alice_,
                                Json({{"name", "v1"}})).status);
  uint64_t head = LogHead(client_);

  HttpResponse r = client_.Patch("/v1/agents/" + id, alice_,
                                 Json({{"name", "v2"}}), {{"If-Match", "\"0\""}});
  EXPECT_TRUE(IsError(r, 412, "precondition_failed"));

  HttpResponse got = Get(id);
  EXPECT_EQ("v1", Str(got.json().as_object(), "name"));
  EXPECT_EQ("\"1\"", got.header("ETag"));
  EXPECT_EQ(head, LogHead(client_));
}

TEST_F(AgentsTest, PatchWithCurrentIfMatchSucceeds) {
  std::string id = Str(NewAgent("v0"), "id");
  HttpResponse r = client_.Patch("/v1/agents/" + id, alice_,
                                 Json({{"name", "v1"}}), {{"If-Match", "\"0\""}});
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ("\"1\"", r.header("ETag"));
  r = client_.Patch("/v1/agents/" + id, alice_, Json({{"name", "v2"}}),
                    {{"If-Match", "\"1\""}});
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ("\"2\"", r.header("ETag"));
}

TEST_F(AgentsTest, WeakOrMalformedIfMatchNeverMatches) {
  std::string id = Str(NewAgent("v0"), "id");
  for (const char* tag : {"W/\"0\"", "0", "\"zero\"", "\"0\", \"1\""}) {
    SCOPED_TRACE(tag);
    EXPECT_TRUE(IsError(client_.Patch("/v1/agents/" + id, alice_,
                                      Json({{"name", "v1"}}), {{"If-Match", tag}}),
                        412, "precondition_failed"));
  }
  EXPECT_EQ("v0", Str(Get(id).json().as_object(), "name"));
}

TEST_F(AgentsTest, PatchWithIfMatchStarSucceeds) {
  std::string id = Str(NewAgent("v0"), "id");
  ASSERT_EQ(200u, client_.Patch("/v1/agents/" + id, alice_,
                                Json({{"name", "v1"}})).status);
  HttpResponse r = client_.Patch("/v1/agents/" + id, alice_,
                                 Json({{"name", "v2"}}), {{"If-Match", "*"}});
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ("\"2\"", r.header("ETag"));
  EXPECT_EQ("v2", Str(Get(id).json().as_object(), "name"));
}

TEST_F(AgentsTest, PatchWithInvalidNameIs400AndChangesNothing) {
  std::string id = Str(NewAgent("valid"), "id");
  for (const json::value& name :
       {json::value(""), json::value(std::string(129, 'n')), json::value(5)}) {
    SCOPED_TRACE(Json(name));
    HttpResponse r = client_.Patch("/v1/agents/" + id, alice_,
                                   Json({{"name", name}}));
    EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
    EXPECT_EQ("name", ErrorParam(r));
  }
  HttpResponse got = Get(id);
  EXPECT_EQ("valid", Str(got.json().as_object(), "name"));
  EXPECT_EQ("\"0\"", got.header("ETag"));
}

TEST_F(AgentsTest, PatchOfUnknownAgentIs404) {
  HttpResponse r =
      client_.Patch("/v1/agents/0190c1e8-0000-7000-8000-000000000000", alice_,
                    Json({{"name", "x"}}));
  EXPECT_TRUE(IsError(r, 404, "not_found_error"));
}

// ------------------------------------------------------------ delete

TEST_F(AgentsTest, DeleteIs204ThenTheAgentIsGone) {
  std::string keep = Str(NewAgent("keep"), "id");
  std::string gone = Str(NewAgent("gone"), "id");

  HttpResponse r = client_.Delete("/v1/agents/" + gone, alice_);
  EXPECT_EQ(204u, r.status) << r.body;
  EXPECT_EQ("", r.body);
  EXPECT_EQ("\"1\"", r.header("ETag"));

  EXPECT_TRUE(IsError(Get(gone), 404, "not_found_error"));
  EXPECT_TRUE(IsError(client_.Patch("/v1/agents/" + gone, alice_,
                                    Json({{"name", "again"}})),
                      404, "not_found_error"));
  EXPECT_TRUE(IsError(client_.Delete("/v1/agents/" + gone, alice_), 404,
                      "not_found_error"));
  EXPECT_EQ(std::vector<std::string>{keep}, ListAll("/v1/agents"));
}

TEST_F(AgentsTest, DeleteWithStaleIfMatchIs412AndKeepsTheAgent) {
  std::string id = Str(NewAgent("v0"), "id");
  ASSERT_EQ(200u, client_.Patch("/v1/agents/" + id, alice_,
                                Json({{"name", "v1"}})).status);
  HttpResponse r = client_.Delete("/v1/agents/" + id, alice_,
                                  {{"If-Match", "\"0\""}});
  EXPECT_TRUE(IsError(r, 412, "precondition_failed"));
  EXPECT_EQ(200u, Get(id).status);
}

TEST_F(AgentsTest, DeleteWithCurrentIfMatchSucceeds) {
  std::string id = Str(NewAgent("v0"), "id");
  EXPECT_EQ(204u, client_.Delete("/v1/agents/" + id, alice_,
                                 {{"If-Match", "\"0\""}}).status);
  EXPECT_EQ(404u, Get(id).status);
}

TEST_F(AgentsTest, ConversationWithADeletedAgentIs404) {
  std::string id = Str(NewAgent("gone"), "id");
  ASSERT_EQ(204u, client_.Delete("/v1/agents/" + id, alice_).status);
  uint64_t head = LogHead(client_);

  HttpResponse r = client_.Post("/v1/conversations", alice_,
                                Json({{"agent_id", id}}));
  EXPECT_TRUE(IsError(r, 404, "not_found_error"));
  EXPECT_EQ("agent_id", ErrorParam(r));
  EXPECT_EQ(head, LogHead(client_));
  EXPECT_EQ("[]", client_.Get("/v1/conversations", alice_).body);
}

TEST_F(AgentsTest, ExistingConversationKeepsWorkingAfterItsAgentIsDeleted) {
  json::object agent = CreateAgent(
      client_, alice_, Json({{"name", "a"}, {"dispatch_name", "worker"}}));
  std::string conv = Str(CreateConversation(client_, alice_, Str(agent, "id")), "id");
  ASSERT_EQ(204u, client_.Delete("/v1/agents/" + Str(agent, "id"), alice_).status);

  EXPECT_EQ(200u, client_.Get("/v1/conversations/" + conv, alice_).status);
  EXPECT_EQ(201u, client_.Post("/v1/conversations/" + conv + "/messages", alice_,
                               Json({{"role", "user"}, {"content", "still here"}}))
                      .status);
  EXPECT_EQ(201u,
            client_.Post("/v1/conversations/" + conv + "/token", alice_, "{}").status);
  EXPECT_EQ(200u, client_.Patch("/v1/conversations/" + conv, alice_,
                                Json({{"status", "completed"}})).status);
}

// ------------------------------------------------------------ ownership

TEST_F(AgentsTest, AnotherUsersAgentIs403OnGetPatchAndDelete) {
  std::string id = Str(NewAgent("alice's"), "id");
  EXPECT_TRUE(IsError(client_.Get("/v1/agents/" + id, bob_), 403,
                      "permission_error"));
  EXPECT_TRUE(IsError(client_.Patch("/v1/agents/" + id, bob_,
                                    Json({{"name", "bob's now"}})),
                      403, "permission_error"));
  EXPECT_TRUE(IsError(client_.Delete("/v1/agents/" + id, bob_), 403,
                      "permission_error"));

  HttpResponse got = Get(id);
  ASSERT_EQ(200u, got.status);
  EXPECT_EQ("alice's", Str(got.json().as_object(), "name"));
  EXPECT_EQ("\"0\"", got.header("ETag"));
}

TEST_F(AgentsTest, AnotherUsersErrorDoesNotLeakTheAgent) {
  std::string id = Str(
      CreateAgent(client_, alice_,
                  Json({{"name", "secret-name"}, {"instructions", "secret-instr"}})),
      "id");
  HttpResponse r = client_.Get("/v1/agents/" + id, bob_);
  EXPECT_EQ(403u, r.status);
  EXPECT_EQ(std::string::npos, r.body.find("secret-name")) << r.body;
  EXPECT_EQ(std::string::npos, r.body.find("secret-instr")) << r.body;
}

TEST_F(AgentsTest, ConversationWithAnotherUsersAgentIs403) {
  std::string id = Str(NewAgent("alice's"), "id");
  uint64_t head = LogHead(client_);
  HttpResponse r =
      client_.Post("/v1/conversations", bob_, Json({{"agent_id", id}}));
  EXPECT_TRUE(IsError(r, 403, "permission_error"));
  EXPECT_EQ(head, LogHead(client_));
}

TEST_F(AgentsTest, AdminKeyReadsAnyUsersAgent) {
  json::object a = NewAgent("alice's");
  HttpResponse r =
      client_.Get("/v1/agents/" + Str(a, "id"), TestServer::kAdminKey);
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ(json::value(a), r.json());
}

TEST_F(AgentsTest, AdminKeyListsEveryUsersAgents) {
  std::string a = Str(NewAgent("alice's"), "id");
  std::string b = Str(NewAgent("bob's", bob_), "id");
  HttpResponse r = client_.Get("/v1/agents", TestServer::kAdminKey);
  ASSERT_EQ(200u, r.status) << r.body;
  EXPECT_EQ((std::vector<std::string>{b, a}), Ids(r.json().as_array()));
}

TEST_F(AgentsTest, UnknownOrMalformedAgentIdIs404) {
  for (const char* id : {"0190c1e8-0000-7000-8000-000000000000", "nope",
                         "conv-0190c1e8-0000-7000-8000-000000000000"}) {
    SCOPED_TRACE(id);
    EXPECT_TRUE(IsError(Get(id), 404, "not_found_error"));
  }
}

// ------------------------------------------------------------ validation

TEST_F(AgentsTest, NameIsRequiredAndOneTo128Characters) {
  uint64_t head = LogHead(client_);
  for (const std::string& body :
       {std::string("{}"), Json({{"name", nullptr}}), Json({{"name", ""}}),
        Json({{"name", std::string(129, 'n')}}), Json({{"name", 7}}),
        Json({{"instructions", "no name"}})}) {
    SCOPED_TRACE(body);
    HttpResponse r = client_.Post("/v1/agents", alice_, body);
    EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
    EXPECT_EQ("name", ErrorParam(r));
  }
  EXPECT_EQ(head, LogHead(client_));
  EXPECT_EQ("[]", client_.Get("/v1/agents", alice_).body);
}

TEST_F(AgentsTest, NameOf128CharactersIsAccepted) {
  std::string ascii(128, 'n');
  EXPECT_EQ(ascii, Str(NewAgent(ascii), "name"));
  // 128 code points of a two-byte character: the limit counts characters.
  std::string accented;
  for (int i = 0; i < 128; ++i) accented += "\xC3\xA9";  // é
  EXPECT_EQ(accented, Str(NewAgent(accented), "name"));
}

TEST_F(AgentsTest, InstructionsUpTo32KiBAreAccepted) {
  std::string instructions(32 * 1024, 'i');
  json::object a = CreateAgent(
      client_, alice_, Json({{"name", "n"}, {"instructions", instructions}}));
  EXPECT_EQ(instructions, Str(a, "instructions"));
}

TEST_F(AgentsTest, InstructionsOver32KiBAre400) {
  HttpResponse r = client_.Post(
      "/v1/agents", alice_,
      Json({{"name", "n"}, {"instructions", std::string(32 * 1024 + 1, 'i')}}));
  EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
  EXPECT_EQ("instructions", ErrorParam(r));
  EXPECT_EQ("[]", client_.Get("/v1/agents", alice_).body);
}

TEST_F(AgentsTest, InstructionsOver32KiBInAPatchAre400) {
  std::string id = Str(NewAgent("n"), "id");
  HttpResponse r = client_.Patch(
      "/v1/agents/" + id, alice_,
      Json({{"instructions", std::string(32 * 1024 + 1, 'i')}}));
  EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
  EXPECT_EQ("instructions", ErrorParam(r));
  EXPECT_EQ("\"0\"", Get(id).header("ETag"));
}

TEST_F(AgentsTest, InvalidMetadataIs400) {
  HttpResponse r = client_.Post("/v1/agents", alice_,
                                Json({{"name", "n"}, {"metadata", "x"}}));
  EXPECT_TRUE(IsError(r, 400, "invalid_request_error"));
  EXPECT_EQ("metadata", ErrorParam(r));
}

}  // namespace
}  // namespace convstore::testing
