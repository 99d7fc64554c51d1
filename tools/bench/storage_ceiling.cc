// convstore_bench_storage: the storage ceiling that convstore's append path
// is measured against. Synced RocksDB writes of one event-sized value (key:
// 8-byte position) on the disk holding DIR, with RocksDB's default options:
//   (a) one thread, one Put per fsync: the rate of a writer that does not
//       batch, and the disk's fsync time (the median latency of such a Put);
//   (b) THREADS threads, each doing synced Puts: RocksDB's own group commit
//       merges concurrent writers into shared fsyncs.
// Prints one `name value` line per figure, for tools/bench/run to read.
// Usage: convstore_bench_storage DIR [SECONDS_EACH=5] [VALUE_BYTES=300]
//        [THREADS=64]
#include <rocksdb/db.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::string Key(uint64_t n) {
  std::string k(8, '\0');
  for (int i = 7; i >= 0; --i, n >>= 8) k[i] = static_cast<char>(n & 0xff);
  return k;
}

struct Run {
  uint64_t writes = 0;
  double seconds = 0;
  std::vector<double> latencies_ms;  // of every Put, thread (a) only
};

// `threads` writers doing synced Puts for `seconds`; keys never collide.
Run SyncedPuts(rocksdb::DB* db, int threads, double seconds,
               const std::string& value, bool record_latency) {
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::vector<double>> latencies(threads);
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      rocksdb::WriteOptions options;
      options.sync = true;
      while (Clock::now() < end && !failed) {
        const auto before = Clock::now();
        rocksdb::Status s = db->Put(options, Key(next++), value);
        if (!s.ok()) {
          std::fprintf(stderr, "put: %s\n", s.ToString().c_str());
          failed = true;
        }
        if (record_latency) {
          latencies[t].push_back(
              std::chrono::duration<double, std::milli>(Clock::now() - before)
                  .count());
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  Run run;
  run.writes = next.load();
  run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& l : latencies) {
    run.latencies_ms.insert(run.latencies_ms.end(), l.begin(), l.end());
  }
  if (failed) run.writes = 0;
  return run;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: convstore_bench_storage DIR [SECONDS_EACH=5] "
                 "[VALUE_BYTES=300] [THREADS=64]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const double seconds = argc > 2 ? std::stod(argv[2]) : 5;
  const size_t value_bytes = argc > 3 ? std::stoul(argv[3]) : 300;
  const int threads = argc > 4 ? std::stoi(argv[4]) : 64;
  const std::string value(value_bytes, 'v');

  std::filesystem::remove_all(dir);
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) {
    std::fprintf(stderr, "open %s: %s\n", dir.c_str(), s.ToString().c_str());
    return 1;
  }
  std::unique_ptr<rocksdb::DB> db(raw);

  Run one = SyncedPuts(db.get(), 1, seconds, value, true);
  Run many = SyncedPuts(db.get(), threads, seconds, value, false);
  db.reset();
  std::filesystem::remove_all(dir);
  if (one.writes == 0 || many.writes == 0) return 1;

  std::printf("raw_one_thread_writes_per_s %.0f\n", one.writes / one.seconds);
  std::printf("fsync_median_ms %.3f\n", Median(one.latencies_ms));
  std::printf("raw_%d_threads_writes_per_s %.0f\n", threads,
              many.writes / many.seconds);
  return 0;
}
