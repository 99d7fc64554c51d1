#include "http/user_erasure.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include "core/encoding.h"
#include "core/ids.h"
#include "core/validation.h"
#include "eventlog/random.h"
#include "http/stored_record.h"

namespace convstore::http {
namespace {

namespace json = boost::json;

// ref -> report JSON, and kRefKeyRow -> the key of refs.
constexpr char kUserErasuresCf[] = "user_erasures";
constexpr std::string_view kRefKeyRow("\0ref-key", 8);
// Subjects erased per command: small enough that a user with many
// conversations does not hold the writer up for long at a time.
constexpr size_t kSubjectsPerStep = 32;

std::string EncodeReport(const UserErasureReport& r) {
  json::object o;
  if (!r.done) o["user_id"] = r.user_id;  // to resume; then forgotten
  o["done"] = r.done;
  o["erased_by"] = r.erased_by;
  o["started_at"] = r.started_at_ms;
  o["erased_at"] = r.erased_at_ms;
  o["agents"] = r.agents;
  o["conversations"] = r.conversations;
  o["messages"] = r.messages;
  o["api_keys"] = r.api_keys;
  o["webhooks"] = r.webhooks;
  return json::serialize(o);
}

Result<UserErasureReport> DecodeReport(std::string_view bytes) {
  json::object o;
  CONVSTORE_ASSIGN_OR_RETURN(o, ParseStoredRecord(bytes, "user erasure"));
  UserErasureReport r;
  r.user_id = StringField(o, "user_id");
  const json::value* done = o.if_contains("done");
  r.done = done != nullptr && done->is_bool() && done->as_bool();
  r.erased_by = StringField(o, "erased_by");
  r.started_at_ms = IntField(o, "started_at").value_or(0);
  r.erased_at_ms = IntField(o, "erased_at").value_or(0);
  auto count = [&o](std::string_view key) {
    return static_cast<uint64_t>(
        std::max<int64_t>(0, IntField(o, key).value_or(0)));
  };
  r.agents = count("agents");
  r.conversations = count("conversations");
  r.messages = count("messages");
  r.api_keys = count("api_keys");
  r.webhooks = count("webhooks");
  return r;
}

EventMeta MetaOf(const Actor& by, int64_t now_ms) {
  return EventMeta{by.user_id, "", now_ms};
}

std::function<std::string()> EventIds(int64_t now_ms) {
  return [now_ms] { return NewUuid(now_ms); };
}

}  // namespace

json::object UserErasureToJson(const UserErasureReport& r) {
  json::object o;
  o["user_id"] = r.user_id;
  o["status"] = r.done ? "erased" : "erasing";
  o["erased_by"] = r.erased_by;
  o["started_at"] = FormatRfc3339Millis(r.started_at_ms);
  o["erased_at"] = r.done ? json::value(FormatRfc3339Millis(r.erased_at_ms))
                          : json::value(nullptr);
  o["erased"] = json::object{{"agents", r.agents},
                             {"conversations", r.conversations},
                             {"messages", r.messages},
                             {"api_keys", r.api_keys},
                             {"webhooks", r.webhooks}};
  return o;
}

std::vector<std::string> UserErasure::ColumnFamilies() {
  return {kUserErasuresCf};
}

UserErasure::UserErasure(EventLog* log, GroupCommitWriter* writer,
                         ApiKeyStore* keys, WebhookStore* webhooks,
                         IdempotencyStore* idempotency, Hooks hooks)
    : log_(log),
      writer_(writer),
      keys_(keys),
      webhooks_(webhooks),
      idempotency_(idempotency),
      hooks_(std::move(hooks)),
      cf_(log->cf(kUserErasuresCf)) {}

Result<std::optional<UserErasureReport>> UserErasure::Find(
    std::string_view user_id, const LogBatch* batch) const {
  std::optional<std::string> raw;
  if (batch != nullptr) {
    CONVSTORE_ASSIGN_OR_RETURN(raw, batch->Get(cf_, RefOf(user_id)));
  } else {
    std::string value;
    const std::string ref = RefOf(user_id);
    rocksdb::Status s =
        log_->db()->Get(rocksdb::ReadOptions(), cf_, ref, &value);
    if (!s.IsNotFound()) {
      CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(s, "read user erasure"));
      raw = std::move(value);
    }
  }
  if (!raw) return std::optional<UserErasureReport>();
  UserErasureReport r;
  CONVSTORE_ASSIGN_OR_RETURN(r, DecodeReport(*raw));
  r.user_id = std::string(user_id);
  return std::optional<UserErasureReport>(std::move(r));
}

std::string UserErasure::RefOf(std::string_view user_id) const {
  return HexEncode(HmacSha256(ref_key_, user_id)).substr(0, 32);
}

void UserErasure::Put(LogBatch& batch, const UserErasureReport& r) const {
  batch.Put(cf_, RefOf(r.user_id), EncodeReport(r));
}

void UserErasure::Erase(const std::string& user_id, const Actor& by,
                        Done done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, fresh] = running_.try_emplace(user_id);
    it->second.push_back(std::move(done));
    if (!fresh) return;  // joins the erasure under way
  }
  Start(user_id, by, /*resume=*/false);
}

Status UserErasure::Open() {
  std::string key;
  rocksdb::Status s =
      log_->db()->Get(rocksdb::ReadOptions(), cf_, kRefKeyRow, &key);
  if (s.IsNotFound()) {
    key.resize(32);
    SecureRandomBytes(reinterpret_cast<unsigned char*>(key.data()), key.size());
    rocksdb::WriteOptions synced;
    synced.sync = true;
    s = log_->db()->Put(synced, cf_, kRefKeyRow, key);
  }
  CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(s, "read the key of user refs"));
  if (key.size() != 32) {
    return Status::Corruption("the key of user refs is not 32 bytes");
  }
  ref_key_ = std::move(key);

  std::vector<UserErasureReport> interrupted;
  std::unique_ptr<rocksdb::Iterator> it(
      log_->db()->NewIterator(rocksdb::ReadOptions(), cf_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().starts_with(kRefKeyRow.substr(0, 1))) continue;
    UserErasureReport r;
    CONVSTORE_ASSIGN_OR_RETURN(r, DecodeReport(it->value().ToStringView()));
    if (r.done) continue;
    if (!IsValidUserId(r.user_id)) {
      return Status::Corruption("a running user erasure names no user");
    }
    interrupted.push_back(std::move(r));
  }
  CONVSTORE_RETURN_IF_ERROR(
      FromRocksStatus(it->status(), "read user erasures"));
  for (const UserErasureReport& r : interrupted) {
    spdlog::warn("resuming the erasure of user {} that a stop interrupted",
                 r.user_id);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!running_.try_emplace(r.user_id).second) continue;
    }
    Start(r.user_id, Actor{r.erased_by, true}, /*resume=*/true);
  }
  return Status();
}

// What a step decided, handed from its Work (deciding thread) to its Done
// (committing thread).
struct UserErasure::Step {
  UserErasureReport report;
  bool nothing_new = false;              // Start: a repeat, nothing written
  std::vector<std::string> webhook_ids;  // Start: erased webhooks
  uint64_t key_changes = 0;              // Start: ApiKeyStore's count
  size_t subjects = 0;                   // EraseSubjects: found
  size_t erased = 0;                     // EraseSubjects: erased now
};

void UserErasure::Start(const std::string& user_id, const Actor& by,
                        bool resume) {
  auto step = std::make_shared<Step>();
  auto work = [this, user_id, by, resume, step](LogBatch& batch) -> Status {
    std::optional<UserErasureReport> last;
    CONVSTORE_ASSIGN_OR_RETURN(last, Find(user_id, &batch));
    if (last && !last->done) {  // resumed: its keys and webhooks are gone
      step->report = *last;
      return Status();
    }
    if (resume)
      return Status::Internal("no erasure of " + user_id + " to resume");
    std::vector<ApiKeyRecord> keys;
    CONVSTORE_ASSIGN_OR_RETURN(keys, keys_->ListOf(user_id));
    std::vector<WebhookRecord> hooks;
    CONVSTORE_ASSIGN_OR_RETURN(hooks, webhooks_->List(user_id));
    std::vector<std::string> subjects;
    CONVSTORE_ASSIGN_OR_RETURN(subjects,
                               hooks_.read_models()->SubjectsOf(user_id, 1));
    if (last && keys.empty() && hooks.empty() && subjects.empty()) {
      step->report = *last;
      step->nothing_new = true;
      return Status();
    }
    UserErasureReport& r = step->report;
    r.user_id = user_id;
    r.erased_by = by.user_id;
    r.started_at_ms = NowMillis();
    for (const ApiKeyRecord& k : keys) {
      CONVSTORE_RETURN_IF_ERROR(keys_->Erase(batch, k.id));
    }
    step->key_changes = keys_->changes_decided();
    for (const WebhookRecord& h : hooks) {
      webhooks_->Delete(batch, h);
      step->webhook_ids.push_back(h.id);
    }
    CONVSTORE_RETURN_IF_ERROR(idempotency_->EraseUser(batch, user_id).status());
    r.api_keys = keys.size();
    r.webhooks = hooks.size();
    Put(batch, r);
    return Status();
  };
  writer_->Submit(std::move(work), [this, user_id, by, step](const Status& s) {
    // Committed or refused: no remembered key of theirs may outlive it. In
    // memory only, as Removed below: safe to do here.
    keys_->ForgetKeys(step->key_changes);
    if (!s.ok()) return Complete(user_id, s);
    if (step->nothing_new) return Complete(user_id, step->report);
    for (const std::string& id : step->webhook_ids) hooks_.webhook_erased(id);
    EraseSubjects(user_id, by);
  });
}

void UserErasure::EraseSubjects(const std::string& user_id, const Actor& by) {
  auto step = std::make_shared<Step>();
  auto work = [this, user_id, by, step](LogBatch& batch) -> Status {
    std::optional<UserErasureReport> report;
    CONVSTORE_ASSIGN_OR_RETURN(report, Find(user_id, &batch));
    if (!report || report->done) {
      return Status::Internal("the erasure of " + user_id + " is not running");
    }
    std::shared_ptr<ReadModels> rm = hooks_.read_models();
    // The committed state: the step before this one is committed.
    std::vector<std::string> subjects;
    CONVSTORE_ASSIGN_OR_RETURN(subjects,
                               rm->SubjectsOf(user_id, kSubjectsPerStep));
    step->subjects = subjects.size();
    const int64_t now = NowMillis();
    const EventMeta meta = MetaOf(by, now);
    for (const std::string& subject : subjects) {
      const std::string id = subject.substr(1);
      std::vector<NewEvent> events;
      uint64_t messages = 0;
      if (subject[0] == 'c') {
        std::optional<std::string> last;
        CONVSTORE_ASSIGN_OR_RETURN(
            last, batch.Get(log_->streams_cf(), MessagesStream(id)));
        if (last) messages = DecodePositionKey(*last) + 1;
        events.push_back(
            {ConversationStream(id), std::nullopt,
             ConversationErased{id, ErasureReason::kUserErased, now}});
      } else {
        events.push_back({AgentStream(id), std::nullopt,
                          AgentErased{id, ErasureReason::kUserErased, now}});
      }
      auto appended = batch.Append(events, meta, EventIds(now));
      if (appended.status().kind() == ErrorKind::kNotFound) continue;
      CONVSTORE_RETURN_IF_ERROR(appended.status());
      ++step->erased;
      if (subject[0] == 'c') {
        ++report->conversations;
        report->messages += messages;
      } else {
        ++report->agents;
      }
    }
    Put(batch, *report);
    return Status();
  };
  writer_->Submit(std::move(work), [this, user_id, by, step](const Status& s) {
    if (!s.ok()) return Complete(user_id, s);
    if (step->subjects == 0) return Finish(user_id, by);
    if (step->erased == 0) {
      // Found but none could be erased: stop rather than loop.
      return Complete(user_id, Status::Internal("the erasure of " + user_id +
                                                " made no progress"));
    }
    EraseSubjects(user_id, by);
  });
}

void UserErasure::Finish(const std::string& user_id, const Actor& by) {
  auto step = std::make_shared<Step>();
  auto work = [this, user_id, by, step](LogBatch& batch) -> Status {
    std::optional<UserErasureReport> report;
    CONVSTORE_ASSIGN_OR_RETURN(report, Find(user_id, &batch));
    if (!report) return Status::Internal("no erasure of " + user_id);
    UserErasureReport& r = *report;
    const int64_t now = NowMillis();
    r.done = true;
    r.erased_at_ms = now;
    CONVSTORE_RETURN_IF_ERROR(
        batch
            .Append({{UserStream(RefOf(user_id)), std::nullopt,
                      UserErased{RefOf(user_id), now, r.agents, r.conversations,
                                 r.messages, r.api_keys, r.webhooks}}},
                    MetaOf(by, now), EventIds(now))
            .status());
    Put(batch, r);
    step->report = r;
    return Status();
  };
  writer_->Submit(std::move(work), [this, user_id, step](const Status& s) {
    if (!s.ok()) return Complete(user_id, s);
    Complete(user_id, step->report);
  });
}

void UserErasure::Complete(const std::string& user_id,
                           Result<UserErasureReport> result) {
  std::vector<Done> waiting;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = running_.find(user_id);
    if (it != running_.end()) {
      waiting = std::move(it->second);
      running_.erase(it);
    }
  }
  if (!result.ok()) {
    spdlog::error("erasure of user {}: {}", user_id,
                  result.status().ToString());
  }
  if (hooks_.ended) hooks_.ended();
  for (Done& done : waiting) done(result);
}

}  // namespace convstore::http
