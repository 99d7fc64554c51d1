#include "http/retention.h"

#include <spdlog/spdlog.h>

#include <future>
#include <vector>

#include "core/decide.h"
#include "http/api_keys.h"  // NowMillis, NewUuid

namespace convstore::http {
namespace {

constexpr int64_t kMsPerDay = 24LL * 3600 * 1000;
// Conversations looked up per sweep step.
constexpr size_t kPerStep = 64;

}  // namespace

RetentionSweeper::RetentionSweeper(
    GroupCommitWriter* writer,
    std::function<std::shared_ptr<ReadModels>()> read_models, Options options)
    : writer_(writer),
      read_models_(std::move(read_models)),
      options_(std::move(options)) {
  if (!options_.now_ms) options_.now_ms = [] { return NowMillis(); };
  if (options_.max_per_second < 1) options_.max_per_second = 1;
  thread_ = std::thread([this] { Run(); });
}

RetentionSweeper::~RetentionSweeper() { Stop(); }

void RetentionSweeper::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool RetentionSweeper::SleepFor(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !stop_cv_.wait_for(lock, d, [this] { return stop_; });
}

void RetentionSweeper::Run() {
  const auto gap = std::chrono::milliseconds(1000 / options_.max_per_second);
  while (SleepFor(options_.interval)) {
    // One pass over what expired; a failure ends the pass (tried again at
    // the next one), so a refusing log is not hammered.
    for (bool more = true; more;) {
      const int64_t cutoff =
          options_.now_ms() - options_.retention_days * kMsPerDay;
      auto ids = read_models_()->EndedBefore(cutoff, kPerStep);
      if (!ids.ok()) {
        ++failures_;
        spdlog::error("retention: {}", ids.status().ToString());
        break;
      }
      more = ids->size() == kPerStep;
      for (const std::string& id : *ids) {
        if (!EraseOne(id, cutoff)) {
          more = false;
          break;
        }
        if (!SleepFor(gap)) return;
      }
    }
  }
}

bool RetentionSweeper::EraseOne(const std::string& id, int64_t cutoff_ms) {
  std::promise<Status> committed;
  std::future<Status> result = committed.get_future();
  auto erased = std::make_shared<bool>(false);
  writer_->Submit(
      [this, id, cutoff_ms, erased](LogBatch& batch) -> Status {
        std::shared_ptr<ReadModels> rm = read_models_();
        std::optional<Versioned<Conversation>> current;
        CONVSTORE_ASSIGN_OR_RETURN(current, rm->GetConversation(id, &batch));
        // Changed (or erased) since the index was read: not expired now.
        if (!current || current->value.status == ConversationStatus::kActive ||
            current->value.updated_at_ms >= cutoff_ms) {
          return Status();
        }
        const int64_t now = NowMillis();
        DecideContext ctx{Actor{kRetentionActor, true}, now,
                          [now] { return NewUuid(now); }};
        Decision<Conversation> d;
        CONVSTORE_ASSIGN_OR_RETURN(
            d, DecideEraseConversation(current, std::nullopt,
                                       ErasureReason::kRetention, ctx));
        CONVSTORE_RETURN_IF_ERROR(
            batch
                .Append(d.events, EventMeta{kRetentionActor, "", now},
                        ctx.new_uuid)
                .status());
        *erased = true;
        return Status();
      },
      [&committed](const Status& s) { committed.set_value(s); });
  Status s = result.get();
  if (!s.ok()) {
    ++failures_;
    spdlog::error("retention: erasing conversation {}: {}", id, s.ToString());
    return false;
  }
  if (*erased) ++erased_;
  return true;
}

}  // namespace convstore::http
