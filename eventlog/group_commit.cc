#include "eventlog/group_commit.h"

#include <bit>
#include <chrono>
#include <exception>

namespace convstore {

GroupCommitWriter::GroupCommitWriter(EventLog* log, Options options)
    : log_(log), options_(options), thread_([this] { Run(); }) {}

GroupCommitWriter::~GroupCommitWriter() { Stop(); }

void GroupCommitWriter::Submit(Work work, Done done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      queue_.push_back({std::move(work), std::move(done)});
      cv_.notify_one();
      return;
    }
  }
  done(Status::Unavailable("the server is shutting down"));
}

void GroupCommitWriter::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

size_t GroupCommitWriter::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void GroupCommitWriter::Run() {
  std::deque<Command> group;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything is drained
      size_t n = std::min(queue_.size(), options_.max_group);
      for (size_t i = 0; i < n; ++i) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    CommitGroup(group);
    group.clear();
  }
}

void GroupCommitWriter::CommitGroup(std::deque<Command>& group) {
  std::vector<Status> results(group.size());
  if (log_->failed()) {
    for (Command& c : group) c.done(log_->WriteRefusal());
    return;
  }
  LogBatch batch(log_);
  size_t applied = 0;
  for (size_t i = 0; i < group.size(); ++i) {
    const size_t depth = batch.savepoint_depth();
    batch.SetSavePoint();
    try {
      results[i] = group[i].work(batch);
    } catch (const std::exception& e) {
      // One command's bug must not take the writer (and every client) down.
      results[i] = Status::Internal(std::string("command failed: ") + e.what());
    }
    if (results[i].ok() && batch.savepoint_depth() == depth + 1) {
      batch.PopSavePoint();
      ++applied;
    } else {
      if (results[i].ok()) {
        results[i] = Status::Internal("command left the batch unbalanced");
      }
      // Everything this command wrote goes, however it failed.
      batch.RollbackTo(depth);
    }
  }
  auto start = std::chrono::steady_clock::now();
  Status committed = batch.Commit();
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - start)
                    .count();
  if (applied > 0) {
    stats_.groups.fetch_add(1, std::memory_order_relaxed);
    stats_.commands.fetch_add(applied, std::memory_order_relaxed);
    stats_.commit_micros_total.fetch_add(static_cast<uint64_t>(micros),
                                         std::memory_order_relaxed);
    size_t bucket = std::min<size_t>(std::bit_width(applied) - 1,
                                     WriterStats::kBuckets - 1);
    stats_.batch_size_buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  }
  for (size_t i = 0; i < group.size(); ++i) {
    group[i].done(results[i].ok() ? committed : results[i]);
  }
}

}  // namespace convstore
