#include "http/feeds.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "core/model_json.h"
#include "eventlog/event_json.h"

namespace convstore::http {

void AppendSseEvent(std::string& out, uint64_t id, std::string_view event,
                    std::string_view data) {
  out += "id: ";
  out += std::to_string(id);
  out += '\n';
  if (!event.empty()) {
    out += "event: ";
    out += event;
    out += '\n';
  }
  out += "data: ";
  out += data;
  out += "\n\n";
}

// ---------------------------------------------------------------- CatchUpFeed

CatchUpFeed::CatchUpFeed(std::shared_ptr<EventHub::Subscription> sub,
                         Background background, uint64_t from)
    : sub_(std::move(sub)), background_(std::move(background)), next_(from) {}

LiveBody::Part CatchUpFeed::Pull(std::function<void()> wake) {
  std::lock_guard<std::mutex> lock(mu_);
  for (;;) {
    if (!ready_.empty()) {
      return {Part::Kind::kText, std::exchange(ready_, std::string())};
    }
    if (ended_) return {Part::Kind::kEnd, {}};
    if (catching_up_) {
      wake_ = std::move(wake);
      return {Part::Kind::kWait, {}};
    }
    if (!need_catch_up_) {
      switch (sub_->Take(taken_, keep_, wake)) {
        case EventHub::Subscription::State::kClosed:
          return {Part::Kind::kEnd, {}};
        case EventHub::Subscription::State::kWait:
          return {Part::Kind::kWait, {}};
        case EventHub::Subscription::State::kDropped:
          need_catch_up_ = true;
          break;
        case EventHub::Subscription::State::kEvents: {
          uint64_t next = next_;
          std::string text;
          bool ended = false;
          const bool whole = RenderLive(taken_, next, text, ended);
          taken_.clear();
          keep_.clear();
          if (!whole) {
            need_catch_up_ = true;  // what was rendered is read again
            break;
          }
          next_ = next;
          ready_ = std::move(text);
          ended_ = ended;
          continue;
        }
      }
    }
    // Read what the queue cannot give from the store, off this thread.
    catching_up_ = true;
    wake_ = std::move(wake);
    background_([self = shared_from_this()] { self->CatchUp(); });
    return {Part::Kind::kWait, {}};
  }
}

void CatchUpFeed::CatchUp() {
  uint64_t from;
  {
    std::lock_guard<std::mutex> lock(mu_);
    from = next_;
  }
  Stored stored = ReadStored(from);
  std::function<void()> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    next_ = std::max(next_, stored.next);
    ready_ += stored.text;
    ended_ = ended_ || stored.ended;
    need_catch_up_ = stored.more;
    catching_up_ = false;
    wake = std::exchange(wake_, nullptr);
  }
  if (wake) wake();
}

// --------------------------------------------------------------- EventLogFeed

EventLogFeed::EventLogFeed(EventHub& hub, const EventLog& log,
                           Background background, uint64_t from)
    : CatchUpFeed(hub.Subscribe(std::nullopt), std::move(background), from),
      log_(log) {}

bool EventLogFeed::RenderLive(const std::vector<const RecordedEvent*>& events,
                              uint64_t& next, std::string& text,
                              bool& /*ended*/) {
  for (const RecordedEvent* e : events) {
    if (e->position < next) continue;  // sent by a catch-up
    // Positions have no gaps: one above `next` means some were not queued.
    if (e->position > next) return false;
    AppendSseEvent(text, e->position, "", EventJson(*e));
    ++next;
  }
  return true;
}

CatchUpFeed::Stored EventLogFeed::ReadStored(uint64_t from) {
  Stored out{.text = {}, .next = from};
  const uint64_t head = log_.head();
  if (from > head) return out;
  auto n = log_.ReadRangeInto(
      from,
      static_cast<size_t>(std::min<uint64_t>(kCatchUpChunk, head - from + 1)),
      read_);
  if (!n.ok()) {
    spdlog::error("event stream: reading the log at {}: {}", from,
                  n.status().ToString());
    out.ended = true;
    return out;
  }
  for (size_t i = 0; i < *n; ++i) {
    AppendSseEvent(out.text, read_[i].position, "", EventJson(read_[i]));
    out.next = read_[i].position + 1;
  }
  out.more = out.next <= head;
  return out;
}

// ----------------------------------------------------------- ConversationFeed

ConversationFeed::ConversationFeed(EventHub& hub, const EventLog& log,
                                   ReadModelsFn read_models,
                                   Background background,
                                   std::string conversation_id, uint64_t from)
    : CatchUpFeed(hub.Subscribe(conversation_id), std::move(background), from),
      log_(log),
      read_models_(std::move(read_models)),
      conversation_id_(std::move(conversation_id)) {}

bool ConversationFeed::RenderLive(
    const std::vector<const RecordedEvent*>& events, uint64_t& next,
    std::string& text, bool& ended) {
  // Positions of one conversation's events are not consecutive: a missed
  // event shows only as the subscription's overflow.
  for (const RecordedEvent* e : events) {
    if (e->position < next || ended) continue;  // sent already, or over
    next = e->position + 1;
    if (const auto* m = std::get_if<MessageAppended>(&e->payload)) {
      AppendSseEvent(text, e->position, "message", RenderMessage(m->message));
    } else if (const auto* st =
                   std::get_if<ConversationStatusChanged>(&e->payload)) {
      AppendSseEvent(text, e->position, "status", EventPayloadJson(e->payload));
      ended = st->to != ConversationStatus::kActive;
    } else if (std::holds_alternative<ConversationErased>(e->payload)) {
      ended = true;  // deleted: nothing more will come
    }
  }
  return true;
}

CatchUpFeed::Stored ConversationFeed::ReadStored(uint64_t from) {
  Stored out{.text = {}, .next = from};
  Status s = ReadStoredInto(from, out);
  if (!s.ok()) {
    spdlog::error("message stream of {}: {}", conversation_id_, s.ToString());
    out.ended = true;
  }
  return out;
}

Status ConversationFeed::ReadStoredInto(uint64_t from, Stored& out) {
  std::shared_ptr<ReadModels> rm = read_models_();
  std::vector<ReadModels::PositionedMessage> messages;
  CONVSTORE_ASSIGN_OR_RETURN(
      messages, rm->MessagesFrom(conversation_id_, from, kCatchUpChunk));
  for (const auto& m : messages) {
    AppendSseEvent(out.text, m.position, "message", m.json);
    out.next = m.position + 1;
  }
  out.more = messages.size() == kCatchUpChunk;
  if (out.more) return Status();
  // Every message is out: a completed or archived conversation ends here,
  // after its status event unless the client saw it already.
  std::optional<std::string> bytes;
  CONVSTORE_ASSIGN_OR_RETURN(bytes, rm->GetConversationEntry(conversation_id_));
  if (!bytes) {
    out.ended = true;  // gone
    return Status();
  }
  ConversationListEntry entry;
  CONVSTORE_ASSIGN_OR_RETURN(entry, DecodeConversationListEntry(*bytes));
  if (entry.status == ConversationStatus::kActive) return Status();
  out.ended = true;
  if (entry.status_position < from) return Status();
  std::optional<RecordedEvent> event;
  CONVSTORE_ASSIGN_OR_RETURN(event, log_.Read(entry.status_position));
  if (!event) return Status::Corruption("status event missing from the log");
  AppendSseEvent(out.text, event->position, "status",
                 EventPayloadJson(event->payload));
  out.next = std::max(out.next, event->position + 1);
  return Status();
}

}  // namespace convstore::http
