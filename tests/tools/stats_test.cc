// `convstore stats` run as the real binary: the counts match what was
// written (events, head, streams, agents, conversations, messages, read-model
// checkpoint and lag), `--json` is one parsable object, it works beside a
// running server and sees its latest writes, and a missing dir fails.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/api_assertions.h"
#include "tests/support/process.h"
#include "tests/support/test_server.h"

namespace convstore::testing {
namespace {

namespace json = boost::json;

// What was written, counted by the test itself.
struct Written {
  uint64_t agents = 0, conversations = 0, messages = 0;
};

class StatsTest : public ::testing::Test {
 protected:
  // Two users; three agents (one with instructions, so its conversations
  // start with a system message; one deleted); four conversations; seven
  // appended messages; a rename and a status change.
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_);
    HttpClient c = server_->Client();
    std::string alice = Key(c, "alice"), bob = Key(c, "bob");
    json::object helper =
        CreateAgent(c, alice, R"({"name":"Helper","instructions":"Be kind."})");
    json::object plain = CreateAgent(c, bob, R"({"name":"Plain"})");
    json::object gone = CreateAgent(c, bob, R"({"name":"Gone"})");
    ASSERT_EQ(204u, c.Delete("/v1/agents/" + Str(gone, "id"), bob).status);
    written_.agents = 2;
    std::vector<std::pair<std::string, std::string>> convs;  // id, key
    for (int i = 0; i < 2; ++i) {
      convs.emplace_back(Str(CreateConversation(c, alice, Str(helper, "id")), "id"),
                         alice);
      written_.messages += 1;  // the system message
    }
    for (int i = 0; i < 2; ++i) {
      convs.emplace_back(Str(CreateConversation(c, bob, Str(plain, "id")), "id"),
                         bob);
    }
    written_.conversations = convs.size();
    for (int m = 0; m < 7; ++m) {
      const auto& [conv, key] = convs[m % 3];
      ASSERT_EQ(201u, c.Post("/v1/conversations/" + conv + "/messages", key,
                             MessageBody("m" + std::to_string(m)))
                          .status);
      written_.messages += 1;
    }
    ASSERT_EQ(200u, c.Patch("/v1/conversations/" + convs[0].first, alice,
                            R"({"title":"Renamed"})")
                        .status);
    ASSERT_EQ(200u, c.Patch("/v1/conversations/" + convs[3].first, bob,
                            R"({"status":"archived"})")
                        .status);
    alice_ = alice;
    conversation_ = convs[0].first;

    // The log as the server serves it: its length and distinct streams.
    HttpResponse events = c.Get("/v1/admin/events?limit=10000", kAdmin);
    ASSERT_EQ(200u, events.status);
    json::value all = events.json();
    std::set<std::string> streams;
    for (const json::value& e : all.as_array()) streams.insert(Str(e, "stream"));
    events_ = all.as_array().size();
    streams_ = streams.size();
  }

  static std::string Key(HttpClient& c, const std::string& user) {
    HttpResponse r = c.Post("/v1/admin/api-keys", kAdmin,
                            R"({"user_id":")" + user + R"(","role":"user"})");
    EXPECT_EQ(201u, r.status) << r.body;
    return Str(r.json(), "key");
  }

  json::value StatsJson() {
    CommandResult r = RunConvstore({"stats", "--json", "--data-dir", dir_});
    EXPECT_EQ(0, r.exit_code) << Describe(r);
    boost::system::error_code ec;
    json::value v = json::parse(r.out, ec);
    EXPECT_FALSE(ec) << "not one JSON document:\n" << r.out;
    EXPECT_TRUE(v.is_object()) << r.out;
    return v.is_object() ? v : json::value(json::object());
  }

  void ExpectCounts(const json::value& s) {
    EXPECT_EQ(events_, U64(s, "events")) << json::serialize(s);
    EXPECT_EQ(events_, U64(s, "head_position")) << json::serialize(s);
    EXPECT_EQ(streams_, U64(s, "streams")) << json::serialize(s);
    EXPECT_EQ(written_.agents, U64(s, "agents")) << json::serialize(s);
    EXPECT_EQ(written_.conversations, U64(s, "conversations"))
        << json::serialize(s);
    EXPECT_EQ(written_.messages, U64(s, "messages")) << json::serialize(s);
    EXPECT_EQ(events_, U64(s, "read_models_checkpoint")) << json::serialize(s);
    EXPECT_EQ(0u, U64(s, "read_models_lag")) << json::serialize(s);
  }

  TempDir tmp_;
  std::string dir_ = (tmp_.path() / "data").string();
  std::unique_ptr<ServerProcess> server_;
  Written written_;
  uint64_t events_ = 0, streams_ = 0;
  std::string alice_, conversation_;
};

TEST_F(StatsTest, JsonCountsMatchWhatWasWrittenOnAStoppedStore) {
  ASSERT_EQ(0, server_->Stop()) << server_->output();
  json::value s = StatsJson();
  ExpectCounts(s);
  EXPECT_EQ("rm_", Str(s, "read_models_generation"));
  EXPECT_GT(U64(s, "size_on_disk_bytes"), 0u);
  EXPECT_NE(~uint64_t{0}, U64(s, "size_on_disk_bytes"));
}

TEST_F(StatsTest, JsonHasExactlyTheDocumentedFields) {
  json::value s = StatsJson();
  std::set<std::string> keys;
  for (const auto& kv : s.as_object()) keys.insert(std::string(kv.key()));
  EXPECT_EQ((std::set<std::string>{"events", "head_position", "streams", "agents",
                                   "conversations", "messages",
                                   "size_on_disk_bytes", "read_models_checkpoint",
                                   "read_models_lag", "read_models_generation"}),
            keys);
}

TEST_F(StatsTest, WorksWhileTheServerRunsAndSeesItsLatestWrites) {
  ExpectCounts(StatsJson());
  HttpClient c = server_->Client();
  ASSERT_EQ(201u, c.Post("/v1/conversations/" + conversation_ + "/messages",
                         alice_, MessageBody("one more"))
                      .status);
  json::value s = StatsJson();
  EXPECT_EQ(events_ + 1, U64(s, "events")) << json::serialize(s);
  EXPECT_EQ(written_.messages + 1, U64(s, "messages")) << json::serialize(s);
  EXPECT_EQ(0u, U64(s, "read_models_lag")) << json::serialize(s);
  EXPECT_TRUE(server_->running());
  // It took no lock: the server still writes.
  EXPECT_EQ(201u, c.Post("/v1/conversations/" + conversation_ + "/messages",
                         alice_, MessageBody("and another"))
                      .status);
}

TEST_F(StatsTest, TextFormatHasOneNameValueLinePerFigure) {
  ASSERT_EQ(0, server_->Stop()) << server_->output();
  CommandResult r = RunConvstore({"stats", "--data-dir", dir_});
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  std::map<std::string, std::string> lines;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    size_t colon = line.find(": ");
    ASSERT_NE(std::string::npos, colon) << line;
    lines[line.substr(0, colon)] = line.substr(colon + 2);
  }
  EXPECT_EQ(std::to_string(events_), lines["events"]) << r.out;
  EXPECT_EQ(std::to_string(written_.agents), lines["agents"]) << r.out;
  EXPECT_EQ(std::to_string(written_.conversations), lines["conversations"]) << r.out;
  EXPECT_EQ(std::to_string(written_.messages), lines["messages"]) << r.out;
  EXPECT_EQ(std::to_string(streams_), lines["streams"]) << r.out;
  EXPECT_EQ("0", lines["read_models_lag"]) << r.out;
  EXPECT_EQ("rm_", lines["read_models_generation"]) << r.out;
}

TEST_F(StatsTest, AfterARebuildReportsTheNewGenerationAndTheSameCounts) {
  ASSERT_EQ(0, server_->Stop()) << server_->output();
  CommandResult rebuilt =
      RunConvstore({"projections", "rebuild", "--data-dir", dir_});
  ASSERT_EQ(0, rebuilt.exit_code) << Describe(rebuilt);
  json::value s = StatsJson();
  ExpectCounts(s);
  EXPECT_EQ("rm2_", Str(s, "read_models_generation"));
}

TEST_F(StatsTest, MissingDataDirFailsWithAMessageNamingIt) {
  const std::string missing = (tmp_.path() / "missing").string();
  CommandResult r = RunConvstore({"stats", "--data-dir", missing});
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_EQ("", r.out);
  EXPECT_NE(std::string::npos, r.err.find(missing)) << Describe(r);
  EXPECT_FALSE(std::filesystem::exists(missing));
}

TEST_F(StatsTest, ADirThatIsNotAStoreFails) {
  const std::string empty = (tmp_.path() / "empty").string();
  std::filesystem::create_directory(empty);
  CommandResult r = RunConvstore({"stats", "--json", "--data-dir", empty});
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_EQ("", r.out);
  EXPECT_NE(std::string::npos, r.err.find(empty)) << Describe(r);
  EXPECT_TRUE(std::filesystem::is_empty(empty)) << "stats must not create a store";
}

}  // namespace
}  // namespace convstore::testing
