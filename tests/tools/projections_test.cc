// `convstore projections rebuild | verify` run as the real binary on a real
// data dir, and the online rebuild (POST /v1/admin/projections/rebuild)
// under concurrent writes and reads. A rebuild reproduces the read models
// byte for byte; verify finds a corrupted read-model row and a rebuild
// repairs it; the offline rebuild refuses a dir a server holds.

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "eventlog/event_log.h"
#include "projections/rebuild.h"
#include "tests/support/api_assertions.h"
#include "tests/support/process.h"
#include "tests/support/test_server.h"

namespace convstore::testing {
namespace {

namespace json = boost::json;

std::string CreateKey(HttpClient& c, const std::string& user) {
  HttpResponse r = c.Post("/v1/admin/api-keys", kAdmin,
                          R"({"user_id":")" + user + R"(","role":"user"})");
  EXPECT_EQ(201u, r.status) << r.body;
  return r.status == 201 ? Str(r.json(), "key") : "";
}

// What a store holds, as its clients see it.
struct Store {
  std::string user_key, other_key;
  std::vector<std::string> agents;
  std::vector<std::string> conversations;
};

// Two users; agents (one with instructions, one patched, one deleted);
// conversations with messages (one with 40, three of the store's pages of
// 16), a renamed one and a completed one.
Store Populate(uint16_t port) {
  Store s;
  HttpClient c(port);
  s.user_key = CreateKey(c, "user-a");
  s.other_key = CreateKey(c, "user-b");
  json::object a1 = CreateAgent(
      c, s.user_key, R"({"name":"Helper","instructions":"Be brief."})");
  json::object a2 = CreateAgent(c, s.other_key, R"({"name":"Other"})");
  json::object gone = CreateAgent(c, s.user_key, R"({"name":"Gone"})");
  s.agents = {Str(a1, "id"), Str(a2, "id")};
  EXPECT_EQ(200u, c.Patch("/v1/agents/" + s.agents[1], s.other_key,
                          R"({"name":"Other 2","metadata":{"k":"v"}})")
                      .status);
  EXPECT_EQ(204u, c.Delete("/v1/agents/" + Str(gone, "id"), s.user_key).status);
  for (int i = 0; i < 3; ++i) {
    json::object conv = CreateConversation(c, s.user_key, s.agents[0],
                                           "Conv " + std::to_string(i));
    s.conversations.push_back(Str(conv, "id"));
  }
  json::object other = CreateConversation(c, s.other_key, s.agents[1]);
  s.conversations.push_back(Str(other, "id"));
  for (size_t i = 0; i < s.conversations.size(); ++i) {
    const std::string& key = i == 3 ? s.other_key : s.user_key;
    for (int m = 0; m < (i == 2 ? 40 : 3); ++m) {
      EXPECT_EQ(201u, c.Post("/v1/conversations/" + s.conversations[i] +
                                 "/messages",
                             key, MessageBody("m" + std::to_string(m)))
                          .status);
    }
  }
  EXPECT_EQ(200u, c.Patch("/v1/conversations/" + s.conversations[0], s.user_key,
                          R"({"title":"Renamed","metadata":{"a":"b"}})")
                      .status);
  EXPECT_EQ(200u, c.Patch("/v1/conversations/" + s.conversations[1], s.user_key,
                          R"({"status":"completed"})")
                      .status);
  return s;
}

// Status, ETag and body of every read route over the store, by target.
std::map<std::string, std::string> Snapshot(uint16_t port, const Store& s) {
  std::map<std::string, std::string> out;
  HttpClient c(port);
  auto get = [&](const std::string& target, const std::string& key) {
    HttpResponse r = c.Get(target, key);
    out[key.substr(0, 12) + " " + target] = std::to_string(r.status) + " " +
                                            r.header("ETag") + " " + r.body;
  };
  for (const std::string& key : {s.user_key, s.other_key, std::string(kAdmin)}) {
    get("/v1/agents", key);
    get("/v1/agents?limit=1", key);
    get("/v1/conversations", key);
    get("/v1/conversations?limit=2", key);
    get("/v1/conversations?status=completed", key);
  }
  for (const std::string& a : s.agents) get("/v1/agents/" + a, kAdmin);
  for (const std::string& conv : s.conversations) {
    get("/v1/conversations/" + conv, kAdmin);
    get("/v1/conversations/" + conv + "/messages", kAdmin);
    get("/v1/conversations/" + conv + "/messages?limit=2", kAdmin);
    // A page that starts in one of the store's pages and ends in the next.
    HttpResponse all = c.Get("/v1/conversations/" + conv + "/messages", kAdmin);
    if (all.status == 200 && all.json().as_array().size() > 20) {
      get("/v1/conversations/" + conv + "/messages?limit=20&after=" +
              Str(all.json().as_array()[14], "id"),
          kAdmin);
    }
  }
  return out;
}

json::value Projections(uint16_t port) {
  HttpClient c(port);
  HttpResponse r = c.Get("/v1/admin/projections", kAdmin);
  EXPECT_EQ(200u, r.status) << r.body;
  return r.status == 200 ? r.json() : json::value(json::object());
}

std::string Generation(const json::value& projections) {
  const json::value* rms = projections.as_object().if_contains("read_models");
  if (rms == nullptr || !rms->is_array() || rms->as_array().empty()) return "";
  return Str(rms->as_array()[0], "generation");
}

CommandResult Verify(const std::string& dir) {
  return RunConvstore({"projections", "verify", "--data-dir", dir});
}
CommandResult Rebuild(const std::string& dir) {
  return RunConvstore({"projections", "rebuild", "--data-dir", dir});
}

class ProjectionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_);
    store_ = Populate(server_->port());
  }

  void StopServer() {
    ASSERT_EQ(0, server_->Stop()) << server_->output();
    server_.reset();
  }
  void StartServer() { server_ = std::make_unique<ServerProcess>(dir_); }

  TempDir tmp_;
  std::string dir_ = (tmp_.path() / "data").string();
  std::unique_ptr<ServerProcess> server_;
  Store store_;
};

// ------------------------------------------------------------ offline rebuild

TEST_F(ProjectionsTest, OfflineRebuildKeepsEveryReadByteIdenticalAfterRestart) {
  auto before = Snapshot(server_->port(), store_);
  StopServer();

  CommandResult r = Rebuild(dir_);
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.out.find("rm_ -> rm2_")) << Describe(r);

  StartServer();
  EXPECT_EQ("rm2_", Generation(Projections(server_->port())));
  auto after = Snapshot(server_->port(), store_);
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [target, response] : before) {
    EXPECT_EQ(response, after[target]) << target;
  }
}

TEST_F(ProjectionsTest, RepeatedOfflineRebuildsMoveToTheNextGenerationEachTime) {
  auto before = Snapshot(server_->port(), store_);
  StopServer();
  ASSERT_EQ(0, Rebuild(dir_).exit_code);
  CommandResult second = Rebuild(dir_);
  ASSERT_EQ(0, second.exit_code) << Describe(second);
  EXPECT_NE(std::string::npos, second.out.find("rm2_ -> rm3_")) << Describe(second);
  CommandResult v = Verify(dir_);
  EXPECT_EQ(0, v.exit_code) << Describe(v);
  StartServer();
  EXPECT_EQ(before, Snapshot(server_->port(), store_));
}

TEST_F(ProjectionsTest, RebuildWhileTheServerRunsFailsNamingTheServerAndChangesNothing) {
  auto before = Snapshot(server_->port(), store_);
  json::value status_before = Projections(server_->port());

  CommandResult r = Rebuild(dir_);
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.err.find("running server")) << Describe(r);
  EXPECT_EQ("", r.out);

  EXPECT_TRUE(server_->running());
  EXPECT_EQ(status_before, Projections(server_->port()));
  EXPECT_EQ(before, Snapshot(server_->port(), store_));
  // Also after a restart: the rebuild switched no generation in.
  StopServer();
  StartServer();
  EXPECT_EQ("rm_", Generation(Projections(server_->port())));
  EXPECT_EQ(before, Snapshot(server_->port(), store_));
}

TEST_F(ProjectionsTest, RebuildOfAMissingDirFailsAndCreatesNothing) {
  const std::string missing = (tmp_.path() / "missing").string();
  CommandResult r = Rebuild(missing);
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.err.find(missing)) << Describe(r);
  EXPECT_FALSE(std::filesystem::exists(missing));
}

// ------------------------------------------------------------ verify

TEST_F(ProjectionsTest, VerifyPassesOnAHealthyStoppedStore) {
  StopServer();
  CommandResult r = Verify(dir_);
  EXPECT_EQ(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.out.find("ok")) << Describe(r);
}

TEST_F(ProjectionsTest, VerifyPassesWhileTheServerRunsAndServes) {
  CommandResult r = Verify(dir_);
  EXPECT_EQ(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.out.find("ok")) << Describe(r);
  // It took no lock: the server still writes.
  HttpClient c = server_->Client();
  EXPECT_EQ(201u, c.Post("/v1/conversations/" + store_.conversations[0] +
                             "/messages",
                         store_.user_key, MessageBody("after verify"))
                      .status);
}

TEST_F(ProjectionsTest, VerifyOfAMissingDirFails) {
  const std::string missing = (tmp_.path() / "missing").string();
  CommandResult r = Verify(missing);
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.err.find(missing)) << Describe(r);
}

// Puts `value` under `key` in the active generation's `table` column family
// of a stopped store, as a disk fault or a bad manual edit would.
void CorruptReadModelRow(const std::string& dir, const std::string& table,
                         const std::string& key, const std::string& value) {
  EventLogOptions options;
  options.create_if_missing = false;
  auto log = EventLog::Open(dir, options);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  auto prefix = ActiveReadModelsPrefix(**log);
  ASSERT_TRUE(prefix.ok()) << prefix.status().ToString();
  rocksdb::ColumnFamilyHandle* cf = (*log)->cf(*prefix + table);
  ASSERT_NE(nullptr, cf) << *prefix + table;
  rocksdb::WriteOptions sync;
  sync.sync = true;
  rocksdb::Status s = (*log)->db()->Put(sync, cf, key, value);
  ASSERT_TRUE(s.ok()) << s.ToString();
}

std::string ReadModelRow(const std::string& dir, const std::string& table,
                         const std::string& key) {
  EventLogOptions options;
  options.create_if_missing = false;
  auto log = EventLog::Open(dir, options);
  EXPECT_TRUE(log.ok()) << log.status().ToString();
  if (!log.ok()) return "";
  auto prefix = ActiveReadModelsPrefix(**log);
  EXPECT_TRUE(prefix.ok());
  std::string value;
  rocksdb::Status s = (*log)->db()->Get(rocksdb::ReadOptions(),
                                        (*log)->cf(*prefix + table), key, &value);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return value;
}

TEST_F(ProjectionsTest, VerifyFindsACorruptedRowAndRebuildRepairsIt) {
  const std::string victim = store_.conversations[2];
  HttpClient c = server_->Client();
  HttpResponse original = c.Get("/v1/conversations/" + victim, kAdmin);
  ASSERT_EQ(200u, original.status) << original.body;
  StopServer();

  // A well-formed but wrong row: another conversation's record.
  std::string other_row =
      ReadModelRow(dir_, "conversations", store_.conversations[0]);
  ASSERT_FALSE(other_row.empty());
  ASSERT_NE(other_row, ReadModelRow(dir_, "conversations", victim));
  CorruptReadModelRow(dir_, "conversations", victim, other_row);

  CommandResult found = Verify(dir_);
  EXPECT_NE(0, found.exit_code) << Describe(found);
  EXPECT_NE(std::string::npos, found.out.find("MISMATCH")) << Describe(found);
  EXPECT_NE(std::string::npos, found.out.find("conversations: key " + victim))
      << Describe(found);

  CommandResult repaired = Rebuild(dir_);
  ASSERT_EQ(0, repaired.exit_code) << Describe(repaired);
  CommandResult clean = Verify(dir_);
  EXPECT_EQ(0, clean.exit_code) << Describe(clean);

  StartServer();
  HttpClient c2 = server_->Client();
  HttpResponse after = c2.Get("/v1/conversations/" + victim, kAdmin);
  ASSERT_EQ(200u, after.status) << after.body;
  EXPECT_EQ(original.body, after.body);
  EXPECT_EQ(original.header("ETag"), after.header("ETag"));
}

// A stored page of messages cut short (a disk fault, a bad manual edit):
// reading it is a 500 with the error body, not a crash or a partial
// transcript; verify names the page and a rebuild brings the transcript back.
TEST_F(ProjectionsTest, ATruncatedMessagePageIs500UntilARebuild) {
  const std::string victim = store_.conversations[2];  // 40 messages
  const std::string path = "/v1/conversations/" + victim + "/messages";
  HttpResponse original = server_->Client().Get(path, kAdmin);
  ASSERT_EQ(200u, original.status) << original.body;
  StopServer();
  // The page of stream revisions 0-15: "<id>\0<8-byte page number>".
  const std::string first_page = victim + std::string(9, '\0');
  ASSERT_FALSE(ReadModelRow(dir_, "messages", first_page).empty());
  CorruptReadModelRow(dir_, "messages", first_page, std::string("\0\1", 2));

  StartServer();
  HttpClient c = server_->Client();
  EXPECT_TRUE(IsError(c.Get(path, kAdmin), 500, "internal_error"));
  EXPECT_TRUE(IsError(c.Get(path + "?limit=5", kAdmin), 500, "internal_error"));
  StopServer();
  CommandResult found = Verify(dir_);
  EXPECT_NE(0, found.exit_code) << Describe(found);
  EXPECT_NE(std::string::npos, found.out.find("messages: key " + victim))
      << Describe(found);

  ASSERT_EQ(0, Rebuild(dir_).exit_code);
  StartServer();
  HttpResponse repaired = server_->Client().Get(path, kAdmin);
  ASSERT_EQ(200u, repaired.status) << repaired.body;
  EXPECT_EQ(original.body, repaired.body);
}

// verify says which row differs and where, not what it holds: a page holds
// people's words, and verify's output goes to terminals and CI logs.
TEST_F(ProjectionsTest, VerifyNamesADifferingPageWithoutPrintingItsMessages) {
  const std::string victim = store_.conversations[2];
  StopServer();
  const std::string first_page = victim + std::string(9, '\0');
  std::string page = ReadModelRow(dir_, "messages", first_page);
  ASSERT_NE(std::string::npos, page.find("\"content\":\"m")) << page;
  // A byte of the last message's JSON, the size unchanged.
  const size_t changed = page.size() - 2;
  page[changed] = page[changed] == 'x' ? 'y' : 'x';
  CorruptReadModelRow(dir_, "messages", first_page, page);

  CommandResult r = Verify(dir_);
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.out.find("messages: key " + victim))
      << Describe(r);
  const std::string size = std::to_string(page.size());
  EXPECT_NE(
      std::string::npos,
      r.out.find("live " + size + " bytes, rebuilt " + size +
                 " bytes, first difference at byte " + std::to_string(changed)))
      << Describe(r);
  EXPECT_EQ(std::string::npos, r.out.find("content")) << Describe(r);
  EXPECT_EQ(std::string::npos, r.err.find("content")) << Describe(r);

  ASSERT_EQ(0, Rebuild(dir_).exit_code);
  CommandResult clean = Verify(dir_);
  EXPECT_EQ(0, clean.exit_code) << Describe(clean);
}

TEST_F(ProjectionsTest, VerifyFindsAnExtraAndAMissingRow) {
  StopServer();
  CorruptReadModelRow(dir_, "agents", "00000000-0000-7000-8000-000000000000",
                      "stray");
  {
    EventLogOptions options;
    options.create_if_missing = false;
    auto log = EventLog::Open(dir_, options);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    auto prefix = ActiveReadModelsPrefix(**log);
    ASSERT_TRUE(prefix.ok());
    rocksdb::WriteOptions sync;
    sync.sync = true;
    ASSERT_TRUE((*log)->db()
                    ->Delete(sync, (*log)->cf(*prefix + "agents"), store_.agents[1])
                    .ok());
  }
  CommandResult r = Verify(dir_);
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.out.find("00000000-0000-7000-8000-000000000000"))
      << Describe(r);
  EXPECT_NE(std::string::npos, r.out.find(store_.agents[1])) << Describe(r);
  ASSERT_EQ(0, Rebuild(dir_).exit_code);
  CommandResult clean = Verify(dir_);
  EXPECT_EQ(0, clean.exit_code) << Describe(clean);
}

TEST_F(ProjectionsTest, VerifyPrintsAtMostMaxDifferencesAndCountsTheRest) {
  StopServer();
  for (const std::string& conv : store_.conversations) {
    CorruptReadModelRow(dir_, "conversations", conv, "wrong");
  }
  CommandResult r = RunConvstore({"projections", "verify", "--data-dir", dir_,
                                  "--max-differences", "1"});
  EXPECT_NE(0, r.exit_code) << Describe(r);
  size_t listed = 0;
  for (const std::string& conv : store_.conversations) {
    if (r.out.find("key " + conv) != std::string::npos) ++listed;
  }
  EXPECT_EQ(1u, listed) << Describe(r);
  EXPECT_NE(std::string::npos,
            r.out.find("and " + std::to_string(store_.conversations.size() - 1) +
                       " more"))
      << Describe(r);
}

TEST_F(ProjectionsTest, VerifyFindsACorruptedRowWhileTheServerRuns) {
  HttpClient c = server_->Client();
  HttpResponse messages = c.Get(
      "/v1/conversations/" + store_.conversations[0] + "/messages", kAdmin);
  ASSERT_EQ(200u, messages.status) << messages.body;
  const std::string message_id = Str(messages.json().as_array()[1], "id");
  StopServer();
  CorruptReadModelRow(dir_, "message_ids", message_id, "not a message key");
  StartServer();

  CommandResult r = Verify(dir_);
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.out.find("message_ids: key " + message_id))
      << Describe(r);
  EXPECT_TRUE(server_->running());
}

// ------------------------------------------------------------ online rebuild

// Polls GET /v1/admin/projections until the rebuild is no longer building
// (bounded); the last status.
json::value WaitForRebuild(uint16_t port, int timeout_ms) {
  json::value last;
  WaitUntil(
      [&] {
        last = Projections(port);
        const json::value* rb = last.as_object().if_contains("rebuild");
        return rb != nullptr && Str(*rb, "state") != "building";
      },
      timeout_ms);
  return last;
}

// Starts an online rebuild and waits (bounded) until it is done.
void RebuildOnline(uint16_t port) {
  HttpClient admin(port);
  ASSERT_EQ(202u,
            admin.Post("/v1/admin/projections/rebuild", kAdmin, "").status);
  json::value status = WaitForRebuild(port, 60000);
  ASSERT_EQ("done", Str(status.at("rebuild"), "state"))
      << json::serialize(status);
}

TEST_F(ProjectionsTest, OnlineRebuildUnderConcurrentWritesAndReadsSwapsInAFreshGeneration) {
  const uint16_t port = server_->port();
  constexpr int kWriters = 4;
  constexpr int kPreload = 1000;    // per writer, before the rebuild
  constexpr int kMaxWrites = 2000;  // per writer, in all
  std::vector<std::string> convs;
  {
    HttpClient c(port);
    for (int w = 0; w < kWriters; ++w) {
      convs.push_back(Str(CreateConversation(c, store_.user_key, store_.agents[0]),
                          "id"));
    }
  }
  std::mutex mu;
  std::map<std::string, std::vector<std::string>> acked;  // conv -> ids
  std::atomic<int> write_failures{0}, read_failures{0}, reads{0};
  std::atomic<bool> stop{false};
  std::vector<std::string> failures;
  auto note_failure = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(mu);
    if (failures.size() < 10) failures.push_back(what);
  };
  auto write = [&](HttpClient& c, int w, int i) {
    HttpResponse r = c.Post("/v1/conversations/" + convs[w] + "/messages",
                            store_.user_key,
                            MessageBody("w" + std::to_string(w) + "-" +
                                        std::to_string(i)));
    if (r.status != 201) {
      ++write_failures;
      note_failure("append: " + std::to_string(r.status) + " " + r.body);
      return;
    }
    std::lock_guard<std::mutex> lock(mu);
    acked[convs[w]].push_back(Str(r.json(), "id"));
  };
  // The last two messages acknowledged in `conv`, if there are two.
  auto last_two = [&](const std::string& conv)
      -> std::optional<std::pair<std::string, std::string>> {
    std::lock_guard<std::mutex> lock(mu);
    const std::vector<std::string>& ids = acked[conv];
    if (ids.size() < 2) return std::nullopt;
    return std::pair{ids[ids.size() - 2], ids.back()};
  };

  // Preload so that the rebuild has real work to do.
  {
    std::vector<std::thread> threads;
    for (int w = 0; w < kWriters; ++w) {
      threads.emplace_back([&, w] {
        HttpClient c(port);
        for (int i = 0; i < kPreload; ++i) write(c, w, i);
      });
    }
    for (auto& t : threads) t.join();
  }
  ASSERT_EQ(0, write_failures.load()) << failures[0];

  Workers threads(stop);
  for (int w = 0; w < kWriters; ++w) {
    threads.Add([&, w] {
      HttpClient c(port);
      for (int i = kPreload; i < kMaxWrites && !stop; ++i) write(c, w, i);
    });
  }
  for (int rdr = 0; rdr < 2; ++rdr) {
    threads.Add([&, rdr] {
      HttpClient c(port);
      // Until the writers are done (bounded: they are).
      for (int i = 0; i < 100000 && !stop; ++i) {
        const std::string& conv = convs[(i + rdr) % convs.size()];
        // Every other read checks that every message acknowledged is read
        // back, also while the rebuild switches generations: the one
        // acknowledged last (before the GET is sent) follows the one before
        // it (every conversation has two after the preload). The others
        // read a conversation, a page of its messages, or the list.
        std::optional<std::pair<std::string, std::string>> acked_last;
        if (i % 2 == 1) acked_last = last_two(conv);
        const int other = (i / 2) % 3;
        std::string target =
            acked_last   ? "/v1/conversations/" + conv +
                               "/messages?limit=1&after=" + acked_last->first
            : other == 0 ? "/v1/conversations/" + conv
            : other == 1 ? "/v1/conversations/" + conv + "/messages?limit=50"
                         : std::string("/v1/conversations");
        HttpResponse r = c.Get(target, store_.user_key);
        ++reads;
        if (r.status != 200 || (acked_last && r.body.find(acked_last->second) ==
                                                  std::string::npos)) {
          ++read_failures;
          note_failure("GET " + target + ": " + std::to_string(r.status) + " " +
                       r.body);
        }
      }
    });
  }

  auto acked_count = [&] {
    std::lock_guard<std::mutex> lock(mu);
    size_t n = 0;
    for (auto& [c, ids] : acked) n += ids.size();
    return n;
  };
  // The rebuild starts while the writers are busy.
  const size_t preloaded = acked_count();
  WaitUntil([&] { return acked_count() >= preloaded + 20; }, 10000);
  HttpClient admin(port);
  HttpResponse started = admin.Post("/v1/admin/projections/rebuild", kAdmin, "");
  EXPECT_EQ(202u, started.status) << started.body;
  json::value final_status = WaitForRebuild(port, 120000);
  // Keep writing a little after the swap, then stop (bounded either way).
  const size_t acked_at_swap = acked_count();
  WaitUntil([&] { return acked_count() >= acked_at_swap + 40; }, 10000);
  threads.StopAndJoin();

  EXPECT_EQ(0, write_failures.load()) << (failures.empty() ? "" : failures[0]);
  EXPECT_EQ(0, read_failures.load()) << (failures.empty() ? "" : failures[0]);
  EXPECT_GT(reads.load(), 0);

  const json::object& rb = final_status.at("rebuild").as_object();
  ASSERT_EQ("done", Str(rb, "state")) << json::serialize(final_status);
  EXPECT_EQ("rm_", Str(rb, "from_generation"));
  EXPECT_EQ("rm2_", Str(rb, "to_generation"));
  EXPECT_FALSE(rb.at("finished_at").is_null());

  json::value now = Projections(port);
  EXPECT_EQ("rm2_", Generation(now)) << json::serialize(now);
  const json::value& rm = now.at("read_models").as_array()[0];
  EXPECT_EQ(0u, U64(rm, "lag")) << json::serialize(now);
  EXPECT_EQ(U64(now, "head"), U64(rm, "checkpoint")) << json::serialize(now);

  // Every acknowledged message is in its conversation, once, in order.
  HttpClient c(port);
  for (const auto& [conv, ids] : acked) {
    HttpResponse r = c.Get("/v1/conversations/" + conv + "/messages",
                           store_.user_key);
    ASSERT_EQ(200u, r.status) << r.body;
    std::vector<std::string> listed;  // without the agent's system message
    json::value body = r.json();
    for (const json::value& m : body.as_array()) {
      if (Str(m, "role") != "system") listed.push_back(Str(m, "id"));
    }
    EXPECT_EQ(ids.size(), listed.size()) << conv;
    EXPECT_TRUE(ids == listed) << conv << ": the acknowledged messages, in order";
  }

  // The log is gapless and holds each acknowledged message exactly once.
  std::vector<json::value> events = AdminEvents(port);
  EXPECT_EQ(U64(now, "head"), events.size());
  std::multiset<std::string> logged;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(i + 1, U64(events[i], "position"));
    if (Str(events[i], "type") == "MessageAppended") {
      logged.insert(Str(events[i].at("payload"), "id"));
    }
  }
  size_t missing = 0;
  for (const auto& [conv, ids] : acked) {
    for (const std::string& id : ids) {
      if (logged.count(id) != 1) ++missing;
    }
  }
  EXPECT_EQ(0u, missing) << "acknowledged messages not in the log exactly once";

  CommandResult online = Verify(dir_);
  EXPECT_EQ(0, online.exit_code) << Describe(online);
  StopServer();
  CommandResult offline = Verify(dir_);
  EXPECT_EQ(0, offline.exit_code) << Describe(offline);
}

// The writer keeps the conversation rows it decides against in memory;
// after the switch it decides against the new generation's rows, and what
// changed there (a status) holds for every later decision.
TEST_F(ProjectionsTest,
       AfterAnOnlineRebuildAppendsDecideAgainstTheNewGeneration) {
  const uint16_t port = server_->port();
  HttpClient c(port);
  const std::string conv =
      Str(CreateConversation(c, store_.user_key, store_.agents[0]), "id");
  const std::string path = "/v1/conversations/" + conv + "/messages";
  ASSERT_EQ(201u, c.Post(path, store_.user_key, MessageBody("before")).status);

  ASSERT_NO_FATAL_FAILURE(RebuildOnline(port));

  ASSERT_EQ(201u, c.Post(path, store_.user_key, MessageBody("after")).status);
  ASSERT_EQ(200u, c.Patch("/v1/conversations/" + conv, store_.user_key,
                          R"({"status":"completed"})")
                      .status);
  // Writes in between, so the append's group is not the one right after.
  const std::string other =
      Str(CreateConversation(c, store_.user_key, store_.agents[0]), "id");
  ASSERT_EQ(201u, c.Post("/v1/conversations/" + other + "/messages",
                         store_.user_key, MessageBody("elsewhere"))
                      .status);
  HttpResponse late = c.Post(path, store_.user_key, MessageBody("too late"));
  EXPECT_EQ(409u, late.status) << late.body;
  HttpResponse list = c.Get(path, store_.user_key);
  ASSERT_EQ(200u, list.status);
  const json::value listed = list.json();
  const json::array& said = listed.as_array();
  ASSERT_FALSE(said.empty());
  EXPECT_EQ("after", Str(said.back(), "content")) << list.body;
}

// One client writing one message after another (the writer thread is idle
// between its requests) while the read models are rebuilt online, again and
// again: nothing acknowledged is lost and the head only moves forward.
TEST_F(ProjectionsTest, RepeatedOnlineRebuildsUnderASteadyWriterLoseNoAcknowledgedEvent) {
  const uint16_t port = server_->port();
  constexpr int kWriters = 1;
  constexpr int kRebuilds = 8;
  constexpr int kMaxWrites = 5000;  // per writer
  std::vector<std::string> convs;
  {
    HttpClient c(port);
    for (int w = 0; w < kWriters; ++w) {
      convs.push_back(
          Str(CreateConversation(c, store_.user_key, store_.agents[0]), "id"));
    }
  }
  std::mutex mu;
  std::set<std::string> acked;
  std::atomic<int> failures{0};
  std::atomic<bool> stop{false};
  std::atomic<int> head_regressions{0};
  std::string regression;
  Workers threads(stop);
  for (int w = 0; w < kWriters; ++w) {
    threads.Add([&, w] {
      HttpClient c(port);
      for (int i = 0; i < kMaxWrites && !stop; ++i) {
        HttpResponse r = c.Post("/v1/conversations/" + convs[w] + "/messages",
                                store_.user_key, MessageBody("x"));
        if (r.status != 201) {
          ++failures;
          continue;
        }
        std::lock_guard<std::mutex> lock(mu);
        acked.insert(Str(r.json(), "id"));
      }
    });
  }
  // The log head as the server reports it never goes backwards.
  threads.Add([&] {
    HttpClient c(port);
    uint64_t last = 0;
    for (int i = 0; i < 100000 && !stop; ++i) {
      HttpResponse r = c.Get("/metrics", "");
      static const std::regex kHead(R"(convstore_log_head_position (\d+))");
      std::smatch m;
      if (r.status != 200 || !std::regex_search(r.body, m, kHead)) continue;
      uint64_t head = std::stoull(m[1].str());
      if (head < last && head_regressions++ == 0) {
        regression = std::to_string(last) + " -> " + std::to_string(head);
      }
      last = std::max(last, head);
    }
  });
  auto acked_count = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return acked.size();
  };
  std::string expected_generation = "rm_";
  for (int i = 0; i < kRebuilds; ++i) {
    // Some writes land between rebuilds so each one has events to catch up.
    const size_t before = acked_count();
    WaitUntil([&] { return acked_count() >= before + 150; }, 20000);
    HttpClient admin(port);
    HttpResponse started = admin.Post("/v1/admin/projections/rebuild", kAdmin, "");
    ASSERT_EQ(202u, started.status) << started.body;
    json::value status = WaitForRebuild(port, 60000);
    ASSERT_EQ("done", Str(status.at("rebuild"), "state")) << json::serialize(status);
    expected_generation = Str(status.at("rebuild"), "to_generation");
  }
  threads.StopAndJoin();
  EXPECT_EQ(0, failures.load());
  EXPECT_EQ(0, head_regressions.load()) << "the log head went back: " << regression;
  EXPECT_EQ(expected_generation, Generation(Projections(port)));

  std::vector<json::value> events = AdminEvents(port);
  std::multiset<std::string> logged;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(i + 1, U64(events[i], "position"));
    if (Str(events[i], "type") == "MessageAppended") {
      logged.insert(Str(events[i].at("payload"), "id"));
    }
  }
  size_t missing = 0;
  for (const std::string& id : acked) missing += logged.count(id) == 1 ? 0 : 1;
  EXPECT_EQ(0u, missing) << "of " << acked.size()
                         << " acknowledged messages, these are not in the log "
                            "exactly once";
  StopServer();
  CommandResult v = Verify(dir_);
  EXPECT_EQ(0, v.exit_code) << Describe(v);
}

// The tools that read beside a running server (stats, export, verify) open
// it as a secondary instance; the server creating and dropping read-model
// column families during online rebuilds must not make them fail.
TEST_F(ProjectionsTest, ToolsBesideTheServerKeepWorkingThroughOnlineRebuilds) {
  const uint16_t port = server_->port();
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::string> failures;
  std::atomic<int> runs{0};
  Workers tools(stop);
  for (int t = 0; t < 2; ++t) {
    tools.Add([&, t] {
      for (int i = 0; i < 500 && !stop; ++i) {
        CommandResult r =
            t == 0 ? RunConvstore({"stats", "--data-dir", dir_})
                   : RunConvstore({"events", "export", "--data-dir", dir_,
                                   "--to", "1"});
        ++runs;
        if (r.exit_code != 0) {
          std::lock_guard<std::mutex> lock(mu);
          failures.push_back(Describe(r));
        }
      }
    });
  }
  HttpClient admin(port);
  for (int i = 0; i < 10; ++i) {
    HttpResponse started = admin.Post("/v1/admin/projections/rebuild", kAdmin, "");
    ASSERT_EQ(202u, started.status) << started.body;
    json::value status = WaitForRebuild(port, 60000);
    ASSERT_EQ("done", Str(status.at("rebuild"), "state")) << json::serialize(status);
  }
  tools.StopAndJoin();
  EXPECT_GT(runs.load(), 0);
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << runs.load()
                                << " runs failed; the first:\n"
                                << failures.front();
}

TEST_F(ProjectionsTest, OnlineRebuildOfAnIdleServerKeepsReadsByteIdentical) {
  const uint16_t port = server_->port();
  auto before = Snapshot(port, store_);
  HttpClient admin(port);
  HttpResponse started = admin.Post("/v1/admin/projections/rebuild", kAdmin, "");
  ASSERT_EQ(202u, started.status) << started.body;
  json::value accepted = started.json();
  EXPECT_TRUE(accepted.as_object().contains("rebuild")) << started.body;
  json::value status = WaitForRebuild(port, 60000);
  ASSERT_EQ("done", Str(status.at("rebuild"), "state")) << json::serialize(status);
  EXPECT_EQ("rm2_", Generation(status));
  EXPECT_EQ(before, Snapshot(port, store_));
  // The swap survives a restart.
  StopServer();
  StartServer();
  EXPECT_EQ("rm2_", Generation(Projections(server_->port())));
  EXPECT_EQ(before, Snapshot(server_->port(), store_));
}

// The new generation is built without the WAL and flushed before the switch:
// a SIGKILL right after the rebuild is reported done loses none of its rows.
TEST_F(ProjectionsTest, OnlineRebuildSurvivesAKillNineRightAfterTheSwitch) {
  const uint16_t port = server_->port();
  auto before = Snapshot(port, store_);
  ASSERT_NO_FATAL_FAILURE(RebuildOnline(port));
  server_.reset();  // SIGKILL: no clean close, no flush at shutdown
  StartServer();
  EXPECT_EQ("rm2_", Generation(Projections(server_->port())));
  EXPECT_EQ(before, Snapshot(server_->port(), store_));
  StopServer();
  CommandResult verified = Verify(dir_);
  EXPECT_EQ(0, verified.exit_code) << Describe(verified);
}

TEST_F(ProjectionsTest, SecondRebuildWhileOneIsBuildingIsConflict) {
  const uint16_t port = server_->port();
  // Enough events that the rebuild takes a while.
  {
    std::vector<std::thread> threads;
    for (int w = 0; w < 4; ++w) {
      threads.emplace_back([&, w] {
        HttpClient c(port);
        for (int i = 0; i < 100; ++i) {
          c.Post("/v1/conversations/" + store_.conversations[w % 2 == 0 ? 0 : 2] +
                     "/messages",
                 store_.user_key, MessageBody("bulk"));
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  HttpClient admin(port);
  HttpResponse first = admin.Post("/v1/admin/projections/rebuild", kAdmin, "");
  ASSERT_EQ(202u, first.status) << first.body;
  HttpResponse second = admin.Post("/v1/admin/projections/rebuild", kAdmin, "");
  json::value status = WaitForRebuild(port, 60000);
  ASSERT_EQ("done", Str(status.at("rebuild"), "state")) << json::serialize(status);
  if (second.status == 202) {
    GTEST_SKIP() << "the first rebuild finished before the second request";
  }
  EXPECT_EQ(409u, second.status) << second.body;
  json::value err = second.json();
  EXPECT_EQ("conflict_error", Str(err.at("error"), "type")) << second.body;
  EXPECT_EQ("rebuild_in_progress", Str(err.at("error"), "code")) << second.body;
  EXPECT_EQ("rm2_", Generation(status));
}

TEST_F(ProjectionsTest, OnlineRebuildNeedsAnAdminKey) {
  HttpClient c = server_->Client();
  HttpResponse r = c.Post("/v1/admin/projections/rebuild", store_.user_key, "");
  EXPECT_EQ(403u, r.status) << r.body;
  EXPECT_EQ("permission_error", Str(r.json().at("error"), "type")) << r.body;
  HttpResponse status = c.Get("/v1/admin/projections", store_.user_key);
  EXPECT_EQ(403u, status.status) << status.body;
  HttpResponse anonymous = c.Post("/v1/admin/projections/rebuild", "", "");
  EXPECT_EQ(401u, anonymous.status) << anonymous.body;
  // Nothing started.
  EXPECT_EQ("idle", Str(Projections(server_->port()).at("rebuild"), "state"));
}

}  // namespace
}  // namespace convstore::testing
