// Test support: runs the real `convstore` binary as a child process.
//  - RunConvstore: one command to completion, stdout and stderr captured,
//    killed when it overruns its time limit.
//  - ProcessHandle: a command in the background (e.g. `events export
//    --follow`) whose output can be polled and which can be signalled.
//  - ServerProcess: `convstore serve --listen 127.0.0.1:0 --data-dir D`,
//    started and waited for (bounded) until it logs its listening line.
// Children get the test's environment minus every CONVSTORE_* and LIVEKIT_*
// variable, plus what the caller passes. Output goes to temp files (no pipe
// can fill up and stall a child). No child outlives its owner: destructors
// SIGKILL whatever still runs.
// A child is also killed when the thread that started it ends
// (PR_SET_PDEATHSIG), so even a crashing test leaves nothing behind: start
// ProcessHandle / ServerProcess on a thread that outlives them (the test's
// own). Thread-safety: RunConvstore may be called from any thread; one
// ProcessHandle / ServerProcess per owner.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/test_server.h"

namespace convstore::testing {

// The convstore binary the helpers run. A test target built with the
// CONVSTORE_BINARY compile definition registers it automatically (see the
// bottom of this header); else it is taken from the CONVSTORE_BINARY
// environment variable.
void SetConvstoreBinary(std::string path);
std::string ConvstoreBinary();

struct CommandResult {
  int exit_code = -1;  // the exit status; 128 + signal if killed by one
  std::string out, err;
  bool timed_out = false;
};

// Runs `convstore args...` to completion (killed after `timeout_ms`).
CommandResult RunConvstore(std::vector<std::string> args,
                           std::map<std::string, std::string> env = {},
                           int timeout_ms = 60000);

// For assertion messages: the command's exit code, stdout and stderr.
std::string Describe(const CommandResult& r);

// Polls `done` every few milliseconds until it returns true or `timeout_ms`
// passes; returns its last answer. The only kind of waiting tests do.
bool WaitUntil(const std::function<bool()>& done, int timeout_ms);

// Whole content of a file ("" if it cannot be read).
std::string ReadFileText(const std::string& path);
// Names of the files under `dir` (recursively) whose bytes contain `needle`.
std::vector<std::string> FilesContaining(const std::string& dir,
                                         const std::string& needle);

class ProcessHandle {
 public:
  // Starts `convstore args...` in the background; throws on failure.
  explicit ProcessHandle(std::vector<std::string> args,
                         std::map<std::string, std::string> env = {});
  ~ProcessHandle();  // SIGKILLs the child if it still runs
  ProcessHandle(const ProcessHandle&) = delete;
  ProcessHandle& operator=(const ProcessHandle&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // Sends `sig` to the child (no-op once it has been reaped).
  void Signal(int sig);
  // Waits up to `timeout_ms` for the child to exit; its exit code (128 +
  // signal when killed by one), or nullopt if it still runs.
  std::optional<int> Wait(int timeout_ms);
  // SIGKILL and reap; the exit code.
  int Kill();

  // What the child has written so far.
  std::string out() const;
  std::string err() const;

 private:
  bool Reap(bool block);

  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string out_path_, err_path_;
};

class ServerProcess {
 public:
  // Starts `convstore serve` on `data_dir` with CONVSTORE_ADMIN_KEY =
  // `admin_key` (used when the dir has no keys yet) and waits up to 20 s for
  // its `listening on http://127.0.0.1:PORT` line; throws std::runtime_error
  // (with the server's output) if it exits or does not get there.
  explicit ServerProcess(std::string data_dir,
                         std::string admin_key = TestServer::kAdminKey,
                         std::map<std::string, std::string> env = {});
  ~ServerProcess();  // SIGKILLs the server if it still runs

  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& data_dir() const { return data_dir_; }
  HttpClient Client() const { return HttpClient(port_); }
  bool running() { return process_->running(); }
  std::string output() const { return process_->out() + process_->err(); }

  // SIGTERM, then waits up to `timeout_ms`; the exit code, or -1 if it did
  // not exit in time (it is then killed).
  int Stop(int timeout_ms = 20000);

 private:
  std::string data_dir_;
  std::unique_ptr<ProcessHandle> process_;
  uint16_t port_ = 0;
};

}  // namespace convstore::testing

#ifdef CONVSTORE_BINARY
namespace convstore::testing::internal {
// Registers the binary named by the target's compile definition before any
// test runs.
inline const bool kConvstoreBinaryRegistered =
    (SetConvstoreBinary(CONVSTORE_BINARY), true);
}  // namespace convstore::testing::internal
#endif
