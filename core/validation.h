// Request bodies of the API, parsed from JSON text and validated against the
// contract's limits. Every failure is an InvalidArgument Status whose `param`
// names the offending field; unknown fields are ignored. Pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/model.h"
#include "core/status.h"
#include "core/webhook_events.h"

namespace convstore {

struct Limits {
  static constexpr size_t kMaxBodyBytes = 1 << 20;
  static constexpr size_t kMaxTitleCodePoints = 256;
  static constexpr size_t kMaxAgentNameCodePoints = 128;
  static constexpr size_t kMaxDispatchNameCodePoints = 128;
  static constexpr size_t kMaxInstructionsBytes = 32 * 1024;
  static constexpr size_t kMaxContentBytes = 65536;
  static constexpr size_t kMaxMetadataKeys = 16;
  static constexpr size_t kMaxMetadataKeyCodePoints = 64;
  static constexpr size_t kMaxMetadataValueCodePoints = 512;
  static constexpr size_t kMaxUserIdBytes = 128;
};

inline constexpr std::string_view kDefaultConversationTitle = "New Conversation";

struct CreateAgentRequest {
  std::string name;
  std::string instructions;
  std::optional<std::string> dispatch_name;
  Metadata metadata;
};

struct UpdateAgentRequest {
  std::optional<std::string> name;
  std::optional<std::string> instructions;
  // Outer nullopt: leave as is; inner nullopt: clear (JSON null).
  std::optional<std::optional<std::string>> dispatch_name;
  std::optional<Metadata> metadata;
};

struct CreateConversationRequest {
  std::string agent_id;
  std::string title{kDefaultConversationTitle};
  Metadata metadata;
};

struct UpdateConversationRequest {
  std::optional<std::string> title;
  std::optional<ConversationStatus> status;
  std::optional<Metadata> metadata;
};

struct AppendMessageRequest {
  MessageRole role = MessageRole::kUser;
  std::string content;
};

enum class KeyRole : uint8_t { kUser = 0, kAdmin = 1 };
std::string_view ToString(KeyRole role);

struct CreateApiKeyRequest {
  std::string user_id;
  KeyRole role = KeyRole::kUser;
};

struct CreateWebhookRequest {
  static constexpr size_t kMaxUrlBytes = 2048;
  static constexpr size_t kMaxDescriptionCodePoints = 500;
  // Absolute http:// or https:// with a host; no userinfo, no fragment.
  std::string url;
  std::vector<WebhookEventKind> events;  // non-empty, distinct, as given
  std::optional<std::string> description;
};

Result<CreateAgentRequest> ParseCreateAgent(std::string_view body);
Result<UpdateAgentRequest> ParseUpdateAgent(std::string_view body);
Result<CreateConversationRequest> ParseCreateConversation(std::string_view body);
Result<UpdateConversationRequest> ParseUpdateConversation(std::string_view body);
Result<AppendMessageRequest> ParseAppendMessage(std::string_view body);
Result<CreateApiKeyRequest> ParseCreateApiKey(std::string_view body);
Result<CreateWebhookRequest> ParseCreateWebhook(std::string_view body);

// A user id names the owner of resources: 1..128 bytes of [A-Za-z0-9._@:-].
bool IsValidUserId(std::string_view user_id);

}  // namespace convstore
