// `convstore backup create | restore` run as the real binary: an online
// backup taken while a server process serves writes restores to a gapless
// prefix of the live log with matching read models and every message
// acknowledged before the backup; an offline backup reproduces the store;
// and the refusals (existing backup dir, non-empty restore target, not a
// backup, missing data dir, no admin key) change nothing.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "eventlog/event_log.h"
#include "projections/rebuild.h"
#include "tests/support/api_assertions.h"
#include "tests/support/process.h"
#include "tests/support/test_server.h"

namespace convstore::testing {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

// Message ids of a conversation, oldest first.
std::vector<std::string> MessageIds(uint16_t port, const std::string& conv) {
  HttpClient c(port);
  HttpResponse r = c.Get("/v1/conversations/" + conv + "/messages", kAdmin);
  EXPECT_EQ(200u, r.status) << r.body;
  std::vector<std::string> ids;
  if (r.status != 200) return ids;
  json::value v = r.json();
  for (const json::value& m : v.as_array()) ids.push_back(Str(m, "id"));
  return ids;
}

uint64_t Head(uint16_t port) {
  HttpClient c(port);
  HttpResponse r = c.Get("/v1/admin/projections", kAdmin);
  EXPECT_EQ(200u, r.status) << r.body;
  return r.status == 200 ? r.json().at("head").to_number<uint64_t>() : 0;
}

// A listing of a directory tree: relative path -> file content ("<dir>" for
// directories).
std::map<std::string, std::string> Tree(const fs::path& root) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(root, ec)) {
    std::string rel = fs::relative(e.path(), root).string();
    out[rel] = e.is_directory() ? "<dir>" : ReadFileText(e.path().string());
  }
  return out;
}

// A server process on a live data dir with one user, an agent with
// instructions and four conversations with a few messages.
class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(live_);
    HttpClient c = server_->Client();
    HttpResponse k = c.Post("/v1/admin/api-keys", kAdmin,
                            R"({"user_id":"writer","role":"user"})");
    ASSERT_EQ(201u, k.status) << k.body;
    user_key_ = Str(k.json(), "key");
    json::object agent =
        CreateAgent(c, user_key_, R"({"name":"A","instructions":"Hi."})");
    for (int i = 0; i < 4; ++i) {
      conversations_.push_back(
          Str(CreateConversation(c, user_key_, Str(agent, "id")), "id"));
      for (int m = 0; m < 2; ++m) {
        ASSERT_EQ(201u, c.Post("/v1/conversations/" + conversations_[i] +
                                   "/messages",
                               user_key_, MessageBody("seed"))
                            .status);
      }
    }
  }

  CommandResult BackupOnline(const std::string& dir,
                             const std::string& admin_key = kAdmin) {
    std::map<std::string, std::string> env;
    if (!admin_key.empty()) env["CONVSTORE_ADMIN_KEY"] = admin_key;
    return RunConvstore({"backup", "create", dir, "--data-dir", live_,
                         "--server", server_->url()},
                        env);
  }
  CommandResult BackupOffline(const std::string& dir) {
    return RunConvstore({"backup", "create", dir, "--data-dir", live_});
  }
  CommandResult Restore(const std::string& from, const std::string& to) {
    return RunConvstore({"backup", "restore", from, "--data-dir", to});
  }
  void StopServer() {
    ASSERT_EQ(0, server_->Stop()) << server_->output();
  }
  std::string Path(const std::string& name) { return (tmp_.path() / name).string(); }

  TempDir tmp_;
  std::string live_ = Path("live");
  std::unique_ptr<ServerProcess> server_;
  std::string user_key_;
  std::vector<std::string> conversations_;
};

// ------------------------------------------------------------ online

TEST_F(BackupTest, OnlineBackupUnderWritesRestoresAGaplessPrefixWithMatchingReadModels) {
  const uint16_t port = server_->port();
  constexpr int kWriters = 4;
  constexpr int kMaxWrites = 400;  // per writer
  std::mutex mu;
  std::set<std::string> acked;
  std::atomic<int> failures{0};
  std::atomic<bool> stop{false};
  Workers writers(stop);
  for (int w = 0; w < kWriters; ++w) {
    writers.Add([&, w] {
      HttpClient c(port);
      for (int i = 0; i < kMaxWrites && !stop; ++i) {
        HttpResponse r = c.Post(
            "/v1/conversations/" + conversations_[w] + "/messages", user_key_,
            MessageBody("w" + std::to_string(w) + " #" + std::to_string(i)));
        if (r.status != 201) {
          ++failures;
          continue;
        }
        std::lock_guard<std::mutex> lock(mu);
        acked.insert(Str(r.json(), "id"));
      }
    });
  }
  auto acked_count = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return acked.size();
  };
  WaitUntil([&] { return acked_count() >= 100; }, 20000);

  std::set<std::string> acked_before;
  {
    std::lock_guard<std::mutex> lock(mu);
    acked_before = acked;
  }
  const uint64_t head_before = Head(port);
  const std::string backup = Path("backup");
  CommandResult created = BackupOnline(backup);
  const size_t after_backup = acked_count();
  WaitUntil([&] { return acked_count() >= after_backup + 50; }, 20000);
  writers.StopAndJoin();
  ASSERT_EQ(0, created.exit_code) << Describe(created);
  EXPECT_EQ(0, failures.load());
  EXPECT_GT(acked_count(), acked_before.size()) << "writes went on during the backup";

  const std::string restored = Path("restored");
  CommandResult r = Restore(backup, restored);
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.out.find("gapless")) << Describe(r);

  std::vector<json::value> live_events = AdminEvents(port);
  ServerProcess copy(restored);
  std::vector<json::value> copy_events = AdminEvents(copy.port());
  ASSERT_GE(copy_events.size(), head_before)
      << "the backup lacks events committed before it started";
  ASSERT_LE(copy_events.size(), live_events.size());
  for (size_t i = 0; i < copy_events.size(); ++i) {
    ASSERT_EQ(live_events[i], copy_events[i]) << "position " << i + 1;
  }

  // Every message acknowledged before the backup started is in the copy,
  // and each conversation of the copy is a prefix of the live one.
  std::set<std::string> copied;
  for (const std::string& conv : conversations_) {
    std::vector<std::string> in_copy = MessageIds(copy.port(), conv);
    std::vector<std::string> in_live = MessageIds(port, conv);
    ASSERT_LE(in_copy.size(), in_live.size()) << conv;
    EXPECT_TRUE(std::equal(in_copy.begin(), in_copy.end(), in_live.begin()))
        << conv << ": the copy's messages are not a prefix of the live ones";
    copied.insert(in_copy.begin(), in_copy.end());
  }
  size_t lost = 0;
  for (const std::string& id : acked_before) lost += copied.count(id) ? 0 : 1;
  EXPECT_EQ(0u, lost) << "of " << acked_before.size()
                      << " messages acknowledged before the backup";

  ASSERT_EQ(0, copy.Stop()) << copy.output();
  CommandResult verify =
      RunConvstore({"projections", "verify", "--data-dir", restored});
  EXPECT_EQ(0, verify.exit_code) << Describe(verify);
}

TEST_F(BackupTest, OnlineBackupIsMadeByTheServerAndSaysSo) {
  const std::string backup = Path("backup");
  CommandResult r = BackupOnline(backup);
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.out.find(backup)) << Describe(r);
  EXPECT_TRUE(fs::exists(fs::path(backup) / "CURRENT"));
  EXPECT_TRUE(server_->running());
}

TEST_F(BackupTest, OnlineBackupWithoutAnAdminKeyFailsNamingTheVariable) {
  const std::string backup = Path("backup");
  CommandResult r = BackupOnline(backup, /*admin_key=*/"");
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.err.find("CONVSTORE_ADMIN_KEY")) << Describe(r);
  EXPECT_FALSE(fs::exists(backup));
}

TEST_F(BackupTest, OnlineBackupIntoAnExistingDirFailsAndLeavesItAlone) {
  const std::string backup = Path("backup");
  fs::create_directory(backup);
  CommandResult r = BackupOnline(backup);
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.err.find("must not exist")) << Describe(r);
  EXPECT_TRUE(fs::is_empty(backup));
}

// ------------------------------------------------------------ offline

TEST_F(BackupTest, OfflineBackupAndRestoreReproduceTheStore) {
  const std::vector<json::value> live_events = AdminEvents(server_->port());
  std::map<std::string, std::vector<std::string>> live_messages;
  for (const std::string& conv : conversations_) {
    live_messages[conv] = MessageIds(server_->port(), conv);
  }
  StopServer();

  const std::string backup = Path("backup");
  CommandResult created = BackupOffline(backup);
  ASSERT_EQ(0, created.exit_code) << Describe(created);
  EXPECT_NE(std::string::npos,
            created.out.find(std::to_string(live_events.size()) + " events"))
      << Describe(created);

  const std::string restored = Path("restored");
  CommandResult r = Restore(backup, restored);
  ASSERT_EQ(0, r.exit_code) << Describe(r);

  CommandResult a = RunConvstore({"events", "export", "--data-dir", live_});
  CommandResult b = RunConvstore({"events", "export", "--data-dir", restored});
  ASSERT_EQ(0, a.exit_code) << Describe(a);
  ASSERT_EQ(0, b.exit_code) << Describe(b);
  EXPECT_EQ(a.out, b.out);

  CommandResult verify =
      RunConvstore({"projections", "verify", "--data-dir", restored});
  EXPECT_EQ(0, verify.exit_code) << Describe(verify);

  ServerProcess copy(restored);
  EXPECT_EQ(live_events, AdminEvents(copy.port()));
  for (const std::string& conv : conversations_) {
    EXPECT_EQ(live_messages[conv], MessageIds(copy.port(), conv)) << conv;
  }
  // The keys came along: the user's key works on the copy.
  HttpClient c = copy.Client();
  EXPECT_EQ(200u, c.Get("/v1/conversations", user_key_).status);
}

TEST_F(BackupTest, RestoreWithTheLiveErasuresErasesWhatWasErasedSince) {
  const std::string secret =
      "AFTERBACKUP-QZWXRTPLMKJNVH";  // upper case: kept whole by compression
  HttpClient c = server_->Client();
  ASSERT_EQ(201u, c.Post("/v1/conversations/" + conversations_[1] + "/messages",
                         user_key_, MessageBody(secret))
                      .status);
  // Erased before the backup: already erased in it.
  ASSERT_EQ(
      204u,
      c.Delete("/v1/conversations/" + conversations_[0], user_key_).status);
  const std::string backup = Path("backup");
  ASSERT_EQ(0, BackupOnline(backup).exit_code);
  // Erased after it.
  ASSERT_EQ(
      204u,
      c.Delete("/v1/conversations/" + conversations_[1], user_key_).status);

  // A plain restore brings it back: the backup predates the erasure.
  const std::string plain = Path("plain");
  ASSERT_EQ(0, Restore(backup, plain).exit_code);
  EXPECT_FALSE(FilesContaining(plain, secret).empty());

  // With the live store's erasures (its server still running): gone again.
  const std::string restored = Path("restored");
  CommandResult r = RunConvstore({"backup", "restore", backup, "--data-dir",
                                  restored, "--erasures-from", live_});
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.out.find("re-applied 1 erasures"))
      << Describe(r);
  EXPECT_EQ(std::vector<std::string>{}, FilesContaining(restored, secret));

  ServerProcess copy(restored);
  HttpClient cc = copy.Client();
  EXPECT_EQ(404u,
            cc.Get("/v1/conversations/" + conversations_[0], kAdmin).status);
  EXPECT_EQ(404u,
            cc.Get("/v1/conversations/" + conversations_[1], kAdmin).status);
  EXPECT_EQ(200u,
            cc.Get("/v1/conversations/" + conversations_[2], kAdmin).status);
  const std::vector<json::value> events = AdminEvents(copy.port());
  ASSERT_FALSE(events.empty());
  EXPECT_EQ("ConversationErased", Str(events.back(), "type"));
  EXPECT_EQ("conversation-" + conversations_[1], Str(events.back(), "stream"));
}

TEST_F(BackupTest, OfflineBackupIntoAnExistingDirFails) {
  StopServer();
  const std::string backup = Path("backup");
  fs::create_directory(backup);
  CommandResult r = BackupOffline(backup);
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.err.find("must not exist")) << Describe(r);
  EXPECT_TRUE(fs::is_empty(backup));
}

TEST_F(BackupTest, BackupOfAMissingDataDirFailsAndWritesNothing) {
  const std::string missing = Path("missing");
  const std::string backup = Path("backup");
  CommandResult r =
      RunConvstore({"backup", "create", backup, "--data-dir", missing});
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.err.find(missing)) << Describe(r);
  EXPECT_FALSE(fs::exists(backup));
  EXPECT_FALSE(fs::exists(missing));
}

// ------------------------------------------------------------ restore

TEST_F(BackupTest, RestoreOverANonEmptyDirFailsAndLeavesItUnchanged) {
  StopServer();
  const std::string backup = Path("backup");
  ASSERT_EQ(0, BackupOffline(backup).exit_code);
  const std::string target = Path("target");
  fs::create_directories(fs::path(target) / "sub");
  std::ofstream(fs::path(target) / "keep.txt") << "precious";
  std::ofstream(fs::path(target) / "sub" / "more.txt") << "also precious";
  const auto before = Tree(target);

  CommandResult r = Restore(backup, target);
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.err.find("not empty")) << Describe(r);
  EXPECT_EQ(before, Tree(target));
  EXPECT_FALSE(fs::exists(target + ".restoring"));
}

TEST_F(BackupTest, RestoreOverTheLiveDataDirFails) {
  const std::string backup = Path("backup");
  ASSERT_EQ(0, BackupOnline(backup).exit_code);
  CommandResult r = Restore(backup, live_);
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_TRUE(server_->running());
  HttpClient c = server_->Client();
  EXPECT_EQ(200u, c.Get("/v1/conversations", user_key_).status);
}

TEST_F(BackupTest, RestoreIntoAnEmptyExistingDirWorks) {
  StopServer();
  const std::string backup = Path("backup");
  ASSERT_EQ(0, BackupOffline(backup).exit_code);
  const std::string target = Path("target");
  fs::create_directory(target);
  CommandResult r = Restore(backup, target);
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  EXPECT_TRUE(fs::exists(fs::path(target) / "CURRENT"));
}

TEST_F(BackupTest, RestoreFromSomethingThatIsNotABackupFails) {
  const std::string not_backup = Path("not-a-backup");
  fs::create_directory(not_backup);
  std::ofstream(fs::path(not_backup) / "file.txt") << "x";
  for (const std::string& from : {not_backup, Path("missing")}) {
    const std::string target = Path("target");
    CommandResult r = Restore(from, target);
    EXPECT_NE(0, r.exit_code) << from << ": " << Describe(r);
    EXPECT_NE(std::string::npos, r.err.find("not a convstore backup"))
        << Describe(r);
    EXPECT_FALSE(fs::exists(target)) << from;
  }
}

TEST_F(BackupTest, RestoreOfABackupWithBadReadModelsFailsPointingAtRebuild) {
  StopServer();
  const std::string backup = Path("backup");
  ASSERT_EQ(0, BackupOffline(backup).exit_code);
  {  // A wrong read-model row inside the backup.
    EventLogOptions options;
    options.create_if_missing = false;
    auto log = EventLog::Open(backup, options);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    auto prefix = ActiveReadModelsPrefix(**log);
    ASSERT_TRUE(prefix.ok());
    rocksdb::WriteOptions sync;
    sync.sync = true;
    ASSERT_TRUE((*log)->db()
                    ->Put(sync, (*log)->cf(*prefix + "conversations"),
                          conversations_[0], "garbage")
                    .ok());
  }
  const std::string target = Path("target");
  CommandResult r = Restore(backup, target);
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.err.find("projections rebuild")) << Describe(r);
}

}  // namespace
}  // namespace convstore::testing
