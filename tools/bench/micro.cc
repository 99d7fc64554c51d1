// convstore_bench_micro: Google Benchmark micro-benchmarks of the hot pure
// functions: event encode/decode (FlatBuffers) and the JSON of a 50-message
// list, built the way the server builds it (stored rendered messages joined)
// against rendering each message again and against a parse + re-serialize.
// Usage: convstore_bench_micro [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/model_json.h"
#include "eventlog/event_codec.h"

namespace convstore {
namespace {

Message SampleMessage(int i) {
  Message m;
  m.id = "msg-0189406c-94c4-7000-8000-0000000000" + std::to_string(10 + i % 90);
  m.conversation_id = "conv-0189406c-94c4-7000-8000-0000000000c1";
  m.role = i % 2 ? MessageRole::kAssistant : MessageRole::kUser;
  m.content = std::string(200, 'x');  // a 200-byte spoken turn
  m.created_at_ms = 1689003005123 + i;
  return m;
}

RecordedEvent SampleEvent() {
  RecordedEvent e;
  e.position = 123456;
  e.stream = "messages-conv-0189406c-94c4-7000-8000-0000000000c1";
  e.revision = 42;
  e.event_id = "0189406c-94c4-7000-8000-0000000000e1";
  e.recorded_at_ms = 1689003005123;
  e.actor = "user-alice";
  e.payload = MessageAppended{SampleMessage(1)};
  return e;
}

void BM_EncodeMessageEvent(benchmark::State& state) {
  const RecordedEvent event = SampleEvent();
  for (auto _ : state) benchmark::DoNotOptimize(EncodeEvent(event));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EncodeMessageEvent);

void BM_DecodeMessageEvent(benchmark::State& state) {
  const std::string bytes = EncodeEvent(SampleEvent());
  for (auto _ : state) benchmark::DoNotOptimize(DecodeEvent(bytes));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeMessageEvent);

// RocksDB hands values out at any address; decoding then copies first.
void BM_DecodeMessageEventUnaligned(benchmark::State& state) {
  const std::string bytes = " " + EncodeEvent(SampleEvent());
  const std::string_view unaligned = std::string_view(bytes).substr(1);
  for (auto _ : state) benchmark::DoNotOptimize(DecodeEvent(unaligned));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeMessageEventUnaligned);

std::vector<std::string> RenderedMessages(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(RenderMessage(SampleMessage(i)));
  return out;
}

// What GET .../messages?limit= does: the stored bytes, joined.
void BM_MessageListJoinStored(benchmark::State& state) {
  const auto stored = RenderedMessages(50);
  for (auto _ : state) benchmark::DoNotOptimize(JoinJsonArray(stored));
  state.SetItemsProcessed(state.iterations() * 50);
}
BENCHMARK(BM_MessageListJoinStored);

// The alternative: render every message from its fields on each read.
void BM_MessageListRenderEach(benchmark::State& state) {
  std::vector<Message> messages;
  for (int i = 0; i < 50; ++i) messages.push_back(SampleMessage(i));
  for (auto _ : state) {
    std::vector<std::string> rendered;
    for (const Message& m : messages) rendered.push_back(RenderMessage(m));
    benchmark::DoNotOptimize(JoinJsonArray(rendered));
  }
  state.SetItemsProcessed(state.iterations() * 50);
}
BENCHMARK(BM_MessageListRenderEach);

// The naive alternative: parse stored JSON and serialize the array again.
void BM_MessageListParseAndSerialize(benchmark::State& state) {
  const auto stored = RenderedMessages(50);
  for (auto _ : state) {
    boost::json::array list;
    for (const std::string& m : stored) list.push_back(boost::json::parse(m));
    benchmark::DoNotOptimize(boost::json::serialize(list));
  }
  state.SetItemsProcessed(state.iterations() * 50);
}
BENCHMARK(BM_MessageListParseAndSerialize);

}  // namespace
}  // namespace convstore

BENCHMARK_MAIN();
