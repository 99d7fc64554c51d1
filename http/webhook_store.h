// WebhookStore: webhook subscriptions, their delivery checkpoints and their
// recent delivery attempts, kept beside the log in RocksDB (like API keys,
// they are configuration, not conversation history, so they are not events).
// Thread-safety: every method may be called from any thread. Subscriptions
// change only through a LogBatch on the writer thread, so one is durable
// before anyone is told it exists; checkpoints and attempts are written
// directly, unsynced, by the dispatcher: a crash may lose the latest ones
// (deliveries are at least once), never corrupt them.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/validation.h"
#include "core/webhook_events.h"
#include "eventlog/event_log.h"

namespace convstore::http {

struct WebhookRecord {
  std::string id;  // "wh_" + UUIDv7
  std::string user_id;
  std::string url;
  std::vector<WebhookEventKind> events;
  std::optional<std::string> description;
  int64_t created_at_ms = 0;

  bool Wants(WebhookEventKind kind) const;
};

// One attempt to deliver one (event, kind) to a webhook.
struct DeliveryAttempt {
  std::string delivery_id;
  WebhookEventKind kind = WebhookEventKind::kMessageCreated;
  uint64_t position = 0;
  int attempt = 1;
  int64_t attempted_at_ms = 0;
  int64_t duration_ms = 0;
  // "delivered", "retrying" (another attempt at next_attempt_at_ms) or
  // "gave_up" (the last attempt failed; delivery moved on).
  std::string outcome;
  unsigned status = 0;  // HTTP status; 0 when no response arrived
  std::string error;    // why it failed, when it did
  std::optional<int64_t> next_attempt_at_ms;
};

class WebhookStore {
 public:
  // Attempts kept per webhook; older ones are deleted as new ones come.
  static constexpr uint64_t kKeptAttempts = 100;

  static std::vector<std::string> ColumnFamilies();
  explicit WebhookStore(EventLog* log);

  // Loads the master secret that signing secrets derive from, creating it
  // (random, 256 bits, committed synced) on first use. Call once, before
  // SigningSecret.
  Status Open();
  // The secret a webhook's deliveries are signed with ("whsec_...").
  std::string SigningSecret(std::string_view webhook_id) const;

  // Writer thread. Create stores the subscription and its checkpoint: the
  // first event it receives is the first one after `batch`'s head.
  WebhookRecord Create(LogBatch& batch, const CreateWebhookRequest& request,
                       const std::string& user_id, int64_t now_ms,
                       std::string id) const;
  void Delete(LogBatch& batch, const WebhookRecord& record) const;
  Result<std::optional<WebhookRecord>> Get(
      std::string_view id, const LogBatch* batch = nullptr) const;
  // Every subscription (`user_id` nullopt) or one user's (read through an
  // index, not a scan of everyone's), oldest first.
  Result<std::vector<WebhookRecord>> List(
      std::optional<std::string_view> user_id = std::nullopt) const;

  // Dispatcher. The checkpoint is the position of the oldest event not yet
  // delivered or given up; nullopt once the webhook is deleted.
  Result<std::optional<uint64_t>> Checkpoint(std::string_view id) const;
  Status PutCheckpoint(std::string_view id, uint64_t position) const;
  // Attempts are numbered per webhook from 1; LastAttemptNumber is 0 when
  // there are none.
  Result<uint64_t> LastAttemptNumber(std::string_view id) const;
  Status AddAttempt(std::string_view id, uint64_t number,
                    const DeliveryAttempt& attempt) const;
  // The most recent attempts, newest first.
  Result<std::vector<DeliveryAttempt>> RecentAttempts(std::string_view id,
                                                      size_t limit) const;
  // Deletes a deleted webhook's checkpoint and attempts.
  Status ForgetDeliveries(std::string_view id) const;

 private:
  EventLog* log_;
  rocksdb::ColumnFamilyHandle* webhooks_;
  rocksdb::ColumnFamilyHandle* state_;
  rocksdb::ColumnFamilyHandle* attempts_;
  std::string master_secret_;
};

// {id, user_id, url, events, description, created_at}, plus "secret" when
// given (only in the response that creates it).
boost::json::object WebhookToJson(const WebhookRecord& record,
                                  const std::string* secret = nullptr);
boost::json::object DeliveryAttemptToJson(const DeliveryAttempt& attempt);

}  // namespace convstore::http
