// Test support: what the HTTP and tools suites check over and over, in one
// place. Offers
//  - the contract's error body: IsError (status, Content-Type, and exactly
//    {"error":{"message","type","param","code"}}), ErrorField/Param/Code;
//  - paging and the log: NextLink (strict `Link: <target>; rel="next"`),
//    LogHead (convstore_log_head_position from /metrics), AdminEvents;
//  - JSON reading: Json, Parsed, Keys, Str, U64, Ids, MessageBody;
//  - time: kTimestamp, kUuidV7, NowMillis, WaitForClockPast;
//  - fixtures: Workers (joined background threads) and AliceAndBobTest (a
//    TestServer with a client and the keys of two users).
// Helpers report through gtest (EXPECT/ADD_FAILURE) and never throw on a
// malformed response unless noted.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/test_server.h"

namespace convstore::testing {

// The bootstrap admin key of every server the suites start.
inline const char* const kAdmin = TestServer::kAdminKey;

// An RFC 3339 timestamp with milliseconds in UTC, as the API writes them.
extern const std::regex kTimestamp;
// A bare UUIDv7 (lower-case hex).
extern const std::regex kUuidV7;

// ------------------------------------------------------------ JSON

std::string Json(const boost::json::value& v);

// The parsed body, or a string describing a body that is not JSON (so that a
// comparison fails with the body in its message instead of throwing).
boost::json::value Parsed(const HttpResponse& r);

// The member names of an object (of `v`, which must be an object).
std::set<std::string> Keys(const boost::json::object& o);
std::set<std::string> Keys(const boost::json::value& v);

// The string member `key`; "<absent>" or "<not a string: ...>" otherwise.
// The json::value overload requires an object.
std::string Str(const boost::json::object& o, std::string_view key);
std::string Str(const boost::json::value& v, std::string_view key);

// The non-negative integer member `key` of an object; ~0 otherwise.
uint64_t U64(const boost::json::value& v, std::string_view key);

// The "id" of every object of `items`, in order.
std::vector<std::string> Ids(const boost::json::array& items);

// {"role":"user","content":content}.
std::string MessageBody(const std::string& content);

// ------------------------------------------------------------ errors

// Status, content type and the contract's error body
// {"error":{"message","type","param","code"}} with the given type (and, when
// given, the given string param).
::testing::AssertionResult IsError(
    const HttpResponse& r, unsigned status, std::string_view type,
    std::optional<std::string_view> param = std::nullopt);

// An authentication failure: 401, the error body, `WWW-Authenticate: Bearer`.
::testing::AssertionResult IsUnauthenticated(const HttpResponse& r);

// The methods listed in an Allow header.
std::set<std::string> AllowedMethods(const HttpResponse& r);

// The error body's "param" or "code"; "null" for JSON null, "<none>" without
// an error body, "<absent>" without the field.
std::string ErrorField(const HttpResponse& r, std::string_view field);
std::string ErrorParam(const HttpResponse& r);
std::string ErrorCode(const HttpResponse& r);

// ------------------------------------------------------------ paging, log

// The target of a `Link: <target>; rel="next"` header; "" without one. A
// Link header of any other form fails the test.
std::string NextLink(const HttpResponse& r);

// A metric without labels from GET /metrics (expects 200), as an integer.
uint64_t MetricValue(HttpClient& client, std::string_view name);
// convstore_log_head_position from GET /metrics (expects 200).
uint64_t LogHead(HttpClient& client);

// Every envelope of the log through GET /v1/admin/events (admin key).
std::vector<boost::json::value> AdminEvents(uint16_t port);

// ------------------------------------------------------------ time

int64_t NowMillis();

// Waits, bounded, until the wall clock is past `timestamp` (RFC 3339 with
// milliseconds), so that a write made afterwards gets a later timestamp.
void WaitForClockPast(const std::string& timestamp);

// ------------------------------------------------------------ fixtures

// Background threads that are told to stop and joined however the test
// leaves the scope (an ASSERT included).
class Workers {
 public:
  explicit Workers(std::atomic<bool>& stop) : stop_(stop) {}
  ~Workers() { StopAndJoin(); }
  template <typename F>
  void Add(F f) {
    threads_.emplace_back(std::move(f));
  }
  void StopAndJoin() {
    stop_ = true;
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  std::atomic<bool>& stop_;
  std::vector<std::thread> threads_;
};

// A fresh TestServer, a client of it, and the API keys of users "alice" and
// "bob" (created in that order).
class AliceAndBobTest : public ::testing::Test {
 protected:
  AliceAndBobTest() : AliceAndBobTest(http::AppConfig{}) {}
  // The server with `config` (e.g. faster webhook retries).
  explicit AliceAndBobTest(http::AppConfig config)
      : server_("", {}, nullptr, {}, std::move(config)),
        client_(server_.Client()),
        alice_(server_.CreateKey("alice")),
        bob_(server_.CreateKey("bob")) {}

  TestServer server_;
  HttpClient client_;
  std::string alice_;
  std::string bob_;
};

}  // namespace convstore::testing
