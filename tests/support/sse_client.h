// SseClient: a test client for server-sent event streams. It sends one GET on
// a fresh loopback connection and reads the chunked event stream as it
// arrives; every read is bounded in time. Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace convstore::testing {

struct SseEvent {
  std::string id;
  std::string event;  // "" when the event has no `event:` line
  std::string data;
};

class SseClient {
 public:
  // Connects and sends the request; waits (up to 10 s) for the response
  // headers. `key` goes in "Authorization: Bearer"; `headers` are extra.
  SseClient(uint16_t port, const std::string& target, const std::string& key,
            std::vector<std::pair<std::string, std::string>> headers = {});
  ~SseClient();

  unsigned status() const { return status_; }
  // Response header (name lower-cased), "" when absent.
  std::string header(const std::string& name) const;

  // Reads until `count` events have arrived in all (since the start) or
  // `timeout_ms` passes or the stream ends; returns every event so far.
  const std::vector<SseEvent>& WaitFor(size_t count, int timeout_ms);
  // Reads until the server ends the stream or `timeout_ms` passes; true if
  // it ended (the last chunk arrived, or the connection closed).
  bool WaitForEnd(int timeout_ms);
  // Comment lines (heartbeats) received so far.
  size_t comments() const { return comments_; }
  const std::vector<SseEvent>& events() const { return events_; }

 private:
  // Reads whatever arrives within `timeout_ms` (at least one read attempt);
  // false once the connection is closed.
  bool ReadSome(int timeout_ms);
  void Parse();

  struct Impl;
  Impl* impl_;
  unsigned status_ = 0;
  std::map<std::string, std::string> headers_;
  std::string raw_;      // bytes after the headers, still chunk-encoded
  std::string decoded_;  // chunk payloads not yet parsed into events
  bool ended_ = false;
  size_t comments_ = 0;
  std::vector<SseEvent> events_;
};

}  // namespace convstore::testing
