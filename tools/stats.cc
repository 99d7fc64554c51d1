// convstore stats: what is in a data dir, read beside a running server.
#include <boost/json.hpp>
#include <filesystem>
#include <iostream>

#include "projections/rebuild.h"
#include "tools/commands.h"
#include "tools/store_access.h"

namespace convstore::tools {

int RunStats(const StatsFlags& f) {
  ScratchDir scratch("stats");
  auto log = OpenSecondary(f.data_dir, scratch);
  if (!log.ok()) {
    std::cerr << "error: cannot open " << f.data_dir << ": "
              << log.status().message() << "\n";
    return 1;
  }
  auto prefix = ActiveReadModelsPrefix(**log);
  if (!prefix.ok()) {
    std::cerr << "error: " << prefix.status().message() << "\n";
    return 1;
  }
  for (const std::string& name : ReadModels::ColumnFamilies(*prefix)) {
    if ((*log)->cf(name) == nullptr) {
      std::cerr << "error: the read models are missing (" << name
                << "); run `convstore projections rebuild`\n";
      return 1;
    }
  }
  ReadModels read_models(log->get(), *prefix);
  auto counts = read_models.Count();
  auto checkpoint = read_models.Checkpoint();
  auto streams = (*log)->CountStreams();
  if (!counts.ok() || !checkpoint.ok() || !streams.ok()) {
    std::cerr << "error: reading the store failed\n";
    return 1;
  }
  uint64_t bytes = 0;
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(f.data_dir, ec)) {
    if (entry.is_regular_file(ec)) bytes += entry.file_size(ec);
  }
  const uint64_t head = (*log)->head();
  boost::json::object o{{"events", head},
                        {"head_position", head},
                        {"streams", *streams},
                        {"agents", counts->agents},
                        {"conversations", counts->conversations},
                        {"messages", counts->messages},
                        {"size_on_disk_bytes", bytes},
                        {"read_models_checkpoint", *checkpoint},
                        {"read_models_lag", head - std::min(head, *checkpoint)},
                        {"read_models_generation", *prefix}};
  if (f.json) {
    std::cout << boost::json::serialize(o) << "\n";
    return 0;
  }
  for (const auto& kv : o) {
    std::cout << kv.key() << ": "
              << (kv.value().is_string()
                      ? std::string(kv.value().as_string())
                      : boost::json::serialize(kv.value()))
              << "\n";
  }
  return 0;
}

}  // namespace convstore::tools
