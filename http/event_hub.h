// EventHub: fans the log's committed events out to live subscribers (the
// SSE feeds). The writer publishes each durable group; a subscriber gets the
// events of its conversation (or all of them) queued, up to a bound, and is
// woken. A subscriber that falls behind loses its queue and is told so: it
// reads what it missed from the log and rejoins, so no feed can slow a write.
// Thread-safety: every method may be called from any thread; Publish never
// waits on a subscriber and never holds a lock while calling one.
#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/model.h"

namespace convstore::http {

class EventHub {
 public:
  // The events of one committed group, shared by every subscriber.
  using Group = std::shared_ptr<const std::vector<RecordedEvent>>;

  class Subscription {
   public:
    // What Take found.
    enum class State {
      kEvents,   // `out` holds queued events, in position order
      kWait,     // nothing queued: `wake` is called once when there is
      kDropped,  // the queue overflowed since the last Take and was cleared:
                 // read the log from where you are, then Take again
      kClosed,   // the hub is shutting down: end the feed
    };
    // Moves the queued events into `out` (cleared first); they live as long
    // as `keep` holds their groups. With nothing queued, keeps `wake` to
    // call (from the publishing thread) once something arrives or the hub
    // closes.
    State Take(std::vector<const RecordedEvent*>& out, std::vector<Group>& keep,
               std::function<void()> wake);

   private:
    friend class EventHub;
    struct Item {
      Group group;
      size_t index;
    };
    std::mutex mu_;
    std::deque<Item> queue_;
    std::function<void()> wake_;
    bool dropped_ = false;
    bool closed_ = false;
    size_t limit_ = 0;
  };

  // At most `queue_limit` events wait per subscriber before it is dropped.
  explicit EventHub(size_t queue_limit = 4096) : queue_limit_(queue_limit) {}

  // Events of the conversation `conversation_id` (its conversation and
  // messages streams), or every event with nullopt. Events published from
  // now on are queued; the subscription ends when the returned pointer and
  // its copies are gone.
  std::shared_ptr<Subscription> Subscribe(
      std::optional<std::string> conversation_id);
  // One durable group of events, in position order.
  void Publish(std::vector<RecordedEvent> events);
  // Every subscription, now and later, is closed (server shutdown).
  void CloseAll();
  size_t subscribers() const;
  // How many times a subscriber's queue overflowed (it read the log).
  uint64_t fell_behind() const { return fell_behind_.load(); }

 private:
  // Queues group[i] for each i of `indexes` on `sub`; returns its wake, if
  // it was waiting.
  std::function<void()> Deliver(Subscription& sub, const Group& group,
                                const std::vector<size_t>& indexes);

  const size_t queue_limit_;
  std::atomic<uint64_t> fell_behind_{0};
  mutable std::mutex mu_;
  bool closed_ = false;
  // By conversation id; "" holds the all-events subscribers.
  std::multimap<std::string, std::weak_ptr<Subscription>, std::less<>> subs_;
};

}  // namespace convstore::http
