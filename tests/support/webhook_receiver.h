// Test support: a webhook receiver, i.e. a small HTTP or HTTPS server on
// 127.0.0.1 with its own thread that records every request and answers as
// configured (a status, a status per request, a delay, silence, raw bytes).
// Thread-safe: any thread may read what it recorded while it keeps serving.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace convstore::testing {

// One request as it arrived.
struct Recorded {
  std::string method;
  std::string target;
  // In order, names as sent.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// The value of header `name` (any case) in `request`; "" when absent.
std::string Header(const Recorded& request, std::string_view name);

struct ReceiverOptions {
  unsigned status = 200;
  std::string body = "ok";
  bool hang = false;  // read the request, then never answer
  // When set: written as is instead of a response, then the connection is
  // held open without another byte.
  std::optional<std::string> raw_response = std::nullopt;
  boost::asio::ssl::context* tls = nullptr;  // serve TLS with this context
  // When set: the status of the index-th request (0-based, counting every
  // request received), instead of `status`. Runs on the receiver's thread.
  std::function<unsigned(const Recorded& request, size_t index)> respond =
      nullptr;
  // Waited (on a timer; other connections keep being served) before each
  // answer: a slow receiver.
  std::chrono::milliseconds delay{0};
};

// Accepts connections on 127.0.0.1:<port> (an ephemeral one for port 0),
// records each request and answers as configured. Runs its own io_context
// on its own thread; the destructor stops it and closes every connection
// (hanging ones included), so that nothing listens on the port any more.
// Written with completion handlers, not coroutines: clang 14 cannot compile
// Asio's coroutines with the sanitizers and debug info tools/test builds
// with.
class Receiver {
 public:
  // Binds with SO_REUSEADDR, so that a receiver may take the port of one
  // just destroyed (a receiver that was down comes back). Throws when the
  // port cannot be bound.
  explicit Receiver(ReceiverOptions options = {}, uint16_t port = 0);
  ~Receiver();
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  uint16_t port() const;
  // "http(s)://127.0.0.1:<port><path>".
  std::string url(std::string_view path = "/hook") const;

  // Every request recorded so far, in arrival order.
  std::vector<Recorded> requests() const;
  size_t count() const;

  // Waits (at most `timeout`) until `n` requests were recorded; returns
  // every request recorded by then.
  std::vector<Recorded> WaitForRequests(size_t n,
                                        std::chrono::milliseconds timeout);
  // Waits (at most `timeout`) until `done` holds for the requests recorded
  // so far (checked at once and after each new request); returns them.
  std::vector<Recorded> WaitFor(
      const std::function<bool(const std::vector<Recorded>&)>& done,
      std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ------------------------------------------------------------ TLS

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};

// A key and its self-signed certificate (its own CA), and the PEM of it for
// a client to trust (WebhookRequest::ca_file, AppConfig::webhook_ca_file).
struct TestCert {
  std::unique_ptr<EVP_PKEY, PkeyFree> key;
  std::unique_ptr<X509, X509Free> cert;
  std::string pem;
};

// A self-signed P-256 certificate valid from an hour ago for a day, whose
// subjectAltName is `san` (e.g. "IP:127.0.0.1,DNS:localhost").
TestCert MakeSelfSignedCert(const char* san);
// A TLS server context serving `cert` (ReceiverOptions::tls).
std::unique_ptr<boost::asio::ssl::context> ServerContext(const TestCert& cert);

}  // namespace convstore::testing
