// Spec for core/webhook_events.h: which kinds an event yields and in what
// order, and the ids and secrets that receivers rely on staying stable.
#include "core/webhook_events.h"

#include <gtest/gtest.h>

#include <set>

namespace convstore {
namespace {

using Kinds = std::vector<WebhookEventKind>;

ConversationStatusChanged StatusChange(ConversationStatus from,
                                       ConversationStatus to) {
  ConversationStatusChanged e;
  e.conversation_id = "conv-1";
  e.from = from;
  e.to = to;
  return e;
}

TEST(WebhookEventsTest, KindNamesRoundTrip) {
  for (auto kind : {WebhookEventKind::kConversationCreated,
                    WebhookEventKind::kMessageCreated,
                    WebhookEventKind::kConversationStatusChanged,
                    WebhookEventKind::kConversationCompleted}) {
    EXPECT_EQ(ParseWebhookEventKind(ToString(kind)), kind);
  }
  EXPECT_EQ(ToString(WebhookEventKind::kMessageCreated), "message.created");
  EXPECT_EQ(ParseWebhookEventKind("message.updated"), std::nullopt);
  EXPECT_EQ(ParseWebhookEventKind(""), std::nullopt);
}

TEST(WebhookEventsTest, EachConversationEventYieldsItsKinds) {
  EXPECT_EQ(WebhookKindsOf(ConversationCreated{}),
            Kinds{WebhookEventKind::kConversationCreated});
  EXPECT_EQ(WebhookKindsOf(MessageAppended{}),
            Kinds{WebhookEventKind::kMessageCreated});
  EXPECT_EQ(WebhookKindsOf(StatusChange(ConversationStatus::kActive,
                                        ConversationStatus::kArchived)),
            Kinds{WebhookEventKind::kConversationStatusChanged});
  EXPECT_EQ(WebhookKindsOf(StatusChange(ConversationStatus::kCompleted,
                                        ConversationStatus::kArchived)),
            Kinds{WebhookEventKind::kConversationStatusChanged});
}

TEST(WebhookEventsTest, CompletionIsAStatusChangeFirstThenTheCompletion) {
  EXPECT_EQ(WebhookKindsOf(StatusChange(ConversationStatus::kActive,
                                        ConversationStatus::kCompleted)),
            (Kinds{WebhookEventKind::kConversationStatusChanged,
                   WebhookEventKind::kConversationCompleted}));
}

TEST(WebhookEventsTest, AgentEventsAndTitleChangesYieldNothing) {
  EXPECT_TRUE(WebhookKindsOf(AgentCreated{}).empty());
  EXPECT_TRUE(WebhookKindsOf(AgentUpdated{}).empty());
  EXPECT_TRUE(WebhookKindsOf(AgentDeleted{}).empty());
  EXPECT_TRUE(WebhookKindsOf(ConversationUpdated{}).empty());
}

TEST(WebhookEventsTest, DeliveryIdIsStableAndDistinct) {
  const std::string id =
      WebhookDeliveryId("wh_1", 42, WebhookEventKind::kConversationCompleted);
  EXPECT_EQ(id, WebhookDeliveryId("wh_1", 42,
                                  WebhookEventKind::kConversationCompleted));
  ASSERT_EQ(id.size(), 4u + 32u);
  EXPECT_EQ(id.substr(0, 4), "dlv_");
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef", 4), std::string::npos);
  std::set<std::string> ids = {
      id,
      WebhookDeliveryId("wh_2", 42, WebhookEventKind::kConversationCompleted),
      WebhookDeliveryId("wh_1", 43, WebhookEventKind::kConversationCompleted),
      WebhookDeliveryId("wh_1", 42,
                        WebhookEventKind::kConversationStatusChanged),
      // The separator keeps ("wh_1", 42) and ("wh_14", 2) apart.
      WebhookDeliveryId("wh_14", 2, WebhookEventKind::kConversationCompleted)};
  EXPECT_EQ(ids.size(), 5u);
}

TEST(WebhookEventsTest, SigningSecretDependsOnMasterAndWebhook) {
  const std::string secret = WebhookSigningSecret("master", "wh_1");
  EXPECT_EQ(secret, WebhookSigningSecret("master", "wh_1"));
  ASSERT_EQ(secret.size(), 6u + 43u);
  EXPECT_EQ(secret.substr(0, 6), "whsec_");
  EXPECT_NE(secret, WebhookSigningSecret("master", "wh_2"));
  EXPECT_NE(secret, WebhookSigningSecret("other master", "wh_1"));
}

}  // namespace
}  // namespace convstore
