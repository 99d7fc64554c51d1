// Webhooks end to end (README "The API"; the webhook contract): a user
// registers a URL for kinds of events of their own conversations, and a real
// server POSTs each one there, signed with the secret shown once at creation,
// at least once, in log order per conversation, retrying a failing receiver
// with backoff (tens of milliseconds here) until it accepts or the attempts
// run out, and across a restart. The receiver is a real HTTP server on
// 127.0.0.1 (tests/support/webhook_receiver.h); it dedupes on the delivery
// id as a real one must. Every wait is bounded.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/webhook_signature.h"
#include "eventlog/event_log.h"
#include "tests/support/api_assertions.h"
#include "tests/support/test_server.h"
#include "tests/support/webhook_receiver.h"

namespace convstore::testing {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;
using Extra = std::vector<std::pair<std::string, std::string>>;

// The longest any test waits for a delivery or an attempt to show.
constexpr milliseconds kWait{10000};

const std::regex kWebhookId(
    "wh_[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
const std::regex kSecret("whsec_[A-Za-z0-9_-]{43}");
const std::regex kDeliveryId("dlv_[0-9a-f]{32}");

const std::vector<std::string> kAllKinds = {
    "conversation.created", "message.created", "conversation.status_changed",
    "conversation.completed"};

// Retries after tens of milliseconds instead of seconds, so that a test sees
// several attempts quickly.
http::AppConfig FastRetries(int max_attempts = WebhookMaxAttempts(),
                            milliseconds timeout = milliseconds(2000)) {
  http::AppConfig config;
  config.webhook_retry_base = milliseconds(20);
  config.webhook_max_attempts = max_attempts;
  config.webhook_timeout = timeout;
  return config;
}

json::array Strings(const std::vector<std::string>& items) {
  json::array out;
  for (const std::string& s : items) out.emplace_back(s);
  return out;
}

// ------------------------------------------------------------ deliveries

// One delivery request as its receiver reads it.
struct Delivery {
  std::string method;
  std::string target;
  std::string id;         // Convstore-Delivery
  std::string event;      // Convstore-Event
  std::string signature;  // Convstore-Signature
  std::string content_type;
  std::string raw;   // the body's bytes
  json::value body;  // the parsed body; a string saying why when not JSON

  bool ok() const { return body.is_object(); }
  std::string type() const { return ok() ? Str(body, "type") : ""; }
  uint64_t position() const { return ok() ? U64(body, "position") : 0; }
  json::value data() const {
    const json::value* d =
        ok() ? body.as_object().if_contains("data") : nullptr;
    return d ? *d : json::value();
  }
  // The conversation the event is about.
  std::string conversation() const {
    const json::value d = data();
    if (!d.is_object()) return "";
    return Str(d, type() == "conversation.created" ? "id" : "conversation_id");
  }
};

Delivery Parse(const Recorded& r) {
  Delivery d;
  d.method = r.method;
  d.target = r.target;
  d.id = Header(r, "Convstore-Delivery");
  d.event = Header(r, "Convstore-Event");
  d.signature = Header(r, "Convstore-Signature");
  d.content_type = Header(r, "Content-Type");
  d.raw = r.body;
  boost::system::error_code ec;
  d.body = json::parse(r.body, ec);
  if (ec || !d.body.is_object()) {
    d.body = json::value("<not a JSON object: " + r.body.substr(0, 200) + ">");
  }
  return d;
}

// The requests to `path` (all of them when empty), in arrival order.
std::vector<Delivery> Parse(const std::vector<Recorded>& requests,
                            std::string_view path = "") {
  std::vector<Delivery> out;
  for (const Recorded& r : requests) {
    if (path.empty() || r.target == path) out.push_back(Parse(r));
  }
  return out;
}

// The first request of each delivery id, in arrival order: deliveries are
// at least once, so a receiver dedupes on the id.
std::vector<Delivery> Deduped(const std::vector<Delivery>& deliveries) {
  std::set<std::string> seen;
  std::vector<Delivery> out;
  for (const Delivery& d : deliveries) {
    if (seen.insert(d.id).second) out.push_back(d);
  }
  return out;
}

// Those about conversation `conv`.
std::vector<Delivery> About(const std::vector<Delivery>& deliveries,
                            const std::string& conv) {
  std::vector<Delivery> out;
  for (const Delivery& d : deliveries) {
    if (d.conversation() == conv) out.push_back(d);
  }
  return out;
}

std::vector<std::string> Types(const std::vector<Delivery>& deliveries) {
  std::vector<std::string> out;
  for (const Delivery& d : deliveries) out.push_back(d.type());
  return out;
}

// The data of each delivery.
json::array Data(const std::vector<Delivery>& deliveries) {
  json::array out;
  for (const Delivery& d : deliveries) out.push_back(d.data());
  return out;
}

// For Receiver::WaitFor: at least `n` distinct delivery ids (on `path`, or
// anywhere when empty).
std::function<bool(const std::vector<Recorded>&)> DistinctAtLeast(
    size_t n, std::string path = "") {
  return [n, path](const std::vector<Recorded>& requests) {
    std::set<std::string> ids;
    for (const Recorded& r : requests) {
      if (path.empty() || r.target == path) {
        ids.insert(Header(r, "Convstore-Delivery"));
      }
    }
    return ids.size() >= n;
  };
}

// What a receiver checks before trusting a delivery: a JSON POST whose
// signature verifies with the webhook's secret now, whose body is the
// documented envelope and whose headers agree with it.
::testing::AssertionResult IsSignedDelivery(const Delivery& d,
                                            const std::string& secret,
                                            const std::string& webhook_id) {
  auto failure = [&]() {
    return ::testing::AssertionFailure()
           << "delivery " << d.id << " (" << d.raw.substr(0, 300) << "): ";
  };
  if (d.method != "POST") return failure() << "method " << d.method;
  if (d.content_type.rfind("application/json", 0) != 0) {
    return failure() << "Content-Type '" << d.content_type << "'";
  }
  if (!VerifyWebhookSignature(d.signature, secret, d.raw, NowMillis() / 1000,
                              300)) {
    return failure() << "signature '" << d.signature << "' does not verify";
  }
  if (!d.ok()) return failure() << "body is not a JSON object";
  const std::set<std::string> keys = {"id",       "type",       "webhook_id",
                                      "position", "created_at", "data"};
  if (Keys(d.body) != keys) return failure() << "members " << Json(d.body);
  if (!std::regex_match(d.id, kDeliveryId) || Str(d.body, "id") != d.id) {
    return failure() << "Convstore-Delivery '" << d.id << "'";
  }
  if (d.event != d.type()) return failure() << "Convstore-Event " << d.event;
  if (Str(d.body, "webhook_id") != webhook_id) {
    return failure() << "webhook_id, want " << webhook_id;
  }
  if (U64(d.body, "position") == ~uint64_t{0} || d.position() == 0) {
    return failure() << "position";
  }
  if (!std::regex_match(Str(d.body, "created_at"), kTimestamp)) {
    return failure() << "created_at";
  }
  if (!d.data().is_object()) return failure() << "data";
  return ::testing::AssertionSuccess();
}

// ------------------------------------------------------------ fixture

class WebhooksTest : public AliceAndBobTest {
 protected:
  WebhooksTest() : WebhooksTest(FastRetries()) {}
  explicit WebhooksTest(http::AppConfig config)
      : AliceAndBobTest(std::move(config)) {
    // With instructions: every conversation starts with a system message.
    agent_ = Str(CreateAgent(client_, alice_,
                             R"({"name":"Support","instructions":"Be kind."})"),
                 "id");
  }

  HttpResponse PostWebhook(const std::string& key, const json::value& body,
                           Extra extra = {}) {
    return client_.Post("/v1/webhooks", key, Json(body), std::move(extra));
  }

  // Registers `url` for `events` (asserting 201); returns the created object
  // (with its secret).
  json::object Subscribe(const std::string& url,
                         const std::vector<std::string>& events,
                         const std::string& key = "") {
    HttpResponse r = PostWebhook(key.empty() ? alice_ : key,
                                 {{"url", url}, {"events", Strings(events)}});
    EXPECT_EQ(201u, r.status) << r.body;
    json::value v = Parsed(r);
    return v.is_object() ? v.as_object() : json::object();
  }

  std::string NewConversation(const std::string& key = "",
                              const std::string& agent = "") {
    return Str(CreateConversation(client_, key.empty() ? alice_ : key,
                                  agent.empty() ? agent_ : agent),
               "id");
  }

  // GET /v1/conversations/{conv} (asserting 200).
  json::value Conversation(const std::string& conv) {
    HttpResponse r = client_.Get("/v1/conversations/" + conv, alice_);
    EXPECT_EQ(200u, r.status) << r.body;
    return Parsed(r);
  }

  HttpResponse SetStatus(const std::string& conv, const char* status,
                         const std::string& key = "") {
    return client_.Patch("/v1/conversations/" + conv,
                         key.empty() ? alice_ : key,
                         Json({{"status", status}}));
  }

  std::string agent_;
};

// Appends a user message (asserting 201); returns it as the API rendered it.
json::value Say(HttpClient& client, const std::string& key,
                const std::string& conv, const std::string& content) {
  HttpResponse r = client.Post("/v1/conversations/" + conv + "/messages", key,
                               MessageBody(content));
  EXPECT_EQ(201u, r.status) << r.body;
  return Parsed(r);
}

// GET .../messages: the whole transcript, oldest first.
json::array Messages(HttpClient& client, const std::string& key,
                     const std::string& conv) {
  HttpResponse r = client.Get("/v1/conversations/" + conv + "/messages", key);
  EXPECT_EQ(200u, r.status) << r.body;
  json::value v = Parsed(r);
  return v.is_array() ? v.as_array() : json::array();
}

// The webhook's recorded attempts, oldest first (the route lists them newest
// first).
json::array AttemptsOldestFirst(HttpClient& client, const std::string& key,
                                const std::string& webhook) {
  HttpResponse r =
      client.Get("/v1/webhooks/" + webhook + "/deliveries?limit=100", key);
  EXPECT_EQ(200u, r.status) << r.body;
  json::value v = Parsed(r);
  if (!v.is_array()) return {};
  json::array out(v.as_array().rbegin(), v.as_array().rend());
  return out;
}

// Polls the attempts (bounded) until `done` holds; returns the last seen.
// The route is read, not waited on: an attempt is recorded after its answer.
json::array WaitForAttempts(
    HttpClient& client, const std::string& key, const std::string& webhook,
    const std::function<bool(const json::array&)>& done) {
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  json::array attempts = AttemptsOldestFirst(client, key, webhook);
  while (!done(attempts) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
    attempts = AttemptsOldestFirst(client, key, webhook);
  }
  return attempts;
}

// An attempt as documented, with the given delivery, number, outcome and
// status (nullopt: no response arrived).
::testing::AssertionResult IsAttempt(const json::value& a,
                                     const std::string& delivery_id,
                                     uint64_t attempt, std::string_view outcome,
                                     std::optional<unsigned> status) {
  auto failure = [&]() {
    return ::testing::AssertionFailure() << Json(a) << ": ";
  };
  if (!a.is_object()) return failure() << "not an object";
  const std::set<std::string> keys = {
      "delivery_id",     "event_type", "position", "attempt",
      "attempted_at",    "outcome",    "status",   "error",
      "next_attempt_at", "duration_ms"};
  if (Keys(a) != keys) return failure() << "members";
  const json::object& o = a.as_object();
  if (Str(o, "delivery_id") != delivery_id) {
    return failure() << "delivery_id, want " << delivery_id;
  }
  if (U64(a, "attempt") != attempt) return failure() << "attempt " << attempt;
  if (Str(o, "outcome") != outcome) return failure() << "outcome " << outcome;
  if (status ? (U64(a, "status") != *status) : !o.at("status").is_null()) {
    return failure() << "status, want "
                     << (status ? std::to_string(*status) : "null");
  }
  if (!std::regex_match(Str(o, "attempted_at"), kTimestamp)) {
    return failure() << "attempted_at";
  }
  if (U64(a, "duration_ms") == ~uint64_t{0}) return failure() << "duration_ms";
  // Only a delivery that will be tried again says when.
  const json::value& next = o.at("next_attempt_at");
  if (outcome == "retrying"
          ? !(next.is_string() &&
              std::regex_match(std::string(next.as_string()), kTimestamp))
          : !next.is_null()) {
    return failure() << "next_attempt_at";
  }
  if (outcome == "delivered" && !o.at("error").is_null()) {
    return failure() << "error on success";
  }
  return ::testing::AssertionSuccess();
}

// Polls /metrics (bounded) until metric `name` is `want`; returns the last
// value seen.
uint64_t WaitForMetric(HttpClient& client, std::string_view name,
                       uint64_t want) {
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  uint64_t value = MetricValue(client, name);
  while (value != want && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
    value = MetricValue(client, name);
  }
  return value;
}

// ------------------------------------------------------------ the routes

TEST_F(WebhooksTest, CreateShowsTheSecretOnceAndGetNever) {
  HttpResponse r = PostWebhook(
      alice_, {{"url", "http://127.0.0.1:9/hooks/convstore?team=7"},
               {"events", Strings({"message.created", "conversation.created"})},
               {"description", "CRM sync"}});
  ASSERT_EQ(201u, r.status) << r.body;
  const json::value created = Parsed(r);
  ASSERT_TRUE(created.is_object()) << r.body;
  EXPECT_EQ(Keys(created),
            (std::set<std::string>{"id", "user_id", "url", "events",
                                   "description", "created_at", "secret"}));
  const std::string id = Str(created, "id");
  EXPECT_TRUE(std::regex_match(id, kWebhookId)) << id;
  EXPECT_EQ("/v1/webhooks/" + id, r.header("Location"));
  EXPECT_EQ("alice", Str(created, "user_id"));
  EXPECT_EQ("http://127.0.0.1:9/hooks/convstore?team=7", Str(created, "url"));
  EXPECT_EQ(json::value(Strings({"message.created", "conversation.created"})),
            created.at("events"));
  EXPECT_EQ("CRM sync", Str(created, "description"));
  EXPECT_TRUE(std::regex_match(Str(created, "created_at"), kTimestamp));
  EXPECT_TRUE(std::regex_match(Str(created, "secret"), kSecret))
      << Str(created, "secret");

  json::object shown = created.as_object();
  shown.erase("secret");
  HttpResponse one = client_.Get("/v1/webhooks/" + id, alice_);
  ASSERT_EQ(200u, one.status) << one.body;
  EXPECT_EQ(json::value(shown), Parsed(one));
  HttpResponse list = client_.Get("/v1/webhooks", alice_);
  ASSERT_EQ(200u, list.status) << list.body;
  EXPECT_EQ(json::value(json::array{shown}), Parsed(list));
  EXPECT_EQ(std::string::npos, one.body.find("whsec_"));
  EXPECT_EQ(std::string::npos, list.body.find("whsec_"));

  // Without a description it is null; the list is oldest first.
  const json::object second =
      Subscribe("https://127.0.0.1:9/other", {"conversation.completed"});
  EXPECT_TRUE(second.at("description").is_null());
  EXPECT_NE(Str(created, "secret"), Str(second, "secret"));
  EXPECT_EQ((std::vector<std::string>{id, Str(second, "id")}),
            Ids(Parsed(client_.Get("/v1/webhooks", alice_)).as_array()));
}

TEST_F(WebhooksTest, InvalidCreationsAre400AndCreateNothing) {
  const json::array events = Strings({"message.created"});
  const std::string host = "http://127.0.0.1:9";
  struct Case {
    json::value body;
    const char* param;
  };
  const std::vector<Case> cases = {
      {{{"url", "mailto:ops@example.com"}, {"events", events}}, "url"},
      {{{"url", "ftp://127.0.0.1/hook"}, {"events", events}}, "url"},
      {{{"url", "/relative/hook"}, {"events", events}}, "url"},
      {{{"url", "http:///hook"}, {"events", events}}, "url"},
      {{{"url", "http://user:pw@127.0.0.1/hook"}, {"events", events}}, "url"},
      {{{"url", host + "/hook#part"}, {"events", events}}, "url"},
      {{{"url", host + "/" + std::string(2048, 'a')}, {"events", events}},
       "url"},
      {{{"url", 7}, {"events", events}}, "url"},
      {{{"events", events}}, "url"},
      {{{"url", host}}, "events"},
      {{{"url", host}, {"events", json::array{}}}, "events"},
      {{{"url", host}, {"events", "message.created"}}, "events"},
      {{{"url", host}, {"events", Strings({"message.deleted"})}}, "events"},
      {{{"url", host}, {"events", json::array{1}}}, "events"},
      {{{"url", host},
        {"events", Strings({"message.created", "message.created"})}},
       "events"},
      {{{"url", host},
        {"events", events},
        {"description", std::string(501, 'd')}},
       "description"},
      {{{"url", host}, {"events", events}, {"description", 5}}, "description"},
  };
  for (const Case& c : cases) {
    EXPECT_TRUE(IsError(PostWebhook(alice_, c.body), 400,
                        "invalid_request_error", c.param))
        << Json(c.body).substr(0, 200);
  }
  HttpResponse list = client_.Get("/v1/webhooks", alice_);
  EXPECT_EQ(200u, list.status);
  EXPECT_EQ(json::value(json::array{}), Parsed(list));
}

TEST_F(WebhooksTest, LimitsAreInclusiveAndCountCodePoints) {
  // 2048 bytes of URL; 500 code points (1000 bytes) of description.
  const std::string url = "http://127.0.0.1:9/" + std::string(2048 - 19, 'a');
  ASSERT_EQ(2048u, url.size());
  std::string description;
  for (int i = 0; i < 500; ++i) description += "\xc3\xa9";  // é
  HttpResponse r = PostWebhook(alice_, {{"url", url},
                                        {"events", Strings(kAllKinds)},
                                        {"description", description}});
  ASSERT_EQ(201u, r.status) << r.body.substr(0, 300);
  EXPECT_EQ(url, Str(Parsed(r), "url"));
  EXPECT_EQ(description, Str(Parsed(r), "description"));
  EXPECT_EQ(json::value(Strings(kAllKinds)), Parsed(r).at("events"));
}

TEST_F(WebhooksTest, OthersWebhooksAreForbiddenAndUnknownOnesNotFound) {
  const std::string id =
      Str(Subscribe("http://127.0.0.1:9/hook", {"message.created"}), "id");
  const std::string base = "/v1/webhooks/" + id;

  EXPECT_TRUE(IsError(client_.Get(base, bob_), 403, "permission_error"));
  EXPECT_TRUE(IsError(client_.Delete(base, bob_), 403, "permission_error"));
  EXPECT_TRUE(IsError(client_.Get(base + "/deliveries", bob_), 403,
                      "permission_error"));
  EXPECT_EQ(json::value(json::array{}),
            Parsed(client_.Get("/v1/webhooks", bob_)));
  // An admin may look at anyone's, but lists only their own.
  EXPECT_EQ(200u, client_.Get(base, kAdmin).status);
  EXPECT_EQ(json::value(json::array{}),
            Parsed(client_.Get("/v1/webhooks", kAdmin)));
  // Bob's DELETE changed nothing.
  EXPECT_EQ(200u, client_.Get(base, alice_).status);

  const std::string unknown =
      "/v1/webhooks/wh_01890a5d-ac96-774b-bcce-b302099a8057";
  EXPECT_TRUE(IsError(client_.Get(unknown, alice_), 404, "not_found_error"));
  EXPECT_TRUE(IsError(client_.Delete(unknown, alice_), 404, "not_found_error"));
  EXPECT_TRUE(IsError(client_.Get(unknown + "/deliveries", alice_), 404,
                      "not_found_error"));
  EXPECT_TRUE(IsError(client_.Get("/v1/webhooks/nonsense", alice_), 404,
                      "not_found_error"));

  EXPECT_TRUE(IsUnauthenticated(client_.Get("/v1/webhooks", "")));
  EXPECT_TRUE(IsUnauthenticated(client_.Post(
      "/v1/webhooks", "", R"({"url":"http://127.0.0.1:9","events":[]})")));
}

TEST_F(WebhooksTest, DeliveriesRouteTakesALimitFrom1To100) {
  const std::string id =
      Str(Subscribe("http://127.0.0.1:9/hook", {"message.created"}), "id");
  const std::string route = "/v1/webhooks/" + id + "/deliveries";
  for (const char* bad : {"0", "101", "-1", "ten", ""}) {
    EXPECT_TRUE(IsError(client_.Get(route + "?limit=" + bad, alice_), 400,
                        "invalid_request_error", "limit"))
        << bad;
  }
  for (const char* good : {"1", "100"}) {
    HttpResponse r = client_.Get(route + "?limit=" + good, alice_);
    EXPECT_EQ(200u, r.status) << good << ": " << r.body;
    EXPECT_EQ(json::value(json::array{}), Parsed(r));
  }
  EXPECT_EQ(json::value(json::array{}), Parsed(client_.Get(route, alice_)));
}

TEST_F(WebhooksTest, DeletedWebhookIsGoneAndGetsNoMoreDeliveries) {
  // Before the webhooks: its system message is not delivered.
  const std::string conv = NewConversation();
  Receiver receiver;
  const json::object gone =
      Subscribe(receiver.url("/gone"), {"message.created"});
  const json::object kept =
      Subscribe(receiver.url("/kept"), {"message.created"});
  Say(client_, alice_, conv, "before");
  receiver.WaitFor(
      [](const std::vector<Recorded>& r) {
        return DistinctAtLeast(1, "/gone")(r) && DistinctAtLeast(1, "/kept")(r);
      },
      kWait);
  ASSERT_EQ(1u, Deduped(Parse(receiver.requests(), "/gone")).size());

  const std::string route = "/v1/webhooks/" + Str(gone, "id");
  HttpResponse del = client_.Delete(route, alice_);
  EXPECT_EQ(204u, del.status) << del.body;
  EXPECT_EQ("", del.body);
  EXPECT_TRUE(IsError(client_.Get(route, alice_), 404, "not_found_error"));
  EXPECT_TRUE(IsError(client_.Delete(route, alice_), 404, "not_found_error"));
  EXPECT_TRUE(IsError(client_.Get(route + "/deliveries", alice_), 404,
                      "not_found_error"));
  EXPECT_EQ((std::vector<std::string>{Str(kept, "id")}),
            Ids(Parsed(client_.Get("/v1/webhooks", alice_)).as_array()));

  const std::string after = Str(Say(client_, alice_, conv, "after"), "id");
  receiver.WaitFor(DistinctAtLeast(2, "/kept"), kWait);
  ASSERT_EQ(2u, Deduped(Parse(receiver.requests(), "/kept")).size());
  // The deleted one had as long as the kept one, and a little more.
  std::this_thread::sleep_for(milliseconds(300));
  for (const Delivery& d : Parse(receiver.requests(), "/gone")) {
    EXPECT_NE(after, Str(d.data(), "id")) << d.raw;
  }

  // Nothing of the deleted one's attempts stays in the store.
  server_.Stop();
  EventLogOptions read_only;
  read_only.read_only = true;
  auto log = EventLog::Open(server_.data_dir(), read_only);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  std::set<std::string> attempted;  // by webhook id
  std::unique_ptr<rocksdb::Iterator> it((*log)->db()->NewIterator(
      rocksdb::ReadOptions(), (*log)->cf("webhook_attempts")));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string key = it->key().ToString();
    attempted.insert(key.substr(0, key.find('/')));
  }
  ASSERT_TRUE(it->status().ok()) << it->status().ToString();
  EXPECT_EQ(std::set<std::string>{Str(kept, "id")}, attempted);
}

TEST_F(WebhooksTest, RetriesOfAnErasedConversationStop) {
  Receiver failing({.status = 500});
  Subscribe(failing.url(), {"message.created"});
  const std::string conv = NewConversation();
  Say(client_, alice_, conv, "to be erased");
  // Retried every few tens of ms (FastRetries) while the receiver fails.
  failing.WaitFor([](const std::vector<Recorded>& r) { return r.size() >= 3; },
                  kWait);
  ASSERT_GE(failing.count(), 3u);

  ASSERT_EQ(204u, client_.Delete("/v1/conversations/" + conv, alice_).status);
  std::this_thread::sleep_for(milliseconds(300));  // one in flight may land
  const size_t after_erasure = failing.count();
  std::this_thread::sleep_for(milliseconds(1000));
  EXPECT_EQ(after_erasure, failing.count())
      << "a retry of an erased conversation's event was still sent";
}

TEST_F(WebhooksTest, IdempotentCreateReplaysWithoutTheSecret) {
  const json::value body = {{"url", "http://127.0.0.1:9/hook"},
                            {"events", Strings({"message.created"})}};
  const Extra key = {{"Idempotency-Key", "create-hook-1"}};
  HttpResponse first = PostWebhook(alice_, body, key);
  ASSERT_EQ(201u, first.status) << first.body;
  HttpResponse replay = PostWebhook(alice_, body, key);
  ASSERT_EQ(201u, replay.status) << replay.body;
  EXPECT_EQ("true", replay.header("Idempotent-Replayed"));
  EXPECT_EQ(first.header("Location"), replay.header("Location"));

  json::object shown = Parsed(first).as_object();
  EXPECT_TRUE(std::regex_match(Str(shown, "secret"), kSecret));
  shown.erase("secret");
  EXPECT_EQ(json::value(shown), Parsed(replay));
  EXPECT_EQ(std::string::npos, replay.body.find("whsec_"));
  EXPECT_EQ(1u, Parsed(client_.Get("/v1/webhooks", alice_)).as_array().size());
}

// ------------------------------------------------------------ deliveries

TEST_F(WebhooksTest, EveryMessageOfConcurrentWritersArrivesSignedAndInOrder) {
  constexpr int kConversations = 4;
  constexpr int kWriters = 8;
  constexpr int kPerWriter = 20;
  constexpr size_t kTotal = kWriters * kPerWriter;
  // Created before the webhook: their system messages are not delivered.
  std::vector<std::string> convs;
  for (int i = 0; i < kConversations; ++i) convs.push_back(NewConversation());
  Receiver receiver;
  const json::object hook = Subscribe(receiver.url(), {"message.created"});

  std::vector<std::vector<std::string>> written(kWriters);
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      HttpClient client(server_.port());
      for (int i = 0; i < kPerWriter; ++i) {
        const std::string content =
            "writer " + std::to_string(w) + " says " + std::to_string(i);
        written[w].push_back(
            Str(Say(client, alice_, convs[w % kConversations], content), "id"));
      }
    });
  }
  for (std::thread& t : writers) t.join();
  std::set<std::string> written_ids;
  for (const auto& ids : written) written_ids.insert(ids.begin(), ids.end());
  ASSERT_EQ(kTotal, written_ids.size());

  receiver.WaitFor(DistinctAtLeast(kTotal), kWait);
  const std::vector<Delivery> all = Parse(receiver.requests());
  for (const Delivery& d : all) {
    EXPECT_TRUE(IsSignedDelivery(d, Str(hook, "secret"), Str(hook, "id")));
    EXPECT_EQ("message.created", d.type());
    EXPECT_EQ("/hook", d.target);
  }
  const std::vector<Delivery> unique = Deduped(all);
  ASSERT_EQ(kTotal, unique.size());
  std::set<std::string> delivered_ids;
  for (const Delivery& d : unique) delivered_ids.insert(Str(d.data(), "id"));
  EXPECT_EQ(written_ids, delivered_ids);

  for (const std::string& conv : convs) {
    json::array expected;
    for (const json::value& m : Messages(client_, alice_, conv)) {
      if (written_ids.count(Str(m, "id"))) expected.push_back(m);
    }
    const std::vector<Delivery> mine = About(unique, conv);
    EXPECT_EQ(expected, Data(mine)) << conv;
    for (size_t i = 1; i < mine.size(); ++i) {
      EXPECT_LT(mine[i - 1].position(), mine[i].position()) << conv;
    }
  }
}

TEST_F(WebhooksTest, FailingReceiverGetsEveryEventOnceItRecovers) {
  const std::string conv = NewConversation();
  // 500 to the first three requests, then 200.
  Receiver receiver({.respond = [](const Recorded&, size_t index) {
    return index < 3 ? 500u : 200u;
  }});
  const json::object hook = Subscribe(receiver.url(), {"message.created"});
  const std::string secret = Str(hook, "secret");
  std::vector<std::string> said;
  for (const char* content : {"one", "two", "three"}) {
    said.push_back(Str(Say(client_, alice_, conv, content), "id"));
  }

  const std::vector<Delivery> all =
      Parse(receiver.WaitFor(DistinctAtLeast(3), kWait));
  ASSERT_GE(all.size(), 6u);
  for (const Delivery& d : all) {
    EXPECT_TRUE(IsSignedDelivery(d, secret, Str(hook, "id")));
  }
  // The first message, four times byte for byte under one delivery id (only
  // the signature's time may differ); the others once each, after it.
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(all[0].raw, all[i].raw) << i;
    EXPECT_EQ(all[0].id, all[i].id) << i;
  }
  EXPECT_EQ(said[0], Str(all[0].data(), "id"));
  std::vector<std::string> order;
  for (const Delivery& d : Deduped(all)) order.push_back(Str(d.data(), "id"));
  EXPECT_EQ(said, order);
  EXPECT_EQ(6u, all.size()) << "an accepted delivery was sent again";

  // The deliveries route tells the same story.
  const json::array attempts = WaitForAttempts(
      client_, alice_, Str(hook, "id"), [](const json::array& a) {
        return a.size() >= 6 && Str(a.back(), "outcome") == "delivered";
      });
  ASSERT_EQ(6u, attempts.size()) << Json(attempts);
  const std::vector<Delivery> unique = Deduped(all);
  EXPECT_TRUE(IsAttempt(attempts[0], unique[0].id, 1, "retrying", 500));
  EXPECT_TRUE(IsAttempt(attempts[1], unique[0].id, 2, "retrying", 500));
  EXPECT_TRUE(IsAttempt(attempts[2], unique[0].id, 3, "retrying", 500));
  EXPECT_TRUE(IsAttempt(attempts[3], unique[0].id, 4, "delivered", 200));
  EXPECT_TRUE(IsAttempt(attempts[4], unique[1].id, 1, "delivered", 200));
  EXPECT_TRUE(IsAttempt(attempts[5], unique[2].id, 1, "delivered", 200));
  for (size_t i = 0; i < attempts.size(); ++i) {
    EXPECT_EQ("message.created", Str(attempts[i], "event_type"));
    EXPECT_EQ(unique[i < 4 ? 0 : i - 3].position(),
              U64(attempts[i], "position"));
  }

  EXPECT_EQ(3u,
            WaitForMetric(client_, "convstore_webhook_deliveries_total", 3));
  EXPECT_EQ(
      3u, WaitForMetric(client_, "convstore_webhook_failed_attempts_total", 3));
}

TEST_F(WebhooksTest, ConversationLifecycleEvents) {
  Receiver receiver;
  const json::object hook = Subscribe(receiver.url(), kAllKinds);

  // Archived: a status change, not a completion.
  const std::string archived = NewConversation();
  ASSERT_EQ(200u, SetStatus(archived, "archived").status);

  const std::string conv = NewConversation();
  const json::value as_created = Conversation(conv);
  for (const char* content : {"Hello", "My router blinks", "Thanks"}) {
    Say(client_, alice_, conv, content);
  }
  HttpResponse done = SetStatus(conv, "completed");
  ASSERT_EQ(200u, done.status) << done.body;
  const json::array transcript = Messages(client_, alice_, conv);
  ASSERT_EQ(4u, transcript.size());  // the system message and three
  const json::value completed_view = Conversation(conv);

  // created, a message each, the status change, the completion.
  receiver.WaitFor(
      [&](const std::vector<Recorded>& r) {
        return About(Deduped(Parse(r)), conv).size() >= 7;
      },
      kWait);
  const std::vector<Delivery> all = Parse(receiver.requests());
  for (const Delivery& d : all) {
    EXPECT_TRUE(IsSignedDelivery(d, Str(hook, "secret"), Str(hook, "id")));
  }
  const std::vector<Delivery> mine = About(Deduped(all), conv);
  ASSERT_EQ((std::vector<std::string>{
                "conversation.created", "message.created", "message.created",
                "message.created", "message.created",
                "conversation.status_changed", "conversation.completed"}),
            Types(mine));
  EXPECT_EQ(as_created, mine[0].data());
  EXPECT_EQ(transcript,
            Data(std::vector<Delivery>(mine.begin() + 1, mine.begin() + 5)));

  const json::value changed = mine[5].data();
  EXPECT_EQ(json::value({{"conversation_id", conv},
                         {"from", "active"},
                         {"to", "completed"},
                         {"updated_at", Str(completed_view, "updated_at")}}),
            changed);
  const json::value completion = mine[6].data();
  ASSERT_TRUE(completion.is_object());
  EXPECT_EQ(
      Keys(completion),
      (std::set<std::string>{"conversation_id", "completed_at", "messages"}));
  EXPECT_EQ(conv, Str(completion, "conversation_id"));
  EXPECT_EQ(Str(changed, "updated_at"), Str(completion, "completed_at"));
  EXPECT_EQ(json::value(transcript), completion.at("messages"));
  // One event, two deliveries.
  EXPECT_EQ(mine[5].position(), mine[6].position());
  EXPECT_NE(mine[5].id, mine[6].id);

  const std::vector<Delivery> other = About(Deduped(all), archived);
  ASSERT_EQ((std::vector<std::string>{"conversation.created", "message.created",
                                      "conversation.status_changed"}),
            Types(other));
  EXPECT_EQ("archived", Str(other[2].data(), "to"));
}

// More events than a webhook reads ahead (64) behind a slow receiver: it
// reads on as deliveries finish, one window slot at a time, and skips or
// repeats nothing, the completion's two deliveries of one event included.
TEST_F(WebhooksTest, ASlowReceiverBehindAFullWindowGetsEveryEventOnceInOrder) {
  Receiver receiver({.delay = std::chrono::milliseconds(20)});
  Subscribe(receiver.url(), kAllKinds);
  constexpr int kConversations = 30;
  std::vector<std::string> convs;
  for (int i = 0; i < kConversations; ++i) {
    const std::string conv = NewConversation();
    for (const char* content : {"one", "two", "three"}) {
      Say(client_, alice_, conv, content);
    }
    ASSERT_EQ(200u, SetStatus(conv, "completed").status);
    convs.push_back(conv);
  }
  // created, the system message and three, the status change, the
  // completion: seven each.
  const size_t total = 7 * kConversations;
  receiver.WaitFor(DistinctAtLeast(total), kWait);
  const std::vector<Delivery> all = Parse(receiver.requests());
  EXPECT_EQ(total, all.size()) << "a delivery was sent twice";
  for (const std::string& conv : convs) {
    const std::vector<Delivery> mine = About(Deduped(all), conv);
    EXPECT_EQ((std::vector<std::string>{
                  "conversation.created", "message.created", "message.created",
                  "message.created", "message.created",
                  "conversation.status_changed", "conversation.completed"}),
              Types(mine))
        << conv;
  }
}

TEST_F(WebhooksTest, NothingIsLostWhileTheReceiverIsDownAcrossARestart) {
  uint16_t port = 0;
  {
    Receiver bound;
    port = bound.port();
  }  // nothing listens on `port` now
  const std::string a = NewConversation();
  const std::string b = NewConversation();
  const json::object hook =
      Subscribe("http://127.0.0.1:" + std::to_string(port) + "/hook",
                {"message.created"});
  std::set<std::string> said;
  for (int i = 0; i < 5; ++i) {
    said.insert(Str(Say(client_, alice_, a, "a" + std::to_string(i)), "id"));
    said.insert(Str(Say(client_, alice_, b, "b" + std::to_string(i)), "id"));
  }
  // The server noticed: a failed attempt without a response.
  const json::array attempts =
      WaitForAttempts(client_, alice_, Str(hook, "id"),
                      [](const json::array& a) { return !a.empty(); });
  ASSERT_FALSE(attempts.empty());
  EXPECT_EQ("retrying", Str(attempts[0], "outcome")) << Json(attempts[0]);
  EXPECT_TRUE(attempts[0].at("status").is_null()) << Json(attempts[0]);
  EXPECT_NE(std::string::npos, Str(attempts[0], "error").find("refused"))
      << Json(attempts[0]);

  server_.Stop();
  TestServer restarted(server_.data_dir(), {}, nullptr, {}, FastRetries());
  HttpClient client = restarted.Client();
  said.insert(Str(Say(client, alice_, a, "after restart"), "id"));
  said.insert(Str(Say(client, alice_, b, "after restart"), "id"));

  Receiver receiver({}, port);  // back up
  receiver.WaitFor(DistinctAtLeast(said.size()), kWait);
  const std::vector<Delivery> all = Parse(receiver.requests());
  for (const Delivery& d : all) {
    EXPECT_TRUE(IsSignedDelivery(d, Str(hook, "secret"), Str(hook, "id")));
  }
  const std::vector<Delivery> unique = Deduped(all);
  std::set<std::string> delivered;
  for (const Delivery& d : unique) delivered.insert(Str(d.data(), "id"));
  EXPECT_EQ(said, delivered);
  for (const std::string& conv : {a, b}) {
    json::array expected;
    for (const json::value& m : Messages(client, alice_, conv)) {
      if (said.count(Str(m, "id"))) expected.push_back(m);
    }
    EXPECT_EQ(expected, Data(About(unique, conv))) << conv;
  }
}

TEST_F(WebhooksTest, UsersReceiveOnlyTheirOwnConversations) {
  Receiver receiver;
  const json::object alices = Subscribe(receiver.url("/alice"), kAllKinds);
  const json::object bobs = Subscribe(receiver.url("/bob"), kAllKinds, bob_);

  // Bob is busy.
  const std::string bob_agent =
      Str(CreateAgent(client_, bob_, R"({"name":"Bob's","instructions":"Hi"})"),
          "id");
  std::set<std::string> bob_convs;
  for (int c = 0; c < 3; ++c) {
    const std::string conv = NewConversation(bob_, bob_agent);
    bob_convs.insert(conv);
    for (int i = 0; i < 10; ++i) {
      Say(client_, bob_, conv, "bob " + std::to_string(i));
    }
  }
  ASSERT_EQ(200u, SetStatus(*bob_convs.begin(), "completed", bob_).status);
  // Then Alice says one thing: once it arrived, everything before it in the
  // log was looked at.
  const std::string alice_conv = NewConversation();
  const std::string marker = "alice's marker";
  Say(client_, alice_, alice_conv, marker);

  receiver.WaitFor(
      [&](const std::vector<Recorded>& requests) {
        for (const Recorded& r : requests) {
          if (r.target == "/alice" &&
              r.body.find(marker) != std::string::npos) {
            return true;
          }
        }
        return false;
      },
      kWait);
  const std::vector<Delivery> to_alice = Parse(receiver.requests(), "/alice");
  ASSERT_FALSE(to_alice.empty());
  for (const Delivery& d : to_alice) {
    EXPECT_TRUE(IsSignedDelivery(d, Str(alices, "secret"), Str(alices, "id")));
    EXPECT_EQ(alice_conv, d.conversation()) << d.raw.substr(0, 300);
    for (const std::string& conv : bob_convs) {
      EXPECT_EQ(std::string::npos, d.raw.find(conv)) << d.raw.substr(0, 300);
    }
  }
  EXPECT_EQ(marker, Str(to_alice.back().data(), "content"));

  // Bob's webhook has Bob's: 3 created, 3 x 11 messages, 1 status change,
  // 1 completion -- and none of Alice's.
  receiver.WaitFor(DistinctAtLeast(3 + 33 + 2, "/bob"), kWait);
  const std::vector<Delivery> to_bob =
      Deduped(Parse(receiver.requests(), "/bob"));
  EXPECT_EQ(38u, to_bob.size());
  for (const Delivery& d : to_bob) {
    EXPECT_TRUE(IsSignedDelivery(d, Str(bobs, "secret"), Str(bobs, "id")));
    EXPECT_EQ(1u, bob_convs.count(d.conversation())) << d.raw.substr(0, 300);
  }
}

// Two attempts per delivery, each with 300 ms to be answered.
// ------------------------------------------------------------ https

// A receiver's own CA, written where the server is told to trust it.
struct ReceiverCa {
  ReceiverCa() : cert(MakeSelfSignedCert("IP:127.0.0.1")) {
    path = (dir.path() / "receiver-ca.pem").string();
    std::ofstream(path, std::ios::binary) << cert.pem;
  }
  TestCert cert;
  TempDir dir;
  std::string path;
};

http::AppConfig TrustingCa(const std::string& ca_file) {
  http::AppConfig config = FastRetries();
  config.webhook_ca_file = ca_file;  // convstore serve --webhook-ca-file
  return config;
}

// The server trusts the system's CAs plus `--webhook-ca-file`.
class HttpsWebhooksTest : private ReceiverCa, public WebhooksTest {
 protected:
  HttpsWebhooksTest() : WebhooksTest(TrustingCa(ReceiverCa::path)) {}
  const TestCert& receiver_cert() const { return ReceiverCa::cert; }
};

TEST_F(HttpsWebhooksTest, DeliversOverHttpsToAReceiverWithATrustedCa) {
  auto tls = ServerContext(receiver_cert());
  Receiver receiver({.tls = tls.get()});
  ASSERT_EQ(0u, receiver.url().rfind("https://", 0));
  const json::object hook = Subscribe(receiver.url(), {"message.created"});
  const std::string said =
      Str(Say(client_, alice_, NewConversation(), "over TLS"), "id");
  receiver.WaitFor(DistinctAtLeast(2), kWait);  // the system message too
  const std::vector<Delivery> all = Deduped(Parse(receiver.requests()));
  ASSERT_EQ(2u, all.size());
  EXPECT_TRUE(IsSignedDelivery(all[1], Str(hook, "secret"), Str(hook, "id")));
  EXPECT_EQ(said, Str(all[1].data(), "id"));
}

TEST_F(HttpsWebhooksTest, AReceiverWhoseCertificateIsNotTrustedGetsNothing) {
  const TestCert stranger = MakeSelfSignedCert("IP:127.0.0.1");
  auto tls = ServerContext(stranger);
  Receiver receiver({.tls = tls.get()});
  const json::object hook = Subscribe(receiver.url(), {"message.created"});
  NewConversation();
  const json::array attempts =
      WaitForAttempts(client_, alice_, Str(hook, "id"),
                      [](const json::array& a) { return a.size() >= 2; });
  ASSERT_GE(attempts.size(), 2u);
  for (const json::value& a : attempts) {
    EXPECT_EQ("retrying", Str(a, "outcome")) << Json(a);
    EXPECT_TRUE(a.at("status").is_null()) << Json(a);
  }
  EXPECT_EQ(0u, receiver.count());  // the handshake failed: no request
}

class WebhooksGiveUpTest : public WebhooksTest {
 protected:
  WebhooksGiveUpTest()
      : WebhooksTest(FastRetries(/*max_attempts=*/2, milliseconds(300))) {}
};

TEST_F(WebhooksGiveUpTest, GivesUpAfterTheLastAttemptAndMovesOn) {
  const std::string conv = NewConversation();
  Receiver receiver({.status = 500});
  const json::object hook = Subscribe(receiver.url(), {"message.created"});
  const std::string first = Str(Say(client_, alice_, conv, "first"), "id");
  const std::string second = Str(Say(client_, alice_, conv, "second"), "id");

  // Each one twice, the second only once the first was given up.
  const std::vector<Delivery> all = Parse(receiver.WaitForRequests(4, kWait));
  ASSERT_EQ(4u, all.size());
  std::vector<std::string> order;
  for (const Delivery& d : all) {
    EXPECT_TRUE(IsSignedDelivery(d, Str(hook, "secret"), Str(hook, "id")));
    order.push_back(Str(d.data(), "id"));
  }
  EXPECT_EQ((std::vector<std::string>{first, first, second, second}), order);

  const json::array attempts = WaitForAttempts(
      client_, alice_, Str(hook, "id"), [](const json::array& a) {
        return a.size() >= 4 && Str(a.back(), "outcome") == "gave_up";
      });
  ASSERT_EQ(4u, attempts.size()) << Json(attempts);
  EXPECT_TRUE(IsAttempt(attempts[0], all[0].id, 1, "retrying", 500));
  EXPECT_TRUE(IsAttempt(attempts[1], all[0].id, 2, "gave_up", 500));
  EXPECT_TRUE(IsAttempt(attempts[2], all[2].id, 1, "retrying", 500));
  EXPECT_TRUE(IsAttempt(attempts[3], all[2].id, 2, "gave_up", 500));

  EXPECT_EQ(2u, WaitForMetric(client_, "convstore_webhook_gave_up_total", 2));
  EXPECT_EQ(
      4u, WaitForMetric(client_, "convstore_webhook_failed_attempts_total", 4));
  EXPECT_EQ(0u, MetricValue(client_, "convstore_webhook_deliveries_total"));
  // Given up for good: nothing more arrives.
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(4u, receiver.count());
}

TEST_F(WebhooksGiveUpTest, AnAnswerAfterTheTimeoutIsAFailure) {
  const std::string conv = NewConversation();
  // A 200 that comes too late counts for nothing.
  Receiver receiver({.delay = milliseconds(600)});
  const json::object hook = Subscribe(receiver.url(), {"message.created"});
  Say(client_, alice_, conv, "anyone there?");

  const json::array attempts = WaitForAttempts(
      client_, alice_, Str(hook, "id"), [](const json::array& a) {
        return a.size() >= 2 && Str(a.back(), "outcome") == "gave_up";
      });
  ASSERT_EQ(2u, attempts.size()) << Json(attempts);
  const std::string id = Str(attempts[0], "delivery_id");
  EXPECT_TRUE(IsAttempt(attempts[0], id, 1, "retrying", std::nullopt));
  EXPECT_TRUE(IsAttempt(attempts[1], id, 2, "gave_up", std::nullopt));
  for (const json::value& a : attempts) {
    EXPECT_NE("", Str(a, "error")) << Json(a);
    EXPECT_GE(U64(a, "duration_ms"), 250u) << Json(a);
  }
  // Both attempts did reach the receiver.
  EXPECT_EQ(2u, receiver.WaitForRequests(2, kWait).size());
}

}  // namespace
}  // namespace convstore::testing
