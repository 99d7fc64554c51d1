// Spec for eventlog/event_log.h and event_codec.h over a real RocksDB
// directory: one gapless global position from 1, per-stream revisions from 0,
// expected-revision checks that undo the whole failed Append, savepoints,
// reopen, locking, and a codec that turns any bytes into a Corruption status
// instead of a crash; and the byte-stable JSON and CSV of events
// (event_json.h). Also the read models (projections/read_models.h) as a
// sink of the log, and the "rebuild gives the same bytes" property.
#include "eventlog/event_log.h"

#include <flatbuffers/flatbuffers.h>
#include <gtest/gtest.h>
#include <rocksdb/perf_context.h>
#include <rocksdb/perf_level.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/encoding.h"
#include "core/model_json.h"
#include "eventlog/event_codec.h"
#include "eventlog/event_json.h"
#include "eventlog/events_generated.h"
#include "projections/read_models.h"
#include "tests/support/faulty_fs.h"
#include "tests/support/test_server.h"

namespace convstore {
namespace {

using convstore::testing::EnvOver;
using convstore::testing::FaultyFileSystem;
using convstore::testing::TempDir;

constexpr int64_t kT0 = 1700000000000;  // 2023-11-14T22:13:20.000Z

// Event ids "evt-1", "evt-2", ... in call order.
std::function<std::string()> EventIds() {
  auto n = std::make_shared<int>(0);
  return [n] { return "evt-" + std::to_string(++*n); };
}

EventMeta Meta(std::string actor = "alice", std::string idem = "",
               int64_t at = kT0) {
  return EventMeta{std::move(actor), std::move(idem), at};
}

EventLogOptions LogOptions() {
  EventLogOptions o;
  o.extra_column_families = ReadModels::ColumnFamilies();
  return o;
}

std::unique_ptr<EventLog> MustOpen(const std::string& dir,
                                   EventLogOptions options = LogOptions()) {
  auto log = EventLog::Open(dir, options);
  EXPECT_TRUE(log.ok()) << log.status().ToString();
  if (!log.ok()) return nullptr;
  return std::move(*log);
}

// --- Sample values, one per event type --------------------------------------

const std::string kAgentId = "0190c1e8-0000-7000-8000-00000000000a";
const std::string kConvId = "conv-0190c1e8-0000-7000-8000-00000000000c";
const std::string kUnicode =
    "Gr\xC3\xBC\xC3\x9F"
    "e, \xE4\xB8\x96\xE7\x95\x8C! \xF0\x9F\x91\x8B";

Agent SampleAgent() {
  Agent a;
  a.id = kAgentId;
  a.name = "Support \xE2\x9C\x93";
  a.instructions = "Be brief.\nAlways greet.";
  a.dispatch_name = "support-worker";
  a.metadata = {{"team", "cx"}, {"tier", "gold"}, {"empty", ""}};
  a.created_by = "alice";
  a.created_at_ms = kT0;
  a.updated_at_ms = kT0;  // AgentCreated carries one timestamp for both
  return a;
}

Conversation SampleConversation() {
  Conversation c;
  c.id = kConvId;
  c.agent_id = kAgentId;
  c.title = "Onboarding " + kUnicode;
  c.created_by = "alice";
  c.status = ConversationStatus::kActive;
  c.metadata = {{"customer", "42"}};
  c.created_at_ms = kT0 + 1;
  c.updated_at_ms = kT0 + 1;
  return c;
}

Message SampleMessage(MessageRole role, std::string content, int64_t at) {
  Message m;
  m.id = "msg-0190c1e8-0000-7000-8000-" +
         std::string(12 - std::to_string(at - kT0).size(), '0') +
         std::to_string(at - kT0);
  m.conversation_id = kConvId;
  m.role = role;
  m.content = std::move(content);
  m.created_at_ms = at;
  return m;
}

// One event of every type, in an order valid for the read models, with
// expected revisions that hold on an empty log.
std::vector<NewEvent> OneOfEachType() {
  const std::string agent = AgentStream(kAgentId);
  const std::string conv = ConversationStream(kConvId);
  const std::string msgs = MessagesStream(kConvId);
  return {
      {agent, NewEvent::kNoStream, AgentCreated{SampleAgent()}},
      {conv, NewEvent::kNoStream, ConversationCreated{SampleConversation()}},
      {msgs, NewEvent::kNoStream,
       MessageAppended{SampleMessage(MessageRole::kSystem,
                                     "Be brief.\nAlways greet.", kT0 + 1)}},
      {msgs, 0,
       MessageAppended{SampleMessage(MessageRole::kUser, kUnicode, kT0 + 2)}},
      {msgs, std::nullopt,
       MessageAppended{SampleMessage(MessageRole::kAssistant,
                                     std::string(70000, 'x'), kT0 + 3)}},
      {conv, 0,
       ConversationUpdated{
           kConvId, "Renamed", {{"a", "1"}, {"b", "2"}}, kT0 + 4}},
      {conv, 1,
       ConversationStatusChanged{kConvId, ConversationStatus::kActive,
                                 ConversationStatus::kCompleted, kT0 + 5}},
      {conv, 2,
       ConversationStatusChanged{kConvId, ConversationStatus::kCompleted,
                                 ConversationStatus::kArchived, kT0 + 6}},
      {agent, 0,
       AgentUpdated{kAgentId, "Renamed agent", "", std::nullopt, {}, kT0 + 7}},
      {agent, 1, AgentDeleted{kAgentId, kT0 + 8}},
  };
}

void ExpectSameEvent(const RecordedEvent& got, const RecordedEvent& want) {
  EXPECT_EQ(got.position, want.position);
  EXPECT_EQ(got.stream, want.stream);
  EXPECT_EQ(got.revision, want.revision);
  EXPECT_EQ(got.event_id, want.event_id);
  EXPECT_EQ(got.recorded_at_ms, want.recorded_at_ms);
  EXPECT_EQ(got.actor, want.actor);
  EXPECT_EQ(got.idempotency_key, want.idempotency_key);
  EXPECT_EQ(EventTypeName(got.payload), EventTypeName(want.payload));
  EXPECT_TRUE(got.payload == want.payload)
      << "payload of " << EventTypeName(want.payload) << " at position "
      << want.position << " differs";
}

// A NewEvent carrying a user message with `content` (a handy filler event).
NewEvent Note(std::string stream, std::optional<int64_t> expected,
              std::string content = "note") {
  Message m;
  m.id = "msg-" + stream;
  m.conversation_id = "conv-x";
  m.content = std::move(content);
  return {std::move(stream), expected, MessageAppended{std::move(m)}};
}

class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = MustOpen(dir_.str());
    ASSERT_NE(log_, nullptr);
  }

  // Appends `events` in one batch and commits; returns what was recorded.
  std::vector<RecordedEvent> Commit(const std::vector<NewEvent>& events,
                                    const EventMeta& meta = Meta()) {
    LogBatch batch(log_.get());
    auto r = batch.Append(events, meta, ids_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    Status s = batch.Commit();
    EXPECT_TRUE(s.ok()) << s.ToString();
    return r.ok() ? std::vector<RecordedEvent>(r->begin(), r->end())
                  : std::vector<RecordedEvent>{};
  }

  std::optional<uint64_t> Revision(std::string_view stream) {
    auto r = log_->StreamRevision(stream);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::nullopt;
  }

  std::vector<RecordedEvent> ReadAll() {
    auto r = log_->ReadRange(1, 100000);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::vector<RecordedEvent>(r->begin(), r->end())
                  : std::vector<RecordedEvent>{};
  }

  TempDir dir_;
  std::unique_ptr<EventLog> log_;
  std::function<std::string()> ids_ = EventIds();
};

// --- Append and read ---------------------------------------------------------

TEST_F(EventLogTest, EmptyLogHasHeadZeroAndNoEvents) {
  EXPECT_EQ(log_->head(), 0u);
  EXPECT_TRUE(ReadAll().empty());
  auto first = log_->Read(1);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, std::nullopt);
  EXPECT_EQ(Revision("agent-x"), std::nullopt);
}

// --- Tables beside the log (read-model generations) -----------------------

TEST_F(EventLogTest, CreatingTablesSkipsThoseThatExist) {
  ASSERT_TRUE(log_->CreateColumnFamilies({"x_a", "x_b"}).ok());
  rocksdb::ColumnFamilyHandle* a = log_->cf("x_a");
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(log_->db()->Put(rocksdb::WriteOptions(), a, "k", "v").ok());

  ASSERT_TRUE(log_->CreateColumnFamilies({"x_a", "x_c"}).ok());
  EXPECT_EQ(log_->cf("x_a"), a);  // not created again: its row stays
  std::string value;
  ASSERT_TRUE(log_->db()->Get(rocksdb::ReadOptions(), a, "k", &value).ok());
  EXPECT_EQ(value, "v");
  EXPECT_NE(log_->cf("x_c"), nullptr);
  const std::vector<std::string> names = log_->ColumnFamilyNames();
  for (const char* name : {"x_a", "x_b", "x_c"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
  }
}

TEST_F(EventLogTest, DroppingTheLogsOwnTablesIsRefusedAndDropsNothing) {
  Commit({Note("s", std::nullopt)});
  ASSERT_TRUE(log_->CreateColumnFamilies({"x_a"}).ok());
  for (const char* own : {"events", "streams", "data_keys", "default"}) {
    Status s = log_->DropColumnFamilies({"x_a", own});
    EXPECT_EQ(s.kind(), ErrorKind::kInvalidArgument) << own;
    EXPECT_NE(log_->cf(own), nullptr) << own;
  }
  EXPECT_NE(log_->cf("x_a"), nullptr);  // the whole call was refused

  // Names that do not exist are skipped; the rest go.
  ASSERT_TRUE(log_->DropColumnFamilies({"x_missing", "x_a"}).ok());
  EXPECT_EQ(log_->cf("x_a"), nullptr);
  const std::vector<std::string> names = log_->ColumnFamilyNames();
  EXPECT_EQ(std::find(names.begin(), names.end(), "x_a"), names.end());
  EXPECT_EQ(ReadAll().size(), 1u);
}

TEST_F(EventLogTest, EveryEventTypeReadsBackWithAllFieldsEqual) {
  const std::vector<RecordedEvent> recorded =
      Commit(OneOfEachType(), Meta("alice", "idem-key-1", kT0 + 99));
  ASSERT_EQ(recorded.size(), OneOfEachType().size());

  // What Append returned is what was asked for, stamped with the meta.
  const auto asked = OneOfEachType();
  for (size_t i = 0; i < asked.size(); ++i) {
    EXPECT_EQ(recorded[i].stream, asked[i].stream);
    EXPECT_TRUE(recorded[i].payload == asked[i].payload) << i;
    EXPECT_EQ(recorded[i].event_id, "evt-" + std::to_string(i + 1));
    EXPECT_EQ(recorded[i].actor, "alice");
    EXPECT_EQ(recorded[i].idempotency_key, "idem-key-1");
    EXPECT_EQ(recorded[i].recorded_at_ms, kT0 + 99);
  }

  // Read by position and by range: equal in every field.
  const std::vector<RecordedEvent> all = ReadAll();
  ASSERT_EQ(all.size(), recorded.size());
  for (size_t i = 0; i < recorded.size(); ++i) {
    SCOPED_TRACE("position " + std::to_string(i + 1));
    ExpectSameEvent(all[i], recorded[i]);
    auto one = log_->Read(recorded[i].position);
    ASSERT_TRUE(one.ok()) << one.status().ToString();
    ASSERT_TRUE(one->has_value());
    ExpectSameEvent(**one, recorded[i]);
  }
}

TEST_F(EventLogTest, AbsentAndEmptyOptionalFieldsStayApart) {
  Agent with_empty_dispatch = SampleAgent();
  with_empty_dispatch.id = "agent-empty-dispatch";
  with_empty_dispatch.dispatch_name = "";
  with_empty_dispatch.metadata.clear();
  with_empty_dispatch.instructions = "";
  Agent without_dispatch = with_empty_dispatch;
  without_dispatch.id = "agent-no-dispatch";
  without_dispatch.dispatch_name = std::nullopt;
  Commit({{AgentStream(with_empty_dispatch.id), NewEvent::kNoStream,
           AgentCreated{with_empty_dispatch}},
          {AgentStream(without_dispatch.id), NewEvent::kNoStream,
           AgentCreated{without_dispatch}}},
         Meta("bob", /*idem=*/""));
  const auto all = ReadAll();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(std::get<AgentCreated>(all[0].payload).agent.dispatch_name,
            std::optional<std::string>(""));
  EXPECT_EQ(std::get<AgentCreated>(all[1].payload).agent.dispatch_name,
            std::nullopt);
  EXPECT_EQ(all[0].idempotency_key, "");
  EXPECT_EQ(all[0].actor, "bob");
}

TEST_F(EventLogTest, PositionsStartAtOneAndAreGaplessAcrossBatches) {
  Commit({Note("s1", std::nullopt)});
  Commit({Note("s2", std::nullopt), Note("s1", std::nullopt),
          Note("s3", std::nullopt)});
  Commit({Note("s2", std::nullopt), Note("s2", std::nullopt)});
  EXPECT_EQ(log_->head(), 6u);
  const auto all = ReadAll();
  ASSERT_EQ(all.size(), 6u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].position, i + 1);

  auto middle = log_->ReadRange(3, 2);
  ASSERT_TRUE(middle.ok());
  ASSERT_EQ(middle->size(), 2u);
  EXPECT_EQ((*middle)[0].position, 3u);
  EXPECT_EQ((*middle)[1].position, 4u);
  auto past = log_->Read(7);
  ASSERT_TRUE(past.ok());
  EXPECT_EQ(*past, std::nullopt);
}

TEST_F(EventLogTest, RevisionsCountPerStreamFromZero) {
  const auto r = Commit({Note("a", std::nullopt), Note("b", std::nullopt),
                         Note("a", std::nullopt)});
  const auto r2 = Commit({Note("a", 1), Note("b", 0), Note("c", std::nullopt)});
  ASSERT_EQ(r.size(), 3u);
  ASSERT_EQ(r2.size(), 3u);
  EXPECT_EQ(r[0].revision, 0u);
  EXPECT_EQ(r[1].revision, 0u);
  EXPECT_EQ(r[2].revision, 1u);
  EXPECT_EQ(r2[0].revision, 2u);
  EXPECT_EQ(r2[1].revision, 1u);
  EXPECT_EQ(r2[2].revision, 0u);
  EXPECT_EQ(Revision("a"), std::optional<uint64_t>(2));
  EXPECT_EQ(Revision("b"), std::optional<uint64_t>(1));
  EXPECT_EQ(Revision("c"), std::optional<uint64_t>(0));
  EXPECT_EQ(Revision("d"), std::nullopt);
}

TEST_F(EventLogTest, NothingIsVisibleBeforeCommit) {
  LogBatch batch(log_.get());
  auto r = batch.Append({Note("a", std::nullopt), Note("a", 0)}, Meta(), ids_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(batch.head(), 2u);  // the batch knows its pending positions...
  EXPECT_EQ(log_->head(), 0u);  // ...the log does not, yet
  EXPECT_EQ(Revision("a"), std::nullopt);
  EXPECT_TRUE(ReadAll().empty());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(log_->head(), 2u);
  EXPECT_EQ(Revision("a"), std::optional<uint64_t>(1));
}

TEST_F(EventLogTest, CommitOfAnEmptyBatchChangesNothing) {
  Commit({Note("a", std::nullopt)});
  LogBatch batch(log_.get());
  EXPECT_TRUE(batch.empty());
  EXPECT_TRUE(batch.Commit().ok());
  EXPECT_EQ(log_->head(), 1u);
}

// A batch that only writes beside the log (an online rebuild's read models)
// may commit while the writer appends; it must never move the head back, or
// the writer would reuse positions and overwrite acknowledged events.
TEST_F(EventLogTest, ABatchWithoutAppendsNeverMovesTheHead) {
  Commit({Note("a", std::nullopt)});
  LogBatch beside(log_.get());  // opened at head 1
  beside.Put(log_->cf(rocksdb::kDefaultColumnFamilyName), "k", "v");
  Commit({Note("a", std::nullopt), Note("a", std::nullopt)});  // head 3
  ASSERT_TRUE(beside.Commit().ok());
  EXPECT_EQ(log_->head(), 3u);
  Commit({Note("b", std::nullopt)});
  std::vector<RecordedEvent> all = ReadAll();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[3].position, 4u);
  EXPECT_EQ(all[1].stream, "a");  // not overwritten
}

TEST_F(EventLogTest, LaterAppendsInABatchSeeEarlierOnes) {
  LogBatch batch(log_.get());
  ASSERT_TRUE(
      batch.Append({Note("s", NewEvent::kNoStream)}, Meta(), ids_).ok());
  // The stream exists now (in the batch): kNoStream fails, revision 0 matches.
  auto again = batch.Append({Note("s", NewEvent::kNoStream)}, Meta(), ids_);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().kind(), ErrorKind::kConflict);
  auto next = batch.Append({Note("s", 0)}, Meta(), ids_);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ((*next)[0].revision, 1u);
  EXPECT_EQ((*next)[0].position, 2u);
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(log_->head(), 2u);
}

// --- Expected-revision conflicts
// ----------------------------------------------

TEST_F(EventLogTest, NoStreamOnAnExistingStreamIsAConflict) {
  Commit({Note("s", std::nullopt), Note("s", std::nullopt)});
  LogBatch batch(log_.get());
  auto r = batch.Append({Note("s", NewEvent::kNoStream)}, Meta(), ids_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().kind(), ErrorKind::kConflict) << r.status().ToString();
  EXPECT_TRUE(batch.empty());
  EXPECT_EQ(batch.head(), 2u);
}

TEST_F(EventLogTest, WrongExpectedRevisionIsAConflict) {
  Commit({Note("s", std::nullopt), Note("s", std::nullopt)});  // at 1
  for (int64_t wrong : {int64_t{0}, int64_t{2}, int64_t{7}}) {
    LogBatch batch(log_.get());
    auto r = batch.Append({Note("s", wrong)}, Meta(), ids_);
    ASSERT_FALSE(r.ok()) << "expected " << wrong;
    EXPECT_EQ(r.status().kind(), ErrorKind::kConflict);
  }
  // An expected revision on a stream that does not exist.
  LogBatch batch(log_.get());
  auto r = batch.Append({Note("missing", 0)}, Meta(), ids_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().kind(), ErrorKind::kConflict);
  EXPECT_EQ(Revision("missing"), std::nullopt);
}

TEST_F(EventLogTest, ConflictUndoesTheWholeAppendButKeepsTheOthers) {
  Commit({Note("existing", std::nullopt)});  // position 1, revision 0
  LogBatch batch(log_.get());
  auto before = batch.Append({Note("before", std::nullopt)}, Meta(), ids_);
  ASSERT_TRUE(before.ok());
  // Its first event is fine; its second conflicts: neither may remain.
  auto failed = batch.Append({Note("fresh", NewEvent::kNoStream),
                              Note("existing", NewEvent::kNoStream)},
                             Meta(), ids_);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().kind(), ErrorKind::kConflict);
  EXPECT_EQ(batch.head(), 2u) << "positions of the failed Append are reused";
  auto after = batch.Append({Note("after", std::nullopt), Note("existing", 0)},
                            Meta(), ids_);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ((*after)[0].position, 3u);
  EXPECT_EQ((*after)[1].position, 4u);
  ASSERT_TRUE(batch.Commit().ok());

  EXPECT_EQ(log_->head(), 4u);
  EXPECT_EQ(Revision("fresh"), std::nullopt);
  EXPECT_EQ(Revision("existing"), std::optional<uint64_t>(1));
  EXPECT_EQ(Revision("before"), std::optional<uint64_t>(0));
  EXPECT_EQ(Revision("after"), std::optional<uint64_t>(0));
  const auto all = ReadAll();
  ASSERT_EQ(all.size(), 4u);
  const char* streams[] = {"existing", "before", "after", "existing"};
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].position, i + 1);
    EXPECT_EQ(all[i].stream, streams[i]);
  }
}

TEST_F(EventLogTest, FailedAppendAloneLeavesHeadAndRevisionsUnchanged) {
  Commit({Note("s", std::nullopt)});
  LogBatch batch(log_.get());
  ASSERT_FALSE(
      batch.Append({Note("t", std::nullopt), Note("s", 5)}, Meta(), ids_).ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(log_->head(), 1u);
  EXPECT_EQ(Revision("s"), std::optional<uint64_t>(0));
  EXPECT_EQ(Revision("t"), std::nullopt);
  EXPECT_EQ(ReadAll().size(), 1u);
}

// --- Savepoints
// ---------------------------------------------------------------

TEST_F(EventLogTest, RollbackToSavePointUndoesWritesAndPositions) {
  LogBatch batch(log_.get());
  ASSERT_TRUE(batch.Append({Note("kept", std::nullopt)}, Meta(), ids_).ok());
  batch.SetSavePoint();
  ASSERT_TRUE(
      batch
          .Append({Note("undone", std::nullopt), Note("kept", 0)}, Meta(), ids_)
          .ok());
  EXPECT_EQ(batch.head(), 3u);
  batch.RollbackToSavePoint();
  EXPECT_EQ(batch.head(), 1u);
  auto next = batch.Append({Note("kept", 0)}, Meta(), ids_);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ((*next)[0].position, 2u);
  EXPECT_EQ((*next)[0].revision, 1u);
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(log_->head(), 2u);
  EXPECT_EQ(Revision("undone"), std::nullopt);
  EXPECT_EQ(Revision("kept"), std::optional<uint64_t>(1));
}

// What reads through a batch see across savepoints: each key's latest
// write, and after a rollback the one before it, whatever savepoints were
// popped in between.
TEST_F(EventLogTest, ReadsThroughABatchFollowItsSavePoints) {
  rocksdb::ColumnFamilyHandle* cf = log_->cf(rocksdb::kDefaultColumnFamilyName);
  LogBatch batch(log_.get());
  auto read = [&](std::string_view key) { return batch.Get(cf, key).value(); };
  batch.Put(cf, "k", "v1");
  batch.Put(cf, "gone", "here");
  batch.SetSavePoint();
  batch.Put(cf, "k", "v2");
  batch.Delete(cf, "gone");
  batch.Put(cf, "new", "n");
  batch.SetSavePoint();
  batch.Put(cf, "k", "v3");
  batch.Put(cf, "k", "v4");
  batch.PopSavePoint();
  EXPECT_EQ(std::optional<std::string>("v4"), read("k"));
  EXPECT_EQ(std::nullopt, read("gone"));

  batch.RollbackToSavePoint();
  EXPECT_EQ(std::optional<std::string>("v1"), read("k"));
  EXPECT_EQ(std::optional<std::string>("here"), read("gone"));
  EXPECT_EQ(std::nullopt, read("new"));
  ASSERT_TRUE(batch.Commit().ok());
  std::string value;
  ASSERT_TRUE(log_->db()->Get(rocksdb::ReadOptions(), cf, "k", &value).ok());
  EXPECT_EQ("v1", value);
  EXPECT_TRUE(
      log_->db()->Get(rocksdb::ReadOptions(), cf, "new", &value).IsNotFound());
}

// A table beside the log that merges append to (every table's merge
// operator is AppendMergeOperator).
class LogBatchMergeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EventLogOptions options;
    options.extra_column_families = {"appends"};
    log_ = MustOpen(dir_.str(), options);
    ASSERT_NE(log_, nullptr);
    cf_ = log_->cf("appends");
  }
  std::optional<std::string> Read(const LogBatch& batch, std::string_view key) {
    auto r = batch.Get(cf_, key);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::nullopt;
  }
  std::optional<std::string> Stored(std::string_view key) {
    std::string value;
    rocksdb::Status s =
        log_->db()->Get(rocksdb::ReadOptions(), cf_,
                        rocksdb::Slice(key.data(), key.size()), &value);
    EXPECT_TRUE(s.ok() || s.IsNotFound()) << s.ToString();
    return s.ok() ? std::optional<std::string>(value) : std::nullopt;
  }

  TempDir dir_;
  std::unique_ptr<EventLog> log_;
  rocksdb::ColumnFamilyHandle* cf_ = nullptr;
};

TEST_F(LogBatchMergeTest, MergesAppendAndReadsSeeThemBeforeTheCommit) {
  LogBatch batch(log_.get());
  batch.Merge(cf_, "k", "a");
  EXPECT_EQ(std::optional<std::string>("a"), Read(batch, "k"));
  batch.Merge(cf_, "k", "b");
  EXPECT_EQ(std::optional<std::string>("ab"), Read(batch, "k"));
  batch.SetSavePoint();
  batch.Merge(cf_, "k", "c");
  EXPECT_EQ(std::optional<std::string>("abc"), Read(batch, "k"));
  batch.RollbackToSavePoint();
  EXPECT_EQ(std::optional<std::string>("ab"), Read(batch, "k"));
  batch.Put(cf_, "put", "p");
  batch.Merge(cf_, "put", "q");
  batch.Delete(cf_, "deleted");
  batch.Merge(cf_, "deleted", "x");
  EXPECT_EQ(std::optional<std::string>("pq"), Read(batch, "put"));
  EXPECT_EQ(std::optional<std::string>("x"), Read(batch, "deleted"));
  EXPECT_EQ(std::nullopt, Read(batch, "never"));
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(std::optional<std::string>("ab"), Stored("k"));
  EXPECT_EQ(std::optional<std::string>("pq"), Stored("put"));
  EXPECT_EQ(std::optional<std::string>("x"), Stored("deleted"));
}

TEST_F(LogBatchMergeTest, ABatchAppendsToWhatItsBaseAndTheStoreHold) {
  {
    LogBatch first(log_.get());
    first.Merge(cf_, "k", "a");
    first.Put(cf_, "later deleted", "old");
    ASSERT_TRUE(first.Commit().ok());
  }
  LogBatch base(log_.get());
  base.Merge(cf_, "k", "b");
  base.Merge(cf_, "later deleted", "+");
  LogBatch next(log_.get(), &base);
  next.Merge(cf_, "k", "c");
  EXPECT_EQ(std::optional<std::string>("abc"), Read(next, "k"));
  EXPECT_EQ(std::optional<std::string>("ab"), Read(base, "k"));
  EXPECT_EQ(std::optional<std::string>("old+"), Read(next, "later deleted"));
  next.Delete(cf_, "later deleted");
  next.Merge(cf_, "later deleted", "new");
  EXPECT_EQ(std::optional<std::string>("new"), Read(next, "later deleted"));

  ASSERT_TRUE(base.Commit().ok());
  next.ClearBase();
  EXPECT_EQ(std::optional<std::string>("abc"), Read(next, "k"));
  ASSERT_TRUE(next.Commit().ok());
  EXPECT_EQ(std::optional<std::string>("abc"), Stored("k"));
  EXPECT_EQ(std::optional<std::string>("new"), Stored("later deleted"));

  // RocksDB joins the appends in its tables the same way.
  ASSERT_TRUE(log_->db()->Flush(rocksdb::FlushOptions(), cf_).ok());
  ASSERT_TRUE(
      log_->db()
          ->CompactRange(rocksdb::CompactRangeOptions(), cf_, nullptr, nullptr)
          .ok());
  EXPECT_EQ(std::optional<std::string>("abc"), Stored("k"));
  EXPECT_EQ(std::optional<std::string>("new"), Stored("later deleted"));
}

TEST_F(LogBatchMergeTest, AppendsOnlyInTheWalAreReadAfterAReopen) {
  for (const char* part : {"a", "b", "c"}) {
    LogBatch batch(log_.get());
    batch.Merge(cf_, "k", part);
    ASSERT_TRUE(batch.Commit().ok());
  }
  log_.reset();
  // Opened with no table named: the merge operator is every table's.
  log_ = MustOpen(dir_.str(), EventLogOptions{});
  ASSERT_NE(log_, nullptr);
  cf_ = log_->cf("appends");
  ASSERT_NE(cf_, nullptr);
  EXPECT_EQ(std::optional<std::string>("abc"), Stored("k"));
}

TEST_F(EventLogTest, PopSavePointKeepsWrites) {
  LogBatch batch(log_.get());
  batch.SetSavePoint();
  ASSERT_TRUE(batch.Append({Note("a", std::nullopt)}, Meta(), ids_).ok());
  batch.PopSavePoint();
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(log_->head(), 1u);
}

TEST_F(EventLogTest, NestedSavePointsRollBackOneLevelAtATime) {
  LogBatch batch(log_.get());
  batch.SetSavePoint();
  ASSERT_TRUE(batch.Append({Note("outer", std::nullopt)}, Meta(), ids_).ok());
  batch.SetSavePoint();
  ASSERT_TRUE(batch.Append({Note("inner", std::nullopt)}, Meta(), ids_).ok());
  batch.RollbackToSavePoint();
  EXPECT_EQ(batch.head(), 1u);
  batch.RollbackToSavePoint();
  EXPECT_EQ(batch.head(), 0u);
  EXPECT_TRUE(batch.empty());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(log_->head(), 0u);
}

// --- Reopen, read-only, locking
// -------------------------------------------------

TEST_F(EventLogTest, ReopenKeepsHeadAndPositionsContinue) {
  const auto first = Commit(OneOfEachType());
  const uint64_t head = log_->head();
  ASSERT_EQ(head, first.size());
  log_.reset();

  log_ = MustOpen(dir_.str());
  ASSERT_NE(log_, nullptr);
  EXPECT_EQ(log_->head(), head);
  EXPECT_EQ(Revision(AgentStream(kAgentId)), std::optional<uint64_t>(2));
  const auto more = Commit(
      {Note("after-reopen", std::nullopt), Note(AgentStream(kAgentId), 2)});
  ASSERT_EQ(more.size(), 2u);
  EXPECT_EQ(more[0].position, head + 1);
  EXPECT_EQ(more[1].position, head + 2);
  EXPECT_EQ(more[1].revision, 3u);
  const auto all = ReadAll();
  ASSERT_EQ(all.size(), head + 2);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].position, i + 1);
  for (size_t i = 0; i < first.size(); ++i) ExpectSameEvent(all[i], first[i]);
}

// A row read again from a table file comes from a bounded row cache (a
// conversation being followed skips that file's index and block search),
// and once a newer version is written, that is what is read.
TEST_F(EventLogTest, RowsReadAgainFromTablesComeFromABoundedRowCache) {
  const std::shared_ptr<rocksdb::Cache> cache =
      log_->db()->GetDBOptions().row_cache;
  ASSERT_NE(nullptr, cache);
  EXPECT_EQ(size_t{8} << 20, cache->GetCapacity());
  Commit({Note("s-1", std::nullopt)});
  ASSERT_TRUE(
      log_->db()->Flush(rocksdb::FlushOptions(), log_->streams_cf()).ok());
  const size_t before = cache->GetUsage();
  EXPECT_EQ(Revision("s-1"), std::optional<uint64_t>(0));
  const size_t kept = cache->GetUsage();
  EXPECT_GT(kept, before);
  EXPECT_EQ(Revision("s-1"), std::optional<uint64_t>(0));
  EXPECT_EQ(kept, cache->GetUsage()) << "the second read was not a hit";

  Commit({Note("s-1", 0)});
  EXPECT_EQ(Revision("s-1"), std::optional<uint64_t>(1));
  ASSERT_TRUE(
      log_->db()->Flush(rocksdb::FlushOptions(), log_->streams_cf()).ok());
  EXPECT_EQ(Revision("s-1"), std::optional<uint64_t>(1));
}

// The streams table keeps one row per stream, rewritten on every append, in
// a memtable hashed on the whole key: each stream's revision is found
// whether its row is in the memtable, in a table file, or in both (an older
// version flushed, a newer one not), and all of them are counted.
TEST_F(EventLogTest, StreamRevisionsAreFoundInTheMemtableTablesAndAfterReopen) {
  constexpr int kStreams = 50;
  auto stream = [](int i) { return "s-" + std::to_string(i); };
  for (int i = 0; i < kStreams; ++i) {
    Commit({Note(stream(i), std::nullopt), Note(stream(i), 0)});
  }
  ASSERT_TRUE(
      log_->db()->Flush(rocksdb::FlushOptions(), log_->streams_cf()).ok());
  for (int i = 0; i < kStreams; i += 2) Commit({Note(stream(i), 1)});
  constexpr int kNewStreams = 10;  // only in the memtable
  auto new_stream = [](int i) { return "t-" + std::to_string(i); };
  for (int i = 0; i < kNewStreams; ++i)
    Commit({Note(new_stream(i), std::nullopt)});

  auto expect_revisions = [&] {
    for (int i = 0; i < kStreams; ++i) {
      EXPECT_EQ(Revision(stream(i)), std::optional<uint64_t>(i % 2 ? 1 : 2))
          << stream(i);
    }
    for (int i = 0; i < kNewStreams; ++i) {
      EXPECT_EQ(Revision(new_stream(i)), std::optional<uint64_t>(0));
    }
    EXPECT_EQ(Revision("s-never-written"), std::nullopt);
    auto counted = log_->CountStreams();
    ASSERT_TRUE(counted.ok()) << counted.status().ToString();
    EXPECT_EQ(*counted, static_cast<uint64_t>(kStreams + kNewStreams));
  };
  expect_revisions();
  log_.reset();
  log_ = MustOpen(dir_.str());
  ASSERT_NE(log_, nullptr);
  expect_revisions();
}

TEST(EventLogOpenTest, ReadOnlyOpenOfAMissingDirFailsCleanly) {
  TempDir dir;
  const std::string missing = (dir.path() / "no-such-store").string();
  EventLogOptions options = LogOptions();
  options.read_only = true;
  auto log = EventLog::Open(missing, options);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().kind(), ErrorKind::kNotFound)
      << log.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(missing)) << "must not create it";
}

TEST(EventLogOpenTest, OpenWithoutCreateIfMissingFailsOnAMissingDir) {
  TempDir dir;
  const std::string missing = (dir.path() / "no-such-store").string();
  EventLogOptions options = LogOptions();
  options.create_if_missing = false;
  auto log = EventLog::Open(missing, options);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().kind(), ErrorKind::kNotFound)
      << log.status().ToString();
}

TEST_F(EventLogTest, SecondReadWriteOpenFailsAsLocked) {
  Commit({Note("s", std::nullopt)});
  auto second = EventLog::Open(dir_.str(), LogOptions());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().kind(), ErrorKind::kUnavailable)
      << second.status().ToString();
  EXPECT_NE(second.status().message().find("locked"), std::string::npos)
      << second.status().ToString();
  // The first instance is unharmed.
  Commit({Note("s", 0)});
  EXPECT_EQ(log_->head(), 2u);
}

TEST_F(EventLogTest, ReadOnlyOpenSeesCommittedEventsAndRefusesCommits) {
  const auto written = Commit(OneOfEachType());
  log_.reset();
  EventLogOptions options = LogOptions();
  options.read_only = true;
  auto ro = EventLog::Open(dir_.str(), options);
  ASSERT_TRUE(ro.ok()) << ro.status().ToString();
  EXPECT_EQ((*ro)->head(), written.size());
  auto all = (*ro)->ReadRange(1, 1000);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), written.size());
  for (size_t i = 0; i < written.size(); ++i)
    ExpectSameEvent((*all)[i], written[i]);

  LogBatch batch(ro->get());
  ASSERT_TRUE(batch.Append({Note("x", std::nullopt)}, Meta(), ids_).ok());
  Status s = batch.Commit();
  EXPECT_EQ(s.kind(), ErrorKind::kUnavailable) << s.ToString();
  EXPECT_EQ((*ro)->head(), written.size());
}

TEST_F(EventLogTest, ReadOnlyOpenBesideAWriterSeesWhatWasCommitted) {
  Commit({Note("s", std::nullopt), Note("s", 0)});
  EventLogOptions options = LogOptions();
  options.read_only = true;
  auto ro = EventLog::Open(dir_.str(), options);
  ASSERT_TRUE(ro.ok()) << ro.status().ToString();
  EXPECT_EQ((*ro)->head(), 2u);
}

// The server flushes (an erasure's purge runs one right after it) while a
// tool opens beside it: the flush deletes the WAL that held the events after
// the tool read the MANIFEST that does not name their table file yet. The
// open still sees every event.
TEST_F(EventLogTest, ASecondaryOpenedWhileTheServerFlushesSeesEveryEvent) {
  Commit({Note("s", std::nullopt), Note("s", 0)});  // in the WAL only
  auto wal_files = [&] {
    std::vector<std::string> out;
    for (const auto& f : std::filesystem::directory_iterator(dir_.path())) {
      if (f.path().extension() == ".log") out.push_back(f.path().string());
    }
    return out;
  };
  const std::vector<std::string> holding_events = wal_files();
  ASSERT_FALSE(holding_events.empty());

  auto fs = std::make_shared<FaultyFileSystem>();
  fs->OnListingWhileReadingManifest([&] {
    std::vector<rocksdb::ColumnFamilyHandle*> all;
    for (const std::string& name : log_->ColumnFamilyNames()) {
      all.push_back(log_->cf(name));
    }
    ASSERT_TRUE(log_->db()->Flush(rocksdb::FlushOptions(), all).ok());
    // The WAL goes once every table it holds rows of is flushed.
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(5);
    auto gone = [&] {
      for (const std::string& f : holding_events) {
        if (std::filesystem::exists(f)) return false;
      }
      return true;
    };
    while (!gone() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_TRUE(gone());
  });
  TempDir scratch;
  EventLogOptions options = LogOptions();
  options.secondary_path = scratch.str();
  options.env = EnvOver(fs);
  std::unique_ptr<EventLog> beside = MustOpen(dir_.str(), options);
  ASSERT_NE(beside, nullptr);
  ASSERT_TRUE(fs->listing_step_ran()) << "the flush ran during the open";
  EXPECT_EQ(2u, beside->head());
  auto read = beside->ReadRange(1, 10);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(2u, read->size());
}

// --- Codec: arbitrary bytes are Corruption, never a crash
// ----------------------

std::vector<std::string> EncodedSamples() {
  std::vector<std::string> out;
  uint64_t position = 1;
  for (const NewEvent& e : OneOfEachType()) {
    RecordedEvent r;
    r.position = position++;
    r.stream = e.stream;
    r.revision = 3;
    r.event_id = "evt";
    r.recorded_at_ms = kT0;
    r.actor = "alice";
    r.idempotency_key = (position % 2) ? "idem" : "";
    r.payload = e.payload;
    if (auto* m = std::get_if<MessageAppended>(&r.payload)) {
      m->message.content.resize(
          std::min<size_t>(m->message.content.size(), 40));
    }
    out.push_back(EncodeEvent(r));
  }
  return out;
}

// --- ReadRangeInto: ReadRange for scans, into a reused vector -------------

TEST_F(EventLogTest, ReadRangeIntoReadsWhatReadRangeReadsIntoAReusedVector) {
  Commit(OneOfEachType(), Meta("alice", "idem-key-1"));
  Commit({Note("s1", std::nullopt), Note("s2", std::nullopt)});
  ASSERT_EQ(log_->head(), 12u);
  // Each read overwrites what the one before left, so the slots hold events
  // of other types, longer and shorter strings, keys and none.
  std::vector<RecordedEvent> into;
  for (uint64_t from : {1u, 5u, 12u, 3u, 13u, 1u, 11u, 2u}) {
    for (size_t limit : {100u, 1u, 4u, 2u, 12u}) {
      SCOPED_TRACE("from " + std::to_string(from) + ", limit " +
                   std::to_string(limit));
      const size_t before = into.size();
      auto n = log_->ReadRangeInto(from, limit, into);
      ASSERT_TRUE(n.ok()) << n.status().ToString();
      auto want = log_->ReadRange(from, limit);
      ASSERT_TRUE(want.ok()) << want.status().ToString();
      ASSERT_EQ(*n, want->size());
      EXPECT_EQ(into.size(), std::max(before, *n)) << "grows, never shrinks";
      for (size_t i = 0; i < *n; ++i) ExpectSameEvent(into[i], (*want)[i]);
    }
  }
}

TEST_F(EventLogTest, ReadRangeIntoOfBytesThatDoNotDecodeIsCorruption) {
  Commit({Note("s", std::nullopt), Note("s", 0)});
  ASSERT_TRUE(log_->db()
                  ->Put(rocksdb::WriteOptions(), log_->cf("events"),
                        EncodePositionKey(3), "not an event")
                  .ok());
  std::vector<RecordedEvent> into;
  auto n = log_->ReadRangeInto(1, 100, into);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().kind(), ErrorKind::kCorruption);
  auto first_two = log_->ReadRangeInto(1, 2, into);
  ASSERT_TRUE(first_two.ok()) << first_two.status().ToString();
  EXPECT_EQ(*first_two, 2u);
}

TEST(EventCodecTest, DecoderReusingOneEventGivesWhatDecodeEventGives) {
  std::vector<std::string> encoded = EncodedSamples();
  // Backwards too, so that every type is decoded over others; and from an
  // unaligned address, which takes the aligned copy.
  std::vector<std::string> order = encoded;
  order.insert(order.end(), encoded.rbegin(), encoded.rend());
  EventDecoder decoder;
  RecordedEvent event;
  for (const std::string& bytes : order) {
    auto want = DecodeEvent(bytes);
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    ASSERT_TRUE(decoder.Decode(bytes, event).ok());
    ExpectSameEvent(event, *want);
    const std::string shifted = "x" + bytes;
    ASSERT_TRUE(
        decoder.Decode(std::string_view(shifted).substr(1), event).ok());
    ExpectSameEvent(event, *want);
  }
  EXPECT_EQ(decoder.Decode("not an event", event).kind(),
            ErrorKind::kCorruption);
}

// --- JSON and CSV of events (eventlog/event_json.h) ------------------------

// Events whose JSON and CSV are pinned below: every type, and the values
// that need care (quotes, commas, line breaks and control characters,
// non-ASCII, null and empty optionals, metadata with a repeated key, an
// Idempotency-Key, a time before 1970).
std::vector<RecordedEvent> RenderSamples() {
  auto event = [](uint64_t position, std::string stream, uint64_t revision,
                  EventPayload payload) {
    RecordedEvent e;
    e.position = position;
    e.stream = std::move(stream);
    e.revision = revision;
    e.event_id = "e" + std::to_string(position);
    e.recorded_at_ms = kT0 + static_cast<int64_t>(position);
    e.actor = "alice";
    e.payload = std::move(payload);
    return e;
  };
  Agent agent;
  agent.id = "a1";
  agent.name = "Bot " + kUnicode;
  agent.instructions = "Be brief.\nAlways greet.";
  agent.dispatch_name = "worker";
  agent.metadata = {{"team", "cx"}, {"empty", ""}};
  agent.created_by = "alice";
  agent.created_at_ms = agent.updated_at_ms = kT0;
  Agent bare = agent;
  bare.id = "a2";
  bare.dispatch_name = std::nullopt;
  bare.metadata.clear();
  Conversation conv;
  conv.id = "c1";
  conv.agent_id = "a1";
  conv.title = "Hi, \"you\"";
  conv.created_by = "alice";
  conv.metadata = {{"customer", "42"}};
  conv.created_at_ms = conv.updated_at_ms = kT0 + 2;
  Message m1{"m1", "c1", MessageRole::kUser,
             "a, \"quoted\"\r\nline\ttab \x01 " + kUnicode, kT0 + 3};
  Message m2{"m2", "c1", MessageRole::kAssistant, "plain", kT0 + 4};
  std::vector<RecordedEvent> out;
  out.push_back(event(1, "agent-a1", 0, AgentCreated{agent}));
  out.push_back(event(2, "conversation-c1", 0, ConversationCreated{conv}));
  out.push_back(event(3, "messages-c1", 0, MessageAppended{m1}));
  out.back().idempotency_key = "k\"1,2";
  out.back().actor = "bob, admin";
  out.push_back(event(4, "messages-c1", 1, MessageAppended{m2}));
  out.push_back(
      event(5, "conversation-c1", 1,
            ConversationUpdated{
                "c1", "T", {{"b", "1"}, {"a", "2"}, {"b", "3"}}, kT0 + 5}));
  out.push_back(
      event(6, "conversation-c1", 2,
            ConversationStatusChanged{"c1", ConversationStatus::kActive,
                                      ConversationStatus::kArchived, kT0 + 6}));
  out.push_back(event(7, "agent-a1", 1,
                      AgentUpdated{"a1", "B", "", std::nullopt, {}, kT0 + 7}));
  out.push_back(event(8, "agent-a1", 2,
                      AgentUpdated{"a1", "B", "I", "", {{"t", "x"}}, kT0 + 8}));
  out.push_back(event(9, "agent-a1", 3, AgentDeleted{"a1", -1}));
  out.push_back(event(10, "agent-a2", 0, AgentCreated{bare}));
  return out;
}

// EventJson(e) of RenderSamples(), as it has always been.
const std::vector<std::string> kSampleJson = {
    std::string(
        R"({"position":1,"stream":"agent-a1","revision":0,"event_id":"e1",)"
        R"("type":"AgentCreated","recorded_at":"2023-11-14T22:13:20.001Z",)"
        R"("actor":"alice","idempotency_key":null,"payload":{"id":"a1",)"
        R"("name":"Bot )") +
        kUnicode +
        R"(","instructions":"Be brief.\nAlways greet.",)"
        R"("dispatch_name":"worker","metadata":{"team":"cx","empty":""},)"
        R"("created_by":"alice","created_at":"2023-11-14T22:13:20.000Z"}})",
    R"({"position":2,"stream":"conversation-c1","revision":0,)"
    R"("event_id":"e2","type":"ConversationCreated",)"
    R"("recorded_at":"2023-11-14T22:13:20.002Z","actor":"alice",)"
    R"("idempotency_key":null,"payload":{"id":"c1","agent_id":"a1",)"
    R"("title":"Hi, \"you\"","created_by":"alice","status":"active",)"
    R"("metadata":{"customer":"42"},)"
    R"("created_at":"2023-11-14T22:13:20.002Z"}})",
    std::string(
        R"({"position":3,"stream":"messages-c1","revision":0,"event_id":"e3",)"
        R"("type":"MessageAppended","recorded_at":"2023-11-14T22:13:20.003Z",)"
        R"("actor":"bob, admin","idempotency_key":"k\"1,2",)"
        R"("payload":{"id":"m1","conversation_id":"c1","role":"user",)"
        R"("content":"a, \"quoted\"\r\nline\ttab \u0001 )") +
        kUnicode + R"(","created_at":"2023-11-14T22:13:20.003Z"}})",
    R"({"position":4,"stream":"messages-c1","revision":1,"event_id":"e4",)"
    R"("type":"MessageAppended","recorded_at":"2023-11-14T22:13:20.004Z",)"
    R"("actor":"alice","idempotency_key":null,"payload":{"id":"m2",)"
    R"("conversation_id":"c1","role":"assistant","content":"plain",)"
    R"("created_at":"2023-11-14T22:13:20.004Z"}})",
    R"({"position":5,"stream":"conversation-c1","revision":1,)"
    R"("event_id":"e5","type":"ConversationUpdated",)"
    R"("recorded_at":"2023-11-14T22:13:20.005Z","actor":"alice",)"
    R"("idempotency_key":null,"payload":{"conversation_id":"c1",)"
    R"("title":"T","metadata":{"b":"3","a":"2"},)"
    R"("updated_at":"2023-11-14T22:13:20.005Z"}})",
    R"({"position":6,"stream":"conversation-c1","revision":2,)"
    R"("event_id":"e6","type":"ConversationStatusChanged",)"
    R"("recorded_at":"2023-11-14T22:13:20.006Z","actor":"alice",)"
    R"("idempotency_key":null,"payload":{"conversation_id":"c1",)"
    R"("from":"active","to":"archived",)"
    R"("updated_at":"2023-11-14T22:13:20.006Z"}})",
    R"({"position":7,"stream":"agent-a1","revision":1,"event_id":"e7",)"
    R"("type":"AgentUpdated","recorded_at":"2023-11-14T22:13:20.007Z",)"
    R"("actor":"alice","idempotency_key":null,"payload":{"agent_id":"a1",)"
    R"("name":"B","instructions":"","dispatch_name":null,"metadata":{},)"
    R"("updated_at":"2023-11-14T22:13:20.007Z"}})",
    R"({"position":8,"stream":"agent-a1","revision":2,"event_id":"e8",)"
    R"("type":"AgentUpdated","recorded_at":"2023-11-14T22:13:20.008Z",)"
    R"("actor":"alice","idempotency_key":null,"payload":{"agent_id":"a1",)"
    R"("name":"B","instructions":"I","dispatch_name":"",)"
    R"("metadata":{"t":"x"},"updated_at":"2023-11-14T22:13:20.008Z"}})",
    R"({"position":9,"stream":"agent-a1","revision":3,"event_id":"e9",)"
    R"("type":"AgentDeleted","recorded_at":"2023-11-14T22:13:20.009Z",)"
    R"("actor":"alice","idempotency_key":null,"payload":{"agent_id":"a1",)"
    R"("deleted_at":"1969-12-31T23:59:59.999Z"}})",
    std::string(
        R"({"position":10,"stream":"agent-a2","revision":0,"event_id":"e10",)"
        R"("type":"AgentCreated","recorded_at":"2023-11-14T22:13:20.010Z",)"
        R"("actor":"alice","idempotency_key":null,"payload":{"id":"a2",)"
        R"("name":"Bot )") +
        kUnicode +
        R"(","instructions":"Be brief.\nAlways greet.","dispatch_name":null,)"
        R"("metadata":{},"created_by":"alice",)"
        R"("created_at":"2023-11-14T22:13:20.000Z"}})",
};
// EventToCsvRow(e) of RenderSamples() before its "\r\n", as it has always
// been.
const std::vector<std::string> kSampleCsv = {
    std::string(
        R"(1,agent-a1,0,e1,AgentCreated,2023-11-14T22:13:20.001Z,alice,,)"
        R"("{""id"":""a1"",""name"":""Bot )") +
        kUnicode +
        R"("",""instructions"":""Be brief.\nAlways greet."",)"
        R"(""dispatch_name"":""worker"",""metadata"":{""team"":""cx"",)"
        R"(""empty"":""""},""created_by"":""alice"",)"
        R"(""created_at"":""2023-11-14T22:13:20.000Z""}")",
    R"(2,conversation-c1,0,e2,ConversationCreated,)"
    R"(2023-11-14T22:13:20.002Z,alice,,"{""id"":""c1"",)"
    R"(""agent_id"":""a1"",""title"":""Hi, \""you\"""",)"
    R"(""created_by"":""alice"",""status"":""active"",)"
    R"(""metadata"":{""customer"":""42""},)"
    R"(""created_at"":""2023-11-14T22:13:20.002Z""}")",
    std::string(
        R"(3,messages-c1,0,e3,MessageAppended,2023-11-14T22:13:20.003Z,"bob,)"
        R"( admin","k""1,2","{""id"":""m1"",""conversation_id"":""c1"",)"
        R"(""role"":""user"",""content"":""a,)"
        R"( \""quoted\""\r\nline\ttab \u0001 )") +
        kUnicode + R"("",""created_at"":""2023-11-14T22:13:20.003Z""}")",
    R"(4,messages-c1,1,e4,MessageAppended,2023-11-14T22:13:20.004Z,alice,)"
    R"(,"{""id"":""m2"",""conversation_id"":""c1"",)"
    R"(""role"":""assistant"",""content"":""plain"",)"
    R"(""created_at"":""2023-11-14T22:13:20.004Z""}")",
    R"(5,conversation-c1,1,e5,ConversationUpdated,)"
    R"(2023-11-14T22:13:20.005Z,alice,,"{""conversation_id"":""c1"",)"
    R"(""title"":""T"",""metadata"":{""b"":""3"",""a"":""2""},)"
    R"(""updated_at"":""2023-11-14T22:13:20.005Z""}")",
    R"(6,conversation-c1,2,e6,ConversationStatusChanged,)"
    R"(2023-11-14T22:13:20.006Z,alice,,"{""conversation_id"":""c1"",)"
    R"(""from"":""active"",""to"":""archived"",)"
    R"(""updated_at"":""2023-11-14T22:13:20.006Z""}")",
    R"(7,agent-a1,1,e7,AgentUpdated,2023-11-14T22:13:20.007Z,alice,,)"
    R"("{""agent_id"":""a1"",""name"":""B"",""instructions"":"""",)"
    R"(""dispatch_name"":null,""metadata"":{},)"
    R"(""updated_at"":""2023-11-14T22:13:20.007Z""}")",
    R"(8,agent-a1,2,e8,AgentUpdated,2023-11-14T22:13:20.008Z,alice,,)"
    R"("{""agent_id"":""a1"",""name"":""B"",""instructions"":""I"",)"
    R"(""dispatch_name"":"""",""metadata"":{""t"":""x""},)"
    R"(""updated_at"":""2023-11-14T22:13:20.008Z""}")",
    R"(9,agent-a1,3,e9,AgentDeleted,2023-11-14T22:13:20.009Z,alice,,)"
    R"("{""agent_id"":""a1"",)"
    R"(""deleted_at"":""1969-12-31T23:59:59.999Z""}")",
    std::string(
        R"(10,agent-a2,0,e10,AgentCreated,2023-11-14T22:13:20.010Z,alice,,)"
        R"("{""id"":""a2"",""name"":""Bot )") +
        kUnicode +
        R"("",""instructions"":""Be brief.\nAlways greet."",)"
        R"(""dispatch_name"":null,""metadata"":{},""created_by"":""alice"",)"
        R"(""created_at"":""2023-11-14T22:13:20.000Z""}")",
};

TEST(EventJsonTest, JsonAndCsvOfEveryTypeAreByteStable) {
  const std::vector<RecordedEvent> samples = RenderSamples();
  ASSERT_EQ(samples.size(), kSampleJson.size());
  ASSERT_EQ(samples.size(), kSampleCsv.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    SCOPED_TRACE("position " + std::to_string(samples[i].position));
    EXPECT_EQ(EventJson(samples[i]), kSampleJson[i]);
    EXPECT_EQ(EventPayloadJson(samples[i].payload),
              boost::json::serialize(
                  boost::json::parse(kSampleJson[i]).at("payload")));
    EXPECT_EQ(EventToCsvRow(samples[i]), kSampleCsv[i] + "\r\n");
  }
}

TEST(EventJsonTest, TextWriterGivesTheSameBytesWhateverCameBefore) {
  // One writer for every ordered pair of samples: each event is rendered
  // over the JSON that one of every type (and shape) left.
  const std::vector<RecordedEvent> samples = RenderSamples();
  EventTextWriter writer;
  for (size_t a = 0; a < samples.size(); ++a) {
    for (size_t b = 0; b < samples.size(); ++b) {
      SCOPED_TRACE("positions " + std::to_string(a + 1) + ", " +
                   std::to_string(b + 1));
      writer.AppendJsonLine(samples[a]);
      writer.AppendJsonLine(samples[b]);
      EXPECT_EQ(writer.text(), kSampleJson[a] + "\n" + kSampleJson[b] + "\n");
      writer.Clear();
      writer.AppendCsvRow(samples[a]);
      writer.AppendCsvRow(samples[b]);
      EXPECT_EQ(writer.text(), kSampleCsv[a] + "\r\n" + kSampleCsv[b] + "\r\n");
      writer.Clear();
    }
  }
  // A text far larger than one serializer read.
  RecordedEvent big = samples[3];
  std::get<MessageAppended>(big.payload).message.content =
      std::string(100000, '"');
  for (int i = 0; i < 3; ++i) writer.AppendJsonLine(big);
  const std::string line = EventJson(big) + "\n";
  EXPECT_EQ(writer.text(), line + line + line);
}

TEST(EventJsonTest, TimestampsAreFormatRfc3339Millis) {
  // Same-day and new-day times in turn, before 1970, the edges of days and
  // years, and the ends of int64.
  std::vector<int64_t> times = {kT0,
                                kT0 + 1,
                                kT0 - 1,
                                kT0 + 86'400'000,
                                kT0,
                                0,
                                -1,
                                -86'400'000,
                                -86'400'001,
                                86'399'999,
                                86'400'000,
                                951'782'400'000,      // 2000-02-29
                                253'402'300'799'999,  // 9999-12-31T23:59:59.999
                                253'402'300'800'000,  // year 10000
                                -62'167'219'200'000,  // year 0
                                -62'167'219'200'001,
                                std::numeric_limits<int64_t>::min(),
                                std::numeric_limits<int64_t>::min() + 1,
                                std::numeric_limits<int64_t>::max(),
                                std::numeric_limits<int64_t>::max() - 1};
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    times.push_back(static_cast<int64_t>(rng()) >> (rng() % 40));
  }
  RecordedEvent e;
  for (int64_t t : times) {
    e.recorded_at_ms = t;
    e.payload = AgentDeleted{"a", t};
    const boost::json::object o = boost::json::parse(EventJson(e)).as_object();
    EXPECT_EQ(o.at("recorded_at").as_string(), FormatRfc3339Millis(t)) << t;
    EXPECT_EQ(o.at("payload").at("deleted_at").as_string(),
              FormatRfc3339Millis(t))
        << t;
  }
}

TEST(EventCodecTest, EncodeThenDecodeIsIdentity) {
  uint64_t position = 1;
  for (const NewEvent& e : OneOfEachType()) {
    RecordedEvent r;
    r.position = position++;
    r.stream = e.stream;
    r.revision = 42;
    r.event_id = "evt-x";
    r.recorded_at_ms = -5;  // before 1970 still round-trips
    r.actor = "bob";
    r.idempotency_key = "k";
    r.payload = e.payload;
    auto d = DecodeEvent(EncodeEvent(r));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ExpectSameEvent(*d, r);
  }
}

TEST(EventCodecTest, RandomBytesAreCorruption) {
  std::mt19937 rng(20240601);
  for (int i = 0; i < 2000; ++i) {
    std::string bytes(rng() % 300, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    auto r = DecodeEvent(bytes);
    ASSERT_FALSE(r.ok()) << "buffer " << i;
    EXPECT_EQ(r.status().kind(), ErrorKind::kCorruption);
  }
}

TEST(EventCodecTest, EveryTruncationOfARealEventIsCorruption) {
  for (const std::string& full : EncodedSamples()) {
    auto whole = DecodeEvent(full);
    ASSERT_TRUE(whole.ok()) << whole.status().ToString();
    size_t decoded_ok = 0;
    for (size_t n = 0; n < full.size(); ++n) {
      auto r = DecodeEvent(std::string_view(full).substr(0, n));
      if (r.ok()) {
        // Only cutting the builder's trailing alignment padding (< 8 bytes)
        // may leave a buffer that still verifies, and then it must mean the
        // same event.
        ++decoded_ok;
        EXPECT_GE(n + 8, full.size()) << "truncated to " << n;
        ExpectSameEvent(*r, *whole);
      } else {
        EXPECT_EQ(r.status().kind(), ErrorKind::kCorruption);
      }
    }
    EXPECT_LT(decoded_ok, 8u);
  }
}

// The decoder must survive every input, so the inputs below are decoded in a
// child process: a crash fails this test instead of ending the whole suite.
// The child exits 0 when every result was ok or Corruption, 1 otherwise.
template <typename Inputs>
void DecodeAllInChild(const Inputs& make_inputs) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        int bad = 0;
        make_inputs([&](std::string_view bytes) {
          auto r = DecodeEvent(bytes);
          if (!r.ok() && r.status().kind() != ErrorKind::kCorruption) ++bad;
        });
        std::_Exit(bad == 0 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(EventCodecTest, RandomBytesBehindAValidHeaderNeverCrash) {
  // Random tables behind a valid root offset and file identifier "CSEV", so
  // the verifier has to look inside.
  DecodeAllInChild([](const auto& decode) {
    std::mt19937 rng(7);
    for (int i = 0; i < 2000; ++i) {
      std::string bytes(8 + rng() % 200, '\0');
      for (char& c : bytes) c = static_cast<char>(rng());
      uint32_t root = 8 + (rng() % (bytes.size() - 7)) / 4 * 4;
      for (int b = 0; b < 4; ++b) bytes[b] = static_cast<char>(root >> (8 * b));
      bytes.replace(4, 4, "CSEV");
      decode(bytes);
    }
  });
}

TEST(EventCodecTest, EverySingleByteCorruptionOfARealEventNeverCrashes) {
  DecodeAllInChild([](const auto& decode) {
    for (const std::string& full : EncodedSamples()) {
      for (size_t i = 0; i < full.size(); ++i) {
        const uint8_t b = static_cast<uint8_t>(full[i]);
        for (uint8_t v : {uint8_t{0}, uint8_t{0xFF}, uint8_t(b ^ 0x01),
                          uint8_t(b ^ 0x80), uint8_t(b + 4)}) {
          std::string bad = full;
          bad[i] = static_cast<char>(v);
          decode(bad);
        }
      }
    }
  });
}

// An envelope that names a payload type but holds no payload table: the
// FlatBuffers verifier accepts it (an absent union value verifies), so the
// decoder itself must reject it.
std::string EnvelopeWithoutPayload(fb::Payload type) {
  flatbuffers::FlatBufferBuilder b;
  auto stream = b.CreateString("agent-x");
  auto event_id = b.CreateString("evt-1");
  auto actor = b.CreateString("alice");
  fb::EventEnvelopeBuilder env(b);
  env.add_position(1);
  env.add_stream(stream);
  env.add_revision(0);
  env.add_event_id(event_id);
  env.add_recorded_at_ms(kT0);
  env.add_actor(actor);
  env.add_payload_type(type);
  fb::FinishEventEnvelopeBuffer(b, env.Finish());
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()),
                     b.GetSize());
}

TEST(EventCodecTest, PayloadTypeWithoutPayloadIsCorruption) {
  const fb::Payload types[] = {
      fb::Payload::AgentCreated,        fb::Payload::AgentUpdated,
      fb::Payload::AgentDeleted,        fb::Payload::ConversationCreated,
      fb::Payload::ConversationUpdated, fb::Payload::ConversationStatusChanged,
      fb::Payload::MessageAppended,
  };
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (fb::Payload type : types) {
    SCOPED_TRACE("payload type " + std::to_string(static_cast<int>(type)));
    const std::string bytes = EnvelopeWithoutPayload(type);
    // Exit code 0: Corruption; 1: any other result; a signal: a crash.
    EXPECT_EXIT(
        {
          auto r = DecodeEvent(bytes);
          std::_Exit(
              !r.ok() && r.status().kind() == ErrorKind::kCorruption ? 0 : 1);
        },
        ::testing::ExitedWithCode(0), "");
  }
}

TEST(EventCodecTest, NoPayloadOrAnUnknownPayloadTypeIsCorruption) {
  // NONE, and a type from some newer writer this build does not know.
  for (fb::Payload type : {fb::Payload::NONE, static_cast<fb::Payload>(99)}) {
    auto r = DecodeEvent(EnvelopeWithoutPayload(type));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().kind(), ErrorKind::kCorruption);
  }
}

// --- Read models as a sink of the log
// --------------------------------------------

// A store: the log plus, optionally, the read models attached as its sink.
struct Store {
  std::unique_ptr<EventLog> log;
  std::unique_ptr<ReadModels> rm;
  std::function<std::string()> ids = EventIds();

  static Store Open(const std::string& dir, bool attach) {
    Store s;
    EventLogOptions options = LogOptions();
    options.tune_column_family = ReadModels::TuneColumnFamily;  // as served
    s.log = MustOpen(dir, options);
    if (s.log == nullptr) return s;
    s.rm = std::make_unique<ReadModels>(s.log.get());
    if (attach) s.log->AddSink(s.rm.get());
    return s;
  }

  void Run(const std::vector<NewEvent>& events, const EventMeta& meta) {
    LogBatch batch(log.get());
    auto r = batch.Append(events, meta, ids);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(batch.Commit().ok());
  }
};

struct Command {
  std::vector<NewEvent> events;
  EventMeta meta;
};

const std::string kAgentA = "0190c1e8-0000-7000-8000-0000000000a1";
const std::string kAgentB = "0190c1e8-0000-7000-8000-0000000000b1";
const std::string kConv1 = "conv-0190c1e8-0000-7000-8000-0000000000c1";
const std::string kConv2 = "conv-0190c1e8-0000-7000-8000-0000000000c2";

Message Msg(const std::string& conv, int n, MessageRole role,
            std::string content) {
  Message m;
  m.id = "msg-0190c1e8-0000-7000-8000-00000000" + std::to_string(1000 + n);
  m.conversation_id = conv;
  m.role = role;
  m.content = std::move(content);
  m.created_at_ms = kT0 + n;
  return m;
}

// Two users, two agents (one deleted), two conversations with messages.
std::vector<Command> Scenario() {
  Agent a;
  a.id = kAgentA;
  a.name = "Agent A";
  a.instructions = "Be kind.";
  a.dispatch_name = "worker-a";
  a.metadata = {{"m", "1"}};
  a.created_by = "alice";
  a.created_at_ms = a.updated_at_ms = kT0;
  Agent b;
  b.id = kAgentB;
  b.name = "Agent B";
  b.created_by = "bob";
  b.created_at_ms = b.updated_at_ms = kT0 + 1;
  Conversation c1;
  c1.id = kConv1;
  c1.agent_id = kAgentA;
  c1.title = "First";
  c1.created_by = "alice";
  c1.metadata = {{"x", "y"}};
  c1.created_at_ms = c1.updated_at_ms = kT0 + 10;
  Conversation c2 = c1;
  c2.id = kConv2;
  c2.agent_id = kAgentB;
  c2.title = "Second";
  c2.created_by = "bob";
  c2.metadata = {};
  c2.created_at_ms = c2.updated_at_ms = kT0 + 20;
  using S = ConversationStatus;
  return {
      {{{AgentStream(kAgentA), NewEvent::kNoStream, AgentCreated{a}}},
       Meta("alice", "idem-1", kT0)},
      {{{AgentStream(kAgentB), NewEvent::kNoStream, AgentCreated{b}}},
       Meta("bob", "", kT0 + 1)},
      {{{ConversationStream(kConv1), NewEvent::kNoStream,
         ConversationCreated{c1}},
        {MessagesStream(kConv1), NewEvent::kNoStream,
         MessageAppended{Msg(kConv1, 10, MessageRole::kSystem, "Be kind.")}}},
       Meta("alice", "", kT0 + 10)},
      {{{MessagesStream(kConv1), 0,
         MessageAppended{Msg(kConv1, 11, MessageRole::kUser, kUnicode)}},
        {MessagesStream(kConv1), 1,
         MessageAppended{
             Msg(kConv1, 12, MessageRole::kAssistant, "Hello \"there\"\n")}}},
       Meta("alice", "", kT0 + 12)},
      {{{ConversationStream(kConv1), 0,
         ConversationUpdated{
             kConv1, "First, renamed", {{"p", "q"}}, kT0 + 13}}},
       Meta("alice", "", kT0 + 13)},
      {{{ConversationStream(kConv1), 1,
         ConversationStatusChanged{kConv1, S::kActive, S::kCompleted,
                                   kT0 + 14}}},
       Meta("alice", "", kT0 + 14)},
      {{{ConversationStream(kConv2), NewEvent::kNoStream,
         ConversationCreated{c2}}},
       Meta("bob", "", kT0 + 20)},
      {{{AgentStream(kAgentA), 0,
         AgentUpdated{kAgentA,
                      "Agent A2",
                      "Be kinder.",
                      std::nullopt,
                      {{"m", "2"}},
                      kT0 + 21}}},
       Meta("alice", "", kT0 + 21)},
      {{{AgentStream(kAgentB), 0, AgentDeleted{kAgentB, kT0 + 22}}},
       Meta("bob", "", kT0 + 22)},
      {{{MessagesStream(kConv2), std::nullopt,
         MessageAppended{Msg(kConv2, 23, MessageRole::kUser, "hi")}}},
       Meta("bob", "", kT0 + 23)},
  };
}

using CfDump =
    std::map<std::string, std::vector<std::pair<std::string, std::string>>>;

CfDump DumpReadModels(const EventLog& log) {
  CfDump out;
  for (const std::string& name : ReadModels::ColumnFamilies()) {
    rocksdb::ColumnFamilyHandle* cf = log.cf(name);
    EXPECT_NE(cf, nullptr) << name;
    if (cf == nullptr) continue;
    auto& rows = out[name];
    // Total order, as verify reads: a table with a prefix extractor may
    // otherwise be iterated one prefix at a time.
    std::unique_ptr<rocksdb::Iterator> it(
        log.db()->NewIterator(WholeTableReadOptions(), cf));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      rows.emplace_back(it->key().ToString(), it->value().ToString());
    }
    EXPECT_TRUE(it->status().ok()) << it->status().ToString();
  }
  return out;
}

void ExpectSameDump(const CfDump& got, const CfDump& want) {
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, rows] : want) {
    SCOPED_TRACE("column family " + name);
    const auto& other = got.at(name);
    ASSERT_EQ(other.size(), rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(other[i].first, rows[i].first) << "key #" << i;
      EXPECT_EQ(other[i].second, rows[i].second) << "value of key #" << i;
    }
  }
}

TEST(ReadModelsTest, ShowWhatWasAppended) {
  TempDir dir;
  Store s = Store::Open(dir.str(), /*attach=*/true);
  ASSERT_NE(s.log, nullptr);
  for (const Command& c : Scenario()) s.Run(c.events, c.meta);

  auto a = s.rm->GetAgent(kAgentA);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(a->has_value());
  EXPECT_EQ((*a)->revision, 1u);
  EXPECT_EQ((*a)->value.name, "Agent A2");
  EXPECT_EQ((*a)->value.instructions, "Be kinder.");
  EXPECT_EQ((*a)->value.dispatch_name, std::nullopt);
  EXPECT_EQ((*a)->value.metadata, (Metadata{{"m", "2"}}));
  EXPECT_EQ((*a)->value.created_by, "alice");
  EXPECT_EQ((*a)->value.created_at_ms, kT0);
  EXPECT_EQ((*a)->value.updated_at_ms, kT0 + 21);

  auto b = s.rm->GetAgent(kAgentB);
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->has_value()) << "a deleted agent is gone";

  auto c1 = s.rm->GetConversation(kConv1);
  ASSERT_TRUE(c1.ok()) << c1.status().ToString();
  ASSERT_TRUE(c1->has_value());
  EXPECT_EQ((*c1)->revision, 2u);
  EXPECT_EQ((*c1)->value.title, "First, renamed");
  EXPECT_EQ((*c1)->value.status, ConversationStatus::kCompleted);
  EXPECT_EQ((*c1)->value.metadata, (Metadata{{"p", "q"}}));
  EXPECT_EQ((*c1)->value.agent_id, kAgentA);
  EXPECT_EQ((*c1)->value.created_at_ms, kT0 + 10);
  EXPECT_EQ((*c1)->value.updated_at_ms, kT0 + 14);

  auto msgs = s.rm->ListMessages(kConv1, std::nullopt, 100);
  ASSERT_TRUE(msgs.ok()) << msgs.status().ToString();
  ASSERT_EQ(msgs->items.size(), 3u);
  EXPECT_FALSE(msgs->has_more);
  const char* roles[] = {"system", "user", "assistant"};
  const std::string contents[] = {"Be kind.", kUnicode, "Hello \"there\"\n"};
  for (size_t i = 0; i < 3; ++i) {
    boost::json::object o = boost::json::parse(msgs->items[i]).as_object();
    EXPECT_EQ(o.at("id").as_string(), Msg(kConv1, 10 + int(i), {}, "").id);
    EXPECT_EQ(o.at("conversation_id").as_string(), kConv1);
    EXPECT_EQ(o.at("role").as_string(), roles[i]);
    EXPECT_EQ(o.at("content").as_string(), contents[i]);
  }

  auto page = s.rm->ListMessages(kConv1, Msg(kConv1, 10, {}, "").id, 1);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_TRUE(page->has_more);

  ListQuery alice;
  alice.actor = Actor{"alice", false};
  auto agents = s.rm->ListAgents(alice);
  ASSERT_TRUE(agents.ok());
  ASSERT_EQ(agents->items.size(), 1u);
  EXPECT_EQ(agents->items[0].value.id, kAgentA);
  ListQuery bob;
  bob.actor = Actor{"bob", false};
  auto convs = s.rm->ListConversations(
      bob, RoomUrlTemplate("{livekit_url}/room/{room}", "wss://lk"));
  ASSERT_TRUE(convs.ok());
  ASSERT_EQ(convs->count, 1u);
  EXPECT_EQ(boost::json::parse(convs->json).at(0).at("id").as_string(), kConv2);
  EXPECT_EQ(convs->last_id, kConv2);
  auto bobs_agents = s.rm->ListAgents(bob);
  ASSERT_TRUE(bobs_agents.ok());
  EXPECT_TRUE(bobs_agents->items.empty());

  auto checkpoint = s.rm->Checkpoint();
  ASSERT_TRUE(checkpoint.ok());
  EXPECT_EQ(*checkpoint, s.log->head());
}

TEST(ReadModelsTest, ReadThroughABatchSeesPendingEvents) {
  TempDir dir;
  Store s = Store::Open(dir.str(), /*attach=*/true);
  ASSERT_NE(s.log, nullptr);
  const Command create = Scenario()[0];
  LogBatch batch(s.log.get());
  ASSERT_TRUE(batch.Append(create.events, create.meta, s.ids).ok());
  auto pending = s.rm->GetAgent(kAgentA, &batch);
  ASSERT_TRUE(pending.ok());
  EXPECT_TRUE(pending->has_value());
  auto committed = s.rm->GetAgent(kAgentA);
  ASSERT_TRUE(committed.ok());
  EXPECT_FALSE(committed->has_value());
  ASSERT_TRUE(batch.Commit().ok());
  committed = s.rm->GetAgent(kAgentA);
  ASSERT_TRUE(committed.ok());
  EXPECT_TRUE(committed->has_value());
}

// A conversation's messages are read by their prefix, which the messages
// table filters its memtables and files on: rows spread over two flushed
// table files and the memtable, between the rows of the conversations
// sorting just before and after it, all come back, in order, and no
// neighbour's, through every way of reading them.
TEST(ReadModelsTest, MessagesSpreadOverTableFilesReadAsOneList) {
  TempDir dir;
  Store s = Store::Open(dir.str(), /*attach=*/true);
  ASSERT_NE(s.log, nullptr);
  const std::string before = "conv-0190c1e8-0000-7000-8000-0000000000c0";
  const std::vector<std::string> convs = {before, kConv1, kConv2};
  std::vector<std::string> want;  // kConv1's message ids
  for (int round = 0; round < 3; ++round) {
    for (size_t k = 0; k < convs.size(); ++k) {
      const int n = round * 3 + static_cast<int>(k);
      Message m = Msg(convs[k], n, MessageRole::kUser, "m" + std::to_string(n));
      if (convs[k] == kConv1) want.push_back(m.id);
      s.Run({{MessagesStream(convs[k]), std::nullopt, MessageAppended{m}}},
            Meta("alice", "", kT0 + n));
    }
    if (round < 2) {
      rocksdb::FlushOptions flush;
      ASSERT_TRUE(
          s.log->db()
              ->Flush(flush, s.log->cf(std::string(kDefaultReadModelsPrefix) +
                                       "messages"))
              .ok());
    }
  }
  auto ids = [](const std::vector<std::string>& items) {
    std::vector<std::string> out;
    for (const std::string& item : items) {
      out.emplace_back(boost::json::parse(item).at("id").as_string());
    }
    return out;
  };

  auto all = s.rm->ListMessages(kConv1, std::nullopt, 100);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(ids(all->items), want);
  auto rest = s.rm->ListMessages(kConv1, want[0], 1);
  ASSERT_TRUE(rest.ok()) << rest.status().ToString();
  EXPECT_EQ(ids(rest->items), std::vector<std::string>{want[1]});
  EXPECT_TRUE(rest->has_more);
  auto from = s.rm->MessagesFrom(kConv1, 0, 100);
  ASSERT_TRUE(from.ok()) << from.status().ToString();
  ASSERT_EQ(from->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(boost::json::parse((*from)[i].json).at("id").as_string(),
              want[i]);
  }
  std::string streamed;
  auto stream = s.rm->StreamMessages(kConv1);
  for (int i = 0; i < 100 && !stream->Done(); ++i) {
    auto chunk = stream->NextChunk(1);  // one message per chunk
    ASSERT_TRUE(chunk.ok()) << chunk.status().ToString();
    if (*chunk) streamed += **chunk;
  }
  EXPECT_EQ(streamed, JoinJsonArray(all->items));
}

// Creates conversation number n (0..89) of a series, in id order: created
// at kT0 + n, by alice for even n and bob for odd. Returns its id.
std::string CreateNumberedConversation(Store& s, std::string_view series,
                                       int n) {
  Conversation c;
  c.id = "conv-0190c1e8-0000-7000-8000-000000000" + std::string(series) +
         std::to_string(10 + n);
  c.agent_id = kAgentA;
  c.created_by = n % 2 ? "bob" : "alice";
  c.created_at_ms = c.updated_at_ms = kT0 + n;
  s.Run(
      {{ConversationStream(c.id), NewEvent::kNoStream, ConversationCreated{c}}},
      Meta(c.created_by, "", kT0 + n));
  return c.id;
}

// GET and every append read a conversation's list entry by id; conversations
// created over time fill many table files, and the entry is read from the
// one file whose keys can hold it, not probed for in each (with everyone's
// rows beside the owners' in one table, every file spanned the old ones and
// a read probed each). Admins' and owners' pages still run newest first
// across the files.
TEST(ReadModelsTest, AConversationsEntryIsLookedUpInOneOfManyTableFiles) {
  TempDir dir;
  Store s = Store::Open(dir.str(), /*attach=*/true);
  ASSERT_NE(s.log, nullptr);
  constexpr int kRounds = 3;  // a table file each
  constexpr int kPerRound = 4;
  std::vector<std::string> ids;  // oldest first
  for (int round = 0; round < kRounds; ++round) {
    for (int k = 0; k < kPerRound; ++k) {
      const int n = round * kPerRound + k;
      ids.push_back(CreateNumberedConversation(s, "1", n));
    }
    for (const char* table :
         {"conversations", "conversations_by_owner", "all_conversations"}) {
      rocksdb::ColumnFamilyHandle* cf =
          s.log->cf(std::string(kDefaultReadModelsPrefix) + table);
      ASSERT_TRUE(s.log->db()->Flush(rocksdb::FlushOptions(), cf).ok());
      // As in a store that has run a while: the oldest rows compacted to
      // the last level, newer files above them. (With level 0 alone and
      // fewer than 4 files, RocksDB probes each without checking its key
      // range.)
      if (round == 0) {
        ASSERT_TRUE(s.log->db()
                        ->CompactRange(rocksdb::CompactRangeOptions(), cf,
                                       nullptr, nullptr)
                        .ok());
      }
    }
  }
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
  rocksdb::get_perf_context()->Reset();
  auto oldest = s.rm->GetConversationEntry(ids.front());
  const uint64_t files_probed =
      rocksdb::get_perf_context()->bloom_sst_hit_count +
      rocksdb::get_perf_context()->bloom_sst_miss_count;
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  ASSERT_TRUE(oldest.ok()) << oldest.status().ToString();
  ASSERT_TRUE(oldest->has_value());
  EXPECT_EQ(1u, files_probed);

  const RoomUrlTemplate room_url("{livekit_url}/room/{room}", "wss://lk");
  auto page_ids = [&](const Actor& actor, std::optional<std::string> after) {
    ListQuery q;
    q.actor = actor;
    q.limit = 5;
    q.after = std::move(after);
    std::vector<std::string> out;
    auto page = s.rm->ListConversations(q, room_url);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    if (!page.ok()) return out;
    const boost::json::value items = boost::json::parse(page->json);
    for (const auto& item : items.as_array()) {
      out.emplace_back(item.at("id").as_string());
    }
    return out;
  };
  const std::vector<std::string> newest(ids.rbegin(), ids.rend());
  EXPECT_EQ(page_ids(Actor{"root", true}, std::nullopt),
            std::vector<std::string>(newest.begin(), newest.begin() + 5));
  EXPECT_EQ(page_ids(Actor{"root", true}, newest[4]),
            std::vector<std::string>(newest.begin() + 5, newest.begin() + 10));
  std::vector<std::string> alices;
  for (size_t i = 0; i < newest.size(); ++i) {
    if (i % 2 == 1) alices.push_back(newest[i]);  // even n, newest first
  }
  EXPECT_EQ(page_ids(Actor{"alice", false}, std::nullopt),
            std::vector<std::string>(alices.begin(), alices.begin() + 5));
  EXPECT_EQ(page_ids(Actor{"alice", false}, alices[4]),
            std::vector<std::string>{alices[5]});
}

// A list page seeks every sorted run of its table. Everyone's conversations
// (what an admin lists) leave level 0 once flushed, so such a page seeks
// the memtable and one level; an owner's table keeps the usual level 0
// (many owners' keys interleave: moving each file down would rewrite the
// level below).
TEST(ReadModelsTest, EveryonesConversationsLeaveLevelZeroOnceFlushed) {
  TempDir dir;
  Store s = Store::Open(dir.str(), /*attach=*/true);
  ASSERT_NE(s.log, nullptr);
  auto table = [&](const char* name) {
    return s.log->cf(std::string(kDefaultReadModelsPrefix) + name);
  };
  auto level0_files = [&](const char* name) {
    std::string n;
    EXPECT_TRUE(s.log->db()->GetProperty(table(name),
                                         "rocksdb.num-files-at-level0", &n));
    return std::stoi(n);
  };
  for (int round = 0; round < 2; ++round) {
    for (int k = 0; k < 3; ++k) {
      const int n = round * 3 + k;
      CreateNumberedConversation(s, "2", n);
    }
    for (const char* name : {"all_conversations", "conversations_by_owner"}) {
      ASSERT_TRUE(
          s.log->db()->Flush(rocksdb::FlushOptions(), table(name)).ok());
    }
  }
  // The compaction runs in the background: up to 5 s for it.
  for (int i = 0; i < 250 && level0_files("all_conversations") > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(0, level0_files("all_conversations"));
  EXPECT_EQ(2, level0_files("conversations_by_owner"));
  ListQuery q;
  q.actor = Actor{"root", true};
  auto page = s.rm->ListConversations(
      q, RoomUrlTemplate("{livekit_url}/room/{room}", "wss://lk"));
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(6u, page->count);
}

TEST(ReadModelsTest, FailedAppendLeavesNoReadModelRows) {
  TempDir dir;
  Store s = Store::Open(dir.str(), /*attach=*/true);
  ASSERT_NE(s.log, nullptr);
  const Command create = Scenario()[0];
  LogBatch batch(s.log.get());
  std::vector<NewEvent> events = create.events;
  events.push_back(Note(AgentStream(kAgentA), 7));  // conflicts
  ASSERT_FALSE(batch.Append(events, create.meta, s.ids).ok());
  ASSERT_TRUE(batch.Commit().ok());
  auto a = s.rm->GetAgent(kAgentA);
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->has_value());
  const CfDump dump = DumpReadModels(*s.log);
  for (const auto& [name, rows] : dump) EXPECT_TRUE(rows.empty()) << name;
}

// A sink that refuses one stream's events.
class RefusingSink : public EventSink {
 public:
  Status Apply(const RecordedEvent& event, LogBatch&) override {
    if (event.stream == "refused") return Status::Internal("sink refused");
    return Status();
  }
};

TEST(ReadModelsTest, SinkErrorUndoesTheAppend) {
  TempDir dir;
  Store s = Store::Open(dir.str(), /*attach=*/true);
  ASSERT_NE(s.log, nullptr);
  RefusingSink refusing;
  s.log->AddSink(&refusing);
  const Command create = Scenario()[0];
  LogBatch batch(s.log.get());
  std::vector<NewEvent> events = create.events;
  events.push_back(Note("refused", std::nullopt));
  auto r = batch.Append(events, create.meta, s.ids);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().kind(), ErrorKind::kInternal);
  EXPECT_TRUE(batch.empty());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(s.log->head(), 0u);
  auto a = s.rm->GetAgent(kAgentA);
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->has_value());
}

TEST(ReadModelsTest, CatchUpRebuildsTheSameBytes) {
  TempDir live_dir;
  TempDir rebuilt_dir;
  CfDump live;
  {
    Store s = Store::Open(live_dir.str(), /*attach=*/true);
    ASSERT_NE(s.log, nullptr);
    for (const Command& c : Scenario()) s.Run(c.events, c.meta);
    live = DumpReadModels(*s.log);
  }
  // The same events, written with no read models attached...
  {
    Store s = Store::Open(rebuilt_dir.str(), /*attach=*/false);
    ASSERT_NE(s.log, nullptr);
    for (const Command& c : Scenario()) s.Run(c.events, c.meta);
    const CfDump empty = DumpReadModels(*s.log);
    for (const auto& [name, rows] : empty) EXPECT_TRUE(rows.empty()) << name;
  }
  // ...then caught up.
  Store s = Store::Open(rebuilt_dir.str(), /*attach=*/true);
  ASSERT_NE(s.log, nullptr);
  ASSERT_TRUE(s.rm->CatchUp().ok());
  auto checkpoint = s.rm->Checkpoint();
  ASSERT_TRUE(checkpoint.ok());
  EXPECT_EQ(*checkpoint, s.log->head());
  EXPECT_EQ(s.log->head(), 12u) << "CatchUp appends no events";

  const CfDump rebuilt = DumpReadModels(*s.log);
  EXPECT_FALSE(live.at("rm_agents").empty());
  EXPECT_EQ(live.at("rm_messages").size(), 2u)
      << "four messages, in their two conversations' first pages";
  ExpectSameDump(rebuilt, live);
}

TEST(ReadModelsTest, CatchUpResumesAfterTheCheckpoint) {
  TempDir live_dir;
  TempDir dir;
  const auto scenario = Scenario();
  CfDump live;
  {
    Store s = Store::Open(live_dir.str(), /*attach=*/true);
    ASSERT_NE(s.log, nullptr);
    for (const Command& c : scenario) s.Run(c.events, c.meta);
    live = DumpReadModels(*s.log);
  }
  auto ids = EventIds();  // one id sequence across the three opens
  {
    Store s = Store::Open(dir.str(), /*attach=*/true);
    ASSERT_NE(s.log, nullptr);
    s.ids = ids;
    for (size_t i = 0; i < 5; ++i) s.Run(scenario[i].events, scenario[i].meta);
  }
  {
    Store s = Store::Open(dir.str(), /*attach=*/false);
    ASSERT_NE(s.log, nullptr);
    s.ids = ids;
    for (size_t i = 5; i < scenario.size(); ++i) {
      s.Run(scenario[i].events, scenario[i].meta);
    }
    auto checkpoint = s.rm->Checkpoint();
    ASSERT_TRUE(checkpoint.ok());
    EXPECT_EQ(*checkpoint, 7u) << "the read models stopped at command 5";
  }
  Store s = Store::Open(dir.str(), /*attach=*/true);
  ASSERT_NE(s.log, nullptr);
  ASSERT_TRUE(s.rm->CatchUp().ok());
  ExpectSameDump(DumpReadModels(*s.log), live);
  // A second CatchUp has nothing to do.
  ASSERT_TRUE(s.rm->CatchUp().ok());
  ExpectSameDump(DumpReadModels(*s.log), live);
}

// --- Data keys and erasure ---------------------------------------------------

// The bytes stored for the event at `position`.
std::string StoredEvent(const EventLog& log, uint64_t position) {
  std::string value;
  rocksdb::Status s = log.db()->Get(rocksdb::ReadOptions(), log.cf("events"),
                                    EncodePositionKey(position), &value);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return value;
}

NewEvent Erasure(const std::string& conversation_id, int64_t expected) {
  return {
      ConversationStream(conversation_id), expected,
      ConversationErased{conversation_id, ErasureReason::kDeleted, kT0 + 100}};
}

bool IsOf(const RecordedEvent& e, const std::string& conversation_id) {
  return e.stream == ConversationStream(conversation_id) ||
         e.stream == MessagesStream(conversation_id);
}

TEST_F(EventLogTest, PayloadsOfConversationsAndAgentsAreStoredSealed) {
  std::vector<RecordedEvent> recorded = Commit(OneOfEachType());
  ASSERT_EQ(10u, recorded.size());
  for (const RecordedEvent& e : recorded) {
    const std::string stored = StoredEvent(*log_, e.position);
    EXPECT_NE(std::string::npos, stored.find(e.stream)) << "the envelope";
    for (const std::string& clear :
         {std::string("Support"), std::string("Onboarding"),
          std::string("Always greet"), kUnicode, std::string("Renamed"),
          std::string(1000, 'x')}) {
      EXPECT_EQ(std::string::npos, stored.find(clear))
          << EventTypeName(e.payload) << " stores \"" << clear.substr(0, 20)
          << "\" in the clear";
    }
  }
  // And they read back as they were written.
  std::vector<RecordedEvent> read = ReadAll();
  ASSERT_EQ(recorded.size(), read.size());
  for (size_t i = 0; i < read.size(); ++i) {
    EXPECT_FALSE(read[i].erased);
    ExpectSameEvent(read[i], recorded[i]);
  }
}

TEST_F(EventLogTest, AnErasureMakesItsConversationsEarlierPayloadsUnreadable) {
  std::vector<RecordedEvent> before = Commit(OneOfEachType());
  Commit({Erasure(kConvId, 3)});
  std::vector<RecordedEvent> after = ReadAll();
  ASSERT_EQ(11u, after.size());
  for (size_t i = 0; i < before.size(); ++i) {
    SCOPED_TRACE(std::string(EventTypeName(before[i].payload)) + " at " +
                 std::to_string(before[i].position));
    EXPECT_EQ(before[i].stream, after[i].stream);
    EXPECT_EQ(before[i].revision, after[i].revision);
    EXPECT_EQ(before[i].event_id, after[i].event_id);
    EXPECT_EQ(EventTypeName(before[i].payload),
              EventTypeName(after[i].payload));
    if (IsOf(before[i], kConvId)) {
      EXPECT_TRUE(after[i].erased);
      EventPayload empty = after[i].payload;
      std::visit([](auto& p) { p = std::decay_t<decltype(p)>{}; }, empty);
      EXPECT_TRUE(after[i].payload == empty) << "an empty payload";
    } else {
      EXPECT_FALSE(after[i].erased) << "the agent is not erased";
      ExpectSameEvent(after[i], before[i]);
    }
  }
  EXPECT_FALSE(after[10].erased) << "the erasure itself stays readable";
  EXPECT_TRUE(after[10].payload ==
              EventPayload(ConversationErased{kConvId, ErasureReason::kDeleted,
                                              kT0 + 100}));
  // Every read path agrees.
  auto one = log_->Read(4);
  ASSERT_TRUE(one.ok() && one->has_value());
  EXPECT_TRUE((*one)->erased);
  std::vector<RecordedEvent> into;
  auto n = log_->ReadRangeInto(1, 100, into);
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(11u, *n);
  for (size_t i = 0; i < 11; ++i) EXPECT_EQ(after[i].erased, into[i].erased);
}

TEST_F(EventLogTest, NothingCanBeAppendedToAnErasedConversation) {
  Commit(OneOfEachType());
  Commit({Erasure(kConvId, 3)});
  const uint64_t head = log_->head();
  for (const NewEvent& late :
       {Note(MessagesStream(kConvId), std::nullopt), Erasure(kConvId, 4)}) {
    LogBatch batch(log_.get());
    auto r = batch.Append({late}, Meta(), ids_);
    EXPECT_EQ(ErrorKind::kNotFound, r.status().kind()) << r.status().ToString();
    EXPECT_TRUE(batch.Commit().ok());
  }
  EXPECT_EQ(head, log_->head());
}

TEST(EventCodecTest, ASealedPayloadOpensOnlyWithItsKeyAtItsPlace) {
  RecordedEvent e;
  e.position = 7;
  e.stream = MessagesStream(kConvId);
  e.event_id = "evt-7";
  e.payload = MessageAppended{SampleMessage(MessageRole::kUser, kUnicode, kT0)};
  PayloadSeal seal{DataKey{1, 2, 3}, DataNonce{9}};
  auto encoded = EncodeSealedEvent(e, seal);
  ASSERT_TRUE(encoded.ok()) << encoded.status().ToString();
  const std::string& bytes = *encoded;
  auto keys_of = [](DataKey key) -> DataKeyLookup {
    return [key](std::string_view subject) -> Result<std::optional<DataKey>> {
      EXPECT_EQ("c" + kConvId, subject);
      return std::optional<DataKey>(key);
    };
  };
  const DataKeyLookup right = keys_of(seal.key);
  auto opened = DecodeEvent(bytes, &right);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_FALSE(opened->erased);
  EXPECT_TRUE(opened->payload == e.payload);

  const DataKeyLookup wrong = keys_of(DataKey{1, 2, 4});
  EXPECT_EQ(ErrorKind::kCorruption, DecodeEvent(bytes, &wrong).status().kind());

  auto without = DecodeEvent(bytes);
  ASSERT_TRUE(without.ok());
  EXPECT_TRUE(without->erased);
  EXPECT_TRUE(std::holds_alternative<MessageAppended>(without->payload));

  // The same sealed bytes in an envelope at another position do not open.
  const fb::EventEnvelope* env = fb::GetEventEnvelope(bytes.data());
  flatbuffers::FlatBufferBuilder b;
  auto moved = fb::CreateEventEnvelope(
      b, 8, b.CreateString(e.stream), 0, b.CreateString(e.event_id), 0, 0, 0,
      env->payload_type(), 0,
      b.CreateVector(env->sealed_payload()->data(),
                     env->sealed_payload()->size()));
  fb::FinishEventEnvelopeBuffer(b, moved);
  const std::string moved_bytes(
      reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
  EXPECT_EQ(ErrorKind::kCorruption,
            DecodeEvent(moved_bytes, &right).status().kind());
}

// A scan keeps the keyed ciphers of recent subjects (DataKeyOpener): with
// more subjects than it keeps, interleaved, keys that share a kept cipher,
// a wrong key and a destroyed one, it decodes what DecodeEvent decodes.
TEST(EventCodecTest, DecoderOpensInterleavedSubjectsAsDecodeEventDoes) {
  constexpr int kSubjects = 150;
  std::map<std::string, std::optional<DataKey>> keys;
  std::vector<std::string> encoded;
  uint64_t position = 1;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < kSubjects; ++i) {
      const std::string conv =
          kConvId.substr(0, kConvId.size() - 3) + std::to_string(100 + i);
      DataKey key{static_cast<uint8_t>(i % 70), static_cast<uint8_t>(i)};
      keys["c" + conv] = key;
      RecordedEvent e;
      e.position = position++;
      e.stream = MessagesStream(conv);
      e.event_id = "evt-" + std::to_string(e.position);
      e.payload = MessageAppended{SampleMessage(
          MessageRole::kUser, "turn " + std::to_string(e.position), kT0)};
      auto bytes = EncodeSealedEvent(
          e, PayloadSeal{key, DataNonce{static_cast<uint8_t>(round)}});
      ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
      encoded.push_back(*bytes);
    }
  }
  // Subject 3's key is wrong from here on, subject 4's destroyed.
  const std::string wrong = "c" + kConvId.substr(0, kConvId.size() - 3) + "103";
  const std::string gone = "c" + kConvId.substr(0, kConvId.size() - 3) + "104";
  (*keys[wrong])[31] ^= 1;
  keys[gone] = std::nullopt;
  const DataKeyLookup lookup =
      [&keys](std::string_view subject) -> Result<std::optional<DataKey>> {
    return keys.at(std::string(subject));
  };
  EventDecoder decoder;
  RecordedEvent event;
  int corrupt = 0;
  int erased = 0;
  for (const std::string& bytes : encoded) {
    auto want = DecodeEvent(bytes, &lookup);
    const Status got = decoder.Decode(bytes, event, &lookup);
    if (!want.ok()) {
      EXPECT_EQ(ErrorKind::kCorruption, want.status().kind());
      EXPECT_EQ(ErrorKind::kCorruption, got.kind());
      ++corrupt;
      continue;
    }
    ASSERT_TRUE(got.ok()) << got.ToString();
    ExpectSameEvent(event, *want);
    if (event.erased) {
      ++erased;
    } else {
      EXPECT_EQ("turn " + std::to_string(event.position),
                std::get<MessageAppended>(event.payload).message.content);
    }
  }
  EXPECT_EQ(3, corrupt) << "subject 3's events, one a round";
  EXPECT_EQ(3, erased) << "subject 4's events, one a round";
}

TEST(ReadModelsTest, ARebuildAfterAnErasureGivesTheSameBytes) {
  std::vector<Command> scenario = Scenario();
  // kConv1 was created, renamed and completed: revision 2.
  scenario.push_back({{Erasure(kConv1, 2)}, Meta("alice", "", kT0 + 30)});
  TempDir live_dir;
  TempDir rebuilt_dir;
  CfDump live;
  {
    Store s = Store::Open(live_dir.str(), /*attach=*/true);
    ASSERT_NE(s.log, nullptr);
    for (const Command& c : scenario) s.Run(c.events, c.meta);
    live = DumpReadModels(*s.log);
  }
  EXPECT_EQ(1u, live.at("rm_conversations").size()) << "only kConv2 is left";
  EXPECT_EQ(1u, live.at("rm_messages").size());
  EXPECT_EQ(1u, live.at("rm_message_ids").size());
  EXPECT_EQ(1u, live.at("rm_conversations_by_owner").size())
      << "kConv2 under bob";
  EXPECT_EQ(1u, live.at("rm_all_conversations").size()) << "kConv2 for admins";
  {
    Store s = Store::Open(rebuilt_dir.str(), /*attach=*/false);
    ASSERT_NE(s.log, nullptr);
    for (const Command& c : scenario) s.Run(c.events, c.meta);
  }
  // Caught up one batch at a time, and bulk-built as a rebuild does.
  for (bool bulk : {false, true}) {
    SCOPED_TRACE(bulk ? "BuildFrom" : "CatchUp");
    Store s = Store::Open(rebuilt_dir.str(), /*attach=*/true);
    ASSERT_NE(s.log, nullptr);
    const std::string prefix = bulk ? "bulk_" : "rm_";
    ASSERT_TRUE(
        s.log->CreateColumnFamilies(ReadModels::ColumnFamilies(prefix)).ok());
    ReadModels rm(s.log.get(), prefix);
    ASSERT_TRUE((bulk ? rm.BuildFrom(*s.log, s.log->head())
                      : rm.CatchUpFrom(*s.log, s.log->head()))
                    .ok());
    CfDump rebuilt;
    for (const std::string& name : ReadModels::ColumnFamilies(prefix)) {
      std::unique_ptr<rocksdb::Iterator> it(
          s.log->db()->NewIterator(WholeTableReadOptions(), s.log->cf(name)));
      auto& rows = rebuilt["rm_" + name.substr(prefix.size())];
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        rows.emplace_back(it->key().ToString(), it->value().ToString());
      }
    }
    ExpectSameDump(rebuilt, live);
  }
}

TEST(ReadModelsColumnFamilyTest, ANameSplitsIntoItsGenerationAndTable) {
  using Split = std::pair<std::string_view, std::string_view>;
  EXPECT_EQ(ReadModels::SplitColumnFamilyName("rm_messages"),
            Split("rm_", "messages"));
  EXPECT_EQ(ReadModels::SplitColumnFamilyName("rm12_conversations_by_owner"),
            Split("rm12_", "conversations_by_owner"));
  for (std::string_view other :
       {"messages", "api_keys", "rm_", "rm_message", "rmx_messages",
        "rm2messages", "rm2_messages_old", "events"}) {
    EXPECT_FALSE(ReadModels::SplitColumnFamilyName(other)) << other;
  }
}

// The read models' memtable options must reach a generation a rebuild
// creates later, not only those that exist at open.
TEST(ReadModelsColumnFamilyTest, TablesCreatedLaterGetTheTunedOptions) {
  TempDir dir;
  EventLogOptions options = LogOptions();
  options.tune_column_family = ReadModels::TuneColumnFamily;
  std::unique_ptr<EventLog> log = MustOpen(dir.str(), options);
  ASSERT_TRUE(
      log->CreateColumnFamilies(ReadModels::ColumnFamilies("rm2_")).ok());
  for (std::string_view prefix : {"rm_", "rm2_"}) {
    SCOPED_TRACE(std::string(prefix));
    auto opts = [&](const char* table) {
      return log->db()->GetOptions(log->cf(std::string(prefix) + table));
    };
    EXPECT_NE(opts("messages").memtable_insert_with_hint_prefix_extractor,
              nullptr);
    // Message ids: one skip list, each insert from where the last went.
    EXPECT_STREQ("SkipListFactory",
                 opts("message_ids").memtable_factory->Name());
    EXPECT_NE(opts("message_ids").memtable_insert_with_hint_prefix_extractor,
              nullptr);
    EXPECT_GT(opts("conversations").memtable_prefix_bloom_size_ratio, 0);
    EXPECT_GT(opts("all_conversations").memtable_prefix_bloom_size_ratio, 0);
    // A list page seeks each sorted run: everyone's items leave level 0 at
    // once; an owner's (keys of many owners interleaved) do not.
    EXPECT_EQ(1, opts("all_conversations").level0_file_num_compaction_trigger);
    EXPECT_EQ(1, opts("all_agents").level0_file_num_compaction_trigger);
    EXPECT_LT(
        1, opts("conversations_by_owner").level0_file_num_compaction_trigger);
    EXPECT_EQ(opts("agents").memtable_insert_with_hint_prefix_extractor,
              nullptr);
  }
}

}  // namespace
}  // namespace convstore
