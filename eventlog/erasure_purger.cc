#include "eventlog/erasure_purger.h"

#include <spdlog/spdlog.h>

namespace convstore {

ErasurePurger::ErasurePurger(EventLog* log, Options options)
    : log_(log),
      options_(options),
      // Erasures a restart interrupted before their purge are due at once.
      expedite_(log->erasure_head() > log->purged_erasure_head()),
      thread_([this] { Run(); }) {}

ErasurePurger::~ErasurePurger() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  // A running manual compaction ends early with an error; the purge is not
  // recorded, so the next start does it again.
  log_->db()->DisableManualCompaction();
  thread_.join();
  log_->db()->EnableManualCompaction();
}

void ErasurePurger::Run() {
  using Clock = std::chrono::steady_clock;
  // Since when erasures have been waiting for a purge.
  Clock::time_point pending_since = Clock::now();
  bool pending = false;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // Waiting first lets a burst of erasures gather into one purge.
    if (stop_cv_.wait_for(lock, options_.interval, [this] { return stop_; })) {
      return;
    }
    if (log_->erasure_head() <= log_->purged_erasure_head()) {
      pending = false;
      continue;
    }
    const auto started = Clock::now();
    if (!pending) {
      pending = true;
      pending_since = started;
    }
    if (!expedite_.exchange(false) &&
        started - pending_since < options_.batch_interval) {
      continue;
    }
    lock.unlock();
    const uint64_t target = log_->erasure_head();
    Status s = log_->PurgeErased();
    lock.lock();
    if (stop_) return;
    if (s.ok()) {
      pending = false;
      ++purges_;
      spdlog::info(
          "erasures up to position {} purged from the store's files in "
          "{:.1f} s",
          target,
          std::chrono::duration<double>(Clock::now() - started).count());
    } else {
      ++failures_;
      expedite_.store(true);  // tried again at the next check
      spdlog::error("purging erased data: {}", s.ToString());
    }
  }
}

}  // namespace convstore
