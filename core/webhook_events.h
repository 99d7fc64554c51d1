// Webhook event kinds: what a subscriber can ask for, which kinds a log event
// yields, and the stable id of one delivery. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/model.h"

namespace convstore {

enum class WebhookEventKind : uint8_t {
  kConversationCreated = 0,
  kMessageCreated = 1,
  kConversationStatusChanged = 2,
  kConversationCompleted = 3,
};

// "conversation.created", "message.created", "conversation.status_changed",
// "conversation.completed".
std::string_view ToString(WebhookEventKind kind);
std::optional<WebhookEventKind> ParseWebhookEventKind(std::string_view s);

// The kinds a log event yields, in the order they are delivered: a status
// change to completed is a status change first, then the completion. Agent
// events and conversation updates yield none.
std::vector<WebhookEventKind> WebhookKindsOf(const EventPayload& payload);

// The id of the delivery of `kind` for the event at `position` to one
// webhook: "dlv_" + 32 lower-case hex digits. The same on every attempt and
// after a restart, so receivers can dedupe on it; different across webhooks,
// positions and kinds.
std::string WebhookDeliveryId(std::string_view webhook_id, uint64_t position,
                              WebhookEventKind kind);

// A webhook's signing secret, derived from the store's master secret and the
// webhook's id (so no per-webhook secret is stored): "whsec_" + 43 base64url
// characters (HMAC-SHA256 of the id).
std::string WebhookSigningSecret(std::string_view master_secret,
                                 std::string_view webhook_id);

}  // namespace convstore
