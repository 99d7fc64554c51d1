// RetentionSweeper: `serve --retention-days N`. On its own thread it erases,
// one at a time, the completed or archived conversations whose last change
// is more than N days old (ConversationErased, reason retention, actor
// `convstore:retention`), at most `max_per_second` of them, so a backlog of
// expired calls never crowds the writer; then it sleeps for `interval`.
// Thread-safe; Stop (or the destructor) ends the thread before the writer
// stops.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "eventlog/group_commit.h"
#include "projections/read_models.h"

namespace convstore::http {

// The actor of retention's erasure events.
inline constexpr char kRetentionActor[] = "convstore:retention";

class RetentionSweeper {
 public:
  struct Options {
    int64_t retention_days = 0;
    // Between sweeps of the ended-conversations index.
    std::chrono::milliseconds interval{60000};
    // Erasures per second at most, each its own command through the writer.
    int max_per_second = 20;
    // The wall clock in ms (tests move it forward).
    std::function<int64_t()> now_ms;
  };
  RetentionSweeper(GroupCommitWriter* writer,
                   std::function<std::shared_ptr<ReadModels>()> read_models,
                   Options options);
  ~RetentionSweeper();
  RetentionSweeper(const RetentionSweeper&) = delete;
  RetentionSweeper& operator=(const RetentionSweeper&) = delete;

  void Stop();
  // Conversations erased / erasures that failed since start.
  uint64_t erased() const { return erased_.load(); }
  uint64_t failures() const { return failures_.load(); }

 private:
  void Run();
  // Erases `id` if it is still ended before `cutoff_ms`; false on failure.
  bool EraseOne(const std::string& id, int64_t cutoff_ms);
  // Sleeps for `d` unless stopped first; false once stopped.
  bool SleepFor(std::chrono::milliseconds d);

  GroupCommitWriter* writer_;
  std::function<std::shared_ptr<ReadModels>()> read_models_;
  Options options_;
  std::atomic<uint64_t> erased_{0};
  std::atomic<uint64_t> failures_{0};
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace convstore::http
