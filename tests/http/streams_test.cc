// Event streams (server-sent events) over a real socket: GET
// /v1/admin/events/stream sends every event envelope from a position on,
// then follows the log live, each event exactly once and in position order,
// resumable with Last-Event-ID across a restart.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/api_assertions.h"
#include "tests/support/sse_client.h"
#include "tests/support/test_server.h"

namespace convstore::testing {
namespace {

namespace json = boost::json;

constexpr int kWaitMs = 30000;

http::ServerOptions FastHeartbeat() {
  http::ServerOptions options;
  options.heartbeat_interval = std::chrono::milliseconds(200);
  return options;
}

class EventStreamTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start(size_t queue_limit = 4096) {
    http::AppConfig config;
    config.stream_queue_limit = queue_limit;
    server_ = std::make_unique<TestServer>(dir_.str() + "/data",
                                           http::LiveKitConfig{}, nullptr,
                                           FastHeartbeat(), config);
    HttpClient c = server_->Client();
    agent_ = Str(
        CreateAgent(c, kAdmin, R"({"name":"Bot","instructions":"Hi."})"), "id");
  }

  std::string NewConversation() {
    HttpClient c = server_->Client();
    return Str(CreateConversation(c, kAdmin, agent_), "id");
  }
  std::string Append(HttpClient& c, const std::string& conv,
                     const std::string& content) {
    HttpResponse r = c.Post("/v1/conversations/" + conv + "/messages", kAdmin,
                            MessageBody(content));
    EXPECT_EQ(201u, r.status) << r.body;
    return r.status == 201 ? Str(r.json(), "id") : "";
  }
  std::vector<json::value> AllEvents() { return AdminEvents(server_->port()); }
  uint64_t Head() {
    HttpClient c = server_->Client();
    return LogHead(c);
  }

  TempDir dir_;
  std::unique_ptr<TestServer> server_;
  std::string agent_;
};

// Positions of `events` are from, from + 1, ... in order.
void ExpectConsecutiveFrom(uint64_t from, const std::vector<SseEvent>& events) {
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(std::to_string(from + i), events[i].id) << "event " << i;
  }
}

TEST_F(EventStreamTest, NeedsAnAdminKey) {
  std::string user = server_->CreateKey("user-1");
  HttpClient c = server_->Client();
  EXPECT_TRUE(
      IsError(c.Get("/v1/admin/events/stream", user), 403, "permission_error"));
  EXPECT_TRUE(IsUnauthenticated(c.Get("/v1/admin/events/stream", "")));
}

TEST_F(EventStreamTest, ABadStartIsRejected) {
  HttpClient c = server_->Client();
  EXPECT_TRUE(IsError(c.Get("/v1/admin/events/stream?from=0", kAdmin), 400,
                      "invalid_request_error", "from"));
  EXPECT_TRUE(IsError(c.Get("/v1/admin/events/stream?from=x", kAdmin), 400,
                      "invalid_request_error", "from"));
  HttpResponse r =
      c.Request("GET", "/v1/admin/events/stream", "",
                {{"Authorization", std::string("Bearer ") + kAdmin},
                 {"Last-Event-ID", "seven"}});
  EXPECT_TRUE(IsError(r, 400, "invalid_request_error", "Last-Event-ID"));
  // The largest position has nothing after it; one digit more overflows.
  for (const char* last :
       {"18446744073709551615", "184467440737095516150", "-1", ""}) {
    HttpResponse bad =
        c.Request("GET", "/v1/admin/events/stream", "",
                  {{"Authorization", std::string("Bearer ") + kAdmin},
                   {"Last-Event-ID", last}});
    EXPECT_TRUE(IsError(bad, 400, "invalid_request_error", "Last-Event-ID"))
        << last;
  }
}

TEST_F(EventStreamTest, SendsTheLogFromAPositionThenFollowsItLive) {
  std::string conv = NewConversation();
  std::vector<json::value> before = AllEvents();
  SseClient stream(server_->port(), "/v1/admin/events/stream?from=2", kAdmin);
  ASSERT_EQ(200u, stream.status());
  EXPECT_EQ("text/event-stream", stream.header("Content-Type"));
  EXPECT_EQ("no-cache", stream.header("Cache-Control"));
  const auto& caught_up = stream.WaitFor(before.size() - 1, kWaitMs);
  ASSERT_EQ(before.size() - 1, caught_up.size());
  ExpectConsecutiveFrom(2, caught_up);
  for (size_t i = 0; i < caught_up.size(); ++i) {
    EXPECT_EQ("", caught_up[i].event);
    EXPECT_EQ(before[i + 1], json::parse(caught_up[i].data)) << i;
  }

  HttpClient c = server_->Client();
  std::string id = Append(c, conv, "live");
  const auto& all = stream.WaitFor(before.size(), kWaitMs);
  ASSERT_EQ(before.size(), all.size());
  json::value live = json::parse(all.back().data);
  EXPECT_EQ(std::to_string(before.size() + 1), all.back().id);
  EXPECT_EQ("MessageAppended", Str(live, "type"));
  EXPECT_EQ(id, Str(live.at("payload"), "id"));
  EXPECT_EQ(AllEvents().back(), live);
}

uint64_t Metric(TestServer& server, const std::string& name) {
  HttpClient c = server.Client();
  return MetricValue(c, name);
}
uint64_t FellBehind(TestServer& server) {
  return Metric(server, "convstore_stream_fell_behind_total");
}

// 32 writers at once; the stream (and one whose queue holds only 8 events,
// so it keeps falling behind and reading the log instead) sees every event
// exactly once, in position order.
void ConcurrentWritersTest(TestServer& server, const std::string& agent) {
  constexpr int kWriters = 32;
  constexpr int kPerWriter = 10;
  std::vector<std::string> convs;
  {
    HttpClient c = server.Client();
    for (int w = 0; w < kWriters; ++w) {
      convs.push_back(Str(CreateConversation(c, kAdmin, agent), "id"));
    }
  }
  HttpClient c = server.Client();
  const uint64_t head = LogHead(c);
  SseClient stream(server.port(),
                   "/v1/admin/events/stream?from=" + std::to_string(head + 1),
                   kAdmin);
  ASSERT_EQ(200u, stream.status());

  std::mutex mu;
  std::set<std::string> acked;
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      HttpClient wc = server.Client();
      for (int i = 0; i < kPerWriter; ++i) {
        HttpResponse r = wc.Post(
            "/v1/conversations/" + convs[w] + "/messages", kAdmin,
            MessageBody("w" + std::to_string(w) + "-" + std::to_string(i)));
        if (r.status == 201) {
          std::lock_guard<std::mutex> lock(mu);
          acked.insert(Str(r.json(), "id"));
        }
      }
    });
  }
  for (auto& w : writers) w.join();
  ASSERT_EQ(static_cast<size_t>(kWriters * kPerWriter), acked.size());

  const auto& events = stream.WaitFor(acked.size(), kWaitMs);
  ASSERT_EQ(acked.size(), events.size());
  ExpectConsecutiveFrom(head + 1, events);
  std::set<std::string> seen;
  for (const SseEvent& e : events) {
    seen.insert(Str(json::parse(e.data).at("payload"), "id"));
  }
  EXPECT_EQ(acked, seen);
  // Nothing more arrives: no event was sent twice.
  EXPECT_EQ(acked.size(), stream.WaitFor(acked.size() + 1, 500).size());
}

TEST_F(EventStreamTest, SeesEveryEventOf32ConcurrentWritersOnceAndInOrder) {
  ConcurrentWritersTest(*server_, agent_);
  EXPECT_EQ(0u, FellBehind(*server_));
}

TEST_F(EventStreamTest, ASubscriberThatFallsBehindReadsTheLogAndMissesNothing) {
  server_.reset();
  Start(/*queue_limit=*/8);
  ConcurrentWritersTest(*server_, agent_);
  EXPECT_GT(FellBehind(*server_), 0u) << "the queue never overflowed";
}

TEST_F(EventStreamTest, ResumesRightAfterLastEventIdAcrossARestart) {
  std::string conv = NewConversation();
  uint64_t head = Head();
  std::string last_seen;
  {
    SseClient stream(server_->port(), "/v1/admin/events/stream", kAdmin);
    const auto& events = stream.WaitFor(2, kWaitMs);
    ASSERT_GE(events.size(), 2u);
    last_seen = events[1].id;
    // A graceful stop ends the stream.
    server_->Stop();
    EXPECT_TRUE(stream.WaitForEnd(kWaitMs));
  }
  server_.reset();
  Start();
  HttpClient c = server_->Client();
  std::string id = Append(c, conv, "after the restart");
  std::vector<json::value> all = AllEvents();
  ASSERT_GT(all.size(), head);

  SseClient resumed(server_->port(), "/v1/admin/events/stream", kAdmin,
                    {{"Last-Event-ID", last_seen}});
  ASSERT_EQ(200u, resumed.status());
  const size_t expected = all.size() - std::stoull(last_seen);
  const auto& events = resumed.WaitFor(expected, kWaitMs);
  ASSERT_EQ(expected, events.size());
  ExpectConsecutiveFrom(std::stoull(last_seen) + 1, events);
  EXPECT_EQ(id, Str(json::parse(events.back().data).at("payload"), "id"));
}

// With the default 15 s heartbeat, a client that closes its connection is
// still noticed at once, and its subscription let go.
TEST(EventStreamCloseTest, AClientThatLeavesIsForgottenAtOnce) {
  TestServer server;
  {
    SseClient stream(server.port(), "/v1/admin/events/stream", kAdmin);
    ASSERT_EQ(200u, stream.status());
    EXPECT_EQ(1u, Metric(server, "convstore_stream_subscribers"));
  }
  bool forgotten = false;
  for (int i = 0; i < 100 && !forgotten; ++i) {  // at most 2 s
    forgotten = Metric(server, "convstore_stream_subscribers") == 0;
    if (!forgotten) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(forgotten);
}

TEST_F(EventStreamTest, HeadGivesTheHeadersWithoutAStream) {
  HttpClient c = server_->Client();
  HttpResponse r =
      c.Request("HEAD", "/v1/admin/events/stream", "",
                {{"Authorization", std::string("Bearer ") + kAdmin}});
  EXPECT_EQ(200u, r.status);
  EXPECT_EQ("text/event-stream", r.header("Content-Type"));
  EXPECT_EQ("", r.body);
}

TEST_F(EventStreamTest, AnIdleStreamSendsHeartbeatComments) {
  SseClient stream(server_->port(),
                   "/v1/admin/events/stream?from=" + std::to_string(Head() + 1),
                   kAdmin);
  ASSERT_EQ(200u, stream.status());
  stream.WaitFor(1, 1000);  // 200 ms heartbeats: several in a second
  EXPECT_TRUE(stream.events().empty());
  EXPECT_GE(stream.comments(), 2u);
}

// ------------------------------------------------ a conversation's messages

// GET /v1/conversations/{id}/messages/stream, by alice, over a server that
// also holds bob's conversations.
class MessageStreamTest : public EventStreamTest {
 protected:
  void SetUp() override {
    EventStreamTest::SetUp();
    alice_ = server_->CreateKey("alice");
    bob_ = server_->CreateKey("bob");
    HttpClient c = server_->Client();
    std::string agent =
        Str(CreateAgent(c, alice_, R"({"name":"A","instructions":"Be kind."})"),
            "id");
    conv_ = Str(CreateConversation(c, alice_, agent), "id");
    std::string bob_agent = Str(CreateAgent(c, bob_, R"({"name":"B"})"), "id");
    bob_conv_ = Str(CreateConversation(c, bob_, bob_agent), "id");
  }
  std::string Target() const {
    return "/v1/conversations/" + conv_ + "/messages/stream";
  }
  std::string AppendAs(const std::string& key, const std::string& conv,
                       const std::string& content) {
    HttpClient c = server_->Client();
    HttpResponse r = c.Post("/v1/conversations/" + conv + "/messages", key,
                            MessageBody(content));
    EXPECT_EQ(201u, r.status) << r.body;
    return r.status == 201 ? Str(r.json(), "id") : "";
  }
  // GET messages' body.
  std::string Transcript() {
    HttpClient c = server_->Client();
    HttpResponse r = c.Get("/v1/conversations/" + conv_ + "/messages", alice_);
    EXPECT_EQ(200u, r.status) << r.body;
    return r.body;
  }
  HttpResponse Complete() {
    HttpClient c = server_->Client();
    return c.Patch("/v1/conversations/" + conv_, alice_,
                   R"({"status":"completed"})");
  }

  std::string alice_, bob_, conv_, bob_conv_;
};

// The data of `events` as one JSON array, as GET messages would serve them.
std::string AsArray(const std::vector<SseEvent>& events) {
  std::string out = "[";
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ("message", events[i].event) << i;
    out += (i ? "," : "") + events[i].data;
  }
  return out + "]";
}

// Ids are log positions, strictly increasing.
void ExpectIncreasingIds(const std::vector<SseEvent>& events) {
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_LT(std::stoull(events[i - 1].id), std::stoull(events[i].id)) << i;
  }
}

TEST_F(MessageStreamTest, SendsTheTranscriptThenEachNewMessageAsCommitted) {
  AppendAs(alice_, conv_, "one");
  AppendAs(alice_, conv_, "two");
  AppendAs(bob_, bob_conv_, "not alice's");
  SseClient stream(server_->port(), Target(), alice_);
  ASSERT_EQ(200u, stream.status());
  EXPECT_EQ("text/event-stream", stream.header("Content-Type"));
  const auto& first = stream.WaitFor(3, kWaitMs);
  ASSERT_EQ(3u, first.size());  // the system message and both turns
  EXPECT_EQ(Transcript(), AsArray(first));

  std::string id = AppendAs(alice_, conv_, "three");
  AppendAs(bob_, bob_conv_, "still not alice's");
  const auto& all = stream.WaitFor(4, kWaitMs);
  ASSERT_EQ(4u, all.size());
  EXPECT_EQ(id, Str(json::parse(all.back().data), "id"));
  EXPECT_EQ(Transcript(), AsArray(all));
  ExpectIncreasingIds(all);
  EXPECT_EQ(4u, stream.WaitFor(5, 300).size());  // bob's never arrive
}

TEST_F(MessageStreamTest, SeesEveryMessageOf32ConcurrentWritersOnceInOrder) {
  SseClient stream(server_->port(), Target(), alice_);
  ASSERT_EQ(1u, stream.WaitFor(1, kWaitMs).size());  // the system message
  constexpr int kWriters = 32;
  constexpr int kPerWriter = 5;
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      HttpClient c = server_->Client();
      for (int i = 0; i < kPerWriter; ++i) {
        c.Post("/v1/conversations/" + conv_ + "/messages", alice_,
               MessageBody(std::to_string(w) + "-" + std::to_string(i)));
      }
    });
  }
  for (auto& w : writers) w.join();
  const size_t expected = 1 + kWriters * kPerWriter;
  const auto& events = stream.WaitFor(expected, kWaitMs);
  ASSERT_EQ(expected, events.size());
  EXPECT_EQ(Transcript(), AsArray(events));  // all, once, in log order
  ExpectIncreasingIds(events);
  EXPECT_EQ(expected, stream.WaitFor(expected + 1, 300).size());
}

TEST_F(MessageStreamTest, CompletionSendsAStatusEventAndEndsTheStream) {
  SseClient stream(server_->port(), Target(), alice_);
  ASSERT_EQ(1u, stream.WaitFor(1, kWaitMs).size());
  ASSERT_EQ(200u, Complete().status);
  const auto& events = stream.WaitFor(2, kWaitMs);
  ASSERT_EQ(2u, events.size());
  EXPECT_EQ("status", events[1].event);
  json::value status = json::parse(events[1].data);
  EXPECT_EQ(conv_, Str(status, "conversation_id"));
  EXPECT_EQ("active", Str(status, "from"));
  EXPECT_EQ("completed", Str(status, "to"));
  EXPECT_TRUE(stream.WaitForEnd(kWaitMs));

  // Opened afterwards: the transcript, the status, the end.
  SseClient later(server_->port(), Target(), alice_);
  EXPECT_TRUE(later.WaitForEnd(kWaitMs));
  ASSERT_EQ(2u, later.events().size());
  EXPECT_EQ(events[1].id, later.events()[1].id);
  EXPECT_EQ(events[1].data, later.events()[1].data);
  // Resumed after the status: nothing more, and the end.
  SseClient resumed(server_->port(), Target(), alice_,
                    {{"Last-Event-ID", events[1].id}});
  EXPECT_TRUE(resumed.WaitForEnd(kWaitMs));
  EXPECT_TRUE(resumed.events().empty());
}

TEST_F(MessageStreamTest, ResumesRightAfterLastEventIdAcrossARestart) {
  AppendAs(alice_, conv_, "one");
  AppendAs(alice_, conv_, "two");
  std::string last_seen;
  {
    SseClient stream(server_->port(), Target(), alice_);
    const auto& events = stream.WaitFor(2, kWaitMs);
    ASSERT_GE(events.size(), 2u);
    last_seen = events[1].id;  // "one"
  }
  server_.reset();
  Start();
  std::string three = AppendAs(alice_, conv_, "three");
  ASSERT_EQ(200u, Complete().status);
  SseClient resumed(server_->port(), Target(), alice_,
                    {{"Last-Event-ID", last_seen}});
  ASSERT_TRUE(resumed.WaitForEnd(kWaitMs));
  const auto& events = resumed.events();
  ASSERT_EQ(3u, events.size());  // "two", "three", the status
  EXPECT_EQ("two", Str(json::parse(events[0].data), "content"));
  EXPECT_EQ(three, Str(json::parse(events[1].data), "id"));
  EXPECT_EQ("status", events[2].event);
  ExpectIncreasingIds(events);
  EXPECT_LT(std::stoull(last_seen), std::stoull(events[0].id));
}

TEST_F(MessageStreamTest, TakesNoFromParameterOnlyLastEventId) {
  // `from` belongs to the admin event stream; here it changes nothing.
  SseClient stream(server_->port(), Target() + "?from=999999", alice_);
  ASSERT_EQ(200u, stream.status());
  EXPECT_EQ(1u, stream.WaitFor(1, kWaitMs).size());  // the system message
  HttpClient c = server_->Client();
  EXPECT_TRUE(IsError(c.Request("GET", Target(), "",
                                {{"Authorization", "Bearer " + alice_},
                                 {"Last-Event-ID", "x"}}),
                      400, "invalid_request_error", "Last-Event-ID"));
}

TEST_F(MessageStreamTest, HasTheSameAccessRulesAsGetMessages) {
  HttpClient c = server_->Client();
  const std::string messages = "/v1/conversations/" + bob_conv_ + "/messages";
  HttpResponse get = c.Get(messages, alice_);
  HttpResponse stream = c.Get(messages + "/stream", alice_);
  EXPECT_EQ(get.status, stream.status) << stream.body;
  EXPECT_EQ(get.body, stream.body);
  EXPECT_TRUE(IsUnauthenticated(c.Get(messages + "/stream", "")));
  EXPECT_TRUE(
      IsError(c.Get("/v1/conversations/conv-nope/messages/stream", alice_), 404,
              "not_found_error"));
  // An admin may follow anyone's.
  SseClient admin(server_->port(), messages + "/stream", kAdmin);
  EXPECT_EQ(200u, admin.status());
}

}  // namespace
}  // namespace convstore::testing
