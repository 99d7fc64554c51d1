// UserErasure: DELETE /v1/admin/users/{user_id}, which erases everything a
// user created. First their API keys, webhooks and stored Idempotency-Key
// responses go (so they can create nothing more), then each conversation and
// agent (ConversationErased / AgentErased events, reason user_erased, 32
// subjects per command), then a UserErased event with the totals. Each step is
// one command through the writer, and the erasure's progress is a row beside
// the log written in the same batch: a restart in the middle resumes it (Open),
// and no subject is ever half-erased. A user is named in the log and in the
// finished row only by their ref, HMAC-SHA256 of the id under a random key of
// this store, so the record of an erasure holds no personal data (a running row
// keeps the id, which it needs to resume). Thread-safety: all methods are safe
// from any thread; a user's erasure runs one step at a time, and a second
// request for it joins the first.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/decide.h"
#include "eventlog/event_log.h"
#include "eventlog/group_commit.h"
#include "http/api_keys.h"
#include "http/idempotency.h"
#include "http/webhook_store.h"
#include "projections/read_models.h"

namespace convstore::http {

// What one erasure of a user erased so far (all of it once done).
struct UserErasureReport {
  std::string user_id;  // stored only while the erasure runs
  bool done = false;
  std::string erased_by;  // the admin's user id
  int64_t started_at_ms = 0;
  int64_t erased_at_ms = 0;  // set once done
  uint64_t agents = 0;
  uint64_t conversations = 0;
  uint64_t messages = 0;
  uint64_t api_keys = 0;
  uint64_t webhooks = 0;
};

// {user_id, status: "erased"|"erasing", erased_by, started_at, erased_at
// (null until done), erased: {agents, conversations, messages, api_keys,
// webhooks}}.
boost::json::object UserErasureToJson(const UserErasureReport& report);

class UserErasure {
 public:
  struct Hooks {
    std::function<std::shared_ptr<ReadModels>()> read_models;
    // Once a webhook is erased (committed): stop delivering it.
    std::function<void(const std::string& webhook_id)> webhook_erased;
    // Once an erasure ends, done or not (what it committed wants purging).
    std::function<void()> ended;
  };
  using Done = std::function<void(Result<UserErasureReport>)>;

  static std::vector<std::string> ColumnFamilies();
  UserErasure(EventLog* log, GroupCommitWriter* writer, ApiKeyStore* keys,
              WebhookStore* webhooks, IdempotencyStore* idempotency,
              Hooks hooks);

  // Erases `user_id` for `by` (an admin), or joins the erasure of it under
  // way; `done` gets the final report, on the writer's committing thread
  // (it must only hand it off). A user erased before, with nothing new,
  // gets that erasure's report again and nothing is written.
  void Erase(const std::string& user_id, const Actor& by, Done done);
  // Loads (or makes, on a new store) the key of user refs, and resumes
  // every erasure a stop interrupted. Call once, at open.
  Status Open();
  // The user's ref: the first 32 hex digits of HMAC-SHA256(key, user_id).
  std::string RefOf(std::string_view user_id) const;
  // The stored report of a user's last erasure, if any.
  Result<std::optional<UserErasureReport>> Find(
      std::string_view user_id, const LogBatch* batch = nullptr) const;

 private:
  struct Step;
  void Start(const std::string& user_id, const Actor& by, bool resume);
  void EraseSubjects(const std::string& user_id, const Actor& by);
  void Finish(const std::string& user_id, const Actor& by);
  void Complete(const std::string& user_id, Result<UserErasureReport> result);
  void Put(LogBatch& batch, const UserErasureReport& report) const;

  EventLog* log_;
  GroupCommitWriter* writer_;
  ApiKeyStore* keys_;
  WebhookStore* webhooks_;
  IdempotencyStore* idempotency_;
  Hooks hooks_;
  rocksdb::ColumnFamilyHandle* cf_;
  std::string ref_key_;  // set by Open, then read-only
  std::mutex mu_;
  // Erasures under way: who waits for each.
  std::map<std::string, std::vector<Done>, std::less<>> running_;
};

}  // namespace convstore::http
