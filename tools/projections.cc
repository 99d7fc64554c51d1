// convstore projections rebuild | verify.
#include <iostream>

#include "projections/rebuild.h"
#include "tools/commands.h"
#include "tools/store_access.h"

namespace convstore::tools {

int RunProjectionsRebuild(const ProjectionsFlags& f) {
  auto log = OpenExclusive(f.data_dir);
  if (!log.ok()) {
    std::cerr << "error: " << log.status().message() << "\n";
    return 1;
  }
  auto report = RebuildReadModels(**log);
  if (!report.ok()) {
    std::cerr << "error: rebuild failed, the previous read models stay in "
                 "use: "
              << report.status().message() << "\n";
    return 1;
  }
  std::cout << "rebuilt the read models from " << report->events
            << " events in " << report->seconds << " s ("
            << (report->seconds > 0 ? report->events / report->seconds : 0)
            << " events/s); generation " << report->old_prefix << " -> "
            << report->new_prefix << "\n";
  return 0;
}

int RunProjectionsVerify(const ProjectionsFlags& f) {
  ScratchDir secondary("verify-secondary");
  ScratchDir scratch("verify-rebuild");
  auto log = OpenSecondary(f.data_dir, secondary);
  if (!log.ok()) {
    std::cerr << "error: cannot open " << f.data_dir << ": "
              << log.status().message() << "\n";
    return 1;
  }
  auto report = VerifyReadModels(**log, scratch.path() + "/store",
                                 f.max_differences);
  if (!report.ok()) {
    std::cerr << "error: " << report.status().message() << "\n";
    return 1;
  }
  if (report->checkpoint != report->head) {
    std::cout << "note: the read models are at position "
              << report->checkpoint << ", the log head is " << report->head
              << " (the server catches up on start)\n";
  }
  if (report->differences.empty()) {
    std::cout << "ok: read models match a rebuild from the log ("
              << report->keys_compared << " keys compared at position "
              << report->checkpoint << ")\n";
    return 0;
  }
  std::cout << "MISMATCH: read models differ from a rebuild from the log at "
               "position "
            << report->checkpoint << ":\n";
  for (const std::string& d : report->differences) std::cout << "  " << d << "\n";
  std::cout << "run `convstore projections rebuild` (server stopped) to "
               "repair them\n";
  return 1;
}

}  // namespace convstore::tools
