// ErasurePurger: runs EventLog::PurgeErased on its own thread, so erased data
// leaves the store's files (a flush and a compaction of every table). An
// erasure someone waits for (Expedite) is purged at the next check, within
// `interval`; one nobody waits for (retention's) waits for the next expedited
// purge, or `batch_interval` at most, because a purge costs the foreground
// writes the same whether it carries one erasure or thousands. Erasures a
// restart interrupted are purged at the first check. Thread-safe. The
// destructor stops the thread; a purge under way is cancelled and runs again
// at the next start.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "eventlog/event_log.h"

namespace convstore {

class ErasurePurger {
 public:
  struct Options {
    std::chrono::milliseconds interval{1000};
    std::chrono::milliseconds batch_interval{600000};
  };
  ErasurePurger(EventLog* log, Options options);
  ~ErasurePurger();
  ErasurePurger(const ErasurePurger&) = delete;
  ErasurePurger& operator=(const ErasurePurger&) = delete;

  // Erasures committed before this call are purged at the next check.
  void Expedite() { expedite_.store(true); }

  // Purges that completed / failed (a failed one is tried again).
  uint64_t purges() const { return purges_.load(); }
  uint64_t failures() const { return failures_.load(); }

 private:
  void Run();

  EventLog* log_;
  const Options options_;
  std::atomic<bool> expedite_{false};
  std::atomic<uint64_t> purges_{0};
  std::atomic<uint64_t> failures_{0};
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace convstore
