// convstore events export: event envelopes in position order, from a
// secondary RocksDB instance so that it runs beside a live server.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <iostream>
#include <system_error>
#include <thread>
#include <vector>

#include "eventlog/event_json.h"
#include "eventlog/event_log.h"
#include "tools/commands.h"
#include "tools/store_access.h"

namespace convstore::tools {
namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void OnInterrupt(int) { g_interrupted = true; }

}  // namespace

int RunEventsExport(const ExportFlags& f) {
  if (f.to != 0 && f.to < f.from) {
    std::cerr << "error: --to (" << f.to << ") is before --from (" << f.from
              << ")\n";
    return 2;
  }
  ScratchDir scratch("export");
  auto log = OpenSecondary(f.data_dir, scratch);
  if (!log.ok()) {
    std::cerr << "error: cannot open " << f.data_dir << ": "
              << log.status().message() << "\n";
    return 1;
  }

  FILE* out = stdout;
  if (!f.out.empty()) {
    out = std::fopen(f.out.c_str(), "wb");
    if (out == nullptr) {
      std::cerr << "error: cannot write " << f.out << ": "
                << std::strerror(errno) << "\n";
      return 1;
    }
  }
  const bool csv = f.format == "csv";
  const bool progress = isatty(STDERR_FILENO) != 0;
  if (csv) std::fputs(EventCsvHeader().c_str(), out);
  if (f.follow) {
    std::signal(SIGINT, OnInterrupt);
    std::signal(SIGTERM, OnInterrupt);
  }

  // Chunks of events are read (RocksDB, decoding) on this thread and
  // rendered (filters, JSON, CSV) on others, which takes about as long: the
  // export runs on every core. Chunks are written in order, each once it is
  // whole, so a read error leaves out the whole chunk it hit, as it always
  // has.
  constexpr size_t kChunk = 4096;
  constexpr size_t kChunksInFlight = 3;
  struct Chunk {
    std::vector<RecordedEvent> events;  // [0, size) are this chunk's
    size_t size = 0;
    EventTextWriter text;
    uint64_t rendered_events = 0;
    // Valid while the chunk waits to be written. Declared last, so destroyed
    // first: a render still running ends before the rest of its chunk goes.
    std::future<void> rendered;
  };
  std::vector<Chunk> chunks(kChunksInFlight);
  size_t oldest = 0;   // the chunk that is written next
  size_t pending = 0;  // chunks rendering or rendered, not yet written
  uint64_t written = 0;
  auto write_oldest = [&] {
    Chunk& c = chunks[oldest];
    c.rendered.get();
    std::fwrite(c.text.text().data(), 1, c.text.text().size(), out);
    c.text.Clear();
    written += c.rendered_events;
    oldest = (oldest + 1) % chunks.size();
    --pending;
  };
  auto render = [&f, csv](Chunk& c) {
    c.rendered_events = 0;
    for (size_t i = 0; i < c.size; ++i) {
      const RecordedEvent& e = c.events[i];
      if (!f.stream.empty() && e.stream != f.stream) continue;
      if (!f.type.empty() && EventTypeName(e.payload) != f.type) continue;
      if (csv) {
        c.text.AppendCsvRow(e);
      } else {
        c.text.AppendJsonLine(e);
      }
      ++c.rendered_events;
    }
  };

  uint64_t next = f.from;
  auto start = std::chrono::steady_clock::now();
  auto last_progress = start;
  int rc = 0;
  while (!g_interrupted) {
    if (pending == chunks.size()) write_oldest();
    Chunk& chunk = chunks[(oldest + pending) % chunks.size()];
    auto read = (*log)->ReadRangeInto(next, kChunk, chunk.events);
    if (!read.ok()) {
      std::cerr << "error: reading the log at " << next << ": "
                << read.status().message() << "\n";
      rc = 1;
      break;
    }
    chunk.size = *read;
    bool reached_to = false;
    if (f.to != 0) {
      for (size_t i = 0; i < chunk.size; ++i) {
        if (chunk.events[i].position > f.to) {
          chunk.size = i;
          reached_to = true;
          break;
        }
      }
    }
    if (chunk.size > 0) next = chunk.events[chunk.size - 1].position + 1;
    try {
      chunk.rendered = std::async(std::launch::async, render, std::ref(chunk));
    } catch (const std::system_error&) {
      // No thread to be had: render it here, when it is written.
      chunk.rendered =
          std::async(std::launch::deferred, render, std::ref(chunk));
    }
    ++pending;
    auto now = std::chrono::steady_clock::now();
    if (progress && now - last_progress > std::chrono::milliseconds(500)) {
      double secs = std::chrono::duration<double>(now - start).count();
      std::fprintf(stderr,
                   "\rexported %llu events, position %llu, %.0f events/s",
                   static_cast<unsigned long long>(written),
                   static_cast<unsigned long long>(next - 1), written / secs);
      last_progress = now;
    }
    if (reached_to) break;
    if (*read < kChunk) {
      if (!f.follow) break;
      while (pending > 0) write_oldest();
      if (std::fflush(out) != 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      Status s = (*log)->CatchUpWithPrimary();
      if (!s.ok() &&
          s.message().find("unknown column family") != std::string::npos) {
        // RocksDB's secondary cannot follow the MANIFEST once the server
        // flushes a column family created after the secondary opened
        // (facebook/rocksdb#12821): an online rebuild does. The log is fine;
        // opening the secondary again sees the new column families.
        log->reset();
        log = OpenSecondary(f.data_dir, scratch);
        s = log.ok() ? Status() : log.status();
      }
      if (!s.ok()) {
        std::cerr << "error: " << s.message() << "\n";
        rc = 1;
        break;
      }
    }
  }
  while (pending > 0) write_oldest();
  if (progress) std::fputc('\n', stderr);
  if (std::fflush(out) != 0 || std::ferror(out)) {
    std::cerr << "error: writing the export failed: " << std::strerror(errno)
              << "\n";
    rc = 1;
  }
  if (out != stdout) std::fclose(out);
  return rc;
}

}  // namespace convstore::tools
