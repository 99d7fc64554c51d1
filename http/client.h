// Client: a small blocking HTTP/1.1 client for loopback use by the
// convstore tools and tests. Every operation is bounded in time (20 s), so a
// stuck server fails the caller instead of hanging it. Not thread-safe: one
// Client per thread.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace convstore::http {

struct HttpResponse {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  bool chunked = false;

  // Header value or "" when absent (name in any case).
  std::string header(std::string_view name) const;
  boost::json::value json() const;  // parses body; throws on bad JSON
};

class HttpClient {
 public:
  // Talks to `host:port` (an IPv4/IPv6 literal, normally 127.0.0.1).
  explicit HttpClient(uint16_t port, std::string host = "127.0.0.1");
  HttpClient(HttpClient&&) noexcept;
  ~HttpClient();

  // Sends one request on a kept-alive connection (reconnecting if needed).
  // `headers` are sent as given; a JSON body gets no automatic Content-Type.
  HttpResponse Request(const std::string& method, const std::string& target,
                       const std::string& body = "",
                       const std::vector<std::pair<std::string, std::string>>&
                           headers = {});

  // Shorthands that send "Authorization: Bearer <key>" (when key is not
  // empty) and, with a body, "Content-Type: application/json".
  HttpResponse Get(const std::string& target, const std::string& key);
  HttpResponse Post(const std::string& target, const std::string& key,
                    const std::string& body,
                    std::vector<std::pair<std::string, std::string>> extra = {});
  HttpResponse Patch(const std::string& target, const std::string& key,
                     const std::string& body,
                     std::vector<std::pair<std::string, std::string>> extra = {});
  HttpResponse Delete(const std::string& target, const std::string& key,
                      std::vector<std::pair<std::string, std::string>> extra = {});

  // Raw bytes in, raw bytes out (for malformed-request tests): writes `raw`
  // on a fresh connection and reads until the server closes it or
  // `timeout_ms` passes.
  std::string Raw(const std::string& raw, int timeout_ms = 2000);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace convstore::http
