#include "http/webhook_store.h"

#include <boost/json.hpp>
#include <memory>

#include "core/encoding.h"
#include "http/api_keys.h"
#include "http/stored_record.h"

namespace convstore::http {
namespace {

namespace json = boost::json;

// "w" + id -> the record; "u" + user id + "/" + id -> "" (a user's list).
constexpr char kWebhooksCf[] = "webhooks";
// Checkpoints ("c" + id) and the master secret (kMasterKey).
constexpr char kStateCf[] = "webhook_state";
// id + '/' + 8-byte big-endian attempt number.
constexpr char kAttemptsCf[] = "webhook_attempts";
constexpr char kMasterKey[] = "master_secret";

std::string RecordKey(std::string_view id) { return "w" + std::string(id); }

std::string UserKey(std::string_view user_id, std::string_view id) {
  return "u" + std::string(user_id) + "/" + std::string(id);
}

std::string CheckpointKey(std::string_view id) { return "c" + std::string(id); }

std::string AttemptPrefix(std::string_view id) { return std::string(id) + "/"; }

std::string AttemptKey(std::string_view id, uint64_t number) {
  return AttemptPrefix(id) + EncodePositionKey(number);
}

// The fields a record shares with its API form (WebhookToJson).
json::object CommonFields(const WebhookRecord& r) {
  json::array events;
  for (WebhookEventKind k : r.events) events.emplace_back(ToString(k));
  return {{"id", r.id},
          {"user_id", r.user_id},
          {"url", r.url},
          {"events", std::move(events)}};
}

std::string EncodeRecord(const WebhookRecord& r) {
  json::object o = CommonFields(r);
  if (r.description) o["description"] = *r.description;
  o["created_at"] = r.created_at_ms;
  return json::serialize(o);
}

Result<WebhookRecord> DecodeRecord(std::string_view bytes) {
  json::object o;
  CONVSTORE_ASSIGN_OR_RETURN(o, ParseStoredRecord(bytes, "webhook record"));
  WebhookRecord r;
  r.id = StringField(o, "id");
  r.user_id = StringField(o, "user_id");
  r.url = StringField(o, "url");
  if (auto* p = o.if_contains("events"); p && p->is_array()) {
    for (const json::value& e : p->as_array()) {
      if (!e.is_string()) continue;
      if (auto kind = ParseWebhookEventKind(e.as_string())) {
        r.events.push_back(*kind);
      }
    }
  }
  if (o.contains("description")) r.description = StringField(o, "description");
  r.created_at_ms = IntField(o, "created_at").value_or(0);
  return r;
}

// The fields an attempt shares with its API form (DeliveryAttemptToJson).
json::object CommonFields(const DeliveryAttempt& a) {
  return {{"delivery_id", a.delivery_id}, {"event_type", ToString(a.kind)},
          {"position", a.position},       {"attempt", a.attempt},
          {"outcome", a.outcome},         {"duration_ms", a.duration_ms}};
}

std::string EncodeAttempt(const DeliveryAttempt& a) {
  json::object o = CommonFields(a);
  o["attempted_at"] = a.attempted_at_ms;
  o["status"] = a.status;
  o["error"] = a.error;
  if (a.next_attempt_at_ms) o["next_attempt_at"] = *a.next_attempt_at_ms;
  return json::serialize(o);
}

Result<DeliveryAttempt> DecodeAttempt(std::string_view bytes) {
  json::object o;
  CONVSTORE_ASSIGN_OR_RETURN(o, ParseStoredRecord(bytes, "webhook attempt"));
  DeliveryAttempt a;
  a.delivery_id = StringField(o, "delivery_id");
  a.kind = ParseWebhookEventKind(StringField(o, "event_type"))
               .value_or(WebhookEventKind::kMessageCreated);
  a.position = static_cast<uint64_t>(IntField(o, "position").value_or(0));
  a.attempt = static_cast<int>(IntField(o, "attempt").value_or(0));
  a.attempted_at_ms = IntField(o, "attempted_at").value_or(0);
  a.duration_ms = IntField(o, "duration_ms").value_or(0);
  a.status = static_cast<unsigned>(IntField(o, "status").value_or(0));
  a.outcome = StringField(o, "outcome");
  a.error = StringField(o, "error");
  a.next_attempt_at_ms = IntField(o, "next_attempt_at");
  return a;
}

// Unsynced: the dispatcher's bookkeeping may lose its latest writes in a
// crash (deliveries are at least once), and must never wait on an fsync.
rocksdb::WriteOptions Unsynced() {
  rocksdb::WriteOptions w;
  w.sync = false;
  return w;
}

}  // namespace

bool WebhookRecord::Wants(WebhookEventKind kind) const {
  for (WebhookEventKind k : events) {
    if (k == kind) return true;
  }
  return false;
}

std::vector<std::string> WebhookStore::ColumnFamilies() {
  return {kWebhooksCf, kStateCf, kAttemptsCf};
}

WebhookStore::WebhookStore(EventLog* log)
    : log_(log),
      webhooks_(log->cf(kWebhooksCf)),
      state_(log->cf(kStateCf)),
      attempts_(log->cf(kAttemptsCf)) {}

Status WebhookStore::Open() {
  std::string value;
  rocksdb::Status s =
      log_->db()->Get(rocksdb::ReadOptions(), state_, kMasterKey, &value);
  if (s.ok()) {
    master_secret_ = std::move(value);
    return Status();
  }
  if (!s.IsNotFound()) return FromRocksStatus(s, "read webhook secret");
  // 256 random bits, from the same source as API keys.
  std::string secret = NewApiKeyText();
  LogBatch batch(log_);
  batch.Put(state_, kMasterKey, secret);
  CONVSTORE_RETURN_IF_ERROR(batch.Commit());
  master_secret_ = std::move(secret);
  return Status();
}

std::string WebhookStore::SigningSecret(std::string_view webhook_id) const {
  return WebhookSigningSecret(master_secret_, webhook_id);
}

WebhookRecord WebhookStore::Create(LogBatch& batch,
                                   const CreateWebhookRequest& request,
                                   const std::string& user_id, int64_t now_ms,
                                   std::string id) const {
  WebhookRecord r;
  r.id = std::move(id);
  r.user_id = user_id;
  r.url = request.url;
  r.events = request.events;
  r.description = request.description;
  r.created_at_ms = now_ms;
  batch.Put(webhooks_, RecordKey(r.id), EncodeRecord(r));
  batch.Put(webhooks_, UserKey(r.user_id, r.id), "");
  batch.Put(state_, CheckpointKey(r.id), EncodePositionKey(batch.head() + 1));
  return r;
}

void WebhookStore::Delete(LogBatch& batch, const WebhookRecord& record) const {
  batch.Delete(webhooks_, RecordKey(record.id));
  batch.Delete(webhooks_, UserKey(record.user_id, record.id));
  batch.Delete(state_, CheckpointKey(record.id));
}

Result<std::optional<WebhookRecord>> WebhookStore::Get(
    std::string_view id, const LogBatch* batch) const {
  std::optional<std::string> raw;
  if (batch != nullptr) {
    CONVSTORE_ASSIGN_OR_RETURN(raw, batch->Get(webhooks_, RecordKey(id)));
  } else {
    std::string value;
    rocksdb::Status s = log_->db()->Get(rocksdb::ReadOptions(), webhooks_,
                                        RecordKey(id), &value);
    if (!s.ok() && !s.IsNotFound()) return FromRocksStatus(s, "read webhook");
    if (s.ok()) raw = std::move(value);
  }
  if (!raw) return std::optional<WebhookRecord>();
  WebhookRecord r;
  CONVSTORE_ASSIGN_OR_RETURN(r, DecodeRecord(*raw));
  return std::optional<WebhookRecord>(std::move(r));
}

Result<std::vector<WebhookRecord>> WebhookStore::List(
    std::optional<std::string_view> user_id) const {
  // A user's list is read through its index; everyone's from the records.
  const std::string prefix = user_id ? UserKey(*user_id, "") : RecordKey("");
  std::vector<WebhookRecord> out;
  std::unique_ptr<rocksdb::Iterator> it(
      log_->db()->NewIterator(rocksdb::ReadOptions(), webhooks_));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    if (!user_id) {
      WebhookRecord r;
      CONVSTORE_ASSIGN_OR_RETURN(r, DecodeRecord(it->value().ToStringView()));
      out.push_back(std::move(r));
      continue;
    }
    std::optional<WebhookRecord> r;
    CONVSTORE_ASSIGN_OR_RETURN(
        r, Get(it->key().ToStringView().substr(prefix.size())));
    if (r) out.push_back(std::move(*r));
  }
  if (!it->status().ok()) return FromRocksStatus(it->status(), "list webhooks");
  return out;
}

Result<std::optional<uint64_t>> WebhookStore::Checkpoint(
    std::string_view id) const {
  std::string value;
  rocksdb::Status s = log_->db()->Get(rocksdb::ReadOptions(), state_,
                                      CheckpointKey(id), &value);
  if (s.IsNotFound()) return std::optional<uint64_t>();
  if (!s.ok()) return FromRocksStatus(s, "read webhook checkpoint");
  if (value.size() != 8) return Status::Corruption("webhook checkpoint");
  return std::optional<uint64_t>(DecodePositionKey(value));
}

Status WebhookStore::PutCheckpoint(std::string_view id,
                                   uint64_t position) const {
  return FromRocksStatus(log_->db()->Put(Unsynced(), state_, CheckpointKey(id),
                                         EncodePositionKey(position)),
                         "write webhook checkpoint");
}

Result<uint64_t> WebhookStore::LastAttemptNumber(std::string_view id) const {
  std::unique_ptr<rocksdb::Iterator> it(
      log_->db()->NewIterator(rocksdb::ReadOptions(), attempts_));
  const std::string prefix = AttemptPrefix(id);
  it->SeekForPrev(AttemptKey(id, UINT64_MAX));
  if (!it->status().ok()) {
    return FromRocksStatus(it->status(), "read webhook attempts");
  }
  if (!it->Valid() || !it->key().starts_with(prefix)) return uint64_t{0};
  return DecodePositionKey(it->key().ToStringView().substr(prefix.size()));
}

Status WebhookStore::AddAttempt(std::string_view id, uint64_t number,
                                const DeliveryAttempt& attempt) const {
  rocksdb::WriteBatch batch;
  batch.Put(attempts_, AttemptKey(id, number), EncodeAttempt(attempt));
  if (number > kKeptAttempts) {
    batch.Delete(attempts_, AttemptKey(id, number - kKeptAttempts));
  }
  return FromRocksStatus(log_->db()->Write(Unsynced(), &batch),
                         "write webhook attempt");
}

Result<std::vector<DeliveryAttempt>> WebhookStore::RecentAttempts(
    std::string_view id, size_t limit) const {
  std::vector<DeliveryAttempt> out;
  const std::string prefix = AttemptPrefix(id);
  std::unique_ptr<rocksdb::Iterator> it(
      log_->db()->NewIterator(rocksdb::ReadOptions(), attempts_));
  for (it->SeekForPrev(AttemptKey(id, UINT64_MAX));
       it->Valid() && it->key().starts_with(prefix) && out.size() < limit;
       it->Prev()) {
    DeliveryAttempt a;
    CONVSTORE_ASSIGN_OR_RETURN(a, DecodeAttempt(it->value().ToStringView()));
    out.push_back(std::move(a));
  }
  if (!it->status().ok()) {
    return FromRocksStatus(it->status(), "read webhook attempts");
  }
  return out;
}

Status WebhookStore::ForgetDeliveries(std::string_view id) const {
  rocksdb::WriteBatch batch;
  batch.Delete(state_, CheckpointKey(id));
  // One delete per kept attempt (at most kKeptAttempts), not a range
  // deletion: the store's row cache (eventlog/event_log.cc) would not see
  // one.
  const std::string prefix = AttemptPrefix(id);
  std::unique_ptr<rocksdb::Iterator> it(
      log_->db()->NewIterator(rocksdb::ReadOptions(), attempts_));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    batch.Delete(attempts_, it->key());
  }
  if (!it->status().ok()) {
    return FromRocksStatus(it->status(), "read webhook attempts");
  }
  return FromRocksStatus(log_->db()->Write(Unsynced(), &batch),
                         "forget webhook deliveries");
}

json::object WebhookToJson(const WebhookRecord& r, const std::string* secret) {
  json::object o = CommonFields(r);
  o["description"] =
      r.description ? json::value(*r.description) : json::value(nullptr);
  o["created_at"] = FormatRfc3339Millis(r.created_at_ms);
  if (secret) o["secret"] = *secret;
  return o;
}

json::object DeliveryAttemptToJson(const DeliveryAttempt& a) {
  json::object o = CommonFields(a);
  o["attempted_at"] = FormatRfc3339Millis(a.attempted_at_ms);
  o["status"] = a.status ? json::value(a.status) : json::value(nullptr);
  o["error"] = a.error.empty() ? json::value(nullptr) : json::value(a.error);
  o["next_attempt_at"] =
      a.next_attempt_at_ms
          ? json::value(FormatRfc3339Millis(*a.next_attempt_at_ms))
          : json::value(nullptr);
  return o;
}

}  // namespace convstore::http
