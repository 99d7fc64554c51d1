// ErasurePurger: runs EventLog::PurgeErased on its own thread whenever
// erasures were committed since the last purge (or before a restart that
// came first), at most once per interval, so a burst of erasures costs one
// purge. Thread-safe. The destructor stops the thread; a purge under way is
// cancelled and runs again at the next start.
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
  ErasurePurger(EventLog* log, std::chrono::milliseconds interval);
  ~ErasurePurger();
  ErasurePurger(const ErasurePurger&) = delete;
  ErasurePurger& operator=(const ErasurePurger&) = delete;

  // Purges that completed / failed (a failed one is tried again).
  uint64_t purges() const { return purges_.load(); }
  uint64_t failures() const { return failures_.load(); }

 private:
  void Run();

  EventLog* log_;
  const std::chrono::milliseconds interval_;
  std::atomic<uint64_t> purges_{0};
  std::atomic<uint64_t> failures_{0};
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace convstore
