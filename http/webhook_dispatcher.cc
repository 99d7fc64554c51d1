#include "http/webhook_dispatcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <deque>

#include "core/encoding.h"
#include "http/api_keys.h"
#include "http/webhook_client.h"

namespace convstore::http {

namespace json = boost::json;

// One (event, kind) to deliver to one webhook.
struct WebhookDispatcher::Item {
  uint64_t position = 0;
  WebhookEventKind kind = WebhookEventKind::kMessageCreated;
  std::string conversation_id;
  std::string delivery_id;
  std::string body;  // the same bytes on every attempt
  int attempts = 0;
  bool busy = false;  // in flight, or waiting to be retried
  std::unique_ptr<boost::asio::steady_timer> retry;
};

// One webhook's delivery state.
struct WebhookDispatcher::Worker {
  WebhookRecord record;
  std::string secret;
  uint64_t next_read = 1;         // the next log position to look at
  uint64_t saved_checkpoint = 0;  // what the store holds
  uint64_t last_attempt = 0;      // number of the last attempt recorded
  // Read ahead, not yet delivered or given up, in log order.
  std::map<std::pair<uint64_t, WebhookEventKind>, std::shared_ptr<Item>>
      outstanding;
  // Per conversation, its outstanding items in log order; only the front
  // one may be attempted.
  std::unordered_map<std::string, std::deque<std::shared_ptr<Item>>> queues;
  size_t in_flight = 0;
  bool removed = false;
  bool refill_posted = false;  // a Pump for the next chunk is queued
};

WebhookDispatcher::WebhookDispatcher(EventLog& log, WebhookStore& store,
                                     ReadModelsFn read_models,
                                     RoomUrlTemplate room_url, Options options)
    : log_(log),
      store_(store),
      read_models_(std::move(read_models)),
      room_url_(std::move(room_url)),
      options_(std::move(options)) {}

WebhookDispatcher::~WebhookDispatcher() { Stop(); }

Status WebhookDispatcher::Start() {
  std::vector<WebhookRecord> records;
  CONVSTORE_ASSIGN_OR_RETURN(records, store_.List());
  for (const WebhookRecord& r : records) {
    boost::asio::post(ioc_, [this, id = r.id] { Load(id); });
  }
  thread_ = std::thread([this] { ioc_.run(); });
  return Status();
}

void WebhookDispatcher::Stop() {
  if (stopped_.exchange(true)) return;
  work_.reset();
  ioc_.stop();
  if (thread_.joinable()) thread_.join();
  // Their timers go while the io_context still exists; the handlers left in
  // it hold no strong reference to them.
  workers_.clear();
}

void WebhookDispatcher::Notify() {
  // No webhook: nothing to wake the dispatcher's thread for (once a group
  // of appends). One loaded later reads the log from its checkpoint, so
  // events committed before it missed no notification.
  if (stats_.webhooks.load() == 0) return;
  if (notify_posted_.exchange(true)) return;
  boost::asio::post(ioc_, [this] {
    notify_posted_ = false;
    for (auto& [id, worker] : workers_) Pump(worker);
  });
}

void WebhookDispatcher::Added(const std::string& id) {
  boost::asio::post(ioc_, [this, id] { Load(id); });
}

void WebhookDispatcher::Removed(const std::string& id) {
  boost::asio::post(ioc_, [this, id] {
    auto it = workers_.find(id);
    if (it == workers_.end()) return;
    it->second->removed = true;
    stats_.pending -= it->second->outstanding.size();
    workers_.erase(it);
    stats_.webhooks = workers_.size();
    // Whatever this thread wrote for it before it heard of the deletion.
    Status s = store_.ForgetDeliveries(id);
    if (!s.ok()) spdlog::warn("webhook {}: {}", id, s.ToString());
  });
}

void WebhookDispatcher::Load(const std::string& id) {
  if (workers_.count(id)) return;
  auto record = store_.Get(id);
  auto checkpoint = store_.Checkpoint(id);
  auto last_attempt = store_.LastAttemptNumber(id);
  if (!record.ok() || !checkpoint.ok() || !last_attempt.ok()) {
    spdlog::error("webhook {}: cannot load its state", id);
    return;
  }
  if (!*record || !*checkpoint) return;  // deleted meanwhile
  auto worker = std::make_shared<Worker>();
  worker->record = std::move(**record);
  worker->secret = store_.SigningSecret(id);
  worker->next_read = **checkpoint;
  worker->saved_checkpoint = **checkpoint;
  worker->last_attempt = *last_attempt;
  workers_.emplace(id, worker);
  stats_.webhooks = workers_.size();
  Pump(worker);
}

void WebhookDispatcher::Pump(const std::shared_ptr<Worker>& worker) {
  if (worker->removed) return;
  bool more = Fill(*worker);
  // Attempt the front of every conversation's queue, up to the limit.
  for (auto& [conversation, queue] : worker->queues) {
    if (worker->in_flight >= options_.concurrency) break;
    const std::shared_ptr<Item>& front = queue.front();
    if (!front->busy) Send(worker, front);
  }
  SaveCheckpoint(*worker);
  // Read the next chunk in a later turn, so that other webhooks (and
  // finished deliveries) are served in between.
  if (more && !worker->refill_posted) {
    worker->refill_posted = true;
    boost::asio::post(ioc_, [this, weak = std::weak_ptr<Worker>(worker)] {
      if (auto w = weak.lock()) {
        w->refill_posted = false;
        Pump(w);
      }
    });
  }
}

bool WebhookDispatcher::Fill(Worker& worker) {
  constexpr size_t kChunk = 256;
  if (worker.outstanding.size() >= options_.window ||
      worker.next_read > log_.head()) {
    return false;
  }
  // No further than the window has room for: what is read past it is read,
  // decoded and opened again by the next Fill, and behind a slow receiver
  // that comes once per delivery (a whole chunk each time).
  const size_t chunk =
      std::min(kChunk, options_.window - worker.outstanding.size());
  auto events = log_.ReadRange(worker.next_read, chunk);
  if (!events.ok()) {
    spdlog::error("webhook {}: reading the log: {}", worker.record.id,
                  events.status().ToString());
    return false;
  }
  std::shared_ptr<ReadModels> rm = read_models_();
  for (const RecordedEvent& event : *events) {
    if (worker.outstanding.size() >= options_.window) return false;
    if (event.erased) {  // its conversation is gone: nothing to tell
      worker.next_read = event.position + 1;
      continue;
    }
    std::vector<WebhookEventKind> kinds = WebhookKindsOf(event.payload);
    bool wanted = false;
    for (WebhookEventKind k : kinds) wanted |= worker.record.Wants(k);
    if (wanted && OwnerOf(event, *rm) == worker.record.user_id) {
      for (WebhookEventKind kind : kinds) {
        if (!worker.record.Wants(kind)) continue;
        auto item = std::make_shared<Item>();
        item->position = event.position;
        item->kind = kind;
        item->conversation_id = std::string(ConversationIdOf(event.payload));
        item->delivery_id =
            WebhookDeliveryId(worker.record.id, event.position, kind);
        std::optional<std::string> body =
            Render(worker, event, kind, item->delivery_id, *rm);
        if (!body) continue;
        item->body = std::move(*body);
        worker.outstanding.emplace(std::make_pair(event.position, kind), item);
        worker.queues[item->conversation_id].push_back(item);
        ++stats_.pending;
      }
    }
    worker.next_read = event.position + 1;
  }
  return events->size() == chunk;
}

std::string WebhookDispatcher::OwnerOf(const RecordedEvent& event,
                                       const ReadModels& rm) {
  if (const auto* created = std::get_if<ConversationCreated>(&event.payload)) {
    return created->conversation.created_by;
  }
  std::string id(ConversationIdOf(event.payload));
  if (id.empty()) return "";
  if (auto it = owners_.find(id); it != owners_.end()) return it->second;
  auto entry = rm.GetConversationEntry(id);
  if (!entry.ok() || !*entry) return "";
  auto decoded = DecodeConversationListEntry(**entry);
  if (!decoded.ok()) return "";
  // The owner of a conversation never changes, so it is remembered.
  constexpr size_t kMaxRemembered = 100000;
  if (owners_.size() >= kMaxRemembered) owners_.clear();
  std::string owner(decoded->created_by);
  owners_.emplace(std::move(id), owner);
  return owner;
}

std::optional<std::string> WebhookDispatcher::Render(
    const Worker& worker, const RecordedEvent& event, WebhookEventKind kind,
    const std::string& delivery_id, const ReadModels& rm) {
  std::string data;
  switch (kind) {
    case WebhookEventKind::kConversationCreated: {
      const Conversation& c =
          std::get<ConversationCreated>(event.payload).conversation;
      data = json::serialize(ConversationToJson(c, room_url_.Render(c.id)));
      break;
    }
    case WebhookEventKind::kMessageCreated:
      data = RenderMessage(std::get<MessageAppended>(event.payload).message);
      break;
    case WebhookEventKind::kConversationStatusChanged: {
      const auto& e = std::get<ConversationStatusChanged>(event.payload);
      data = json::serialize(
          json::object{{"conversation_id", e.conversation_id},
                       {"from", ToString(e.from)},
                       {"to", ToString(e.to)},
                       {"updated_at", FormatRfc3339Millis(e.updated_at_ms)}});
      break;
    }
    case WebhookEventKind::kConversationCompleted: {
      const auto& e = std::get<ConversationStatusChanged>(event.payload);
      // The transcript as it stood at this event: messages before it.
      auto messages = rm.MessagesFrom(e.conversation_id, 1, SIZE_MAX);
      if (!messages.ok()) return std::nullopt;
      std::vector<std::string> items;
      for (ReadModels::PositionedMessage& m : *messages) {
        if (m.position < event.position) items.push_back(std::move(m.json));
      }
      data = json::serialize(
          json::object{{"conversation_id", e.conversation_id},
                       {"completed_at", FormatRfc3339Millis(e.updated_at_ms)}});
      data.pop_back();  // the closing brace: the transcript goes in as is
      data += ",\"messages\":" + JoinJsonArray(items) + "}";
      break;
    }
  }
  std::string body = json::serialize(
      json::object{{"id", delivery_id},
                   {"type", ToString(kind)},
                   {"webhook_id", worker.record.id},
                   {"position", event.position},
                   {"created_at", FormatRfc3339Millis(event.recorded_at_ms)}});
  body.pop_back();
  body += ",\"data\":" + data + "}";
  return body;
}

void WebhookDispatcher::Send(const std::shared_ptr<Worker>& worker,
                             const std::shared_ptr<Item>& item) {
  item->busy = true;
  // Read before its conversation was erased: nothing of it may leave any
  // more (a point read of the read models; an error sends as usual).
  auto conversation = read_models_()->GetConversation(item->conversation_id);
  if (conversation.ok() && !conversation->has_value()) {
    // Not from inside Pump's walk over the queues that Finished changes.
    boost::asio::post(ioc_, [this, weak_worker = std::weak_ptr<Worker>(worker),
                             weak_item = std::weak_ptr<Item>(item)] {
      auto worker = weak_worker.lock();
      auto item = weak_item.lock();
      if (!worker || !item || worker->removed) return;
      Finished(worker, item);
    });
    return;
  }
  ++item->attempts;
  ++worker->in_flight;
  const int64_t now_ms = NowMillis();
  WebhookRequest request;
  request.url = worker->record.url;
  request.body = item->body;
  request.headers = {
      {"Content-Type", "application/json"},
      {"Convstore-Signature",
       WebhookSignatureHeader(worker->secret, now_ms / 1000, item->body)},
      {"Convstore-Delivery", item->delivery_id},
      {"Convstore-Event", std::string(ToString(item->kind))}};
  request.connect_timeout = options_.connect_timeout;
  request.total_timeout = options_.timeout;
  request.ca_file = options_.ca_file;
  PostWebhook(
      ioc_, std::move(request),
      [this, weak_worker = std::weak_ptr<Worker>(worker),
       weak_item = std::weak_ptr<Item>(item), now_ms](WebhookResult result) {
        auto worker = weak_worker.lock();
        auto item = weak_item.lock();
        if (!worker || !item || worker->removed) return;
        --worker->in_flight;
        DeliveryAttempt a;
        a.delivery_id = item->delivery_id;
        a.kind = item->kind;
        a.position = item->position;
        a.attempt = item->attempts;
        a.attempted_at_ms = now_ms;
        a.duration_ms = NowMillis() - now_ms;
        a.status = result.status;
        if (result.delivered()) {
          a.outcome = "delivered";
          ++stats_.delivered;
        } else {
          a.error = result.error != WebhookError::kNone
                        ? result.error_message
                        : "answered HTTP " + std::to_string(result.status);
          ++stats_.failed_attempts;
          if (item->attempts >= options_.max_attempts) {
            a.outcome = "gave_up";
            ++stats_.gave_up;
          } else {
            a.outcome = "retrying";
          }
        }
        std::chrono::milliseconds delay{0};
        if (a.outcome == "retrying") {
          // The schedule is defined for a 1 s base; scale it.
          delay = WebhookRetryDelay(item->attempts, jitter_()) *
                  options_.retry_base.count() / kWebhookRetryBaseDelay.count();
          a.next_attempt_at_ms = NowMillis() + delay.count();
        }
        Status s =
            store_.AddAttempt(worker->record.id, ++worker->last_attempt, a);
        if (!s.ok()) {
          spdlog::warn("webhook {}: {}", worker->record.id, s.ToString());
        }
        if (a.outcome != "retrying") return Finished(worker, item);
        item->retry = std::make_unique<boost::asio::steady_timer>(ioc_, delay);
        item->retry->async_wait(
            [this, weak_worker, weak_item](boost::system::error_code ec) {
              auto worker = weak_worker.lock();
              auto item = weak_item.lock();
              if (ec || !worker || !item || worker->removed) return;
              item->busy = false;
              Pump(worker);
            });
        Pump(worker);
      });
}

void WebhookDispatcher::Finished(const std::shared_ptr<Worker>& worker,
                                 const std::shared_ptr<Item>& item) {
  worker->outstanding.erase(std::make_pair(item->position, item->kind));
  --stats_.pending;
  auto queue = worker->queues.find(item->conversation_id);
  if (queue != worker->queues.end()) {
    if (!queue->second.empty() && queue->second.front() == item) {
      queue->second.pop_front();
    }
    if (queue->second.empty()) worker->queues.erase(queue);
  }
  Pump(worker);
}

void WebhookDispatcher::SaveCheckpoint(Worker& worker) {
  const uint64_t checkpoint = worker.outstanding.empty()
                                  ? worker.next_read
                                  : worker.outstanding.begin()->first.first;
  if (checkpoint == worker.saved_checkpoint) return;
  Status s = store_.PutCheckpoint(worker.record.id, checkpoint);
  if (!s.ok()) {
    spdlog::warn("webhook {}: {}", worker.record.id, s.ToString());
    return;
  }
  worker.saved_checkpoint = checkpoint;
}

}  // namespace convstore::http
