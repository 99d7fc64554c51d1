#include "tests/support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace convstore::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::mutex& BinaryMutex() {
  static std::mutex mu;
  return mu;
}
std::string& BinaryPath() {
  static std::string path;
  return path;
}

// A fresh, empty temp file's path (the file exists).
std::string NewTempFile(const char* tag) {
  std::string tmpl = (std::filesystem::temp_directory_path() /
                      (std::string("convstore-proc-") + tag + "-XXXXXX"))
                         .string();
  int fd = mkstemp(tmpl.data());
  if (fd < 0) {
    throw std::runtime_error(std::string("mkstemp: ") + std::strerror(errno));
  }
  close(fd);
  return tmpl;
}

bool Dropped(std::string_view entry) {
  return entry.rfind("CONVSTORE_", 0) == 0 || entry.rfind("LIVEKIT_", 0) == 0;
}

std::vector<std::string> ChildEnvironment(
    const std::map<std::string, std::string>& env) {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::string name(entry.substr(0, entry.find('=')));
    if (Dropped(entry) || env.count(name)) continue;
    out.emplace_back(entry);
  }
  for (const auto& [name, value] : env) out.push_back(name + "=" + value);
  return out;
}

int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// fork + execve of the binary with stdin from /dev/null and stdout/stderr
// into the given files. The child dies with the thread that started it
// (PR_SET_PDEATHSIG), so a crashing test leaves no process behind either.
pid_t Spawn(const std::vector<std::string>& args,
            const std::map<std::string, std::string>& env,
            const std::string& out_path, const std::string& err_path) {
  const std::string binary = ConvstoreBinary();
  if (binary.empty()) {
    throw std::runtime_error(
        "the convstore binary is unknown (CONVSTORE_BINARY)");
  }
  // Everything the child needs is prepared here: after fork it only makes
  // async-signal-safe calls.
  std::vector<std::string> argv_s;
  argv_s.push_back(binary);
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s = ChildEnvironment(env);
  std::vector<char*> envp;
  for (std::string& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  int in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out_fd = open(out_path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  int err_fd = open(err_path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (in_fd < 0 || out_fd < 0 || err_fd < 0) {
    int saved = errno;
    for (int fd : {in_fd, out_fd, err_fd}) {
      if (fd >= 0) close(fd);
    }
    throw std::runtime_error(std::string("open: ") + std::strerror(saved));
  }
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    setpgid(0, 0);  // a terminal's Ctrl-C reaches the test, not the child
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl;
    std::memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGINT, SIGTERM, SIGPIPE, SIGHUP}) {
      sigaction(sig, &dfl, nullptr);
    }
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) {
      _exit(127);
    }
    close_range(3, ~0U, 0);
    execve(argv[0], argv.data(), envp.data());
    const char msg[] = "exec of the convstore binary failed\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(127);
  }
  int saved = errno;
  close(in_fd);
  close(out_fd);
  close(err_fd);
  if (pid < 0) {
    throw std::runtime_error(std::string("fork: ") + std::strerror(saved));
  }
  return pid;
}

void Sleep(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }

}  // namespace

void SetConvstoreBinary(std::string path) {
  std::lock_guard<std::mutex> lock(BinaryMutex());
  BinaryPath() = std::move(path);
}

std::string ConvstoreBinary() {
  {
    std::lock_guard<std::mutex> lock(BinaryMutex());
    if (!BinaryPath().empty()) return BinaryPath();
  }
  const char* env = std::getenv("CONVSTORE_BINARY");
  return env ? env : "";
}

std::string ReadFileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> FilesContaining(const std::string& dir,
                                         const std::string& needle) {
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    if (ReadFileText(entry.path().string()).find(needle) != std::string::npos) {
      found.push_back(entry.path().filename().string());
    }
  }
  return found;
}

bool WaitUntil(const std::function<bool()>& done, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  auto pause = std::chrono::milliseconds(1);
  while (true) {
    if (done()) return true;
    if (Clock::now() >= deadline) return done();
    Sleep(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(25));
  }
}

std::string Describe(const CommandResult& r) {
  std::string s = "exit code " + std::to_string(r.exit_code);
  if (r.timed_out) s += " (timed out, killed)";
  s += "\n--- stdout ---\n" + r.out.substr(0, 4000);
  if (r.out.size() > 4000) s += "...";
  s += "\n--- stderr ---\n" + r.err.substr(0, 4000);
  if (r.err.size() > 4000) s += "...";
  return s;
}

CommandResult RunConvstore(std::vector<std::string> args,
                           std::map<std::string, std::string> env,
                           int timeout_ms) {
  ProcessHandle p(std::move(args), std::move(env));
  CommandResult r;
  std::optional<int> code = p.Wait(timeout_ms);
  if (!code) {
    r.timed_out = true;
    code = p.Kill();
  }
  r.exit_code = *code;
  r.out = p.out();
  r.err = p.err();
  return r;
}

// ------------------------------------------------------------ ProcessHandle

ProcessHandle::ProcessHandle(std::vector<std::string> args,
                             std::map<std::string, std::string> env) {
  out_path_ = NewTempFile("out");
  err_path_ = NewTempFile("err");
  try {
    pid_ = Spawn(args, env, out_path_, err_path_);
  } catch (...) {
    std::filesystem::remove(out_path_);
    std::filesystem::remove(err_path_);
    throw;
  }
}

ProcessHandle::~ProcessHandle() {
  if (!exit_code_) Kill();
  std::error_code ec;
  std::filesystem::remove(out_path_, ec);
  std::filesystem::remove(err_path_, ec);
}

bool ProcessHandle::Reap(bool block) {
  if (exit_code_) return true;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    exit_code_ = ExitCodeOf(status);
    return true;
  }
  if (r < 0) {  // not our child any more (should not happen)
    exit_code_ = -1;
    return true;
  }
  return false;
}

bool ProcessHandle::running() { return !Reap(false); }

void ProcessHandle::Signal(int sig) {
  if (!Reap(false)) kill(pid_, sig);
}

std::optional<int> ProcessHandle::Wait(int timeout_ms) {
  WaitUntil([this] { return Reap(false); }, timeout_ms);
  return exit_code_;
}

int ProcessHandle::Kill() {
  if (!Reap(false)) {
    kill(pid_, SIGKILL);
    Reap(true);
  }
  return *exit_code_;
}

std::string ProcessHandle::out() const { return ReadFileText(out_path_); }
std::string ProcessHandle::err() const { return ReadFileText(err_path_); }

// ------------------------------------------------------------ ServerProcess

ServerProcess::ServerProcess(std::string data_dir, std::string admin_key,
                             std::map<std::string, std::string> env)
    : data_dir_(std::move(data_dir)) {
  env["CONVSTORE_ADMIN_KEY"] = admin_key;
  process_ = std::make_unique<ProcessHandle>(
      std::vector<std::string>{"serve", "--listen", "127.0.0.1:0",
                               "--data-dir", data_dir_},
      env);
  static const std::regex kListening(R"(listening on http://127\.0\.0\.1:(\d+))");
  std::smatch m;
  std::string text;
  bool up = WaitUntil(
      [&] {
        text = output();
        if (std::regex_search(text, m, kListening)) return true;
        return !process_->running();
      },
      20000);
  if (up && std::regex_search(text, m, kListening)) {
    port_ = static_cast<uint16_t>(std::stoi(m[1].str()));
    return;
  }
  std::optional<int> code = process_->Wait(0);
  process_->Kill();
  throw std::runtime_error(
      "convstore serve on " + data_dir_ + " did not start (" +
      (code ? "exit code " + std::to_string(*code) : std::string("timed out")) +
      "):\n" + output());
}

ServerProcess::~ServerProcess() = default;

int ServerProcess::Stop(int timeout_ms) {
  process_->Signal(SIGTERM);
  std::optional<int> code = process_->Wait(timeout_ms);
  if (!code) {
    process_->Kill();
    return -1;
  }
  return *code;
}

}  // namespace convstore::testing
