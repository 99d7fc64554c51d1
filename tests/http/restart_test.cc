// The real `convstore serve` binary as a child process (API.md, "Running" and
// "Operations"): it announces its port, stops cleanly on SIGTERM, and a
// second start over the same data dir serves byte-identical responses,
// continues the log's positions, and keeps (never reprints or recreates) the
// bootstrap admin key.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/encoding.h"
#include "tests/support/api_assertions.h"
#include "tests/support/test_server.h"

extern char** environ;

namespace convstore::testing {
namespace {

namespace json = boost::json;

constexpr auto kStartTimeout = std::chrono::seconds(20);
constexpr auto kStopTimeout = std::chrono::seconds(20);
constexpr const char* kBootstrapKey = "csk_restart_test_bootstrap_admin_key";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

size_t CountLinesContaining(const std::string& text, std::string_view needle) {
  std::istringstream in(text);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    if (line.find(needle) != std::string::npos) ++n;
  }
  return n;
}

// `convstore serve --listen 127.0.0.1:0 --data-dir DIR` as a child process
// with stdout and stderr in one file. The destructor kills and reaps a child
// still running, so a failing test leaves no process behind.
class ServeProcess {
 public:
  ServeProcess(const std::string& data_dir, const std::string& output_path,
               const std::optional<std::string>& admin_key,
               std::vector<std::string> extra_env = {},
               const std::vector<std::string>& extra_args = {})
      : output_path_(output_path) {
    // The environment of this test, minus every setting of the server, so
    // that only what the test gives counts.
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string_view var(*e);
      if (var.rfind("CONVSTORE_", 0) == 0 || var.rfind("LIVEKIT_", 0) == 0) continue;
      env.emplace_back(var);
    }
    if (admin_key) env.push_back("CONVSTORE_ADMIN_KEY=" + *admin_key);
    for (std::string& var : extra_env) env.push_back(std::move(var));
    std::vector<char*> envp;
    for (std::string& var : env) envp.push_back(var.data());
    envp.push_back(nullptr);

    std::vector<std::string> args = {CONVSTORE_BINARY, "serve",      "--listen",
                                     "127.0.0.1:0",    "--data-dir", data_dir};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, output_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(),
                         envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pid_ = -1;
      ADD_FAILURE() << "posix_spawn " << CONVSTORE_BINARY << ": " << rc;
    }
  }

  ~ServeProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }

  // Polls the output, bounded, for "listening on http://127.0.0.1:PORT";
  // returns PORT, or 0 when the child exits or times out first.
  uint16_t WaitForPort() {
    static const std::regex kListening(R"(listening on http://127\.0\.0\.1:(\d+))");
    auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
    while (pid_ > 0 && std::chrono::steady_clock::now() < deadline) {
      std::string out = Output();
      std::smatch m;
      if (std::regex_search(out, m, kListening)) {
        return static_cast<uint16_t>(std::stoi(m[1]));
      }
      if (Exited()) {
        ADD_FAILURE() << "convstore serve exited before listening:\n" << out;
        return 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "no 'listening on' line within 20 s:\n" << Output();
    return 0;
  }

  // Sends SIGTERM and waits, bounded, for the exit; returns the exit code,
  // or -1 when it did not exit normally in time.
  int Terminate() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + kStopTimeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "convstore serve did not stop within 20 s of SIGTERM";
    return -1;
  }

  std::string Output() const { return ReadFile(output_path_); }

 private:
  bool Exited() {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    return false;
  }

  std::string output_path_;
  pid_t pid_ = -1;
};

// A running child with a client to it.
struct Running {
  std::unique_ptr<ServeProcess> process;
  uint16_t port = 0;
  std::unique_ptr<HttpClient> client;
};

class RestartTest : public ::testing::Test {
 protected:
  std::string DataDir() const { return (dir_.path() / "data").string(); }

  // Starts the binary over DataDir() and waits until it listens.
  Running Start(const std::optional<std::string>& admin_key,
                std::vector<std::string> extra_env = {},
                const std::vector<std::string>& extra_args = {}) {
    Running r;
    std::string output =
        (dir_.path() / ("serve-" + std::to_string(++starts_) + ".out")).string();
    r.process = std::make_unique<ServeProcess>(DataDir(), output, admin_key,
                                               std::move(extra_env), extra_args);
    r.port = r.process->WaitForPort();
    if (r.port != 0) r.client = std::make_unique<HttpClient>(r.port);
    return r;
  }

  TempDir dir_;
  int starts_ = 0;
};

// Writes agents, conversations and messages through `c`; returns the
// targets whose responses must survive a restart.
std::vector<std::string> WriteSomeHistory(HttpClient& c, const std::string& user) {
  std::string agent =
      Str(CreateAgent(c, user,
                      Json({{"name", "Support"},
                            {"instructions", "You are a helpful agent."},
                            {"dispatch_name", "support-agent"},
                            {"metadata", {{"team", "emea"}}}})),
          "id");
  EXPECT_EQ(200u, c.Patch("/v1/agents/" + agent, user,
                          Json({{"name", "Support v2"}})).status);
  std::string conv = Str(CreateConversation(c, user, agent, "Setup"), "id");
  for (const char* text :
       {"Hello! How can I help you today?", "I need help with product setup",
        "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x8E\x99"}) {
    EXPECT_EQ(201u, c.Post("/v1/conversations/" + conv + "/messages", user,
                           Json({{"role", "user"}, {"content", text}}))
                        .status);
  }
  EXPECT_EQ(200u, c.Patch("/v1/conversations/" + conv, user,
                          Json({{"metadata", {{"ticket", "T-1"}}}})).status);
  std::string done = Str(CreateConversation(c, user, agent, "Done"), "id");
  EXPECT_EQ(200u, c.Patch("/v1/conversations/" + done, user,
                          Json({{"status", "completed"}})).status);
  return {"/v1/agents",
          "/v1/agents/" + agent,
          "/v1/conversations",
          "/v1/conversations?limit=1",
          "/v1/conversations/" + conv,
          "/v1/conversations/" + done,
          "/v1/conversations/" + conv + "/messages",
          "/v1/conversations/" + conv + "/messages?limit=2",
          "/v1/conversations/" + done + "/messages"};
}

// Status, ETag, Link and body of a GET, for comparing byte for byte.
std::string Fingerprint(HttpClient& c, const std::string& target,
                        const std::string& key) {
  HttpResponse r = c.Get(target, key);
  return std::to_string(r.status) + " ETag=" + r.header("ETag") +
         " Link=" + r.header("Link") + "\n" + r.body;
}

// ------------------------------------------------------------ tests

TEST_F(RestartTest, SigtermStopsTheServerWithExitCodeZero) {
  Running s = Start(kBootstrapKey);
  ASSERT_NE(0, s.port);
  EXPECT_EQ(200u, s.client->Get("/healthz", "").status);
  EXPECT_EQ(0, s.process->Terminate()) << s.process->Output();
}

TEST_F(RestartTest, EveryResponseIsByteIdenticalAfterARestart) {
  std::vector<std::string> targets;
  std::vector<std::string> before;
  std::string user_key;
  {
    Running s = Start(kBootstrapKey);
    ASSERT_NE(0, s.port);
    HttpResponse key = s.client->Post("/v1/admin/api-keys", kBootstrapKey,
                                      Json({{"user_id", "alice"}}));
    ASSERT_EQ(201u, key.status) << key.body;
    user_key = Str(key.json().as_object(), "key");
    targets = WriteSomeHistory(*s.client, user_key);
    for (const std::string& t : targets) {
      before.push_back(Fingerprint(*s.client, t, user_key));
      EXPECT_EQ(0u, before.back().rfind("200 ", 0)) << t << ": " << before.back();
    }
    before.push_back(Fingerprint(*s.client, "/v1/admin/api-keys", kBootstrapKey));
    ASSERT_EQ(0, s.process->Terminate()) << s.process->Output();
  }

  Running s = Start(kBootstrapKey);
  ASSERT_NE(0, s.port);
  for (size_t i = 0; i < targets.size(); ++i) {
    EXPECT_EQ(before[i], Fingerprint(*s.client, targets[i], user_key))
        << targets[i];
  }
  EXPECT_EQ(before.back(),
            Fingerprint(*s.client, "/v1/admin/api-keys", kBootstrapKey));
  EXPECT_EQ(0, s.process->Terminate()) << s.process->Output();
}

TEST_F(RestartTest, NewEventsContinueTheLogPositions) {
  uint64_t head_before = 0;
  std::string conv;
  {
    Running s = Start(kBootstrapKey);
    ASSERT_NE(0, s.port);
    WriteSomeHistory(*s.client, kBootstrapKey);
    conv = Str(CreateConversation(*s.client, kBootstrapKey,
                                  Str(CreateAgent(*s.client, kBootstrapKey,
                                                  Json({{"name", "a"}})),
                                      "id")),
               "id");
    head_before = LogHead(*s.client);
    ASSERT_GT(head_before, 0u);
    ASSERT_EQ(0, s.process->Terminate()) << s.process->Output();
  }

  Running s = Start(kBootstrapKey);
  ASSERT_NE(0, s.port);
  EXPECT_EQ(head_before, LogHead(*s.client));
  HttpResponse m = s.client->Post("/v1/conversations/" + conv + "/messages",
                                  kBootstrapKey,
                                  Json({{"role", "user"}, {"content", "after"}}));
  ASSERT_EQ(201u, m.status) << m.body;
  EXPECT_EQ(head_before + 1, LogHead(*s.client));

  HttpResponse events = s.client->Get(
      "/v1/admin/events?from=" + std::to_string(head_before), kBootstrapKey);
  ASSERT_EQ(200u, events.status) << events.body;
  json::value listed = events.json();
  ASSERT_EQ(2u, listed.as_array().size()) << events.body;
  const json::object& last = listed.as_array()[1].as_object();
  ASSERT_TRUE(last.at("position").is_number()) << Json(last);
  EXPECT_EQ(head_before + 1, last.at("position").to_number<uint64_t>());
  EXPECT_EQ("MessageAppended", Str(last, "type"));
  EXPECT_EQ(0, s.process->Terminate()) << s.process->Output();
}

TEST_F(RestartTest, AdminKeyFromTheEnvironmentIsCreatedOnceAndNeverPrinted) {
  {
    Running s = Start(kBootstrapKey);
    ASSERT_NE(0, s.port);
    EXPECT_EQ(200u, s.client->Get("/v1/admin/api-keys", kBootstrapKey).status);
    ASSERT_EQ(0, s.process->Terminate());
    std::string out = s.process->Output();
    EXPECT_EQ(std::string::npos, out.find(kBootstrapKey)) << out;
    EXPECT_EQ(0u, CountLinesContaining(out, "csk_")) << out;
  }

  // The second start, even with another key in the environment, keeps the
  // first admin key and creates, prints and accepts no new one.
  const std::string other_key = "csk_restart_test_a_different_admin_key";
  Running s = Start(other_key);
  ASSERT_NE(0, s.port);
  HttpResponse keys = s.client->Get("/v1/admin/api-keys", kBootstrapKey);
  ASSERT_EQ(200u, keys.status) << keys.body;
  EXPECT_EQ(1u, keys.json().as_array().size()) << keys.body;
  EXPECT_EQ(401u, s.client->Get("/v1/admin/api-keys", other_key).status);
  EXPECT_EQ(0, s.process->Terminate());
  std::string out = s.process->Output();
  EXPECT_EQ(0u, CountLinesContaining(out, "csk_")) << out;
  EXPECT_EQ(0u, CountLinesContaining(out, "admin API key")) << out;
}

TEST_F(RestartTest, GeneratedAdminKeyIsPrintedOnceOnTheFirstStartOnly) {
  std::string key;
  {
    Running s = Start(std::nullopt);
    ASSERT_NE(0, s.port);
    std::string out = s.process->Output();
    ASSERT_EQ(1u, CountLinesContaining(out, "csk_")) << out;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(out, m, std::regex(R"((csk_[A-Za-z0-9_-]+))")))
        << out;
    key = m[1];
    EXPECT_EQ(1u, CountLinesContaining(out, key));
    EXPECT_EQ(200u, s.client->Get("/v1/admin/api-keys", key).status);
    ASSERT_EQ(0, s.process->Terminate());
    EXPECT_EQ(1u, CountLinesContaining(s.process->Output(), "csk_"))
        << s.process->Output();
  }

  Running s = Start(std::nullopt);
  ASSERT_NE(0, s.port);
  EXPECT_EQ(200u, s.client->Get("/v1/admin/api-keys", key).status);
  EXPECT_EQ(0, s.process->Terminate());
  std::string out = s.process->Output();
  EXPECT_EQ(0u, CountLinesContaining(out, "csk_")) << out;
}

TEST_F(RestartTest, LiveKitSettingsComeFromTheEnvironmentAndFlagsWin) {
  Running s = Start(kBootstrapKey,
                    {"LIVEKIT_URL=wss://livekit.example.com",
                     "LIVEKIT_API_KEY=prodkey",
                     "LIVEKIT_API_SECRET=prod-secret-value",
                     "CONVSTORE_TOKEN_TTL=60",
                     "CONVSTORE_ROOM_URL_TEMPLATE={livekit_url}"},
                    {"--token-ttl", "120"});
  ASSERT_NE(0, s.port);
  std::string agent =
      Str(CreateAgent(*s.client, kBootstrapKey, Json({{"name", "a"}})), "id");
  json::object c = CreateConversation(*s.client, kBootstrapKey, agent);
  EXPECT_EQ("wss://livekit.example.com", Str(c, "room_url"));

  std::string token = Str(c, "token");
  size_t dot1 = token.find('.');
  size_t dot2 = token.rfind('.');
  ASSERT_TRUE(dot1 != std::string::npos && dot2 > dot1) << token;
  std::optional<std::string> payload =
      Base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  ASSERT_TRUE(payload);
  json::object claims = json::parse(*payload).as_object();
  EXPECT_EQ("prodkey", Str(claims, "iss"));
  EXPECT_EQ(std::optional<std::string>(
                HmacSha256("prod-secret-value", token.substr(0, dot2))),
            Base64UrlDecode(token.substr(dot2 + 1)))
      << "not signed with LIVEKIT_API_SECRET";
  ASSERT_TRUE(claims["exp"].is_int64() && claims["nbf"].is_int64());
  EXPECT_EQ(120, claims["exp"].as_int64() - claims["nbf"].as_int64())
      << "--token-ttl must win over CONVSTORE_TOKEN_TTL";

  EXPECT_EQ(0, s.process->Terminate());
  EXPECT_EQ(std::string::npos, s.process->Output().find("prod-secret-value"))
      << "the LiveKit secret was logged";
}

}  // namespace
}  // namespace convstore::testing
