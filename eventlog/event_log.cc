#include "eventlog/event_log.h"

#include <rocksdb/cache.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_buffer_manager.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "eventlog/event_codec.h"
#include "eventlog/random.h"

namespace convstore {
namespace {

constexpr char kEventsCf[] = "events";    // position -> EventEnvelope
constexpr char kStreamsCf[] = "streams";  // stream -> current revision
// subject (DataKeySubjectOf) -> its 32-byte data key, or kDestroyedKey once
// the subject was erased (so no later event can make it a new key).
constexpr char kDataKeysCf[] = "data_keys";
constexpr std::string_view kDestroyedKey("\0", 1);

// A stored data key; nullopt when destroyed (or, for a sealed payload, never
// stored: unreadable either way).
Result<std::optional<DataKey>> DecodeDataKey(
    const std::optional<std::string>& stored) {
  if (!stored || *stored == kDestroyedKey) return std::optional<DataKey>();
  if (stored->size() != kDataKeyBytes) {
    return Status::Corruption("stored data key has " +
                              std::to_string(stored->size()) + " bytes");
  }
  DataKey key;
  std::memcpy(key.data(), stored->data(), key.size());
  return std::optional<DataKey>(key);
}

// Rows in the default table: the position of the last erasure committed,
// and the one PurgeErased last made unrecoverable (8 bytes big-endian).
constexpr char kErasureHeadKey[] = "erasure_head";
constexpr char kPurgedErasureHeadKey[] = "purged_erasure_head";

bool IsErasure(const EventPayload& payload) {
  return std::holds_alternative<ConversationErased>(payload) ||
         std::holds_alternative<AgentErased>(payload);
}

std::string EncodeU64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i) {
    s[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return s;
}

uint64_t DecodeU64(std::string_view s) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8 && i < s.size(); ++i) {
    v = (v << 8) | static_cast<uint8_t>(s[i]);
  }
  return v;
}

}  // namespace

namespace {

constexpr size_t kMemtableBudgetBytes = 64 << 20;
constexpr size_t kBlockCacheBytes = 32 << 20;
constexpr size_t kRowCacheBytes = 8 << 20;
// Read ahead of a sequential scan (ReadRangeInto).
constexpr size_t kScanReadaheadBytes = 256 << 10;

// RocksDB's warnings and errors go to the server's log; its info chatter is
// dropped. Nothing is written to a LOG file in the data dir: on a full disk,
// RocksDB's own file logger fails and then aborts (an assertion in Debian's
// librocksdb 7.8) on its next line, taking the server down.
class RocksLogToSpdlog : public rocksdb::Logger {
 public:
  RocksLogToSpdlog() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format,
            va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char line[1024];
    std::vsnprintf(line, sizeof(line), format, ap);
    // A failed open is returned as a Status that the caller reports (or, for
    // a store locked by the server, handles); RocksDB's line adds nothing.
    if (std::strstr(line, "DB::Open() failed") != nullptr) return;
    if (level >= rocksdb::InfoLogLevel::ERROR_LEVEL) {
      spdlog::error("rocksdb: {}", line);
    } else {
      spdlog::warn("rocksdb: {}", line);
    }
  }
};

}  // namespace

rocksdb::ReadOptions WholeTableReadOptions() {
  rocksdb::ReadOptions read;
  read.total_order_seek = true;
  return read;
}

Status FromRocksStatus(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status();
  if (s.IsCorruption()) {
    return Status::Corruption(std::string(what) + ": " + s.ToString());
  }
  if (s.IsNoSpace()) {
    return Status::InsufficientStorage(std::string(what) + ": " + s.ToString());
  }
  return Status::IOError(std::string(what) + ": " + s.ToString());
}

std::string EncodePositionKey(uint64_t position) { return EncodeU64(position); }
uint64_t DecodePositionKey(std::string_view key) { return DecodeU64(key); }

namespace {

// The log's own column families' options beyond the shared ones.
void TuneLogColumnFamily(std::string_view name,
                         rocksdb::ColumnFamilyOptions& options) {
  if (name == kEventsCf) {
    // Positions only grow: each insert lands right after the one before,
    // so the memtable keeps that spot as a hint instead of searching.
    options.memtable_insert_with_hint_prefix_extractor.reset(
        rocksdb::NewFixedPrefixTransform(0));
  } else if (name == kStreamsCf) {
    // Each append rewrites its stream's row, and the new version sorts just
    // before the one before: one memtable skip list of every stream took
    // about 50 key comparisons per insert (Debian's librocksdb is built
    // with its assertions on, which re-check the whole splice), a skip list
    // per stream about 10. Hashing on the whole key gives each stream its
    // own. Scans of all streams must ask for total order.
    UseMemtablePerKey(options);
  } else if (name == kDataKeysCf) {
    // A subject's key is written once and read on each of its appends,
    // mostly from the tables by then: a memtable bloom filter skips the
    // memtable search for a key it does not hold.
    options.memtable_prefix_bloom_size_ratio = kMemtableBloomRatio;
    options.memtable_whole_key_filtering = true;
  }
}

}  // namespace

namespace {

// `first` (when there is one), then every operand, into `out`.
template <typename Operands>
void JoinAppends(const rocksdb::Slice* first, const Operands& operands,
                 std::string* out) {
  size_t size = first != nullptr ? first->size() : 0;
  for (const rocksdb::Slice& operand : operands) size += operand.size();
  out->clear();
  out->reserve(size);
  if (first != nullptr) out->append(first->data(), first->size());
  for (const rocksdb::Slice& operand : operands) {
    out->append(operand.data(), operand.size());
  }
}

class AppendOperator : public rocksdb::MergeOperator {
 public:
  const char* Name() const override { return "convstore.Append"; }
  bool FullMergeV2(const MergeOperationInput& in,
                   MergeOperationOutput* out) const override {
    JoinAppends(in.existing_value, in.operand_list, &out->new_value);
    return true;
  }
  // Appends join into one append (a flush keeps one record per key).
  bool PartialMergeMulti(const rocksdb::Slice& /*key*/,
                         const std::deque<rocksdb::Slice>& operands,
                         std::string* joined,
                         rocksdb::Logger* /*logger*/) const override {
    JoinAppends(nullptr, operands, joined);
    return true;
  }
};

}  // namespace

std::shared_ptr<rocksdb::MergeOperator> AppendMergeOperator() {
  static const auto op = std::make_shared<AppendOperator>();
  return op;
}

void UseMemtablePerKey(rocksdb::ColumnFamilyOptions& options) {
  // Buckets of the hash (8 bytes each, from the memtable's own budget):
  // about as many as keys written between two flushes.
  constexpr size_t kBuckets = 1 << 16;
  options.prefix_extractor.reset(rocksdb::NewNoopTransform());
  options.memtable_factory.reset(rocksdb::NewHashSkipListRepFactory(kBuckets));
  // A hint is kept only by the one big skip list.
  options.memtable_insert_with_hint_prefix_extractor.reset();
}

Result<std::unique_ptr<EventLog>> EventLog::Open(
    const std::string& dir, const EventLogOptions& options) {
  rocksdb::Options db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  // The log is the record of truth: check every block we read.
  db_options.paranoid_checks = true;
  db_options.info_log = std::make_shared<RocksLogToSpdlog>();
  // Bounded memory however many column families (each read-model generation
  // adds eight): memtables share one budget and tables one block cache.
  db_options.write_buffer_manager =
      std::make_shared<rocksdb::WriteBufferManager>(kMemtableBudgetBytes);
  // A row read again from a table file (a conversation being followed, its
  // owner's list entry) is kept as found: the next read of it skips that
  // file's index and block search, which grows with the file. Not in a
  // secondary: the cache keeps a file's answer for "the latest" version,
  // and a secondary's latest lags the primary's files (one may hold a
  // newer version of a row next to an older one a snapshot kept), so a
  // later read, caught up, would get the older answer again. The tools
  // beside the server read stale rows that way. Nor may the store ever
  // write a range deletion: a cached row does not see one (RocksDB issue
  // 4122).
  if (options.secondary_path.empty()) {
    db_options.row_cache = rocksdb::NewLRUCache(kRowCacheBytes);
  }
  rocksdb::BlockBasedTableOptions table_options;
  table_options.block_cache = rocksdb::NewLRUCache(kBlockCacheBytes);
  // Point lookups (a conversation, a stream's revision, a key) skip the
  // tables that cannot hold the key instead of reading each one's index:
  // their cost stays flat as the store grows.
  table_options.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  // No implicit readahead: RocksDB starts one at an iterator's third data
  // block, even when the blocks come from the cache, which cost a
  // readahead(2) system call per GET messages of 50 messages. The long
  // scans (export, rebuild) set their own ReadOptions::readahead_size.
  table_options.max_auto_readahead_size = 0;
  if (options.create_if_missing && !options.read_only &&
      options.secondary_path.empty()) {
    // RocksDB logs an error when it opens a directory that does not exist
    // yet; a first start is not an error.
    db_options.env->CreateDirIfMissing(dir).PermitUncheckedError();
  }
  if (options.env) db_options.env = options.env.get();
  // A flush or compaction syncs its table file a megabyte at a time, as it
  // writes, instead of all at the end: that one big fsync (p99 23 ms under
  // the append benchmark) queued the WAL's fsyncs, so every append, behind
  // it (WAL fsync p99 2.75 ms; with this, 3.2 and 1.2 ms).
  db_options.bytes_per_sync = 1 << 20;
  // The streams table's hashed memtable takes one insert at a time; so does
  // our one committing thread.
  db_options.allow_concurrent_memtable_write = false;

  // RocksDB needs every existing column family named at open.
  std::set<std::string> names = {rocksdb::kDefaultColumnFamilyName, kEventsCf,
                                 kStreamsCf, kDataKeysCf};
  names.insert(options.extra_column_families.begin(),
               options.extra_column_families.end());
  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(db_options, dir, &existing).ok()) {
    names.insert(existing.begin(), existing.end());
  } else if (!options.create_if_missing || options.read_only ||
             !options.secondary_path.empty()) {
    return Status::NotFound("no convstore data directory at " + dir);
  }
  std::unique_ptr<EventLog> log(new EventLog());
  log->tune_column_family_ = options.tune_column_family;
  log->cf_options_ = rocksdb::ColumnFamilyOptions(db_options);
  log->cf_options_.table_factory.reset(
      rocksdb::NewBlockBasedTableFactory(table_options));
  // Every table takes LogBatch::Merge, so that whoever opens the store
  // (server, tools, a secondary beside the server) can replay its WAL and
  // read its merged rows. Tables nobody merges into pay nothing for it.
  log->cf_options_.merge_operator = AppendMergeOperator();
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : names) {
    rocksdb::ColumnFamilyOptions cf_options = log->cf_options_;
    TuneLogColumnFamily(name, cf_options);
    if (options.tune_column_family) {
      options.tune_column_family(name, cf_options);
    }
    if (auto it = options.compaction_filters.find(name);
        it != options.compaction_filters.end()) {
      cf_options.compaction_filter_factory = it->second;
      cf_options.periodic_compaction_seconds = 24 * 3600;
    }
    descriptors.emplace_back(name, cf_options);
  }

  log->env_ = options.env;
  const bool secondary = !options.secondary_path.empty();
  log->read_only_ = options.read_only || secondary;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (secondary) {
    // A secondary must keep every file open: the primary may delete them.
    db_options.max_open_files = -1;
    db_options.create_if_missing = false;
    s = rocksdb::DB::OpenAsSecondary(db_options, dir, options.secondary_path,
                                     descriptors, &handles, &raw);
  } else if (options.read_only) {
    s = rocksdb::DB::OpenForReadOnly(db_options, dir, descriptors, &handles,
                                     &raw);
  } else {
    s = rocksdb::DB::Open(db_options, dir, descriptors, &handles, &raw);
  }
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return Status::Unavailable(
          "data directory " + dir +
          " is locked by another process (is a server running on it?)");
    }
    return FromRocksStatus(s, "open " + dir);
  }
  log->db_.reset(raw);
  for (rocksdb::ColumnFamilyHandle* h : handles) log->cfs_[h->GetName()] = h;
  log->events_cf_ = log->cfs_[kEventsCf];
  log->streams_cf_ = log->cfs_[kStreamsCf];
  log->data_keys_cf_ = log->cfs_[kDataKeysCf];
  log->default_cf_ = log->cfs_[rocksdb::kDefaultColumnFamilyName];
  if (secondary) {
    // A flush that finished while we opened (an erasure's purge runs one
    // right after it) may have deleted a WAL file after we read the MANIFEST
    // that predates its table file: reading the MANIFEST again finds it.
    CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(log->db_->TryCatchUpWithPrimary(),
                                              "catch up with the server"));
  }
  for (auto [key, head] :
       {std::pair{kErasureHeadKey, &log->erasure_head_},
        std::pair{kPurgedErasureHeadKey, &log->purged_erasure_head_}}) {
    std::string value;
    rocksdb::Status rs =
        log->db_->Get(rocksdb::ReadOptions(), log->default_cf_, key, &value);
    if (!rs.IsNotFound()) {
      CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(rs, "open " + dir));
      head->store(DecodeU64(value));
    }
  }
  if (log->data_keys_cf_ == nullptr) {
    // A read-only view of a store from before data keys: nothing is sealed.
    log->data_keys_cf_ = log->streams_cf_;
  }
  log->FindWriterOwnedTables();

  CONVSTORE_RETURN_IF_ERROR(log->ReloadHead());
  return log;
}

Status EventLog::WriteRefusal() const {
  if (disk_full_) {
    return Status::InsufficientStorage(
        "the log refuses writes after the disk filled up; free space and "
        "restart the server");
  }
  return Status::Unavailable(
      "the log refuses writes after a failed write; restart the server");
}

Status EventLog::ReloadHead() {
  // Positions are gapless and commits atomic, so the head is the last key.
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), events_cf_));
  it->SeekToLast();
  if (it->Valid()) head_ = DecodeU64(it->key().ToStringView());
  return FromRocksStatus(it->status(), "read log head");
}

EventLog::Backlog EventLog::BackgroundBacklog() const {
  Backlog b;
  uint64_t v = 0;
  // Database-wide counts, whichever table is asked.
  for (const std::string& running :
       {rocksdb::DB::Properties::kNumRunningFlushes,
        rocksdb::DB::Properties::kNumRunningCompactions}) {
    if (db_->GetIntProperty(running, &v)) b.running_jobs += v;
  }
  if (db_->GetAggregatedIntProperty(
          rocksdb::DB::Properties::kEstimatePendingCompactionBytes, &v)) {
    b.pending_compaction_bytes = v;
  }
  return b;
}

Result<uint64_t> EventLog::CountStreams() const {
  uint64_t n = 0;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(WholeTableReadOptions(), streams_cf_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
  CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(it->status(), "count streams"));
  return n;
}

Status EventLog::CreateCheckpoint(const std::string& dir) const {
  rocksdb::Checkpoint* raw = nullptr;
  CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(
      rocksdb::Checkpoint::Create(db_.get(), &raw), "checkpoint"));
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  return FromRocksStatus(checkpoint->CreateCheckpoint(dir),
                         "checkpoint " + dir);
}

Status EventLog::CatchUpWithPrimary() {
  CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(db_->TryCatchUpWithPrimary(),
                                            "catch up with the server"));
  return ReloadHead();
}

EventLog::~EventLog() {
  if (!db_) return;
  for (auto& [name, h] : cfs_) db_->DestroyColumnFamilyHandle(h);
  cfs_.clear();
  for (rocksdb::ColumnFamilyHandle* h : dropped_) {
    db_->DestroyColumnFamilyHandle(h);
  }
  dropped_.clear();
  db_->Close();
}

rocksdb::ColumnFamilyHandle* EventLog::cf(std::string_view name) const {
  std::shared_lock lock(cfs_mu_);
  auto it = cfs_.find(name);
  return it == cfs_.end() ? nullptr : it->second;
}

std::vector<std::string> EventLog::ColumnFamilyNames() const {
  std::shared_lock lock(cfs_mu_);
  std::vector<std::string> names;
  for (const auto& [name, h] : cfs_) names.push_back(name);
  return names;
}

Status EventLog::CreateColumnFamilies(const std::vector<std::string>& names) {
  std::vector<rocksdb::ColumnFamilyDescriptor> missing;
  for (const std::string& name : names) {
    if (cf(name) != nullptr) continue;
    rocksdb::ColumnFamilyOptions options = cf_options_;
    if (tune_column_family_) tune_column_family_(name, options);
    missing.emplace_back(name, options);
  }
  if (missing.empty()) return Status();
  if (read_only_) return Status::Unavailable("the log is open read-only");
  // One call: RocksDB rewrites (and parses back) its OPTIONS file, every
  // column family in it, once per call. A call per table, to create one
  // generation and drop another, was a sixth of the instructions of a
  // 100,000-event rebuild.
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s = db_->CreateColumnFamilies(missing, &handles);
  // On failure RocksDB may still have created (and returned) some of them.
  std::unique_lock lock(cfs_mu_);
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    if (h != nullptr) cfs_[h->GetName()] = h;
  }
  return FromRocksStatus(s, "create column families");
}

Status EventLog::DropColumnFamilies(const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    if (name == kEventsCf || name == kStreamsCf || name == kDataKeysCf ||
        name == rocksdb::kDefaultColumnFamilyName) {
      return Status::InvalidArgument("the log's own column families stay");
    }
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  {
    std::unique_lock lock(cfs_mu_);
    for (const std::string& name : names) {
      auto it = cfs_.find(name);
      if (it == cfs_.end()) continue;
      handles.push_back(it->second);
      cfs_.erase(it);
    }
  }
  if (handles.empty()) return Status();
  // One call, for one rewrite of the OPTIONS file (see CreateColumnFamilies).
  Status s =
      FromRocksStatus(db_->DropColumnFamilies(handles), "drop column families");
  // Destroyed when the log closes: a purge may still be using them.
  std::unique_lock lock(cfs_mu_);
  dropped_.insert(dropped_.end(), handles.begin(), handles.end());
  return s;
}

Result<std::optional<DataKey>> DataKeyCache::Find(const EventLog& log,
                                                  std::string_view subject) {
  if (auto it = keys_.find(subject); it != keys_.end()) return it->second;
  std::string value;
  rocksdb::Status s =
      log.db()->Get(rocksdb::ReadOptions(), log.data_keys_cf_,
                    rocksdb::Slice(subject.data(), subject.size()), &value);
  std::optional<std::string> stored;
  if (!s.IsNotFound()) {
    CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(s, "read data key"));
    stored = std::move(value);
  }
  std::optional<DataKey> key;
  CONVSTORE_ASSIGN_OR_RETURN(key, DecodeDataKey(stored));
  // Bounded: a scan over many subjects starts over now and then.
  if (keys_.size() >= kMaxEntries) keys_.clear();
  keys_.emplace(std::string(subject), key);
  return key;
}

Result<std::optional<DataKey>> EventLog::DataKeyOf(
    std::string_view subject, const LogBatch* batch) const {
  std::optional<std::string> stored;
  if (batch != nullptr) {
    CONVSTORE_ASSIGN_OR_RETURN(stored, batch->Get(data_keys_cf_, subject));
  } else {
    std::string value;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), data_keys_cf_,
                 rocksdb::Slice(subject.data(), subject.size()), &value);
    if (!s.IsNotFound()) {
      CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(s, "read data key"));
      stored = std::move(value);
    }
  }
  return DecodeDataKey(stored);
}

DataKeyLookup EventLog::KeysThrough(DataKeyCache& cache) const {
  return [this, &cache](std::string_view subject) {
    return cache.Find(*this, subject);
  };
}

Result<std::optional<RecordedEvent>> EventLog::Read(uint64_t position) const {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), events_cf_, EncodeU64(position), &value);
  if (s.IsNotFound()) return std::optional<RecordedEvent>();
  CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(s, "read event"));
  DataKeyCache cache;
  const DataKeyLookup keys = KeysThrough(cache);
  RecordedEvent event;
  CONVSTORE_ASSIGN_OR_RETURN(event, DecodeEvent(value, &keys));
  return std::optional<RecordedEvent>(std::move(event));
}

Result<std::vector<RecordedEvent>> EventLog::ReadRange(uint64_t from,
                                                       size_t limit) const {
  std::vector<RecordedEvent> out;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), events_cf_));
  DataKeyCache cache;
  const DataKeyLookup keys = KeysThrough(cache);
  for (it->Seek(EncodeU64(from)); it->Valid() && out.size() < limit;
       it->Next()) {
    RecordedEvent event;
    CONVSTORE_ASSIGN_OR_RETURN(event,
                               DecodeEvent(it->value().ToStringView(), &keys));
    out.push_back(std::move(event));
  }
  CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(it->status(), "read events"));
  return out;
}

Result<size_t> EventLog::ReadRangeInto(uint64_t from, size_t limit,
                                       std::vector<RecordedEvent>& events,
                                       DataKeyCache* cache) const {
  rocksdb::ReadOptions options;
  options.fill_cache = false;
  options.readahead_size = kScanReadaheadBytes;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options, events_cf_));
  DataKeyCache own_cache;
  const DataKeyLookup keys = KeysThrough(cache != nullptr ? *cache : own_cache);
  EventDecoder decoder;
  size_t n = 0;
  for (it->Seek(EncodeU64(from)); it->Valid() && n < limit; it->Next()) {
    if (n == events.size()) events.emplace_back();
    CONVSTORE_RETURN_IF_ERROR(
        decoder.Decode(it->value().ToStringView(), events[n], &keys));
    ++n;
  }
  CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(it->status(), "read events"));
  return n;
}

Result<std::optional<uint64_t>> EventLog::StreamRevision(
    std::string_view stream) const {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), streams_cf_,
               rocksdb::Slice(stream.data(), stream.size()), &value);
  if (s.IsNotFound()) return std::optional<uint64_t>();
  CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(s, "read stream revision"));
  return std::optional<uint64_t>(DecodeU64(value));
}

Status EventLog::CommitBatch(rocksdb::WriteBatch& batch,
                             std::optional<uint64_t> new_head,
                             std::optional<uint64_t> new_erasure_head) {
  if (read_only_) return Status::Unavailable("the log is open read-only");
  if (failed()) return WriteRefusal();
  rocksdb::WriteOptions options;
  options.sync = true;
  rocksdb::Status s = db_->Write(options, &batch);
  if (!s.ok()) {
    // We cannot know how much of the write reached the disk, so no later
    // write may be acknowledged on top of it.
    Status status = FromRocksStatus(s, "synced write of the log");
    if (status.kind() == ErrorKind::kInsufficientStorage) disk_full_ = true;
    failed_.store(true, std::memory_order_release);
    return status;
  }
  if (new_head) head_.store(*new_head, std::memory_order_release);
  if (new_erasure_head) erasure_head_.store(*new_erasure_head);
  return Status();
}

Status EventLog::PurgeErased() {
  if (read_only_) return Status::Unavailable("the log is open read-only");
  const uint64_t target = erasure_head();
  if (target <= purged_erasure_head()) return Status();
  std::vector<rocksdb::ColumnFamilyHandle*> tables;
  {
    std::shared_lock lock(cfs_mu_);
    for (const auto& [name, h] : cfs_) tables.push_back(h);
  }
  // A table dropped meanwhile (an old read-model generation) is gone anyway;
  // its handle stays valid until the log closes (DropColumnFamilies).
  auto gone = [](const rocksdb::Status& s) {
    return s.ok() || s.IsColumnFamilyDropped();
  };
  // Every memtable to a table, so the WAL files that still hold erased rows
  // and keys become obsolete and are deleted.
  rocksdb::FlushOptions flush;
  flush.wait = true;
  for (rocksdb::ColumnFamilyHandle* h : tables) {
    rocksdb::Status s = db_->Flush(flush, h);
    if (!gone(s)) return FromRocksStatus(s, "flush " + h->GetName());
  }
  // Then every table to its last level, which drops the older versions of
  // deleted and overwritten rows. The events table holds only sealed
  // payloads of erased subjects, unreadable without their keys: skipped.
  rocksdb::CompactRangeOptions compact;
  compact.bottommost_level_compaction =
      rocksdb::BottommostLevelCompaction::kForceOptimized;
  compact.exclusive_manual_compaction = false;
  for (rocksdb::ColumnFamilyHandle* h : tables) {
    if (h == events_cf_) continue;
    rocksdb::Status s = db_->CompactRange(compact, h, nullptr, nullptr);
    if (!gone(s)) return FromRocksStatus(s, "compact " + h->GetName());
  }
  // Unsynced: if it is lost, the next start purges again.
  CONVSTORE_RETURN_IF_ERROR(
      FromRocksStatus(db_->Put(rocksdb::WriteOptions(), default_cf_,
                               kPurgedErasureHeadKey, EncodeU64(target)),
                      "record purged erasures"));
  purged_erasure_head_.store(target);
  return Status();
}

void EventLog::FindWriterOwnedTables() {
  writer_owned_.clear();
  for (rocksdb::ColumnFamilyHandle* cf : {streams_cf_, data_keys_cf_}) {
    if (cf != nullptr) writer_owned_.push_back(cf->GetID());
  }
  for (const EventSink* sink : sinks_) {
    for (rocksdb::ColumnFamilyHandle* cf : sink->WriterOwnedTables()) {
      writer_owned_.push_back(cf->GetID());
    }
  }
}

bool EventLog::IsWriterOwned(uint32_t cf_id) const {
  return std::find(writer_owned_.begin(), writer_owned_.end(), cf_id) !=
         writer_owned_.end();
}

size_t WriterCache::RowBytes(std::string_view key,
                             const std::optional<std::string>& value) {
  // Beyond its bytes, a hash node holding two strings and the heap blocks
  // of their contents.
  constexpr size_t kRowOverhead = 128;
  return key.size() + (value ? value->size() : 0) + kRowOverhead;
}

WriterCache::Table* WriterCache::TableOf(uint32_t cf_id) const {
  for (Table& table : tables_) {
    if (table.cf_id == cf_id) return &table;
  }
  return nullptr;
}

const std::optional<std::string>* WriterCache::Find(
    const EventLog& log, uint32_t cf_id, std::string_view key) const {
  if (!log.IsWriterOwned(cf_id)) return nullptr;
  const Table* table = TableOf(cf_id);
  if (table == nullptr) return nullptr;
  auto it = table->rows.find(key);
  return it == table->rows.end() ? nullptr : &it->second;
}

void WriterCache::Remember(const EventLog& log, uint32_t cf_id,
                           std::string_view key,
                           std::optional<std::string> value) {
  if (!log.IsWriterOwned(cf_id)) return;
  Table* table = TableOf(cf_id);
  if (table == nullptr) table = &tables_.emplace_back(Table{cf_id, 0, {}});
  table->bytes += RowBytes(key, value);
  if (auto it = table->rows.find(key); it != table->rows.end()) {
    // A row rewritten (a stream's revision on every append) counts once.
    table->bytes -= RowBytes(key, it->second);
    it->second = std::move(value);
  } else {
    table->rows.emplace(std::string(key), std::move(value));
  }
  if (table->bytes > kMaxBytesPerTable) {
    table->rows.clear();
    table->bytes = 0;
  }
}

void WriterCache::Forget(const EventLog& log, uint32_t cf_id,
                         std::string_view key) {
  if (!log.IsWriterOwned(cf_id)) return;
  Table* table = TableOf(cf_id);
  if (table == nullptr) return;
  if (auto it = table->rows.find(key); it != table->rows.end()) {
    table->bytes -= RowBytes(key, it->second);
    table->rows.erase(it);
  }
}

void WriterCache::Absorb(const LogBatch& committed) {
  const EventLog& log = *committed.log_;
  for (const auto& own : committed.own_) {
    if (!log.IsWriterOwned(own->cf_id)) continue;
    for (const auto& [key, write] : own->writes) {
      const std::string_view k = own->writes.hash_function().View(key);
      if (write.kind == LogBatch::OwnWrite::Kind::kAppend) {
        Forget(log, own->cf_id, k);  // (Merge is not for these tables)
      } else {
        Remember(log, own->cf_id, k,
                 write.kind == LogBatch::OwnWrite::Kind::kDelete
                     ? std::nullopt
                     : std::optional<std::string>(committed.BytesOf(write)));
      }
    }
  }
}

LogBatch::LogBatch(EventLog* log, const LogBatch* base, WriterCache* cache)
    : log_(log),
      base_(base),
      cache_(cache),
      next_position_((base != nullptr ? base->head() : log->head()) + 1),
      first_position_(next_position_) {}

LogBatch::OwnTable* LogBatch::OwnTableOf(uint32_t cf_id) const {
  for (const auto& table : own_) {
    if (table->cf_id == cf_id) return table.get();
  }
  return nullptr;
}

void LogBatch::Index(rocksdb::ColumnFamilyHandle* cf, std::string_view key,
                     OwnWrite write) {
  const uint32_t cf_id = cf->GetID();
  OwnTable* table = OwnTableOf(cf_id);
  if (table == nullptr) {
    table = own_.emplace_back(std::make_unique<OwnTable>(cf_id)).get();
  }
  auto it = table->writes.find(key);
  std::optional<OwnWrite> before;
  if (it == table->writes.end()) {
    const KeyRef ref{static_cast<uint32_t>(table->keys.size()),
                     static_cast<uint32_t>(key.size())};
    table->keys.append(key);
    it = table->writes.emplace(ref, write).first;
  } else {
    before = it->second;
    it->second = write;
  }
  if (!savepoints_.empty()) undo_.push_back({table, it->first, before});
}

LogBatch::Lookup LogBatch::LookupOwn(rocksdb::ColumnFamilyHandle* cf,
                                     std::string_view key,
                                     std::string* value) const {
  const OwnTable* table = OwnTableOf(cf->GetID());
  if (table == nullptr) return Lookup::kAbsent;
  auto it = table->writes.find(key);
  if (it == table->writes.end()) return Lookup::kAbsent;
  const OwnWrite& write = it->second;
  if (write.kind == OwnWrite::Kind::kDelete) return Lookup::kDeleted;
  value->assign(BytesOf(write));
  return write.kind == OwnWrite::Kind::kAppend ? Lookup::kAppended
                                               : Lookup::kFound;
}

std::optional<std::string_view> LogBatch::Written(
    rocksdb::ColumnFamilyHandle* cf, std::string_view key) const {
  const OwnTable* table = OwnTableOf(cf->GetID());
  if (table == nullptr) return std::nullopt;
  auto it = table->writes.find(key);
  if (it == table->writes.end() || it->second.kind == OwnWrite::Kind::kDelete) {
    return std::nullopt;
  }
  return BytesOf(it->second);
}

std::string_view LogBatch::BytesOf(const OwnWrite& write) const {
  const std::string& bytes = write.in_merged ? merged_ : batch_.Data();
  return std::string_view(bytes).substr(write.offset, write.size);
}

Result<std::optional<std::string>> LogBatch::Get(
    rocksdb::ColumnFamilyHandle* cf, std::string_view key) const {
  // What merges in this batch and its bases append, newest first.
  std::vector<std::string> appended;
  auto with_appended = [&](std::optional<std::string> below) {
    if (appended.empty()) return below;
    std::string value = below.value_or(std::string());
    for (auto it = appended.rbegin(); it != appended.rend(); ++it) {
      value += *it;
    }
    return std::optional<std::string>(std::move(value));
  };
  std::string value;
  for (const LogBatch* b = this; b != nullptr; b = b->base_) {
    switch (b->LookupOwn(cf, key, &value)) {
      case Lookup::kFound:
        return with_appended(std::move(value));
      case Lookup::kDeleted:
        return with_appended(std::nullopt);
      case Lookup::kAppended:
        appended.push_back(std::move(value));
        break;
      case Lookup::kAbsent:
        break;
    }
  }
  if (cache_ != nullptr) {
    if (const auto* cached = cache_->Find(*log_, cf->GetID(), key)) {
      return with_appended(*cached);
    }
  }
  rocksdb::Status s =
      log_->db()->Get(rocksdb::ReadOptions(), cf,
                      rocksdb::Slice(key.data(), key.size()), &value);
  std::optional<std::string> found;
  if (!s.IsNotFound()) {
    CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(s, "read through batch"));
    found = std::move(value);
  }
  // The store's value is the one that stays committed until a later batch
  // of the writer's (which Absorb tells the cache about).
  if (cache_ != nullptr) cache_->Remember(*log_, cf->GetID(), key, found);
  return with_appended(std::move(found));
}

Result<std::optional<RecordedEvent>> LogBatch::ReadEvent(
    uint64_t position) const {
  std::optional<std::string> raw;
  CONVSTORE_ASSIGN_OR_RETURN(raw, Get(log_->events_cf_, EncodeU64(position)));
  if (!raw) return std::optional<RecordedEvent>();
  const DataKeyLookup keys =
      [this](std::string_view subject) -> Result<std::optional<DataKey>> {
    std::optional<std::string> stored;
    CONVSTORE_ASSIGN_OR_RETURN(stored, Get(log_->data_keys_cf_, subject));
    return DecodeDataKey(stored);
  };
  RecordedEvent e;
  CONVSTORE_ASSIGN_OR_RETURN(e, DecodeEvent(*raw, &keys));
  return std::optional<RecordedEvent>(std::move(e));
}

void LogBatch::Put(rocksdb::ColumnFamilyHandle* cf, std::string_view key,
                   std::string_view value) {
  batch_.Put(cf, rocksdb::Slice(key.data(), key.size()),
             rocksdb::Slice(value.data(), value.size()));
  // A record ends with its value (WriteBatch's format), so the value is the
  // last bytes written.
  Index(cf, key,
        {batch_.Data().size() - value.size(), value.size(),
         OwnWrite::Kind::kPut, false});
}

void LogBatch::Delete(rocksdb::ColumnFamilyHandle* cf, std::string_view key) {
  batch_.Delete(cf, rocksdb::Slice(key.data(), key.size()));
  Index(cf, key, {0, 0, OwnWrite::Kind::kDelete, false});
}

void LogBatch::Merge(rocksdb::ColumnFamilyHandle* cf, std::string_view key,
                     std::string_view bytes) {
  batch_.Merge(cf, rocksdb::Slice(key.data(), key.size()),
               rocksdb::Slice(bytes.data(), bytes.size()));
  const OwnTable* table = OwnTableOf(cf->GetID());
  const OwnWrite* before = nullptr;
  if (table != nullptr) {
    if (auto it = table->writes.find(key); it != table->writes.end()) {
      before = &it->second;
    }
  }
  if (before == nullptr) {
    // The first write of the key here: what it appends is the record's
    // value, the last bytes written (as for Put).
    Index(cf, key,
          {batch_.Data().size() - bytes.size(), bytes.size(),
           OwnWrite::Kind::kAppend, false});
    return;
  }
  // What this batch knew of the key, with the bytes appended: a whole value
  // after a put or a delete here, else only what this batch appends.
  OwnWrite write{merged_.size(), 0,
                 before->kind == OwnWrite::Kind::kAppend
                     ? OwnWrite::Kind::kAppend
                     : OwnWrite::Kind::kPut,
                 true};
  if (before->kind != OwnWrite::Kind::kDelete) {
    // Copied first: the bytes may lie in merged_ itself.
    const std::string known(BytesOf(*before));
    merged_.append(known);
  }
  merged_.append(bytes);
  write.size = merged_.size() - write.offset;
  Index(cf, key, write);
}

void LogBatch::SetSavePoint() {
  batch_.SetSavePoint();
  savepoints_.push_back({next_position_, undo_.size()});
}

void LogBatch::RollbackToSavePoint() {
  batch_.RollbackToSavePoint();
  const SavePoint savepoint = savepoints_.back();
  savepoints_.pop_back();
  while (undo_.size() > savepoint.undo_size) {
    Undo& undo = undo_.back();
    auto it = undo.table->writes.find(undo.key);
    if (undo.before) {
      it->second = *undo.before;
    } else {
      undo.table->writes.erase(it);
    }
    undo_.pop_back();
  }
  next_position_ = savepoint.next_position;
  while (!appended_.empty() && appended_.back().position >= next_position_) {
    appended_.pop_back();
  }
}

void LogBatch::RollbackTo(size_t depth) {
  while (savepoints_.size() > depth) RollbackToSavePoint();
}

void LogBatch::PopSavePoint() {
  batch_.PopSavePoint();
  savepoints_.pop_back();
  // What is left can no longer be rolled back.
  if (savepoints_.empty()) undo_.clear();
}

Result<std::span<const RecordedEvent>> LogBatch::Append(
    std::vector<NewEvent> events, const EventMeta& meta,
    const std::function<std::string()>& new_event_id) {
  rocksdb::ColumnFamilyHandle* events_cf = log_->events_cf_;
  rocksdb::ColumnFamilyHandle* streams_cf = log_->streams_cf_;
  const size_t first = appended_.size();
  SetSavePoint();
  // The rollback also drops the events this call put in appended_.
  auto fail = [&](Status s) -> Result<std::span<const RecordedEvent>> {
    RollbackToSavePoint();
    return s;
  };
  for (NewEvent& e : events) {
    auto current = Get(streams_cf, e.stream);
    if (!current.ok()) return fail(current.status());
    std::optional<uint64_t> revision;
    if (*current) revision = DecodeU64(**current);
    if (e.expected_revision) {
      bool matches =
          *e.expected_revision == NewEvent::kNoStream
              ? !revision.has_value()
              : revision.has_value() &&
                    static_cast<int64_t>(*revision) == *e.expected_revision;
      if (!matches) {
        return fail(Status::Conflict(
            "stream " + e.stream + " is at revision " +
                (revision ? std::to_string(*revision) : "none") +
                ", expected " + std::to_string(*e.expected_revision),
            "revision_conflict"));
      }
    }
    RecordedEvent& r = appended_.emplace_back();
    r.position = next_position_++;
    r.stream = std::move(e.stream);
    r.revision = revision ? *revision + 1 : 0;
    r.event_id = new_event_id();
    r.recorded_at_ms = meta.recorded_at_ms;
    r.actor = meta.actor;
    r.idempotency_key = meta.idempotency_key;
    r.payload = std::move(e.payload);
    std::optional<PayloadSeal> seal;
    auto sealed = SealFor(r, seal);
    if (!sealed.ok()) return fail(sealed);
    if (seal) {
      auto encoded = EncodeSealedEvent(r, *seal);
      if (!encoded.ok()) return fail(encoded.status());
      Put(events_cf, EncodeU64(r.position), *encoded);
    } else {
      Put(events_cf, EncodeU64(r.position), EncodeEvent(r));
    }
    Put(streams_cf, r.stream, EncodeU64(r.revision));
    for (EventSink* sink : log_->sinks_) {
      Status s = sink->Apply(r, *this);
      if (!s.ok()) return fail(s);
    }
  }
  PopSavePoint();
  return std::span<const RecordedEvent>(appended_).subspan(first);
}

Status LogBatch::SealFor(const RecordedEvent& event,
                         std::optional<PayloadSeal>& seal) {
  if (std::holds_alternative<UserErased>(event.payload)) {
    // Nothing of its own to seal or shred, but what the user's erasure
    // removed beside the log (API keys, webhooks) must be purged too.
    Put(log_->default_cf_, kErasureHeadKey, EncodeU64(event.position));
    return Status();
  }
  const std::string subject = DataKeySubjectOf(event.stream);
  if (subject.empty()) return Status();
  rocksdb::ColumnFamilyHandle* keys_cf = log_->data_keys_cf_;
  std::optional<std::string> stored;
  CONVSTORE_ASSIGN_OR_RETURN(stored, Get(keys_cf, subject));
  if (stored && *stored == kDestroyedKey) {
    return Status::NotFound("stream " + event.stream + " was erased");
  }
  if (IsErasure(event.payload)) {
    // The erasure itself stays readable: it holds no personal data.
    Put(keys_cf, subject, kDestroyedKey);
    Put(log_->default_cf_, kErasureHeadKey, EncodeU64(event.position));
    return Status();
  }
  seal.emplace();
  if (stored) {
    std::optional<DataKey> key;
    CONVSTORE_ASSIGN_OR_RETURN(key, DecodeDataKey(stored));
    seal->key = *key;
  } else {
    // The subject's first event (or its first since data keys exist).
    SecureRandomBytes(seal->key.data(), seal->key.size());
    Put(keys_cf, subject,
        std::string_view(reinterpret_cast<const char*>(seal->key.data()),
                         seal->key.size()));
  }
  PooledRandomBytes(seal->nonce.data(), seal->nonce.size());
  return Status();
}

void LogBatch::Seal() {
  if (sealed_) return;
  sealed_ = true;
  if (next_position_ == first_position_) return;  // appended nothing
  for (EventSink* sink : log_->sinks_) sink->Seal(*this);
}

Status LogBatch::Commit() {
  Seal();
  if (empty()) return Status();
  // A batch that appended nothing (read models only) must not touch the
  // head: the writer may have moved it since this batch opened.
  const bool appended = next_position_ != first_position_;
  std::optional<uint64_t> erasure_head;
  std::string value;
  if (appended &&
      LookupOwn(log_->default_cf_, kErasureHeadKey, &value) == Lookup::kFound) {
    erasure_head = DecodeU64(value);
  }
  return log_->CommitBatch(
      batch_, appended ? std::optional(head()) : std::nullopt, erasure_head);
}

}  // namespace convstore
