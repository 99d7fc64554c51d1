// ApiKeyStore: API keys, kept beside the log in RocksDB and only as SHA-256
// hashes; the plaintext exists once, in the response that creates it.
// Thread-safety: reads from any thread; writes go through a LogBatch on the
// writer thread, so a key is durable before anyone is told it exists.
// Authenticate remembers valid keys in memory until ForgetKeys.
#pragma once

#include <atomic>
#include <boost/json/object.hpp>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/decide.h"
#include "core/validation.h"
#include "eventlog/event_log.h"

namespace convstore::http {

struct ApiKeyRecord {
  std::string id;
  std::string user_id;
  KeyRole role = KeyRole::kUser;
  int64_t created_at_ms = 0;
  std::optional<int64_t> revoked_at_ms;
};

// What Authenticate knew when it let a request in, for StillValid.
struct KeyCheck {
  std::string hash;                // the key's SHA-256, hex
  uint64_t changes_forgotten = 0;  // key changes committed and forgotten then
};

// One connection's last successful authentication, so that its next request
// with the same Authorization header skips hashing the key (most of what
// authenticating a small request costs). It holds the header itself, in
// memory only and for the connection's life, as the request does; a
// ForgetKeys (a revocation or erasure committed) makes it stale at once.
// Owned by one connection and used by one thread at a time.
struct RememberedKey {
  std::string authorization;  // empty: nothing remembered
  uint64_t epoch = 0;         // the store's epoch when it was remembered
  Actor actor;
  KeyCheck check;
};

class ApiKeyStore {
 public:
  static std::vector<std::string> ColumnFamilies();
  explicit ApiKeyStore(EventLog* log);
  // Indexes the keys of a store made before keys were indexed by owner
  // (once; later opens only check). Call once, at open, before any write.
  Status Open();

  // Checks an Authorization header value ("Bearer <key>", scheme in any
  // case). Missing, malformed, unknown or revoked: Unauthenticated. With
  // `check`, also what a write needs for StillValid. With `remembered`, a
  // header equal to the one it holds (compared in constant time) is let in
  // without a lookup while no key was forgotten since; a header that
  // authenticates replaces it, one that does not clears it.
  Result<Actor> Authenticate(std::string_view authorization,
                             KeyCheck* check = nullptr,
                             RememberedKey* remembered = nullptr) const;
  // On the writer's deciding thread, before a write decides: is the key that
  // authenticated it still valid as `batch` sees the store? A request let in
  // before its key's revocation or erasure was decided or committed is
  // refused (Unauthenticated), so no write decided after the command that
  // removed a key is made with it: a user's erasure, which first erases their
  // keys, then everything they created, misses nothing created meanwhile.
  // Reads the key only when some key changed since the request came in.
  Status StillValid(const KeyCheck& check, const LogBatch& batch) const;

  // Stores a new key's hash. `plaintext` comes from NewApiKeyText().
  ApiKeyRecord Create(LogBatch& batch, std::string_view plaintext,
                      const std::string& user_id, KeyRole role, int64_t now_ms,
                      std::string id) const;
  // Revoke and Erase count as key changes (changes_decided()); once the
  // command that made them is committed, call ForgetKeys with that count.
  Status Revoke(LogBatch& batch, std::string_view id, int64_t now_ms) const;
  // Deletes the key's records (a user's erasure).
  Status Erase(LogBatch& batch, std::string_view id) const;
  uint64_t changes_decided() const;
  // Forgets every key Authenticate remembered, and that the changes counted
  // up to `changes_decided` are committed. Call once a revocation or erasure
  // is committed (or refused), before the client hears of it.
  void ForgetKeys(uint64_t changes_decided) const;
  Result<std::vector<ApiKeyRecord>> List() const;
  // The keys of one user (committed ones), through the owner index.
  Result<std::vector<ApiKeyRecord>> ListOf(std::string_view user_id) const;
  Result<bool> Empty() const;

 private:
  // Authenticate without a RememberedKey; `epoch` is the store's epoch
  // when the lookup began.
  Result<Actor> Lookup(std::string_view authorization, KeyCheck* check,
                       uint64_t* epoch) const;

  EventLog* log_;
  rocksdb::ColumnFamilyHandle* by_hash_;
  rocksdb::ColumnFamilyHandle* by_id_;
  rocksdb::ColumnFamilyHandle* by_owner_;
  // Keys that authenticated, by hash, so that most requests skip two reads
  // and a decode. A lookup that started before a ForgetKeys (its epoch is
  // older) is not remembered: it may have read the key before the revoke.
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, Actor> cache_;
  // Bumped under cache_mu_ by ForgetKeys; read without it by a connection
  // checking its RememberedKey.
  mutable std::atomic<uint64_t> cache_epoch_{0};
  // Key changes decided (bumped on the deciding thread) and the highest
  // count ForgetKeys was told is committed (guarded by cache_mu_). A request
  // that came in when every decided change was committed, and no change was
  // decided since, needs no second look at its key.
  mutable std::atomic<uint64_t> changes_decided_{0};
  mutable uint64_t changes_forgotten_ = 0;
};

// {id, user_id, role, created_at, revoked_at}, plus "key" when given (only
// in the response that creates it).
boost::json::object ApiKeyToJson(const ApiKeyRecord& record,
                                 const std::string* plaintext = nullptr);

// A fresh random key: "csk_" + 43 base64url characters (256 bits).
std::string NewApiKeyText();
// A fresh UUIDv7 for `now_ms`, from the OS's random source.
std::string NewUuid(int64_t now_ms);
int64_t NowMillis();

}  // namespace convstore::http
