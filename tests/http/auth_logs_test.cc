// What the real server writes to its output and keeps on disk, for secrets
// (API.md: keys are "shown once and stored only as a hash"; README: tokens
// and API keys are never stored, the LiveKit secret is never logged). Runs
// `convstore serve` with a LiveKit secret and a bootstrap admin key from the
// environment (so the server prints no key: the generated key printed once
// on a first start without CONVSTORE_ADMIN_KEY is restart_test.cc's), goes
// through every path that handles a secret (key creation, replayed key
// creation, revocation, conversation tokens, replayed conversations, token
// refresh, wrong, malformed and revoked keys), restarts once, and proves that
//  - the server's whole output over both runs (stdout and stderr) holds none
//    of the admin key, the created keys, the wrong key, the LiveKit secret or
//    any token (nor a token's signature);
//  - no file of the data dir (table files, write-ahead log, manifest,
//    options) holds any of them byte for byte; since table files may be
//    compressed, no record of any column family, read back through RocksDB,
//    holds any of them either; and the store holds each key's SHA-256
//    instead.

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <boost/json.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/encoding.h"
#include "tests/support/api_assertions.h"
#include "tests/support/process.h"
#include "tests/support/test_server.h"

namespace convstore::testing {
namespace {

namespace json = boost::json;

constexpr const char* kBootstrapAdminKey = "csk_auth_logs_bootstrap_Qm2v7Lx9";
constexpr const char* kLiveKitSecret = "lk-secret-auth-logs-Zx81vTq4Wn";
constexpr const char* kWrongKey = "csk_never_issued_auth_logs_3Rf8kP0s";

std::map<std::string, std::string> LiveKitEnvironment() {
  return {{"LIVEKIT_URL", "ws://livekit.test:7880"},
          {"LIVEKIT_API_KEY", "lk-key-auth-logs"},
          {"LIVEKIT_API_SECRET", kLiveKitSecret}};
}

// Every record of every column family of the RocksDB store in `dir`, opened
// read-only, as "column family \0 key \0 value".
std::vector<std::string> AllRecords(const std::string& dir) {
  std::vector<std::string> names;
  rocksdb::Status s =
      rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &names);
  if (!s.ok()) {
    ADD_FAILURE() << "list column families: " << s.ToString();
    return {};
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : names) {
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), dir, descriptors,
                                   &handles, &raw);
  if (!s.ok()) {
    ADD_FAILURE() << "open read-only: " << s.ToString();
    return {};
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  std::vector<std::string> records;
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    std::unique_ptr<rocksdb::Iterator> it(
        db->NewIterator(rocksdb::ReadOptions(), h));
    for (it->SeekToFirst(); it->Valid() && records.size() < 1000000;
         it->Next()) {
      records.push_back(h->GetName() + '\0' + it->key().ToString() + '\0' +
                        it->value().ToString());
    }
    EXPECT_TRUE(it->status().ok()) << it->status().ToString();
    it.reset();
    EXPECT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  }
  return records;
}

// A data dir that a server with LiveKit settings ran on twice, through every
// path that handles a secret; the secrets it saw and its whole output.
class AuthLogsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    {
      ServerProcess server(dir_, kBootstrapAdminKey, LiveKitEnvironment());
      Exercise(server);
      ASSERT_EQ(0, server.Stop()) << server.output();
      output_ += server.output();
    }
    ASSERT_FALSE(HasFailure());
    // The second start recovers the first run's write-ahead log into table
    // files; the keys work, or not, as before.
    ServerProcess server(dir_, kBootstrapAdminKey, LiveKitEnvironment());
    HttpClient c = server.Client();
    EXPECT_EQ(200u, c.Get("/v1/agents", alice_key_).status);
    EXPECT_EQ(200u, c.Get("/v1/admin/api-keys", kBootstrapAdminKey).status);
    EXPECT_EQ(401u, c.Get("/v1/agents", carol_key_).status);
    EXPECT_EQ(401u, c.Get("/v1/agents", kWrongKey).status);
    ASSERT_EQ(0, server.Stop()) << server.output();
    output_ += server.output();
  }

  void Secret(std::string what, std::string text) {
    ASSERT_FALSE(text.empty()) << what;
    secrets_.emplace_back(std::move(what), std::move(text));
  }

  // A token: the whole of it and its signature are secrets.
  void Token(const std::string& what, const HttpResponse& r) {
    ASSERT_EQ(201u, r.status) << r.body;
    std::string token = Str(Parsed(r), "token");
    ASSERT_EQ(2, std::count(token.begin(), token.end(), '.')) << token;
    size_t dot = token.rfind('.');
    Secret(what, token);
    Secret("the signature of " + what, token.substr(dot + 1));
  }

  // Creates a key through the admin API; returns its id and text.
  std::pair<std::string, std::string> CreateKey(
      HttpClient& c, const std::string& user, const std::string& role,
      std::vector<std::pair<std::string, std::string>> extra = {}) {
    HttpResponse r =
        c.Post("/v1/admin/api-keys", kBootstrapAdminKey,
               Json({{"user_id", user}, {"role", role}}), std::move(extra));
    EXPECT_EQ(201u, r.status) << r.body;
    json::value v = Parsed(r);
    if (!v.is_object()) return {};
    return {Str(v, "id"), Str(v, "key")};
  }

  void Exercise(ServerProcess& server) {
    HttpClient c = server.Client();
    Secret("the bootstrap admin key", kBootstrapAdminKey);
    Secret("the LiveKit API secret", kLiveKitSecret);
    Secret("a key that was never issued", kWrongKey);

    // Keys: a user's, an admin's created with an Idempotency-Key and
    // replayed, and one revoked.
    alice_key_ = CreateKey(c, "alice", "user").second;
    Secret("alice's key", alice_key_);
    const std::vector<std::pair<std::string, std::string>> idem = {
        {"Idempotency-Key", "auth-logs-key"}};
    std::string bob_key = CreateKey(c, "bob", "admin", idem).second;
    Secret("bob's key", bob_key);
    HttpResponse replayed =
        c.Post("/v1/admin/api-keys", kBootstrapAdminKey,
               Json({{"user_id", "bob"}, {"role", "admin"}}), idem);
    EXPECT_EQ(201u, replayed.status) << replayed.body;
    EXPECT_EQ("true", replayed.header("Idempotent-Replayed"));
    EXPECT_EQ(std::string::npos, replayed.body.find(bob_key));
    auto [carol_id, carol_key] = CreateKey(c, "carol", "user");
    carol_key_ = carol_key;
    Secret("carol's revoked key", carol_key_);
    EXPECT_EQ(200u, c.Get("/v1/agents", carol_key_).status);
    EXPECT_EQ(
        204u,
        c.Delete("/v1/admin/api-keys/" + carol_id, kBootstrapAdminKey).status);

    // Tokens: a conversation's, a replayed conversation's, a refreshed one.
    std::string agent =
        Str(CreateAgent(c, alice_key_,
                        Json({{"name", "Support"},
                              {"instructions", "Help."},
                              {"dispatch_name", "support-agent"}})),
            "id");
    const std::string create = Json({{"agent_id", agent}});
    HttpResponse conv = c.Post("/v1/conversations", alice_key_, create);
    Token("the first conversation's token", conv);
    const std::string id = Str(Parsed(conv), "id");
    Token("a second conversation's token",
          c.Post("/v1/conversations", alice_key_, create,
                 {{"Idempotency-Key", "auth-logs-conv"}}));
    Token("a replayed conversation's token",
          c.Post("/v1/conversations", alice_key_, create,
                 {{"Idempotency-Key", "auth-logs-conv"}}));
    Token("a refreshed token",
          c.Post("/v1/conversations/" + id + "/token", alice_key_, ""));
    Token("a refreshed token, by an admin",
          c.Post("/v1/conversations/" + id + "/token", bob_key, ""));
    EXPECT_EQ(201u, c.Post("/v1/conversations/" + id + "/messages", alice_key_,
                           MessageBody("hello"))
                        .status);

    // Refused credentials.
    for (const std::string& authorization :
         {std::string("Bearer ") + kWrongKey, "Bearer " + carol_key_,
          "Basic " + alice_key_, "Bearer " + alice_key_ + " extra",
          "Token " + std::string(kBootstrapAdminKey)}) {
      for (const char* target : {"/v1/agents", "/v1/admin/api-keys"}) {
        HttpResponse r =
            c.Request("GET", target, "", {{"Authorization", authorization}});
        EXPECT_EQ(401u, r.status) << authorization << " " << r.body;
      }
    }
    EXPECT_EQ(403u, c.Get("/v1/admin/api-keys", alice_key_).status);
  }

  TempDir tmp_;
  const std::string dir_ = (tmp_.path() / "data").string();
  std::vector<std::pair<std::string, std::string>> secrets_;
  std::string alice_key_, carol_key_;
  std::string output_;
};

TEST_F(AuthLogsTest, TheServersOutputHoldsNoKeySecretOrToken) {
  ASSERT_NE(std::string::npos, output_.find("listening on http://127.0.0.1:"))
      << output_;
  for (const auto& [what, text] : secrets_) {
    EXPECT_EQ(std::string::npos, output_.find(text))
        << what << " is in the server's output:\n"
        << output_;
  }
}

TEST_F(AuthLogsTest, TheDataDirHoldsKeysOnlyAsSha256) {
  // Every file, byte for byte.
  size_t files = 0;
  bool table_file = false;
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(dir_, ec), end;
       !ec && it != end && files < 10000; it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    ++files;
    table_file |= it->path().extension() == ".sst";
    const std::string bytes = ReadFileText(it->path().string());
    for (const auto& [what, text] : secrets_) {
      EXPECT_EQ(std::string::npos, bytes.find(text))
          << what << " is in " << it->path().filename();
    }
  }
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_GT(files, 0u);
  EXPECT_TRUE(table_file) << "no table file: the restart flushed nothing";

  // Every record, as RocksDB reads it back (decompressed).
  const std::vector<std::string> records = AllRecords(dir_);
  ASSERT_FALSE(records.empty());
  for (const auto& [what, text] : secrets_) {
    size_t holding = 0;
    for (const std::string& record : records) {
      holding += record.find(text) != std::string::npos;
    }
    EXPECT_EQ(0u, holding) << what << " is stored";
  }
  // What is stored instead: each key's SHA-256 (hex).
  for (const auto& [what, text] : secrets_) {
    if (text.rfind("csk_", 0) != 0 || text == kWrongKey) continue;
    const std::string hash = HexEncode(Sha256(text));
    size_t holding = 0;
    for (const std::string& record : records) {
      holding += record.find(hash) != std::string::npos;
    }
    EXPECT_GT(holding, 0u) << "no record holds the SHA-256 of " << what;
  }
}

}  // namespace
}  // namespace convstore::testing
