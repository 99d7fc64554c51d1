// ReadModels: the projection that turns events into the API's read models
// (agents, conversations, messages and their per-owner indexes) and the read
// side over them. Apply runs inside the log's write batch, so a committed
// event and its read-model rows (and the checkpoint) land atomically; reads
// see exactly the committed state. Rows derive from events alone, so a
// rebuild from the log reproduces them byte for byte.
// Thread-safety: Apply runs on the writer thread only; reads from any thread.
#pragma once

#include <rocksdb/db.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/decide.h"
#include "core/model.h"
#include "core/model_json.h"
#include "core/status.h"
#include "eventlog/event_log.h"

namespace convstore {

struct ListQuery {
  Actor actor;
  size_t limit = 20;
  std::optional<std::string> after;  // id of the last item of the prior page
  std::optional<std::string> agent_id;
  std::optional<ConversationStatus> status;
};

template <typename T>
struct Page {
  std::vector<T> items;
  bool has_more = false;
  std::string last_id;  // id of the last item (the next page's cursor)
};

// A page as the API sends it: one JSON array, written item by item straight
// into its bytes.
struct RenderedPage {
  std::string json;
  size_t count = 0;  // items in `json`
  bool has_more = false;
  std::string last_id;  // id of the last item (the next page's cursor)
};

// Streams a conversation's messages as a JSON array in bounded chunks, over a
// consistent snapshot. Not thread-safe; one per response.
class MessageStream {
 public:
  virtual ~MessageStream() = default;
  // Next part of the array text ("[" ... "]"); nullopt once all is returned.
  virtual Result<std::optional<std::string>> NextChunk(size_t max_bytes) = 0;
  // True once the part with the closing "]" has been returned.
  virtual bool Done() const = 0;
};

// Column-family name prefix of the first generation of read models.
inline constexpr std::string_view kDefaultReadModelsPrefix = "rm_";

// The layout of the rows this build writes. Read models written in another
// format are rebuilt from the log when the store is opened
// (OpenActiveReadModels). 2: the list indexes sort newest first and index
// everything twice (by owner, and for admins); the conversation index holds
// each conversation's list entry (rendered JSON). 3: list entries carry the
// owner and the revision.
// 4: message rows start with their event's 8-byte log position, and
// conversation list entries carry the position of their status's event
// (what the live message streams resume from).
// 5: the subjects table (what each user created that has a data key, for
// a user's erasure; and completed or archived conversations by the time of
// their last change, for retention).
// 6: everyone's agents and conversations (what admins list) in tables of
// their own, no longer under the empty owner in the by-owner ones.
// 7: messages in pages of 16 (each a row whose messages merges append).
inline constexpr uint8_t kReadModelsFormat = 7;

class ReadModels : public EventSink,
                   public std::enable_shared_from_this<ReadModels> {
 public:
  // Column families of the read models named by `prefix` (one generation);
  // pass them to EventLog::Open or create them with CreateColumnFamilies.
  static std::vector<std::string> ColumnFamilies(
      std::string_view prefix = kDefaultReadModelsPrefix);
  // The generation prefix ("rm_", "rm2_", ...) and the table ("messages")
  // of a read-model column family's name; nullopt for any other name.
  static std::optional<std::pair<std::string_view, std::string_view>>
  SplitColumnFamilyName(std::string_view name);
  // The read-model tables' options beyond the log's shared ones (pass it as
  // EventLogOptions::tune_column_family): memtable insert hints for rows
  // written in order, memtable bloom filters for rows mostly read cold.
  static void TuneColumnFamily(std::string_view name,
                               rocksdb::ColumnFamilyOptions& options);

  // The column families must exist in `log`.
  explicit ReadModels(EventLog* log,
                      std::string_view prefix = kDefaultReadModelsPrefix);
  const std::string& prefix() const { return prefix_; }

  // Writes the rows an event changes. The checkpoint is written once per
  // batch: by Seal when this is the log's sink, by whoever applies events
  // otherwise (CatchUpFrom, PutCheckpoint).
  Status Apply(const RecordedEvent& event, LogBatch& batch) override;
  void Seal(LogBatch& batch) override;
  // The conversations: every append decides against its conversation.
  std::vector<rocksdb::ColumnFamilyHandle*> WriterOwnedTables() const override {
    return {conversations_, all_conversations_};
  }
  // Records that the read models reflect the log up to `position`.
  void PutCheckpoint(LogBatch& batch, uint64_t position) const;

  // Replays events after the checkpoint up to the log head (after a crash
  // between versions, or when the read models were dropped).
  Status CatchUp();
  // Replays `source`'s events after this projection's checkpoint up to
  // `up_to`, writing into this projection's own log, each chunk atomically
  // with its checkpoint through the WAL.
  Status CatchUpFrom(const EventLog& source, uint64_t up_to);
  // As CatchUpFrom, for read models that nothing reads or writes yet (a
  // rebuild's next generation, a scratch copy): large unindexed batches
  // without the WAL, then a flush of every table, so the rows are durable
  // when it returns OK. After a crash or an error in between, the
  // generation's contents are undefined and it must be dropped (a rebuild
  // starts over; DropStaleGenerations drops it at the next open).
  Status BuildFrom(const EventLog& source, uint64_t up_to);
  // Position of the last event the read models reflect.
  Result<uint64_t> Checkpoint() const;
  // The row format (kReadModelsFormat) of read models that have a
  // checkpoint; nullopt while they reflect no event yet.
  Result<std::optional<uint8_t>> Format() const;

  struct Counts {
    uint64_t agents = 0;
    uint64_t conversations = 0;
    uint64_t messages = 0;
  };
  // Exact counts (a full scan of three tables).
  Result<Counts> Count() const;

  // Reads through a pending batch (for decisions on the writer thread) or,
  // with batch == nullptr, from the committed state.
  Result<std::optional<Versioned<Agent>>> GetAgent(
      std::string_view id, const LogBatch* batch = nullptr) const;
  Result<std::optional<Versioned<Conversation>>> GetConversation(
      std::string_view id, const LogBatch* batch = nullptr) const;

  // A message `batch` appended, as GET messages renders it (the answer to
  // the append); nullopt if the batch appended no such message.
  Result<std::optional<std::string>> AppendedMessageIn(
      const LogBatch& batch, std::string_view conversation_id,
      uint64_t revision) const;

  // A conversation's stored list entry (DecodeConversationListEntry), as
  // committed or as `batch` has it: what GET renders, and what an append
  // decides on, without parsing.
  Result<std::optional<std::string>> GetConversationEntry(
      std::string_view id, const LogBatch* batch = nullptr) const;

  Result<Page<Versioned<Agent>>> ListAgents(const ListQuery& query) const;
  // Conversation objects, newest first, each with its room URL.
  Result<RenderedPage> ListConversations(const ListQuery& query,
                                         const RoomUrlTemplate& room_url) const;

  // Rendered message JSON objects, oldest first. `after` is a message id of
  // this conversation (400 if it is not one).
  Result<Page<std::string>> ListMessages(std::string_view conversation_id,
                                         std::optional<std::string> after,
                                         size_t limit) const;
  // A conversation's messages whose events are at log position `from` or
  // later, oldest first, at most `limit` (for the live message streams).
  struct PositionedMessage {
    uint64_t position = 0;
    std::string json;  // as GET messages renders it
  };
  Result<std::vector<PositionedMessage>> MessagesFrom(
      std::string_view conversation_id, uint64_t from, size_t limit) const;
  // The data-key subjects (DataKeySubjectOf: "c<conversation id>",
  // "a<agent id>") of what `owner` created and is not erased yet, deleted
  // agents included; at most `limit`, from the committed state.
  Result<std::vector<std::string>> SubjectsOf(std::string_view owner,
                                              size_t limit) const;
  // Completed or archived conversations whose last change is before
  // `cutoff_ms`, oldest change first; at most `limit`, committed state.
  Result<std::vector<std::string>> EndedBefore(int64_t cutoff_ms,
                                               size_t limit) const;

  // When this object is owned by a shared_ptr, the stream keeps it (and so
  // its column families) alive until the stream is done.
  std::unique_ptr<MessageStream> StreamMessages(
      std::string_view conversation_id) const;

 private:
  // A committed row.
  Result<std::optional<std::string>> GetRaw(rocksdb::ColumnFamilyHandle* cf,
                                            std::string_view key) const;
  // Calls `visit` with the id and value of each of the actor's items in
  // `by_owner` (everyone's, in `all`, for an admin), newest first, starting
  // after query.after; stops when it returns false or an error.
  Status ScanNewestFirst(
      const ListQuery& query, rocksdb::ColumnFamilyHandle* by_owner,
      rocksdb::ColumnFamilyHandle* all, const rocksdb::ReadOptions& options,
      const std::function<Result<bool>(
          std::string_view id, const rocksdb::Slice& value)>& visit) const;
  template <typename ApplyChunk>
  Status ReplayChunks(const EventLog& source, uint64_t up_to, size_t chunk,
                      ApplyChunk apply_chunk);
  // Rows: a LogBatch, or the bulk writer of BuildFrom (read_models.cc).
  template <typename Rows>
  Status ApplyTo(const RecordedEvent& event, Rows& rows);
  template <typename Rows>
  Result<std::optional<Versioned<Agent>>> GetAgentIn(const Rows& rows,
                                                     std::string_view id) const;
  template <typename Rows>
  Result<std::optional<Versioned<Conversation>>> GetConversationIn(
      const Rows& rows, std::string_view id) const;
  template <typename Rows>
  void WriteCheckpoint(Rows& rows, uint64_t position) const;
  // A conversation's record and its list entry in the list indexes.
  template <typename Rows>
  void PutConversation(Rows& rows, const Conversation& c, uint64_t revision,
                       uint64_t status_position) const;
  // Deletes an agent's rows in the list indexes.
  template <typename Rows>
  void DeleteAgentListed(Rows& rows, const Agent& a) const;
  // A subject's rows in the subjects table.
  template <typename Rows>
  void PutSubject(Rows& rows, std::string_view owner,
                  std::string_view subject) const;
  template <typename Rows>
  Status DeleteSubject(Rows& rows, std::string_view subject) const;
  // Moves a conversation's row in the ended-conversations index from what
  // it was (`before`, null when new) to what it is (`after`, null when
  // erased); only completed and archived ones have one.
  template <typename Rows>
  void MoveEnded(Rows& rows, const Conversation* before,
                 const Conversation* after) const;
  // The status position in a conversation's stored list entry.
  template <typename Rows>
  Result<uint64_t> StatusPositionIn(const Rows& rows,
                                    std::string_view id) const;

  EventLog* log_;
  std::string prefix_;
  rocksdb::ColumnFamilyHandle* agents_;
  rocksdb::ColumnFamilyHandle* agents_by_owner_;
  rocksdb::ColumnFamilyHandle* all_agents_;
  rocksdb::ColumnFamilyHandle* conversations_;
  rocksdb::ColumnFamilyHandle* conversations_by_owner_;
  rocksdb::ColumnFamilyHandle* all_conversations_;
  rocksdb::ColumnFamilyHandle* messages_;
  rocksdb::ColumnFamilyHandle* message_ids_;
  rocksdb::ColumnFamilyHandle* meta_;
  rocksdb::ColumnFamilyHandle* subjects_;
};

}  // namespace convstore
