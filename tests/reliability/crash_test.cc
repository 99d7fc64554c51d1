// Spec for crash durability: with 32 connections appending, the server is
// killed with SIGKILL at a random moment, again and again. After a restart
// every acknowledged (201) message is present with identical bytes, the log
// is gapless, and the read models equal a fresh rebuild from the log.
// Kill points: 3 by default (CI); CONVSTORE_CRASH_KILLS=20 for the full run.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "tests/support/durability.h"
#include "tests/support/process.h"
#include "tests/support/test_server.h"

namespace convstore::testing {
namespace {

namespace json = boost::json;
const std::string kKey = TestServer::kAdminKey;
constexpr int kWriters = 32;
constexpr int kConversations = 8;

int KillPoints() {
  const char* v = std::getenv("CONVSTORE_CRASH_KILLS");
  int n = v ? std::atoi(v) : 3;
  return n < 1 ? 1 : (n > 200 ? 200 : n);
}

TEST(CrashTest, KillNineLosesNoAcknowledgedWriteAndCorruptsNothing) {
  TempDir dir;
  const std::string data = (dir.path() / "data").string();
  std::vector<std::string> conversations;
  {
    ServerProcess server(data);
    HttpClient c = server.Client();
    HttpResponse agent = c.Post("/v1/agents", kKey, R"({"name":"crash"})");
    ASSERT_EQ(201u, agent.status) << agent.body;
    std::string agent_id(agent.json().at("id").as_string());
    for (int i = 0; i < kConversations; ++i) {
      HttpResponse conv = c.Post("/v1/conversations", kKey,
                                 R"({"agent_id":")" + agent_id + R"("})");
      ASSERT_EQ(201u, conv.status) << conv.body;
      conversations.emplace_back(conv.json().at("id").as_string());
    }
    ASSERT_EQ(0, server.Stop());
  }

  std::mutex mu;
  AckedMessages acked;
  std::mt19937 rng(std::random_device{}());
  const int kills = KillPoints();
  for (int round = 0; round < kills; ++round) {
    auto server = std::make_unique<ServerProcess>(data);
    const uint16_t port = server->port();
    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&, w] {
        HttpClient c(port);
        const std::string target =
            "/v1/conversations/" + conversations[w % kConversations] + "/messages";
        // Bounded: at most 5,000 appends per writer per round.
        for (int i = 0; i < 5000 && !stop; ++i) {
          std::string content = "r" + std::to_string(round) + "-w" +
                                std::to_string(w) + "-" + std::to_string(i) +
                                " \xC3\xA9\xE2\x9C\x93";
          HttpResponse r;
          try {
            r = c.Post(target, kKey,
                       R"({"role":"user","content":")" + content + R"("})");
          } catch (const std::exception&) {
            return;  // the server is gone: nothing was acknowledged
          }
          if (r.status != 201) continue;
          std::string id(r.json().at("id").as_string());
          std::lock_guard<std::mutex> lock(mu);
          acked[id] = r.body;
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(
        std::uniform_int_distribution<int>(150, 900)(rng)));
    server.reset();  // SIGKILL, mid-flight
    stop = true;
    for (auto& t : writers) t.join();
  }
  ASSERT_GT(acked.size(), 0u) << "no write was acknowledged at all";

  ServerProcess server(data);
  HttpClient c = server.Client();
  ExpectAcknowledgedMessagesPresent(c, kKey, conversations, acked);
  const uint64_t head = ExpectGaplessLog(c, kKey);
  EXPECT_GE(head, acked.size());
  ASSERT_EQ(0, server.Stop());
  ExpectReadModelsEqualRebuild(data);
  std::cout << "[ crash ] " << kills << " kill points, " << acked.size()
            << " acknowledged appends, all present; log gapless to " << head
            << "\n";
}

}  // namespace
}  // namespace convstore::testing
