#include "tests/support/durability.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "tests/support/process.h"

namespace convstore::testing {

namespace json = boost::json;

size_t ExpectAcknowledgedMessagesPresent(
    HttpClient& client, const std::string& key,
    const std::vector<std::string>& conversations, const AckedMessages& acked) {
  std::map<std::string, std::string> stored;  // id -> canonical JSON
  for (const std::string& conv : conversations) {
    HttpResponse r = client.Get("/v1/conversations/" + conv + "/messages", key);
    EXPECT_EQ(200u, r.status) << r.body;
    if (r.status != 200) continue;
    const json::value all = r.json();
    for (const json::value& m : all.as_array()) {
      stored[std::string(m.at("id").as_string())] = json::serialize(m);
    }
  }
  size_t found = 0, missing = 0;
  for (const auto& [id, body] : acked) {
    auto it = stored.find(id);
    if (it == stored.end()) {
      if (++missing <= 5)
        ADD_FAILURE() << "acknowledged message lost: " << body;
      continue;
    }
    ++found;
    EXPECT_EQ(json::serialize(json::parse(body)), it->second);
  }
  EXPECT_EQ(0u, missing) << "of " << acked.size() << " acknowledged";
  return found;
}

uint64_t ExpectGaplessLog(HttpClient& client, const std::string& admin_key) {
  uint64_t expected = 1;
  for (int page = 0; page < 10000; ++page) {
    HttpResponse r = client.Get(
        "/v1/admin/events?limit=10000&from=" + std::to_string(expected),
        admin_key);
    EXPECT_EQ(200u, r.status) << r.body;
    if (r.status != 200) break;
    const json::value parsed = r.json();
    const json::array& events = parsed.as_array();
    if (events.empty()) break;
    for (const json::value& e : events) {
      const uint64_t position = e.at("position").to_number<uint64_t>();
      if (position != expected) {
        ADD_FAILURE() << "the log has a gap: expected position " << expected
                      << ", read " << position;
        return expected - 1;
      }
      ++expected;
    }
  }
  return expected - 1;
}

void ExpectReadModelsEqualRebuild(const std::string& data_dir) {
  CommandResult verify =
      RunConvstore({"projections", "verify", "--data-dir", data_dir});
  EXPECT_EQ(0, verify.exit_code) << Describe(verify);
}

}  // namespace convstore::testing
