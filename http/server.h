// Server: the Boost.Beast HTTP/1.1 front of an App. One io_context per
// thread, one Session object per connection, a body limit and a timeout on
// every read, one request in flight per connection (bounded pipelining).
// Shutdown() is graceful: stop accepting, commit and answer every write
// already taken, then stop. Start/Shutdown are called from one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "http/app.h"

namespace convstore::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0 picks a free port
  unsigned threads = 2;
  // A whole request (headers and body) must arrive within read_timeout, and
  // a kept-alive connection is closed after read_timeout idle.
  std::chrono::seconds read_timeout{30};
  std::chrono::seconds write_timeout{30};
  size_t max_body_bytes = 1 << 20;
  size_t max_header_bytes = 16 * 1024;
  size_t max_connections = 10000;  // more are accepted and closed at once
  // An idle event stream sends a comment this often (keeps proxies from
  // closing it, and finds clients that are gone).
  std::chrono::milliseconds heartbeat_interval{15000};
};

class Server {
 public:
  Server(App& app, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds, listens and starts the threads; returns the bound port.
  Result<uint16_t> Start();
  // Graceful stop; waits at most `drain` for in-flight responses.
  void Shutdown(std::chrono::milliseconds drain = std::chrono::seconds(10));

  struct Shared;

 private:
  App& app_;
  ServerOptions options_;
  std::shared_ptr<Shared> shared_;
  std::vector<std::thread> threads_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace convstore::http
