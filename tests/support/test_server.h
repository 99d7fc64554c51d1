// Test support: a real convstore server (App + Beast Server) on an ephemeral
// 127.0.0.1 port over a fresh RocksDB directory in a temp folder, and a small
// blocking HTTP/1.1 client that talks to it over a real socket.
// Not thread-safe per object; use one HttpClient per thread.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/app.h"
#include "http/client.h"
#include "http/server.h"

namespace convstore::testing {

// A temp directory removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

using HttpResponse = http::HttpResponse;
using HttpClient = http::HttpClient;

// Starts App + Server over `data_dir` (a TempDir of its own when empty).
class TestServer {
 public:
  static constexpr const char* kAdminKey = "csk_test_admin_key_0123456789";

  // `server_options` and `app_config` adjust the defaults (their host, port,
  // data dir, LiveKit settings and admin key are set here).
  explicit TestServer(std::string data_dir = "",
                      http::LiveKitConfig livekit = {},
                      std::shared_ptr<rocksdb::Env> env = nullptr,
                      http::ServerOptions server_options = {},
                      http::AppConfig app_config = {});
  ~TestServer();

  uint16_t port() const { return port_; }
  const std::string& data_dir() const { return data_dir_; }
  http::App& app() { return *app_; }
  HttpClient Client() const { return HttpClient(port_); }

  // Creates an API key for `user_id` through the admin API; returns the key.
  std::string CreateKey(const std::string& user_id, bool admin = false);
  // Graceful stop, as on SIGTERM; the data dir stays.
  void Stop();

 private:
  std::unique_ptr<TempDir> owned_dir_;
  std::string data_dir_;
  std::unique_ptr<http::App> app_;
  std::unique_ptr<http::Server> server_;
  uint16_t port_ = 0;
};

// Creates an agent and returns its JSON (asserting 201).
boost::json::object CreateAgent(HttpClient& client, const std::string& key,
                                const std::string& body);
boost::json::object CreateConversation(HttpClient& client,
                                       const std::string& key,
                                       const std::string& agent_id,
                                       const std::string& title = "");

}  // namespace convstore::testing
