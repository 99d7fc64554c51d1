#include "tests/support/test_server.h"

#include <gtest/gtest.h>

#include <random>
#include <stdexcept>

namespace convstore::testing {

TempDir::TempDir() {
  std::random_device rd;
  auto base = std::filesystem::temp_directory_path();
  for (int i = 0; i < 100; ++i) {
    auto candidate = base / ("convstore-test-" + std::to_string(rd()));
    if (std::filesystem::create_directory(candidate)) {
      path_ = candidate;
      return;
    }
  }
  throw std::runtime_error("cannot create a temp dir");
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

TestServer::TestServer(std::string data_dir, http::LiveKitConfig livekit,
                       std::shared_ptr<rocksdb::Env> env,
                       http::ServerOptions server_options,
                       http::AppConfig app_config) {
  if (data_dir.empty()) {
    owned_dir_ = std::make_unique<TempDir>();
    data_dir = (owned_dir_->path() / "data").string();
  }
  data_dir_ = data_dir;
  http::AppConfig config = std::move(app_config);
  config.data_dir = data_dir_;
  config.livekit = livekit;
  config.bootstrap_admin_key = kAdminKey;
  config.env = std::move(env);
  auto app = http::App::Open(config);
  if (!app.ok()) throw std::runtime_error("open: " + app.status().ToString());
  app_ = std::move(*app);
  http::ServerOptions options = std::move(server_options);
  options.host = "127.0.0.1";
  options.port = 0;
  server_ = std::make_unique<http::Server>(*app_, options);
  auto port = server_->Start();
  if (!port.ok()) throw std::runtime_error("start: " + port.status().ToString());
  port_ = *port;
}

TestServer::~TestServer() { Stop(); }

void TestServer::Stop() {
  if (server_) server_->Shutdown();
  server_.reset();
  app_.reset();
}

std::string TestServer::CreateKey(const std::string& user_id, bool admin) {
  HttpClient client(port_);
  std::string body = "{\"user_id\":\"" + user_id + "\",\"role\":\"" +
                     (admin ? "admin" : "user") + "\"}";
  HttpResponse r = client.Post("/v1/admin/api-keys", kAdminKey, body);
  if (r.status != 201) throw std::runtime_error("create key: " + r.body);
  return std::string(r.json().as_object().at("key").as_string());
}

boost::json::object CreateAgent(HttpClient& client, const std::string& key,
                                const std::string& body) {
  HttpResponse r = client.Post("/v1/agents", key, body);
  EXPECT_EQ(201u, r.status) << r.body;
  return r.json().as_object();
}

boost::json::object CreateConversation(HttpClient& client,
                                       const std::string& key,
                                       const std::string& agent_id,
                                       const std::string& title) {
  std::string body = "{\"agent_id\":\"" + agent_id + "\"";
  if (!title.empty()) body += ",\"title\":\"" + title + "\"";
  body += "}";
  HttpResponse r = client.Post("/v1/conversations", key, body);
  EXPECT_EQ(201u, r.status) << r.body;
  return r.json().as_object();
}

}  // namespace convstore::testing
