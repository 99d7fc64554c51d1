// App: convstore's API over an opened data directory. Handle() routes one
// request; reads are answered on the calling thread from committed state,
// writes are decided and committed by the GroupCommitWriter and answered
// through `respond` once durable. Independent of any transport, so tests and
// fuzzers can drive it without sockets. Thread-safety: Handle may be called
// from many threads at once.
#pragma once

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "eventlog/erasure_purger.h"
#include "eventlog/event_log.h"
#include "eventlog/group_commit.h"
#include "http/api_keys.h"
#include "http/api_response.h"
#include "http/event_hub.h"
#include "http/idempotency.h"
#include "http/request_metrics.h"
#include "http/retention.h"
#include "http/user_erasure.h"
#include "http/webhook_dispatcher.h"
#include "http/webhook_store.h"
#include "projections/read_models.h"

namespace convstore::http {

struct LiveKitConfig {
  std::string url = "ws://localhost:7880";
  std::string api_key = "devkey";
  std::string api_secret = "secret";  // never logged
  int64_t token_ttl_s = 3600;
  std::string room_url_template = "{livekit_url}/room/{room}";
  bool dev_defaults = true;  // url/key/secret were not configured
};

struct AppConfig {
  std::string data_dir = "./data";
  LiveKitConfig livekit;
  // Admin key to create on first start instead of a generated one.
  std::optional<std::string> bootstrap_admin_key;
  // RocksDB Env for the store (tests inject faults through it).
  std::shared_ptr<rocksdb::Env> env;
  // Events queued per event-stream subscriber before it must read the log.
  size_t stream_queue_limit = 4096;
  // Webhook deliveries: the first retry's delay (the whole schedule scales
  // with it), attempts before giving up, the time a receiver has to answer,
  // and extra CAs to trust for https. Tests shorten them.
  std::chrono::milliseconds webhook_retry_base = kWebhookRetryBaseDelay;
  int webhook_max_attempts = WebhookMaxAttempts();
  std::chrono::milliseconds webhook_timeout{10000};
  std::string webhook_ca_file;
  // False: webhooks are kept but never delivered (the fuzzer, which must not
  // reach the network).
  bool deliver_webhooks = true;
  // How often erasures committed since the last purge are purged from the
  // store's files (flush + compaction), so a burst of them costs one purge;
  // retention's erasures, which nobody waits for, wait for the next purge a
  // request needs, or the batch interval at most (ErasurePurger).
  std::chrono::milliseconds erasure_purge_interval{1000};
  std::chrono::milliseconds erasure_purge_batch_interval{600000};
  // Retention (serve --retention-days): completed or archived conversations
  // unchanged for this many days are erased in the background; 0 is off.
  // The interval between sweeps, and the clock (tests move it forward).
  int64_t retention_days = 0;
  std::chrono::milliseconds retention_interval{60000};
  std::function<int64_t()> retention_clock;
  // How long the response to a request with an Idempotency-Key is replayed
  // and kept; compactions drop it after that (tests shorten it).
  std::chrono::milliseconds idempotency_retention{
      IdempotencyStore::kRetentionMs};
};

struct ApiRequest {
  std::string method;
  std::string target;  // origin form: path and query
  std::string body;
  std::string authorization;
  std::string content_type;
  std::optional<std::string> if_match;
  std::optional<std::string> idempotency_key;
  std::optional<std::string> last_event_id;  // an event stream's resume point
  // The connection's last authentication (see RememberedKey), owned by the
  // connection, which outlives the request; null: nothing is remembered.
  RememberedKey* remembered_key = nullptr;
};

class App {
 public:
  static Result<std::unique_ptr<App>> Open(const AppConfig& config);
  ~App();

  void Handle(ApiRequest request, Respond respond);

  // The admin key created on this first start, to be shown once; empty when
  // the data dir already had keys.
  const std::optional<std::string>& bootstrap_key() const {
    return bootstrap_key_;
  }
  // Open, caught up, and the log still takes writes.
  bool ready() const { return ready_.load() && !log_->failed(); }
  // Commits everything queued and refuses further writes (shutdown).
  void StopWrites();
  // Waits (bounded) until no long read holds a connection any more, so the
  // server may tear its connections down (shutdown).
  void WaitForLongReads(std::chrono::milliseconds limit);

  EventLog& log() { return *log_; }
  // The read models served to readers; an online rebuild swaps them in
  // once its last step is durable.
  std::shared_ptr<ReadModels> read_models() const { return read_models_.load(); }
  // The read models commands decide against and project into (inside the
  // writer's commands): an online rebuild swaps them as its last step is
  // decided, so the commands after it in the same group use them too.
  std::shared_ptr<ReadModels> decided_read_models() const {
    return decided_read_models_.load();
  }
  const WriterStats& writer_stats() const { return writer_->stats(); }

 private:
  class Handlers;
  App() = default;

  AppConfig config_;
  std::unique_ptr<EventLog> log_;
  // Stops (cancelling a purge under way) before the log closes.
  std::unique_ptr<ErasurePurger> purger_;
  std::atomic<std::shared_ptr<ReadModels>> read_models_;
  std::atomic<std::shared_ptr<ReadModels>> decided_read_models_;
  std::unique_ptr<ApiKeyStore> keys_;
  std::unique_ptr<IdempotencyStore> idempotency_;
  std::unique_ptr<WebhookStore> webhooks_;
  // Told of every committed group; declared before the writer, which
  // notifies it until it stops.
  std::unique_ptr<WebhookDispatcher> dispatcher_;
  // Committed events, fanned out to the event streams. Declared before the
  // writer, which publishes into it until it stops.
  std::unique_ptr<EventHub> hub_;
  std::unique_ptr<GroupCommitWriter> writer_;
  std::unique_ptr<UserErasure> user_erasure_;
  // Stopped before the writer (it waits on the writer's commits).
  std::unique_ptr<RetentionSweeper> retention_;
  std::unique_ptr<Handlers> handlers_;
  RequestMetrics request_metrics_;
  // Long reads (pages of up to 10,000 events) run here, never on an
  // io_context thread.
  std::unique_ptr<boost::asio::thread_pool> long_reads_;
  std::optional<std::string> bootstrap_key_;
  std::atomic<bool> ready_{false};

  // Online rebuild (POST /v1/admin/projections/rebuild).
  struct RebuildStatus {
    std::string state = "idle";  // idle, building, done, failed
    std::string from_generation;
    std::string to_generation;
    int64_t started_at_ms = 0;
    int64_t finished_at_ms = 0;
    uint64_t events = 0;
    std::string error;
  };
  Status StartRebuild();
  void RunRebuild();
  RebuildStatus rebuild_status() const;
  // Runs `work` on the long-read pool and answers with its result.
  void PostLongRead(Respond respond, std::function<ApiResponse()> work);
  // Runs `task` on the long-read pool, counted like a long read (the server
  // waits for it before its connections go).
  void PostBackground(std::function<void()> task);
  std::function<void(std::function<void()>)> Background() {
    return
        [this](std::function<void()> task) { PostBackground(std::move(task)); };
  }
  std::atomic<int> long_reads_in_flight_{0};
  mutable std::mutex rebuild_mu_;
  RebuildStatus rebuild_;
  std::thread rebuild_thread_;
  std::atomic<bool> stopping_{false};
};

}  // namespace convstore::http
