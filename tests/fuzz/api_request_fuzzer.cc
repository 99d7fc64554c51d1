// libFuzzer target: raw HTTP request bytes through Beast's parser (with the
// server's limits), the same Beast-to-ApiRequest conversion as the server,
// the router and every endpoint's JSON decoding, on a real App over an
// in-memory RocksDB Env (no fsync, nothing on disk).
//
// Inputs are HTTP/1.1 requests. To reach routes with ids, the target expands
// placeholders: {agent} and {conv} are an agent and a conversation owned by
// user "fuzz-user", {other_conv} one owned by "other-user"; {admin_key} and
// {user_key} are API keys. Properties checked on every input:
//  - the App answers (within 10 s) with a status in 200..599;
//  - an error answer (>= 400) carries the contract's error body;
//  - an error answer changes nothing: the log head does not move.
#include <rocksdb/env.h>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <iostream>
#include <memory>
#include <string>

#include "http/app.h"
#include "http/beast_request.h"

namespace {

namespace bhttp = boost::beast::http;
using convstore::http::ApiRequest;
using convstore::http::ApiResponse;
using convstore::http::App;

constexpr const char* kAdminKey = "csk_fuzz_admin_key_0123456789";

struct Fixture {
  std::shared_ptr<rocksdb::Env> env;
  std::unique_ptr<App> app;
  std::string user_key, other_key, agent, conv, other_conv;
};

[[noreturn]] void Fail(const std::string& why) {
  std::cerr << "fuzz property violated: " << why << "\n";
  std::abort();
}

ApiResponse Call(App& app, ApiRequest request) {
  auto promise = std::make_shared<std::promise<ApiResponse>>();
  auto answer = promise->get_future();
  app.Handle(std::move(request),
             [promise](ApiResponse r) { promise->set_value(std::move(r)); });
  if (answer.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    Fail("no answer within 10 s");
  }
  return answer.get();
}

std::string Member(const ApiResponse& r, const char* name) {
  auto v = boost::json::parse(r.body);
  return std::string(v.at(name).as_string());
}

ApiResponse Setup(App& app, const std::string& key, const std::string& target,
                  const std::string& body) {
  ApiRequest req;
  req.method = "POST";
  req.target = target;
  req.authorization = "Bearer " + key;
  req.content_type = "application/json";
  req.body = body;
  ApiResponse r = Call(app, std::move(req));
  if (r.status != 201) Fail("setup " + target + " got " + r.body);
  return r;
}

// A store with the fixture's users, keys, agent and conversations.
std::unique_ptr<Fixture> NewFixture() {
  auto f = std::make_unique<Fixture>();
  f->env.reset(rocksdb::NewMemEnv(rocksdb::Env::Default()));
  convstore::http::AppConfig config;
  config.data_dir = "/fuzz/data";
  config.env = f->env;
  config.bootstrap_admin_key = kAdminKey;
  config.deliver_webhooks = false;  // never reach the network
  auto app = App::Open(config);
  if (!app.ok()) Fail("open: " + app.status().ToString());
  f->app = std::move(*app);
  App& a = *f->app;
  f->user_key = Member(
      Setup(a, kAdminKey, "/v1/admin/api-keys", R"({"user_id":"fuzz-user"})"),
      "key");
  f->other_key = Member(
      Setup(a, kAdminKey, "/v1/admin/api-keys", R"({"user_id":"other-user"})"),
      "key");
  f->agent = Member(Setup(a, f->user_key, "/v1/agents",
                          R"({"name":"fuzz","instructions":"hi"})"),
                    "id");
  f->conv = Member(Setup(a, f->user_key, "/v1/conversations",
                         R"({"agent_id":")" + f->agent + R"("})"),
                   "id");
  std::string other_agent =
      Member(Setup(a, f->other_key, "/v1/agents", R"({"name":"o"})"), "id");
  f->other_conv = Member(Setup(a, f->other_key, "/v1/conversations",
                               R"({"agent_id":")" + other_agent + R"("})"),
                         "id");
  return f;
}

// The store is started afresh every kInputsPerStore inputs, so memory stays
// bounded and an input that deleted the fixture's agent or completed its
// conversation does not blind the rest of the run. It is closed at exit:
// RocksDB's threads must not outlive the process's static objects.
constexpr int kInputsPerStore = 5000;
std::unique_ptr<Fixture> g_fixture;
int g_inputs = 0;

Fixture& GetFixture() {
  if (!g_fixture || ++g_inputs >= kInputsPerStore) {
    g_fixture.reset();
    g_fixture = NewFixture();
    g_inputs = 0;
    static const bool registered =
        (std::atexit([] { g_fixture.reset(); }) == 0);
    (void)registered;
  }
  return *g_fixture;
}

void ReplaceAll(std::string& s, std::string_view from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos;
       at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

bool IsErrorBody(const std::string& body) {
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return false;
  auto* err = v.as_object().if_contains("error");
  if (!err || !err->is_object()) return false;
  const auto& e = err->as_object();
  return e.size() == 4 && e.contains("message") && e.contains("type") &&
         e.contains("param") && e.contains("code") &&
         e.at("message").is_string() && e.at("type").is_string();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture& f = GetFixture();
  std::string raw(reinterpret_cast<const char*>(data), size);
  ReplaceAll(raw, "{admin_key}", kAdminKey);
  ReplaceAll(raw, "{user_key}", f.user_key);
  ReplaceAll(raw, "{agent}", f.agent);
  ReplaceAll(raw, "{other_conv}", f.other_conv);
  ReplaceAll(raw, "{conv}", f.conv);

  // The server's limits: 16 KiB of headers, 1 MiB of body.
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(1 << 20);
  parser.eager(true);
  boost::system::error_code ec;
  size_t used = parser.put(boost::asio::buffer(raw), ec);
  (void)used;
  if (ec == bhttp::error::need_more) parser.put_eof(ec);
  if (ec || !parser.is_done()) return 0;  // the server answers 400/413/431

  ApiRequest request = convstore::http::ToApiRequest(parser.release());
  // Backups write to the real filesystem at a path from the body: not here.
  if (request.target.rfind("/v1/admin/backups", 0) == 0) return 0;
  const uint64_t head_before = f.app->log().head();
  ApiResponse r = Call(*f.app, std::move(request));
  if (r.status < 200 || r.status > 599)
    Fail("status " + std::to_string(r.status));
  if (r.status >= 400) {
    if (!IsErrorBody(r.body)) Fail("error without the error body: " + r.body);
    if (f.app->log().head() != head_before) {
      Fail("a " + std::to_string(r.status) + " answer moved the log head");
    }
  }
  if (r.stream) {  // drain a streamed body (bounded by the store's size)
    for (int i = 0; i < 100000; ++i) {
      auto chunk = r.stream->NextChunk(64 * 1024);
      if (!chunk.ok()) Fail("stream failed: " + chunk.status().ToString());
      if (!*chunk) break;
    }
  }
  return 0;
}
