// Erasure over real HTTP (issue 9): DELETE /v1/conversations/{id} makes the
// conversation and its messages 404 on every route and absent from every
// list; its events stay in the log as envelopes marked erased; and once the
// purge that follows has run, a string that was only in the erased
// conversation is in no file under the data dir, WAL and tables included.

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/api_assertions.h"
#include "tests/support/test_server.h"

namespace convstore::testing {
namespace {

namespace json = boost::json;

http::AppConfig FastPurge() {
  http::AppConfig config;
  config.erasure_purge_interval = std::chrono::milliseconds(50);
  return config;
}

// Files under `dir` (recursively) whose bytes contain `needle`.
std::vector<std::string> FilesContaining(const std::string& dir,
                                         const std::string& needle) {
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)),
                            std::istreambuf_iterator<char>());
    if (bytes.find(needle) != std::string::npos) {
      found.push_back(entry.path().filename().string());
    }
  }
  return found;
}

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
  ErasureTest() : AliceAndBobTest(FastPurge()) {
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
  const std::string secret = "erase-me-7f3a9c2e51d84b06";
  const std::string control = "keep-me-0b1c2d3e4f5a6978";
  const std::string gone =
      ConversationWithMessages("title " + secret, 5, "content " + secret);
  ConversationWithMessages("kept", 2, "content " + control);
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

}  // namespace
}  // namespace convstore::testing
