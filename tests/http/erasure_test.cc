// Erasure over real HTTP (issue 9): DELETE /v1/conversations/{id} makes the
// conversation and its messages 404 on every route and absent from every
// list; its events stay in the log as envelopes marked erased; and once the
// purge that follows has run, a string that was only in the erased
// conversation is in no file under the data dir, WAL and tables included.
// DELETE /v1/admin/users/{user_id} does the same to everything a user
// created, revokes their keys for good, reports what it erased, and finishes
// after a restart that interrupted it. With a retention policy, completed
// and archived conversations unchanged for longer are erased by themselves.

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "projections/rebuild.h"
#include "tests/support/api_assertions.h"
#include "tests/support/faulty_fs.h"
#include "tests/support/process.h"
#include "tests/support/test_server.h"

namespace convstore::testing {
namespace {

namespace json = boost::json;

http::AppConfig FastPurge() {
  http::AppConfig config;
  config.erasure_purge_interval = std::chrono::milliseconds(50);
  return config;
}

// The strings searched for are upper-case letters that occur nowhere else
// in the store (ids are lower-case hex, JSON keys lower-case), so RocksDB's
// block compression, which replaces repeats with back-references, leaves
// each stored copy findable.

// Waits (at most 30 s) until the server has purged every erasure.
bool WaitForPurge(HttpClient& client) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (MetricValue(client, "convstore_erasure_purge_pending") == 0) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

class ErasureTest : public AliceAndBobTest {
 protected:
  ErasureTest() : ErasureTest(FastPurge()) {}
  explicit ErasureTest(http::AppConfig config)
      : AliceAndBobTest(std::move(config)) {
    agent_ = Str(CreateAgent(client_, alice_,
                             R"({"name":"Support","instructions":"Be kind."})"),
                 "id");
  }

  // A conversation of alice's with `n` messages; returns its id.
  std::string ConversationWithMessages(const std::string& title, int n,
                                       const std::string& content = "hello") {
    const std::string id =
        Str(CreateConversation(client_, alice_, agent_, title), "id");
    for (int i = 0; i < n; ++i) {
      HttpResponse r =
          client_.Post("/v1/conversations/" + id + "/messages", alice_,
                       MessageBody(content + " " + std::to_string(i)));
      EXPECT_EQ(201u, r.status) << r.body;
    }
    return id;
  }

  std::vector<std::string> ListedIds(const std::string& key) {
    HttpResponse r = client_.Get("/v1/conversations?limit=100", key);
    EXPECT_EQ(200u, r.status) << r.body;
    return Ids(Parsed(r).as_array());
  }

  std::string agent_;
};

TEST_F(ErasureTest, ADeletedConversationIsNotFoundOnEveryRoute) {
  const std::string gone = ConversationWithMessages("gone", 3);
  const std::string kept = ConversationWithMessages("kept", 2);
  const std::string path = "/v1/conversations/" + gone;

  HttpResponse del = client_.Delete(path, alice_);
  ASSERT_EQ(204u, del.status) << del.body;
  EXPECT_EQ("", del.body);

  EXPECT_TRUE(IsError(client_.Get(path, alice_), 404, "not_found_error"));
  EXPECT_TRUE(IsError(client_.Get(path, kAdmin), 404, "not_found_error"));
  EXPECT_TRUE(
      IsError(client_.Get(path + "/messages", alice_), 404, "not_found_error"));
  EXPECT_TRUE(IsError(
      client_.Post(path + "/messages", alice_, MessageBody("after the delete")),
      404, "not_found_error"));
  EXPECT_TRUE(IsError(client_.Patch(path, alice_, R"({"title":"back"})"), 404,
                      "not_found_error"));
  EXPECT_TRUE(IsError(client_.Post(path + "/token", alice_, "{}"), 404,
                      "not_found_error"));
  EXPECT_TRUE(IsError(client_.Get(path + "/messages/stream", alice_), 404,
                      "not_found_error"));
  EXPECT_TRUE(IsError(client_.Delete(path, alice_), 404, "not_found_error"))
      << "a second delete finds nothing";

  EXPECT_EQ(std::vector<std::string>{kept}, ListedIds(alice_));
  EXPECT_EQ(std::vector<std::string>{kept}, ListedIds(kAdmin));
  HttpResponse kept_messages =
      client_.Get("/v1/conversations/" + kept + "/messages", alice_);
  ASSERT_EQ(200u, kept_messages.status);
  // The system message and two more.
  EXPECT_EQ(3u, Parsed(kept_messages).as_array().size());
}

TEST_F(ErasureTest, OnlyTheOwnerOrAnAdminDeletesAndIfMatchIsHonoured) {
  const std::string id = ConversationWithMessages("mine", 1);
  const std::string path = "/v1/conversations/" + id;
  EXPECT_TRUE(IsError(client_.Delete(path, bob_), 403, "permission_error"));
  const std::string etag = client_.Get(path, alice_).header("ETag");
  ASSERT_FALSE(etag.empty());
  ASSERT_EQ(200u, client_.Patch(path, alice_, R"({"title":"renamed"})").status);

  HttpResponse stale = client_.Delete(path, alice_, {{"If-Match", etag}});
  EXPECT_TRUE(IsError(stale, 412, "precondition_failed")) << stale.body;
  EXPECT_EQ(200u, client_.Get(path, alice_).status) << "still there";

  const std::string current = client_.Get(path, alice_).header("ETag");
  EXPECT_EQ(204u, client_.Delete(path, kAdmin, {{"If-Match", current}}).status);
  EXPECT_EQ(404u, client_.Get(path, alice_).status);
}

TEST_F(ErasureTest, AnErasedConversationsEventsStayAsEnvelopesWithoutPayload) {
  const std::string gone = ConversationWithMessages("gone", 2);
  const std::string kept = ConversationWithMessages("kept", 1);
  ASSERT_EQ(204u, client_.Delete("/v1/conversations/" + gone, alice_).status);

  std::vector<json::value> events = AdminEvents(server_.port());
  ASSERT_FALSE(events.empty());
  size_t erased = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    const json::object& e = events[i].as_object();
    EXPECT_EQ(i + 1, U64(e, "position")) << "gapless";
    const std::string stream(e.at("stream").as_string());
    const bool of_gone = stream.ends_with(gone);
    const std::string type(e.at("type").as_string());
    if (of_gone && type != "ConversationErased") {
      EXPECT_EQ(json::value(true),
                e.contains("erased") ? e.at("erased") : json::value())
          << stream;
      EXPECT_FALSE(e.contains("payload")) << json::serialize(e);
      ++erased;
    } else {
      EXPECT_FALSE(e.contains("erased")) << json::serialize(e);
      EXPECT_TRUE(e.contains("payload")) << json::serialize(e);
    }
  }
  // Created, its system message, two messages.
  EXPECT_EQ(4u, erased);
  const json::object& last = events.back().as_object();
  EXPECT_EQ("ConversationErased", Str(last, "type"));
  EXPECT_EQ("conversation-" + gone, Str(last, "stream"));
  EXPECT_EQ("alice", Str(last, "actor"));
  const json::object& payload = last.at("payload").as_object();
  EXPECT_EQ((std::set<std::string>{"conversation_id", "reason", "erased_at"}),
            Keys(payload))
      << "who and when are in the envelope; the erasure holds nothing else";
  EXPECT_EQ(gone, Str(payload, "conversation_id"));
  EXPECT_EQ("deleted", Str(payload, "reason"));
}

TEST_F(ErasureTest, AfterThePurgeTheErasedTextIsInNoFileOfTheDataDir) {
  const std::string secret = "ERASEME-QXZJWKVPLMRTNGHY";
  const std::string control = "KEEPME-ZRTWQPLMNXVKJHGY";
  const std::string gone =
      ConversationWithMessages("title " + secret, 5, "content " + secret);
  ConversationWithMessages("kept", 2, "content " + control);
  // A response kept for an Idempotency-Key replay holds the text too.
  ASSERT_EQ(201u, client_
                      .Post("/v1/conversations/" + gone + "/messages", alice_,
                            MessageBody("replayable " + secret),
                            {{"Idempotency-Key", "gone-1"}})
                      .status);
  ASSERT_FALSE(FilesContaining(server_.data_dir(), secret).empty())
      << "before the delete the text is stored (so the search can find it)";

  ASSERT_EQ(204u, client_.Delete("/v1/conversations/" + gone, alice_).status);
  ASSERT_TRUE(WaitForPurge(client_));
  EXPECT_EQ(std::vector<std::string>{},
            FilesContaining(server_.data_dir(), secret));
  EXPECT_FALSE(FilesContaining(server_.data_dir(), control).empty())
      << "what was not erased is still there";
  EXPECT_GE(MetricValue(client_, "convstore_erasure_purges_total"), 1u);

  // And after a restart (the log and its WAL reopened).
  const std::string dir = server_.data_dir();
  server_.Stop();
  EXPECT_EQ(std::vector<std::string>{}, FilesContaining(dir, secret));
}

// A transcript of several pages (the store keeps 16 messages a row) goes
// whole: its message ids no longer resolve as cursors, and the read models
// equal a rebuild from the log, row for row (nothing of it left behind).
TEST_F(ErasureTest, ALongTranscriptGoesWholeAndTheReadModelsEqualARebuild) {
  const std::string gone = ConversationWithMessages("gone", 40);
  const std::string kept = ConversationWithMessages("kept", 20);
  HttpResponse before =
      client_.Get("/v1/conversations/" + gone + "/messages", alice_);
  ASSERT_EQ(200u, before.status) << before.body;
  const std::vector<std::string> gone_ids = Ids(Parsed(before).as_array());
  ASSERT_EQ(41u, gone_ids.size()) << "the system message and 40 more";

  ASSERT_EQ(204u, client_.Delete("/v1/conversations/" + gone, alice_).status);
  const std::string kept_messages = "/v1/conversations/" + kept + "/messages";
  // More of `kept` after the erasure: a rebuild, which writes what it
  // built so far when it meets an erasure, then adds these to a stored page.
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(201u,
              client_.Post(kept_messages, alice_, MessageBody("later")).status);
  }
  for (const std::string& id : {gone_ids[0], gone_ids[17], gone_ids[40]}) {
    EXPECT_TRUE(IsError(client_.Get(kept_messages + "?after=" + id, alice_),
                        400, "invalid_request_error"))
        << id;
  }
  HttpResponse kept_list = client_.Get(kept_messages, alice_);
  ASSERT_EQ(200u, kept_list.status);
  EXPECT_EQ(24u, Parsed(kept_list).as_array().size());

  const std::string dir = server_.data_dir();
  server_.Stop();
  auto log = EventLog::Open(dir, EventLogOptions{});
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  TempDir scratch;
  auto report = VerifyReadModels(**log, (scratch.path() / "s").string(), 5);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->differences.empty()) << report->differences[0];
  EXPECT_GT(report->keys_compared, 21u);
}

TEST_F(ErasureTest, ARetryAfterTheDeleteIsNotAnsweredFromTheKeptResponse) {
  const std::string id = ConversationWithMessages("retried", 0);
  const std::string path = "/v1/conversations/" + id + "/messages";
  const std::vector<std::pair<std::string, std::string>> key = {
      {"Idempotency-Key", "retry-1"}};
  HttpResponse first = client_.Post(path, alice_, MessageBody("once"), key);
  ASSERT_EQ(201u, first.status) << first.body;
  HttpResponse replay = client_.Post(path, alice_, MessageBody("once"), key);
  EXPECT_EQ(201u, replay.status) << "replayed while the conversation exists";
  EXPECT_EQ(first.body, replay.body);

  ASSERT_EQ(204u, client_.Delete("/v1/conversations/" + id, alice_).status);
  HttpResponse after = client_.Post(path, alice_, MessageBody("once"), key);
  EXPECT_TRUE(IsError(after, 404, "not_found_error")) << after.body;
}

TEST_F(ErasureTest, AppendsRacingADeleteEitherLandBeforeItOrGet404) {
  const std::string id = ConversationWithMessages("busy", 0);
  const std::string path = "/v1/conversations/" + id;
  std::atomic<bool> stop{false};
  std::atomic<int> created{0}, not_found{0}, other{0};
  std::atomic<bool> deleted{false};
  std::atomic<int> created_after_delete{0};
  {
    Workers workers(stop);
    for (int w = 0; w < 4; ++w) {
      workers.Add([&, w] {
        HttpClient c = server_.Client();
        for (int i = 0; i < 200 && !stop; ++i) {
          const bool was_deleted = deleted.load();
          HttpResponse r = c.Post(path + "/messages", alice_,
                                  MessageBody("w" + std::to_string(w)));
          if (r.status == 201) {
            ++created;
            if (was_deleted) ++created_after_delete;
          } else if (r.status == 404) {
            ++not_found;
          } else {
            ++other;
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    HttpResponse del = client_.Delete(path, alice_);
    deleted = true;
    EXPECT_EQ(204u, del.status) << del.body;
  }
  EXPECT_GT(created.load(), 0) << "appends ran before the delete";
  EXPECT_GT(not_found.load(), 0) << "and after it";
  EXPECT_EQ(0, other.load());
  EXPECT_EQ(0, created_after_delete.load())
      << "no append sent after the 204 was accepted";

  // Nothing half-erased: every event of the conversation before the erasure
  // is erased, none comes after it.
  std::vector<json::value> events = AdminEvents(server_.port());
  bool erasure_seen = false;
  int messages = 0;
  for (const json::value& v : events) {
    const json::object& e = v.as_object();
    if (!std::string(e.at("stream").as_string()).ends_with(id)) continue;
    EXPECT_FALSE(erasure_seen) << "an event after the erasure";
    if (Str(e, "type") == "ConversationErased") {
      erasure_seen = true;
    } else {
      EXPECT_TRUE(e.contains("erased")) << json::serialize(e);
      messages += Str(e, "type") == "MessageAppended";
    }
  }
  EXPECT_TRUE(erasure_seen);
  EXPECT_EQ(created.load() + 1, messages) << "and the system message";
  EXPECT_EQ(
      0u, MetricValue(client_, "convstore_log_head_position") - events.size());
}

// ------------------------------------------------------------ users

// Erin's things: an agent (with instructions, so each conversation starts
// with a system message), `conversations` conversations of `messages`
// messages each (and one more with an Idempotency-Key in the first), and a
// webhook; `text` is in all of them.
struct ErinsThings {
  std::string key;
  std::string agent;
  std::vector<std::string> conversations;
  std::string webhook;
};

ErinsThings MakeErinsThings(TestServer& server, HttpClient& client,
                            const std::string& user, int conversations,
                            int messages, const std::string& text) {
  ErinsThings erin;
  erin.key = server.CreateKey(user);
  erin.agent = Str(
      CreateAgent(client, erin.key,
                  R"({"name":"Erin's","instructions":"Say )" + text + R"("})"),
      "id");
  for (int c = 0; c < conversations; ++c) {
    const std::string id = Str(
        CreateConversation(client, erin.key, erin.agent, "call " + text), "id");
    for (int m = 0; m < messages; ++m) {
      EXPECT_EQ(201u, client
                          .Post("/v1/conversations/" + id + "/messages",
                                erin.key, MessageBody("my secret is " + text))
                          .status);
    }
    erin.conversations.push_back(id);
  }
  if (!erin.conversations.empty()) {  // a response kept for its replay
    EXPECT_EQ(201u, client
                        .Post("/v1/conversations/" + erin.conversations[0] +
                                  "/messages",
                              erin.key, MessageBody("replayable " + text),
                              {{"Idempotency-Key", "erin-1"}})
                        .status);
  }
  HttpResponse hook = client.Post("/v1/webhooks", erin.key,
                                  R"({"url":"http://127.0.0.1:9/)" + text +
                                      R"(","events":["message.created"]})");
  EXPECT_EQ(201u, hook.status) << hook.body;
  erin.webhook = Str(Parsed(hook), "id");
  return erin;
}

TEST_F(ErasureTest, AUserErasureErasesEverythingTheyCreatedAndReportsIt) {
  const std::string kept = ConversationWithMessages("alice's", 1);
  ErinsThings erin = MakeErinsThings(server_, client_, "erin", 2, 3, "x");

  HttpResponse erased = client_.Delete("/v1/admin/users/erin", kAdmin);
  ASSERT_EQ(200u, erased.status) << erased.body;
  const json::object report = Parsed(erased).as_object();
  EXPECT_EQ("erin", Str(report, "user_id"));
  EXPECT_EQ("erased", Str(report, "status"));
  EXPECT_EQ("admin", Str(report, "erased_by"));
  EXPECT_EQ(
      json::value({{"agents", 1},
                   {"conversations", 2},
                   {"messages", 9},  // 2 x (system message + 3), 1 replayable
                   {"api_keys", 1},
                   {"webhooks", 1}}),
      report.at("erased"));

  EXPECT_TRUE(
      IsError(client_.Get("/v1/agents", erin.key), 401, "authentication_error"))
      << "their key is gone";
  EXPECT_TRUE(IsError(client_.Get("/v1/agents/" + erin.agent, kAdmin), 404,
                      "not_found_error"));
  for (const std::string& id : erin.conversations) {
    EXPECT_TRUE(IsError(client_.Get("/v1/conversations/" + id, kAdmin), 404,
                        "not_found_error"));
    EXPECT_TRUE(
        IsError(client_.Get("/v1/conversations/" + id + "/messages", kAdmin),
                404, "not_found_error"));
  }
  EXPECT_TRUE(IsError(client_.Get("/v1/webhooks/" + erin.webhook, kAdmin), 404,
                      "not_found_error"));
  EXPECT_EQ(std::vector<std::string>{kept}, ListedIds(kAdmin));
  HttpResponse agents = client_.Get("/v1/agents?limit=100", kAdmin);
  EXPECT_EQ(std::vector<std::string>{agent_}, Ids(Parsed(agents).as_array()));

  // Once more: nothing new, so the same report and nothing written.
  const uint64_t head = LogHead(client_);
  HttpResponse again = client_.Delete("/v1/admin/users/erin", kAdmin);
  ASSERT_EQ(200u, again.status) << again.body;
  EXPECT_EQ(json::value(report), Parsed(again));
  EXPECT_EQ(head, LogHead(client_));

  // The log: the erasures of erin's subjects, then UserErased naming erin
  // only by a ref (no personal data in it).
  std::vector<json::value> events = AdminEvents(server_.port());
  ASSERT_FALSE(events.empty());
  const json::object& last = events.back().as_object();
  EXPECT_EQ("UserErased", Str(last, "type"));
  EXPECT_EQ("admin", Str(last, "actor"));
  EXPECT_EQ(std::string::npos, json::serialize(last).find("erin"))
      << json::serialize(last);
  const json::object& payload = last.at("payload").as_object();
  EXPECT_EQ(32u, Str(payload, "user_ref").size());
  EXPECT_EQ("user-" + Str(payload, "user_ref"), Str(last, "stream"));
  EXPECT_EQ(2u, U64(payload, "conversations"));
  EXPECT_EQ(9u, U64(payload, "messages"));
  int agent_erasures = 0;
  for (const json::value& v : events) {
    if (Str(v, "type") == "AgentErased") {
      ++agent_erasures;
      EXPECT_EQ(erin.agent, Str(v.at("payload"), "agent_id"));
      EXPECT_EQ("user_erased", Str(v.at("payload"), "reason"));
    }
    if (Str(v, "stream") == "agent-" + erin.agent &&
        Str(v, "type") != "AgentErased") {
      EXPECT_TRUE(v.as_object().contains("erased")) << json::serialize(v);
      EXPECT_TRUE(v.at("actor").is_null()) << "sealed with the payload";
    }
  }
  EXPECT_EQ(1, agent_erasures);
}

TEST_F(ErasureTest, ErasingAUserIsForAdminsAndNotForThemselves) {
  EXPECT_TRUE(IsError(client_.Delete("/v1/admin/users/bob", alice_), 403,
                      "permission_error"));
  EXPECT_EQ(200u, client_.Get("/v1/agents", bob_).status) << "bob is intact";
  EXPECT_TRUE(IsError(client_.Delete("/v1/admin/users/admin", kAdmin), 400,
                      "invalid_request_error"));
  EXPECT_TRUE(IsError(client_.Delete("/v1/admin/users/not%20valid", kAdmin),
                      404, "not_found_error"));
  // A user who never created anything: erased, with nothing to erase.
  HttpResponse nobody = client_.Delete("/v1/admin/users/nobody", kAdmin);
  ASSERT_EQ(200u, nobody.status) << nobody.body;
  EXPECT_EQ(0u, U64(Parsed(nobody).at("erased").as_object(), "conversations"));
}

// A user's request let in just before their erasure took their keys can
// reach the writer after it did: it is refused then, so what they create
// while they are erased is either erased with the rest (and counted in the
// report) or never made. Each round races a user's creates from four
// clients against the DELETE, which is sent a little later in each round.
TEST_F(ErasureTest, NothingAUserCreatesWhileBeingErasedOutlivesTheErasure) {
  constexpr int kRounds = 12;
  size_t total_created = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::string user = "racer" + std::to_string(round);
    const std::string key = server_.CreateKey(user);
    std::mutex mu;
    std::vector<std::string> created;
    std::atomic<int> refused{0}, other{0};
    std::vector<std::thread> writers;
    for (int w = 0; w < 4; ++w) {
      writers.emplace_back([&] {
        HttpClient c = server_.Client();
        for (int i = 0; i < 200; ++i) {
          HttpResponse r = c.Post("/v1/agents", key, R"({"name":"racing"})");
          if (r.status == 401) {
            ++refused;
            return;
          }
          if (r.status != 201) {
            ++other;
            return;
          }
          std::lock_guard<std::mutex> lock(mu);
          created.push_back(Str(Parsed(r), "id"));
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500 * (round % 6)));
    HttpResponse erased = client_.Delete("/v1/admin/users/" + user, kAdmin);
    for (std::thread& t : writers) t.join();
    ASSERT_EQ(200u, erased.status) << erased.body;
    EXPECT_EQ(0, other.load());
    EXPECT_EQ(4, refused.load()) << "every writer ends refused";

    EXPECT_EQ(created.size(),
              U64(Parsed(erased).at("erased").as_object(), "agents"))
        << "round " << round << ": every agent made was erased by it";
    for (const std::string& id : created) {
      EXPECT_TRUE(IsError(client_.Get("/v1/agents/" + id, kAdmin), 404,
                          "not_found_error"))
          << "round " << round << ": agent " << id << " outlived the erasure";
    }
    total_created += created.size();
  }
  EXPECT_GT(total_created, 0u) << "creates ran before the erasures";
}

TEST_F(ErasureTest, AfterAUserErasureTheirTextAndIdAreInNoFileOfTheDataDir) {
  const std::string secret = "ERINSECRET-WQZXRTPLMKVJNH";
  const std::string user = "ERIN-QZXWVKTRPL";
  MakeErinsThings(server_, client_, user, 3, 2, secret);
  ConversationWithMessages("kept", 1, "KEEPME-ZRTWQPLMNXVKJHGY");
  ASSERT_FALSE(FilesContaining(server_.data_dir(), secret).empty());
  ASSERT_FALSE(FilesContaining(server_.data_dir(), user).empty());

  ASSERT_EQ(200u, client_.Delete("/v1/admin/users/" + user, kAdmin).status);
  ASSERT_TRUE(WaitForPurge(client_));
  EXPECT_EQ(std::vector<std::string>{},
            FilesContaining(server_.data_dir(), secret));
  EXPECT_FALSE(
      FilesContaining(server_.data_dir(), "KEEPME-ZRTWQPLMNXVKJHGY").empty());

  // Their user id too, once the store was opened again: keys of tables
  // beside the log name owners, and RocksDB's MANIFEST keeps the key range
  // of each table file it ever had until it is rewritten at open.
  const std::string dir = server_.data_dir();
  server_.Stop();
  TestServer(dir).Stop();
  EXPECT_EQ(std::vector<std::string>{}, FilesContaining(dir, user))
      << "not even their user id";
  EXPECT_EQ(std::vector<std::string>{}, FilesContaining(dir, secret));
}

// A store from before API keys were indexed by owner (what a user's erasure
// reads instead of every key): the server indexes them at its next start.
TEST(UserErasureUpgradeTest, KeysMadeBeforeTheOwnerIndexGoWithTheirUser) {
  TestServer server;
  const std::string erin = server.CreateKey("erin");
  server.Stop();
  {  // Back to that layout: no owner entries, no marker that they are made.
    EventLogOptions options;
    options.create_if_missing = false;
    auto log = EventLog::Open(server.data_dir(), options);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    rocksdb::ColumnFamilyHandle* owners = (*log)->cf("api_key_owners");
    ASSERT_NE(nullptr, owners);
    std::unique_ptr<rocksdb::Iterator> it(
        (*log)->db()->NewIterator(rocksdb::ReadOptions(), owners));
    size_t removed = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next(), ++removed) {
      ASSERT_TRUE((*log)
                      ->db()
                      ->Delete(rocksdb::WriteOptions(), owners, it->key())
                      .ok());
    }
    EXPECT_EQ(3u, removed) << "the admin's key, erin's and the marker";
  }
  TestServer upgraded(server.data_dir());
  HttpClient c = upgraded.Client();
  HttpResponse erased = c.Delete("/v1/admin/users/erin", TestServer::kAdminKey);
  ASSERT_EQ(200u, erased.status) << erased.body;
  EXPECT_EQ(1u, U64(Parsed(erased).at("erased").as_object(), "api_keys"));
  EXPECT_TRUE(IsError(c.Get("/v1/agents", erin), 401, "authentication_error"));
  EXPECT_EQ(200u, c.Get("/v1/agents", TestServer::kAdminKey).status);
}

// Responses kept for Idempotency-Key replays, for 3 s here (24 h by default).
class IdempotencyExpiryTest : public ErasureTest {
 protected:
  IdempotencyExpiryTest() : ErasureTest(Config()) {}
  static http::AppConfig Config() {
    http::AppConfig config = FastPurge();
    config.idempotency_retention = std::chrono::seconds(3);
    return config;
  }
};

// An expired response goes from the files with the next compaction of its
// table (RocksDB runs one within a day; here the purge after a delete runs
// it): its Idempotency-Key, which a client may make from anything, is in
// no file after. A response still within its time stays and replays.
TEST_F(IdempotencyExpiryTest,
       AnExpiredResponseIsInNoFileAfterTheNextCompaction) {
  const std::string expired = "IDEMKEY-QZWXRTPLMKVJ";
  const std::string fresh = "IDEMKEY-JVKMLPTRXWZQ";
  // Rejected requests: nothing but the kept response holds their keys.
  HttpResponse first =
      client_.Post("/v1/agents", alice_, "{}", {{"Idempotency-Key", expired}});
  ASSERT_TRUE(IsError(first, 400, "invalid_request_error"));
  std::this_thread::sleep_for(std::chrono::milliseconds(3200));
  ASSERT_TRUE(IsError(
      client_.Post("/v1/agents", alice_, "{}", {{"Idempotency-Key", fresh}}),
      400, "invalid_request_error"));
  ASSERT_FALSE(FilesContaining(server_.data_dir(), expired).empty());

  const std::string id = ConversationWithMessages("to erase", 0);
  ASSERT_EQ(204u, client_.Delete("/v1/conversations/" + id, alice_).status);
  ASSERT_TRUE(WaitForPurge(client_));
  HttpResponse replay =
      client_.Post("/v1/agents", alice_, "{}", {{"Idempotency-Key", fresh}});
  EXPECT_EQ("true", replay.header("Idempotent-Replayed")) << "still kept";

  // As for a user's id: RocksDB's MANIFEST names table files' first and last
  // keys until it is rewritten at the next open.
  const std::string dir = server_.data_dir();
  server_.Stop();
  TestServer(dir).Stop();
  EXPECT_EQ(std::vector<std::string>{}, FilesContaining(dir, expired));
  EXPECT_FALSE(FilesContaining(dir, fresh).empty());
}

// Fails the log's syncs part-way through a user's erasure, restarts the
// server over the same data dir (a healthy disk now), and checks that the
// erasure finishes by itself, with one report for all of it.
TEST(UserErasureRestartTest, ARestartInTheMiddleOfAUserErasureFinishesIt) {
  TempDir dir;
  const std::string data_dir = (dir.path() / "data").string();
  auto fs = std::make_shared<FaultyFileSystem>();
  http::AppConfig config;
  config.erasure_purge_interval = std::chrono::hours(1);  // no extra syncs
  auto server =
      std::make_unique<TestServer>(data_dir, http::LiveKitConfig{}, EnvOver(fs),
                                   http::ServerOptions{}, config);
  HttpClient client = server->Client();
  // 70 conversations: three steps of 32 subjects, plus the agent.
  ErinsThings erin = MakeErinsThings(*server, client, "erin", 70, 0, "y");
  const std::string alice = server->CreateKey("alice");
  const std::string agent =
      Str(CreateAgent(client, alice, R"({"name":"a"})"), "id");
  const std::string kept = Str(CreateConversation(client, alice, agent), "id");

  fs->FailWalSyncsAfter(2);  // the start and one step of subjects
  HttpResponse failed = client.Delete("/v1/admin/users/erin", kAdmin);
  EXPECT_EQ(503u, failed.status) << failed.body;
  server->Stop();
  server.reset();

  server = std::make_unique<TestServer>(data_dir);
  HttpClient after = server->Client();
  EXPECT_TRUE(
      IsError(after.Get("/v1/agents", erin.key), 401, "authentication_error"));
  // Finished in the background, without being asked again.
  std::optional<json::object> user_erased;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!user_erased && std::chrono::steady_clock::now() < deadline) {
    for (const json::value& v : AdminEvents(server->port())) {
      if (Str(v, "type") == "UserErased")
        user_erased = v.at("payload").as_object();
    }
    if (!user_erased)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(user_erased) << "the erasure was not resumed";
  EXPECT_EQ(70u, U64(*user_erased, "conversations"));
  EXPECT_EQ(71u, U64(*user_erased, "messages"))
      << "their system messages and a replayable one";
  EXPECT_EQ(1u, U64(*user_erased, "agents"));
  EXPECT_EQ(1u, U64(*user_erased, "api_keys"));
  EXPECT_EQ(1u, U64(*user_erased, "webhooks"));

  HttpResponse listed = after.Get("/v1/conversations?limit=100", kAdmin);
  EXPECT_EQ(std::vector<std::string>{kept}, Ids(Parsed(listed).as_array()));
  for (const std::string& id : erin.conversations) {
    EXPECT_EQ(404u, after.Get("/v1/conversations/" + id, kAdmin).status);
  }
  HttpResponse report = after.Delete("/v1/admin/users/erin", kAdmin);
  ASSERT_EQ(200u, report.status);
  EXPECT_EQ(70u, U64(Parsed(report).at("erased").as_object(), "conversations"))
      << "one report for the whole erasure";
}

// ------------------------------------------------------------ retention

int64_t WallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr int64_t kDayMs = 24LL * 3600 * 1000;

// A 30-day policy, swept every 20 ms, on a clock the test sets (0: the
// sweeper sees 1970, so nothing is old enough). Erasures someone asked for
// are purged within 50 ms, retention's with them or after `purge_batch`.
struct RetentionClock {
  std::shared_ptr<std::atomic<int64_t>> now =
      std::make_shared<std::atomic<int64_t>>(0);
  http::AppConfig Config(std::chrono::milliseconds purge_batch) const {
    http::AppConfig config = FastPurge();
    config.erasure_purge_batch_interval = purge_batch;
    config.retention_days = 30;
    config.retention_interval = std::chrono::milliseconds(20);
    config.retention_clock = [now = now] { return now->load(); };
    return config;
  }
};

class RetentionTest : private RetentionClock, public ErasureTest {
 protected:
  // Retention's erasures are purged in batches, every `purge_batch` at most.
  explicit RetentionTest(
      std::chrono::milliseconds purge_batch = std::chrono::milliseconds(200))
      : ErasureTest(RetentionClock::Config(purge_batch)) {}
  void SetClock(int64_t ms) { now->store(ms); }
  void SetStatus(const std::string& id, const std::string& status) {
    HttpResponse r = client_.Patch("/v1/conversations/" + id, alice_,
                                   R"({"status":")" + status + R"("})");
    ASSERT_EQ(200u, r.status) << r.body;
  }
  // Waits (at most 30 s) until retention has erased `n` conversations.
  bool WaitForRetention(uint64_t n) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      if (MetricValue(client_, "convstore_retention_erased_total") >= n) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
};

TEST_F(RetentionTest, EndedConversationsOlderThanThePolicyAreErased) {
  const std::string secret = "EXPIRED-ZQWXRTYPLKJMNVGH";
  const std::string completed =
      ConversationWithMessages("old completed", 2, secret);
  SetStatus(completed, "completed");
  const std::string archived = ConversationWithMessages("old archived", 1);
  SetStatus(archived, "archived");
  const std::string active = ConversationWithMessages("old but active", 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const int64_t cut = WallMillis();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const std::string recent = ConversationWithMessages("ended later", 1);
  SetStatus(recent, "completed");

  // 30 days after `cut`: only what ended (last changed) before it expired.
  SetClock(cut + 30 * kDayMs);
  ASSERT_TRUE(WaitForRetention(2));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(2u, MetricValue(client_, "convstore_retention_erased_total"));
  for (const std::string& id : {completed, archived}) {
    EXPECT_TRUE(IsError(client_.Get("/v1/conversations/" + id, alice_), 404,
                        "not_found_error"));
  }
  for (const std::string& id : {active, recent}) {
    EXPECT_EQ(200u, client_.Get("/v1/conversations/" + id, alice_).status);
  }
  int retention_erasures = 0;
  for (const json::value& v : AdminEvents(server_.port())) {
    if (Str(v, "type") != "ConversationErased") continue;
    ++retention_erasures;
    EXPECT_EQ("convstore:retention", Str(v, "actor"));
    EXPECT_EQ("retention", Str(v.at("payload"), "reason"));
  }
  EXPECT_EQ(2, retention_erasures);

  ASSERT_TRUE(WaitForPurge(client_));
  EXPECT_EQ(std::vector<std::string>{},
            FilesContaining(server_.data_dir(), secret));
}

TEST_F(RetentionTest, AChangeAfterTheEndRestartsTheClock) {
  const std::string id = ConversationWithMessages("renamed", 1);
  SetStatus(id, "completed");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const int64_t cut = WallMillis();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  HttpResponse renamed = client_.Patch("/v1/conversations/" + id, alice_,
                                       R"({"title":"still wanted"})");
  ASSERT_EQ(200u, renamed.status) << renamed.body;

  SetClock(cut + 30 * kDayMs);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(200u, client_.Get("/v1/conversations/" + id, alice_).status)
      << "its last change is younger than 30 days";
  SetClock(WallMillis() + 31 * kDayMs);
  ASSERT_TRUE(WaitForRetention(1));
  EXPECT_EQ(404u, client_.Get("/v1/conversations/" + id, alice_).status);
}

class RetentionPurgeBatchTest : public RetentionTest {
 protected:
  RetentionPurgeBatchTest() : RetentionTest(std::chrono::hours(1)) {}
};

// A purge costs foreground writes the same for one erasure or thousands, and
// nobody waits for retention's: they go with the next purge someone needs.
TEST_F(RetentionPurgeBatchTest, RetentionErasuresWaitForTheNextRequestedPurge) {
  const std::string secret = "EXPIRED-BATCHPURGEQWXRTY";
  const std::string old = ConversationWithMessages("old", 1, secret);
  SetStatus(old, "completed");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const int64_t cut = WallMillis();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const std::string deleted = ConversationWithMessages("deleted", 1);

  SetClock(cut + 30 * kDayMs);
  ASSERT_TRUE(WaitForRetention(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // 6 checks
  EXPECT_EQ(1u, MetricValue(client_, "convstore_erasure_purge_pending"))
      << "retention's erasure waits for the batch (an hour here)";
  EXPECT_EQ(0u, MetricValue(client_, "convstore_erasure_purges_total"));

  ASSERT_EQ(204u,
            client_.Delete("/v1/conversations/" + deleted, alice_).status);
  ASSERT_TRUE(WaitForPurge(client_)) << "a DELETE is purged at once";
  EXPECT_EQ(std::vector<std::string>{},
            FilesContaining(server_.data_dir(), secret))
      << "and retention's erasure with it";
}

// Retention's erasures still waiting for their batch when the server stops
// are purged as soon as it starts again, not a whole batch later.
TEST_F(RetentionPurgeBatchTest, ARestartPurgesTheWaitingErasuresAtOnce) {
  const std::string secret = "EXPIRED-RESTARTPURGEZXKV";
  const std::string old = ConversationWithMessages("old", 1, secret);
  SetStatus(old, "completed");
  SetClock(WallMillis() + 31 * kDayMs);
  ASSERT_TRUE(WaitForRetention(1));
  ASSERT_EQ(1u, MetricValue(client_, "convstore_erasure_purge_pending"));
  const std::string dir = server_.data_dir();
  server_.Stop();

  http::AppConfig config = FastPurge();
  config.erasure_purge_batch_interval = std::chrono::hours(1);
  TestServer restarted(dir, http::LiveKitConfig{}, nullptr,
                       http::ServerOptions{}, config);
  HttpClient client = restarted.Client();
  ASSERT_TRUE(WaitForPurge(client));
  EXPECT_EQ(std::vector<std::string>{}, FilesContaining(dir, secret));
}

}  // namespace
}  // namespace convstore::testing
