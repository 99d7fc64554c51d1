// convstore events export: event envelopes in position order, from a
// secondary RocksDB instance so that it runs beside a live server.
#include <unistd.h>

#include <algorithm>
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

  // The log's positions are gapless, so the export is cut into chunks of
  // positions known before any is read, and each chunk is read (RocksDB,
  // decrypting, decoding) and rendered (filters, JSON, CSV) by one task:
  // chunks run on every core at once. They are written in order, each once
  // it is whole, so a read error leaves out the whole chunk it hit and
  // everything after it.
  constexpr uint64_t kChunk = 4096;
  const size_t in_flight =
      std::clamp<size_t>(std::thread::hardware_concurrency() + 1, 2, 8);
  struct Chunk {
    std::vector<RecordedEvent> events;  // reused from chunk to chunk
    DataKeyCache keys;  // each slot scans forward, so one cache per slot
    EventTextWriter text;
    uint64_t first = 0, last = 0;  // positions [first, last]
    uint64_t rendered_events = 0;
    Status status;
    // Valid while the chunk waits to be written. Declared last, so destroyed
    // first: a task still running ends before the rest of its chunk goes.
    std::future<void> done;
  };
  std::vector<Chunk> chunks(in_flight);
  auto export_chunk = [&f, csv, &log](Chunk& c) {
    c.rendered_events = 0;
    c.status = Status();
    auto read =
        (*log)->ReadRangeInto(c.first, c.last - c.first + 1, c.events, &c.keys);
    if (!read.ok()) {
      c.status = read.status();
      return;
    }
    for (size_t i = 0; i < *read; ++i) {
      const RecordedEvent& e = c.events[i];
      if (e.position > c.last) break;
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

  size_t oldest = 0;   // the chunk that is written next
  size_t pending = 0;  // chunks being exported or exported, not yet written
  uint64_t written = 0;
  int rc = 0;
  // Writes the oldest chunk; false (and rc set) when it could not be read.
  auto write_oldest = [&]() -> bool {
    Chunk& c = chunks[oldest];
    c.done.get();
    oldest = (oldest + 1) % chunks.size();
    --pending;
    if (!c.status.ok()) {
      std::cerr << "error: reading the log at " << c.first << ": "
                << c.status.message() << "\n";
      rc = 1;
      return false;
    }
    std::fwrite(c.text.text().data(), 1, c.text.text().size(), out);
    c.text.Clear();
    written += c.rendered_events;
    return true;
  };
  // The last position to export for now: the head, or --to before it.
  auto end_now = [&f, &log] {
    const uint64_t head = (*log)->head();
    return f.to != 0 ? std::min(f.to, head) : head;
  };

  uint64_t next = std::max<uint64_t>(f.from, 1);
  uint64_t end = end_now();
  auto start = std::chrono::steady_clock::now();
  auto last_progress = start;
  while (!g_interrupted) {
    if (next <= end && pending < chunks.size()) {
      Chunk& chunk = chunks[(oldest + pending) % chunks.size()];
      chunk.first = next;
      chunk.last = std::min(end, next + kChunk - 1);
      next = chunk.last + 1;
      try {
        chunk.done =
            std::async(std::launch::async, export_chunk, std::ref(chunk));
      } catch (const std::system_error&) {
        // No thread to be had: export it here, when it is written.
        chunk.done =
            std::async(std::launch::deferred, export_chunk, std::ref(chunk));
      }
      ++pending;
      continue;
    }
    if (pending > 0) {
      if (!write_oldest()) break;
      auto now = std::chrono::steady_clock::now();
      if (progress && now - last_progress > std::chrono::milliseconds(500)) {
        double secs = std::chrono::duration<double>(now - start).count();
        std::fprintf(
            stderr, "\rexported %llu events, position %llu, %.0f events/s",
            static_cast<unsigned long long>(written),
            static_cast<unsigned long long>(
                chunks[(oldest + chunks.size() - 1) % chunks.size()].last),
            written / secs);
        last_progress = now;
      }
      continue;
    }
    // Everything up to `end` is written.
    if (!f.follow || (f.to != 0 && end >= f.to)) break;
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
    end = end_now();
  }
  // Interrupted: what was read is written. Failed: the chunks under way
  // finish, and are dropped.
  while (rc == 0 && pending > 0 && write_oldest()) {
  }
  for (; pending > 0; --pending, oldest = (oldest + 1) % chunks.size()) {
    chunks[oldest].done.wait();
  }
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
