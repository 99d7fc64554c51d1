// Spec for connection limits and request framing: oversized headers get 431
// with the error body (and the connection is closed only after the client can
// read it); a client that waits for "100 Continue" gets it; the admin backup
// route refuses a relative or existing dir.
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

TEST(LimitsTest, ExpectContinueGets100ThenTheAnswer) {
  TestServer server;
  HttpClient c = server.Client();
  const std::string body = R"({"name":"continued"})";
  std::string answer = c.Raw(
      "POST /v1/agents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
      std::string(TestServer::kAdminKey) +
      "\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
      "Connection: close\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_EQ(0u, answer.rfind("HTTP/1.1 100 Continue\r\n", 0))
      << answer.substr(0, 200);
  EXPECT_NE(std::string::npos, answer.find("HTTP/1.1 201 Created"));
  EXPECT_NE(std::string::npos, answer.find("\"name\":\"continued\""));
}

TEST(LimitsTest, BackupRefusesARelativeOrExistingDir) {
  TestServer server;
  HttpClient c = server.Client();
  HttpResponse relative = c.Post("/v1/admin/backups", TestServer::kAdminKey,
                                 R"({"dir":"relative/path"})");
  EXPECT_EQ(400u, relative.status) << relative.body;
  EXPECT_EQ("dir", relative.json().at("error").at("param").as_string());
  TempDir existing;  // exists already
  HttpResponse taken = c.Post("/v1/admin/backups", TestServer::kAdminKey,
                              R"({"dir":")" + existing.str() + R"("})");
  EXPECT_EQ(409u, taken.status) << taken.body;
  EXPECT_EQ("backup_failed", taken.json().at("error").at("code").as_string());
  EXPECT_EQ(std::string::npos, taken.body.find(existing.str()))
      << "errors must not echo host paths";
}

}  // namespace
}  // namespace convstore::testing
