// convstore backup create | restore.
// create: a consistent RocksDB checkpoint of the whole store (log, read
// models, keys), directly when no server runs, else by the server itself.
// restore: copies a backup into a new data dir (never over an existing one),
// re-applies the erasures of a live data dir if asked (--erasures-from),
// then checks that the log is gapless and the read models match it.
#include <boost/json.hpp>
#include <filesystem>
#include <iostream>

#include "http/api_keys.h"  // NewUuid, NowMillis
#include "projections/rebuild.h"
#include "tools/admin_api.h"
#include "tools/commands.h"
#include "tools/store_access.h"

namespace convstore::tools {
namespace {

namespace fs = std::filesystem;

bool IsEmptyOrMissing(const fs::path& p) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return true;
  return fs::is_directory(p, ec) && fs::is_empty(p, ec);
}

// Checks positions 1..head are all present and decode, in order.
Status CheckGapless(const EventLog& log) {
  uint64_t expected = 1;
  while (expected <= log.head()) {
    std::vector<RecordedEvent> events;
    CONVSTORE_ASSIGN_OR_RETURN(events, log.ReadRange(expected, 4096));
    if (events.empty()) break;
    for (const RecordedEvent& e : events) {
      if (e.position != expected) {
        return Status::Corruption("the log has a gap at position " +
                                  std::to_string(expected));
      }
      ++expected;
    }
  }
  if (expected != log.head() + 1) {
    return Status::Corruption("the log ends before its head");
  }
  return Status();
}

}  // namespace

int RunBackupCreate(const BackupFlags& f) {
  std::error_code ec;
  fs::path dir = fs::absolute(f.dir, ec);
  if (ec || fs::exists(dir)) {
    std::cerr << "error: the backup directory " << f.dir
              << " must not exist yet\n";
    return 1;
  }
  auto log = OpenExclusive(f.where.data_dir);
  if (log.ok()) {
    uint64_t head = (*log)->head();
    Status s = (*log)->CreateCheckpoint(dir.string());
    if (!s.ok()) {
      std::cerr << "error: backup failed: " << s.message() << "\n";
      return 1;
    }
    std::cout << "backup of " << head << " events in " << dir.string() << "\n";
    return 0;
  }
  if (log.status().kind() != ErrorKind::kUnavailable) {
    std::cerr << "error: " << log.status().message() << "\n";
    return 1;
  }
  auto api = AdminApi::Connect(f.where.server, f.where.admin_key);
  if (!api.ok()) {
    std::cerr << "error: " << api.status().message() << "\n";
    return 1;
  }
  boost::json::object body{{"dir", dir.string()}};
  auto r = api->Call("POST", "/v1/admin/backups", boost::json::serialize(body));
  if (!r.ok()) {
    std::cerr << "error: backup failed: " << r.status().message() << "\n";
    return 1;
  }
  std::cout << "backup (online, by the server) in " << dir.string() << "\n";
  return 0;
}

// The erasure events (ConversationErased, AgentErased) of the store at
// `data_dir`, opened as a secondary so that a server may run on it.
Result<std::vector<RecordedEvent>> ErasuresIn(const std::string& data_dir) {
  ScratchDir scratch("restore-erasures");
  std::unique_ptr<EventLog> log;
  CONVSTORE_ASSIGN_OR_RETURN(log, OpenSecondary(data_dir, scratch));
  std::vector<RecordedEvent> erasures;
  std::vector<RecordedEvent> chunk;
  for (uint64_t from = 1; from <= log->head();) {
    size_t n = 0;
    CONVSTORE_ASSIGN_OR_RETURN(n, log->ReadRangeInto(from, 10000, chunk));
    if (n == 0) break;
    for (size_t i = 0; i < n; ++i) {
      if (std::holds_alternative<ConversationErased>(chunk[i].payload) ||
          std::holds_alternative<AgentErased>(chunk[i].payload)) {
        erasures.push_back(chunk[i]);
      }
    }
    from = chunk[n - 1].position + 1;
  }
  return erasures;
}

// Appends to `log` (read models attached) an erasure for each of
// `erasures` whose subject it has and has not erased yet, then purges the
// erased bytes from its files. Returns how many it erased.
Result<size_t> ReapplyErasures(EventLog& log,
                               const std::vector<RecordedEvent>& erasures) {
  std::shared_ptr<ReadModels> read_models;
  CONVSTORE_ASSIGN_OR_RETURN(read_models, OpenActiveReadModels(log));
  log.AddSink(read_models.get());
  CONVSTORE_RETURN_IF_ERROR(read_models->CatchUp());
  size_t erased = 0;
  for (const RecordedEvent& e : erasures) {
    std::optional<uint64_t> revision;
    CONVSTORE_ASSIGN_OR_RETURN(revision, log.StreamRevision(e.stream));
    if (!revision) continue;  // created after the backup: not in it
    LogBatch batch(&log);
    auto appended =
        batch.Append({{e.stream, static_cast<int64_t>(*revision), e.payload}},
                     EventMeta{e.actor, "", e.recorded_at_ms},
                     [] { return http::NewUuid(http::NowMillis()); });
    if (appended.status().kind() == ErrorKind::kNotFound) continue;  // done
    CONVSTORE_RETURN_IF_ERROR(appended.status());
    CONVSTORE_RETURN_IF_ERROR(batch.Commit());
    ++erased;
  }
  if (erased > 0) CONVSTORE_RETURN_IF_ERROR(log.PurgeErased());
  return erased;
}

int RunBackupRestore(const BackupFlags& f) {
  fs::path from(f.dir);
  fs::path to(f.where.data_dir);
  std::error_code ec;
  if (!fs::exists(from / "CURRENT", ec)) {
    std::cerr << "error: " << f.dir << " is not a convstore backup\n";
    return 1;
  }
  if (!IsEmptyOrMissing(to)) {
    std::cerr << "error: refusing to restore over " << to.string()
              << ": it exists and is not empty\n";
    return 1;
  }
  // Copy beside the target, then rename: an interrupted restore leaves no
  // half-restored data dir behind.
  fs::path staging = to;
  staging += ".restoring";
  fs::remove_all(staging, ec);
  fs::copy(from, staging, fs::copy_options::recursive, ec);
  if (ec) {
    std::cerr << "error: copying the backup failed: " << ec.message() << "\n";
    fs::remove_all(staging, ec);
    return 1;
  }
  fs::remove(to, ec);  // an empty dir, if any
  fs::rename(staging, to, ec);
  if (ec) {
    std::cerr << "error: cannot move the restored store into place: "
              << ec.message() << "\n";
    return 1;
  }
  auto log = OpenExclusive(to.string());
  if (!log.ok()) {
    std::cerr << "error: the restored store does not open: "
              << log.status().message() << "\n";
    return 1;
  }
  std::optional<size_t> reapplied;
  if (!f.erasures_from.empty()) {
    auto erasures = ErasuresIn(f.erasures_from);
    if (!erasures.ok()) {
      std::cerr << "error: cannot read the erasures of " << f.erasures_from
                << ": " << erasures.status().message() << "\n";
      return 1;
    }
    auto n = ReapplyErasures(**log, *erasures);
    if (!n.ok()) {
      std::cerr << "error: re-applying erasures to " << to.string()
                << " failed (run the restore again into a new dir): "
                << n.status().message() << "\n";
      return 1;
    }
    reapplied = *n;
  }
  Status gapless = CheckGapless(**log);
  if (!gapless.ok()) {
    std::cerr << "error: " << gapless.message() << "\n";
    return 1;
  }
  ScratchDir scratch("restore-verify");
  auto report = VerifyReadModels(**log, scratch.path() + "/store", 5);
  if (!report.ok() || !report->differences.empty()) {
    std::cerr << "error: the restored read models do not match the log; run "
                 "`convstore projections rebuild --data-dir "
              << to.string() << "`\n";
    return 1;
  }
  std::cout << "restored " << (*log)->head() << " events into "
            << to.string() << "; log gapless, read models verified\n";
  if (reapplied) {
    std::cout << "re-applied " << *reapplied << " erasures of "
              << f.erasures_from << " (and purged them from the files)\n";
  }
  return 0;
}

}  // namespace convstore::tools
