// Feeds: the server-sent event streams, each a subscription to the log that
// reads from a position, catches up, then follows live (through the
// EventHub), as one LiveBody per connection.
// Thread-safety: Pull runs on the connection's thread; catch-up reads run on
// the long-read pool and never on an io_context thread.
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "eventlog/event_log.h"
#include "http/api_response.h"
#include "http/event_hub.h"

namespace convstore::http {

// GET /v1/admin/events/stream: every event envelope from a position on, as
// `id: <position>` and `data: <envelope JSON>` (the JSON of
// GET /v1/admin/events), in position order, each exactly once.
class EventLogFeed : public LiveBody,
                     public std::enable_shared_from_this<EventLogFeed> {
 public:
  // Subscribes at once, so nothing committed from now on is missed.
  EventLogFeed(EventHub& hub, const EventLog& log,
               boost::asio::thread_pool& pool, uint64_t from);
  Part Pull(std::function<void()> wake) override;

 private:
  // Reads the next chunk of the log after next_ (on the pool), then wakes.
  void CatchUp();
  // Renders the taken events at or after next_; false on a gap (events
  // were missed: catch up from the log).
  bool RenderTaken(std::string& text);

  std::shared_ptr<EventHub::Subscription> sub_;
  const EventLog& log_;
  boost::asio::thread_pool& pool_;

  std::mutex mu_;
  uint64_t next_;                    // the next position to send
  bool need_catch_up_ = true;        // the log holds events not yet sent
  bool catching_up_ = false;         // a read is running on the pool
  bool failed_ = false;              // the log could not be read: end
  std::string ready_;                // rendered by the last read, not sent yet
  std::function<void()> wake_;       // called when the read is done
  std::vector<RecordedEvent> read_;  // the pool's buffer
  std::vector<const RecordedEvent*> taken_;
  std::vector<EventHub::Group> keep_;
};

// One server-sent event: `id: <id>`, `event: <event>` (when not empty), one
// `data:` line, and the blank line that ends it. `data` must hold no newline
// (serialized JSON never does).
void AppendSseEvent(std::string& out, uint64_t id, std::string_view event,
                    std::string_view data);

}  // namespace convstore::http
