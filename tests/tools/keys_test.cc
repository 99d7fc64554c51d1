// `convstore keys create | list | revoke` run as the real binary: directly on
// a stopped server's data dir, and through the admin API (--server,
// CONVSTORE_ADMIN_KEY) while the server holds it. Created keys work against
// the server, revoked ones get 401, and a key's secret is printed only once.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "tests/support/api_assertions.h"
#include "tests/support/process.h"
#include "tests/support/test_server.h"

namespace convstore::testing {
namespace {

namespace json = boost::json;

// The one JSON document a command printed on stdout (null if it is not one).
json::value Parse(const CommandResult& r) {
  boost::system::error_code ec;
  json::value v = json::parse(r.out, ec);
  EXPECT_FALSE(ec) << "stdout is not one JSON document:\n" << Describe(r);
  return ec ? json::value(nullptr) : v;
}

// The record of key `id` in a `keys list` output (null if absent).
json::value FindKey(const json::value& list, const std::string& id) {
  if (!list.is_array()) return nullptr;
  for (const json::value& k : list.as_array()) {
    if (k.is_object() && Str(k, "id") == id) return k;
  }
  return nullptr;
}

unsigned StatusWithKey(uint16_t port, const std::string& key,
                       const std::string& target = "/v1/agents") {
  HttpClient c(port);
  return c.Get(target, key).status;
}

// A data dir a server has initialised (it holds the bootstrap admin key);
// the server is stopped unless a test starts it.
class KeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerProcess init(dir_);
    ASSERT_EQ(0, init.Stop()) << init.output();
  }

  CommandResult Offline(std::vector<std::string> args) {
    args.insert(args.begin(), "keys");
    args.push_back("--data-dir");
    args.push_back(dir_);
    return RunConvstore(args);
  }

  // Through the running server's admin API with `admin_key` in the
  // environment (none when empty).
  CommandResult Online(std::vector<std::string> args,
                       const std::string& admin_key = kAdmin) {
    args.insert(args.begin(), "keys");
    args.push_back("--data-dir");
    args.push_back(dir_);
    args.push_back("--server");
    args.push_back(server_->url());
    std::map<std::string, std::string> env;
    if (!admin_key.empty()) env["CONVSTORE_ADMIN_KEY"] = admin_key;
    return RunConvstore(args, env);
  }

  void StartServer() { server_ = std::make_unique<ServerProcess>(dir_); }

  TempDir tmp_;
  std::string dir_ = (tmp_.path() / "data").string();
  std::unique_ptr<ServerProcess> server_;
};

// ------------------------------------------------------------ offline

TEST_F(KeysTest, OfflineCreatePrintsTheNewKeyOnce) {
  CommandResult r = Offline({"create", "--user", "alice"});
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  json::value k = Parse(r);
  ASSERT_TRUE(k.is_object()) << r.out;
  // As POST /v1/admin/api-keys answers (API.md).
  EXPECT_EQ((std::set<std::string>{"id", "key", "user_id", "role", "created_at"}),
            Keys(k));
  EXPECT_EQ(0u, Str(k, "id").rfind("key_", 0)) << r.out;
  EXPECT_EQ(0u, Str(k, "key").rfind("csk_", 0)) << r.out;
  EXPECT_EQ("alice", Str(k, "user_id"));
  EXPECT_EQ("user", Str(k, "role"));
  EXPECT_TRUE(std::regex_match(Str(k, "created_at"), kTimestamp)) << r.out;
}

TEST_F(KeysTest, OfflineCreatedKeyWorksAgainstAStartedServer) {
  CommandResult r = Offline({"create", "--user", "alice"});
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  const std::string key = Str(Parse(r), "key");
  StartServer();
  HttpClient c = server_->Client();
  json::object agent = CreateAgent(c, key, R"({"name":"A"})");
  EXPECT_EQ("alice", Str(agent, "created_by"));
  EXPECT_EQ(403u, StatusWithKey(server_->port(), key, "/v1/admin/events"))
      << "a user key is not an admin key";
}

TEST_F(KeysTest, OfflineCreateWithAdminMakesAnAdminKey) {
  CommandResult r = Offline({"create", "--user", "ops", "--admin"});
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  json::value k = Parse(r);
  EXPECT_EQ("admin", Str(k, "role"));
  StartServer();
  EXPECT_EQ(200u, StatusWithKey(server_->port(), Str(k, "key"), "/v1/admin/events"));
}

TEST_F(KeysTest, OfflineListShowsEveryKeyButNeverASecret) {
  CommandResult a = Offline({"create", "--user", "alice"});
  CommandResult b = Offline({"create", "--user", "ops", "--admin"});
  ASSERT_EQ(0, a.exit_code) << Describe(a);
  ASSERT_EQ(0, b.exit_code) << Describe(b);
  CommandResult list = Offline({"list"});
  ASSERT_EQ(0, list.exit_code) << Describe(list);
  EXPECT_EQ(std::string::npos, list.out.find("csk_")) << list.out;
  json::value v = Parse(list);
  ASSERT_TRUE(v.is_array()) << list.out;
  EXPECT_EQ(3u, v.as_array().size()) << "bootstrap admin + two: " << list.out;
  for (const json::value& k : v.as_array()) {
    EXPECT_EQ((std::set<std::string>{"id", "user_id", "role", "created_at",
                                     "revoked_at"}),
              Keys(k))
        << json::serialize(k);
  }
  json::value alice = FindKey(v, Str(Parse(a), "id"));
  ASSERT_TRUE(alice.is_object()) << list.out;
  EXPECT_EQ("alice", Str(alice, "user_id"));
  EXPECT_EQ("user", Str(alice, "role"));
  EXPECT_TRUE(alice.at("revoked_at").is_null()) << list.out;
  json::value ops = FindKey(v, Str(Parse(b), "id"));
  ASSERT_TRUE(ops.is_object()) << list.out;
  EXPECT_EQ("admin", Str(ops, "role"));
}

TEST_F(KeysTest, OfflineRevokeMarksTheKeyAndTheServerThenRejectsIt) {
  CommandResult created = Offline({"create", "--user", "alice"});
  ASSERT_EQ(0, created.exit_code) << Describe(created);
  const std::string id = Str(Parse(created), "id");
  const std::string key = Str(Parse(created), "key");

  CommandResult revoked = Offline({"revoke", id});
  ASSERT_EQ(0, revoked.exit_code) << Describe(revoked);
  EXPECT_NE(std::string::npos, revoked.out.find(id)) << Describe(revoked);

  json::value rec = FindKey(Parse(Offline({"list"})), id);
  ASSERT_TRUE(rec.is_object());
  EXPECT_TRUE(std::regex_match(Str(rec, "revoked_at"), kTimestamp))
      << json::serialize(rec);

  StartServer();
  EXPECT_EQ(401u, StatusWithKey(server_->port(), key));
}

TEST_F(KeysTest, OfflineRevokeOfAnUnknownIdFailsAndChangesNothing) {
  const std::string before = Offline({"list"}).out;
  CommandResult r = Offline({"revoke", "key_00000000-0000-7000-8000-000000000000"});
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.err.find("not found")) << Describe(r);
  EXPECT_EQ(before, Offline({"list"}).out);
}

TEST_F(KeysTest, CreateWithAnInvalidUserIsUsageErrorTwoAndCreatesNothing) {
  const std::string before = Offline({"list"}).out;
  for (const char* user : {"bad user!", "", "a/b"}) {
    CommandResult r = Offline({"create", "--user", user});
    EXPECT_EQ(2, r.exit_code) << "'" << user << "': " << Describe(r);
    EXPECT_EQ("", r.out) << user;
    EXPECT_NE(std::string::npos, r.err.find("--user")) << Describe(r);
  }
  EXPECT_EQ(before, Offline({"list"}).out);
}

TEST_F(KeysTest, CreateWithoutUserFails) {
  CommandResult r = Offline({"create"});
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.err.find("--user")) << Describe(r);
}

TEST_F(KeysTest, OnAMissingDataDirEveryKeysCommandFailsWithAMessage) {
  const std::string missing = (tmp_.path() / "missing").string();
  for (std::vector<std::string> args :
       {std::vector<std::string>{"keys", "create", "--user", "alice"},
        std::vector<std::string>{"keys", "list"},
        std::vector<std::string>{"keys", "revoke", "key_x"}}) {
    args.push_back("--data-dir");
    args.push_back(missing);
    CommandResult r = RunConvstore(args);
    EXPECT_NE(0, r.exit_code) << args[1] << ": " << Describe(r);
    EXPECT_EQ("", r.out) << args[1];
    EXPECT_NE(std::string::npos, r.err.find(missing)) << Describe(r);
  }
  EXPECT_FALSE(std::filesystem::exists(missing));
}

// ------------------------------------------------------------ online

TEST_F(KeysTest, OnlineCreateGoesThroughTheServerAndTheKeyWorksAtOnce) {
  StartServer();
  CommandResult r = Online({"create", "--user", "bob"});
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  json::value k = Parse(r);
  ASSERT_TRUE(k.is_object()) << r.out;
  EXPECT_EQ((std::set<std::string>{"id", "key", "user_id", "role", "created_at"}),
            Keys(k));
  EXPECT_EQ("bob", Str(k, "user_id"));
  EXPECT_EQ("user", Str(k, "role"));
  EXPECT_EQ(0u, Str(k, "key").rfind("csk_", 0)) << r.out;
  EXPECT_EQ(200u, StatusWithKey(server_->port(), Str(k, "key")));
  // The server lists it too.
  HttpClient c = server_->Client();
  HttpResponse list = c.Get("/v1/admin/api-keys", kAdmin);
  ASSERT_EQ(200u, list.status);
  EXPECT_TRUE(FindKey(list.json(), Str(k, "id")).is_object()) << list.body;
}

TEST_F(KeysTest, OnlineCreateWithAdminMakesAnAdminKey) {
  StartServer();
  CommandResult r = Online({"create", "--user", "ops", "--admin"});
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  json::value k = Parse(r);
  EXPECT_EQ("admin", Str(k, "role"));
  EXPECT_EQ(200u,
            StatusWithKey(server_->port(), Str(k, "key"), "/v1/admin/events"));
}

TEST_F(KeysTest, OnlineListShowsTheKeysWithoutSecrets) {
  StartServer();
  CommandResult created = Online({"create", "--user", "bob"});
  ASSERT_EQ(0, created.exit_code) << Describe(created);
  CommandResult list = Online({"list"});
  ASSERT_EQ(0, list.exit_code) << Describe(list);
  EXPECT_EQ(std::string::npos, list.out.find("csk_")) << list.out;
  json::value v = Parse(list);
  ASSERT_TRUE(v.is_array()) << list.out;
  EXPECT_EQ(2u, v.as_array().size()) << list.out;
  json::value bob = FindKey(v, Str(Parse(created), "id"));
  ASSERT_TRUE(bob.is_object()) << list.out;
  EXPECT_EQ((std::set<std::string>{"id", "user_id", "role", "created_at",
                                   "revoked_at"}),
            Keys(bob));
}

TEST_F(KeysTest, OnlineRevokeTakesEffectImmediately) {
  StartServer();
  CommandResult created = Online({"create", "--user", "bob"});
  ASSERT_EQ(0, created.exit_code) << Describe(created);
  const std::string key = Str(Parse(created), "key");
  ASSERT_EQ(200u, StatusWithKey(server_->port(), key));
  CommandResult revoked = Online({"revoke", Str(Parse(created), "id")});
  ASSERT_EQ(0, revoked.exit_code) << Describe(revoked);
  EXPECT_EQ(401u, StatusWithKey(server_->port(), key));
  json::value rec = FindKey(Parse(Online({"list"})), Str(Parse(created), "id"));
  ASSERT_TRUE(rec.is_object());
  EXPECT_TRUE(std::regex_match(Str(rec, "revoked_at"), kTimestamp));
}

TEST_F(KeysTest, OnlineRevokeOfAnUnknownIdFails) {
  StartServer();
  CommandResult r =
      Online({"revoke", "key_00000000-0000-7000-8000-000000000000"});
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.err.find("404")) << Describe(r);
}

TEST_F(KeysTest, OnlineWithoutAnAdminKeyFailsNamingTheVariableAndCreatesNothing) {
  StartServer();
  for (std::vector<std::string> args :
       {std::vector<std::string>{"create", "--user", "bob"},
        std::vector<std::string>{"list"},
        std::vector<std::string>{"revoke", "key_x"}}) {
    CommandResult r = Online(args, /*admin_key=*/"");
    EXPECT_NE(0, r.exit_code) << args[0] << ": " << Describe(r);
    EXPECT_EQ("", r.out) << args[0];
    EXPECT_NE(std::string::npos, r.err.find("CONVSTORE_ADMIN_KEY"))
        << Describe(r);
  }
  HttpClient c = server_->Client();
  HttpResponse list = c.Get("/v1/admin/api-keys", kAdmin);
  ASSERT_EQ(200u, list.status);
  EXPECT_EQ(1u, list.json().as_array().size()) << list.body;
}

TEST_F(KeysTest, OnlineWithAWrongOrNonAdminKeyFails) {
  StartServer();
  CommandResult wrong = Online({"create", "--user", "bob"}, "csk_wrong");
  EXPECT_NE(0, wrong.exit_code) << Describe(wrong);
  EXPECT_NE(std::string::npos, wrong.err.find("401")) << Describe(wrong);

  HttpClient c = server_->Client();
  HttpResponse k = c.Post("/v1/admin/api-keys", kAdmin,
                          R"({"user_id":"plain","role":"user"})");
  ASSERT_EQ(201u, k.status);
  CommandResult denied = Online({"list"}, Str(k.json(), "key"));
  EXPECT_NE(0, denied.exit_code) << Describe(denied);
  EXPECT_NE(std::string::npos, denied.err.find("403")) << Describe(denied);
}

TEST_F(KeysTest, AdminKeyFlagWorksLikeTheVariable) {
  StartServer();
  CommandResult r = RunConvstore({"keys", "create", "--user", "bob",
                                  "--data-dir", dir_, "--server", server_->url(),
                                  "--admin-key", kAdmin});
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  EXPECT_EQ("bob", Str(Parse(r), "user_id"));
}

TEST_F(KeysTest, OnlineWithAnUnreachableServerFailsWithAMessage) {
  StartServer();
  CommandResult r = RunConvstore(
      {"keys", "list", "--data-dir", dir_, "--server", "http://127.0.0.1:1"},
      {{"CONVSTORE_ADMIN_KEY", kAdmin}});
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.err.find("server")) << Describe(r);
}

}  // namespace
}  // namespace convstore::testing
