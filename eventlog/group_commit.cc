#include "eventlog/group_commit.h"

#include <pthread.h>

#include <bit>
#include <chrono>
#include <exception>

namespace convstore {

GroupCommitWriter::GroupCommitWriter(EventLog* log, Options options)
    : log_(log),
      options_(options),
      committer_([this] {
        // Named for top -H and perf: each thread is one stage of a write.
        pthread_setname_np(pthread_self(), "cs-commit");
        CommitLoop();
      }),
      decider_([this] {
        pthread_setname_np(pthread_self(), "cs-decide");
        DecideLoop();
      }) {}

GroupCommitWriter::~GroupCommitWriter() { Stop(); }

void GroupCommitWriter::Submit(Work work, Done done) {
  bool queued = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      queue_.push_back({std::move(work), std::move(done)});
      queued = true;
    }
  }
  // Notified after unlocking: woken while the lock is still held, the
  // decider would only block on it again (a second futex round trip per
  // command under load).
  if (queued) {
    decide_cv_.notify_one();
  } else {
    done(Status::Unavailable("the server is shutting down"));
  }
}

void GroupCommitWriter::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  decide_cv_.notify_all();
  if (decider_.joinable()) decider_.join();
  if (committer_.joinable()) committer_.join();
}

size_t GroupCommitWriter::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void GroupCommitWriter::DecideLoop() {
  std::unique_ptr<Group> open;  // being decided, on top of sealed_
  for (;;) {
    std::deque<Command> taken;
    std::unique_ptr<Group> retired;
    bool wake_committer = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto can_take = [&] {
        return !queue_.empty() &&
               (!open || open->commands.size() < options_.max_group);
      };
      auto can_seal = [&] { return open && !committing_; };
      auto can_exit = [&] {
        return stopping_ && queue_.empty() && !open && !committing_;
      };
      decide_cv_.wait(lock,
                      [&] { return can_take() || can_seal() || can_exit(); });
      if (can_seal()) {
        // The group before is committed (its writes are in the store), so
        // the open one no longer reads through it.
        retired = std::move(sealed_);
        open->batch->Seal();
        open->batch->ClearBase();
        sealed_ = std::move(open);
        committing_ = true;
        wake_committer = true;  // once the lock is released
      } else if (can_exit()) {
        committer_exit_ = true;
        commit_cv_.notify_one();
        return;
      }
      const size_t room =
          options_.max_group - (open ? open->commands.size() : 0);
      const size_t n = std::min(queue_.size(), room);
      for (size_t i = 0; i < n; ++i) {
        taken.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    if (wake_committer) commit_cv_.notify_one();
    if (retired) {
      // Outside the lock: the committer is done with it.
      if (retired->committed) {
        cache_.Absorb(*retired->batch);
      } else {
        cache_.Clear();
      }
      retired.reset();
    }
    for (Command& command : taken) {
      if (!open) {
        // sealed_ changes only on this thread, so reading it here is safe.
        open = std::make_unique<Group>();
        open->batch = std::make_unique<LogBatch>(
            log_, sealed_ ? sealed_->batch.get() : nullptr, &cache_);
      }
      Decide(*open, std::move(command));
    }
  }
}

void GroupCommitWriter::Decide(Group& group, Command command) {
  Status result;
  LogBatch& batch = *group.batch;
  if (log_->failed()) {
    result = log_->WriteRefusal();
  } else {
    const size_t depth = batch.savepoint_depth();
    batch.SetSavePoint();
    try {
      result = command.work(batch);
    } catch (const std::exception& e) {
      // One command's bug must not take the writer (and every client) down.
      result = Status::Internal(std::string("command failed: ") + e.what());
    }
    if (result.ok() && batch.savepoint_depth() == depth + 1) {
      batch.PopSavePoint();
      ++group.applied;
    } else {
      if (result.ok()) {
        result = Status::Internal("command left the batch unbalanced");
      }
      // Everything this command wrote goes, however it failed.
      batch.RollbackTo(depth);
    }
  }
  group.commands.push_back(std::move(command));
  group.results.push_back(std::move(result));
}

void GroupCommitWriter::CommitLoop() {
  for (;;) {
    Group* group = nullptr;
    {
      std::unique_lock<std::mutex> lock(mu_);
      commit_cv_.wait(
          lock, [this] { return (sealed_ && committing_) || committer_exit_; });
      if (!committing_) return;  // told to exit, nothing left to commit
      group = sealed_.get();
    }
    Commit(*group);
    {
      std::lock_guard<std::mutex> lock(mu_);
      committing_ = false;
    }
    decide_cv_.notify_one();
  }
}

void GroupCommitWriter::Commit(Group& group) {
  auto start = std::chrono::steady_clock::now();
  // A batch decided on top of a group whose commit failed is refused here:
  // the log refuses every write after a failed one.
  Status committed = group.batch->Commit();
  group.committed = committed.ok();
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - start)
                    .count();
  if (group.applied > 0) {
    stats_.groups.fetch_add(1, std::memory_order_relaxed);
    stats_.commands.fetch_add(group.applied, std::memory_order_relaxed);
    stats_.commit_micros_total.fetch_add(static_cast<uint64_t>(micros),
                                         std::memory_order_relaxed);
    size_t bucket = std::min<size_t>(std::bit_width(group.applied) - 1,
                                     WriterStats::kBuckets - 1);
    stats_.batch_size_buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  }
  for (size_t i = 0; i < group.commands.size(); ++i) {
    group.commands[i].done(group.results[i].ok() ? committed
                                                 : group.results[i]);
  }
  // The batch may stay a while as the next group's base; what the commands
  // hold (sessions, read models) is let go now.
  group.commands.clear();
  group.results.clear();
  if (committed.ok() && options_.on_committed) {
    std::vector<RecordedEvent> events = group.batch->TakeAppended();
    if (!events.empty()) options_.on_committed(std::move(events));
  }
}

}  // namespace convstore
