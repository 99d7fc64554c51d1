#include "http/app.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/json.hpp>
#include <boost/url.hpp>
#include <charconv>
#include <chrono>
#include <future>
#include <map>

#include "core/decide.h"
#include "core/encoding.h"
#include "core/ids.h"
#include "core/livekit_token.h"
#include "core/model_json.h"
#include "core/validation.h"
#include "eventlog/event_json.h"
#include "http/feeds.h"
#include "projections/rebuild.h"

namespace convstore::http {

// http/openapi.json, embedded at build time (see http/CMakeLists.txt).
std::string_view OpenApiJson();

namespace {

namespace json = boost::json;
namespace urls = boost::urls;

std::string ETag(uint64_t revision) {
  // (Built in place: GCC 12 at -O3 warns falsely (-Wrestrict) on "\"" + s.)
  std::string tag = std::to_string(revision);
  tag.insert(tag.begin(), '"');
  tag.push_back('"');
  return tag;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// If-Match: "*" or one strong ETag. Anything else (weak tags, lists, junk)
// cannot match a strong ETag, so it yields a revision that never matches.
std::optional<IfMatch> ParseIfMatch(const std::optional<std::string>& header) {
  if (!header) return std::nullopt;
  std::string_view v = Trim(*header);
  if (v == "*") return IfMatch{true, 0};
  if (v.size() >= 3 && v.front() == '"' && v.back() == '"') {
    std::string_view digits = v.substr(1, v.size() - 2);
    uint64_t n = 0;
    bool ok = digits.size() <= 19;
    for (char c : digits) {
      if (c < '0' || c > '9') ok = false;
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    if (ok) return IfMatch{false, n};
  }
  return IfMatch{false, UINT64_MAX};
}

bool IsJsonContentType(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  return boost::beast::iequals(Trim(media), "application/json");
}

// Parses `limit` within [1, max]; absent gives `fallback`.
Result<size_t> ParseLimit(const std::map<std::string, std::string>& query,
                          size_t fallback, size_t max) {
  auto it = query.find("limit");
  if (it == query.end()) return fallback;
  const std::string& v = it->second;
  size_t n = 0;
  bool ok = !v.empty() && v.size() <= 7;
  for (char c : v) {
    if (c < '0' || c > '9') ok = false;
    n = n * 10 + static_cast<size_t>(c - '0');
  }
  if (!ok || n < 1 || n > max) {
    return Status::InvalidArgument(
        "'limit' must be an integer from 1 to " + std::to_string(max) + ".",
        "limit");
  }
  return n;
}

// A log position: decimal digits that fit in 64 bits.
std::optional<uint64_t> ParsePosition(std::string_view v) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() ||
      v.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  return n;
}

// The `from` query parameter: a log position, 1 when absent.
Result<uint64_t> ParseFrom(const std::map<std::string, std::string>& query) {
  auto it = query.find("from");
  if (it == query.end()) return uint64_t{1};
  std::optional<uint64_t> from = ParsePosition(it->second);
  if (!from || *from < 1) {
    return Status::InvalidArgument(
        "'from' must be a log position (an integer >= 1).", "from");
  }
  return *from;
}

std::string EncodeCursor(std::string_view id) { return Base64UrlEncode(id); }

Result<std::string> DecodeCursor(std::string_view cursor,
                                 bool (*valid)(std::string_view)) {
  std::optional<std::string> id = Base64UrlDecode(cursor);
  if (!id || !valid(*id)) {
    return Status::InvalidArgument("'after' is not a valid cursor.", "after");
  }
  return *id;
}

std::string QueryString(
    const std::vector<std::pair<std::string, std::string>>& params) {
  // One edit of the URL for all of them, not one per parameter (a list
  // page's Link: 7.0k -> 5.9k instructions).
  std::vector<urls::param_view> views;
  views.reserve(params.size());
  for (const auto& [k, v] : params) views.push_back({k, v});
  urls::url u;
  u.params().append(views.begin(), views.end());
  return std::string(u.encoded_query());
}

std::string NextLink(
    std::string_view path,
    const std::vector<std::pair<std::string, std::string>>& params) {
  return "<" + std::string(path) + "?" + QueryString(params) +
         ">; rel=\"next\"";
}

// The agent or conversation an id names, read through `batch` when given.
// A malformed id names nothing (404 later), like an unknown one.
Result<std::optional<Versioned<Agent>>> LoadAgent(const ReadModels& rm,
                                                  const std::string& id,
                                                  const LogBatch* batch) {
  if (!IsAgentId(id)) return std::optional<Versioned<Agent>>();
  return rm.GetAgent(id, batch);
}

Result<std::optional<Versioned<Conversation>>> LoadConversation(
    const ReadModels& rm, const std::string& id, const LogBatch* batch) {
  if (!IsConversationId(id)) return std::optional<Versioned<Conversation>>();
  return rm.GetConversation(id, batch);
}

// For reads of a conversation as the API renders it: its stored entry into
// `bytes`, decoded into `entry` (views into `bytes`), if `actor` may see it;
// else 404 / 403. No parsing, unlike the record the writer decides with.
Status LoadVisibleConversationEntry(const ReadModels& rm, const std::string& id,
                                    const Actor& actor, std::string& bytes,
                                    ConversationListEntry& entry) {
  std::optional<std::string> raw;
  if (IsConversationId(id)) {
    CONVSTORE_ASSIGN_OR_RETURN(raw, rm.GetConversationEntry(id));
  }
  if (!raw) return CheckAccess(false, "", actor, "Conversation");
  bytes = std::move(*raw);
  CONVSTORE_ASSIGN_OR_RETURN(entry, DecodeConversationListEntry(bytes));
  return CheckAccess(true, entry.created_by, actor, "Conversation");
}

// For reads: the value if `actor` may see it, else 404 / 403.
template <typename T>
Result<Versioned<T>> Visible(Result<std::optional<Versioned<T>>> loaded,
                             const Actor& actor, std::string_view what) {
  if (!loaded.ok()) return loaded.status();
  std::optional<Versioned<T>>& v = *loaded;
  CONVSTORE_RETURN_IF_ERROR(
      CheckAccess(v.has_value(), v ? v->value.created_by : "", actor, what));
  return std::move(*v);
}

struct RequestCtx {
  ApiRequest request;
  std::shared_ptr<std::string> route;  // route template, for metrics
  std::vector<std::string> segments;   // decoded path segments
  std::string path;
  std::map<std::string, std::string> query;
  Actor actor;
  KeyCheck key_check;  // for ApiKeyStore::StillValid when it writes
};

}  // namespace

class App::Handlers {
 public:
  explicit Handlers(App& app)
      : app_(app),
        room_url_(app.config_.livekit.room_url_template,
                  app.config_.livekit.url) {}

  void Route(RequestCtx& ctx, Respond respond);

 private:
  using Decider = std::function<Result<ApiResponse>(
      LogBatch&, const DecideContext&, const EventMeta&)>;

  // Decides and commits through the writer, with Idempotency-Key handling.
  void Write(const RequestCtx& ctx, Decider decide, Respond respond);
  // Answers a write request rejected before deciding (a bad body). With an
  // Idempotency-Key the answer is kept and replayed like any other (only
  // 5xx answers are not kept), so it goes through the writer too.
  void Reject(const RequestCtx& ctx, Status status, Respond respond) {
    if (!ctx.request.idempotency_key) {
      return respond(ErrorResponse(status));
    }
    Write(
        ctx,
        [status](LogBatch&, const DecideContext&,
                 const EventMeta&) -> Result<ApiResponse> { return status; },
        std::move(respond));
  }

  // The stored response for a retried Idempotency-Key, or 422 when the
  // retry's request differs.
  ApiResponse Replay(const StoredResponse& stored, const std::string& hash,
                     const Actor& actor) const;
  std::pair<std::string, int64_t> MintToken(const std::string& identity,
                                            const TokenSpec& spec) const;
  // The conversation object with its ETag; with `token`, also a freshly
  // minted token for `identity` (added before the one serialization: this
  // runs on the writer thread).
  ApiResponse ConversationResponse(unsigned status, const Conversation& c,
                                   uint64_t revision,
                                   const std::optional<TokenSpec>& token = {},
                                   const std::string& identity = {}) const;
  // Mints `spec`'s token into `body` ("token", and "expires_at" when the
  // spec asks for it) and records the spec in `r` for idempotent replays.
  ApiResponse WithToken(unsigned status, json::object body,
                        const TokenSpec& spec,
                        const std::string& identity) const;

  // Routes.
  void ListAgents(const RequestCtx& ctx, Respond respond);
  void CreateAgent(const RequestCtx& ctx, Respond respond);
  void GetAgent(const RequestCtx& ctx, const std::string& id, Respond respond);
  void UpdateAgent(const RequestCtx& ctx, const std::string& id,
                   Respond respond);
  void DeleteAgent(const RequestCtx& ctx, const std::string& id,
                   Respond respond);
  void ListConversations(const RequestCtx& ctx, Respond respond);
  void CreateConversation(const RequestCtx& ctx, Respond respond);
  void GetConversation(const RequestCtx& ctx, const std::string& id,
                       Respond respond);
  void DeleteConversation(const RequestCtx& ctx, const std::string& id,
                          Respond respond);
  void EraseUser(const RequestCtx& ctx, const std::string& user_id,
                 Respond respond);
  void UpdateConversation(const RequestCtx& ctx, const std::string& id,
                          Respond respond);
  void NewToken(const RequestCtx& ctx, const std::string& id, Respond respond);
  void ListMessages(const RequestCtx& ctx, const std::string& id,
                    Respond respond);
  void AppendMessage(const RequestCtx& ctx, const std::string& id,
                     Respond respond);
  void CreateApiKey(const RequestCtx& ctx, Respond respond);
  void ListApiKeys(const RequestCtx& ctx, Respond respond);
  void RevokeApiKey(const RequestCtx& ctx, const std::string& id,
                    Respond respond);
  void ListEvents(const RequestCtx& ctx, Respond respond);
  void CreateWebhook(const RequestCtx& ctx, Respond respond);
  void ListWebhooks(const RequestCtx& ctx, Respond respond);
  void GetWebhook(const RequestCtx& ctx, const std::string& id,
                  Respond respond);
  void DeleteWebhook(const RequestCtx& ctx, const std::string& id,
                     Respond respond);
  void ListDeliveries(const RequestCtx& ctx, const std::string& id,
                      Respond respond);
  void StreamEvents(const RequestCtx& ctx, Respond respond);
  void StreamMessages(const RequestCtx& ctx, const std::string& id,
                      Respond respond);
  void CreateBackup(const RequestCtx& ctx, Respond respond);
  ApiResponse ProjectionsStatus(unsigned status) const;
  ApiResponse Metrics() const;

  App& app_;
  const RoomUrlTemplate room_url_;
};

// ---------------------------------------------------------------- App

Result<std::unique_ptr<App>> App::Open(const AppConfig& config) {
  std::unique_ptr<App> app(new App());
  app->config_ = config;
  EventLogOptions options;
  options.env = config.env;
  for (const auto& cf : ApiKeyStore::ColumnFamilies()) {
    options.extra_column_families.push_back(cf);
  }
  for (const auto& cf : IdempotencyStore::ColumnFamilies()) {
    options.extra_column_families.push_back(cf);
  }
  options.compaction_filters =
      IdempotencyStore::ExpiryFilter(config.idempotency_retention.count());
  options.tune_column_family = ReadModels::TuneColumnFamily;
  for (const auto& cf : WebhookStore::ColumnFamilies()) {
    options.extra_column_families.push_back(cf);
  }
  for (const auto& cf : UserErasure::ColumnFamilies()) {
    options.extra_column_families.push_back(cf);
  }
  CONVSTORE_ASSIGN_OR_RETURN(app->log_,
                             EventLog::Open(config.data_dir, options));
  CONVSTORE_RETURN_IF_ERROR(DropStaleGenerations(*app->log_));
  std::shared_ptr<ReadModels> read_models;
  CONVSTORE_ASSIGN_OR_RETURN(read_models, OpenActiveReadModels(*app->log_));
  app->log_->AddSink(read_models.get());
  app->read_models_.store(read_models);
  app->decided_read_models_.store(read_models);
  app->keys_ = std::make_unique<ApiKeyStore>(app->log_.get());
  CONVSTORE_RETURN_IF_ERROR(app->keys_->Open());
  app->idempotency_ = std::make_unique<IdempotencyStore>(
      app->log_.get(), config.idempotency_retention.count());
  CONVSTORE_RETURN_IF_ERROR(read_models->CatchUp());

  bool no_keys = false;
  CONVSTORE_ASSIGN_OR_RETURN(no_keys, app->keys_->Empty());
  if (no_keys) {
    std::string key = config.bootstrap_admin_key.value_or(NewApiKeyText());
    LogBatch batch(app->log_.get());
    int64_t now = NowMillis();
    app->keys_->Create(batch, key, "admin", KeyRole::kAdmin, now,
                       "key_" + NewUuid(now));
    CONVSTORE_RETURN_IF_ERROR(batch.Commit());
    app->bootstrap_key_ = std::move(key);
  }
  app->webhooks_ = std::make_unique<WebhookStore>(app->log_.get());
  CONVSTORE_RETURN_IF_ERROR(app->webhooks_->Open());
  WebhookDispatcher::Options delivery;
  delivery.retry_base = config.webhook_retry_base;
  delivery.max_attempts = config.webhook_max_attempts;
  delivery.timeout = config.webhook_timeout;
  delivery.connect_timeout =
      std::min(delivery.connect_timeout, config.webhook_timeout);
  delivery.ca_file = config.webhook_ca_file;
  app->dispatcher_ = std::make_unique<WebhookDispatcher>(
      *app->log_, *app->webhooks_,
      [app = app.get()] { return app->read_models(); },
      RoomUrlTemplate(config.livekit.room_url_template, config.livekit.url),
      delivery);
  app->hub_ = std::make_unique<EventHub>(config.stream_queue_limit);
  GroupCommitWriter::Options writer_options;
  writer_options.on_committed =
      [hub = app->hub_.get(),
       dispatcher = app->dispatcher_.get()](std::vector<RecordedEvent> events) {
        hub->Publish(std::move(events));
        dispatcher->Notify();
      };
  app->writer_ =
      std::make_unique<GroupCommitWriter>(app->log_.get(), writer_options);
  app->purger_ = std::make_unique<ErasurePurger>(
      app->log_.get(),
      ErasurePurger::Options{config.erasure_purge_interval,
                             config.erasure_purge_batch_interval});
  UserErasure::Hooks erasure_hooks;
  erasure_hooks.read_models = [app = app.get()] {
    return app->decided_read_models();
  };
  erasure_hooks.webhook_erased =
      [dispatcher = app->dispatcher_.get()](const std::string& id) {
        dispatcher->Removed(id);
      };
  erasure_hooks.ended = [purger = app->purger_.get()] { purger->Expedite(); };
  app->user_erasure_ = std::make_unique<UserErasure>(
      app->log_.get(), app->writer_.get(), app->keys_.get(),
      app->webhooks_.get(), app->idempotency_.get(), std::move(erasure_hooks));
  app->long_reads_ = std::make_unique<boost::asio::thread_pool>(2);
  app->handlers_ = std::make_unique<Handlers>(*app);
  if (config.deliver_webhooks) {
    CONVSTORE_RETURN_IF_ERROR(app->dispatcher_->Start());
  }
  CONVSTORE_RETURN_IF_ERROR(app->user_erasure_->Open());
  if (config.retention_days > 0) {
    RetentionSweeper::Options retention;
    retention.retention_days = config.retention_days;
    retention.interval = config.retention_interval;
    retention.now_ms = config.retention_clock;
    app->retention_ = std::make_unique<RetentionSweeper>(
        app->writer_.get(),
        [app = app.get()] { return app->decided_read_models(); },
        std::move(retention));
    spdlog::info(
        "retention: completed and archived conversations unchanged for {} "
        "days are erased",
        config.retention_days);
  }
  app->ready_ = true;
  return app;
}

App::~App() {
  stopping_ = true;
  // Deliveries in flight end here; they are retried after the next start.
  if (dispatcher_) dispatcher_->Stop();
  StopWrites();
  if (rebuild_thread_.joinable()) rebuild_thread_.join();
  if (long_reads_) long_reads_->join();
}

// ---------------------------------------------------------------- rebuild

App::RebuildStatus App::rebuild_status() const {
  std::lock_guard<std::mutex> lock(rebuild_mu_);
  return rebuild_;
}

Status App::StartRebuild() {
  std::lock_guard<std::mutex> lock(rebuild_mu_);
  if (rebuild_.state == "building") {
    return Status::Conflict("A rebuild is already running.",
                            "rebuild_in_progress");
  }
  if (rebuild_thread_.joinable()) rebuild_thread_.join();
  rebuild_ = RebuildStatus();
  rebuild_.state = "building";
  rebuild_.started_at_ms = NowMillis();
  rebuild_.from_generation = decided_read_models()->prefix();
  rebuild_.to_generation = NextGenerationPrefix(rebuild_.from_generation);
  rebuild_thread_ = std::thread([this] { RunRebuild(); });
  return Status();
}

// Builds the next generation beside the live one while writes go on, then
// does the final catch-up and the switch as one writer command, so writes
// pause only for that last step and reads are served throughout.
void App::RunRebuild() {
  std::shared_ptr<ReadModels> current = decided_read_models();
  const std::string next = NextGenerationPrefix(current->prefix());
  auto finish = [this](const Status& s) {
    std::lock_guard<std::mutex> lock(rebuild_mu_);
    rebuild_.finished_at_ms = NowMillis();
    rebuild_.events = log_->head();
    rebuild_.state = s.ok() ? "done" : "failed";
    if (!s.ok()) {
      rebuild_.error = s.message();
      spdlog::error("online rebuild failed: {}", s.ToString());
    } else {
      spdlog::info("online rebuild done: read models now {}",
                   rebuild_.to_generation);
    }
  };
  Status s = DropGeneration(*log_, next);  // leftovers are not trusted
  if (s.ok()) s = CreateGeneration(*log_, next);
  if (!s.ok()) return finish(s);
  auto target = std::make_shared<ReadModels>(log_.get(), next);
  for (int round = 0; round < 100 && !stopping_; ++round) {
    s = target->BuildFrom(*log_, log_->head());
    if (!s.ok()) return finish(s);
    auto checkpoint = target->Checkpoint();
    if (!checkpoint.ok()) return finish(checkpoint.status());
    if (log_->head() - *checkpoint < 1000) break;
  }
  auto switched = std::make_shared<std::promise<Status>>();
  writer_->Submit(
      [this, target, current](LogBatch& batch) -> Status {
        uint64_t checkpoint;
        CONVSTORE_ASSIGN_OR_RETURN(checkpoint, target->Checkpoint());
        // Events after the target's checkpoint, committed or still pending
        // in this very group, go into the new generation in this batch.
        for (uint64_t p = checkpoint + 1; p <= batch.head(); ++p) {
          std::optional<RecordedEvent> e;
          CONVSTORE_ASSIGN_OR_RETURN(e, batch.ReadEvent(p));
          if (!e) return Status::Corruption("gap at " + std::to_string(p));
          CONVSTORE_RETURN_IF_ERROR(target->Apply(*e, batch));
        }
        target->PutCheckpoint(batch, batch.head());
        SetActiveReadModelsPrefix(batch, target->prefix());
        // From here on, later commands (even in this group) decide against
        // and project into the new generation.
        log_->ReplaceSink(current.get(), target.get());
        decided_read_models_.store(target);
        return Status();
      },
      [this, target, switched](const Status& status) {
        // Readers move only once this batch is durable: until then the new
        // generation lacks the rows of the events it caught up on here,
        // some of them acknowledged already (and if the commit fails, the
        // log refuses writes and keeps the old generation on a restart).
        // The commands after this one are answered after this runs.
        if (status.ok()) read_models_.store(target);
        switched->set_value(status);
      });
  s = switched->get_future().get();
  finish(s);
  if (!s.ok()) return;
  // Drop the old generation once no reader (or message stream) holds it;
  // if that takes too long, the next start drops it.
  std::string old_prefix = current->prefix();
  std::weak_ptr<ReadModels> old = current;
  current.reset();
  for (int i = 0; i < 6000 && !old.expired() && !stopping_; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (old.expired()) {
    Status dropped = DropGeneration(*log_, old_prefix);
    if (!dropped.ok())
      spdlog::warn("dropping {}: {}", old_prefix, dropped.ToString());
  }
}

void App::StopWrites() {
  if (retention_) retention_->Stop();
  if (writer_) writer_->Stop();
  // Nothing more will be committed: every event stream ends.
  if (hub_) hub_->CloseAll();
}

void App::PostLongRead(Respond respond, std::function<ApiResponse()> work) {
  long_reads_in_flight_.fetch_add(1);
  boost::asio::post(*long_reads_, [this, respond = std::move(respond),
                                   work = std::move(work)]() mutable {
    Respond done;
    done.swap(respond);  // the task keeps no reference to the connection
    done(work());
    done = nullptr;  // the connection may be released here, while counted
    long_reads_in_flight_.fetch_sub(1);
  });
}

void App::PostBackground(std::function<void()> task) {
  long_reads_in_flight_.fetch_add(1);
  boost::asio::post(*long_reads_, [this, task = std::move(task)]() mutable {
    task();
    task = nullptr;  // what it holds goes while counted
    long_reads_in_flight_.fetch_sub(1);
  });
}

void App::WaitForLongReads(std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (long_reads_in_flight_.load() > 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void App::Handle(ApiRequest request, Respond respond) {
  RequestCtx ctx;
  auto parsed = urls::parse_origin_form(request.target);
  if (!parsed) {
    respond(
        ErrorResponse(Status::InvalidArgument("Malformed request target.")));
    return;
  }
  // Most paths hold no escapes: their text is their decoded form, copied
  // as is (decoding every segment into a new string was ~3k instructions a
  // request).
  auto decoded = [](urls::pct_string_view text) {
    return text.find('%') == urls::pct_string_view::npos ? std::string(text)
                                                         : text.decode();
  };
  ctx.path = decoded(parsed->encoded_path());
  ctx.segments.reserve(parsed->encoded_segments().size());
  for (urls::pct_string_view seg : parsed->encoded_segments()) {
    ctx.segments.push_back(decoded(seg));
  }
  for (auto param : parsed->params()) {
    ctx.query.emplace(param.key, param.value);
  }
  ctx.request = std::move(request);
  ctx.route = std::make_shared<std::string>("unmatched");
  auto start = std::chrono::steady_clock::now();
  Respond measured = [this, route = ctx.route, method = ctx.request.method,
                      start, respond = std::move(respond)](ApiResponse r) {
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    request_metrics_.Record(method, *route, r.status, seconds);
    respond(std::move(r));
  };
  handlers_->Route(ctx, std::move(measured));
}

// ---------------------------------------------------------------- routing

void App::Handlers::Route(RequestCtx& ctx, Respond respond) {
  const auto& s = ctx.segments;
  const std::string& m = ctx.request.method;
  auto not_found = [&] {
    respond(ErrorResponse(Status::NotFound("No route for " + ctx.path + ".")));
  };
  auto method_not_allowed = [&](std::string allow) {
    ApiResponse r = ErrorResponse(Status::MethodNotAllowed(
        "Method " + m + " is not allowed on " + ctx.path + "."));
    r.AddHeader("Allow", std::move(allow));
    respond(std::move(r));
  };

  if (s.size() == 1 &&
      (s[0] == "healthz" || s[0] == "readyz" || s[0] == "metrics")) {
    *ctx.route = "/" + s[0];
    if (m != "GET" && m != "HEAD") return method_not_allowed("GET, HEAD");
    if (s[0] == "healthz")
      return respond(JsonResponse(200, {{"status", "ok"}}));
    if (s[0] == "metrics") return respond(Metrics());
    if (app_.ready()) return respond(JsonResponse(200, {{"status", "ready"}}));
    return respond(ErrorResponse(Status::Unavailable("Not ready.")));
  }
  if (s.empty() || s[0] != "v1") return not_found();
  // Public documentation: the one /v1 route without auth.
  if (s.size() == 2 && s[1] == "openapi.json") {
    *ctx.route = "/v1/openapi.json";
    if (m != "GET" && m != "HEAD") return method_not_allowed("GET, HEAD");
    ApiResponse r;
    r.body = std::string(OpenApiJson());
    return respond(std::move(r));
  }

  // Auth comes first on /v1, even for unknown routes.
  Result<Actor> actor = app_.keys_->Authenticate(
      ctx.request.authorization, &ctx.key_check, ctx.request.remembered_key);
  if (!actor.ok()) return respond(ErrorResponse(actor.status()));
  ctx.actor = *actor;

  const bool has_body = m == "POST" || m == "PATCH";
  auto dispatch = [&](const char* allow, auto&& handler) {
    *ctx.route = [&] {
      std::string t;
      t.reserve(ctx.path.size() + 8);
      for (size_t i = 0; i < s.size(); ++i) {
        bool id = (i == 2 && (s[1] == "agents" || s[1] == "conversations" ||
                              s[1] == "webhooks")) ||
                  (i == 3 && s[1] == "admin" &&
                   (s[2] == "api-keys" || s[2] == "users"));
        t += '/';
        t += id ? std::string_view("{id}") : std::string_view(s[i]);
      }
      return t;
    }();
    std::string_view allowed(allow);
    // An exact token match within the Allow list.
    bool ok = false;
    size_t pos = 0;
    while (pos <= allowed.size()) {
      size_t end = allowed.find(", ", pos);
      if (end == std::string_view::npos) end = allowed.size();
      if (allowed.substr(pos, end - pos) == m) ok = true;
      pos = end + 2;
    }
    if (!ok) return method_not_allowed(allow);
    if (has_body && !ctx.request.body.empty() &&
        !IsJsonContentType(ctx.request.content_type)) {
      return respond(ErrorResponse(Status::UnsupportedMediaType(
          "Content-Type must be application/json.")));
    }
    if (ctx.request.idempotency_key &&
        (ctx.request.idempotency_key->empty() ||
         ctx.request.idempotency_key->size() > 255)) {
      return respond(ErrorResponse(Status::InvalidArgument(
          "Idempotency-Key must be 1 to 255 characters.", "Idempotency-Key")));
    }
    handler();
  };

  if (s.size() == 2 && s[1] == "agents") {
    return dispatch("GET, POST", [&] {
      m == "GET" ? ListAgents(ctx, respond) : CreateAgent(ctx, respond);
    });
  }
  if (s.size() == 3 && s[1] == "agents") {
    return dispatch("GET, PATCH, DELETE", [&] {
      if (m == "GET")
        GetAgent(ctx, s[2], respond);
      else if (m == "PATCH")
        UpdateAgent(ctx, s[2], respond);
      else
        DeleteAgent(ctx, s[2], respond);
    });
  }
  if (s.size() == 2 && s[1] == "conversations") {
    return dispatch("GET, POST", [&] {
      m == "GET" ? ListConversations(ctx, respond)
                 : CreateConversation(ctx, respond);
    });
  }
  if (s.size() == 3 && s[1] == "conversations") {
    return dispatch("GET, PATCH, DELETE", [&] {
      if (m == "GET")
        GetConversation(ctx, s[2], respond);
      else if (m == "PATCH")
        UpdateConversation(ctx, s[2], respond);
      else
        DeleteConversation(ctx, s[2], respond);
    });
  }
  if (s.size() == 4 && s[1] == "conversations" && s[3] == "token") {
    return dispatch("POST", [&] { NewToken(ctx, s[2], respond); });
  }
  if (s.size() == 4 && s[1] == "conversations" && s[3] == "messages") {
    return dispatch("GET, POST", [&] {
      m == "GET" ? ListMessages(ctx, s[2], respond)
                 : AppendMessage(ctx, s[2], respond);
    });
  }
  if (s.size() == 5 && s[1] == "conversations" && s[3] == "messages" &&
      s[4] == "stream") {
    return dispatch("GET", [&] { StreamMessages(ctx, s[2], respond); });
  }
  if (s.size() == 2 && s[1] == "webhooks") {
    return dispatch("GET, POST", [&] {
      m == "GET" ? ListWebhooks(ctx, respond) : CreateWebhook(ctx, respond);
    });
  }
  if (s.size() == 3 && s[1] == "webhooks") {
    return dispatch("GET, DELETE", [&] {
      m == "GET" ? GetWebhook(ctx, s[2], respond)
                 : DeleteWebhook(ctx, s[2], respond);
    });
  }
  if (s.size() == 4 && s[1] == "webhooks" && s[3] == "deliveries") {
    return dispatch("GET", [&] { ListDeliveries(ctx, s[2], respond); });
  }
  if ((s.size() == 3 || s.size() == 4) && s[1] == "admin" &&
      s[2] == "projections") {
    if (!ctx.actor.admin) {
      return respond(ErrorResponse(
          Status::PermissionDenied("This route needs an admin API key.")));
    }
    if (s.size() == 3) {
      return dispatch("GET", [&] { respond(ProjectionsStatus(200)); });
    }
    if (s[3] != "rebuild") return not_found();
    return dispatch("POST", [&] {
      Status started = app_.StartRebuild();
      if (!started.ok()) return respond(ErrorResponse(started));
      respond(ProjectionsStatus(202));
    });
  }
  if (s.size() == 4 && s[1] == "admin" && s[2] == "events" &&
      s[3] == "stream") {
    if (!ctx.actor.admin) {
      return respond(ErrorResponse(
          Status::PermissionDenied("This route needs an admin API key.")));
    }
    return dispatch("GET", [&] { StreamEvents(ctx, respond); });
  }
  if (s.size() == 3 && s[1] == "admin" &&
      (s[2] == "events" || s[2] == "backups")) {
    if (!ctx.actor.admin) {
      return respond(ErrorResponse(
          Status::PermissionDenied("This route needs an admin API key.")));
    }
    if (s[2] == "backups") {
      return dispatch("POST", [&] { CreateBackup(ctx, respond); });
    }
    return dispatch("GET", [&] { ListEvents(ctx, respond); });
  }
  if (s.size() == 4 && s[1] == "admin" && s[2] == "users") {
    if (!ctx.actor.admin) {
      return respond(ErrorResponse(
          Status::PermissionDenied("This route needs an admin API key.")));
    }
    return dispatch("DELETE", [&] { EraseUser(ctx, s[3], respond); });
  }
  if (s.size() >= 3 && s[1] == "admin" && s[2] == "api-keys" && s.size() <= 4) {
    if (!ctx.actor.admin) {
      return respond(ErrorResponse(
          Status::PermissionDenied("This route needs an admin API key.")));
    }
    if (s.size() == 3) {
      return dispatch("GET, POST", [&] {
        m == "GET" ? ListApiKeys(ctx, respond) : CreateApiKey(ctx, respond);
      });
    }
    return dispatch("DELETE", [&] { RevokeApiKey(ctx, s[3], respond); });
  }
  not_found();
}

// ---------------------------------------------------------------- writes

void App::Handlers::Write(const RequestCtx& ctx, Decider decide,
                          Respond respond) {
  const Actor actor = ctx.actor;
  std::optional<std::string> key = ctx.request.idempotency_key;
  std::string hash;
  IdempotencyStore& idem = *app_.idempotency_;
  if (key) {
    hash = IdempotencyStore::RequestHash(ctx.request.method, ctx.path,
                                         ctx.request.body);
    auto stored = idem.Find(actor.user_id, *key, NowMillis());
    if (!stored.ok()) return respond(ErrorResponse(stored.status()));
    if (*stored) return respond(Replay(**stored, hash, actor));
    if (!idem.TryBegin(actor.user_id, *key)) {
      return respond(ErrorResponse(Status::IdempotencyInFlight(
          "A request with this Idempotency-Key is still in flight.")));
    }
  }

  auto outcome = std::make_shared<ApiResponse>();
  auto work = [this, actor, key, hash = std::move(hash),
               key_check = ctx.key_check, decide = std::move(decide),
               outcome](LogBatch& batch) -> Status {
    // A key revoked or erased after it let this request in writes nothing.
    CONVSTORE_RETURN_IF_ERROR(app_.keys_->StillValid(key_check, batch));
    DecideContext dctx;
    dctx.actor = actor;
    dctx.now_ms = NowMillis();
    int64_t now = dctx.now_ms;
    dctx.new_uuid = [now] { return NewUuid(now); };
    EventMeta meta{actor.user_id, key.value_or(""), dctx.now_ms};
    if (key) {
      // The first request with this key may have committed after our check
      // on the I/O thread; the writer's view is the final word.
      auto stored = app_.idempotency_->Find(actor.user_id, *key, dctx.now_ms);
      if (!stored.ok()) return stored.status();
      if (*stored) {
        *outcome = Replay(**stored, hash, actor);
        return Status();
      }
    }
    batch.SetSavePoint();
    const size_t appended_before = batch.appended_count();
    Result<ApiResponse> decided = decide(batch, dctx, meta);
    if (decided.ok()) {
      batch.PopSavePoint();
      *outcome = std::move(*decided);
    } else {
      batch.RollbackToSavePoint();
      *outcome = ErrorResponse(decided.status());
    }
    if (outcome->status >= 500) return decided.status();
    if (key) {
      StoredResponse sr;
      sr.request_hash = hash;
      sr.status = outcome->status;
      sr.created_at_ms = dctx.now_ms;
      if (const std::string* h = outcome->FindHeader("Location"))
        sr.location = *h;
      if (const std::string* h = outcome->FindHeader("ETag")) sr.etag = *h;
      sr.body = outcome->body;
      if (outcome->token_spec || !outcome->secret_fields.empty()) {
        // Secrets are never stored: drop them from the kept body.
        json::value body = json::parse(outcome->body);
        body.as_object().erase("token");
        body.as_object().erase("expires_at");
        for (const std::string& field : outcome->secret_fields) {
          body.as_object().erase(field);
        }
        sr.body = json::serialize(body);
        sr.token = outcome->token_spec;
      }
      if (batch.appended_count() > appended_before) {
        sr.subject =
            DataKeySubjectOf(batch.appended_event(appended_before).stream);
      }
      CONVSTORE_RETURN_IF_ERROR(
          app_.idempotency_->Put(batch, actor.user_id, *key, sr));
    }
    return Status();
  };
  auto done = [this, actor, key, outcome,
               respond = std::move(respond)](const Status& status) {
    if (key) app_.idempotency_->End(actor.user_id, *key);
    if (!status.ok()) {
      if (status.kind() == ErrorKind::kIOError ||
          status.kind() == ErrorKind::kInsufficientStorage ||
          status.kind() == ErrorKind::kCorruption) {
        spdlog::error("write failed: {}", status.ToString());
      }
      return respond(ErrorResponse(status));
    }
    respond(std::move(*outcome));
  };
  app_.writer_->Submit(std::move(work), std::move(done));
}

// ---------------------------------------------------------------- helpers

ApiResponse App::Handlers::Replay(const StoredResponse& stored,
                                  const std::string& hash,
                                  const Actor& actor) const {
  if (stored.request_hash != hash) {
    return ErrorResponse(Status::IdempotencyMismatch(
        "This Idempotency-Key was used with a different request."));
  }
  ApiResponse r;
  r.status = stored.status;
  r.body = stored.body;
  if (stored.token) {
    r = WithToken(stored.status, json::parse(stored.body).as_object(),
                  *stored.token, actor.user_id);
  }
  if (!stored.location.empty()) r.AddHeader("Location", stored.location);
  if (!stored.etag.empty()) r.AddHeader("ETag", stored.etag);
  r.AddHeader("Idempotent-Replayed", "true");
  return r;
}

std::pair<std::string, int64_t> App::Handlers::MintToken(
    const std::string& identity, const TokenSpec& spec) const {
  const LiveKitConfig& lk = app_.config_.livekit;
  LiveKitTokenRequest req;
  req.api_key = lk.api_key;
  req.api_secret = lk.api_secret;
  req.identity = identity;
  req.room_name = spec.room_name;
  req.dispatch_name = spec.dispatch_name;
  req.conversation_id = spec.conversation_id;
  req.now_s = NowMillis() / 1000;
  req.ttl_s = lk.token_ttl_s;
  return {MintLiveKitToken(req), req.now_s + req.ttl_s};
}

ApiResponse App::Handlers::WithToken(unsigned status, json::object body,
                                     const TokenSpec& spec,
                                     const std::string& identity) const {
  auto [token, exp] = MintToken(identity, spec);
  body["token"] = token;
  if (spec.with_expiry) body["expires_at"] = FormatRfc3339Millis(exp * 1000);
  ApiResponse r = JsonResponse(status, body);
  r.token_spec = spec;
  return r;
}

ApiResponse App::Handlers::ConversationResponse(
    unsigned status, const Conversation& c, uint64_t revision,
    const std::optional<TokenSpec>& token, const std::string& identity) const {
  json::object body = ConversationToJson(c, room_url_.Render(c.id));
  ApiResponse r = token ? WithToken(status, std::move(body), *token, identity)
                        : JsonResponse(status, body);
  r.AddHeader("ETag", ETag(revision));
  return r;
}

// ---------------------------------------------------------------- agents

void App::Handlers::ListAgents(const RequestCtx& ctx, Respond respond) {
  ListQuery q;
  q.actor = ctx.actor;
  auto limit = ParseLimit(ctx.query, 20, 100);
  if (!limit.ok()) return respond(ErrorResponse(limit.status()));
  q.limit = *limit;
  if (auto it = ctx.query.find("after"); it != ctx.query.end()) {
    auto id = DecodeCursor(it->second, IsAgentId);
    if (!id.ok()) return respond(ErrorResponse(id.status()));
    q.after = *id;
  }
  auto page = app_.read_models()->ListAgents(q);
  if (!page.ok()) return respond(ErrorResponse(page.status()));
  json::array items;
  for (const auto& a : page->items) items.push_back(AgentToJson(a.value));
  ApiResponse r = JsonResponse(200, items);
  if (page->has_more) {
    r.AddHeader(
        "Link",
        NextLink("/v1/agents",
                 {{"limit", std::to_string(q.limit)},
                  {"after", EncodeCursor(page->items.back().value.id)}}));
  }
  respond(std::move(r));
}

void App::Handlers::CreateAgent(const RequestCtx& ctx, Respond respond) {
  auto req = ParseCreateAgent(ctx.request.body);
  if (!req.ok()) return Reject(ctx, req.status(), std::move(respond));
  Write(
      ctx,
      [req = std::move(*req)](LogBatch& batch, const DecideContext& dctx,
                              const EventMeta& meta) -> Result<ApiResponse> {
        Decision<Agent> d;
        CONVSTORE_ASSIGN_OR_RETURN(d, DecideCreateAgent(req, dctx));
        CONVSTORE_RETURN_IF_ERROR(
            batch.Append(d.events, meta, dctx.new_uuid).status());
        ApiResponse r = JsonResponse(201, AgentToJson(d.result));
        r.AddHeader("Location", "/v1/agents/" + d.result.id);
        r.AddHeader("ETag", ETag(d.revision));
        return r;
      },
      std::move(respond));
}

void App::Handlers::GetAgent(const RequestCtx& ctx, const std::string& id,
                             Respond respond) {
  auto agent =
      Visible(LoadAgent(*app_.read_models(), id, nullptr), ctx.actor, "Agent");
  if (!agent.ok()) return respond(ErrorResponse(agent.status()));
  ApiResponse r = JsonResponse(200, AgentToJson(agent->value));
  r.AddHeader("ETag", ETag(agent->revision));
  respond(std::move(r));
}

void App::Handlers::UpdateAgent(const RequestCtx& ctx, const std::string& id,
                                Respond respond) {
  auto req = ParseUpdateAgent(ctx.request.body);
  if (!req.ok()) return Reject(ctx, req.status(), std::move(respond));
  std::optional<IfMatch> if_match = ParseIfMatch(ctx.request.if_match);
  Write(
      ctx,
      [this, id, if_match, req = std::move(*req)](
          LogBatch& batch, const DecideContext& dctx,
          const EventMeta& meta) -> Result<ApiResponse> {
        std::optional<Versioned<Agent>> cur;
        CONVSTORE_ASSIGN_OR_RETURN(
            cur, LoadAgent(*app_.decided_read_models(), id, &batch));
        Decision<Agent> d;
        CONVSTORE_ASSIGN_OR_RETURN(d,
                                   DecideUpdateAgent(req, cur, if_match, dctx));
        CONVSTORE_RETURN_IF_ERROR(
            batch.Append(d.events, meta, dctx.new_uuid).status());
        ApiResponse r = JsonResponse(200, AgentToJson(d.result));
        r.AddHeader("ETag", ETag(d.revision));
        return r;
      },
      std::move(respond));
}

void App::Handlers::DeleteAgent(const RequestCtx& ctx, const std::string& id,
                                Respond respond) {
  std::optional<IfMatch> if_match = ParseIfMatch(ctx.request.if_match);
  Write(
      ctx,
      [this, id, if_match](LogBatch& batch, const DecideContext& dctx,
                           const EventMeta& meta) -> Result<ApiResponse> {
        std::optional<Versioned<Agent>> cur;
        CONVSTORE_ASSIGN_OR_RETURN(
            cur, LoadAgent(*app_.decided_read_models(), id, &batch));
        Decision<Agent> d;
        CONVSTORE_ASSIGN_OR_RETURN(d, DecideDeleteAgent(cur, if_match, dctx));
        CONVSTORE_RETURN_IF_ERROR(
            batch.Append(d.events, meta, dctx.new_uuid).status());
        ApiResponse r;
        r.status = 204;
        r.content_type.clear();
        r.AddHeader("ETag", ETag(d.revision));
        return r;
      },
      std::move(respond));
}

// ----------------------------------------------------------------
// conversations

void App::Handlers::ListConversations(const RequestCtx& ctx, Respond respond) {
  ListQuery q;
  q.actor = ctx.actor;
  auto limit = ParseLimit(ctx.query, 20, 100);
  if (!limit.ok()) return respond(ErrorResponse(limit.status()));
  q.limit = *limit;
  std::vector<std::pair<std::string, std::string>> next = {
      {"limit", std::to_string(q.limit)}};
  if (auto it = ctx.query.find("agent_id"); it != ctx.query.end()) {
    q.agent_id = it->second;
    next.emplace_back("agent_id", it->second);
  }
  if (auto it = ctx.query.find("status"); it != ctx.query.end()) {
    q.status = ParseConversationStatus(it->second);
    if (!q.status) {
      return respond(ErrorResponse(Status::InvalidArgument(
          "'status' must be one of 'active', 'completed', 'archived'.",
          "status")));
    }
    next.emplace_back("status", it->second);
  }
  if (auto it = ctx.query.find("after"); it != ctx.query.end()) {
    auto id = DecodeCursor(it->second, IsConversationId);
    if (!id.ok()) return respond(ErrorResponse(id.status()));
    q.after = *id;
  }
  auto page = app_.read_models()->ListConversations(q, room_url_);
  if (!page.ok()) return respond(ErrorResponse(page.status()));
  ApiResponse r;
  r.status = 200;
  r.body = std::move(page->json);
  if (page->has_more) {
    next.emplace_back("after", EncodeCursor(page->last_id));
    r.AddHeader("Link", NextLink("/v1/conversations", next));
  }
  respond(std::move(r));
}

void App::Handlers::CreateConversation(const RequestCtx& ctx, Respond respond) {
  auto req = ParseCreateConversation(ctx.request.body);
  if (!req.ok()) return Reject(ctx, req.status(), std::move(respond));
  Write(
      ctx,
      [this, req = std::move(*req)](
          LogBatch& batch, const DecideContext& dctx,
          const EventMeta& meta) -> Result<ApiResponse> {
        std::optional<Versioned<Agent>> agent;
        CONVSTORE_ASSIGN_OR_RETURN(agent, LoadAgent(*app_.decided_read_models(),
                                                    req.agent_id, &batch));
        Result<Decision<Conversation>> d =
            DecideCreateConversation(req, agent, dctx);
        if (!d.ok()) {
          Status s = d.status();
          if (s.kind() == ErrorKind::kNotFound) {
            return Status::NotFound("Agent not found.", "agent_id");
          }
          if (s.kind() == ErrorKind::kPermissionDenied) {
            return Status::PermissionDenied(
                "Not authorized to use this agent.");
          }
          return s;
        }
        CONVSTORE_RETURN_IF_ERROR(
            batch.Append(d->events, meta, dctx.new_uuid).status());
        const Conversation& c = d->result;
        ApiResponse r = ConversationResponse(
            201, c, d->revision,
            TokenSpec{c.id, c.id, agent->value.dispatch_name},
            dctx.actor.user_id);
        r.AddHeader("Location", "/v1/conversations/" + c.id);
        return r;
      },
      std::move(respond));
}

void App::Handlers::GetConversation(const RequestCtx& ctx,
                                    const std::string& id, Respond respond) {
  std::string bytes;
  ConversationListEntry entry;
  Status s = LoadVisibleConversationEntry(*app_.read_models(), id, ctx.actor,
                                          bytes, entry);
  if (!s.ok()) return respond(ErrorResponse(s));
  ApiResponse r;
  r.status = 200;
  AppendConversationJson(entry, room_url_, id, r.body);
  r.AddHeader("ETag", ETag(entry.revision));
  respond(std::move(r));
}

void App::Handlers::UpdateConversation(const RequestCtx& ctx,
                                       const std::string& id, Respond respond) {
  auto req = ParseUpdateConversation(ctx.request.body);
  if (!req.ok()) return Reject(ctx, req.status(), std::move(respond));
  std::optional<IfMatch> if_match = ParseIfMatch(ctx.request.if_match);
  Write(
      ctx,
      [this, id, if_match, req = std::move(*req)](
          LogBatch& batch, const DecideContext& dctx,
          const EventMeta& meta) -> Result<ApiResponse> {
        std::optional<Versioned<Conversation>> cur;
        CONVSTORE_ASSIGN_OR_RETURN(
            cur, LoadConversation(*app_.decided_read_models(), id, &batch));
        Decision<Conversation> d;
        CONVSTORE_ASSIGN_OR_RETURN(
            d, DecideUpdateConversation(req, cur, if_match, dctx));
        CONVSTORE_RETURN_IF_ERROR(
            batch.Append(d.events, meta, dctx.new_uuid).status());
        return ConversationResponse(200, d.result, d.revision);
      },
      std::move(respond));
}

void App::Handlers::DeleteConversation(const RequestCtx& ctx,
                                       const std::string& id, Respond respond) {
  std::optional<IfMatch> if_match = ParseIfMatch(ctx.request.if_match);
  Write(
      ctx,
      [this, id, if_match](LogBatch& batch, const DecideContext& dctx,
                           const EventMeta& meta) -> Result<ApiResponse> {
        std::optional<Versioned<Conversation>> cur;
        CONVSTORE_ASSIGN_OR_RETURN(
            cur, LoadConversation(*app_.decided_read_models(), id, &batch));
        Decision<Conversation> d;
        CONVSTORE_ASSIGN_OR_RETURN(
            d, DecideEraseConversation(cur, if_match, ErasureReason::kDeleted,
                                       dctx));
        CONVSTORE_RETURN_IF_ERROR(
            batch.Append(d.events, meta, dctx.new_uuid).status());
        ApiResponse r;
        r.status = 204;
        r.content_type.clear();
        return r;
      },
      [purger = app_.purger_.get(),
       respond = std::move(respond)](ApiResponse r) {
        // Someone asked for this erasure: purge it now, not with a batch.
        if (r.status == 204) purger->Expedite();
        respond(std::move(r));
      });
}

void App::Handlers::EraseUser(const RequestCtx& ctx, const std::string& user_id,
                              Respond respond) {
  if (!IsValidUserId(user_id)) {
    return respond(ErrorResponse(
        Status::NotFound("No user can have the id '" + user_id + "'.")));
  }
  if (user_id == ctx.actor.user_id) {
    return respond(ErrorResponse(Status::InvalidArgument(
        "An admin cannot erase their own user (it would erase the key making "
        "this request); use another admin's key.",
        "user_id")));
  }
  app_.user_erasure_->Erase(
      user_id, ctx.actor,
      [respond = std::move(respond)](Result<UserErasureReport> report) {
        if (!report.ok()) return respond(ErrorResponse(report.status()));
        respond(JsonResponse(200, UserErasureToJson(*report)));
      });
}

void App::Handlers::NewToken(const RequestCtx& ctx, const std::string& id,
                             Respond respond) {
  Write(
      ctx,
      [this, id](LogBatch& batch, const DecideContext& dctx,
                 const EventMeta&) -> Result<ApiResponse> {
        Versioned<Conversation> c;
        CONVSTORE_ASSIGN_OR_RETURN(
            c,
            Visible(LoadConversation(*app_.decided_read_models(), id, &batch),
                    dctx.actor, "Conversation"));
        if (c.value.status != ConversationStatus::kActive) {
          return Status::Conflict("Conversation is " +
                                      std::string(ToString(c.value.status)) +
                                      "; tokens are issued only for an "
                                      "active conversation.",
                                  "conversation_not_active");
        }
        std::optional<Versioned<Agent>> agent;
        CONVSTORE_ASSIGN_OR_RETURN(agent, app_.decided_read_models()->GetAgent(
                                              c.value.agent_id, &batch));
        json::object body;
        body["room_name"] = c.value.id;
        body["room_url"] = room_url_.Render(c.value.id);
        return WithToken(
            201, std::move(body),
            TokenSpec{c.value.id, c.value.id,
                      agent ? agent->value.dispatch_name : std::nullopt,
                      /*with_expiry=*/true},
            dctx.actor.user_id);
      },
      std::move(respond));
}

// ---------------------------------------------------------------- messages

void App::Handlers::ListMessages(const RequestCtx& ctx, const std::string& id,
                                 Respond respond) {
  std::shared_ptr<ReadModels> rm = app_.read_models();
  std::string bytes;
  ConversationListEntry entry;
  Status visible =
      LoadVisibleConversationEntry(*rm, id, ctx.actor, bytes, entry);
  if (!visible.ok()) return respond(ErrorResponse(visible));

  auto after_it = ctx.query.find("after");
  if (ctx.query.find("limit") == ctx.query.end() &&
      after_it == ctx.query.end()) {
    ApiResponse r;
    r.stream = rm->StreamMessages(id);
    return respond(std::move(r));
  }
  auto limit = ParseLimit(ctx.query, 1000, 1000);
  if (!limit.ok()) return respond(ErrorResponse(limit.status()));
  std::optional<std::string> after;
  if (after_it != ctx.query.end()) after = after_it->second;
  auto page = rm->ListMessages(id, after, *limit);
  if (!page.ok()) return respond(ErrorResponse(page.status()));
  ApiResponse r;
  r.status = 200;
  r.body = JoinJsonArray(page->items);
  if (page->has_more) {
    r.AddHeader("Link", NextLink("/v1/conversations/" + id + "/messages",
                                 {{"limit", std::to_string(*limit)},
                                  {"after", page->last_id}}));
  }
  respond(std::move(r));
}

void App::Handlers::AppendMessage(const RequestCtx& ctx, const std::string& id,
                                  Respond respond) {
  auto req = ParseAppendMessage(ctx.request.body);
  if (!req.ok()) return Reject(ctx, req.status(), std::move(respond));
  Write(
      ctx,
      [this, id, req = std::move(*req)](
          LogBatch& batch, const DecideContext& dctx,
          const EventMeta& meta) -> Result<ApiResponse> {
        // The conversation's list entry, not its record: the entry decodes
        // without parsing JSON, which took a sixth of deciding an append.
        std::optional<std::string> bytes;
        if (IsConversationId(id)) {
          CONVSTORE_ASSIGN_OR_RETURN(
              bytes,
              app_.decided_read_models()->GetConversationEntry(id, &batch));
        }
        std::optional<AppendTarget> target;
        if (bytes) {
          ConversationListEntry entry;
          CONVSTORE_ASSIGN_OR_RETURN(entry,
                                     DecodeConversationListEntry(*bytes));
          target =
              AppendTarget{id, entry.created_by, entry.status, entry.revision};
        }
        Decision<Message> d;
        CONVSTORE_ASSIGN_OR_RETURN(d, DecideAppendMessage(req, target, dctx));
        std::span<const RecordedEvent> appended;
        CONVSTORE_ASSIGN_OR_RETURN(
            appended, batch.Append(std::move(d.events), meta, dctx.new_uuid));
        // The message as its read model rendered it: the same bytes GET
        // messages gives, and no second rendering on the writer.
        std::optional<std::string> rendered;
        CONVSTORE_ASSIGN_OR_RETURN(
            rendered,
            app_.decided_read_models()->AppendedMessageIn(
                batch, d.result.conversation_id, appended.back().revision));
        if (!rendered) {
          return Status::Internal("the appended message has no row");
        }
        ApiResponse r;
        r.status = 201;
        r.body = std::move(*rendered);
        return r;
      },
      std::move(respond));
}

// ---------------------------------------------------------------- admin

void App::Handlers::CreateApiKey(const RequestCtx& ctx, Respond respond) {
  auto req = ParseCreateApiKey(ctx.request.body);
  if (!req.ok()) return Reject(ctx, req.status(), std::move(respond));
  Write(
      ctx,
      [this, req = std::move(*req)](LogBatch& batch, const DecideContext& dctx,
                                    const EventMeta&) -> Result<ApiResponse> {
        std::string key = NewApiKeyText();
        ApiKeyRecord rec =
            app_.keys_->Create(batch, key, req.user_id, req.role, dctx.now_ms,
                               "key_" + dctx.new_uuid());
        ApiResponse r = JsonResponse(201, ApiKeyToJson(rec, &key));
        r.secret_fields = {"key"};
        return r;
      },
      std::move(respond));
}

void App::Handlers::ListApiKeys(const RequestCtx&, Respond respond) {
  auto keys = app_.keys_->List();
  if (!keys.ok()) return respond(ErrorResponse(keys.status()));
  json::array items;
  for (const ApiKeyRecord& k : *keys) items.push_back(ApiKeyToJson(k));
  respond(JsonResponse(200, items));
}

void App::Handlers::RevokeApiKey(const RequestCtx& ctx, const std::string& id,
                                 Respond respond) {
  auto changes = std::make_shared<uint64_t>(0);
  Write(
      ctx,
      [this, id, changes](LogBatch& batch, const DecideContext& dctx,
                          const EventMeta&) -> Result<ApiResponse> {
        CONVSTORE_RETURN_IF_ERROR(app_.keys_->Revoke(batch, id, dctx.now_ms));
        *changes = app_.keys_->changes_decided();
        ApiResponse r;
        r.status = 204;
        r.content_type.clear();
        return r;
      },
      [this, changes, respond = std::move(respond)](ApiResponse r) {
        // Committed (or refused): no remembered key may outlive it.
        app_.keys_->ForgetKeys(*changes);
        respond(std::move(r));
      });
}

// ---------------------------------------------------------------- webhooks

namespace {

// The webhook an id names, if `actor` may see it; else 404 / 403. A
// malformed id names nothing, like an unknown one.
Result<WebhookRecord> LoadVisibleWebhook(const WebhookStore& store,
                                         const std::string& id,
                                         const Actor& actor,
                                         const LogBatch* batch = nullptr) {
  std::optional<WebhookRecord> record;
  if (id.starts_with("wh_") &&
      IsCanonicalUuid(std::string_view(id).substr(3))) {
    CONVSTORE_ASSIGN_OR_RETURN(record, store.Get(id, batch));
  }
  CONVSTORE_RETURN_IF_ERROR(CheckAccess(
      record.has_value(), record ? record->user_id : "", actor, "Webhook"));
  return std::move(*record);
}

}  // namespace

void App::Handlers::CreateWebhook(const RequestCtx& ctx, Respond respond) {
  auto req = ParseCreateWebhook(ctx.request.body);
  if (!req.ok()) return Reject(ctx, req.status(), std::move(respond));
  Write(
      ctx,
      [this, req = std::move(*req)](LogBatch& batch, const DecideContext& dctx,
                                    const EventMeta&) -> Result<ApiResponse> {
        WebhookRecord rec =
            app_.webhooks_->Create(batch, req, dctx.actor.user_id, dctx.now_ms,
                                   "wh_" + dctx.new_uuid());
        std::string secret = app_.webhooks_->SigningSecret(rec.id);
        ApiResponse r = JsonResponse(201, WebhookToJson(rec, &secret));
        r.secret_fields = {"secret"};
        r.AddHeader("Location", "/v1/webhooks/" + rec.id);
        return r;
      },
      [this, respond = std::move(respond)](ApiResponse r) {
        // Committed: deliveries start (a replay names one that exists).
        const std::string* location = r.FindHeader("Location");
        if (r.status == 201 && location) {
          app_.dispatcher_->Added(location->substr(location->rfind('/') + 1));
        }
        respond(std::move(r));
      });
}

void App::Handlers::ListWebhooks(const RequestCtx& ctx, Respond respond) {
  auto records = app_.webhooks_->List(ctx.actor.user_id);
  if (!records.ok()) return respond(ErrorResponse(records.status()));
  json::array items;
  for (const WebhookRecord& w : *records) items.push_back(WebhookToJson(w));
  respond(JsonResponse(200, items));
}

void App::Handlers::GetWebhook(const RequestCtx& ctx, const std::string& id,
                               Respond respond) {
  auto record = LoadVisibleWebhook(*app_.webhooks_, id, ctx.actor);
  if (!record.ok()) return respond(ErrorResponse(record.status()));
  respond(JsonResponse(200, WebhookToJson(*record)));
}

void App::Handlers::DeleteWebhook(const RequestCtx& ctx, const std::string& id,
                                  Respond respond) {
  Write(
      ctx,
      [this, id](LogBatch& batch, const DecideContext& dctx,
                 const EventMeta&) -> Result<ApiResponse> {
        WebhookRecord record;
        CONVSTORE_ASSIGN_OR_RETURN(
            record,
            LoadVisibleWebhook(*app_.webhooks_, id, dctx.actor, &batch));
        app_.webhooks_->Delete(batch, record);
        ApiResponse r;
        r.status = 204;
        r.content_type.clear();
        return r;
      },
      [this, id, respond = std::move(respond)](ApiResponse r) {
        if (r.status == 204) app_.dispatcher_->Removed(id);
        respond(std::move(r));
      });
}

void App::Handlers::ListDeliveries(const RequestCtx& ctx, const std::string& id,
                                   Respond respond) {
  auto record = LoadVisibleWebhook(*app_.webhooks_, id, ctx.actor);
  if (!record.ok()) return respond(ErrorResponse(record.status()));
  auto limit = ParseLimit(ctx.query, 20, WebhookStore::kKeptAttempts);
  if (!limit.ok()) return respond(ErrorResponse(limit.status()));
  auto attempts = app_.webhooks_->RecentAttempts(id, *limit);
  if (!attempts.ok()) return respond(ErrorResponse(attempts.status()));
  json::array items;
  for (const DeliveryAttempt& a : *attempts) {
    items.push_back(DeliveryAttemptToJson(a));
  }
  respond(JsonResponse(200, items));
}

namespace {

// Where an event stream starts: right after Last-Event-ID when a client
// reconnects, else at the `from` parameter (when the route takes one) or 1.
Result<uint64_t> StreamStart(const RequestCtx& ctx, bool takes_from) {
  if (!ctx.request.last_event_id) {
    return takes_from ? ParseFrom(ctx.query) : Result<uint64_t>(1);
  }
  std::optional<uint64_t> last = ParsePosition(*ctx.request.last_event_id);
  if (!last || *last == UINT64_MAX) {
    return Status::InvalidArgument(
        "Last-Event-ID must be a log position (an integer >= 0).",
        "Last-Event-ID");
  }
  return *last + 1;
}

}  // namespace

void App::Handlers::StreamEvents(const RequestCtx& ctx, Respond respond) {
  auto from = StreamStart(ctx, /*takes_from=*/true);
  if (!from.ok()) return respond(ErrorResponse(from.status()));
  ApiResponse r;
  r.content_type = "text/event-stream";
  r.live = std::make_shared<EventLogFeed>(*app_.hub_, *app_.log_,
                                          app_.Background(), *from);
  respond(std::move(r));
}

void App::Handlers::StreamMessages(const RequestCtx& ctx, const std::string& id,
                                   Respond respond) {
  std::string bytes;
  ConversationListEntry entry;
  Status visible = LoadVisibleConversationEntry(*app_.read_models(), id,
                                                ctx.actor, bytes, entry);
  if (!visible.ok()) return respond(ErrorResponse(visible));
  auto from = StreamStart(ctx, /*takes_from=*/false);
  if (!from.ok()) return respond(ErrorResponse(from.status()));
  ApiResponse r;
  r.content_type = "text/event-stream";
  r.live = std::make_shared<ConversationFeed>(
      *app_.hub_, *app_.log_, [app = &app_] { return app->read_models(); },
      app_.Background(), id, *from);
  respond(std::move(r));
}

void App::Handlers::ListEvents(const RequestCtx& ctx, Respond respond) {
  auto limit = ParseLimit(ctx.query, 1000, 10000);
  if (!limit.ok()) return respond(ErrorResponse(limit.status()));
  auto from_parsed = ParseFrom(ctx.query);
  if (!from_parsed.ok()) return respond(ErrorResponse(from_parsed.status()));
  const uint64_t from = *from_parsed;
  size_t n = *limit;
  app_.PostLongRead(std::move(respond), [this, from, n]() -> ApiResponse {
    auto events = app_.log_->ReadRange(from, n);
    if (!events.ok()) return ErrorResponse(events.status());
    std::string body = "[";
    for (size_t i = 0; i < events->size(); ++i) {
      if (i) body.push_back(',');
      body += EventJson((*events)[i]);
    }
    body.push_back(']');
    ApiResponse r;
    r.body = std::move(body);
    if (events->size() == n && !events->empty() &&
        events->back().position < app_.log_->head()) {
      r.AddHeader(
          "Link",
          NextLink("/v1/admin/events",
                   {{"from", std::to_string(events->back().position + 1)},
                    {"limit", std::to_string(n)}}));
    }
    return r;
  });
}

void App::Handlers::CreateBackup(const RequestCtx& ctx, Respond respond) {
  boost::system::error_code ec;
  json::value body = json::parse(ctx.request.body, ec);
  const json::value* dir =
      ec || !body.is_object() ? nullptr : body.as_object().if_contains("dir");
  if (dir == nullptr || !dir->is_string() || dir->as_string().empty() ||
      dir->as_string()[0] != '/') {
    return respond(ErrorResponse(Status::InvalidArgument(
        "Field 'dir' must be an absolute path on the server's host.", "dir")));
  }
  std::string path(dir->as_string());
  // A checkpoint flushes and links files: disk work, so off the I/O threads.
  app_.PostLongRead(std::move(respond), [this, path]() -> ApiResponse {
    uint64_t head = app_.log_->head();
    Status s = app_.log_->CreateCheckpoint(path);
    if (!s.ok()) {
      spdlog::error("backup to {} failed: {}", path, s.ToString());
      return ErrorResponse(Status::Conflict(
          "Backup failed; 'dir' must not exist and its parent must be "
          "writable by the server.",
          "backup_failed"));
    }
    spdlog::info("backup created in {} (log head at least {})", path, head);
    return JsonResponse(201, {{"dir", path}, {"head_at_least", head}});
  });
}

ApiResponse App::Handlers::ProjectionsStatus(unsigned status) const {
  std::shared_ptr<ReadModels> rm = app_.read_models();
  auto checkpoint = rm->Checkpoint();
  if (!checkpoint.ok()) return ErrorResponse(checkpoint.status());
  uint64_t head = app_.log_->head();
  App::RebuildStatus r = app_.rebuild_status();
  auto time_or_null = [](int64_t ms) {
    return ms ? json::value(FormatRfc3339Millis(ms)) : json::value(nullptr);
  };
  json::object rebuild{
      {"state", r.state},
      {"from_generation", r.from_generation},
      {"to_generation", r.to_generation},
      {"started_at", time_or_null(r.started_at_ms)},
      {"finished_at", time_or_null(r.finished_at_ms)},
      {"events", r.events},
      {"error", r.error.empty() ? json::value(nullptr) : json::value(r.error)}};
  json::object read_model{{"name", "conversations"},
                          {"generation", rm->prefix()},
                          {"checkpoint", *checkpoint},
                          {"lag", head - std::min(head, *checkpoint)}};
  return JsonResponse(status, {{"head", head},
                               {"read_models", json::array{read_model}},
                               {"rebuild", rebuild}});
}

// ---------------------------------------------------------------- metrics

namespace {

// One sample of a metric without labels, with its HELP and TYPE lines.
void AppendMetric(std::string& out, std::string_view name,
                  std::string_view type, std::string_view help,
                  std::string_view value) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  out.append(name).append(" ").append(value).append("\n");
}

}  // namespace

ApiResponse App::Handlers::Metrics() const {
  const WriterStats& w = app_.writer_stats();
  std::string out;
  AppendMetric(out, "convstore_log_head_position", "gauge",
               "Position of the last committed event.",
               std::to_string(app_.log_->head()));
  out +=
      "# HELP convstore_append_batch_size Commands committed per synced "
      "write.\n";
  out += "# TYPE convstore_append_batch_size histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < WriterStats::kBuckets; ++i) {
    cumulative += w.batch_size_buckets[i].load();
    std::string le = i + 1 == WriterStats::kBuckets
                         ? "+Inf"
                         : std::to_string((uint64_t{1} << (i + 1)) - 1);
    out += "convstore_append_batch_size_bucket{le=\"" + le + "\"} " +
           std::to_string(cumulative) + "\n";
  }
  out += "convstore_append_batch_size_sum " +
         std::to_string(w.commands.load()) + "\n";
  out += "convstore_append_batch_size_count " +
         std::to_string(w.groups.load()) + "\n";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", w.commit_micros_total.load() / 1e6);
  AppendMetric(out, "convstore_fsync_seconds_total", "counter",
               "Time spent in synced log writes.", buf);
  const EventLog::Backlog backlog = app_.log_->BackgroundBacklog();
  AppendMetric(out, "convstore_storage_background_jobs", "gauge",
               "RocksDB flushes and compactions running now.",
               std::to_string(backlog.running_jobs));
  AppendMetric(out, "convstore_storage_pending_compaction_bytes", "gauge",
               "Bytes RocksDB's compactions estimate they have yet to "
               "rewrite.",
               std::to_string(backlog.pending_compaction_bytes));
  auto checkpoint = app_.read_models()->Checkpoint();
  if (checkpoint.ok()) {
    AppendMetric(out, "convstore_read_model_lag_events", "gauge",
                 "Events in the log not yet in the read models.",
                 std::to_string(app_.log_->head() -
                                std::min(*checkpoint, app_.log_->head())));
  }
  AppendMetric(out, "convstore_stream_subscribers", "gauge",
               "Open event streams (server-sent events).",
               std::to_string(app_.hub_->subscribers()));
  AppendMetric(out, "convstore_stream_fell_behind_total", "counter",
               "Times an event stream's queue overflowed and it read the log "
               "instead.",
               std::to_string(app_.hub_->fell_behind()));
  const WebhookDispatcher::Stats& hooks = app_.dispatcher_->stats();
  AppendMetric(out, "convstore_webhooks", "gauge",
               "Webhook subscriptions being delivered.",
               std::to_string(hooks.webhooks.load()));
  AppendMetric(out, "convstore_webhook_pending", "gauge",
               "Webhook deliveries read ahead, in flight or waiting to be "
               "retried.",
               std::to_string(hooks.pending.load()));
  AppendMetric(out, "convstore_webhook_deliveries_total", "counter",
               "Webhook deliveries a receiver accepted (2xx).",
               std::to_string(hooks.delivered.load()));
  AppendMetric(out, "convstore_webhook_failed_attempts_total", "counter",
               "Webhook delivery attempts that failed (non-2xx, error or "
               "timeout).",
               std::to_string(hooks.failed_attempts.load()));
  AppendMetric(out, "convstore_webhook_gave_up_total", "counter",
               "Webhook deliveries given up after the last retry.",
               std::to_string(hooks.gave_up.load()));
  AppendMetric(
      out, "convstore_erasure_purge_pending", "gauge",
      "1 while erased data may still be in the store's files (the "
      "purge that flushes and compacts them has not run yet: within a "
      "second of a requested erasure, 10 minutes at most after "
      "retention's).",
      app_.log_->erasure_head() > app_.log_->purged_erasure_head() ? "1" : "0");
  AppendMetric(out, "convstore_erasure_purges_total", "counter",
               "Purges of erased data from the store's files.",
               std::to_string(app_.purger_->purges()));
  AppendMetric(out, "convstore_erasure_purge_failures_total", "counter",
               "Purges of erased data that failed (each is tried again).",
               std::to_string(app_.purger_->failures()));
  const RetentionSweeper* retention = app_.retention_.get();
  AppendMetric(out, "convstore_retention_seconds", "gauge",
               "Age of last change after which completed and archived "
               "conversations are erased (serve --retention-days); 0: kept "
               "for ever.",
               std::to_string(app_.config_.retention_days * 86400));
  AppendMetric(out, "convstore_retention_erased_total", "counter",
               "Conversations erased by the retention policy.",
               std::to_string(retention ? retention->erased() : 0));
  AppendMetric(out, "convstore_retention_failures_total", "counter",
               "Retention erasures that failed (each is tried again at the "
               "next sweep).",
               std::to_string(retention ? retention->failures() : 0));
  out += app_.request_metrics_.Render();
  ApiResponse r;
  r.status = 200;
  r.content_type = "text/plain; version=0.0.4";
  r.body = std::move(out);
  return r;
}

}  // namespace convstore::http
