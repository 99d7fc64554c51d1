#include "projections/read_models.h"

#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>

#include <boost/json.hpp>
#include <future>
#include <utility>

#include "core/data_key.h"
#include "core/model_json.h"
#include "eventlog/string_map.h"

namespace convstore {
namespace {

// Column-family names are the generation's prefix plus these.
constexpr char kAgentsCf[] = "agents";
constexpr char kAgentsByOwnerCf[] = "agents_by_owner";
constexpr char kConversationsCf[] = "conversations";
constexpr char kConversationsByOwnerCf[] = "conversations_by_owner";
// Everyone's agents and conversations, newest first (what admins list, and
// the conversation list entries GET and appends read). Not in the by-owner
// tables under an empty owner: there, each table file written while
// conversations are created spans from the newest of these rows to the
// owners' rows, over every older one, so a lookup probed every such file.
// Here the keys only fall as items are created, and files do not overlap.
constexpr char kAllAgentsCf[] = "all_agents";
constexpr char kAllConversationsCf[] = "all_conversations";
constexpr char kMessagesCf[] = "messages";
constexpr char kMessageIdsCf[] = "message_ids";
constexpr char kMetaCf[] = "meta";
// What each user created that has a data key, erased or deleted ones
// included until erased: "o<owner>\0<subject>" -> "" (a user's erasure
// finds them by prefix) and "s<subject>" -> owner.
constexpr char kSubjectsCf[] = "subjects";
constexpr char kCheckpointKey[] = "checkpoint";

// List-index keys: the id with every byte inverted (NewestFirstKey) in the
// tables of everyone's items, "<owner>\0" and that in the by-owner tables.
// UUIDv7 ids sort by creation time, so inverted they sort newest first and a
// page is a forward scan (a reverse scan costs a skiplist search per step in
// the memtable).
void InvertBytesInto(std::string_view bytes, std::string& out) {
  out.assign(bytes);
  for (char& c : out) c = static_cast<char>(~static_cast<unsigned char>(c));
}

std::string InvertBytes(std::string_view bytes) {
  std::string out;
  InvertBytesInto(bytes, out);
  return out;
}

std::string NewestFirstKey(std::string_view id) { return InvertBytes(id); }

std::string ListKey(std::string_view owner, std::string_view id) {
  std::string k(owner);
  k.push_back('\0');
  k += NewestFirstKey(id);
  return k;
}

// A message's address (what the message-id index holds):
// "<conversation id>\0<8-byte big-endian stream revision>".
std::string MessageKey(std::string_view conversation_id, uint64_t revision) {
  std::string k;
  // One allocation: an id is longer than a short string's inline room, and
  // the '\0' would have grown it again (each append makes three of these).
  k.reserve(conversation_id.size() + 9);
  k.append(conversation_id);
  k.push_back('\0');
  k += EncodePositionKey(revision);
  return k;
}

// Messages are kept in pages: the row PageKey(conversation, n) holds the
// messages of stream revisions [16n, 16n + 16), in order, the first one put
// and each later one appended by a merge (AppendMergeOperator), so an append
// writes its own message only. A transcript is then read in one step of
// RocksDB's iterator per 16 messages: with a row per message, those steps
// (about 1,700 instructions each over table files) were 60% of the
// instructions of GET messages.
constexpr uint64_t kMessagesPerPage = 16;

// Shaped as a message's address, with the page number for the revision.
std::string PageKey(std::string_view conversation_id, uint64_t page) {
  return MessageKey(conversation_id, page);
}

// One message in a page: its stream revision and its event's log position
// (8 bytes each, big-endian), the size of its JSON (4 bytes), the JSON as
// GET messages renders it.
constexpr size_t kMessageEntryHeaderBytes = 20;

void AppendMessageEntry(std::string& out, uint64_t revision, uint64_t position,
                        std::string_view json) {
  out.reserve(out.size() + kMessageEntryHeaderBytes + json.size());
  out += EncodePositionKey(revision);
  out += EncodePositionKey(position);
  const uint32_t size = static_cast<uint32_t>(json.size());
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((size >> shift) & 0xff));
  }
  out.append(json);
}

struct MessageEntry {
  std::string_view header;  // revision, position and size
  std::string_view json;
  // Decoded only when asked: a transcript sent whole needs neither.
  uint64_t revision() const { return DecodePositionKey(header.substr(0, 8)); }
  uint64_t position() const { return DecodePositionKey(header.substr(8, 8)); }
};

// The entry at `*offset` of a page; moves `*offset` past it.
Result<MessageEntry> NextMessageEntry(std::string_view page, size_t* offset) {
  const std::string_view rest = page.substr(*offset);
  if (rest.size() < kMessageEntryHeaderBytes) {
    return Status::Corruption("stored message page ends inside an entry");
  }
  uint32_t size = 0;
  for (size_t i = 16; i < kMessageEntryHeaderBytes; ++i) {
    size = (size << 8) | static_cast<uint8_t>(rest[i]);
  }
  if (rest.size() - kMessageEntryHeaderBytes < size) {
    return Status::Corruption("stored message page ends inside a message");
  }
  MessageEntry entry;
  entry.header = rest.substr(0, kMessageEntryHeaderBytes);
  entry.json = rest.substr(kMessageEntryHeaderBytes, size);
  *offset += kMessageEntryHeaderBytes + size;
  return entry;
}

std::string SubjectsPrefix(std::string_view owner) {
  std::string k = "o";
  k += owner;
  k.push_back('\0');
  return k;
}

std::string SubjectOwnerKey(std::string_view subject) {
  return "s" + std::string(subject);
}

// "e", the last change's time (8 bytes, big-endian, so oldest first), id.
constexpr char kEndedPrefix = 'e';
std::string EndedKey(int64_t updated_at_ms, std::string_view id) {
  std::string k(1, kEndedPrefix);
  k += EncodePositionKey(
      static_cast<uint64_t>(std::max<int64_t>(0, updated_at_ms)));
  k += id;
  return k;
}

bool HasEnded(const Conversation& c) {
  return c.status == ConversationStatus::kCompleted ||
         c.status == ConversationStatus::kArchived;
}

std::string MessagePrefix(std::string_view conversation_id) {
  std::string k(conversation_id);
  k.push_back('\0');
  return k;
}

Status FromRocks(const rocksdb::Status& s) {
  return FromRocksStatus(s, "read models");
}

// The id of a stored rendered message.
Result<std::string> MessageIdOf(std::string_view rendered) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(rendered, ec);
  const boost::json::value* id =
      ec || !v.is_object() ? nullptr : v.as_object().if_contains("id");
  if (id == nullptr || !id->is_string()) {
    return Status::Corruption("stored message has no id");
  }
  return std::string(id->as_string());
}

bool HasPrefix(const rocksdb::Slice& key, std::string_view prefix) {
  return key.size() >= prefix.size() &&
         std::string_view(key.data(), prefix.size()) == prefix;
}

// Reads of one conversation's messages: the messages table's prefix is the
// conversation (ConversationOfMessageKey), so such a scan skips every
// memtable and table file whose prefix filter says it holds none of them,
// instead of merging all of them (the appends to other conversations fill
// them). Seek a full page key (PageKey(id, 0) for the first): the prefix is
// what precedes its 8-byte page number.
rocksdb::ReadOptions OneConversationsMessages() {
  rocksdb::ReadOptions options;
  options.prefix_same_as_start = true;
  return options;
}

// A RocksDB iterator reads one point-in-time view of the store for its whole
// life, so the chunks are consistent with each other without an explicit
// snapshot (taking one locks the DB's mutex, which the writer also takes).
class SnapshotMessageStream : public MessageStream {
 public:
  SnapshotMessageStream(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                        std::string_view conversation_id,
                        std::shared_ptr<const void> keepalive)
      : keepalive_(std::move(keepalive)),
        it_(db->NewIterator(OneConversationsMessages(), cf)),
        prefix_(MessagePrefix(conversation_id)) {
    it_->Seek(PageKey(conversation_id, 0));
  }

  Result<std::optional<std::string>> NextChunk(size_t max_bytes) override {
    if (done_) return std::optional<std::string>();
    std::string out;
    // Room up front: grown by doubling from empty, a 50-message transcript
    // (20 KB) took a dozen allocations and copies. (Not all 64 KiB of a
    // chunk: glibc consolidates its free lists when a chunk that big is
    // freed.)
    out.reserve(std::min<size_t>(max_bytes, 32 << 10));
    if (!opened_) out.push_back('[');
    opened_ = true;
    for (;;) {
      if (offset_ == page_.size()) {
        // The page is sent: on to the next (page_ points into the
        // iterator's value, valid until it moves).
        if (on_page_) it_->Next();
        on_page_ = it_->Valid() && HasPrefix(it_->key(), prefix_);
        if (!on_page_) break;
        page_ = it_->value().ToStringView();
        offset_ = 0;
        continue;
      }
      if (out.size() >= max_bytes) {
        return std::optional<std::string>(std::move(out));
      }
      MessageEntry entry;
      CONVSTORE_ASSIGN_OR_RETURN(entry, NextMessageEntry(page_, &offset_));
      if (!first_) out.push_back(',');
      first_ = false;
      out.append(entry.json);
    }
    CONVSTORE_RETURN_IF_ERROR(FromRocks(it_->status()));
    out.push_back(']');
    done_ = true;
    return std::optional<std::string>(std::move(out));
  }

  bool Done() const override { return done_; }

 private:
  std::shared_ptr<const void> keepalive_;  // outlives it_
  std::unique_ptr<rocksdb::Iterator> it_;
  std::string prefix_;
  std::string_view page_;  // the page being sent
  size_t offset_ = 0;      // of its next entry
  bool on_page_ = false;   // it_ is at page_'s row
  bool opened_ = false;    // "[" sent
  bool first_ = true;      // no element sent yet
  bool done_ = false;
};

// Rows as committed (reads only).
struct CommittedRows {
  rocksdb::DB* db;
  Result<std::optional<std::string>> Get(rocksdb::ColumnFamilyHandle* cf,
                                         std::string_view key) const {
    std::string value;
    rocksdb::Status s = db->Get(rocksdb::ReadOptions(), cf,
                                rocksdb::Slice(key.data(), key.size()), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    CONVSTORE_RETURN_IF_ERROR(FromRocks(s));
    return std::optional<std::string>(std::move(value));
  }
};

// The rows of read models that nothing uses yet (a rebuild's next
// generation, a scratch copy), written in large batches without the WAL and
// without an index: a LogBatch's index costs a skiplist insert per row and
// its WAL a second copy of every byte. Only the tables that applying reads
// back keep this batch's pending rows, in a hash map. Not thread-safe.
class BulkRows {
 public:
  // `read_back`: tables whose pending rows Get answers from memory.
  // `appended`: the table merges go to (the messages), whose rows are
  // joined here and written once per batch (see Merge).
  BulkRows(rocksdb::DB* db,
           std::initializer_list<rocksdb::ColumnFamilyHandle*> read_back,
           rocksdb::ColumnFamilyHandle* appended)
      : db_(db), appended_(appended) {
    for (rocksdb::ColumnFamilyHandle* cf : read_back) {
      pending_.push_back(Pending{cf, {}});
    }
  }

  // A table that is not read back has no pending rows kept: reading one
  // (rare: only an erasure does) writes the batch out first, which changes
  // what is stored but not what reads see (hence const).
  Result<std::optional<std::string>> Get(rocksdb::ColumnFamilyHandle* cf,
                                         std::string_view key) const {
    const Pending* pending = PendingOf(cf);
    if (pending == nullptr) {
      CONVSTORE_RETURN_IF_ERROR(Write());
    } else if (auto it = pending->rows.find(key); it != pending->rows.end()) {
      return it->second;
    }
    return CommittedRows{db_}.Get(cf, key);
  }
  void Put(rocksdb::ColumnFamilyHandle* cf, std::string_view key,
           std::string_view value) {
    if (cf == appended_) {
      joined_.insert_or_assign(std::string(key),
                               Joined{true, std::string(value)});
      return;
    }
    batch_.Put(cf, rocksdb::Slice(key.data(), key.size()),
               rocksdb::Slice(value.data(), value.size()));
    if (Pending* pending = PendingOf(cf)) {
      pending->rows.insert_or_assign(std::string(key), std::string(value));
    }
  }
  // Into the `appended` table, a page's merges are joined here, so
  // that the memtable takes one row per page and batch, not one per
  // message: a merge sorts before the row it adds to, where the memtable's
  // insert hint does not help, and a flush joins them again (a rebuild of
  // 1,000,000 events was slower with a merge per message in each of three
  // alternating rounds, BENCHMARKS.md, session 23).
  void Merge(rocksdb::ColumnFamilyHandle* cf, std::string_view key,
             std::string_view bytes) {
    if (cf != appended_) {
      batch_.Merge(cf, rocksdb::Slice(key.data(), key.size()),
                   rocksdb::Slice(bytes.data(), bytes.size()));
      return;
    }
    auto it = joined_.find(key);
    if (it == joined_.end()) {
      it =
          joined_.emplace(std::string(key), Joined{false, std::string()}).first;
    }
    it->second.bytes.append(bytes);
  }
  void Delete(rocksdb::ColumnFamilyHandle* cf, std::string_view key) {
    // After the joined writes before it (dropped), before those after it.
    if (cf == appended_) {
      if (auto it = joined_.find(key); it != joined_.end()) joined_.erase(it);
    }
    batch_.Delete(cf, rocksdb::Slice(key.data(), key.size()));
    if (Pending* pending = PendingOf(cf)) {
      pending->rows.insert_or_assign(std::string(key), std::nullopt);
    }
  }
  // Writes the batch (not synced, no WAL: the caller flushes the tables
  // before anything depends on them) and starts an empty one.
  Status Write() const {
    for (const auto& [key, joined] : joined_) {
      if (joined.whole) {
        batch_.Put(appended_, key, joined.bytes);
      } else {
        batch_.Merge(appended_, key, joined.bytes);
      }
    }
    joined_.clear();
    rocksdb::WriteOptions options;
    options.disableWAL = true;
    Status s = FromRocksStatus(db_->Write(options, &batch_),
                               "write rebuilt read models");
    batch_.Clear();
    for (Pending& pending : pending_) pending.rows.clear();
    return s;
  }

 private:
  struct Pending {
    rocksdb::ColumnFamilyHandle* cf;
    StringMap<std::optional<std::string>> rows;
  };
  // A row of the `appended` table as this batch writes it: the whole value
  // (it was put here) or what it appends to the stored one.
  struct Joined {
    bool whole = false;
    std::string bytes;
  };
  const Pending* PendingOf(rocksdb::ColumnFamilyHandle* cf) const {
    for (const Pending& p : pending_) {
      if (p.cf == cf) return &p;
    }
    return nullptr;
  }
  Pending* PendingOf(rocksdb::ColumnFamilyHandle* cf) {
    return const_cast<Pending*>(std::as_const(*this).PendingOf(cf));
  }

  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* appended_;
  mutable rocksdb::WriteBatch batch_;
  mutable std::vector<Pending> pending_;
  mutable StringMap<Joined> joined_;
};

}  // namespace

// Every table of a generation, in the order ColumnFamilies names them.
constexpr const char* kTables[] = {
    kAgentsCf,        kAgentsByOwnerCf,        kAllAgentsCf,
    kConversationsCf, kConversationsByOwnerCf, kAllConversationsCf,
    kMessagesCf,      kMessageIdsCf,           kMetaCf,
    kSubjectsCf};

std::vector<std::string> ReadModels::ColumnFamilies(std::string_view prefix) {
  std::vector<std::string> names;
  for (const char* table : kTables) {
    names.push_back(std::string(prefix) + table);
  }
  return names;
}

std::optional<std::pair<std::string_view, std::string_view>>
ReadModels::SplitColumnFamilyName(std::string_view name) {
  if (name.substr(0, 2) != "rm") return std::nullopt;
  size_t i = 2;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') ++i;
  if (i >= name.size() || name[i] != '_') return std::nullopt;
  const std::string_view table = name.substr(i + 1);
  for (const char* known : kTables) {
    if (table == known) return std::pair{name.substr(0, i + 1), table};
  }
  return std::nullopt;
}

namespace {

// Message pages are "<conversation id>\0<page>": the hint prefix is the
// conversation, so each message goes right after its conversation's last
// one instead of being searched for from the top of the memtable.
class ConversationOfMessageKey : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "ConversationOfMessageKey"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), key.size() - 8);
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return key.size() > 8;
  }
};

}  // namespace

void ReadModels::TuneColumnFamily(std::string_view name,
                                  rocksdb::ColumnFamilyOptions& options) {
  auto split = SplitColumnFamilyName(name);
  if (!split) return;
  const std::string_view table = split->second;
  if (table == kMessagesCf) {
    options.memtable_insert_with_hint_prefix_extractor =
        std::make_shared<ConversationOfMessageKey>();
    // And the prefix of scans of one conversation (OneConversationsMessages),
    // filtered in the memtables and the table files. (Not a hashed memtable
    // with a skip list per conversation: those are short ones, four levels,
    // and an active conversation's hundreds of rows took as many key
    // comparisons to insert into one as the hint saves.)
    options.prefix_extractor =
        options.memtable_insert_with_hint_prefix_extractor;
    options.memtable_prefix_bloom_size_ratio = kMemtableBloomRatio;
    // GET messages reads a conversation's pages in a row (about 300 bytes
    // a message): 16 KiB blocks hold a 50-message transcript in one or two,
    // where the default 4 KiB took a block-cache lookup every 13 messages.
    if (const auto* base =
            options.table_factory
                ->GetOptions<rocksdb::BlockBasedTableOptions>()) {
      rocksdb::BlockBasedTableOptions table = *base;
      table.block_size = 16 << 10;
      options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    }
  } else if (table == kMessageIdsCf) {
    // Message ids are UUIDv7s: they grow with time, like log positions, so
    // each insert starts from where the one before went. (Not hashed per id,
    // UseMemtablePerKey: a cheaper insert, but its flush sorts every id into
    // a new skip list; from insert to table file 2.6 us per id here, 6.3 us
    // hashed, convstore_bench_memtable.)
    options.memtable_insert_with_hint_prefix_extractor.reset(
        rocksdb::NewFixedPrefixTransform(0));
  } else if (table == kConversationsCf || table == kAllConversationsCf) {
    // Each append reads its conversation's list entry, written at its
    // creation and in the tables by then (and a change its record).
    options.memtable_prefix_bloom_size_ratio = kMemtableBloomRatio;
    options.memtable_whole_key_filtering = true;
  }
  if (table == kAllConversationsCf || table == kAllAgentsCf) {
    // A list page seeks every sorted run of its table (each level-0 file,
    // each level): a flushed file goes to level 1 at once. Its rows are
    // newer than all of level 1's (keys fall as items are created), so
    // that is mostly a move of the file, not a rewrite.
    options.level0_file_num_compaction_trigger = 1;
  }
}

ReadModels::ReadModels(EventLog* log, std::string_view prefix)
    : log_(log),
      prefix_(prefix),
      agents_(log->cf(prefix_ + kAgentsCf)),
      agents_by_owner_(log->cf(prefix_ + kAgentsByOwnerCf)),
      all_agents_(log->cf(prefix_ + kAllAgentsCf)),
      conversations_(log->cf(prefix_ + kConversationsCf)),
      conversations_by_owner_(log->cf(prefix_ + kConversationsByOwnerCf)),
      all_conversations_(log->cf(prefix_ + kAllConversationsCf)),
      messages_(log->cf(prefix_ + kMessagesCf)),
      message_ids_(log->cf(prefix_ + kMessageIdsCf)),
      meta_(log->cf(prefix_ + kMetaCf)),
      subjects_(log->cf(prefix_ + kSubjectsCf)) {}

Result<std::optional<std::string>> ReadModels::GetRaw(
    rocksdb::ColumnFamilyHandle* cf, std::string_view key) const {
  return CommittedRows{log_->db()}.Get(cf, key);
}

template <typename Rows>
Result<std::optional<Versioned<Agent>>> ReadModels::GetAgentIn(
    const Rows& rows, std::string_view id) const {
  std::optional<std::string> raw;
  CONVSTORE_ASSIGN_OR_RETURN(raw, rows.Get(agents_, id));
  if (!raw) return std::optional<Versioned<Agent>>();
  Versioned<Agent> agent;
  CONVSTORE_ASSIGN_OR_RETURN(agent, DecodeAgentRecord(*raw));
  return std::optional<Versioned<Agent>>(std::move(agent));
}

template <typename Rows>
Result<std::optional<Versioned<Conversation>>> ReadModels::GetConversationIn(
    const Rows& rows, std::string_view id) const {
  std::optional<std::string> raw;
  CONVSTORE_ASSIGN_OR_RETURN(raw, rows.Get(conversations_, id));
  if (!raw) return std::optional<Versioned<Conversation>>();
  Versioned<Conversation> c;
  CONVSTORE_ASSIGN_OR_RETURN(c, DecodeConversationRecord(*raw));
  return std::optional<Versioned<Conversation>>(std::move(c));
}

Result<std::optional<Versioned<Agent>>> ReadModels::GetAgent(
    std::string_view id, const LogBatch* batch) const {
  if (batch != nullptr) return GetAgentIn(*batch, id);
  return GetAgentIn(CommittedRows{log_->db()}, id);
}

Result<std::optional<Versioned<Conversation>>> ReadModels::GetConversation(
    std::string_view id, const LogBatch* batch) const {
  if (batch != nullptr) return GetConversationIn(*batch, id);
  return GetConversationIn(CommittedRows{log_->db()}, id);
}

Result<std::optional<std::string>> ReadModels::AppendedMessageIn(
    const LogBatch& batch, std::string_view conversation_id,
    uint64_t revision) const {
  // Only the batch's own bytes of the page: the rest of it (in the store,
  // its memtable's merges not yet joined) is not read on the writer.
  const std::optional<std::string_view> written = batch.Written(
      messages_, PageKey(conversation_id, revision / kMessagesPerPage));
  if (!written) return std::optional<std::string>();
  for (size_t offset = 0; offset < written->size();) {
    MessageEntry entry;
    CONVSTORE_ASSIGN_OR_RETURN(entry, NextMessageEntry(*written, &offset));
    if (entry.revision() == revision) {
      return std::optional<std::string>(entry.json);
    }
  }
  return std::optional<std::string>();
}

Result<std::optional<std::string>> ReadModels::GetConversationEntry(
    std::string_view id, const LogBatch* batch) const {
  if (batch != nullptr)
    return batch->Get(all_conversations_, NewestFirstKey(id));
  return GetRaw(all_conversations_, NewestFirstKey(id));
}

Result<ReadModels::Counts> ReadModels::Count() const {
  Counts counts;
  for (auto [cf, out] : {std::pair{agents_, &counts.agents},
                         std::pair{conversations_, &counts.conversations},
                         std::pair{messages_, &counts.messages}}) {
    std::unique_ptr<rocksdb::Iterator> it(
        log_->db()->NewIterator(WholeTableReadOptions(), cf));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (cf != messages_) {
        ++*out;
        continue;
      }
      const std::string_view page = it->value().ToStringView();
      for (size_t offset = 0; offset < page.size(); ++*out) {
        CONVSTORE_RETURN_IF_ERROR(NextMessageEntry(page, &offset).status());
      }
    }
    CONVSTORE_RETURN_IF_ERROR(FromRocks(it->status()));
  }
  return counts;
}

// The checkpoint row: the 8-byte position, then (from format 2 on) the
// format byte.
Result<uint64_t> ReadModels::Checkpoint() const {
  std::optional<std::string> raw;
  CONVSTORE_ASSIGN_OR_RETURN(raw, GetRaw(meta_, kCheckpointKey));
  if (!raw) return uint64_t{0};
  if (raw->size() < 8) return Status::Corruption("bad read-model checkpoint");
  return DecodePositionKey(raw->substr(0, 8));
}

Result<std::optional<uint8_t>> ReadModels::Format() const {
  std::optional<std::string> raw;
  CONVSTORE_ASSIGN_OR_RETURN(raw, GetRaw(meta_, kCheckpointKey));
  if (!raw) return std::optional<uint8_t>();
  if (raw->size() == 8) return std::optional<uint8_t>(1);
  return std::optional<uint8_t>(static_cast<uint8_t>((*raw)[8]));
}

Status ReadModels::Apply(const RecordedEvent& event, LogBatch& batch) {
  return ApplyTo(event, batch);
}

// Rows is a LogBatch (the live path, atomic with the event) or a BulkRows (a
// generation being built); either reads its own pending rows back.
template <typename Rows>
Status ReadModels::ApplyTo(const RecordedEvent& event, Rows& batch) {
  struct Applier {
    ReadModels& rm;
    const RecordedEvent& e;
    Rows& batch;

    Status operator()(const AgentCreated& p) {
      batch.Put(rm.agents_, p.agent.id, EncodeAgentRecord(p.agent, e.revision));
      batch.Put(rm.agents_by_owner_, ListKey(p.agent.created_by, p.agent.id),
                "");
      batch.Put(rm.all_agents_, NewestFirstKey(p.agent.id), "");
      rm.PutSubject(batch, p.agent.created_by, DataKeySubjectOf(e.stream));
      return Status();
    }
    Status operator()(const AgentUpdated& p) {
      std::optional<Versioned<Agent>> cur;
      CONVSTORE_ASSIGN_OR_RETURN(cur, rm.GetAgentIn(batch, p.agent_id));
      if (!cur) return Status::Corruption("AgentUpdated for unknown agent");
      Agent& a = cur->value;
      a.name = p.name;
      a.instructions = p.instructions;
      a.dispatch_name = p.dispatch_name;
      a.metadata = p.metadata;
      a.updated_at_ms = p.updated_at_ms;
      batch.Put(rm.agents_, a.id, EncodeAgentRecord(a, e.revision));
      return Status();
    }
    Status operator()(const AgentDeleted& p) {
      std::optional<Versioned<Agent>> cur;
      CONVSTORE_ASSIGN_OR_RETURN(cur, rm.GetAgentIn(batch, p.agent_id));
      if (!cur) return Status::Corruption("AgentDeleted for unknown agent");
      batch.Delete(rm.agents_, p.agent_id);
      rm.DeleteAgentListed(batch, cur->value);
      return Status();
    }
    Status operator()(const ConversationCreated& p) {
      const Conversation& c = p.conversation;
      rm.PutConversation(batch, c, e.revision, e.position);
      rm.PutSubject(batch, c.created_by, DataKeySubjectOf(e.stream));
      rm.MoveEnded(batch, nullptr, &c);
      return Status();
    }
    Status operator()(const ConversationUpdated& p) {
      std::optional<Versioned<Conversation>> cur;
      CONVSTORE_ASSIGN_OR_RETURN(
          cur, rm.GetConversationIn(batch, p.conversation_id));
      if (!cur) return Status::Corruption("update of unknown conversation");
      const Conversation before = cur->value;
      cur->value.title = p.title;
      cur->value.metadata = p.metadata;
      cur->value.updated_at_ms = p.updated_at_ms;
      uint64_t status_position;
      CONVSTORE_ASSIGN_OR_RETURN(status_position,
                                 rm.StatusPositionIn(batch, p.conversation_id));
      rm.PutConversation(batch, cur->value, e.revision, status_position);
      rm.MoveEnded(batch, &before, &cur->value);
      return Status();
    }
    Status operator()(const ConversationStatusChanged& p) {
      std::optional<Versioned<Conversation>> cur;
      CONVSTORE_ASSIGN_OR_RETURN(
          cur, rm.GetConversationIn(batch, p.conversation_id));
      if (!cur) return Status::Corruption("status of unknown conversation");
      const Conversation before = cur->value;
      cur->value.status = p.to;
      cur->value.updated_at_ms = p.updated_at_ms;
      rm.PutConversation(batch, cur->value, e.revision, e.position);
      rm.MoveEnded(batch, &before, &cur->value);
      return Status();
    }
    Status operator()(const MessageAppended& p) {
      const std::string& conversation = p.message.conversation_id;
      std::string entry;
      AppendMessageEntry(entry, e.revision, e.position,
                         RenderMessage(p.message));
      const std::string page =
          PageKey(conversation, e.revision / kMessagesPerPage);
      if (e.revision % kMessagesPerPage == 0) {
        batch.Put(rm.messages_, page, entry);  // a page's first message
      } else {
        batch.Merge(rm.messages_, page, entry);
      }
      batch.Put(rm.message_ids_, p.message.id,
                MessageKey(conversation, e.revision));
      return Status();
    }
    Status operator()(const ConversationErased& p) {
      // Absent when its earlier events were already unreadable (a rebuild
      // after the erasure): there is nothing to delete.
      std::optional<Versioned<Conversation>> cur;
      CONVSTORE_ASSIGN_OR_RETURN(
          cur, rm.GetConversationIn(batch, p.conversation_id));
      CONVSTORE_RETURN_IF_ERROR(
          rm.DeleteSubject(batch, DataKeySubjectOf(e.stream)));
      if (!cur) return Status();
      rm.MoveEnded(batch, &cur->value, nullptr);
      batch.Delete(rm.conversations_, p.conversation_id);
      batch.Delete(rm.conversations_by_owner_,
                   ListKey(cur->value.created_by, p.conversation_id));
      batch.Delete(rm.all_conversations_, NewestFirstKey(p.conversation_id));
      // Message pages hold the messages stream's revisions, 0..last; the
      // erasure is the conversation's last event, so `last` is final.
      std::optional<std::string> last;
      CONVSTORE_ASSIGN_OR_RETURN(
          last,
          batch.Get(rm.log_->streams_cf(), MessagesStream(p.conversation_id)));
      if (!last) return Status();
      const uint64_t last_page = DecodePositionKey(*last) / kMessagesPerPage;
      for (uint64_t n = 0; n <= last_page; ++n) {
        const std::string key = PageKey(p.conversation_id, n);
        std::optional<std::string> page;
        CONVSTORE_ASSIGN_OR_RETURN(page, batch.Get(rm.messages_, key));
        if (!page) continue;
        for (size_t offset = 0; offset < page->size();) {
          MessageEntry entry;
          CONVSTORE_ASSIGN_OR_RETURN(entry, NextMessageEntry(*page, &offset));
          std::string id;
          CONVSTORE_ASSIGN_OR_RETURN(id, MessageIdOf(entry.json));
          batch.Delete(rm.message_ids_, id);
        }
        batch.Delete(rm.messages_, key);
      }
      return Status();
    }
    Status operator()(const AgentErased& p) {
      // The agent's rows are gone already if it was deleted before.
      std::optional<Versioned<Agent>> cur;
      CONVSTORE_ASSIGN_OR_RETURN(cur, rm.GetAgentIn(batch, p.agent_id));
      if (cur) {
        batch.Delete(rm.agents_, p.agent_id);
        rm.DeleteAgentListed(batch, cur->value);
      }
      return rm.DeleteSubject(batch, DataKeySubjectOf(e.stream));
    }
    Status operator()(const UserErased&) {
      return Status();  // its subjects' own erasures came before it
    }
  };
  // An erased event's payload is gone; its erasure event, later in the log,
  // deletes whatever rows the subject has.
  if (event.erased) return Status();
  CONVSTORE_RETURN_IF_ERROR(
      std::visit(Applier{*this, event, batch}, event.payload));
  return Status();
}

void ReadModels::Seal(LogBatch& batch) { PutCheckpoint(batch, batch.head()); }

void ReadModels::PutCheckpoint(LogBatch& batch, uint64_t position) const {
  WriteCheckpoint(batch, position);
}

template <typename Rows>
void ReadModels::WriteCheckpoint(Rows& batch, uint64_t position) const {
  std::string checkpoint = EncodePositionKey(position);
  checkpoint.push_back(static_cast<char>(kReadModelsFormat));
  batch.Put(meta_, kCheckpointKey, checkpoint);
}

template <typename Rows>
void ReadModels::PutConversation(Rows& batch, const Conversation& c,
                                 uint64_t revision,
                                 uint64_t status_position) const {
  batch.Put(conversations_, c.id, EncodeConversationRecord(c, revision));
  const std::string entry =
      EncodeConversationListEntry(c, revision, status_position);
  batch.Put(conversations_by_owner_, ListKey(c.created_by, c.id), entry);
  batch.Put(all_conversations_, NewestFirstKey(c.id), entry);
}

template <typename Rows>
void ReadModels::DeleteAgentListed(Rows& batch, const Agent& a) const {
  batch.Delete(agents_by_owner_, ListKey(a.created_by, a.id));
  batch.Delete(all_agents_, NewestFirstKey(a.id));
}

template <typename Rows>
void ReadModels::PutSubject(Rows& batch, std::string_view owner,
                            std::string_view subject) const {
  batch.Put(subjects_, SubjectsPrefix(owner) + std::string(subject), "");
  batch.Put(subjects_, SubjectOwnerKey(subject), owner);
}

template <typename Rows>
Status ReadModels::DeleteSubject(Rows& batch, std::string_view subject) const {
  std::optional<std::string> owner;
  CONVSTORE_ASSIGN_OR_RETURN(owner,
                             batch.Get(subjects_, SubjectOwnerKey(subject)));
  if (!owner) return Status();
  batch.Delete(subjects_, SubjectsPrefix(*owner) + std::string(subject));
  batch.Delete(subjects_, SubjectOwnerKey(subject));
  return Status();
}

template <typename Rows>
void ReadModels::MoveEnded(Rows& batch, const Conversation* before,
                           const Conversation* after) const {
  if (before != nullptr && HasEnded(*before)) {
    batch.Delete(subjects_, EndedKey(before->updated_at_ms, before->id));
  }
  if (after != nullptr && HasEnded(*after)) {
    batch.Put(subjects_, EndedKey(after->updated_at_ms, after->id), "");
  }
}

Result<std::vector<std::string>> ReadModels::EndedBefore(int64_t cutoff_ms,
                                                         size_t limit) const {
  const std::string prefix(1, kEndedPrefix);
  const std::string end = EndedKey(cutoff_ms, "");
  std::vector<std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(
      log_->db()->NewIterator(rocksdb::ReadOptions(), subjects_));
  for (it->Seek(prefix);
       it->Valid() && it->key().compare(end) < 0 && out.size() < limit;
       it->Next()) {
    out.emplace_back(it->key().ToStringView().substr(end.size()));
  }
  CONVSTORE_RETURN_IF_ERROR(FromRocks(it->status()));
  return out;
}

Result<std::vector<std::string>> ReadModels::SubjectsOf(std::string_view owner,
                                                        size_t limit) const {
  const std::string prefix = SubjectsPrefix(owner);
  std::vector<std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(
      log_->db()->NewIterator(rocksdb::ReadOptions(), subjects_));
  for (it->Seek(prefix);
       it->Valid() && HasPrefix(it->key(), prefix) && out.size() < limit;
       it->Next()) {
    out.emplace_back(it->key().ToStringView().substr(prefix.size()));
  }
  CONVSTORE_RETURN_IF_ERROR(FromRocks(it->status()));
  return out;
}

template <typename Rows>
Result<uint64_t> ReadModels::StatusPositionIn(const Rows& rows,
                                              std::string_view id) const {
  std::optional<std::string> raw;
  CONVSTORE_ASSIGN_OR_RETURN(raw,
                             rows.Get(all_conversations_, NewestFirstKey(id)));
  if (!raw) return Status::Corruption("conversation without a list entry");
  ConversationListEntry entry;
  CONVSTORE_ASSIGN_OR_RETURN(entry, DecodeConversationListEntry(*raw));
  return entry.status_position;
}

Status ReadModels::CatchUp() { return CatchUpFrom(*log_, log_->head()); }

// Calls apply_chunk(events, n) for `source`'s events after this
// projection's checkpoint up to `up_to`, in chunks of at most `chunk`, after
// checking that the positions have no gap. The next chunk is read and decoded
// on a second thread while apply_chunk writes this one.
template <typename ApplyChunk>
Status ReadModels::ReplayChunks(const EventLog& source, uint64_t up_to,
                                size_t chunk, ApplyChunk apply_chunk) {
  uint64_t checkpoint;
  CONVSTORE_ASSIGN_OR_RETURN(checkpoint, Checkpoint());
  if (checkpoint >= up_to) return Status();
  // Two buffers, reused: no allocation per event once warm.
  std::vector<RecordedEvent> buffers[2];
  auto read = [&source, up_to, chunk, &buffers](int b, uint64_t from) {
    return source.ReadRangeInto(
        from, static_cast<size_t>(std::min<uint64_t>(chunk, up_to - from + 1)),
        buffers[b]);
  };
  int current = 0;
  std::future<Result<size_t>> next =
      std::async(std::launch::async, read, current, checkpoint + 1);
  for (;;) {
    Result<size_t> n = next.get();
    CONVSTORE_RETURN_IF_ERROR(n.status());
    if (*n == 0) break;
    const std::vector<RecordedEvent>& events = buffers[current];
    for (size_t i = 0; i < *n; ++i) {
      if (events[i].position != checkpoint + 1 + i) {
        return Status::Corruption("gap in the log at position " +
                                  std::to_string(checkpoint + 1 + i));
      }
    }
    checkpoint = events[*n - 1].position;
    if (checkpoint < up_to) {
      // (An early return below waits for this read in ~future.)
      next = std::async(std::launch::async, read, 1 - current, checkpoint + 1);
    }
    CONVSTORE_RETURN_IF_ERROR(apply_chunk(events, *n));
    if (checkpoint >= up_to) break;
    current = 1 - current;
  }
  return Status();
}

Status ReadModels::CatchUpFrom(const EventLog& source, uint64_t up_to) {
  return ReplayChunks(
      source, up_to, 4096,
      [this](const std::vector<RecordedEvent>& events, size_t n) -> Status {
        LogBatch batch(log_);
        for (size_t i = 0; i < n; ++i) {
          CONVSTORE_RETURN_IF_ERROR(Apply(events[i], batch));
        }
        PutCheckpoint(batch, events[n - 1].position);
        return batch.Commit();
      });
}

Status ReadModels::BuildFrom(const EventLog& source, uint64_t up_to) {
  BulkRows rows(log_->db(), {agents_, conversations_, all_conversations_},
                messages_);
  CONVSTORE_RETURN_IF_ERROR(ReplayChunks(
      source, up_to, 8192,
      [&](const std::vector<RecordedEvent>& events, size_t n) -> Status {
        for (size_t i = 0; i < n; ++i) {
          CONVSTORE_RETURN_IF_ERROR(ApplyTo(events[i], rows));
        }
        WriteCheckpoint(rows, events[n - 1].position);
        return rows.Write();
      }));
  // Written without the WAL: durable once the tables are flushed.
  std::vector<rocksdb::ColumnFamilyHandle*> tables;
  for (const std::string& name : ColumnFamilies(prefix_)) {
    tables.push_back(log_->cf(name));
  }
  rocksdb::FlushOptions flush;
  flush.wait = true;
  return FromRocksStatus(log_->db()->Flush(flush, tables),
                         "flush rebuilt read models");
}

Status ReadModels::ScanNewestFirst(
    const ListQuery& query, rocksdb::ColumnFamilyHandle* by_owner,
    rocksdb::ColumnFamilyHandle* all, const rocksdb::ReadOptions& options,
    const std::function<Result<bool>(
        std::string_view id, const rocksdb::Slice& value)>& visit) const {
  rocksdb::ColumnFamilyHandle* index = query.actor.admin ? all : by_owner;
  const std::string prefix =
      query.actor.admin ? std::string() : ListKey(query.actor.user_id, "");
  std::unique_ptr<rocksdb::Iterator> it(
      log_->db()->NewIterator(options, index));
  if (query.after) {
    const std::string start = prefix + InvertBytes(*query.after);
    it->Seek(start);
    if (it->Valid() && it->key().ToStringView() == start) it->Next();
  } else {
    it->Seek(prefix);
  }
  std::string id;  // one buffer for every row's id
  for (; it->Valid() && HasPrefix(it->key(), prefix); it->Next()) {
    InvertBytesInto(it->key().ToStringView().substr(prefix.size()), id);
    bool more;
    CONVSTORE_ASSIGN_OR_RETURN(more, visit(id, it->value()));
    if (!more) break;
  }
  return FromRocks(it->status());
}

Result<Page<Versioned<Agent>>> ReadModels::ListAgents(
    const ListQuery& query) const {
  rocksdb::ReadOptions options;
  const rocksdb::Snapshot* snapshot = log_->db()->GetSnapshot();
  options.snapshot = snapshot;
  Page<Versioned<Agent>> page;
  Status status = ScanNewestFirst(
      query, agents_by_owner_, all_agents_, options,
      [&](std::string_view id, const rocksdb::Slice&) -> Result<bool> {
        if (page.items.size() == query.limit) {
          page.has_more = true;
          return false;
        }
        std::string record;
        rocksdb::Status s = log_->db()->Get(
            options, agents_, rocksdb::Slice(id.data(), id.size()), &record);
        CONVSTORE_RETURN_IF_ERROR(FromRocks(s));
        Versioned<Agent> agent;
        CONVSTORE_ASSIGN_OR_RETURN(agent, DecodeAgentRecord(record));
        page.last_id = agent.value.id;
        page.items.push_back(std::move(agent));
        return true;
      });
  log_->db()->ReleaseSnapshot(snapshot);
  if (!status.ok()) return status;
  return page;
}

Result<RenderedPage> ReadModels::ListConversations(
    const ListQuery& query, const RoomUrlTemplate& room_url) const {
  // The index's values are the list entries: a page needs no other read,
  // and each item is written straight into the page's bytes.
  RenderedPage page;
  // About an item's size without metadata: most pages never reallocate.
  page.json.reserve(std::min<size_t>(query.limit, 100) * 512);
  page.json.push_back('[');
  Status status = ScanNewestFirst(
      query, conversations_by_owner_, all_conversations_,
      rocksdb::ReadOptions(),
      [&](std::string_view id, const rocksdb::Slice& value) -> Result<bool> {
        ConversationListEntry entry;
        CONVSTORE_ASSIGN_OR_RETURN(
            entry, DecodeConversationListEntry(value.ToStringView()));
        if ((query.agent_id && entry.agent_id != *query.agent_id) ||
            (query.status && entry.status != *query.status)) {
          return true;
        }
        if (page.count == query.limit) {
          page.has_more = true;
          return false;
        }
        if (page.count++ > 0) page.json.push_back(',');
        AppendConversationJson(entry, room_url, id, page.json);
        page.last_id = id;
        return true;
      });
  if (!status.ok()) return status;
  page.json.push_back(']');
  return page;
}

Result<Page<std::string>> ReadModels::ListMessages(
    std::string_view conversation_id, std::optional<std::string> after,
    size_t limit) const {
  const std::string prefix = MessagePrefix(conversation_id);
  std::optional<uint64_t> after_revision;
  if (after) {
    std::optional<std::string> key;
    CONVSTORE_ASSIGN_OR_RETURN(key, GetRaw(message_ids_, *after));
    if (!key || key->size() != prefix.size() + 8 || !HasPrefix(*key, prefix)) {
      return Status::InvalidArgument(
          "'after' is not a message of this conversation.", "after");
    }
    after_revision =
        DecodePositionKey(std::string_view(*key).substr(prefix.size()));
  }
  Page<std::string> page;
  std::unique_ptr<rocksdb::Iterator> it(
      log_->db()->NewIterator(OneConversationsMessages(), messages_));
  it->Seek(
      PageKey(conversation_id, after_revision.value_or(0) / kMessagesPerPage));
  for (; it->Valid() && HasPrefix(it->key(), prefix) && !page.has_more;
       it->Next()) {
    const std::string_view rows = it->value().ToStringView();
    for (size_t offset = 0; offset < rows.size();) {
      MessageEntry entry;
      CONVSTORE_ASSIGN_OR_RETURN(entry, NextMessageEntry(rows, &offset));
      if (after_revision && entry.revision() <= *after_revision) continue;
      if (page.items.size() == limit) {
        page.has_more = true;
        break;
      }
      page.items.emplace_back(entry.json);
    }
  }
  CONVSTORE_RETURN_IF_ERROR(FromRocks(it->status()));
  if (!page.items.empty()) {
    CONVSTORE_ASSIGN_OR_RETURN(page.last_id, MessageIdOf(page.items.back()));
  }
  return page;
}

Result<std::vector<ReadModels::PositionedMessage>> ReadModels::MessagesFrom(
    std::string_view conversation_id, uint64_t from, size_t limit) const {
  const std::string prefix = MessagePrefix(conversation_id);
  std::vector<PositionedMessage> out;
  std::unique_ptr<rocksdb::Iterator> it(
      log_->db()->NewIterator(OneConversationsMessages(), messages_));
  for (it->Seek(PageKey(conversation_id, 0));
       it->Valid() && HasPrefix(it->key(), prefix) && out.size() < limit;
       it->Next()) {
    const std::string_view rows = it->value().ToStringView();
    for (size_t offset = 0; offset < rows.size() && out.size() < limit;) {
      MessageEntry entry;
      CONVSTORE_ASSIGN_OR_RETURN(entry, NextMessageEntry(rows, &offset));
      const uint64_t position = entry.position();
      if (position < from) continue;
      out.push_back({position, std::string(entry.json)});
    }
  }
  CONVSTORE_RETURN_IF_ERROR(FromRocks(it->status()));
  return out;
}

std::unique_ptr<MessageStream> ReadModels::StreamMessages(
    std::string_view conversation_id) const {
  return std::make_unique<SnapshotMessageStream>(
      log_->db(), messages_, conversation_id, weak_from_this().lock());
}

}  // namespace convstore
