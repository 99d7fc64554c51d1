// make_golden_log OUTPUT_DIR
//
// Writes the golden event log of schema version 1 (tests/data/golden_log_v1):
// a small, fully deterministic log holding at least one event of every type,
// written through EventLog + LogBatch with the ReadModels sink attached, as
// the server writes it. Fixed ids, timestamps, actors and event ids; only
// RocksDB's own file names and identity differ between runs.
//
// Run by hand only when the golden log is deliberately recreated; the
// committed copy must never change, and golden_log_test.cc hard-codes every
// value written here. RocksDB's info logs (LOG, LOG.old.*) are removed
// afterwards because they hold host paths.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/model.h"
#include "eventlog/event_log.h"
#include "projections/read_models.h"

namespace convstore {
namespace {

// 2023-07-10T15:30:05.123Z
constexpr int64_t kT = 1689003005123;

const char kAlice[] = "user-alice";
const char kBob[] = "user-bob";
const char kAgentA[] = "0189406c-94c3-7000-8000-0000000000a1";
const char kAgentB[] = "0189406c-94c3-7000-8000-0000000000b1";
const char kConv[] = "conv-0189406c-94c4-7000-8000-0000000000c1";
const char kMsg1[] = "msg-0189406c-94c4-7000-8000-0000000000d1";
const char kMsg2[] = "msg-0189406c-94c4-7000-8000-0000000000d2";
const char kMsg3[] = "msg-0189406c-94c4-7000-8000-0000000000d3";
const char kInstructionsV2[] = "You are a helpful voice assistant. Be brief.";
// "Grüße aus Zürich! 你好，世界 👋🏽 — «ok»?"
const char kUnicode[] =
    "Gr\xC3\xBC\xC3\x9F" "e aus Z\xC3\xBCrich! "
    "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C "
    "\xF0\x9F\x91\x8B\xF0\x9F\x8F\xBD \xE2\x80\x94 \xC2\xAB" "ok\xC2\xBB?";
const char kAssistant[] = "Hello! \"Quoted\"\nNew line\ttab \xE2\x9C\x93";

struct Command {
  std::vector<NewEvent> events;
  EventMeta meta;
};

Message Msg(const char* id, MessageRole role, std::string content,
            int64_t at) {
  Message m;
  m.id = id;
  m.conversation_id = kConv;
  m.role = role;
  m.content = std::move(content);
  m.created_at_ms = at;
  return m;
}

std::vector<Command> GoldenCommands() {
  Agent a;
  a.id = kAgentA;
  a.name = "Golden Agent";
  a.instructions = "You are a helpful voice assistant.";
  a.dispatch_name = "golden-dispatch";
  a.metadata = {{"team", "voice"}, {"tier", "gold"}};
  a.created_by = kAlice;
  a.created_at_ms = a.updated_at_ms = kT;

  Agent b;
  b.id = kAgentB;
  b.name = "Plain Agent";
  b.created_by = kBob;
  b.created_at_ms = b.updated_at_ms = kT + 1000;

  Conversation c;
  c.id = kConv;
  c.agent_id = kAgentA;
  c.title = "Golden Conversation";
  c.created_by = kAlice;
  c.status = ConversationStatus::kActive;
  c.metadata = {{"customer", "42"}};
  c.created_at_ms = c.updated_at_ms = kT + 4000;

  using S = ConversationStatus;
  const std::string agent_a = AgentStream(kAgentA);
  const std::string agent_b = AgentStream(kAgentB);
  const std::string conv = ConversationStream(kConv);
  const std::string msgs = MessagesStream(kConv);
  return {
      {{{agent_a, NewEvent::kNoStream, AgentCreated{a}}},
       {kAlice, "idem-golden-0001", kT}},
      {{{agent_b, NewEvent::kNoStream, AgentCreated{b}}}, {kBob, "", kT + 1000}},
      {{{agent_a, 0,
         AgentUpdated{kAgentA, "Golden Agent v2", kInstructionsV2,
                      "golden-dispatch-v2",
                      {{"team", "voice"}, {"tier", "platinum"}}, kT + 2000}}},
       {kAlice, "", kT + 2000}},
      {{{agent_b, 0, AgentDeleted{kAgentB, kT + 3000}}}, {kBob, "", kT + 3000}},
      {{{conv, NewEvent::kNoStream, ConversationCreated{c}},
        {msgs, NewEvent::kNoStream,
         MessageAppended{
             Msg(kMsg1, MessageRole::kSystem, kInstructionsV2, kT + 4000)}}},
       {kAlice, "idem-golden-0005", kT + 4000}},
      {{{msgs, std::nullopt,
         MessageAppended{Msg(kMsg2, MessageRole::kUser, kUnicode, kT + 5000)}}},
       {kAlice, "", kT + 5000}},
      {{{msgs, std::nullopt,
         MessageAppended{
             Msg(kMsg3, MessageRole::kAssistant, kAssistant, kT + 6000)}}},
       {kAlice, "", kT + 6000}},
      {{{conv, 0,
         ConversationUpdated{kConv,
                             "Golden Conversation \xE2\x9C\x93",
                             {{"customer", "42"}, {"priority", "high"}},
                             kT + 7000}}},
       {kAlice, "", kT + 7000}},
      {{{conv, 1,
         ConversationStatusChanged{kConv, S::kActive, S::kCompleted,
                                   kT + 8000}}},
       {kAlice, "", kT + 8000}},
      {{{conv, 2,
         ConversationStatusChanged{kConv, S::kCompleted, S::kArchived,
                                   kT + 9000}}},
       {kAlice, "", kT + 9000}},
  };
}

int Run(const std::string& dir) {
  namespace fs = std::filesystem;
  if (fs::exists(dir) && !fs::is_empty(dir)) {
    std::fprintf(stderr, "make_golden_log: %s exists and is not empty\n",
                 dir.c_str());
    return 1;
  }
  {
    EventLogOptions options;
    options.extra_column_families = ReadModels::ColumnFamilies();
    auto log = EventLog::Open(dir, options);
    if (!log.ok()) {
      std::fprintf(stderr, "make_golden_log: %s\n",
                   log.status().ToString().c_str());
      return 1;
    }
    ReadModels read_models(log->get());
    (*log)->AddSink(&read_models);
    int next_id = 0;
    auto event_id = [&next_id] {
      char buf[64];
      std::snprintf(buf, sizeof buf, "0189406c-94c3-7000-8000-00000000e%03d",
                    ++next_id);
      return std::string(buf);
    };
    for (const Command& c : GoldenCommands()) {
      LogBatch batch(log->get());
      auto r = batch.Append(c.events, c.meta, event_id);
      Status s = r.ok() ? batch.Commit() : r.status();
      if (!s.ok()) {
        std::fprintf(stderr, "make_golden_log: %s\n", s.ToString().c_str());
        return 1;
      }
    }
    std::printf("make_golden_log: wrote %llu events to %s\n",
                static_cast<unsigned long long>((*log)->head()), dir.c_str());
  }  // closes the log
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name == "LOG" || name.rfind("LOG.old.", 0) == 0) fs::remove(entry.path());
  }
  return 0;
}

}  // namespace
}  // namespace convstore

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_golden_log OUTPUT_DIR\n");
    return 2;
  }
  return convstore::Run(argv[1]);
}
