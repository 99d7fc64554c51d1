// GET /v1/openapi.json (API.md, "Operations"): the committed OpenAPI 3.1
// document, served byte for byte without authentication. That the document
// matches the server is tests/interop/openapi_contract.test.mjs's job.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/support/api_assertions.h"
#include "tests/support/test_server.h"

namespace convstore::testing {
namespace {

namespace json = boost::json;

// http/openapi.json from the source tree (CONVSTORE_TEST_DATA is tests/data).
std::string CommittedDocument() {
  std::ifstream in(
      std::string(CONVSTORE_TEST_DATA) + "/../../http/openapi.json",
      std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

TEST(OpenApiTest, ServesTheCommittedDocumentByteForByteWithoutAuth) {
  const std::string committed = CommittedDocument();
  ASSERT_FALSE(committed.empty()) << "http/openapi.json not found";
  TestServer server;
  HttpClient client = server.Client();

  HttpResponse r = client.Get("/v1/openapi.json", "");
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_TRUE(r.body == committed)
      << "served " << r.body.size() << " bytes, committed " << committed.size();

  // With a key (any key, even a wrong one) it is the same document.
  HttpResponse with_key = client.Get("/v1/openapi.json", "csk_not_a_key");
  EXPECT_EQ(with_key.status, 200u);
  EXPECT_TRUE(with_key.body == committed);

  // HEAD: the same headers, no body (raw: the client would wait for one).
  std::string head = client.Raw(
      "HEAD /v1/openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Connection: close\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 200 ", 0), 0u) << head;
  EXPECT_NE(head.find("\r\nContent-Length: " +
                      std::to_string(committed.size()) + "\r\n"),
            std::string::npos)
      << head;
  EXPECT_EQ(head.size(), head.find("\r\n\r\n") + 4) << "HEAD sent a body";
}

TEST(OpenApiTest, IsAnOpenApi31DocumentOfTheRoutes) {
  TestServer server;
  HttpClient client = server.Client();
  HttpResponse r = client.Get("/v1/openapi.json", "");
  ASSERT_EQ(r.status, 200u);
  json::value doc = Parsed(r);
  ASSERT_TRUE(doc.is_object()) << r.body.substr(0, 200);
  EXPECT_EQ(Str(doc, "openapi"), "3.1.0");
  const json::object& paths = doc.at("paths").as_object();
  for (const char* path :
       {"/v1/agents", "/v1/agents/{id}", "/v1/conversations",
        "/v1/conversations/{id}", "/v1/conversations/{id}/token",
        "/v1/conversations/{id}/messages", "/v1/admin/api-keys",
        "/v1/admin/api-keys/{id}", "/v1/admin/events", "/v1/admin/projections",
        "/v1/admin/projections/rebuild", "/v1/admin/backups", "/healthz",
        "/readyz", "/metrics", "/v1/openapi.json"}) {
    EXPECT_TRUE(paths.contains(path)) << path;
  }
  // The document itself is public.
  EXPECT_EQ(
      json::serialize(paths.at("/v1/openapi.json").at("get").at("security")),
      "[]");
}

TEST(OpenApiTest, OtherMethodsAre405) {
  TestServer server;
  HttpClient client = server.Client();
  for (const char* method : {"POST", "PUT", "PATCH", "DELETE"}) {
    HttpResponse r = client.Request(method, "/v1/openapi.json");
    EXPECT_TRUE(IsError(r, 405, "method_not_allowed")) << method;
    EXPECT_EQ(AllowedMethods(r), (std::set<std::string>{"GET", "HEAD"}));
  }
}

}  // namespace
}  // namespace convstore::testing
