// convstore events export: event envelopes in position order, from a
// secondary RocksDB instance so that it runs beside a live server.
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <thread>

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

  constexpr size_t kChunk = 4096;
  uint64_t next = f.from;
  uint64_t written = 0;
  auto start = std::chrono::steady_clock::now();
  auto last_progress = start;
  int rc = 0;
  std::string line;
  while (!g_interrupted) {
    auto events = (*log)->ReadRange(next, kChunk);
    if (!events.ok()) {
      std::cerr << "error: reading the log at " << next << ": "
                << events.status().message() << "\n";
      rc = 1;
      break;
    }
    bool reached_to = false;
    for (const RecordedEvent& e : *events) {
      if (f.to != 0 && e.position > f.to) {
        reached_to = true;
        break;
      }
      next = e.position + 1;
      if (!f.stream.empty() && e.stream != f.stream) continue;
      if (!f.type.empty() && EventTypeName(e.payload) != f.type) continue;
      if (csv) {
        line = EventToCsvRow(e);
      } else {
        line = boost::json::serialize(EventToJson(e));
        line.push_back('\n');
      }
      std::fwrite(line.data(), 1, line.size(), out);
      ++written;
    }
    auto now = std::chrono::steady_clock::now();
    if (progress && now - last_progress > std::chrono::milliseconds(500)) {
      double secs = std::chrono::duration<double>(now - start).count();
      std::fprintf(stderr, "\rexported %llu events, position %llu, %.0f events/s",
                   static_cast<unsigned long long>(written),
                   static_cast<unsigned long long>(next - 1), written / secs);
      last_progress = now;
    }
    if (reached_to) break;
    if (events->size() < kChunk) {
      if (!f.follow) break;
      if (std::fflush(out) != 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      Status s = (*log)->CatchUpWithPrimary();
      if (!s.ok()) {
        std::cerr << "error: " << s.message() << "\n";
        rc = 1;
        break;
      }
    }
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
