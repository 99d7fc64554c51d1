// Spec for http/webhook_client.h against a real receiver on 127.0.0.1
// (tests/support/webhook_receiver.h): the request arrives byte for byte,
// statuses and failures come back as values, every wait is bounded by the
// request's timeouts, and HTTPS verifies the peer against the system CAs plus
// ca_file (a self-signed certificate generated here with the OpenSSL API).
#include "http/webhook_client.h"

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <chrono>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/webhook_signature.h"
#include "tests/support/test_server.h"
#include "tests/support/webhook_receiver.h"

namespace convstore::http {
namespace {

namespace beast = boost::beast;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using std::chrono::milliseconds;
using Headers = std::vector<std::pair<std::string, std::string>>;

using convstore::testing::Header;
using convstore::testing::MakeSelfSignedCert;
using convstore::testing::Receiver;
using convstore::testing::Recorded;
using convstore::testing::ServerContext;
using convstore::testing::TestCert;

// ------------------------------------------------------------ client side

struct Outcome {
  WebhookResult result;
  milliseconds elapsed{0};
  bool completed = false;
  bool called_inline = false;
};

// Runs one PostWebhook on a fresh io_context for at most `limit`.
Outcome Post(WebhookRequest request, milliseconds limit = milliseconds(10000)) {
  net::io_context ioc;
  Outcome out;
  int calls = 0;
  const auto start = std::chrono::steady_clock::now();
  PostWebhook(ioc, std::move(request), [&](WebhookResult r) {
    ++calls;
    out.result = std::move(r);
    out.elapsed = std::chrono::duration_cast<milliseconds>(
        std::chrono::steady_clock::now() - start);
  });
  out.called_inline = calls != 0;
  ioc.run_for(limit);
  EXPECT_LE(calls, 1) << "done called more than once";
  out.completed = calls == 1;
  return out;
}

WebhookRequest Request(std::string url) {
  WebhookRequest r;
  r.url = std::move(url);
  r.body = R"({"type":"ping"})";
  r.connect_timeout = milliseconds(2000);
  r.total_timeout = milliseconds(5000);
  return r;
}

// ------------------------------------------------------------ plain HTTP

TEST(WebhookClientTest, BodyAndHeadersArriveExactly) {
  Receiver receiver;
  std::string body;
  for (int i = 0; i < 70 * 1024; ++i) body.push_back(static_cast<char>(i));
  const int64_t now = 1700000000;
  const std::string signature = WebhookSignatureHeader("whsec_x", now, body);

  WebhookRequest req = Request(receiver.url("/hooks/a?x=1&y=%20z"));
  req.body = body;
  req.headers = {{"Content-Type", "application/json"},
                 {"Convstore-Signature", signature},
                 {"X-Repeat", "1"},
                 {"X-Repeat", "2"},
                 {"X-Empty", ""}};
  const Outcome out = Post(req);
  ASSERT_TRUE(out.completed);
  EXPECT_FALSE(out.called_inline);
  EXPECT_EQ(out.result.error, WebhookError::kNone) << out.result.error_message;
  EXPECT_EQ(out.result.error_message, "");
  EXPECT_EQ(out.result.status, 200u);
  EXPECT_EQ(out.result.body, "ok");
  EXPECT_FALSE(out.result.body_truncated);
  EXPECT_TRUE(out.result.delivered());

  const auto requests = receiver.WaitForRequests(1, milliseconds(2000));
  ASSERT_EQ(requests.size(), 1u);
  const Recorded& rec = requests[0];
  EXPECT_EQ(rec.method, "POST");
  EXPECT_EQ(rec.target, "/hooks/a?x=1&y=%20z");
  EXPECT_EQ(rec.body, body);  // every byte value, 70 KiB
  const Headers expected = {
      {"Host", "127.0.0.1:" + std::to_string(receiver.port())},
      {"Content-Type", "application/json"},
      {"Convstore-Signature", signature},
      {"X-Repeat", "1"},
      {"X-Repeat", "2"},
      {"X-Empty", ""},
      {"User-Agent", "convstore-webhooks/1"},
      {"Connection", "close"},
      {"Content-Length", std::to_string(body.size())},
  };
  EXPECT_EQ(rec.headers, expected);
  // What a receiver would do with it.
  EXPECT_TRUE(VerifyWebhookSignature(Header(rec, "Convstore-Signature"),
                                     "whsec_x", rec.body, now + 10, 300));
}

TEST(WebhookClientTest, CallerUserAgentReplacesTheDefault) {
  Receiver receiver;
  WebhookRequest req = Request(receiver.url("/"));
  req.headers = {{"user-agent", "mine/2"}};
  ASSERT_TRUE(Post(req).completed);
  const auto requests = receiver.WaitForRequests(1, milliseconds(2000));
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(Header(requests[0], "User-Agent"), "mine/2");
  int count = 0;
  for (const auto& [k, v] : requests[0].headers) {
    count += beast::iequals(k, "user-agent") ? 1 : 0;
  }
  EXPECT_EQ(count, 1);
}

TEST(WebhookClientTest, ServerErrorIsReportedAsItsStatus) {
  Receiver receiver({.status = 500, .body = "boom"});
  const Outcome out = Post(Request(receiver.url()));
  ASSERT_TRUE(out.completed);
  EXPECT_EQ(out.result.error, WebhookError::kNone) << out.result.error_message;
  EXPECT_EQ(out.result.status, 500u);
  EXPECT_EQ(out.result.body, "boom");
  EXPECT_FALSE(out.result.delivered());
}

TEST(WebhookClientTest, OtherStatusesAreReported) {
  for (unsigned status : {201u, 204u, 301u, 410u, 429u, 503u}) {
    Receiver receiver({.status = status, .body = ""});
    const Outcome out = Post(Request(receiver.url()));
    ASSERT_TRUE(out.completed) << status;
    EXPECT_EQ(out.result.status, status) << out.result.error_message;
    EXPECT_EQ(out.result.delivered(), status < 300) << status;
  }
}

TEST(WebhookClientTest, LongResponseBodyIsTruncatedToOneKiB) {
  Receiver receiver({.status = 200, .body = std::string(5000, 'x')});
  const Outcome out = Post(Request(receiver.url()));
  ASSERT_TRUE(out.completed);
  EXPECT_EQ(out.result.error, WebhookError::kNone) << out.result.error_message;
  EXPECT_EQ(out.result.status, 200u);
  EXPECT_EQ(out.result.body, std::string(kWebhookMaxResponseBody, 'x'));
  EXPECT_TRUE(out.result.body_truncated);
}

TEST(WebhookClientTest, HugeDeclaredBodyIsNotWaitedFor) {
  // Claims 1 GB, sends 2 KiB, then stalls: the client stops after 1 KiB
  // instead of buffering or waiting for the rest.
  Receiver receiver(
      {.raw_response = "HTTP/1.1 202 Accepted\r\nContent-Length: 1000000000"
                       "\r\n\r\n" +
                       std::string(2048, 'y')});
  WebhookRequest req = Request(receiver.url());
  req.total_timeout = milliseconds(5000);
  const Outcome out = Post(req);
  ASSERT_TRUE(out.completed);
  EXPECT_EQ(out.result.error, WebhookError::kNone) << out.result.error_message;
  EXPECT_EQ(out.result.status, 202u);
  EXPECT_EQ(out.result.body, std::string(kWebhookMaxResponseBody, 'y'));
  EXPECT_TRUE(out.result.body_truncated);
  EXPECT_LT(out.elapsed, milliseconds(2000));
}

TEST(WebhookClientTest, GarbageResponseIsAProtocolError) {
  Receiver receiver({.raw_response = "SSH-2.0-OpenSSH_9.2\r\n\r\n"});
  const Outcome out = Post(Request(receiver.url()));
  ASSERT_TRUE(out.completed);
  EXPECT_EQ(out.result.error, WebhookError::kProtocol);
  EXPECT_EQ(out.result.status, 0u);
  EXPECT_NE(out.result.error_message, "");
}

TEST(WebhookClientTest, SlowReceiverIsWaitedForWithinTheTimeout) {
  Receiver receiver({.delay = milliseconds(300)});
  const Outcome out = Post(Request(receiver.url()));
  ASSERT_TRUE(out.completed);
  EXPECT_TRUE(out.result.delivered()) << out.result.error_message;
  EXPECT_GE(out.elapsed, milliseconds(250));
}

TEST(WebhookClientTest, SilentReceiverTimesOutWithinTheTotalTimeout) {
  Receiver receiver({.hang = true});
  WebhookRequest req = Request(receiver.url());
  req.total_timeout = milliseconds(300);
  const Outcome out = Post(req, milliseconds(5000));
  ASSERT_TRUE(out.completed);
  EXPECT_EQ(out.result.error, WebhookError::kTimeout)
      << out.result.error_message;
  EXPECT_EQ(out.result.status, 0u);
  EXPECT_NE(out.result.error_message.find("timed out"), std::string::npos)
      << out.result.error_message;
  EXPECT_GE(out.elapsed, milliseconds(250));
  EXPECT_LT(out.elapsed, milliseconds(1500));
  // The request did arrive; only the answer never came.
  EXPECT_EQ(receiver.WaitForRequests(1, milliseconds(2000)).size(), 1u);
}

TEST(WebhookClientTest, ConnectionRefusedIsAnError) {
  uint16_t port = 0;
  {
    net::io_context ioc;
    tcp::acceptor closed(ioc,
                         tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    port = closed.local_endpoint().port();
  }  // closed: nothing listens on `port` now
  const Outcome out =
      Post(Request("http://127.0.0.1:" + std::to_string(port) + "/hook"));
  ASSERT_TRUE(out.completed);
  EXPECT_FALSE(out.called_inline);
  EXPECT_EQ(out.result.error, WebhookError::kConnect)
      << out.result.error_message;
  EXPECT_EQ(out.result.status, 0u);
  EXPECT_NE(out.result.error_message.find("refused"), std::string::npos)
      << out.result.error_message;
  EXPECT_LT(out.elapsed, milliseconds(2000));
}

TEST(WebhookClientTest, BadUrlIsAnError) {
  for (const char* url :
       {"", "not a url", "/relative/path", "ftp://127.0.0.1/hook",
        "mailto:a@b.c", "http://user:pw@127.0.0.1/hook",
        "http://127.0.0.1:99999/hook", "http://127.0.0.1:0/hook",
        "http://127.0.0.1:4294967377/hook", "http:///hook",
        "http://[v1.x]/hook", "http://127.0.0.1 /hook"}) {
    const Outcome out = Post(Request(url), milliseconds(2000));
    ASSERT_TRUE(out.completed) << url;
    EXPECT_FALSE(out.called_inline) << url;
    EXPECT_EQ(out.result.error, WebhookError::kBadRequest)
        << url << ": " << out.result.error_message;
    EXPECT_EQ(out.result.status, 0u) << url;
    EXPECT_NE(out.result.error_message.find("bad URL"), std::string::npos)
        << url << ": " << out.result.error_message;
  }
}

TEST(WebhookClientTest, UnsafeOrReservedHeadersAreRefused) {
  Receiver receiver;
  for (const Headers& headers : {
           Headers{{"X-A", "a\r\nInjected: 1"}},
           Headers{{"X-A\nB", "a"}},
           Headers{{"", "a"}},
           Headers{{"X A", "a"}},
           Headers{{"Content-Length", "5"}},
           Headers{{"host", "evil.example"}},
           Headers{{"Transfer-Encoding", "chunked"}},
           Headers{{"Connection", "keep-alive"}},
       }) {
    WebhookRequest req = Request(receiver.url());
    req.headers = headers;
    const Outcome out = Post(req, milliseconds(2000));
    ASSERT_TRUE(out.completed);
    EXPECT_EQ(out.result.error, WebhookError::kBadRequest)
        << headers[0].first << ": " << out.result.error_message;
  }
  // None of them reached the receiver.
  EXPECT_EQ(receiver.WaitForRequests(1, milliseconds(200)).size(), 0u);
}

TEST(WebhookClientTest, ManyConcurrentDeliveriesOnAThreadPool) {
  Receiver receiver;
  net::io_context ioc;
  std::mutex mu;
  std::vector<WebhookResult> results;
  constexpr int kCount = 16;
  for (int i = 0; i < kCount; ++i) {
    WebhookRequest req = Request(receiver.url("/n/" + std::to_string(i)));
    PostWebhook(ioc, std::move(req), [&](WebhookResult r) {
      std::lock_guard lock(mu);
      results.push_back(std::move(r));
    });
  }
  std::thread other([&] { ioc.run_for(std::chrono::seconds(10)); });
  ioc.run_for(std::chrono::seconds(10));
  other.join();
  ASSERT_EQ(results.size(), static_cast<size_t>(kCount));
  for (const auto& r : results) {
    EXPECT_TRUE(r.delivered()) << r.status << " " << r.error_message;
  }
  EXPECT_EQ(receiver.WaitForRequests(kCount, milliseconds(2000)).size(),
            static_cast<size_t>(kCount));
}

// ------------------------------------------------------------ HTTPS

std::string WriteFile(const convstore::testing::TempDir& dir,
                      const std::string& name, const std::string& contents) {
  const std::string path = (dir.path() / name).string();
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

TEST(WebhookClientTest, HttpsWithTrustedCaFileSucceeds) {
  const TestCert cert = MakeSelfSignedCert("IP:127.0.0.1,DNS:localhost");
  auto server_ctx = ServerContext(cert);
  Receiver receiver({.status = 200, .body = "secure", .tls = server_ctx.get()});
  convstore::testing::TempDir dir;
  WebhookRequest req = Request(receiver.url("/tls?a=b"));
  req.ca_file = WriteFile(dir, "ca.pem", cert.pem);
  req.headers = {{"X-Test", "tls"}};
  const Outcome out = Post(req);
  ASSERT_TRUE(out.completed);
  EXPECT_EQ(out.result.error, WebhookError::kNone) << out.result.error_message;
  EXPECT_EQ(out.result.status, 200u);
  EXPECT_EQ(out.result.body, "secure");
  EXPECT_TRUE(out.result.delivered());
  const auto requests = receiver.WaitForRequests(1, milliseconds(2000));
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].target, "/tls?a=b");
  EXPECT_EQ(requests[0].body, req.body);
  EXPECT_EQ(Header(requests[0], "X-Test"), "tls");
}

TEST(WebhookClientTest, HttpsWithoutCaFileFailsVerification) {
  const TestCert cert = MakeSelfSignedCert("IP:127.0.0.1,DNS:localhost");
  auto server_ctx = ServerContext(cert);
  Receiver receiver({.tls = server_ctx.get()});
  const Outcome out = Post(Request(receiver.url()));
  ASSERT_TRUE(out.completed);
  EXPECT_EQ(out.result.error, WebhookError::kTls) << out.result.error_message;
  EXPECT_EQ(out.result.status, 0u);
  EXPECT_NE(out.result.error_message.find("TLS"), std::string::npos)
      << out.result.error_message;
  EXPECT_NE(out.result.error_message.find("self-signed"), std::string::npos)
      << out.result.error_message;
  // The request never got through.
  EXPECT_EQ(receiver.WaitForRequests(1, milliseconds(200)).size(), 0u);
}

TEST(WebhookClientTest, HttpsCertificateForAnotherHostFailsVerification) {
  // Trusted (it is the ca_file), but its SAN does not name 127.0.0.1.
  const TestCert cert = MakeSelfSignedCert("DNS:other.invalid");
  auto server_ctx = ServerContext(cert);
  Receiver receiver({.tls = server_ctx.get()});
  convstore::testing::TempDir dir;
  WebhookRequest req = Request(receiver.url());
  req.ca_file = WriteFile(dir, "ca.pem", cert.pem);
  const Outcome out = Post(req);
  ASSERT_TRUE(out.completed);
  EXPECT_EQ(out.result.error, WebhookError::kTls) << out.result.error_message;
  EXPECT_NE(out.result.error_message.find("IP address mismatch"),
            std::string::npos)
      << out.result.error_message;
  EXPECT_EQ(receiver.WaitForRequests(1, milliseconds(200)).size(), 0u);
}

TEST(WebhookClientTest, HttpsToAPlainServerIsATlsError) {
  Receiver receiver;  // plain HTTP
  WebhookRequest req =
      Request("https://127.0.0.1:" + std::to_string(receiver.port()) + "/hook");
  const Outcome out = Post(req);
  ASSERT_TRUE(out.completed);
  EXPECT_EQ(out.result.error, WebhookError::kTls) << out.result.error_message;
  EXPECT_EQ(out.result.status, 0u);
}

TEST(WebhookClientTest, MissingCaFileIsATlsError) {
  const TestCert cert = MakeSelfSignedCert("IP:127.0.0.1");
  auto server_ctx = ServerContext(cert);
  Receiver receiver({.tls = server_ctx.get()});
  convstore::testing::TempDir dir;
  WebhookRequest req = Request(receiver.url());
  req.ca_file = (dir.path() / "missing.pem").string();
  const Outcome out = Post(req);
  ASSERT_TRUE(out.completed);
  EXPECT_EQ(out.result.error, WebhookError::kTls) << out.result.error_message;
  EXPECT_NE(out.result.error_message.find("ca_file"), std::string::npos)
      << out.result.error_message;
}

TEST(WebhookClientTest, SilentTlsReceiverTimesOutInTheHandshake) {
  // A plain TCP listener that accepts and never speaks: the handshake hangs.
  net::io_context server_ioc;
  tcp::acceptor acceptor(server_ioc,
                         tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  WebhookRequest req = Request(
      "https://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) +
      "/hook");
  req.total_timeout = milliseconds(300);
  const Outcome out = Post(req, milliseconds(5000));
  ASSERT_TRUE(out.completed);
  EXPECT_EQ(out.result.error, WebhookError::kTimeout)
      << out.result.error_message;
  EXPECT_LT(out.elapsed, milliseconds(1500));
  EXPECT_GE(out.elapsed, milliseconds(250));
}

}  // namespace
}  // namespace convstore::http
