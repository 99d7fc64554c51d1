// write_event_seeds GOLDEN_LOG_DIR OUTPUT_DIR
//
// Writes the seed corpus of event_decode_fuzzer: the encoded bytes of every
// event of the golden log (tests/data/golden_log_v1, one event of each type
// at least), one file per position. Run by hand when the schema grows:
//   build/tests/fuzz/write_event_seeds tests/data/golden_log_v1 \
//       tests/fuzz/corpus/event_decode_fuzzer
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "eventlog/event_codec.h"
#include "eventlog/event_log.h"

int main(int argc, char** argv) {
  using namespace convstore;
  if (argc != 3) {
    std::fprintf(stderr,
                 "usage: write_event_seeds GOLDEN_LOG_DIR OUTPUT_DIR\n");
    return 2;
  }
  // Read from a copy: opening a log, even read-only, may touch its files.
  const std::filesystem::path copy =
      std::filesystem::temp_directory_path() / "write_event_seeds_log";
  std::filesystem::remove_all(copy);
  std::filesystem::copy(argv[1], copy);
  EventLogOptions options;
  options.read_only = true;
  options.create_if_missing = false;
  auto log = EventLog::Open(copy.string(), options);
  if (!log.ok()) {
    std::fprintf(stderr, "%s\n", log.status().ToString().c_str());
    return 1;
  }
  auto events = (*log)->ReadRange(1, 100000);
  if (!events.ok()) {
    std::fprintf(stderr, "%s\n", events.status().ToString().c_str());
    return 1;
  }
  std::filesystem::create_directories(argv[2]);
  for (const RecordedEvent& e : *events) {
    std::ofstream out(std::filesystem::path(argv[2]) /
                          ("event-" + std::to_string(e.position)),
                      std::ios::binary);
    out << EncodeEvent(e);
  }
  log->reset();
  std::filesystem::remove_all(copy);
  std::printf("%zu seeds\n", events->size());
  return 0;
}
