// Generations of read models, and the operators' rebuild and verify.
// The read models in use are one generation of column families named by a
// prefix ("rm_", "rm2_", ...) recorded in the log's default column family. A
// rebuild builds the next generation beside the active one from the log and
// switches the pointer with one synced write only when it is complete, so an
// interrupted rebuild leaves the old read models active and intact.
// Not thread-safe: callers own the EventLog exclusively (offline tools, or
// App::Open before serving).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "eventlog/event_log.h"
#include "projections/read_models.h"

namespace convstore {

Result<std::string> ActiveReadModelsPrefix(const EventLog& log);
// The prefix of the generation after `prefix`.
std::string NextGenerationPrefix(std::string_view prefix);
// Creates (or drops) one generation's column families.
Status CreateGeneration(EventLog& log, std::string_view prefix);
Status DropGeneration(EventLog& log, std::string_view prefix);
// Records `prefix` as the active generation, inside `batch`.
void SetActiveReadModelsPrefix(LogBatch& batch, std::string_view prefix);

// The active generation, its column families created if missing.
Result<std::shared_ptr<ReadModels>> OpenActiveReadModels(EventLog& log);

// Drops read-model column families of any generation but the active one
// (leftovers of an interrupted rebuild).
Status DropStaleGenerations(EventLog& log);

struct RebuildReport {
  uint64_t events = 0;  // log positions replayed
  double seconds = 0;
  std::string old_prefix;
  std::string new_prefix;
};
// Offline rebuild of every read model from the log. (The server's online
// rebuild is http::App's, built from the same pieces.)
Result<RebuildReport> RebuildReadModels(EventLog& log);

struct VerifyReport {
  uint64_t checkpoint = 0;  // the live read models' position, rebuilt up to
  uint64_t head = 0;
  uint64_t keys_compared = 0;
  std::vector<std::string> differences;  // first ones, human-readable
};
// Rebuilds the read models into a scratch store at `scratch_dir` (created,
// must not exist) up to the live checkpoint and compares them with the live
// ones key by key. Works on a secondary instance beside a running server.
Result<VerifyReport> VerifyReadModels(EventLog& log,
                                      const std::string& scratch_dir,
                                      size_t max_differences);

}  // namespace convstore
