#include "http/webhook_client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url.hpp>
#include <charconv>
#include <memory>
#include <optional>

#include "core/status.h"

namespace convstore::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace urls = boost::urls;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxHeaderBytes = 16 * 1024;
constexpr size_t kMaxBufferBytes = 64 * 1024;
constexpr char kUserAgent[] = "convstore-webhooks/1";

struct Target {
  bool tls = false;
  std::string host;  // name or address literal, no brackets; for DNS/TLS
  bool host_is_ip = false;
  std::string port;         // decimal
  std::string host_header;  // as the URL spells it, e.g. "[::1]:8443"
  std::string path;         // origin-form: path and query, never empty
};

Result<Target> ParseTarget(std::string_view url) {
  auto parsed = urls::parse_absolute_uri(url);
  if (!parsed) {
    return Status::InvalidArgument("bad URL: " + parsed.error().message());
  }
  const urls::url_view u = *parsed;
  Target t;
  if (u.scheme_id() == urls::scheme::https) {
    t.tls = true;
  } else if (u.scheme_id() != urls::scheme::http) {
    return Status::InvalidArgument("bad URL: the scheme must be http or https");
  }
  if (u.has_userinfo()) {
    return Status::InvalidArgument("bad URL: credentials are not supported");
  }
  switch (u.host_type()) {
    case urls::host_type::ipv4:
      t.host = u.host_ipv4_address().to_string();
      t.host_is_ip = true;
      break;
    case urls::host_type::ipv6:
      t.host = u.host_ipv6_address().to_string();
      t.host_is_ip = true;
      break;
    case urls::host_type::name:
      t.host = u.host_address();
      break;
    default:
      return Status::InvalidArgument("bad URL: no usable host");
  }
  if (t.host.empty() || t.host.find_first_of(std::string_view("\0 /\\", 4)) !=
                            std::string::npos) {
    return Status::InvalidArgument("bad URL: no usable host");
  }
  if (u.has_port() && !u.port().empty()) {
    // Checked here: port_number() wraps values above 65535.
    const std::string_view digits = u.port();
    unsigned port = 0;
    const auto [end, ec] =
        std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (ec != std::errc() || end != digits.data() + digits.size() ||
        port == 0 || port > 65535) {
      return Status::InvalidArgument("bad URL: the port must be 1..65535");
    }
    t.port = std::to_string(port);
  } else {
    t.port = t.tls ? "443" : "80";
  }
  t.host_header = u.encoded_host_and_port();
  if (!t.host_header.empty() && t.host_header.back() == ':') {
    t.host_header.pop_back();  // "http://h:/" has an empty port
  }
  t.path = u.encoded_target();
  if (t.path.empty() || t.path.front() != '/') t.path.insert(0, "/");
  return t;
}

bool HasControlChars(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos;
}

bool IsReservedHeader(std::string_view name) {
  switch (bhttp::string_to_field(name)) {
    case bhttp::field::host:
    case bhttp::field::content_length:
    case bhttp::field::transfer_encoding:
    case bhttp::field::connection:
      return true;
    default:
      return false;
  }
}

// One delivery: resolve -> connect -> (TLS handshake) -> write -> read the
// header -> read up to kWebhookMaxResponseBody of the body -> done. Every
// handler runs on strand_; at most one I/O operation is pending at a time,
// plus the resolve timer.
class Delivery : public std::enable_shared_from_this<Delivery> {
 public:
  Delivery(net::io_context& ioc, WebhookRequest request,
           std::function<void(WebhookResult)> done)
      : strand_(net::make_strand(ioc)),
        resolver_(strand_),
        resolve_timer_(strand_),
        request_(std::move(request)),
        done_(std::move(done)),
        buffer_(kMaxBufferBytes) {
    const auto start = Clock::now();
    deadline_ =
        start + std::max(request_.total_timeout, std::chrono::milliseconds(0));
    connect_deadline_ =
        std::min(deadline_, start + std::max(request_.connect_timeout,
                                             std::chrono::milliseconds(0)));
  }

  void Start() {
    net::post(strand_,
              beast::bind_front_handler(&Delivery::Run, shared_from_this()));
  }

 private:
  using TlsStream = ssl::stream<beast::tcp_stream>;

  beast::tcp_stream& Tcp() { return tls_ ? tls_->next_layer() : *plain_; }

  // Calls f with whichever stream this delivery uses.
  template <typename F>
  void WithStream(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(*plain_);
    }
  }

  std::string HostPort() const { return target_.host_header; }

  void Run() {
    auto target = ParseTarget(request_.url);
    if (!target.ok()) {
      return Fail(WebhookError::kBadRequest, target.status().message());
    }
    target_ = std::move(*target);
    if (Status s = BuildRequest(); !s.ok()) {
      return Fail(WebhookError::kBadRequest, s.message());
    }
    if (target_.tls) {
      if (Status s = SetUpTls(); !s.ok()) {
        return Fail(WebhookError::kTls, s.message());
      }
    } else {
      plain_.emplace(strand_);
    }
    resolve_timer_.expires_at(connect_deadline_);
    resolve_timer_.async_wait(
        [self = shared_from_this()](beast::error_code ec) {
          if (ec) return;  // cancelled: the resolve finished first
          self->resolve_timed_out_ = true;
          self->resolver_.cancel();
        });
    resolver_.async_resolve(
        target_.host, target_.port, tcp::resolver::numeric_service,
        beast::bind_front_handler(&Delivery::OnResolve, shared_from_this()));
  }

  Status BuildRequest() {
    req_.method(bhttp::verb::post);
    req_.target(target_.path);
    req_.version(11);
    req_.set(bhttp::field::host, target_.host_header);
    bool has_user_agent = false;
    for (const auto& [name, value] : request_.headers) {
      if (name.empty() || HasControlChars(name) || HasControlChars(value) ||
          name.find_first_of(" \t:") != std::string::npos) {
        return Status::InvalidArgument("invalid header name or value: " + name);
      }
      if (IsReservedHeader(name)) {
        return Status::InvalidArgument("header " + name +
                                       " is set by PostWebhook");
      }
      if (bhttp::string_to_field(name) == bhttp::field::user_agent) {
        has_user_agent = true;
      }
      req_.insert(name, value);
    }
    if (!has_user_agent) req_.set(bhttp::field::user_agent, kUserAgent);
    req_.keep_alive(false);
    req_.body() = std::move(request_.body);
    req_.prepare_payload();
    return Status();
  }

  Status SetUpTls() {
    tls_context_.emplace(ssl::context::tls_client);
    beast::error_code ec;
    tls_context_->set_default_verify_paths(ec);
    if (ec) {
      return Status::Internal("TLS: cannot load the system CA paths: " +
                              ec.message());
    }
    if (!request_.ca_file.empty()) {
      tls_context_->load_verify_file(request_.ca_file, ec);
      if (ec) {
        return Status::Internal("TLS: cannot load ca_file " + request_.ca_file +
                                ": " + ec.message());
      }
    }
    tls_context_->set_verify_mode(ssl::verify_peer);
    SSL_CTX_set_min_proto_version(tls_context_->native_handle(),
                                  TLS1_2_VERSION);
    tls_.emplace(strand_, *tls_context_);
    SSL* ssl = tls_->native_handle();
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param,
                                    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    bool ok = false;
    if (target_.host_is_ip) {
      // No SNI for address literals (RFC 6066 §3); match an IP SAN.
      ok = X509_VERIFY_PARAM_set1_ip_asc(param, target_.host.c_str()) == 1;
    } else {
      ok = SSL_set_tlsext_host_name(ssl, target_.host.c_str()) == 1 &&
           SSL_set1_host(ssl, target_.host.c_str()) == 1;
    }
    if (!ok) return Status::Internal("TLS: cannot set the expected host name");
    return Status();
  }

  void OnResolve(beast::error_code ec, tcp::resolver::results_type results) {
    resolve_timer_.cancel();
    if (ec) {
      if (resolve_timed_out_) {
        return Fail(WebhookError::kTimeout,
                    "timed out resolving " + target_.host);
      }
      return Fail(WebhookError::kResolve,
                  "resolve " + target_.host + ": " + ec.message());
    }
    Tcp().expires_at(connect_deadline_);
    Tcp().async_connect(results, beast::bind_front_handler(&Delivery::OnConnect,
                                                           shared_from_this()));
  }

  bool TimedOut(beast::error_code ec, Clock::time_point deadline) const {
    return ec == beast::error::timeout || Clock::now() >= deadline;
  }

  // A failed step: a timeout when the deadline passed (or the stream's
  // timer fired), else `error` with the step and the cause.
  void FailStep(beast::error_code ec, Clock::time_point deadline,
                WebhookError error, std::string_view timed_out,
                std::string_view step) {
    if (TimedOut(ec, deadline)) {
      return Fail(WebhookError::kTimeout,
                  std::string(timed_out) + " " + HostPort());
    }
    Fail(error, std::string(step) + " " + HostPort() + ": " + ec.message());
  }

  void OnConnect(beast::error_code ec, const tcp::endpoint&) {
    if (ec) {
      return FailStep(ec, connect_deadline_, WebhookError::kConnect,
                      "timed out connecting to", "connect to");
    }
    Tcp().expires_at(deadline_);
    if (tls_) {
      tls_->async_handshake(ssl::stream_base::client,
                            beast::bind_front_handler(&Delivery::OnHandshake,
                                                      shared_from_this()));
    } else {
      Write();
    }
  }

  void OnHandshake(beast::error_code ec) {
    if (ec) {
      if (TimedOut(ec, deadline_)) {
        return Fail(WebhookError::kTimeout,
                    "timed out in the TLS handshake with " + HostPort());
      }
      std::string message =
          "TLS handshake with " + HostPort() + ": " + ec.message();
      const long verify = SSL_get_verify_result(tls_->native_handle());
      if (verify != X509_V_OK) {
        message +=
            std::string(" (") + X509_verify_cert_error_string(verify) + ")";
      }
      return Fail(WebhookError::kTls, std::move(message));
    }
    Write();
  }

  void Write() {
    Tcp().expires_at(deadline_);
    WithStream([&](auto& stream) {
      bhttp::async_write(
          stream, req_,
          beast::bind_front_handler(&Delivery::OnWrite, shared_from_this()));
    });
  }

  void OnWrite(beast::error_code ec, size_t) {
    if (ec) {
      return FailStep(ec, deadline_, WebhookError::kProtocol,
                      "timed out sending the request to", "send request to");
    }
    parser_.emplace();
    parser_->header_limit(kMaxHeaderBytes);
    parser_->body_limit(boost::none);  // bounded by body_storage_ instead
    WithStream([&](auto& stream) {
      bhttp::async_read_header(
          stream, buffer_, *parser_,
          beast::bind_front_handler(&Delivery::OnHeader, shared_from_this()));
    });
  }

  void OnHeader(beast::error_code ec, size_t) {
    if (ec) {
      return FailStep(ec, deadline_, WebhookError::kProtocol,
                      "timed out waiting for the response from",
                      "read response from");
    }
    result_.status = parser_->get().result_int();
    if (parser_->is_done()) return Finish();
    auto& body = parser_->get().body();
    body.data = body_storage_.data();
    body.size = body_storage_.size();
    WithStream([&](auto& stream) {
      bhttp::async_read(
          stream, buffer_, *parser_,
          beast::bind_front_handler(&Delivery::OnBody, shared_from_this()));
    });
  }

  void OnBody(beast::error_code ec, size_t) {
    const size_t got = body_storage_.size() - parser_->get().body().size;
    result_.body.assign(body_storage_.data(), got);
    // need_buffer: body_storage_ is full and more body follows. Any other
    // error after the header leaves a partial body, not a failed delivery.
    if (ec) result_.body_truncated = true;
    Finish();
  }

  void Fail(WebhookError error, std::string message) {
    result_.error = error;
    result_.error_message = std::move(message);
    Finish();
  }

  void Finish() {
    if (!done_) return;
    resolve_timer_.cancel();
    beast::error_code ignored;
    if (tls_ || plain_) {
      Tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
      Tcp().close();
    }
    auto done = std::move(done_);
    done_ = nullptr;
    done(std::move(result_));
  }

  net::strand<net::io_context::executor_type> strand_;
  tcp::resolver resolver_;
  net::steady_timer resolve_timer_;
  bool resolve_timed_out_ = false;
  WebhookRequest request_;
  std::function<void(WebhookResult)> done_;
  Clock::time_point deadline_;
  Clock::time_point connect_deadline_;
  Target target_;
  bhttp::request<bhttp::string_body> req_;
  // tls_context_ outlives tls_, which refers to it.
  std::optional<ssl::context> tls_context_;
  std::optional<TlsStream> tls_;
  std::optional<beast::tcp_stream> plain_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::response_parser<bhttp::buffer_body>> parser_;
  std::array<char, kWebhookMaxResponseBody> body_storage_{};
  WebhookResult result_;
};

}  // namespace

void PostWebhook(net::io_context& ioc, WebhookRequest request,
                 std::function<void(WebhookResult)> done) {
  std::make_shared<Delivery>(ioc, std::move(request), std::move(done))->Start();
}

}  // namespace convstore::http
