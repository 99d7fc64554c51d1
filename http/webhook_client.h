// PostWebhook: one asynchronous HTTP(S) POST of a webhook delivery, bounded in
// time and memory, whose outcome (status, error, start of the response body)
// comes back as a value to a completion callback, never as an exception.
// Thread-safe: concurrent calls are independent, and each delivery runs on a
// strand of its own, so `ioc` may be run by any number of threads.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace convstore::http {

struct WebhookRequest {
  // "http://host[:port]/path?query" or "https://...". The host is a DNS name
  // (resolved with async_resolve), an IPv4 literal or a bracketed IPv6
  // literal; only what the URL names is resolved and connected to. Userinfo
  // ("user:pass@") is refused; a fragment is not sent.
  std::string url;
  std::string body;  // sent as is, with Content-Length
  // Sent in order after Host and before Content-Length, repeated names kept.
  // Host, Content-Length, Transfer-Encoding and Connection are set by
  // PostWebhook and refused here (kBadRequest), as are names or values with
  // CR, LF or NUL; User-Agent defaults to "convstore-webhooks/1" when absent.
  std::vector<std::pair<std::string, std::string>> headers;
  // Resolve + TCP connect must finish within connect_timeout; everything
  // (resolve, connect, TLS handshake, write, reading the response) within
  // total_timeout, both counted from the PostWebhook call. Missing either
  // before the response header arrived is kTimeout.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  std::chrono::milliseconds total_timeout{std::chrono::seconds(15)};
  // https only: a PEM file of extra CA certificates to trust besides the
  // system's default paths (for tests and private CAs). Empty: none.
  std::string ca_file;
};

enum class WebhookError {
  kNone = 0,    // a response header arrived; see WebhookResult::status
  kBadRequest,  // bad URL (syntax, scheme, userinfo, host, port) or header
  kResolve,     // the host name did not resolve
  kConnect,     // every resolved address refused/failed the TCP connect
  kTimeout,     // connect_timeout or total_timeout passed
  kTls,         // TLS set-up, handshake or peer/host-name verification failed
  kProtocol,    // write failed, or the response was not valid HTTP/1.x
};

struct WebhookResult {
  // The HTTP status of the response (e.g. 200, 500); 0 when none arrived.
  unsigned status = 0;
  WebhookError error = WebhookError::kNone;
  // Human-readable reason when error != kNone, e.g. "connect to
  // 127.0.0.1:9: Connection refused"; empty otherwise.
  std::string error_message;
  // At most the first kWebhookMaxResponseBody bytes of the response body.
  std::string body;
  // True when the body was cut at kWebhookMaxResponseBody bytes or could not
  // be read to its end (the status still counts).
  bool body_truncated = false;

  // A 2xx answer: the delivery succeeded.
  bool delivered() const {
    return error == WebhookError::kNone && status >= 200 && status < 300;
  }
};

// Bytes of the response body kept in WebhookResult::body.
inline constexpr size_t kWebhookMaxResponseBody = 1024;

// Starts the POST and returns at once; `done` is called exactly once, on a
// thread running `ioc`, never from inside PostWebhook (not even for a bad URL).
// The delivery keeps itself alive until then; `ioc` must outlive it.
//
// https: the peer's chain is verified against the system default CA paths
// plus `ca_file`, TLS >= 1.2, SNI is sent for DNS names, and the certificate
// must match the URL's host (DNS name or IP address in its SAN).
//
// The response: once its status line and header (at most 16 KiB) have
// arrived, the outcome is that status, error kNone. The body is then read
// until it ends or kWebhookMaxResponseBody bytes have arrived, whichever comes
// first, never buffering more than 64 KiB; a longer body is truncated (not an
// error), and a body that fails or times out midway is kept as far as read
// (body_truncated = true). The connection is then closed (no keep-alive, no
// TLS close_notify).
void PostWebhook(boost::asio::io_context& ioc, WebhookRequest request,
                 std::function<void(WebhookResult)> done);

}  // namespace convstore::http
