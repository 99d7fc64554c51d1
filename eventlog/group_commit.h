// GroupCommitWriter: one thread decides queued commands, running each one's
// Work against a shared LogBatch (in order, each seeing the ones before it);
// a second thread commits each group with one synced write, then calls every
// Done. While a group commits, the next one is decided on top of it (its
// batch reads through the committing one), so deciding and the fsync
// overlap, and the next group grows for as long as the disk is busy. The
// moment a commit ends, the next group is sealed: by the committer itself
// when the decider is not adding to it, else by the decider after its
// current command, so the disk is not left waiting on a thread wake-up.
// Many concurrent clients thereby share one fsync, and no caller thread ever
// waits on the disk. Submit is thread-safe; Work runs on the deciding
// thread and Done on the committing one, so Done must only hand the result
// off (e.g. post to an executor).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/status.h"
#include "eventlog/event_log.h"

namespace convstore {

// Batch-size and fsync-latency counters, readable from any thread.
struct WriterStats {
  // Histogram buckets of commands per committed group: 1, 2, 4, ... 1024+.
  static constexpr size_t kBuckets = 11;
  std::array<std::atomic<uint64_t>, kBuckets> batch_size_buckets{};
  std::atomic<uint64_t> groups{0};
  std::atomic<uint64_t> commands{0};
  std::atomic<uint64_t> commit_micros_total{0};
};

class GroupCommitWriter {
 public:
  // Decides and appends into the batch. An error undoes all it wrote and
  // becomes the command's result.
  using Work = std::function<Status(LogBatch&)>;
  // Told the command's final status once its group is durable (or failed).
  using Done = std::function<void(const Status&)>;

  // Told the events of each group once they are durable, in commit order,
  // after the group's Done calls, on the deciding thread: it must only hand
  // them off.
  using Committed = std::function<void(std::vector<RecordedEvent> events)>;

  struct Options {
    size_t max_group = 1024;
    Committed on_committed;  // optional
  };

  GroupCommitWriter(EventLog* log, Options options);
  explicit GroupCommitWriter(EventLog* log)
      : GroupCommitWriter(log, Options()) {}
  ~GroupCommitWriter();
  GroupCommitWriter(const GroupCommitWriter&) = delete;
  GroupCommitWriter& operator=(const GroupCommitWriter&) = delete;

  void Submit(Work work, Done done);
  // Stops taking commands, commits everything already queued, joins.
  void Stop();

  const WriterStats& stats() const { return stats_; }
  size_t queued() const;

 private:
  struct Command {
    Work work;
    Done done;
  };
  // Commands decided into one batch, committed together.
  struct Group {
    std::unique_ptr<LogBatch> batch;
    std::vector<Command> commands;
    std::vector<Status> results;
    size_t applied = 0;
    bool committed = false;  // set by the committer, read after it is done
  };
  void DecideLoop();
  void CommitLoop();
  void Decide(Group& group, Command command);
  void Commit(Group& group);
  // Hands the open group to the committer (which must be idle) and retires
  // the one it committed. Called with mu_ held, while no command is being
  // decided into the open group.
  void SealOpenGroupLocked();

  EventLog* log_;
  Options options_;
  mutable std::mutex mu_;
  std::condition_variable decide_cv_;  // queue, idle committer, stopping
  std::condition_variable commit_cv_;  // a sealed group, stopping
  std::deque<Command> queue_;
  // The group being decided, on top of sealed_. Guarded by mu_, except that
  // while deciding_ is set only the decider touches it.
  std::unique_ptr<Group> open_;
  bool deciding_ = false;
  // The group handed to the committer (sealed), and whether the committer
  // is still at it. Guarded by mu_; committing_ is also read without it, as
  // a hint, by the decider between commands.
  std::unique_ptr<Group> sealed_;
  std::atomic<bool> committing_{false};
  // Committed groups, oldest first, for the decider to absorb into cache_
  // before it decides anything more. Guarded by mu_.
  std::vector<std::unique_ptr<Group>> retired_;
  bool stopping_ = false;
  bool committer_exit_ = false;
  WriterStats stats_;
  // Read and absorbed only on the deciding thread.
  WriterCache cache_;
  std::thread committer_;
  std::thread decider_;
};

}  // namespace convstore
