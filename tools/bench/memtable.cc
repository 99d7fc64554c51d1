// convstore_bench_memtable: what a row of the tables each append writes one
// row to (message ids, stream revisions) costs RocksDB from its memtable
// insert to its flush into a table file, with the options the server gives
// the table ("served") against the other memtable layouts. The flush is
// where a hashed memtable pays: it sorts every row then, which an insert
// count alone (tools/bench/instructions, too short a run to flush) misses.
// Usage: convstore_bench_memtable [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <rocksdb/db.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/write_batch.h>

#include <array>
#include <optional>
#include <random>
#include <string>

#include "core/ids.h"
#include "eventlog/event_log.h"
#include "projections/read_models.h"
#include "tools/store_access.h"

namespace convstore {
namespace {

// Rows per memtable flushed: about what the server's tables hold between two
// flushes under the 64-connection append load.
constexpr int kRows = 200'000;
// Rows per write: the writer's mean group under that load.
constexpr int kRowsPerWrite = 22;

enum class Table { kMessageIds, kStreams };
enum class Layout { kServed, kHashed, kOneSkipList };

std::string MessageIdsCf() {
  return std::string(kDefaultReadModelsPrefix) + "message_ids";
}

// Row i of the table, as an append at 20,000 appends/s writes it.
void RowOf(Table table, int i, std::mt19937_64& rng, std::string& key,
           std::string& value) {
  if (table == Table::kMessageIds) {
    // A new message's id (UUIDv7: its milliseconds, then random bits) ->
    // its row's key (conversation, position).
    std::array<uint8_t, 10> random;
    for (uint8_t& b : random) b = static_cast<uint8_t>(rng());
    key = "msg-" + MakeUuidV7(1'700'000'000'000 + i / 20, random);
    value.assign(48, 'k');
  } else {
    // One of 1,000 active conversations' message streams -> its revision.
    const uint64_t conversation = rng() % 1000;
    key = "messages-conv-0189406c-94c4-7000-8000-" +
          std::to_string(100'000'000'000 + conversation);
    value = EncodePositionKey(static_cast<uint64_t>(i));
  }
}

void InsertAndFlush(benchmark::State& state, Table table, Layout layout) {
  const std::string cf_name =
      table == Table::kMessageIds ? MessageIdsCf() : "streams";
  EventLogOptions options;
  options.extra_column_families = ReadModels::ColumnFamilies();
  options.tune_column_family = [&](std::string_view name,
                                   rocksdb::ColumnFamilyOptions& cf) {
    ReadModels::TuneColumnFamily(name, cf);  // as served
    if (name != cf_name || layout == Layout::kServed) return;
    cf.prefix_extractor.reset();
    cf.memtable_factory.reset(new rocksdb::SkipListFactory());
    cf.memtable_insert_with_hint_prefix_extractor.reset();
    if (layout == Layout::kHashed) UseMemtablePerKey(cf);
  };
  std::mt19937_64 rng(42);
  std::string key, value;
  for (auto _ : state) {
    state.PauseTiming();
    std::optional<tools::ScratchDir> scratch;
    scratch.emplace("bench-memtable");
    auto log = EventLog::Open(scratch->path() + "/data", options);
    if (!log.ok()) {
      state.SkipWithError(log.status().ToString().c_str());
      return;
    }
    rocksdb::DB* db = (*log)->db();
    rocksdb::ColumnFamilyHandle* cf = (*log)->cf(cf_name);
    rocksdb::WriteOptions no_wal;
    no_wal.disableWAL = true;
    state.ResumeTiming();
    rocksdb::WriteBatch batch;
    for (int i = 0; i < kRows; ++i) {
      RowOf(table, i, rng, key, value);
      batch.Put(cf, key, value);
      if (batch.Count() == kRowsPerWrite || i + 1 == kRows) {
        db->Write(no_wal, &batch).PermitUncheckedError();
        batch.Clear();
      }
    }
    db->Flush(rocksdb::FlushOptions(), cf).PermitUncheckedError();
    state.PauseTiming();
    log->reset();  // closed before its directory goes
    scratch.reset();
    state.ResumeTiming();
  }
  // Time per row, printed scaled (us); real time, as the flush runs on
  // RocksDB's thread.
  state.counters["per_row"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * kRows,
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void RegisterAll() {
  for (auto [table, table_name] : {std::pair{Table::kMessageIds, "message_ids"},
                                   std::pair{Table::kStreams, "streams"}}) {
    for (auto [layout, layout_name] :
         {std::pair{Layout::kServed, "served"},
          std::pair{Layout::kHashed, "hashed"},
          std::pair{Layout::kOneSkipList, "one_skip_list"}}) {
      benchmark::RegisterBenchmark(
          (std::string("BM_InsertAndFlush/") + table_name + "/" + layout_name)
              .c_str(),
          // By init-capture: clang before 16 cannot capture a structured
          // binding.
          [t = table, l = layout](benchmark::State& state) {
            InsertAndFlush(state, t, l);
          })
          ->Iterations(3)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace
}  // namespace convstore

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  convstore::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
