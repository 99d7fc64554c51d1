// WebhookDispatcher: delivers committed events to webhook subscriptions.
// Each webhook follows the log from its durable checkpoint on one thread of
// its own (never an HTTP server thread): it reads ahead a bounded window of
// its user's events, POSTs each one signed, retries failures with backoff,
// and moves its checkpoint past what is delivered or given up. Deliveries of
// one conversation go one at a time in log order; different conversations
// go concurrently, a bounded number at once.
// Thread-safety: every public method may be called from any thread; all
// delivery state lives on the dispatcher's own thread, so nothing it does
// holds a lock or slows a write.
#pragma once

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>

#include "core/model_json.h"
#include "core/webhook_signature.h"
#include "http/webhook_store.h"
#include "projections/read_models.h"

namespace convstore::http {

class WebhookDispatcher {
 public:
  struct Options {
    // The retry schedule (core/webhook_signature.h) scaled so that its first
    // step is `retry_base` instead of 1 s (tests shorten it).
    std::chrono::milliseconds retry_base = kWebhookRetryBaseDelay;
    int max_attempts = WebhookMaxAttempts();
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds timeout{10000};  // whole request
    size_t window = 64;      // deliveries read ahead per webhook
    size_t concurrency = 8;  // requests in flight per webhook
    std::string ca_file;     // extra CAs for https (tests)
  };
  struct Stats {
    std::atomic<uint64_t> delivered{0};
    std::atomic<uint64_t> failed_attempts{0};
    std::atomic<uint64_t> gave_up{0};
    std::atomic<uint64_t> webhooks{0};
    std::atomic<uint64_t> pending{0};
  };
  using ReadModelsFn = std::function<std::shared_ptr<ReadModels>()>;

  // `log`, `store` and what `read_models` returns must outlive this.
  WebhookDispatcher(EventLog& log, WebhookStore& store,
                    ReadModelsFn read_models, RoomUrlTemplate room_url,
                    Options options);
  ~WebhookDispatcher();

  // Loads every subscription and starts delivering.
  Status Start();
  // New events are committed (cheap; called by the writer per group).
  void Notify();
  // A subscription was created / deleted, and that is committed.
  void Added(const std::string& id);
  void Removed(const std::string& id);
  // Ends every delivery in flight (they are retried after a restart) and
  // joins the thread. Idempotent.
  void Stop();

  const Stats& stats() const { return stats_; }

 private:
  struct Item;
  struct Worker;

  void Load(const std::string& id);
  void Pump(const std::shared_ptr<Worker>& worker);
  // Reads at most one chunk of the log into the worker's window; true if
  // there may be more to read now.
  bool Fill(Worker& worker);
  void Send(const std::shared_ptr<Worker>& worker,
            const std::shared_ptr<Item>& item);
  void Finished(const std::shared_ptr<Worker>& worker,
                const std::shared_ptr<Item>& item);
  void SaveCheckpoint(Worker& worker);
  // The user a conversation belongs to; empty if it does not exist.
  std::string OwnerOf(const RecordedEvent& event, const ReadModels& rm);
  // The delivery body of one (event, kind); nullopt if there is nothing to
  // deliver any more (the conversation is gone).
  std::optional<std::string> Render(const Worker& worker,
                                    const RecordedEvent& event,
                                    WebhookEventKind kind,
                                    const std::string& delivery_id,
                                    const ReadModels& rm);

  EventLog& log_;
  WebhookStore& store_;
  ReadModelsFn read_models_;
  const RoomUrlTemplate room_url_;
  const Options options_;
  Stats stats_;

  // Touched only on the dispatcher thread.
  std::map<std::string, std::shared_ptr<Worker>> workers_;
  std::unordered_map<std::string, std::string> owners_;  // conversation->user
  std::mt19937_64 jitter_{std::random_device{}()};

  std::atomic<bool> notify_posted_{false};
  std::atomic<bool> stopped_{false};
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type>
      work_{ioc_.get_executor()};
  std::thread thread_;
};

}  // namespace convstore::http
