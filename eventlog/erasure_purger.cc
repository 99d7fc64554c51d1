#include "eventlog/erasure_purger.h"

#include <spdlog/spdlog.h>

namespace convstore {

ErasurePurger::ErasurePurger(EventLog* log, std::chrono::milliseconds interval)
    : log_(log), interval_(interval), thread_([this] { Run(); }) {}

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
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // Waiting first lets a burst of erasures gather into one purge.
    if (stop_cv_.wait_for(lock, interval_, [this] { return stop_; })) return;
    if (log_->erasure_head() <= log_->purged_erasure_head()) continue;
    lock.unlock();
    const auto started = std::chrono::steady_clock::now();
    const uint64_t target = log_->erasure_head();
    Status s = log_->PurgeErased();
    lock.lock();
    if (stop_) return;
    if (s.ok()) {
      ++purges_;
      spdlog::info(
          "erasures up to position {} purged from the store's files in "
          "{:.1f} s",
          target,
          std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                        started)
              .count());
    } else {
      ++failures_;
      spdlog::error("purging erased data: {}", s.ToString());
    }
  }
}

}  // namespace convstore
