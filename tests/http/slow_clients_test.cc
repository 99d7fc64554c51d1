// Spec for hostile connections, against the real binary: slow clients
// (slowloris: a request trickled in a byte at a time) are cut off after
// --read-timeout however steadily they trickle, idle kept-alive connections
// too, and meanwhile a normal client is served. Past --max-connections a new
// connection is closed at once, and once slow ones time out the server takes
// normal clients again. Pipelined requests are answered one by one, in order.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include "tests/support/api_assertions.h"
#include "tests/support/process.h"

namespace convstore::testing {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
const std::string kKey = TestServer::kAdminKey;

// One raw TCP connection to the server under test.
class RawConnection {
 public:
  RawConnection(net::io_context& io, uint16_t port) : socket_(io) {
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }
  // False once the server has closed the connection (or reset it).
  bool Send(const std::string& bytes) {
    boost::system::error_code ec;
    net::write(socket_, net::buffer(bytes), ec);
    return !ec;
  }
  // True when the server has closed its side: a read returns EOF or an
  // error (non-blocking; data the server sent first is skipped).
  bool ClosedByServer() {
    socket_.non_blocking(true);
    char buf[4096];
    for (int i = 0; i < 100; ++i) {  // bounded: at most 400 KiB skipped
      boost::system::error_code ec;
      socket_.read_some(net::buffer(buf), ec);
      if (ec == net::error::would_block) return false;
      if (ec) return true;
    }
    return false;
  }

 private:
  tcp::socket socket_;
};

std::map<std::string, std::string> Settings(int read_timeout_s,
                                            int max_connections) {
  return {{"CONVSTORE_READ_TIMEOUT", std::to_string(read_timeout_s)},
          {"CONVSTORE_MAX_CONNECTIONS", std::to_string(max_connections)}};
}

TEST(SlowClientsTest, TricklingClientsAreCutOffAndANormalClientIsServed) {
  TempDir dir;
  ServerProcess server((dir.path() / "data").string(), kKey, Settings(2, 1000));
  net::io_context io;
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < 200; ++i) {
    slow.push_back(std::make_unique<RawConnection>(io, server.port()));
    slow.back()->Send("POST /v1/agents HTTP/1.1\r\nHost: x\r\n");
  }

  HttpClient normal = server.Client();
  const auto start = Clock::now();
  int trickled = 0;
  // Bounded: 60 rounds of 250 ms. Every slow client sends one header byte
  // per round, so none is ever idle; the server must still cut each off.
  for (int round = 0; round < 60; ++round) {
    for (auto& c : slow) {
      if (c && !c->Send("X")) c.reset();
    }
    ++trickled;
    if (round % 4 == 0) {
      EXPECT_EQ(200u, normal.Get("/healthz", "").status);
      EXPECT_EQ(201u,
                normal.Post("/v1/agents", kKey, R"({"name":"normal"})").status);
    }
    bool all_cut = true;
    for (auto& c : slow) {
      if (c && !c->ClosedByServer()) all_cut = false;
    }
    if (all_cut) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  const auto elapsed = Clock::now() - start;
  for (auto& c : slow) {
    EXPECT_TRUE(!c || c->ClosedByServer())
        << "a trickling client is still connected";
  }
  // Cut off by the 2 s request timeout, not by the end of the loop.
  EXPECT_LT(elapsed, std::chrono::seconds(12)) << trickled << " rounds";
  EXPECT_EQ(200u, normal.Get("/healthz", "").status);
}

TEST(SlowClientsTest, IdleKeptAliveConnectionsAreClosedAfterTheReadTimeout) {
  TempDir dir;
  ServerProcess server((dir.path() / "data").string(), kKey, Settings(1, 1000));
  net::io_context io;
  RawConnection idle(io, server.port());
  ASSERT_TRUE(idle.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(WaitUntil([&] { return idle.ClosedByServer(); }, 5000));
}

TEST(SlowClientsTest, ConnectionsPastTheCapAreClosedAndServiceResumes) {
  TempDir dir;
  ServerProcess server((dir.path() / "data").string(), kKey, Settings(2, 20));
  net::io_context io;
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 20; ++i) {
    held.push_back(std::make_unique<RawConnection>(io, server.port()));
  }
  // Give the server a moment to accept all 20 (bounded wait on a probe).
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  RawConnection extra(io, server.port());
  EXPECT_TRUE(WaitUntil([&] { return extra.ClosedByServer(); }, 1000))
      << "the 21st connection was kept open";

  // The held ones time out; then a normal client gets in again.
  EXPECT_TRUE(WaitUntil(
      [&] {
        for (auto& c : held) {
          if (!c->ClosedByServer()) return false;
        }
        return true;
      },
      6000));
  HttpClient normal = server.Client();
  EXPECT_EQ(200u, normal.Get("/healthz", "").status);
}

TEST(SlowClientsTest, PipelinedRequestsAreAnsweredInOrder) {
  TempDir dir;
  ServerProcess server((dir.path() / "data").string(), kKey, Settings(5, 1000));
  HttpClient c = server.Client();
  std::string pipeline;
  for (int i = 0; i < 20; ++i) {
    const std::string body = R"({"name":"p)" + std::to_string(i) + R"("})";
    pipeline +=
        "POST /v1/agents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + kKey +
        "\r\nContent-Type: application/json\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n" +
        (i == 19 ? "Connection: close\r\n" : "") + "\r\n" + body;
  }
  const std::string answers = c.Raw(pipeline, 10000);
  size_t at = 0;
  for (int i = 0; i < 20; ++i) {
    const size_t status = answers.find("HTTP/1.1 201", at);
    ASSERT_NE(std::string::npos, status) << "answer " << i << " missing";
    const size_t name =
        answers.find("\"name\":\"p" + std::to_string(i) + "\"", status);
    ASSERT_NE(std::string::npos, name) << "answer " << i << " out of order";
    at = name;
  }
}

TEST(SlowClientsTest, AZeroReadTimeoutOrConnectionCapIsRefusedAtStart) {
  TempDir dir;
  const std::string data = (dir.path() / "data").string();
  for (const std::vector<std::string>& flag :
       {std::vector<std::string>{"--read-timeout", "0"},
        std::vector<std::string>{"--max-connections", "0"}}) {
    std::vector<std::string> args = {"serve", "--listen", "127.0.0.1:0",
                                     "--data-dir", data};
    args.insert(args.end(), flag.begin(), flag.end());
    CommandResult r = RunConvstore(args, {}, 20000);
    EXPECT_NE(0, r.exit_code) << Describe(r);
    EXPECT_FALSE(r.timed_out) << "the server started with " << flag[0] << " 0";
    EXPECT_NE(std::string::npos, r.err.find(flag[0])) << Describe(r);
  }
  EXPECT_FALSE(std::filesystem::exists(data)) << "a refused start made a store";
}

}  // namespace
}  // namespace convstore::testing
