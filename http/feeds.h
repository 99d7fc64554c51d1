// Feeds: the server-sent event streams, each a subscription to the log that
// reads from a position, catches up, then follows live (through the
// EventHub), as one LiveBody per connection.
// Thread-safety: Pull runs on the connection's thread; catch-up reads run on
// the long-read pool and never on an io_context thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "eventlog/event_log.h"
#include "http/api_response.h"
#include "http/event_hub.h"
#include "projections/read_models.h"

namespace convstore::http {

// What every feed does: read what is stored after its position (on the
// pool), then take events from its hub subscription; back to the store
// whenever the subscription fell behind (or a gap shows). Sends each event
// once: everything below next_ was sent.
class CatchUpFeed : public LiveBody,
                    public std::enable_shared_from_this<CatchUpFeed> {
 public:
  // Runs a task off the connection's thread (the server's long-read pool,
  // which it waits for before tearing its connections down).
  using Background = std::function<void(std::function<void()> task)>;

  Part Pull(std::function<void()> wake) final;

 protected:
  CatchUpFeed(std::shared_ptr<EventHub::Subscription> sub,
              Background background, uint64_t from);

  // Appends the SSE text of the live `events` at or after `next` (moving it
  // on); false on a gap (what is missing is read from the store). `ended`:
  // nothing may follow this text.
  virtual bool RenderLive(const std::vector<const RecordedEvent*>& events,
                          uint64_t& next, std::string& text, bool& ended) = 0;
  struct Stored {
    std::string text;    // SSE events at or after `from`, in order
    uint64_t next;       // the position after the last one rendered
    bool more = false;   // a further read is needed
    bool ended = false;  // nothing may follow (or the read failed)
  };
  // Reads what is stored from position `from` on (in the background).
  virtual Stored ReadStored(uint64_t from) = 0;

  // Events read from the store per step: a long catch-up goes out in steps,
  // so the connection's buffers stay bounded.
  static constexpr size_t kCatchUpChunk = 1000;

 private:
  void CatchUp();

  std::shared_ptr<EventHub::Subscription> sub_;
  Background background_;

  std::mutex mu_;
  uint64_t next_;               // the next position to send
  bool need_catch_up_ = true;   // the store holds events not yet sent
  bool catching_up_ = false;    // a read is running on the pool
  bool ended_ = false;          // nothing more is sent
  std::string ready_;           // rendered, not sent yet
  std::function<void()> wake_;  // called when the read is done
  std::vector<const RecordedEvent*> taken_;
  std::vector<EventHub::Group> keep_;
};

// GET /v1/admin/events/stream: every event envelope from a position on, as
// `id: <position>` and `data: <envelope JSON>` (the JSON of
// GET /v1/admin/events), in position order, each exactly once.
class EventLogFeed : public CatchUpFeed {
 public:
  // Subscribes at once, so nothing committed from now on is missed.
  EventLogFeed(EventHub& hub, const EventLog& log, Background background,
               uint64_t from);

 private:
  bool RenderLive(const std::vector<const RecordedEvent*>& events,
                  uint64_t& next, std::string& text, bool& ended) override;
  Stored ReadStored(uint64_t from) override;

  const EventLog& log_;
  std::vector<RecordedEvent> read_;  // the pool's buffer
};

// GET /v1/conversations/{id}/messages/stream: the conversation's messages
// (`event: message`, `data:` the message JSON exactly as GET messages renders
// it) and status changes (`event: status`, `data:` {conversation_id, from,
// to, updated_at}), each with `id:` its log position, in position order,
// each exactly once: what the read models hold from a position on, then
// live. The stream ends after the conversation is completed or archived (or
// gone).
class ConversationFeed : public CatchUpFeed {
 public:
  // The read models in use when a catch-up runs (an online rebuild swaps
  // them).
  using ReadModelsFn = std::function<std::shared_ptr<ReadModels>()>;

  // Subscribes at once, so nothing committed from now on is missed.
  ConversationFeed(EventHub& hub, const EventLog& log, ReadModelsFn read_models,
                   Background background, std::string conversation_id,
                   uint64_t from);

 private:
  bool RenderLive(const std::vector<const RecordedEvent*>& events,
                  uint64_t& next, std::string& text, bool& ended) override;
  Stored ReadStored(uint64_t from) override;
  Status ReadStoredInto(uint64_t from, Stored& out);

  const EventLog& log_;
  ReadModelsFn read_models_;
  const std::string conversation_id_;
};

// One server-sent event: `id: <id>`, `event: <event>` (when not empty), one
// `data:` line, and the blank line that ends it. `data` must hold no newline
// (serialized JSON never does).
void AppendSseEvent(std::string& out, uint64_t id, std::string_view event,
                    std::string_view data);

}  // namespace convstore::http
