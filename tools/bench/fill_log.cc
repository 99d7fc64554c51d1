// convstore_bench_fill: writes a realistic log of N events into a new data
// dir, fast, for the rebuild/export benchmarks: agents, conversations of 50
// messages of 200 bytes each, through the real LogBatch with the read models
// attached (so the dir is what a server would have written).
// Usage: convstore_bench_fill DATA_DIR EVENTS
#include <chrono>
#include <iostream>
#include <string>

#include "core/ids.h"
#include "eventlog/event_log.h"
#include "http/api_keys.h"
#include "projections/rebuild.h"

using namespace convstore;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: convstore_bench_fill DATA_DIR EVENTS\n";
    return 2;
  }
  const std::string dir = argv[1];
  const uint64_t target = std::stoull(argv[2]);
  auto log = EventLog::Open(dir, EventLogOptions());
  if (!log.ok()) {
    std::cerr << "error: " << log.status().ToString() << "\n";
    return 1;
  }
  auto rm = OpenActiveReadModels(**log);
  if (!rm.ok()) {
    std::cerr << "error: " << rm.status().ToString() << "\n";
    return 1;
  }
  (*log)->AddSink(rm->get());

  const int64_t now = http::NowMillis();
  uint64_t seq = 0;
  auto uuid = [&] {
    return http::NewUuid(now + static_cast<int64_t>(seq++ / 1000));
  };
  const std::string content(200, 'x');
  EventMeta meta{"bench-user", "", now};
  auto start = std::chrono::steady_clock::now();

  Agent agent;
  agent.id = uuid();
  agent.name = "bench";
  agent.created_by = meta.actor;
  agent.created_at_ms = agent.updated_at_ms = now;
  std::vector<NewEvent> events = {
      {AgentStream(agent.id), NewEvent::kNoStream, AgentCreated{agent}}};

  Conversation conv;
  int in_conversation = 50;  // start a new conversation first
  while ((*log)->head() < target) {
    LogBatch batch(log->get());
    while (batch.head() + events.size() < target && events.size() < 2000) {
      if (in_conversation == 50) {
        conv = Conversation();
        conv.id = "conv-" + uuid();
        conv.agent_id = agent.id;
        conv.title = "Bench conversation";
        conv.created_by = meta.actor;
        conv.created_at_ms = conv.updated_at_ms = now;
        events.push_back({ConversationStream(conv.id), NewEvent::kNoStream,
                          ConversationCreated{conv}});
        in_conversation = 0;
      }
      Message m;
      m.id = "msg-" + uuid();
      m.conversation_id = conv.id;
      m.role =
          in_conversation % 2 ? MessageRole::kAssistant : MessageRole::kUser;
      m.content = content;
      m.created_at_ms = now;
      events.push_back(
          {MessagesStream(conv.id), std::nullopt, MessageAppended{m}});
      ++in_conversation;
    }
    auto appended = batch.Append(events, meta, uuid);
    if (!appended.ok()) {
      std::cerr << "error: " << appended.status().ToString() << "\n";
      return 1;
    }
    Status s = batch.Commit();
    if (!s.ok()) {
      std::cerr << "error: " << s.ToString() << "\n";
      return 1;
    }
    events.clear();
  }
  // As a server that ran for a while: the tables on disk, not in a WAL that
  // the next open (the benchmarked rebuild or export) would replay first.
  std::vector<rocksdb::ColumnFamilyHandle*> tables;
  for (const std::string& name : (*log)->ColumnFamilyNames()) {
    tables.push_back((*log)->cf(name));
  }
  rocksdb::FlushOptions flush;
  flush.wait = true;
  Status flushed = FromRocksStatus((*log)->db()->Flush(flush, tables), "flush");
  if (!flushed.ok()) {
    std::cerr << "error: " << flushed.ToString() << "\n";
    return 1;
  }
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::cout << "wrote " << (*log)->head() << " events in " << secs << " s\n";
  return 0;
}
