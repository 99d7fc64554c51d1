#include "http/api_keys.h"

#include <algorithm>
#include <array>
#include <boost/beast/core/string.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include "core/encoding.h"
#include "core/ids.h"
#include "eventlog/random.h"
#include "http/stored_record.h"

namespace convstore::http {
namespace {

namespace json = boost::json;

constexpr char kKeysByHashCf[] = "api_keys";
constexpr char kKeyIdsCf[] = "api_key_ids";
// "<user>\0<id>" for each key, so a user's keys are found without reading
// everyone's; the marker says every key made before the index is in it.
constexpr char kKeyOwnersCf[] = "api_key_owners";
const std::string kOwnersIndexedMarker("\0indexed", 8);

std::string OwnerKey(std::string_view user_id, std::string_view id) {
  std::string k(user_id);
  k.push_back('\0');
  k.append(id);
  return k;
}

std::string KeyHash(std::string_view plaintext) {
  return HexEncode(Sha256(plaintext));
}

std::string EncodeRecord(const ApiKeyRecord& r) {
  json::object o;
  o["id"] = r.id;
  o["user_id"] = r.user_id;
  o["role"] = ToString(r.role);
  o["created_at"] = r.created_at_ms;
  if (r.revoked_at_ms) o["revoked_at"] = *r.revoked_at_ms;
  return json::serialize(o);
}

Result<ApiKeyRecord> DecodeRecord(std::string_view bytes) {
  json::object o;
  CONVSTORE_ASSIGN_OR_RETURN(o, ParseStoredRecord(bytes, "api key record"));
  ApiKeyRecord r;
  r.id = StringField(o, "id");
  r.user_id = StringField(o, "user_id");
  r.role = StringField(o, "role") == "admin" ? KeyRole::kAdmin : KeyRole::kUser;
  r.created_at_ms = IntField(o, "created_at").value_or(0);
  r.revoked_at_ms = IntField(o, "revoked_at");
  return r;
}

}  // namespace

std::vector<std::string> ApiKeyStore::ColumnFamilies() {
  return {kKeysByHashCf, kKeyIdsCf, kKeyOwnersCf};
}

ApiKeyStore::ApiKeyStore(EventLog* log)
    : log_(log),
      by_hash_(log->cf(kKeysByHashCf)),
      by_id_(log->cf(kKeyIdsCf)),
      by_owner_(log->cf(kKeyOwnersCf)) {}

Status ApiKeyStore::Open() {
  std::string marker;
  rocksdb::Status s = log_->db()->Get(rocksdb::ReadOptions(), by_owner_,
                                      kOwnersIndexedMarker, &marker);
  if (s.ok()) return Status();
  if (!s.IsNotFound()) return FromRocksStatus(s, "read api key owners");
  // A store from before the index: index every key it has, once.
  std::vector<ApiKeyRecord> keys;
  CONVSTORE_ASSIGN_OR_RETURN(keys, List());
  LogBatch batch(log_);
  for (const ApiKeyRecord& k : keys) {
    batch.Put(by_owner_, OwnerKey(k.user_id, k.id), "");
  }
  batch.Put(by_owner_, kOwnersIndexedMarker, "");
  return batch.Commit();
}

Result<Actor> ApiKeyStore::Authenticate(std::string_view authorization,
                                        KeyCheck* check,
                                        RememberedKey* remembered) const {
  if (remembered != nullptr && !remembered->authorization.empty() &&
      remembered->epoch == cache_epoch_.load(std::memory_order_acquire) &&
      ConstantTimeEquals(remembered->authorization, authorization)) {
    if (check) *check = remembered->check;
    return remembered->actor;
  }
  KeyCheck found;
  uint64_t epoch;
  Result<Actor> actor = Lookup(authorization, &found, &epoch);
  if (remembered != nullptr) {
    remembered->authorization.clear();
    if (actor.ok()) {
      remembered->authorization.assign(authorization);
      remembered->epoch = epoch;
      remembered->actor = *actor;
      remembered->check = found;
    }
  }
  if (check) *check = std::move(found);
  return actor;
}

Result<Actor> ApiKeyStore::Lookup(std::string_view authorization,
                                  KeyCheck* check, uint64_t* epoch) const {
  const Status missing = Status::Unauthenticated(
      "Missing API key. Send 'Authorization: Bearer <api key>'.");
  const Status invalid = Status::Unauthenticated("Invalid API key.");
  if (authorization.empty()) return missing;
  size_t space = authorization.find(' ');
  if (space == std::string_view::npos ||
      !boost::beast::iequals(authorization.substr(0, space), "bearer")) {
    return missing;
  }
  std::string_view key = authorization.substr(space + 1);
  while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
  if (key.empty() || key.size() > 256) return invalid;
  std::string hash = KeyHash(key);
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    *epoch = cache_epoch_.load();
    if (check) check->changes_forgotten = changes_forgotten_;
    auto it = cache_.find(hash);
    if (it != cache_.end()) {
      if (check) check->hash = std::move(hash);
      return it->second;
    }
  }
  std::string value;
  rocksdb::Status s =
      log_->db()->Get(rocksdb::ReadOptions(), by_hash_, hash, &value);
  if (s.IsNotFound()) return invalid;
  if (!s.ok()) return FromRocksStatus(s, "read api key");
  // The record is found by its hash; the compare below is constant-time so
  // that no timing difference depends on the key's bytes.
  ApiKeyRecord r;
  CONVSTORE_ASSIGN_OR_RETURN(r, DecodeRecord(value));
  std::string stored_hash;
  if (!log_->db()
           ->Get(rocksdb::ReadOptions(), by_id_, r.id, &stored_hash)
           .ok() ||
      !ConstantTimeEquals(stored_hash, hash)) {
    return invalid;
  }
  if (r.revoked_at_ms) return Status::Unauthenticated("API key was revoked.");
  Actor actor{r.user_id, r.role == KeyRole::kAdmin};
  {
    constexpr size_t kMaxRemembered = 10000;
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_epoch_.load() == *epoch) {
      if (cache_.size() >= kMaxRemembered) cache_.clear();
      cache_.emplace(hash, actor);
    }
  }
  if (check) check->hash = std::move(hash);
  return actor;
}

Status ApiKeyStore::StillValid(const KeyCheck& check,
                               const LogBatch& batch) const {
  // Every change decided so far was committed and forgotten before the
  // request came in, so what it authenticated against is still true.
  if (changes_decided_.load(std::memory_order_acquire) ==
      check.changes_forgotten) {
    return Status();
  }
  std::optional<std::string> raw;
  CONVSTORE_ASSIGN_OR_RETURN(raw, batch.Get(by_hash_, check.hash));
  if (!raw) return Status::Unauthenticated("Invalid API key.");
  ApiKeyRecord r;
  CONVSTORE_ASSIGN_OR_RETURN(r, DecodeRecord(*raw));
  if (r.revoked_at_ms) return Status::Unauthenticated("API key was revoked.");
  return Status();
}

uint64_t ApiKeyStore::changes_decided() const {
  return changes_decided_.load(std::memory_order_acquire);
}

void ApiKeyStore::ForgetKeys(uint64_t changes_decided) const {
  std::lock_guard<std::mutex> lock(cache_mu_);
  cache_epoch_.fetch_add(1);
  cache_.clear();
  changes_forgotten_ = std::max(changes_forgotten_, changes_decided);
}

ApiKeyRecord ApiKeyStore::Create(LogBatch& batch, std::string_view plaintext,
                                 const std::string& user_id, KeyRole role,
                                 int64_t now_ms, std::string id) const {
  ApiKeyRecord r{std::move(id), user_id, role, now_ms, std::nullopt};
  const std::string hash = KeyHash(plaintext);
  batch.Put(by_hash_, hash, EncodeRecord(r));
  batch.Put(by_id_, r.id, hash);
  batch.Put(by_owner_, OwnerKey(r.user_id, r.id), "");
  return r;
}

Status ApiKeyStore::Revoke(LogBatch& batch, std::string_view id,
                           int64_t now_ms) const {
  std::optional<std::string> hash;
  CONVSTORE_ASSIGN_OR_RETURN(hash, batch.Get(by_id_, id));
  if (!hash) return Status::NotFound("API key not found.");
  std::optional<std::string> raw;
  CONVSTORE_ASSIGN_OR_RETURN(raw, batch.Get(by_hash_, *hash));
  if (!raw) return Status::NotFound("API key not found.");
  ApiKeyRecord r;
  CONVSTORE_ASSIGN_OR_RETURN(r, DecodeRecord(*raw));
  if (!r.revoked_at_ms) {
    r.revoked_at_ms = now_ms;
    batch.Put(by_hash_, *hash, EncodeRecord(r));
    changes_decided_.fetch_add(1, std::memory_order_release);
  }
  return Status();
}

Status ApiKeyStore::Erase(LogBatch& batch, std::string_view id) const {
  std::optional<std::string> hash;
  CONVSTORE_ASSIGN_OR_RETURN(hash, batch.Get(by_id_, id));
  if (!hash) return Status::NotFound("API key not found.");
  std::optional<std::string> raw;
  CONVSTORE_ASSIGN_OR_RETURN(raw, batch.Get(by_hash_, *hash));
  if (raw) {
    ApiKeyRecord r;
    CONVSTORE_ASSIGN_OR_RETURN(r, DecodeRecord(*raw));
    batch.Delete(by_owner_, OwnerKey(r.user_id, id));
  }
  batch.Delete(by_hash_, *hash);
  batch.Delete(by_id_, id);
  changes_decided_.fetch_add(1, std::memory_order_release);
  return Status();
}

Result<std::vector<ApiKeyRecord>> ApiKeyStore::List() const {
  std::vector<ApiKeyRecord> out;
  std::unique_ptr<rocksdb::Iterator> it(
      log_->db()->NewIterator(rocksdb::ReadOptions(), by_id_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string value;
    rocksdb::Status s =
        log_->db()->Get(rocksdb::ReadOptions(), by_hash_, it->value(), &value);
    if (!s.ok()) continue;
    ApiKeyRecord r;
    CONVSTORE_ASSIGN_OR_RETURN(r, DecodeRecord(value));
    out.push_back(std::move(r));
  }
  CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(it->status(), "list api keys"));
  return out;
}

Result<std::vector<ApiKeyRecord>> ApiKeyStore::ListOf(
    std::string_view user_id) const {
  std::vector<ApiKeyRecord> out;
  const std::string prefix = OwnerKey(user_id, "");
  std::unique_ptr<rocksdb::Iterator> it(
      log_->db()->NewIterator(rocksdb::ReadOptions(), by_owner_));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    std::string_view id = it->key().ToStringView().substr(prefix.size());
    std::string hash, value;
    rocksdb::Status s =
        log_->db()->Get(rocksdb::ReadOptions(), by_id_, id, &hash);
    if (s.ok()) {
      s = log_->db()->Get(rocksdb::ReadOptions(), by_hash_, hash, &value);
    }
    if (s.IsNotFound()) continue;
    CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(s, "read api key"));
    ApiKeyRecord r;
    CONVSTORE_ASSIGN_OR_RETURN(r, DecodeRecord(value));
    out.push_back(std::move(r));
  }
  CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(it->status(), "list api keys"));
  return out;
}

Result<bool> ApiKeyStore::Empty() const {
  std::unique_ptr<rocksdb::Iterator> it(
      log_->db()->NewIterator(rocksdb::ReadOptions(), by_id_));
  it->SeekToFirst();
  CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(it->status(), "list api keys"));
  return !it->Valid();
}

json::object ApiKeyToJson(const ApiKeyRecord& r, const std::string* plaintext) {
  json::object o;
  o["id"] = r.id;
  if (plaintext != nullptr) o["key"] = *plaintext;
  o["user_id"] = r.user_id;
  o["role"] = ToString(r.role);
  o["created_at"] = FormatRfc3339Millis(r.created_at_ms);
  if (plaintext == nullptr) {
    o["revoked_at"] = r.revoked_at_ms
                          ? json::value(FormatRfc3339Millis(*r.revoked_at_ms))
                          : json::value(nullptr);
  }
  return o;
}

std::string NewApiKeyText() {
  std::array<unsigned char, 32> bytes;
  SecureRandomBytes(bytes.data(), bytes.size());
  return "csk_" +
         Base64UrlEncode(std::string_view(
             reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::string NewUuid(int64_t now_ms) {
  // Monotonic within this process (RFC 9562, 6.2 method 1): the 12-bit
  // rand_a field is a counter within one millisecond, so ids minted in the
  // same millisecond still sort in the order they were made, and lists sort
  // newest first by id. The clock going back reuses the last millisecond.
  static std::mutex mu;
  static int64_t last_ms = -1;
  static uint16_t counter = 0;
  std::array<uint8_t, 10> random;
  PooledRandomBytes(random.data(), random.size());
  int64_t ms;
  uint16_t seq;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (now_ms > last_ms) {
      last_ms = now_ms;
      counter = static_cast<uint16_t>(random[1] & 0x3F);  // leave headroom
    } else if (++counter > 0xFFF) {
      ++last_ms;  // 4096 ids in one millisecond: borrow the next one
      counter = 0;
    }
    ms = last_ms;
    seq = counter;
  }
  random[0] = static_cast<uint8_t>(seq >> 8);
  random[1] = static_cast<uint8_t>(seq & 0xFF);
  return MakeUuidV7(ms, random);
}

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace convstore::http
