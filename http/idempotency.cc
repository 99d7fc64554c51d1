#include "http/idempotency.h"

#include <boost/json.hpp>

#include "core/data_key.h"
#include "core/encoding.h"
#include "eventlog/random.h"
#include "http/api_keys.h"
#include "http/stored_record.h"

namespace convstore::http {
namespace {

namespace json = boost::json;
constexpr char kIdempotencyCf[] = "idempotency";

std::string ScopedKey(std::string_view user, std::string_view key) {
  std::string k(user);
  k.push_back('\0');
  k.append(key);
  return k;
}

std::string Encode(const StoredResponse& r) {
  json::object o;
  o["hash"] = r.request_hash;
  o["status"] = r.status;
  o["body"] = r.body;  // sealed and base64url-encoded when `subject` is set
  if (!r.subject.empty()) o["subject"] = r.subject;
  o["location"] = r.location;
  o["etag"] = r.etag;
  o["created_at"] = r.created_at_ms;
  if (r.token) {
    json::object t;
    t["room"] = r.token->room_name;
    t["conversation_id"] = r.token->conversation_id;
    if (r.token->dispatch_name) t["dispatch_name"] = *r.token->dispatch_name;
    t["with_expiry"] = r.token->with_expiry;
    o["token"] = std::move(t);
  }
  return json::serialize(o);
}

Result<StoredResponse> Decode(std::string_view bytes) {
  json::object o;
  CONVSTORE_ASSIGN_OR_RETURN(o, ParseStoredRecord(bytes, "idempotency record"));
  StoredResponse r;
  r.request_hash = StringField(o, "hash");
  if (auto* p = o.if_contains("status"); p && p->is_number()) {
    r.status = p->to_number<unsigned>();
  }
  r.body = StringField(o, "body");
  r.subject = StringField(o, "subject");
  r.location = StringField(o, "location");
  r.etag = StringField(o, "etag");
  r.created_at_ms = IntField(o, "created_at").value_or(0);
  if (auto* p = o.if_contains("token"); p && p->is_object()) {
    const json::object& t = p->as_object();
    TokenSpec spec{StringField(t, "room"), StringField(t, "conversation_id"),
                   std::nullopt};
    if (t.contains("dispatch_name"))
      spec.dispatch_name = StringField(t, "dispatch_name");
    if (auto* w = t.if_contains("with_expiry"); w && w->is_bool()) {
      spec.with_expiry = w->as_bool();
    }
    r.token = std::move(spec);
  }
  return r;
}

// Drops responses past their retention. Compactions run on RocksDB's
// threads, each with its own filter; a record that does not parse is kept
// (Find reports it).
class ExpiredResponseFilter : public rocksdb::CompactionFilter {
 public:
  explicit ExpiredResponseFilter(int64_t retention_ms)
      : retention_ms_(retention_ms) {}
  bool Filter(int, const rocksdb::Slice&, const rocksdb::Slice& value,
              std::string*, bool*) const override {
    auto record = ParseStoredRecord(value.ToStringView(), "idempotency record");
    if (!record.ok()) return false;
    std::optional<int64_t> created = IntField(*record, "created_at");
    return created && NowMillis() - *created > retention_ms_;
  }
  const char* Name() const override { return "ExpiredResponseFilter"; }

 private:
  int64_t retention_ms_;
};

class ExpiredResponseFilterFactory : public rocksdb::CompactionFilterFactory {
 public:
  explicit ExpiredResponseFilterFactory(int64_t retention_ms)
      : retention_ms_(retention_ms) {}
  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context&) override {
    return std::make_unique<ExpiredResponseFilter>(retention_ms_);
  }
  const char* Name() const override { return "ExpiredResponseFilterFactory"; }

 private:
  int64_t retention_ms_;
};

}  // namespace

std::vector<std::string> IdempotencyStore::ColumnFamilies() {
  return {kIdempotencyCf};
}

std::map<std::string, std::shared_ptr<rocksdb::CompactionFilterFactory>>
IdempotencyStore::ExpiryFilter(int64_t retention_ms) {
  return {{kIdempotencyCf,
           std::make_shared<ExpiredResponseFilterFactory>(retention_ms)}};
}

IdempotencyStore::IdempotencyStore(EventLog* log, int64_t retention_ms)
    : log_(log), cf_(log->cf(kIdempotencyCf)), retention_ms_(retention_ms) {}

Result<std::optional<StoredResponse>> IdempotencyStore::Find(
    std::string_view user, std::string_view key, int64_t now_ms) const {
  std::string value;
  rocksdb::Status s = log_->db()->Get(rocksdb::ReadOptions(), cf_,
                                      ScopedKey(user, key), &value);
  if (s.IsNotFound()) return std::optional<StoredResponse>();
  if (!s.ok()) return FromRocksStatus(s, "read idempotency record");
  StoredResponse r;
  CONVSTORE_ASSIGN_OR_RETURN(r, Decode(value));
  if (now_ms - r.created_at_ms > retention_ms_) {
    return std::optional<StoredResponse>();
  }
  if (!r.subject.empty()) {
    std::optional<DataKey> data_key;
    CONVSTORE_ASSIGN_OR_RETURN(data_key, log_->DataKeyOf(r.subject));
    // Erased since: the response went with it.
    if (!data_key) return std::optional<StoredResponse>();
    std::optional<std::string> sealed = Base64UrlDecode(r.body);
    if (!sealed) return Status::Corruption("idempotency record body");
    CONVSTORE_ASSIGN_OR_RETURN(
        r.body, OpenWithDataKey(*data_key, ScopedKey(user, key), *sealed));
  }
  return std::optional<StoredResponse>(std::move(r));
}

Status IdempotencyStore::Put(LogBatch& batch, std::string_view user,
                             std::string_view key,
                             const StoredResponse& response) const {
  if (response.subject.empty()) {
    batch.Put(cf_, ScopedKey(user, key), Encode(response));
    return Status();
  }
  std::optional<DataKey> data_key;
  CONVSTORE_ASSIGN_OR_RETURN(data_key,
                             log_->DataKeyOf(response.subject, &batch));
  StoredResponse stored = response;
  if (!data_key) {
    // The request erased its subject: nothing of it may be kept.
    stored.subject.clear();
    stored.body.clear();
  } else {
    DataNonce nonce;
    PooledRandomBytes(nonce.data(), nonce.size());
    std::string sealed;
    CONVSTORE_ASSIGN_OR_RETURN(
        sealed,
        SealWithDataKey(*data_key, nonce, ScopedKey(user, key), response.body));
    stored.body = Base64UrlEncode(sealed);
  }
  batch.Put(cf_, ScopedKey(user, key), Encode(stored));
  return Status();
}

Result<size_t> IdempotencyStore::EraseUser(LogBatch& batch,
                                           std::string_view user) const {
  const std::string prefix = ScopedKey(user, "");
  std::unique_ptr<rocksdb::Iterator> it(
      log_->db()->NewIterator(rocksdb::ReadOptions(), cf_));
  size_t n = 0;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    batch.Delete(cf_, it->key().ToStringView());
    ++n;
  }
  CONVSTORE_RETURN_IF_ERROR(
      FromRocksStatus(it->status(), "read idempotency records"));
  return n;
}

bool IdempotencyStore::TryBegin(std::string_view user, std::string_view key) {
  std::lock_guard<std::mutex> lock(mu_);
  return in_flight_.insert(ScopedKey(user, key)).second;
}

void IdempotencyStore::End(std::string_view user, std::string_view key) {
  std::lock_guard<std::mutex> lock(mu_);
  in_flight_.erase(ScopedKey(user, key));
}

std::string IdempotencyStore::RequestHash(std::string_view method,
                                          std::string_view path,
                                          std::string_view body) {
  std::string data(method);
  data.push_back('\n');
  data.append(path);
  data.push_back('\n');
  data.append(body);
  return HexEncode(Sha256(data));
}

}  // namespace convstore::http
