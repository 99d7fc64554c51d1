// Spec: a rebuild interrupted before its switch leaves the old read models in
// use and intact; the half-built generation is dropped at the next start and
// never served.
#include <gtest/gtest.h>

#include "projections/rebuild.h"
#include "tests/support/test_server.h"

namespace convstore::testing {
namespace {

const std::string kKey = TestServer::kAdminKey;

std::vector<std::string> ReadModelCfs(const std::string& data_dir) {
  std::vector<std::string> out;
  auto log = EventLog::Open(data_dir, EventLogOptions());
  EXPECT_TRUE(log.ok()) << log.status().ToString();
  if (!log.ok()) return out;
  for (const std::string& name : (*log)->ColumnFamilyNames()) {
    if (name.rfind("rm", 0) == 0) out.push_back(name);
  }
  return out;
}

TEST(InterruptedRebuildTest, OldReadModelsStayAndLeftoversAreDropped) {
  TempDir dir;
  const std::string data = (dir.path() / "data").string();
  std::string conv_path, before;
  {
    TestServer server(data);
    HttpClient c = server.Client();
    HttpResponse agent = c.Post("/v1/agents", kKey, R"({"name":"a"})");
    std::string agent_id(agent.json().at("id").as_string());
    HttpResponse conv = c.Post("/v1/conversations", kKey,
                               R"({"agent_id":")" + agent_id + R"("})");
    conv_path = "/v1/conversations/" + std::string(conv.json().at("id").as_string());
    before = c.Get(conv_path, kKey).body;
  }
  // A rebuild that died half-way: the next generation exists, holds junk,
  // and the switch never happened.
  {
    auto log = EventLog::Open(data, EventLogOptions());
    ASSERT_TRUE(log.ok());
    std::string next = NextGenerationPrefix(*ActiveReadModelsPrefix(**log));
    ASSERT_TRUE(CreateGeneration(**log, next).ok());
    LogBatch batch(log->get());
    batch.Put((*log)->cf(next + "conversations"), conv_path.substr(18), "junk");
    ASSERT_TRUE(batch.Commit().ok());
  }
  {
    TestServer server(data);
    HttpClient c = server.Client();
    EXPECT_EQ(before, c.Get(conv_path, kKey).body);
  }
  EXPECT_EQ(ReadModels::ColumnFamilies(kDefaultReadModelsPrefix).size(),
            ReadModelCfs(data).size())
      << "the half-built generation should be gone";
  // A later rebuild builds the next generation afresh, junk and all ignored.
  {
    auto log = EventLog::Open(data, EventLogOptions());
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE(RebuildReadModels(**log).ok());
  }
  TestServer server(data);
  HttpClient c = server.Client();
  EXPECT_EQ(before, c.Get(conv_path, kKey).body);
}

}  // namespace
}  // namespace convstore::testing
