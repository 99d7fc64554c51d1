// Spec for schema compatibility: tests/data/golden_log_v1 is a log written by
// schema version 1 (tests/eventlog/make_golden_log.cc). Every build must read
// it back to exactly these values, forever: the expected values below are
// hard-coded on purpose and must not be "updated" to make a new build pass.
// The committed copy is never opened in place; each test works on a copy.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "core/encoding.h"
#include "eventlog/event_log.h"
#include "projections/read_models.h"
#include "projections/rebuild.h"
#include "tests/support/test_server.h"

namespace convstore {
namespace {

namespace fs = std::filesystem;
using convstore::testing::TempDir;

constexpr int64_t kT = 1689003005123;  // 2023-07-10T15:30:05.123Z
const std::string kAlice = "user-alice";
const std::string kBob = "user-bob";
const std::string kAgentA = "0189406c-94c3-7000-8000-0000000000a1";
const std::string kAgentB = "0189406c-94c3-7000-8000-0000000000b1";
const std::string kConv = "conv-0189406c-94c4-7000-8000-0000000000c1";
const std::string kMsg1 = "msg-0189406c-94c4-7000-8000-0000000000d1";
const std::string kMsg2 = "msg-0189406c-94c4-7000-8000-0000000000d2";
const std::string kMsg3 = "msg-0189406c-94c4-7000-8000-0000000000d3";
const std::string kInstructionsV1 = "You are a helpful voice assistant.";
const std::string kInstructionsV2 =
    "You are a helpful voice assistant. Be brief.";
// "Grüße aus Zürich! 你好，世界 👋🏽 — «ok»?"
const std::string kUnicode =
    "Gr\xC3\xBC\xC3\x9F"
    "e aus Z\xC3\xBCrich! "
    "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C "
    "\xF0\x9F\x91\x8B\xF0\x9F\x8F\xBD \xE2\x80\x94 \xC2\xAB"
    "ok\xC2\xBB?";
const std::string kAssistant = "Hello! \"Quoted\"\nNew line\ttab \xE2\x9C\x93";
const std::string kRenamed = "Golden Conversation \xE2\x9C\x93";

std::string EventId(int n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "0189406c-94c3-7000-8000-00000000e%03d", n);
  return buf;
}

// One expected envelope.
struct Expected {
  uint64_t position;
  std::string stream;
  uint64_t revision;
  std::string actor;
  std::string idempotency_key;
  int64_t recorded_at_ms;
  EventPayload payload;
};

std::vector<Expected> GoldenEvents() {
  using S = ConversationStatus;
  Agent a{kAgentA,
          "Golden Agent",
          kInstructionsV1,
          std::string("golden-dispatch"),
          {{"team", "voice"}, {"tier", "gold"}},
          kAlice,
          kT,
          kT};
  Agent b{kAgentB, "Plain Agent", "",        std::nullopt,
          {},      kBob,          kT + 1000, kT + 1000};
  Conversation c{kConv,     kAgentA,    "Golden Conversation",
                 kAlice,    S::kActive, {{"customer", "42"}},
                 kT + 4000, kT + 4000};
  const std::string agent_a = "agent-" + kAgentA;
  const std::string agent_b = "agent-" + kAgentB;
  const std::string conv = "conversation-" + kConv;
  const std::string msgs = "messages-" + kConv;
  return {
      {1, agent_a, 0, kAlice, "idem-golden-0001", kT, AgentCreated{a}},
      {2, agent_b, 0, kBob, "", kT + 1000, AgentCreated{b}},
      {3, agent_a, 1, kAlice, "", kT + 2000,
       AgentUpdated{kAgentA,
                    "Golden Agent v2",
                    kInstructionsV2,
                    std::string("golden-dispatch-v2"),
                    {{"team", "voice"}, {"tier", "platinum"}},
                    kT + 2000}},
      {4, agent_b, 1, kBob, "", kT + 3000, AgentDeleted{kAgentB, kT + 3000}},
      {5, conv, 0, kAlice, "idem-golden-0005", kT + 4000,
       ConversationCreated{c}},
      {6, msgs, 0, kAlice, "idem-golden-0005", kT + 4000,
       MessageAppended{Message{kMsg1, kConv, MessageRole::kSystem,
                               kInstructionsV2, kT + 4000}}},
      {7, msgs, 1, kAlice, "", kT + 5000,
       MessageAppended{
           Message{kMsg2, kConv, MessageRole::kUser, kUnicode, kT + 5000}}},
      {8, msgs, 2, kAlice, "", kT + 6000,
       MessageAppended{Message{kMsg3, kConv, MessageRole::kAssistant,
                               kAssistant, kT + 6000}}},
      {9, conv, 1, kAlice, "", kT + 7000,
       ConversationUpdated{kConv,
                           kRenamed,
                           {{"customer", "42"}, {"priority", "high"}},
                           kT + 7000}},
      {10, conv, 2, kAlice, "", kT + 8000,
       ConversationStatusChanged{kConv, S::kActive, S::kCompleted, kT + 8000}},
      {11, conv, 3, kAlice, "", kT + 9000,
       ConversationStatusChanged{kConv, S::kCompleted, S::kArchived,
                                 kT + 9000}},
  };
}

class GoldenLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path source = fs::path(CONVSTORE_TEST_DATA) / "golden_log_v1";
    ASSERT_TRUE(fs::exists(source / "CURRENT"))
        << source << " is missing; it is committed with the tests";
    copy_ = tmp_.path() / "golden_log_v1";
    fs::copy(source, copy_, fs::copy_options::recursive);
    EventLogOptions options;
    options.extra_column_families = ReadModels::ColumnFamilies();
    options.create_if_missing = false;
    auto log = EventLog::Open(copy_.string(), options);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    log_ = std::move(*log);
    {
      // The committed store holds read models of format 1, as version 1
      // wrote them.
      ReadModels as_written(log_.get());
      auto format = as_written.Format();
      ASSERT_TRUE(format.ok());
      written_format_ = *format;
    }
    auto rm = OpenActiveReadModels(*log_);
    ASSERT_TRUE(rm.ok()) << rm.status().ToString();
    rm_ = std::move(*rm);
    log_->AddSink(rm_.get());
  }

  TempDir tmp_;
  fs::path copy_;
  std::unique_ptr<EventLog> log_;
  std::optional<uint8_t> written_format_;
  std::shared_ptr<ReadModels> rm_;
};

TEST(GoldenLogFormatTest, VerifyOfOlderFormatReadModelsSaysToRebuild) {
  // `projections verify` opens a store beside the server without writing:
  // read models of an older format are reported, not compared key by key.
  TempDir tmp;
  const fs::path copy = tmp.path() / "golden_log_v1";
  fs::copy(fs::path(CONVSTORE_TEST_DATA) / "golden_log_v1", copy,
           fs::copy_options::recursive);
  EventLogOptions options;
  options.extra_column_families = ReadModels::ColumnFamilies();
  options.create_if_missing = false;
  auto log = EventLog::Open(copy.string(), options);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  auto report = VerifyReadModels(**log, (tmp.path() / "scratch").string(), 10);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().kind(), ErrorKind::kUnavailable);
  EXPECT_NE(report.status().message().find("format 1"), std::string::npos)
      << report.status().message();
  EXPECT_NE(report.status().message().find("projections rebuild"),
            std::string::npos)
      << report.status().message();
}

TEST_F(GoldenLogTest, ReadModelsOfAnOlderFormatAreRebuiltWhenOpened) {
  EXPECT_EQ(written_format_, std::optional<uint8_t>(1));
  auto format = rm_->Format();
  ASSERT_TRUE(format.ok());
  EXPECT_EQ(*format, std::optional<uint8_t>(kReadModelsFormat));
  EXPECT_NE(rm_->prefix(), kDefaultReadModelsPrefix) << "a new generation";
  auto active = ActiveReadModelsPrefix(*log_);
  ASSERT_TRUE(active.ok());
  EXPECT_EQ(*active, rm_->prefix());
}

TEST_F(GoldenLogTest, HeadIsTheLastOfElevenGaplessPositions) {
  EXPECT_EQ(log_->head(), 11u);
  auto all = log_->ReadRange(1, 1000);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 11u);
  for (size_t i = 0; i < all->size(); ++i) {
    EXPECT_EQ((*all)[i].position, i + 1);
  }
  auto past = log_->Read(12);
  ASSERT_TRUE(past.ok());
  EXPECT_EQ(*past, std::nullopt);
}

TEST_F(GoldenLogTest, EveryEventDecodesToTheValuesVersion1Wrote) {
  const std::vector<Expected> want = GoldenEvents();
  auto all = log_->ReadRange(1, 1000);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const RecordedEvent& got = (*all)[i];
    const Expected& w = want[i];
    SCOPED_TRACE("position " + std::to_string(w.position) + " (" +
                 std::string(EventTypeName(w.payload)) + ")");
    EXPECT_EQ(got.position, w.position);
    EXPECT_EQ(got.stream, w.stream);
    EXPECT_EQ(got.revision, w.revision);
    EXPECT_EQ(got.event_id, EventId(static_cast<int>(w.position)));
    EXPECT_EQ(got.recorded_at_ms, w.recorded_at_ms);
    EXPECT_EQ(got.actor, w.actor);
    EXPECT_EQ(got.idempotency_key, w.idempotency_key);
    EXPECT_EQ(EventTypeName(got.payload), EventTypeName(w.payload));
    EXPECT_TRUE(got.payload == w.payload) << "payload fields differ";
    // Read by position gives the same.
    auto one = log_->Read(w.position);
    ASSERT_TRUE(one.ok());
    ASSERT_TRUE(one->has_value());
    EXPECT_TRUE((*one)->payload == w.payload);
  }
}

TEST_F(GoldenLogTest, EveryEventTypeOfVersionOneIsPresent) {
  auto all = log_->ReadRange(1, 1000);
  ASSERT_TRUE(all.ok());
  // Version 1 had the first seven types; ConversationErased came later.
  constexpr size_t kVersionOneTypes = 7;
  std::vector<bool> seen(kVersionOneTypes, false);
  for (const RecordedEvent& e : *all) seen.at(e.payload.index()) = true;
  for (size_t i = 0; i < seen.size(); ++i)
    EXPECT_TRUE(seen[i]) << "type #" << i;
}

TEST_F(GoldenLogTest, StreamRevisionsAreTheLastOfEachStream) {
  const std::pair<std::string, uint64_t> streams[] = {
      {"agent-" + kAgentA, 1},
      {"agent-" + kAgentB, 1},
      {"conversation-" + kConv, 3},
      {"messages-" + kConv, 2},
  };
  for (const auto& [stream, revision] : streams) {
    auto r = log_->StreamRevision(stream);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, std::optional<uint64_t>(revision)) << stream;
  }
}

TEST_F(GoldenLogTest, ReadModelsShowTheFinalState) {
  auto checkpoint = rm_->Checkpoint();
  ASSERT_TRUE(checkpoint.ok());
  EXPECT_EQ(*checkpoint, 11u);

  auto a = rm_->GetAgent(kAgentA);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(a->has_value());
  EXPECT_EQ((*a)->revision, 1u);
  const Agent want_agent{kAgentA,
                         "Golden Agent v2",
                         kInstructionsV2,
                         std::string("golden-dispatch-v2"),
                         {{"team", "voice"}, {"tier", "platinum"}},
                         kAlice,
                         kT,
                         kT + 2000};
  EXPECT_EQ((*a)->value, want_agent);

  auto b = rm_->GetAgent(kAgentB);
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->has_value()) << "agent B was deleted";

  auto c = rm_->GetConversation(kConv);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->revision, 3u);
  const Conversation want_conv{kConv,
                               kAgentA,
                               kRenamed,
                               kAlice,
                               ConversationStatus::kArchived,
                               {{"customer", "42"}, {"priority", "high"}},
                               kT + 4000,
                               kT + 9000};
  EXPECT_EQ((*c)->value, want_conv);

  auto msgs = rm_->ListMessages(kConv, std::nullopt, 100);
  ASSERT_TRUE(msgs.ok()) << msgs.status().ToString();
  ASSERT_EQ(msgs->items.size(), 3u);
  EXPECT_FALSE(msgs->has_more);
  struct WantMessage {
    std::string id, role, content, created_at;
  };
  const WantMessage want_msgs[] = {
      {kMsg1, "system", kInstructionsV2, "2023-07-10T15:30:09.123Z"},
      {kMsg2, "user", kUnicode, "2023-07-10T15:30:10.123Z"},
      {kMsg3, "assistant", kAssistant, "2023-07-10T15:30:11.123Z"},
  };
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE("message " + std::to_string(i));
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(msgs->items[i], ec);
    ASSERT_FALSE(ec) << msgs->items[i];
    const boost::json::object& o = v.as_object();
    EXPECT_EQ(o.size(), 5u);
    EXPECT_EQ(o.at("id").as_string(), want_msgs[i].id);
    EXPECT_EQ(o.at("conversation_id").as_string(), kConv);
    EXPECT_EQ(o.at("role").as_string(), want_msgs[i].role);
    EXPECT_EQ(o.at("content").as_string(), want_msgs[i].content);
    EXPECT_EQ(o.at("created_at").as_string(), want_msgs[i].created_at);
  }

  ListQuery alice;
  alice.actor = Actor{kAlice, false};
  auto agents = rm_->ListAgents(alice);
  ASSERT_TRUE(agents.ok());
  ASSERT_EQ(agents->items.size(), 1u);
  EXPECT_EQ(agents->items[0].value.id, kAgentA);
  auto convs = rm_->ListConversations(
      alice, RoomUrlTemplate("{livekit_url}/room/{room}", "wss://lk"));
  ASSERT_TRUE(convs.ok());
  ASSERT_EQ(convs->count, 1u);
  EXPECT_EQ(boost::json::parse(convs->json).at(0).at("id").as_string(), kConv);
  EXPECT_EQ(convs->last_id, kConv);
  ListQuery bob;
  bob.actor = Actor{kBob, false};
  auto bobs = rm_->ListAgents(bob);
  ASSERT_TRUE(bobs.ok());
  EXPECT_TRUE(bobs->items.empty());
}

TEST_F(GoldenLogTest, TimestampsRenderAsTheContractSays) {
  // The fixed clock of the golden log is the contract's example instant.
  EXPECT_EQ(FormatRfc3339Millis(kT), "2023-07-10T15:30:05.123Z");
}

TEST_F(GoldenLogTest, NewAppendsContinueAfterTheLastPosition) {
  Message m{"msg-0189406c-94c5-7000-8000-0000000000d4", kConv,
            MessageRole::kUser, "still readable", kT + 10000};
  LogBatch batch(log_.get());
  auto r = batch.Append({{"messages-" + kConv, 2, MessageAppended{m}}},
                        EventMeta{kAlice, "", kT + 10000},
                        [] { return std::string("evt-new"); });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(batch.Commit().ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].position, 12u);
  EXPECT_EQ((*r)[0].revision, 3u);
  EXPECT_EQ(log_->head(), 12u);
  auto page = rm_->ListMessages(kConv, std::nullopt, 100);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->items.size(), 4u);
}

}  // namespace
}  // namespace convstore
