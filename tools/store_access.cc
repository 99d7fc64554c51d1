#include "tools/store_access.h"

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "projections/rebuild.h"

namespace convstore::tools {

ScratchDir::ScratchDir(const std::string& tag) {
  std::string tmpl = (std::filesystem::temp_directory_path() /
                      ("convstore-" + tag + "-XXXXXX"))
                         .string();
  if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

Result<std::unique_ptr<EventLog>> OpenExclusive(const std::string& data_dir) {
  if (!std::filesystem::is_directory(data_dir)) {
    return Status::NotFound("no data directory at " + data_dir);
  }
  EventLogOptions options;
  options.create_if_missing = false;
  options.tune_column_family = ReadModels::TuneColumnFamily;
  auto log = EventLog::Open(data_dir, options);
  if (!log.ok() && log.status().kind() == ErrorKind::kUnavailable) {
    return Status::Unavailable(
        "the data directory " + data_dir +
        " is in use by a running server; stop it first (or use the admin "
        "API while it runs)");
  }
  return log;
}

Result<std::unique_ptr<EventLog>> OpenSecondary(const std::string& data_dir,
                                                const ScratchDir& scratch) {
  if (!std::filesystem::is_directory(data_dir)) {
    return Status::NotFound("no data directory at " + data_dir);
  }
  if (scratch.path().empty()) {
    return Status::IOError("cannot create a scratch directory");
  }
  EventLogOptions options;
  options.secondary_path = scratch.path();
  constexpr int kAttempts = 20;
  for (int attempt = 1;; ++attempt) {
    auto log = EventLog::Open(data_dir, options);
    bool raced = false;
    if (!log.ok()) {
      // "Column family not found": dropped after we listed it.
      raced = log.status().message().find("olumn family") != std::string::npos;
    } else {
      auto prefix = ActiveReadModelsPrefix(**log);
      if (!prefix.ok()) return prefix.status();
      for (const std::string& name : ReadModels::ColumnFamilies(*prefix)) {
        // Created after we listed the column families.
        if ((*log)->cf(name) == nullptr) raced = true;
      }
    }
    if (!raced || attempt == kAttempts) return log;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace convstore::tools
