// Spec for `convstore serve`'s webhook settings, through the real binary:
// --webhook-ca-file (CONVSTORE_WEBHOOK_CA_FILE) and --webhook-timeout
// (CONVSTORE_WEBHOOK_TIMEOUT) reach the deliveries; --retention-days
// (CONVSTORE_RETENTION_DAYS) reaches the retention policy.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/support/api_assertions.h"
#include "tests/support/process.h"
#include "tests/support/webhook_receiver.h"

namespace convstore::testing {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

// Subscribes the admin to message.created at `url` and writes one message
// (an agent with instructions: its system message). Returns the webhook id.
std::string SubscribeAndWrite(HttpClient& c, const std::string& url) {
  HttpResponse hook =
      c.Post("/v1/webhooks", kAdmin,
             R"({"url":")" + url + R"(","events":["message.created"]})");
  EXPECT_EQ(201u, hook.status) << hook.body;
  const std::string agent =
      Str(CreateAgent(c, kAdmin, R"({"name":"A","instructions":"Be brief."})"),
          "id");
  CreateConversation(c, kAdmin, agent);
  return hook.status == 201 ? Str(hook.json(), "id") : "";
}

// The webhook's attempts, newest first, once there is at least one (bounded).
json::array FirstAttempts(HttpClient& c, const std::string& webhook) {
  const auto deadline = std::chrono::steady_clock::now() + milliseconds(20000);
  json::array attempts;
  while (attempts.empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(50));
    attempts = c.Get("/v1/webhooks/" + webhook + "/deliveries", kAdmin)
                   .json()
                   .as_array();
  }
  return attempts;
}

TEST(ServeFlagsTest, WebhookCaFileIsTrustedForHttpsReceivers) {
  TempDir dir;
  const TestCert cert = MakeSelfSignedCert("IP:127.0.0.1");
  const std::string ca = (dir.path() / "ca.pem").string();
  std::ofstream(ca, std::ios::binary) << cert.pem;
  auto tls = ServerContext(cert);
  Receiver receiver({.tls = tls.get()});
  ServerProcess server((dir.path() / "data").string(), kAdmin,
                       {{"CONVSTORE_WEBHOOK_CA_FILE", ca}});
  HttpClient c = server.Client();
  const std::string webhook = SubscribeAndWrite(c, receiver.url());
  EXPECT_EQ(1u, receiver.WaitForRequests(1, milliseconds(20000)).size());
  json::array attempts = FirstAttempts(c, webhook);
  ASSERT_FALSE(attempts.empty());
  EXPECT_EQ("delivered", Str(attempts[0], "outcome")) << Json(attempts);
}

TEST(ServeFlagsTest, WebhookTimeoutBoundsASlowReceiver) {
  TempDir dir;
  Receiver slow({.delay = milliseconds(5000)});
  ServerProcess server((dir.path() / "data").string(), kAdmin,
                       {{"CONVSTORE_WEBHOOK_TIMEOUT", "1"}});
  HttpClient c = server.Client();
  const std::string webhook = SubscribeAndWrite(c, slow.url());
  json::array attempts = FirstAttempts(c, webhook);
  ASSERT_FALSE(attempts.empty());
  // Given up on after 1 s, not after the default 10 s or the 5 s answer.
  EXPECT_EQ("retrying", Str(attempts[0], "outcome")) << Json(attempts);
  EXPECT_TRUE(attempts[0].at("status").is_null()) << Json(attempts);
  EXPECT_GE(U64(attempts[0], "duration_ms"), 900u) << Json(attempts);
  EXPECT_LT(U64(attempts[0], "duration_ms"), 3000u) << Json(attempts);
}

TEST(ServeFlagsTest, BadWebhookSettingsRefuseToStartAndSayWhy) {
  TempDir dir;
  const std::string data = (dir.path() / "data").string();
  CommandResult missing_ca =
      RunConvstore({"serve", "--listen", "127.0.0.1:0", "--data-dir", data,
                    "--webhook-ca-file", (dir.path() / "nope.pem").string()});
  EXPECT_NE(0, missing_ca.exit_code) << Describe(missing_ca);
  EXPECT_NE(std::string::npos, missing_ca.err.find("--webhook-ca-file"))
      << Describe(missing_ca);
  for (const char* seconds : {"0", "301", "ten"}) {
    CommandResult bad_timeout =
        RunConvstore({"serve", "--listen", "127.0.0.1:0", "--data-dir", data},
                     {{"CONVSTORE_WEBHOOK_TIMEOUT", seconds}});
    EXPECT_NE(0, bad_timeout.exit_code) << Describe(bad_timeout);
    EXPECT_NE(std::string::npos, bad_timeout.err.find("--webhook-timeout"))
        << Describe(bad_timeout);
  }
  // Nothing was started on the way: no store was created.
  EXPECT_FALSE(std::filesystem::exists(data));
}

TEST(ServeFlagsTest, RetentionDaysComesFromItsEnvironmentVariable) {
  TempDir dir;
  {
    ServerProcess server((dir.path() / "data").string(), kAdmin,
                         {{"CONVSTORE_RETENTION_DAYS", "30"}});
    HttpClient c = server.Client();
    EXPECT_EQ(30u * 86400, MetricValue(c, "convstore_retention_seconds"));
  }
  ServerProcess server((dir.path() / "data").string(), kAdmin);
  HttpClient c = server.Client();
  EXPECT_EQ(0u, MetricValue(c, "convstore_retention_seconds"))
      << "off by default";
}

TEST(ServeFlagsTest, BadRetentionDaysRefuseToStartAndSayWhy) {
  TempDir dir;
  const std::string data = (dir.path() / "data").string();
  for (const char* days : {"-1", "36501", "thirty"}) {
    CommandResult bad =
        RunConvstore({"serve", "--listen", "127.0.0.1:0", "--data-dir", data,
                      "--retention-days", days});
    EXPECT_NE(0, bad.exit_code) << Describe(bad);
    EXPECT_NE(std::string::npos, bad.err.find("--retention-days"))
        << Describe(bad);
  }
  EXPECT_FALSE(std::filesystem::exists(data));
}

}  // namespace
}  // namespace convstore::testing
