#include "http/feeds.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/json/serialize.hpp>
#include <utility>

#include "eventlog/event_json.h"

namespace convstore::http {
namespace {

// Events read from the log per catch-up step: a long catch-up goes out in
// steps, so the connection's buffers stay bounded.
constexpr size_t kCatchUpChunk = 1000;

}  // namespace

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

EventLogFeed::EventLogFeed(EventHub& hub, const EventLog& log,
                           boost::asio::thread_pool& pool, uint64_t from)
    : sub_(hub.Subscribe(std::nullopt)), log_(log), pool_(pool), next_(from) {}

LiveBody::Part EventLogFeed::Pull(std::function<void()> wake) {
  std::lock_guard<std::mutex> lock(mu_);
  for (;;) {
    if (!ready_.empty()) {
      return {Part::Kind::kText, std::exchange(ready_, std::string())};
    }
    if (failed_) return {Part::Kind::kEnd, {}};
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
          std::string text;
          if (!RenderTaken(text)) {
            need_catch_up_ = true;
            break;
          }
          if (text.empty()) continue;  // all were sent already
          return {Part::Kind::kText, std::move(text)};
        }
      }
    }
    // Read what the queue cannot give from the log, off this thread.
    catching_up_ = true;
    wake_ = std::move(wake);
    boost::asio::post(pool_, [self = shared_from_this()] { self->CatchUp(); });
    return {Part::Kind::kWait, {}};
  }
}

bool EventLogFeed::RenderTaken(std::string& text) {
  for (const RecordedEvent* e : taken_) {
    if (e->position < next_) continue;  // sent by a catch-up
    if (e->position > next_) {
      // Positions have no gaps: something between was not queued.
      text.clear();
      return false;
    }
    AppendSseEvent(text, e->position, "",
                   boost::json::serialize(EventToJson(*e)));
    ++next_;
  }
  taken_.clear();
  keep_.clear();
  return true;
}

void EventLogFeed::CatchUp() {
  uint64_t from;
  {
    std::lock_guard<std::mutex> lock(mu_);
    from = next_;
  }
  const uint64_t head = log_.head();
  std::string text;
  uint64_t next = from;
  bool failed = false;
  if (from <= head) {
    auto n = log_.ReadRangeInto(
        from,
        static_cast<size_t>(std::min<uint64_t>(kCatchUpChunk, head - from + 1)),
        read_);
    if (!n.ok()) {
      spdlog::error("event stream: reading the log at {}: {}", from,
                    n.status().ToString());
      failed = true;
    } else {
      for (size_t i = 0; i < *n; ++i) {
        AppendSseEvent(text, read_[i].position, "",
                       boost::json::serialize(EventToJson(read_[i])));
        next = read_[i].position + 1;
      }
    }
  }
  std::function<void()> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    next_ = next;
    ready_ = std::move(text);
    failed_ = failed;
    need_catch_up_ = next <= head;
    catching_up_ = false;
    wake = std::exchange(wake_, nullptr);
  }
  if (wake) wake();
}

}  // namespace convstore::http
