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

void GroupCommitWriter::SealOpenGroupLocked() {
  // The group before is committed (its writes are in the store), so the
  // open one no longer reads through it.
  if (sealed_) retired_.push_back(std::move(sealed_));
  open_->batch->Seal();
  open_->batch->ClearBase();
  sealed_ = std::move(open_);
  committing_ = true;
}

void GroupCommitWriter::DecideLoop() {
  for (;;) {
    std::deque<Command> taken;
    std::vector<std::unique_ptr<Group>> retired;
    bool wake_committer = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto can_take = [&] {
        return !queue_.empty() &&
               (!open_ || open_->commands.size() < options_.max_group);
      };
      auto can_seal = [&] { return open_ && !committing_; };
      auto can_exit = [&] {
        return stopping_ && queue_.empty() && !open_ && !committing_ &&
               retired_.empty();
      };
      decide_cv_.wait(lock, [&] {
        return can_take() || can_seal() || can_exit() || !retired_.empty();
      });
      if (can_seal()) {
        SealOpenGroupLocked();
        wake_committer = true;  // once the lock is released
      } else if (can_exit()) {
        committer_exit_ = true;
        commit_cv_.notify_one();
        return;
      }
      retired.swap(retired_);
      const size_t room =
          options_.max_group - (open_ ? open_->commands.size() : 0);
      const size_t n = std::min(queue_.size(), room);
      for (size_t i = 0; i < n; ++i) {
        taken.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      deciding_ = !taken.empty();
    }
    if (wake_committer) commit_cv_.notify_one();
    // Outside the lock: the committer is done with them. Each was told its
    // result; the events of a committed one go to on_committed, in commit
    // order.
    for (std::unique_ptr<Group>& group : retired) {
      if (group->committed) {
        cache_.Absorb(*group->batch);
        if (options_.on_committed) {
          std::vector<RecordedEvent> events = group->batch->TakeAppended();
          if (!events.empty()) options_.on_committed(std::move(events));
        }
      } else {
        cache_.Clear();
      }
    }
    retired.clear();
    if (taken.empty()) continue;
    for (auto it = taken.begin(); it != taken.end(); ++it) {
      if (!open_) {
        // sealed_ changes only while no command is being decided.
        open_ = std::make_unique<Group>();
        open_->batch = std::make_unique<LogBatch>(
            log_, sealed_ ? sealed_->batch.get() : nullptr, &cache_);
      }
      Decide(*open_, std::move(*it));
      if (!committing_.load(std::memory_order_relaxed) &&
          std::next(it) != taken.end()) {
        // The disk is idle: seal what is decided now, and decide the rest
        // (back at the front of the queue, in order) into the next group.
        std::lock_guard<std::mutex> lock(mu_);
        queue_.insert(queue_.begin(), std::make_move_iterator(std::next(it)),
                      std::make_move_iterator(taken.end()));
        break;
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    deciding_ = false;
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
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    commit_cv_.wait(lock, [this] { return committing_ || committer_exit_; });
    if (!committing_) return;  // told to exit, nothing left to commit
    Group* group = sealed_.get();
    lock.unlock();
    Commit(*group);
    lock.lock();
    committing_ = false;
    // The next group goes to the disk at once when no command is being
    // decided into it; waking the decider to seal it cost about 0.2 ms a
    // group on a busy 2-core machine. Either way the decider is told: it
    // takes the committed group, seals, or takes more commands.
    // (While deciding_ is set, open_ is the decider's: not even read here.)
    if (!deciding_) {
      if (open_) {
        SealOpenGroupLocked();
      } else {
        // No group reads through it: off to the decider, to be absorbed
        // and freed.
        retired_.push_back(std::move(sealed_));
      }
    }
    lock.unlock();
    decide_cv_.notify_one();
    lock.lock();
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
  // What is left (telling subscribers, and freeing the commands, their
  // results and the batch: about 0.15 ms a group of 24 appends) is the
  // decider's, once the group is retired, so the next commit starts now.
}

}  // namespace convstore
