#include "tests/support/webhook_receiver.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace convstore::testing {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

std::string Header(const Recorded& request, std::string_view name) {
  for (const auto& [k, v] : request.headers) {
    if (beast::iequals(k, name)) return v;
  }
  return "";
}

struct Receiver::Impl {
  // One connection: read a request, record it, answer (or not).
  template <typename Stream>
  struct Exchange : std::enable_shared_from_this<Exchange<Stream>> {
    template <typename... Args>
    Exchange(Impl& r, Args&&... args)
        : receiver(r), stream(std::forward<Args>(args)...) {
      parser.body_limit(8 << 20);
    }

    void Read() {
      bhttp::async_read(
          stream, buffer, parser,
          [self = this->shared_from_this()](beast::error_code ec, size_t n) {
            if (ec || n == 0) return;
            self->Received();
          });
    }

    void Received() {
      const ReceiverOptions& options = receiver.options;
      auto [rec, index] = receiver.Record(parser.get());
      status = options.respond ? options.respond(rec, index) : options.status;
      if (options.delay.count() > 0) {
        // On a timer rather than a sleep: the other connections of this
        // thread keep being served meanwhile.
        timer =
            std::make_unique<net::steady_timer>(receiver.ioc, options.delay);
        timer->async_wait(
            [self = this->shared_from_this()](beast::error_code ec) {
              if (!ec) self->Answer();
            });
      } else {
        Answer();
      }
    }

    void Answer() {
      const ReceiverOptions& options = receiver.options;
      auto self = this->shared_from_this();
      if (options.raw_response) {
        // Written as is, then the connection is held open (until the
        // receiver stops): the client must give up on its own.
        net::async_write(stream, net::buffer(*options.raw_response),
                         [self](beast::error_code, size_t) { self->Hold(); });
      } else if (!options.hang) {
        res.result(static_cast<bhttp::status>(status));
        res.version(11);
        res.set(bhttp::field::content_type, "text/plain");
        res.body() = options.body;
        res.keep_alive(false);
        res.prepare_payload();
        bhttp::async_write(stream, res, [self](beast::error_code, size_t) {});
      } else {
        Hold();
      }
    }

    void Hold() {
      timer = std::make_unique<net::steady_timer>(receiver.ioc,
                                                  std::chrono::hours(1));
      timer->async_wait(
          [self = this->shared_from_this()](beast::error_code) {});
    }

    Impl& receiver;
    Stream stream;
    beast::flat_buffer buffer;
    bhttp::request_parser<bhttp::string_body> parser;
    bhttp::response<bhttp::string_body> res;
    unsigned status = 200;
    std::unique_ptr<net::steady_timer> timer;
  };

  Impl(ReceiverOptions o, uint16_t port)
      : options(std::move(o)), acceptor(ioc) {
    const tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), port);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(net::socket_base::reuse_address(true));
    acceptor.bind(endpoint);  // throws when taken
    acceptor.listen();
  }

  // Appends `req` to the record; returns a copy and its index.
  std::pair<Recorded, size_t> Record(
      const bhttp::request<bhttp::string_body>& req) {
    Recorded rec;
    rec.method = std::string(req.method_string());
    rec.target = std::string(req.target());
    for (const auto& field : req) {
      rec.headers.emplace_back(field.name_string(), field.value());
    }
    rec.body = req.body();
    size_t index = 0;
    {
      std::lock_guard lock(mu);
      index = requests.size();
      requests.push_back(rec);
    }
    cv.notify_all();
    return {std::move(rec), index};
  }

  void Accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec) return;
      if (options.tls) {
        auto ex = std::make_shared<Exchange<ssl::stream<tcp::socket>>>(
            *this, std::move(socket), *options.tls);
        ex->stream.async_handshake(ssl::stream_base::server,
                                   [ex](beast::error_code ec) {
                                     // e.g. the client refused our
                                     // certificate
                                     if (!ec) ex->Read();
                                   });
      } else {
        std::make_shared<Exchange<tcp::socket>>(*this, std::move(socket))
            ->Read();
      }
      Accept();
    });
  }

  const ReceiverOptions options;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::vector<Recorded> requests;  // guarded by mu
  // Declared after everything the connections use: destroying the
  // io_context destroys the pending handlers and with them the connections.
  net::io_context ioc;
  tcp::acceptor acceptor;
  std::thread thread;
};

Receiver::Receiver(ReceiverOptions options, uint16_t port)
    : impl_(std::make_unique<Impl>(std::move(options), port)) {
  impl_->Accept();
  impl_->thread = std::thread([impl = impl_.get()] { impl->ioc.run(); });
}

Receiver::~Receiver() {
  impl_->ioc.stop();
  impl_->thread.join();
  // Close the listening socket before the connections go with the
  // io_context (in ~Impl), so that nothing is accepted in between.
  impl_->acceptor.close();
}

uint16_t Receiver::port() const {
  return impl_->acceptor.local_endpoint().port();
}

std::string Receiver::url(std::string_view path) const {
  return std::string(impl_->options.tls ? "https" : "http") +
         "://127.0.0.1:" + std::to_string(port()) + std::string(path);
}

std::vector<Recorded> Receiver::requests() const {
  std::lock_guard lock(impl_->mu);
  return impl_->requests;
}

size_t Receiver::count() const {
  std::lock_guard lock(impl_->mu);
  return impl_->requests.size();
}

std::vector<Recorded> Receiver::WaitForRequests(
    size_t n, std::chrono::milliseconds timeout) {
  return WaitFor([n](const std::vector<Recorded>& r) { return r.size() >= n; },
                 timeout);
}

std::vector<Recorded> Receiver::WaitFor(
    const std::function<bool(const std::vector<Recorded>&)>& done,
    std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mu);
  impl_->cv.wait_for(lock, timeout, [&] { return done(impl_->requests); });
  return impl_->requests;
}

// ------------------------------------------------------------ TLS

namespace {

void AddExtension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  ASSERT_NE(ext, nullptr) << value;
  ASSERT_EQ(X509_add_ext(cert, ext, -1), 1);
  X509_EXTENSION_free(ext);
}

}  // namespace

TestCert MakeSelfSignedCert(const char* san) {
  TestCert out;
  out.key.reset(EVP_EC_gen("P-256"));
  EXPECT_NE(out.key, nullptr);
  out.cert.reset(X509_new());
  X509* x = out.cert.get();
  X509_set_version(x, 2);  // v3
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, out.key.get());
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(
      name, "CN", MBSTRING_ASC,
      reinterpret_cast<const unsigned char*>("convstore webhook test"), -1, -1,
      0);
  X509_set_issuer_name(x, name);
  AddExtension(x, NID_basic_constraints, "critical,CA:TRUE");
  AddExtension(x, NID_subject_key_identifier, "hash");
  AddExtension(x, NID_subject_alt_name, san);
  EXPECT_GT(X509_sign(x, out.key.get(), EVP_sha256()), 0);

  BIO* bio = BIO_new(BIO_s_mem());
  EXPECT_EQ(PEM_write_bio_X509(bio, x), 1);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  out.pem.assign(data, static_cast<size_t>(size));
  BIO_free(bio);
  return out;
}

std::unique_ptr<ssl::context> ServerContext(const TestCert& cert) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  EXPECT_EQ(SSL_CTX_use_certificate(ctx->native_handle(), cert.cert.get()), 1);
  EXPECT_EQ(SSL_CTX_use_PrivateKey(ctx->native_handle(), cert.key.get()), 1);
  return ctx;
}

}  // namespace convstore::testing
