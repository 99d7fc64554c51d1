#include "tests/support/api_assertions.h"

#include <chrono>
#include <sstream>

#include "core/encoding.h"

namespace convstore::testing {

namespace json = boost::json;

const std::regex kTimestamp(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)");
const std::regex kUuidV7(
    "[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");

// ------------------------------------------------------------ JSON

std::string Json(const json::value& v) { return json::serialize(v); }

json::value Parsed(const HttpResponse& r) {
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec) return json::value("<not JSON: " + r.body.substr(0, 200) + ">");
  return v;
}

std::set<std::string> Keys(const json::object& o) {
  std::set<std::string> keys;
  for (const auto& kv : o) keys.insert(std::string(kv.key()));
  return keys;
}

std::set<std::string> Keys(const json::value& v) { return Keys(v.as_object()); }

std::string Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return "<absent>";
  if (!v->is_string()) return "<not a string: " + json::serialize(*v) + ">";
  return std::string(v->as_string());
}

std::string Str(const json::value& v, std::string_view key) {
  return Str(v.as_object(), key);
}

uint64_t U64(const json::value& v, std::string_view key) {
  const json::value* f = v.as_object().if_contains(key);
  if (f == nullptr) return ~uint64_t{0};
  if (f->is_uint64()) return f->as_uint64();
  if (f->is_int64() && f->as_int64() >= 0) return f->as_int64();
  return ~uint64_t{0};
}

std::vector<std::string> Ids(const json::array& items) {
  std::vector<std::string> ids;
  for (const auto& item : items) ids.push_back(Str(item.as_object(), "id"));
  return ids;
}

std::string MessageBody(const std::string& content) {
  return json::serialize(json::object{{"role", "user"}, {"content", content}});
}

// ------------------------------------------------------------ errors

::testing::AssertionResult IsError(const HttpResponse& r, unsigned status,
                                   std::string_view type,
                                   std::optional<std::string_view> param) {
  if (r.status != status) {
    return ::testing::AssertionFailure() << "status " << r.status << ", want "
                                         << status << "; body " << r.body;
  }
  if (r.header("Content-Type").rfind("application/json", 0) != 0) {
    return ::testing::AssertionFailure()
           << "Content-Type '" << r.header("Content-Type") << "'";
  }
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec || !v.is_object() || v.as_object().size() != 1 ||
      !v.as_object().contains("error") || !v.at("error").is_object()) {
    return ::testing::AssertionFailure() << "not an error body: " << r.body;
  }
  const json::object& e = v.at("error").as_object();
  if (Keys(e) != std::set<std::string>{"message", "type", "param", "code"} ||
      !e.at("message").is_string() || e.at("message").as_string().empty() ||
      !(e.at("param").is_null() || e.at("param").is_string()) ||
      !(e.at("code").is_null() || e.at("code").is_string())) {
    return ::testing::AssertionFailure() << "malformed error body: " << r.body;
  }
  if (e.at("type") != json::value(type)) {
    return ::testing::AssertionFailure() << "type " << e.at("type") << ", want "
                                         << type << "; body " << r.body;
  }
  if (param &&
      (!e.at("param").is_string() || e.at("param").as_string() != *param)) {
    return ::testing::AssertionFailure()
           << "param " << e.at("param") << ", want " << *param << "; body "
           << r.body;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult IsUnauthenticated(const HttpResponse& r) {
  ::testing::AssertionResult error = IsError(r, 401, "authentication_error");
  if (!error) return error;
  if (r.header("WWW-Authenticate").rfind("Bearer", 0) != 0) {
    return ::testing::AssertionFailure()
           << "WWW-Authenticate '" << r.header("WWW-Authenticate") << "'";
  }
  return ::testing::AssertionSuccess();
}

std::set<std::string> AllowedMethods(const HttpResponse& r) {
  std::set<std::string> methods;
  std::istringstream in(r.header("Allow"));
  std::string m;
  while (std::getline(in, m, ',')) {
    m.erase(0, m.find_first_not_of(' '));
    m.erase(m.find_last_not_of(' ') + 1);
    methods.insert(m);
  }
  return methods;
}

std::string ErrorField(const HttpResponse& r, std::string_view field) {
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("error")) return "<none>";
  const json::value* f = v.at("error").as_object().if_contains(field);
  if (f == nullptr) return "<absent>";
  return f->is_string() ? std::string(f->as_string()) : json::serialize(*f);
}

std::string ErrorParam(const HttpResponse& r) { return ErrorField(r, "param"); }
std::string ErrorCode(const HttpResponse& r) { return ErrorField(r, "code"); }

// ------------------------------------------------------------ paging, log

std::string NextLink(const HttpResponse& r) {
  std::string link = r.header("Link");
  if (link.empty()) return "";
  std::smatch m;
  static const std::regex kNext(R"re(^<([^>]+)>;\s*rel="next"$)re");
  if (!std::regex_match(link, m, kNext)) {
    ADD_FAILURE() << "malformed Link header: " << link;
    return "";
  }
  return m[1];
}

uint64_t MetricValue(HttpClient& client, std::string_view name) {
  HttpResponse r = client.Get("/metrics", "");
  EXPECT_EQ(200u, r.status);
  std::istringstream in(r.body);
  std::string line;
  const std::string prefix = std::string(name) + " ";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      return std::stoull(line.substr(prefix.size()));
    }
  }
  ADD_FAILURE() << "no " << name << " in /metrics";
  return 0;
}

uint64_t LogHead(HttpClient& client) {
  return MetricValue(client, "convstore_log_head_position");
}

std::vector<json::value> AdminEvents(uint16_t port) {
  std::vector<json::value> out;
  HttpClient c(port);
  for (int i = 0; i < 1000; ++i) {
    HttpResponse r = c.Get(
        "/v1/admin/events?limit=10000&from=" + std::to_string(out.size() + 1),
        kAdmin);
    EXPECT_EQ(200u, r.status) << r.body;
    if (r.status != 200) break;
    json::value page = r.json();
    if (page.as_array().empty()) break;
    for (const json::value& e : page.as_array()) out.push_back(e);
  }
  return out;
}

// ------------------------------------------------------------ time

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void WaitForClockPast(const std::string& timestamp) {
  for (int i = 0; i < 1000 && FormatRfc3339Millis(NowMillis()) <= timestamp;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_GT(FormatRfc3339Millis(NowMillis()), timestamp);
}

}  // namespace convstore::testing
