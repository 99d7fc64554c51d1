// Spec for eventlog/group_commit.h: many submitters share one writer thread
// and one synced write per group; each command's Work sees the ones before it;
// a failing Work undoes only its own writes; every Done is called exactly
// once, after its group is durable; Stop() drains, then refuses. The next
// group is decided while the disk syncs the one before, on top of it, and is
// refused if that sync fails.
//
// Grouping is forced without sleeps: a first "blocker" command holds the
// writer thread on a gate until the test has queued everything else. Every
// wait is bounded; a timeout fails the test instead of hanging it.
#include "eventlog/group_commit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/faulty_fs.h"
#include "tests/support/test_server.h"

namespace convstore {
namespace {

using convstore::testing::TempDir;
using std::chrono::seconds;

constexpr auto kWait = seconds(60);

// A one-shot gate threads may wait on, with a bounded wait.
class Gate {
 public:
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool WaitFor(std::chrono::steady_clock::duration d) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, d, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Counts Done calls; lets the test wait (bounded) for a number of them.
class DoneCounter {
 public:
  void Add() {
    std::lock_guard<std::mutex> lock(mu_);
    ++n_;
    cv_.notify_all();
  }
  bool WaitFor(size_t n, std::chrono::steady_clock::duration d) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, d, [&] { return n_ >= n; });
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return n_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t n_ = 0;
};

// The outcome of one submitted command, filled in by its Done.
struct Outcome {
  std::atomic<int> calls{0};
  std::mutex mu;
  Status status;

  void Set(const Status& s) {
    {
      std::lock_guard<std::mutex> lock(mu);
      status = s;
    }
    calls.fetch_add(1);
  }
  Status Get() {
    std::lock_guard<std::mutex> lock(mu);
    return status;
  }
};

NewEvent Note(std::string stream, std::optional<int64_t> expected,
              std::string content = "note") {
  Message m;
  m.id = "msg-" + stream;
  m.conversation_id = "conv-x";
  m.content = std::move(content);
  return {std::move(stream), expected, MessageAppended{std::move(m)}};
}

std::function<std::string()> EventIds() {
  auto n = std::make_shared<std::atomic<int>>(0);
  return [n] { return "evt-" + std::to_string(++*n); };
}

// Work that appends `events` (and fails as Append fails).
GroupCommitWriter::Work AppendWork(std::vector<NewEvent> events) {
  return [events = std::move(events)](LogBatch& batch) -> Status {
    static const auto ids = EventIds();
    return batch.Append(events, EventMeta{"alice", "", 1700000000000}, ids)
        .status();
  };
}

class GroupCommitTest : public ::testing::Test {
 protected:
  void SetUp() override { OpenLog(); }

  void OpenLog() {
    auto log = EventLog::Open(dir_.str(), EventLogOptions());
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    log_ = std::move(*log);
  }

  // Submits a command that holds the writer thread until `release_` opens;
  // returns once the writer is inside it.
  void SubmitBlocker(GroupCommitWriter& writer, Outcome* outcome,
                     bool append = true) {
    auto entered = std::make_shared<Gate>();
    writer.Submit(
        [this, entered, append](LogBatch& batch) -> Status {
          entered->Open();
          if (!release_.WaitFor(kWait)) {
            return Status::Internal("blocker was never released");
          }
          if (!append) return Status();
          return AppendWork({Note("blocker", std::nullopt)})(batch);
        },
        [outcome](const Status& s) { outcome->Set(s); });
    ASSERT_TRUE(entered->WaitFor(kWait)) << "writer never ran the blocker";
  }

  std::vector<RecordedEvent> ReadAll() {
    auto r = log_->ReadRange(1, 1000000);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::vector<RecordedEvent>{};
  }

  std::optional<uint64_t> Revision(std::string_view stream) {
    auto r = log_->StreamRevision(stream);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : std::nullopt;
  }

  TempDir dir_;
  std::unique_ptr<EventLog> log_;
  Gate release_;
};

TEST_F(GroupCommitTest, ManySubmittersShareFewGroupsAndLoseNothing) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 50;
  constexpr size_t kCommands = kThreads * kPerThread;
  GroupCommitWriter writer(log_.get());
  Outcome blocker;
  SubmitBlocker(writer, &blocker);

  // Command i of thread t appends to its own new stream, to its thread's
  // stream at revision i (which holds only if the queue keeps each
  // submitter's order), and to one stream every command shares.
  std::vector<std::unique_ptr<Outcome>> outcomes;
  for (size_t i = 0; i < kCommands; ++i)
    outcomes.push_back(std::make_unique<Outcome>());
  DoneCounter done;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string mine = "thread-" + std::to_string(t);
      for (int i = 0; i < kPerThread; ++i) {
        const std::string tag = std::to_string(t) + "/" + std::to_string(i);
        Outcome* out = outcomes[t * kPerThread + i].get();
        writer.Submit(
            AppendWork({Note("own-" + tag, NewEvent::kNoStream, tag),
                        Note(mine, i == 0 ? NewEvent::kNoStream : i - 1, tag),
                        Note("shared", std::nullopt, tag)}),
            [out, &done](const Status& s) {
              out->Set(s);
              done.Add();
            });
      }
    });
  }
  for (std::thread& th : threads) th.join();
  // The writer is still held by the blocker: everything else is queued.
  EXPECT_EQ(writer.queued(), kCommands);
  release_.Open();
  ASSERT_TRUE(done.WaitFor(kCommands, kWait))
      << done.count() << " of " << kCommands << " Done calls";
  writer.Stop();

  EXPECT_EQ(blocker.calls.load(), 1);
  EXPECT_TRUE(blocker.Get().ok()) << blocker.Get().ToString();
  for (size_t i = 0; i < kCommands; ++i) {
    EXPECT_EQ(outcomes[i]->calls.load(), 1) << "command " << i;
    EXPECT_TRUE(outcomes[i]->Get().ok())
        << "command " << i << ": " << outcomes[i]->Get().ToString();
  }

  // The log holds exactly every event, gapless.
  const auto all = ReadAll();
  ASSERT_EQ(all.size(), 1 + 3 * kCommands);
  EXPECT_EQ(log_->head(), all.size());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].position, i + 1);
  EXPECT_EQ(Revision("shared"), std::optional<uint64_t>(kCommands - 1));
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(Revision("thread-" + std::to_string(t)),
              std::optional<uint64_t>(kPerThread - 1));
  }
  for (const RecordedEvent& e : all) {
    if (e.stream.rfind("thread-", 0) != 0) continue;
    // Revision r of thread t's stream is thread t's command r.
    const std::string& content =
        std::get<MessageAppended>(e.payload).message.content;
    EXPECT_EQ(content, e.stream.substr(7) + "/" + std::to_string(e.revision));
  }

  // The blocker alone in the first group; the queue then in groups cut
  // wherever a commit ended (the disk never waits for the queue to be
  // decided), each shared by many commands.
  const WriterStats& stats = writer.stats();
  EXPECT_EQ(stats.commands.load(), kCommands + 1);
  EXPECT_GE(stats.batch_size_buckets[0].load(), 1u);
  EXPECT_LT(stats.groups.load(), stats.commands.load() / 2);
  uint64_t bucketed = 0;
  for (const auto& b : stats.batch_size_buckets) bucketed += b.load();
  EXPECT_EQ(bucketed, stats.groups.load());
}

TEST_F(GroupCommitTest, LaterWorkInAGroupSeesEarlierWork) {
  GroupCommitWriter writer(log_.get());
  Outcome blocker, first, second;
  SubmitBlocker(writer, &blocker, /*append=*/false);
  DoneCounter done;
  writer.Submit(AppendWork({Note("s", NewEvent::kNoStream)}),
                [&](const Status& s) {
                  first.Set(s);
                  done.Add();
                });
  writer.Submit(AppendWork({Note("s", 0)}), [&](const Status& s) {
    second.Set(s);
    done.Add();
  });
  release_.Open();
  ASSERT_TRUE(done.WaitFor(2, kWait));
  writer.Stop();
  EXPECT_TRUE(first.Get().ok()) << first.Get().ToString();
  EXPECT_TRUE(second.Get().ok()) << second.Get().ToString();
  EXPECT_EQ(Revision("s"), std::optional<uint64_t>(1));
}

TEST_F(GroupCommitTest, FailingWorkRollsBackOnlyItsOwnWrites) {
  GroupCommitWriter writer(log_.get());
  Outcome blocker, a, b, c, d;
  SubmitBlocker(writer, &blocker);  // position 1
  DoneCounter done;
  auto record = [&done](Outcome* o) {
    return [o, &done](const Status& s) {
      o->Set(s);
      done.Add();
    };
  };
  writer.Submit(AppendWork({Note("a", std::nullopt)}), record(&a));
  // b writes two events, then fails on its own.
  writer.Submit(
      [](LogBatch& batch) -> Status {
        Status s = AppendWork({Note("b1", std::nullopt), Note("a", 0)})(batch);
        if (!s.ok()) return Status::Internal("unexpected: " + s.ToString());
        return Status::InvalidArgument("b gives up", "b_param");
      },
      record(&b));
  writer.Submit(AppendWork({Note("c", std::nullopt), Note("a", 0)}),
                record(&c));
  // d's Append conflicts (a is at revision 1 by now, not 5).
  writer.Submit(AppendWork({Note("d", std::nullopt), Note("a", 5)}),
                record(&d));
  release_.Open();
  ASSERT_TRUE(done.WaitFor(4, kWait));
  writer.Stop();

  EXPECT_TRUE(a.Get().ok());
  EXPECT_EQ(b.Get().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(b.Get().param(), "b_param");
  EXPECT_TRUE(c.Get().ok()) << c.Get().ToString();
  EXPECT_EQ(d.Get().kind(), ErrorKind::kConflict);
  for (Outcome* o : {&blocker, &a, &b, &c, &d}) EXPECT_EQ(o->calls.load(), 1);

  EXPECT_EQ(Revision("b1"), std::nullopt);
  EXPECT_EQ(Revision("d"), std::nullopt);
  EXPECT_EQ(Revision("a"), std::optional<uint64_t>(1));
  const auto all = ReadAll();
  ASSERT_EQ(all.size(), 4u);
  const char* streams[] = {"blocker", "a", "c", "a"};
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].position, i + 1);
    EXPECT_EQ(all[i].stream, streams[i]);
  }
}

// Submits one command and waits (bounded) until it is done; the next one
// then goes into a group of its own, decided after this one committed.
Status RunAlone(GroupCommitWriter& writer, GroupCommitWriter::Work work) {
  auto outcome = std::make_shared<Outcome>();
  auto done = std::make_shared<DoneCounter>();
  writer.Submit(std::move(work), [outcome, done](const Status& s) {
    outcome->Set(s);
    done->Add();
  });
  if (!done->WaitFor(1, kWait)) return Status::Internal("never done");
  return outcome->Get();
}

// The writer remembers the stream revisions it read and wrote; a group that
// did not write a stream must still see what earlier groups committed to it
// (or undid), whichever group it comes after.
TEST_F(GroupCommitTest, EachGroupSeesTheRevisionsEveryEarlierGroupLeft) {
  GroupCommitWriter writer(log_.get());
  for (int64_t round = 0; round < 4; ++round) {
    const int64_t expected = round == 0 ? NewEvent::kNoStream : round - 1;
    for (const char* stream : {"s", "t"}) {
      // An append that is undone, then the one that lands.
      ASSERT_EQ(RunAlone(writer,
                         [&](LogBatch& batch) -> Status {
                           Status s =
                               AppendWork({Note(stream, expected)})(batch);
                           if (!s.ok()) return s;
                           return Status::InvalidArgument("undone", "x");
                         })
                    .kind(),
                ErrorKind::kInvalidArgument)
          << stream << " in round " << round;
      Status landed = RunAlone(writer, AppendWork({Note(stream, expected)}));
      ASSERT_TRUE(landed.ok())
          << stream << " in round " << round << ": " << landed.ToString();
    }
  }
  writer.Stop();
  EXPECT_EQ(Revision("s"), std::optional<uint64_t>(3));
  EXPECT_EQ(Revision("t"), std::optional<uint64_t>(3));
  EXPECT_EQ(log_->head(), 8u);
}

TEST_F(GroupCommitTest, NothingLandsOnAConversationErasedGroupsBefore) {
  GroupCommitWriter writer(log_.get());
  const std::string id = "conv-erased";
  const auto erasure = [&](int64_t expected) {
    return NewEvent{ConversationStream(id), expected,
                    ConversationErased{id, ErasureReason::kDeleted, 1}};
  };
  ASSERT_TRUE(
      RunAlone(writer, AppendWork({Note(MessagesStream(id), std::nullopt)}))
          .ok());
  ASSERT_TRUE(RunAlone(writer, AppendWork({Note("other", std::nullopt)})).ok());
  ASSERT_TRUE(
      RunAlone(writer, AppendWork({erasure(NewEvent::kNoStream)})).ok());
  ASSERT_TRUE(RunAlone(writer, AppendWork({Note("other", 0)})).ok());
  ASSERT_TRUE(RunAlone(writer, AppendWork({Note("other", 1)})).ok());
  for (const NewEvent& late :
       {Note(MessagesStream(id), std::nullopt), erasure(0)}) {
    EXPECT_EQ(RunAlone(writer, AppendWork({late})).kind(), ErrorKind::kNotFound)
        << late.stream;
  }
  writer.Stop();
  EXPECT_EQ(log_->head(), 5u);
}

TEST_F(GroupCommitTest, ThrowingWorkIsAnInternalErrorAndLeavesNoWrites) {
  GroupCommitWriter writer(log_.get());
  Outcome blocker, thrower, after;
  SubmitBlocker(writer, &blocker);
  DoneCounter done;
  writer.Submit(
      [](LogBatch& batch) -> Status {
        Status s = AppendWork({Note("thrown", std::nullopt)})(batch);
        if (s.ok()) throw std::runtime_error("bug in a command");
        return s;
      },
      [&](const Status& s) {
        thrower.Set(s);
        done.Add();
      });
  writer.Submit(AppendWork({Note("after", std::nullopt)}),
                [&](const Status& s) {
                  after.Set(s);
                  done.Add();
                });
  release_.Open();
  ASSERT_TRUE(done.WaitFor(2, kWait));
  writer.Stop();
  EXPECT_EQ(thrower.Get().kind(), ErrorKind::kInternal);
  EXPECT_TRUE(after.Get().ok());
  EXPECT_EQ(Revision("thrown"), std::nullopt);
  const auto all = ReadAll();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].stream, "after");
  EXPECT_EQ(all[1].position, 2u);
}

// A projection with a bug: it throws on one stream's events.
class ThrowingSink : public EventSink {
 public:
  Status Apply(const RecordedEvent& event, LogBatch&) override {
    if (event.stream == "explodes") throw std::runtime_error("sink bug");
    return Status();
  }
};

TEST_F(GroupCommitTest, ThrowInsideAppendUndoesAllOfThatCommand) {
  // The exception leaves LogBatch::Append mid-way (its own savepoint still
  // set); the writer must still undo everything that command wrote, not
  // just its last Append.
  ThrowingSink sink;
  log_->AddSink(&sink);
  GroupCommitWriter writer(log_.get());
  Outcome blocker, thrower, after;
  SubmitBlocker(writer, &blocker);
  DoneCounter done;
  writer.Submit(
      [](LogBatch& batch) -> Status {
        CONVSTORE_RETURN_IF_ERROR(
            AppendWork({Note("first-of-failed", std::nullopt)})(batch));
        return AppendWork({Note("explodes", std::nullopt)})(batch);
      },
      [&](const Status& s) {
        thrower.Set(s);
        done.Add();
      });
  writer.Submit(AppendWork({Note("after", std::nullopt)}),
                [&](const Status& s) {
                  after.Set(s);
                  done.Add();
                });
  release_.Open();
  ASSERT_TRUE(done.WaitFor(2, kWait));
  writer.Stop();

  EXPECT_EQ(thrower.Get().kind(), ErrorKind::kInternal);
  EXPECT_TRUE(after.Get().ok()) << after.Get().ToString();
  EXPECT_EQ(Revision("explodes"), std::nullopt);
  EXPECT_EQ(Revision("first-of-failed"), std::nullopt)
      << "a command reported as failed must leave nothing in the log";
  const auto all = ReadAll();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].stream, "blocker");
  EXPECT_EQ(all[1].stream, "after");
  EXPECT_EQ(all[1].position, 2u);
}

TEST_F(GroupCommitTest, DoneRunsOnlyOnceTheEventsAreCommitted) {
  GroupCommitWriter writer(log_.get());
  constexpr int kCommands = 20;
  DoneCounter done;
  std::atomic<int> visible{0};
  for (int i = 0; i < kCommands; ++i) {
    auto positions = std::make_shared<std::vector<uint64_t>>();
    const std::string stream = "s" + std::to_string(i);
    writer.Submit(
        [positions, stream](LogBatch& batch) -> Status {
          static const auto ids = EventIds();
          auto r = batch.Append({Note(stream, NewEvent::kNoStream)},
                                EventMeta{"alice", "", 1}, ids);
          if (!r.ok()) return r.status();
          for (const auto& e : *r) positions->push_back(e.position);
          return Status();
        },
        [&, positions, stream](const Status& s) {
          // Any reader that starts now sees the events.
          bool seen = s.ok() && !positions->empty();
          for (uint64_t p : *positions) {
            auto e = log_->Read(p);
            seen = seen && e.ok() && e->has_value() && (*e)->stream == stream &&
                   log_->head() >= p;
          }
          if (seen) visible.fetch_add(1);
          done.Add();
        });
  }
  ASSERT_TRUE(done.WaitFor(kCommands, kWait));
  EXPECT_EQ(visible.load(), kCommands);
  writer.Stop();

  // And they survive closing and reopening the log.
  log_.reset();
  OpenLog();
  ASSERT_NE(log_, nullptr);
  EXPECT_EQ(log_->head(), static_cast<uint64_t>(kCommands));
  for (int i = 0; i < kCommands; ++i) {
    EXPECT_EQ(Revision("s" + std::to_string(i)), std::optional<uint64_t>(0));
  }
}

TEST_F(GroupCommitTest, StopDrainsQueuedWorkThenRefusesNewWork) {
  auto writer = std::make_unique<GroupCommitWriter>(log_.get());
  Outcome blocker;
  SubmitBlocker(*writer, &blocker);
  constexpr size_t kQueued = 10;
  std::vector<std::unique_ptr<Outcome>> outcomes;
  for (size_t i = 0; i < kQueued; ++i) {
    outcomes.push_back(std::make_unique<Outcome>());
    Outcome* out = outcomes.back().get();
    writer->Submit(AppendWork({Note("q" + std::to_string(i), std::nullopt)}),
                   [out](const Status& s) { out->Set(s); });
  }
  EXPECT_EQ(writer->queued(), kQueued);

  // Stop() from another thread; it cannot finish while the blocker holds the
  // writer. Probe until a Submit is refused, which shows Stop() has begun;
  // probes accepted before that are queued work like any other.
  std::thread stopper([&] { writer->Stop(); });
  bool refused = false;
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  for (int probe = 0; probe < 10'000'000 && !refused &&
                      std::chrono::steady_clock::now() < deadline;
       ++probe) {
    outcomes.push_back(std::make_unique<Outcome>());
    Outcome* out = outcomes.back().get();
    writer->Submit(
        AppendWork({Note("p" + std::to_string(probe), std::nullopt)}),
        [out](const Status& s) { out->Set(s); });
    if (out->calls.load() == 1) {  // refused right inside Submit
      EXPECT_EQ(out->Get().kind(), ErrorKind::kUnavailable)
          << out->Get().ToString();
      outcomes.pop_back();
      refused = true;
    }
    std::this_thread::yield();
  }
  ASSERT_TRUE(refused) << "Submit was never refused after Stop()";
  release_.Open();
  stopper.join();

  // Everything accepted before Stop() was committed and told so, once.
  EXPECT_TRUE(blocker.Get().ok());
  for (size_t i = 0; i < outcomes.size(); ++i) {
    EXPECT_EQ(outcomes[i]->calls.load(), 1) << "command " << i;
    EXPECT_TRUE(outcomes[i]->Get().ok()) << "command " << i;
  }
  EXPECT_EQ(log_->head(), 1 + outcomes.size());

  // Later Submits are refused at once; their Work never runs.
  bool ran = false;
  Outcome late;
  writer->Submit(
      [&ran](LogBatch&) {
        ran = true;
        return Status();
      },
      [&late](const Status& s) { late.Set(s); });
  EXPECT_EQ(late.calls.load(), 1);
  EXPECT_EQ(late.Get().kind(), ErrorKind::kUnavailable);
  EXPECT_FALSE(ran);
  writer.reset();  // a second Stop() (from the destructor) is harmless
  EXPECT_EQ(log_->head(), 1 + outcomes.size());
}

TEST_F(GroupCommitTest, SubmitAfterStopIsUnavailable) {
  GroupCommitWriter writer(log_.get());
  writer.Stop();
  Outcome late;
  bool ran = false;
  writer.Submit(
      [&ran](LogBatch&) {
        ran = true;
        return Status();
      },
      [&late](const Status& s) { late.Set(s); });
  EXPECT_EQ(late.calls.load(), 1);
  EXPECT_EQ(late.Get().kind(), ErrorKind::kUnavailable);
  EXPECT_FALSE(ran);
  EXPECT_EQ(log_->head(), 0u);
}

TEST_F(GroupCommitTest, MaxGroupBoundsTheGroupSize) {
  GroupCommitWriter::Options options;
  // 3: the largest size of the histogram's 2-3 bucket, so a larger group
  // would show in the next one.
  options.max_group = 3;
  GroupCommitWriter writer(log_.get(), options);
  Outcome blocker;
  SubmitBlocker(writer, &blocker);
  DoneCounter done;
  for (int i = 0; i < 10; ++i) {
    writer.Submit(AppendWork({Note("m" + std::to_string(i), std::nullopt)}),
                  [&done](const Status&) { done.Add(); });
  }
  release_.Open();
  ASSERT_TRUE(done.WaitFor(10, kWait));
  writer.Stop();
  // The blocker, then the 10 in groups of at most 3 (a group is also cut
  // where a commit ends): at least 4 of them, none in the 4+ buckets.
  const WriterStats& stats = writer.stats();
  EXPECT_GE(stats.groups.load(), 5u);
  for (size_t b = 2; b < WriterStats::kBuckets; ++b) {
    EXPECT_EQ(stats.batch_size_buckets[b].load(), 0u) << "bucket " << b;
  }
  EXPECT_EQ(stats.commands.load(), 11u);
  EXPECT_EQ(log_->head(), 11u);
}

// ------------------------------------------------------------ pipelining

using convstore::testing::EnvOver;
using convstore::testing::FaultyFileSystem;

// The log on a disk whose syncs the test can hold and fail.
class PipelinedCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EventLogOptions options;
    options.env = EnvOver(fs_);
    auto log = EventLog::Open(dir_.str(), options);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    log_ = std::move(*log);
  }

  // Waits (bounded) until a WAL sync is held.
  bool SyncIsHeld() {
    for (int i = 0; i < 2000 && fs_->held_syncs() == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return fs_->held_syncs() > 0;
  }

  // Holds the disk's syncs, submits a first append and waits until its sync
  // is held; then submits a second that expects the first one's event (still
  // only in the batch being synced) and returns once it has been decided.
  void DecideSecondWhileFirstSyncs(GroupCommitWriter& writer, Outcome& first,
                                   Outcome& second) {
    fs_->HoldWalSyncs(true);
    writer.Submit(AppendWork({Note("s", NewEvent::kNoStream, "one")}),
                  [&first](const Status& s) { first.Set(s); });
    ASSERT_TRUE(SyncIsHeld()) << "the first group never reached the disk";
    auto decided = std::make_shared<Gate>();
    writer.Submit(
        [decided](LogBatch& batch) -> Status {
          decided->Open();
          return AppendWork({Note("s", 0, "two")})(batch);
        },
        [&second](const Status& s) { second.Set(s); });
    ASSERT_TRUE(decided->WaitFor(kWait)) << "not decided while the disk syncs";
  }

  TempDir dir_;
  std::shared_ptr<FaultyFileSystem> fs_ = std::make_shared<FaultyFileSystem>();
  std::unique_ptr<EventLog> log_;
};

TEST_F(PipelinedCommitTest,
       TheNextGroupIsDecidedWhileTheDiskSyncsTheOneBefore) {
  GroupCommitWriter writer(log_.get());
  Outcome first, second;
  ASSERT_NO_FATAL_FAILURE(DecideSecondWhileFirstSyncs(writer, first, second));
  EXPECT_EQ(first.calls.load(), 0) << "told before its sync finished";
  EXPECT_EQ(log_->head(), 0u);

  fs_->HoldWalSyncs(false);
  for (int i = 0; i < 2000 && (first.calls == 0 || second.calls == 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  writer.Stop();
  ASSERT_TRUE(first.Get().ok()) << first.Get().ToString();
  ASSERT_TRUE(second.Get().ok()) << second.Get().ToString();
  const auto all = log_->ReadRange(1, 10);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].position, 1u);
  EXPECT_EQ((*all)[1].position, 2u);
  EXPECT_EQ((*all)[1].revision, 1u);
  EXPECT_EQ(std::get<MessageAppended>((*all)[1].payload).message.content,
            "two");
  EXPECT_EQ(writer.stats().groups.load(), 2u);
}

TEST_F(PipelinedCommitTest, AGroupDecidedOnTopOfAFailedSyncIsRefused) {
  GroupCommitWriter writer(log_.get());
  Outcome first, second;
  ASSERT_NO_FATAL_FAILURE(DecideSecondWhileFirstSyncs(writer, first, second));
  fs_->FailWalSyncs(true);
  fs_->HoldWalSyncs(false);
  for (int i = 0; i < 2000 && (first.calls == 0 || second.calls == 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  writer.Stop();
  EXPECT_FALSE(first.Get().ok());
  EXPECT_FALSE(second.Get().ok()) << "acknowledged on top of a failed sync";
  EXPECT_EQ(first.calls.load(), 1);
  EXPECT_EQ(second.calls.load(), 1);
  EXPECT_EQ(log_->head(), 0u);

  // After a restart on a healthy disk the log holds at most the first
  // command (its sync failed, so it may or may not have reached the disk),
  // never the second.
  log_.reset();
  fs_->FailWalSyncs(false);
  auto reopened = EventLog::Open(dir_.str(), EventLogOptions());
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  const auto all = (*reopened)->ReadRange(1, 10);
  ASSERT_TRUE(all.ok());
  EXPECT_LE(all->size(), 1u);
  for (const RecordedEvent& e : *all) {
    EXPECT_EQ(std::get<MessageAppended>(e.payload).message.content, "one");
  }
}

TEST_F(PipelinedCommitTest, ABatchReadsThroughItsBaseAndItsOwnDeletesWin) {
  rocksdb::ColumnFamilyHandle* cf = log_->cf(rocksdb::kDefaultColumnFamilyName);
  LogBatch base(log_.get());
  base.Put(cf, "k1", "v1");
  base.Put(cf, "k2", "v2");
  ASSERT_TRUE(base.Append({Note("s", NewEvent::kNoStream)},
                          EventMeta{"alice", "", 1700000000000}, EventIds())
                  .ok());
  LogBatch next(log_.get(), &base);
  EXPECT_EQ(next.head(), 1u) << "positions continue after the base's";
  next.Delete(cf, "k2");
  next.Put(cf, "k3", "v3");
  EXPECT_EQ(next.Get(cf, "k1").value(), std::optional<std::string>("v1"));
  EXPECT_EQ(next.Get(cf, "k2").value(), std::nullopt);
  EXPECT_EQ(next.Get(cf, "k3").value(), std::optional<std::string>("v3"));
  EXPECT_EQ(base.Get(cf, "k3").value(), std::nullopt) << "never the reverse";
  ASSERT_TRUE(next.Append({Note("s", 0)}, EventMeta{"alice", "", 1700000000000},
                          EventIds())
                  .ok())
      << "the stream's revision is read through the base";

  ASSERT_TRUE(base.Commit().ok());
  next.ClearBase();
  EXPECT_EQ(next.Get(cf, "k1").value(), std::optional<std::string>("v1"));
  ASSERT_TRUE(next.Commit().ok());
  EXPECT_EQ(log_->head(), 2u);
  std::string value;
  EXPECT_TRUE(
      log_->db()->Get(rocksdb::ReadOptions(), cf, "k2", &value).IsNotFound());
  auto revision = log_->StreamRevision("s");
  ASSERT_TRUE(revision.ok());
  EXPECT_EQ(*revision, std::optional<uint64_t>(1));
}

}  // namespace
}  // namespace convstore
