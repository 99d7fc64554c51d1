// How the tools open a data directory: exclusively (offline commands, which
// fail clearly while a server holds the lock) or as a secondary instance
// beside a running server. Errors are printed to stderr by the caller.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "eventlog/event_log.h"

namespace convstore::tools {

// A scratch directory removed on destruction (secondary instance files,
// verify's rebuild).
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag);
  ~ScratchDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Opens `data_dir` read-write with every column family. A missing directory
// or a held lock gives a message naming the cause.
Result<std::unique_ptr<EventLog>> OpenExclusive(const std::string& data_dir);
// Opens `data_dir` as a secondary instance using `scratch` for its files,
// such that the active read models' column families are open too. A server
// may create and drop column families (an online rebuild) between our
// listing them and opening them; that is retried, bounded.
Result<std::unique_ptr<EventLog>> OpenSecondary(const std::string& data_dir,
                                                const ScratchDir& scratch);

}  // namespace convstore::tools
