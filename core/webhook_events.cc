#include "core/webhook_events.h"

#include <array>

#include "core/encoding.h"

namespace convstore {
namespace {

constexpr std::array<std::string_view, 4> kKindNames = {
    "conversation.created", "message.created", "conversation.status_changed",
    "conversation.completed"};

}  // namespace

std::string_view ToString(WebhookEventKind kind) {
  return kKindNames[static_cast<size_t>(kind)];
}

std::optional<WebhookEventKind> ParseWebhookEventKind(std::string_view s) {
  for (size_t i = 0; i < kKindNames.size(); ++i) {
    if (kKindNames[i] == s) return static_cast<WebhookEventKind>(i);
  }
  return std::nullopt;
}

std::vector<WebhookEventKind> WebhookKindsOf(const EventPayload& payload) {
  if (std::holds_alternative<ConversationCreated>(payload)) {
    return {WebhookEventKind::kConversationCreated};
  }
  if (std::holds_alternative<MessageAppended>(payload)) {
    return {WebhookEventKind::kMessageCreated};
  }
  if (const auto* changed = std::get_if<ConversationStatusChanged>(&payload)) {
    if (changed->to == ConversationStatus::kCompleted) {
      return {WebhookEventKind::kConversationStatusChanged,
              WebhookEventKind::kConversationCompleted};
    }
    return {WebhookEventKind::kConversationStatusChanged};
  }
  return {};
}

std::string WebhookDeliveryId(std::string_view webhook_id, uint64_t position,
                              WebhookEventKind kind) {
  std::string input(webhook_id);
  input.push_back('\0');
  input += std::to_string(position);
  input.push_back('\0');
  input += ToString(kind);
  return "dlv_" + HexEncode(Sha256(input).substr(0, 16));
}

std::string WebhookSigningSecret(std::string_view master_secret,
                                 std::string_view webhook_id) {
  return "whsec_" + Base64UrlEncode(HmacSha256(
                        master_secret,
                        "webhook-signing-secret:" + std::string(webhook_id)));
}

}  // namespace convstore
