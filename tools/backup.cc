// convstore backup create | restore.
// create: a consistent RocksDB checkpoint of the whole store (log, read
// models, keys), directly when no server runs, else by the server itself.
// restore: copies a backup into a new data dir (never over an existing one),
// then checks that the log is gapless and the read models match it.
#include <boost/json.hpp>
#include <filesystem>
#include <iostream>

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
  return 0;
}

}  // namespace convstore::tools
