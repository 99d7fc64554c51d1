// EventLog: the append-only event log in a RocksDB directory. One gapless
// global position (from 1) over all events and a revision (from 0) per stream;
// events are only ever written through a LogBatch, committed with a synced
// write, so a successful Commit means the events survive a crash.
// Thread-safety: reads are safe from any thread. Batches that append events
// are built and committed in one order by their owner (the
// GroupCommitWriter): at most one being built while the one before it, its
// base, commits. Batches that only write beside the log (a rebuild's read
// models) may commit concurrently and never move the head. After a failed
// synced write the log refuses every later commit, as LevelDB's log does.
#pragma once

#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <boost/unordered/unordered_flat_map.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/data_key.h"
#include "core/model.h"
#include "core/status.h"
#include "eventlog/event_codec.h"
#include "eventlog/string_map.h"

namespace convstore {

class EventLog;
class LogBatch;

// Data keys (core/data_key.h) read from the committed store, remembered for
// one reader. A key destroyed after it was remembered still opens payloads
// read through this cache: keep one for one bounded read, or for a forward
// scan (an erasure is the last event of its subject, so a scan that has
// passed it reads nothing of the subject again). Not thread-safe.
class DataKeyCache {
 public:
  Result<std::optional<DataKey>> Find(const EventLog& log,
                                      std::string_view subject);

 private:
  static constexpr size_t kMaxEntries = 4096;
  StringMap<std::optional<DataKey>> keys_;
};

// The committed rows the writer has read or written of the tables only its
// batches write (stream revisions, data keys, and the tables the sinks
// name in WriterOwnedTables), so that deciding a command does not search
// the store for them. Give one to every batch the writer builds (LogBatch's
// `cache`), and Absorb each batch once it has committed, before any later
// batch reads past it. Not thread-safe: owned by the writer's deciding
// thread.
class WriterCache {
 public:
  // A committed batch's writes to the covered tables. After a failed
  // commit, call Clear instead: nothing of that batch is known to be stored.
  void Absorb(const LogBatch& committed);
  void Clear() { tables_.clear(); }

 private:
  friend class LogBatch;
  // Bounded: a table's rows are dropped when they pass this (then read from
  // the store again). 2 MiB holds the rows of about 3,000 conversations; at
  // 8 MiB the server's RSS grew by about 30 MiB once creates had filled it.
  static constexpr size_t kMaxBytesPerTable = 2 << 20;
  struct Table {
    uint32_t cf_id;
    size_t bytes = 0;  // RowBytes of every row
    StringMap<std::optional<std::string>> rows;
  };
  // What a row is counted as against the bound.
  static size_t RowBytes(std::string_view key,
                         const std::optional<std::string>& value);
  // The table of `cf_id`, or nullptr when there is none yet.
  Table* TableOf(uint32_t cf_id) const;
  // The value as committed, or nullopt when the key is known to be absent;
  // nullptr when the cache does not know (or does not cover the table).
  const std::optional<std::string>* Find(const EventLog& log, uint32_t cf_id,
                                         std::string_view key) const;
  void Remember(const EventLog& log, uint32_t cf_id, std::string_view key,
                std::optional<std::string> value);
  void Forget(const EventLog& log, uint32_t cf_id, std::string_view key);
  // few: searched in order. mutable: TableOf serves Find and Remember.
  mutable std::vector<Table> tables_;
};

// Something that derives state from events in the same write batch (a
// projection). Apply must only write into `batch`.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual Status Apply(const RecordedEvent& event, LogBatch& batch) = 0;
  // Called once per batch that appended events, after its last Apply and
  // before it commits, on the thread that built it (e.g. to write a
  // checkpoint once per batch rather than once per event).
  virtual void Seal(LogBatch& /*batch*/) {}
  // Tables that, once this is a sink of the log, only its Apply writes (so
  // only the writer's batches): the writer may keep the rows it reads of
  // them in memory (WriterCache). Name only small tables that decisions
  // read.
  virtual std::vector<rocksdb::ColumnFamilyHandle*> WriterOwnedTables() const {
    return {};
  }
};

// Who wrote an event and why; stamped on every event of one command.
struct EventMeta {
  std::string actor;
  std::string idempotency_key;
  int64_t recorded_at_ms = 0;
};

// For a column family whose point lookups mostly miss the memtable: the
// size of a memtable bloom filter (memtable_prefix_bloom_size_ratio), 1% of
// the memtable, that skips the memtable search for keys it does not hold.
inline constexpr double kMemtableBloomRatio = 0.01;

// For a column family whose keys are each rewritten many times between two
// flushes (a stream's revision): a memtable of one short skip list per key,
// found by hash, instead of one skip list of every row. Debian's librocksdb
// is built with its assertions on, which re-check every level of the one
// big skip list on each insert (about 18 key comparisons). Not for keys
// written once each (message ids): a flush sorts every row into a new skip
// list, which costs more than the inserts saved (convstore_bench_memtable).
// Sets the column family's prefix_extractor to the whole key: iterators see
// only the key they seek to unless they ask for total order
// (WholeTableReadOptions), and those pay for sorting the memtable.
void UseMemtablePerKey(rocksdb::ColumnFamilyOptions& options);

// The merge operator of every table EventLog::Open opens (what
// LogBatch::Merge writes): each merge appends its bytes to the value (an
// absent one counts as empty). RocksDB joins a key's appends when it
// flushes and compacts.
std::shared_ptr<rocksdb::MergeOperator> AppendMergeOperator();

struct EventLogOptions {
  // Column families the caller (projections, auth) keeps beside the log.
  std::vector<std::string> extra_column_families;
  bool create_if_missing = true;
  // Open as a read-only instance (a static view; nothing is written).
  bool read_only = false;
  // When set, open as a RocksDB secondary instance beside a running server
  // (never taking its lock); this scratch dir holds the secondary's own
  // files. The open reads the MANIFEST again at its end, so a flush that
  // deleted a WAL file during it hides nothing; CatchUpWithPrimary() then
  // follows the server's new writes.
  std::string secondary_path;
  // The RocksDB Env to run on (tests inject faults through it); default:
  // the process's default Env.
  std::shared_ptr<rocksdb::Env> env;
  // What compactions drop from a column family (records past their time),
  // by its name. Such a family's files are also compacted once a day at
  // least, so that what nobody writes over still goes.
  std::map<std::string, std::shared_ptr<rocksdb::CompactionFilterFactory>>
      compaction_filters;
  // Adjusts a caller's column family's options by its name (e.g. memtable
  // insert hints for keys that arrive in order), at open and whenever the
  // family is created later through CreateColumnFamilies.
  std::function<void(std::string_view name, rocksdb::ColumnFamilyOptions&)>
      tune_column_family;
};

class EventLog {
 public:
  static Result<std::unique_ptr<EventLog>> Open(const std::string& dir,
                                                const EventLogOptions& options);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Last committed position; 0 for an empty log.
  uint64_t head() const { return head_.load(std::memory_order_acquire); }
  // Set once a synced write failed; every later commit is refused.
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  // Why commits are refused once failed(): 507 when the disk was full, else
  // 503. Only meaningful after failed() returned true.
  Status WriteRefusal() const;

  Result<std::optional<RecordedEvent>> Read(uint64_t position) const;
  // A subject's data key (DataKeySubjectOf), as committed or as `batch` has
  // it; nullopt when it has none or it was erased (destroyed).
  Result<std::optional<DataKey>> DataKeyOf(
      std::string_view subject, const LogBatch* batch = nullptr) const;
  // Events with position >= from, in order, at most `limit`.
  Result<std::vector<RecordedEvent>> ReadRange(uint64_t from,
                                               size_t limit) const;
  // As ReadRange, into events[0, n), n returned: the events already in
  // `events` are overwritten in place, reusing their strings' storage, and
  // it grows as needed (never shrinks). For long sequential scans (export)
  // that read the log in chunks: no allocation per event once warm, a large
  // read ahead, and what is read is not put in the block cache. A scan that
  // calls it chunk after chunk passes one `cache` to every call. On an error
  // `events` holds unspecified values.
  Result<size_t> ReadRangeInto(uint64_t from, size_t limit,
                               std::vector<RecordedEvent>& events,
                               DataKeyCache* cache = nullptr) const;
  // Current revision of a stream; nullopt when it has no events.
  Result<std::optional<uint64_t>> StreamRevision(std::string_view stream) const;

  // Number of streams that have events.
  Result<uint64_t> CountStreams() const;
  // RocksDB's background work, all tables: flushes and compactions running
  // now, and the bytes its compactions estimate they have yet to rewrite.
  // A store whose backlog is not zero is still spending disk and CPU on
  // earlier writes (for /metrics, and for benchmarks that wait it out).
  struct Backlog {
    uint64_t running_jobs = 0;
    uint64_t pending_compaction_bytes = 0;
  };
  Backlog BackgroundBacklog() const;
  // A consistent copy of the whole store (log and everything beside it) in
  // `dir`, which must not exist; hard-links files where it can. Safe while
  // writes continue.
  Status CreateCheckpoint(const std::string& dir) const;

  // The position of the last erasure event committed, and the one up to
  // which PurgeErased has made what erasures removed unrecoverable from the
  // files of the store (both 0 when there was none).
  uint64_t erasure_head() const { return erasure_head_.load(); }
  uint64_t purged_erasure_head() const { return purged_erasure_head_.load(); }
  // Flushes every memtable (so the WAL files holding erased rows and data
  // keys are deleted) and compacts every table but the events to its last
  // level (so no older version of them stays in a table file), then records
  // erasure_head() as purged. Slow on a big store: run it in the background,
  // one at a time; safe beside reads and writes. A no-op when nothing new
  // was erased.
  Status PurgeErased();

  // For a secondary instance: sees what the primary has written since.
  Status CatchUpWithPrimary();

  rocksdb::DB* db() const { return db_.get(); }
  // The streams table: stream name -> its revision, 8 bytes big-endian
  // (DecodePositionKey); read it through a LogBatch to see pending appends.
  rocksdb::ColumnFamilyHandle* streams_cf() const { return streams_cf_; }
  // A column family opened with the log (its own or an extra one); nullptr if
  // it does not exist.
  rocksdb::ColumnFamilyHandle* cf(std::string_view name) const;
  // Names of every column family, in name order.
  std::vector<std::string> ColumnFamilyNames() const;
  // Creates those of the column families that do not exist yet (read
  // models of a rebuild), all in one RocksDB call.
  Status CreateColumnFamilies(const std::vector<std::string>& names);
  // Drops those of the column families that exist, and their data, in one
  // RocksDB call; no handle to them may be in use.
  Status DropColumnFamilies(const std::vector<std::string>& names);

  // Projections applied to every appended event, inside the same batch.
  // Call AddSink before writing starts; ReplaceSink only from the thread
  // that owns LogBatches (the writer), e.g. to switch to rebuilt read models.
  void AddSink(EventSink* sink) {
    sinks_.push_back(sink);
    FindWriterOwnedTables();
  }
  void ReplaceSink(EventSink* old_sink, EventSink* new_sink) {
    for (EventSink*& s : sinks_) {
      if (s == old_sink) s = new_sink;
    }
    FindWriterOwnedTables();
  }

 private:
  friend class LogBatch;
  friend class DataKeyCache;
  friend class WriterCache;
  EventLog() = default;
  DataKeyLookup KeysThrough(DataKeyCache& cache) const;
  // The tables only the writer's batches write: the streams and data keys,
  // and those the sinks name; kept in writer_owned_.
  void FindWriterOwnedTables();
  bool IsWriterOwned(uint32_t cf_id) const;
  // Writes `batch` synced; moves the head only when the batch appended.
  Status CommitBatch(rocksdb::WriteBatch& batch,
                     std::optional<uint64_t> new_head,
                     std::optional<uint64_t> new_erasure_head);
  Status ReloadHead();

  std::shared_ptr<rocksdb::Env> env_;  // outlives db_
  std::unique_ptr<rocksdb::DB> db_;
  // Options of every column family, those created later included.
  rocksdb::ColumnFamilyOptions cf_options_;
  // EventLogOptions::tune_column_family, kept for CreateColumnFamilies.
  std::function<void(std::string_view, rocksdb::ColumnFamilyOptions&)>
      tune_column_family_;
  // Guards cfs_: column families are created and dropped while readers run.
  mutable std::shared_mutex cfs_mu_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*, std::less<>> cfs_;
  rocksdb::ColumnFamilyHandle* events_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* streams_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* data_keys_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* default_cf_ = nullptr;
  // Handles of dropped column families, destroyed at close.
  std::vector<rocksdb::ColumnFamilyHandle*> dropped_;
  std::atomic<uint64_t> erasure_head_{0};
  std::atomic<uint64_t> purged_erasure_head_{0};
  std::vector<EventSink*> sinks_;
  // Read and changed only by the thread that owns the batches (as sinks_).
  std::vector<uint32_t> writer_owned_;
  std::atomic<uint64_t> head_{0};
  std::atomic<bool> failed_{false};
  std::atomic<bool> disk_full_{false};  // set before failed_
  bool read_only_ = false;
};

// A set of appends and read-model writes committed atomically by one synced
// write. Reads through the batch see its own pending writes, so commands
// decided later in the same group see the effects of earlier ones.
// Not thread-safe: owned by one thread at a time.
class LogBatch {
 public:
  // With a `base`, the batch continues one that is still being committed:
  // its positions follow the base's, and reads see the base's writes too.
  // It must be committed after the base, and the base must stay alive
  // (unchanged) until this batch is committed or ClearBase() is called.
  // Reading a base concurrently with its commit is safe: both only read it.
  // With a `cache` (the writer's), reads of the tables only the writer
  // writes (EventLog's writer-owned tables) that neither this batch nor its
  // bases wrote are answered from it.
  explicit LogBatch(EventLog* log, const LogBatch* base = nullptr,
                    WriterCache* cache = nullptr);
  // Once the base is committed, its writes are in the store.
  void ClearBase() { base_ = nullptr; }

  // Appends events, checking each one's expected revision against the stream
  // (including earlier appends in this batch), assigns positions and
  // revisions, and applies every sink. On error nothing of this call remains.
  // Returns the recorded events as the batch holds them (no copy): valid
  // until the batch's next Append, rollback or TakeAppended.
  Result<std::span<const RecordedEvent>> Append(
      std::vector<NewEvent> events, const EventMeta& meta,
      const std::function<std::string()>& new_event_id);

  // Reads an event as it would be after this batch commits (including the
  // batch's own appends).
  Result<std::optional<RecordedEvent>> ReadEvent(uint64_t position) const;

  // Reads a key as it would be after this batch commits.
  Result<std::optional<std::string>> Get(rocksdb::ColumnFamilyHandle* cf,
                                         std::string_view key) const;
  void Put(rocksdb::ColumnFamilyHandle* cf, std::string_view key,
           std::string_view value);
  void Delete(rocksdb::ColumnFamilyHandle* cf, std::string_view key);
  // What this batch itself wrote to `key`: its value, or the bytes its
  // merges append; read neither from its bases nor from the store (so
  // cheap). nullopt when it wrote nothing there or deleted the key.
  std::optional<std::string_view> Written(rocksdb::ColumnFamilyHandle* cf,
                                          std::string_view key) const;
  // Appends `bytes` to the key's value (absent counts as empty) without
  // reading it: every table's merge operator is AppendMergeOperator() (and
  // Get answers as it does). Not for the tables the writer caches
  // (WriterOwnedTables).
  void Merge(rocksdb::ColumnFamilyHandle* cf, std::string_view key,
             std::string_view bytes);

  // Savepoints let one command's work be undone without touching others'.
  void SetSavePoint();
  void RollbackToSavePoint();
  void PopSavePoint();
  // How many savepoints are set; RollbackTo(depth) undoes everything written
  // since the depth was `depth`, whatever savepoints were left in between
  // (e.g. by an exception).
  size_t savepoint_depth() const { return savepoints_.size(); }
  void RollbackTo(size_t depth);

  bool empty() const { return batch_.Count() == 0; }
  // Ends the batch: the sinks' Seal runs if it appended events. Nothing may
  // be written after. Commit seals a batch that is not sealed yet.
  void Seal();
  uint64_t head() const { return next_position_ - 1; }
  // Writes the batch with sync=true. The batch cannot be reused after.
  Status Commit();
  // The events this batch appended (those of rolled-back commands are gone),
  // in position order; taken once it committed, to tell subscribers.
  std::vector<RecordedEvent> TakeAppended() { return std::move(appended_); }
  // The events appended so far (a command's are those after the count it
  // saw before it ran).
  size_t appended_count() const { return appended_.size(); }
  const RecordedEvent& appended_event(size_t i) const { return appended_[i]; }

  EventLog* log() const { return log_; }

 private:
  friend class WriterCache;
  // kAppended: the batch only merged into the key; `value` is what it
  // appends to the value below it.
  enum class Lookup { kAbsent, kFound, kDeleted, kAppended };
  // This batch's own pending write of `key`, if any.
  Lookup LookupOwn(rocksdb::ColumnFamilyHandle* cf, std::string_view key,
                   std::string* value) const;
  // Where the latest write of a key lies in batch_'s bytes: reads through
  // the batch are point lookups only, so a hash map per column family finds
  // them (RocksDB's WriteBatchWithIndex keeps a sorted index, dearer to
  // build, for iterators we do not need).
  struct OwnWrite {
    enum class Kind : uint8_t { kPut, kDelete, kAppend };
    size_t offset = 0;  // of the value in batch_.Data(), or in merged_
    size_t size = 0;
    Kind kind = Kind::kPut;
    // The bytes are in merged_: a key's second merge here (or a merge
    // after its put) leaves a value in no one record of batch_.
    bool in_merged = false;
  };
  // The bytes an own write holds.
  std::string_view BytesOf(const OwnWrite& write) const;
  // A key written to one table, as where its bytes lie in the table's
  // `keys`: a flat hash map of these costs no allocation per write (a map
  // of strings cost two, a node and the key).
  struct KeyRef {
    uint32_t offset;
    uint32_t size;
  };
  // Hashes and compares KeyRefs and string_views alike, by their bytes.
  struct KeyOps {
    using is_transparent = void;
    const std::string* keys;
    std::string_view View(KeyRef k) const {
      return std::string_view(*keys).substr(k.offset, k.size);
    }
    static std::string_view View(std::string_view k) { return k; }
    template <typename K>
    size_t operator()(const K& k) const {
      return std::hash<std::string_view>()(View(k));
    }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return View(a) == View(b);
    }
  };
  struct OwnTable {
    explicit OwnTable(uint32_t id)
        : cf_id(id), writes(0, KeyOps{&keys}, KeyOps{&keys}) {}
    OwnTable(const OwnTable&) = delete;
    OwnTable& operator=(const OwnTable&) = delete;
    uint32_t cf_id;
    std::string keys;  // every key written, one after another
    boost::unordered_flat_map<KeyRef, OwnWrite, KeyOps, KeyOps> writes;
  };
  // How to undo one write to the index when a savepoint is rolled back.
  struct Undo {
    OwnTable* table;
    KeyRef key;
    std::optional<OwnWrite> before;
  };
  // This batch's writes to `cf_id`, or nullptr when it made none.
  OwnTable* OwnTableOf(uint32_t cf_id) const;
  void Index(rocksdb::ColumnFamilyHandle* cf, std::string_view key,
             OwnWrite write);
  // How `event`'s payload is stored: sealed with its subject's data key
  // (created with the subject's first event), or clear when it has no
  // subject or is the erasure that destroys the key. NotFound for an event
  // of an erased subject.
  Status SealFor(const RecordedEvent& event, std::optional<PayloadSeal>& seal);

  EventLog* log_;
  const LogBatch* base_;
  WriterCache* cache_;
  rocksdb::WriteBatch batch_;
  // The values of keys merged into twice or more (or after a put) as this
  // batch knows them, each merge's after the ones before (a rolled-back
  // merge's stay, unused).
  std::string merged_;
  std::vector<std::unique_ptr<OwnTable>> own_;  // few: searched in order
  std::vector<Undo> undo_;                      // while a savepoint is set
  uint64_t next_position_;
  const uint64_t first_position_;  // next_position_ when the batch opened
  bool sealed_ = false;
  struct SavePoint {
    uint64_t next_position;
    size_t undo_size;
  };
  std::vector<SavePoint> savepoints_;
  std::vector<RecordedEvent> appended_;
};

// A RocksDB status as a convstore Status (Corruption or IOError), with
// `what` naming the operation; ok stays ok.
Status FromRocksStatus(const rocksdb::Status& s, std::string_view what);

// Read options for a scan of a whole table. Some tables hash or filter on a
// key prefix (the messages and streams tables), and without total order an
// iterator over such a table sees one prefix's rows only.
rocksdb::ReadOptions WholeTableReadOptions();

// Key encodings shared by the log and its readers.
std::string EncodePositionKey(uint64_t position);  // 8 bytes, big-endian
uint64_t DecodePositionKey(std::string_view key);

}  // namespace convstore
