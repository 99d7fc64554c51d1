// IdempotencyStore: the first response to a POST with an Idempotency-Key,
// kept for 24 h per (user, key) and written in the same batch as the events it
// reports, so a replay never disagrees with the log. Tokens are never stored:
// a response that carried one is replayed with a freshly minted token. A
// response about a conversation or agent is kept sealed with its data key
// (see StoredResponse::subject), and forgotten when that is erased. Once
// expired, a response is dropped from the files by the next compaction of its
// table (ExpiryFilter), which runs once a day at least.
// Thread-safety: all methods are safe from any thread.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "core/status.h"
#include "eventlog/event_log.h"
#include "http/api_response.h"

namespace convstore::http {

struct StoredResponse {
  std::string request_hash;  // SHA-256 hex of method, path and body
  unsigned status = 0;
  std::string body;          // with any token removed
  std::string location;
  std::string etag;
  std::optional<TokenSpec> token;
  int64_t created_at_ms = 0;
  // The data-key subject of what the request wrote (DataKeySubjectOf of its
  // events' stream), or empty. The body is stored sealed with that key, so
  // erasing the subject makes the stored response unreadable too, and a
  // retry after it is answered as a new request.
  std::string subject;
};

class IdempotencyStore {
 public:
  static constexpr int64_t kRetentionMs = 24LL * 3600 * 1000;
  static std::vector<std::string> ColumnFamilies();
  // What compactions of the store's table drop: responses older than
  // `retention_ms` (EventLogOptions::compaction_filters, by table name).
  static std::map<std::string,
                  std::shared_ptr<rocksdb::CompactionFilterFactory>>
  ExpiryFilter(int64_t retention_ms = kRetentionMs);
  // Responses are kept for `retention_ms` (tests shorten it).
  explicit IdempotencyStore(EventLog* log, int64_t retention_ms = kRetentionMs);

  // A stored response younger than the retention, if any.
  Result<std::optional<StoredResponse>> Find(std::string_view user,
                                             std::string_view key,
                                             int64_t now_ms) const;
  Status Put(LogBatch& batch, std::string_view user, std::string_view key,
             const StoredResponse& response) const;
  // Deletes every stored response of `user` (committed ones), for the
  // erasure of that user; returns how many.
  Result<size_t> EraseUser(LogBatch& batch, std::string_view user) const;

  // In-flight guard: TryBegin fails while the same (user, key) is running.
  bool TryBegin(std::string_view user, std::string_view key);
  void End(std::string_view user, std::string_view key);

  static std::string RequestHash(std::string_view method,
                                 std::string_view path, std::string_view body);

 private:
  EventLog* log_;
  rocksdb::ColumnFamilyHandle* cf_;
  int64_t retention_ms_;
  std::mutex mu_;
  std::set<std::string, std::less<>> in_flight_;
};

}  // namespace convstore::http
