// Spec for connection limits: oversized headers get 431 with the error body
// (and the connection is closed only after the client can read it).
#include <gtest/gtest.h>

#include "tests/support/test_server.h"

namespace convstore::testing {
namespace {

TEST(LimitsTest, HeadersOver16KiBAre431WithTheErrorBody) {
  TestServer server;
  HttpClient c = server.Client();
  std::string raw = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " +
                    std::string(20000, 'b') + "\r\n\r\n";
  std::string answer = c.Raw(raw);
  EXPECT_EQ(0u, answer.rfind("HTTP/1.1 431", 0)) << answer.substr(0, 200);
  EXPECT_NE(std::string::npos, answer.find("\"type\":\"invalid_request_error\""));
  // The server is fine afterwards.
  EXPECT_EQ(200u, c.Get("/healthz", "").status);
}

TEST(LimitsTest, MalformedRequestLineIs400AndTheServerGoesOn) {
  TestServer server;
  HttpClient c = server.Client();
  std::string answer = c.Raw("NOT HTTP AT ALL\r\n\r\n");
  EXPECT_EQ(0u, answer.rfind("HTTP/1.1 400", 0)) << answer.substr(0, 200);
  EXPECT_EQ(200u, c.Get("/healthz", "").status);
}

}  // namespace
}  // namespace convstore::testing
