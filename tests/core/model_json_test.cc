// Spec for core/model_json.h pieces that need no store: joining rendered
// JSON into an array.
#include "core/model_json.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

namespace convstore {
namespace {

TEST(JoinJsonArrayTest, EmptyIsAnEmptyArray) {
  EXPECT_EQ("[]", JoinJsonArray({}));
}

TEST(JoinJsonArrayTest, JoinsRenderedMessagesByteForByte) {
  Message a{"msg-1", "conv-1", MessageRole::kUser, "h\xC3\xA9llo, \"you\"", 0};
  Message b{"msg-2", "conv-1", MessageRole::kAssistant, "hi", 1};
  const std::vector<std::string> items = {RenderMessage(a), RenderMessage(b)};
  const std::string joined = JoinJsonArray(items);
  EXPECT_EQ("[" + items[0] + "," + items[1] + "]", joined);
  const boost::json::value parsed = boost::json::parse(joined);
  ASSERT_EQ(2u, parsed.as_array().size());
  EXPECT_EQ("h\xC3\xA9llo, \"you\"",
            parsed.as_array()[0].at("content").as_string());
}

}  // namespace
}  // namespace convstore
