// Domain types of convstore: agents, conversations, messages, and the events
// that change them. Plain values with no behaviour beyond conversion helpers;
// thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace convstore {

enum class ConversationStatus : uint8_t { kActive = 0, kCompleted = 1, kArchived = 2 };
enum class MessageRole : uint8_t { kSystem = 0, kUser = 1, kAssistant = 2 };

std::string_view ToString(ConversationStatus status);
std::string_view ToString(MessageRole role);
std::optional<ConversationStatus> ParseConversationStatus(std::string_view s);
std::optional<MessageRole> ParseMessageRole(std::string_view s);

// A JSON object of string keys to string values. Insertion order is kept so a
// read returns the object as it was written.
using Metadata = std::vector<std::pair<std::string, std::string>>;

struct Agent {
  std::string id;
  std::string name;
  std::string instructions;
  std::optional<std::string> dispatch_name;
  Metadata metadata;
  std::string created_by;
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  bool operator==(const Agent&) const = default;
};

struct Conversation {
  std::string id;
  std::string agent_id;
  std::string title;
  std::string created_by;
  ConversationStatus status = ConversationStatus::kActive;
  Metadata metadata;
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  bool operator==(const Conversation&) const = default;
};

struct Message {
  std::string id;
  std::string conversation_id;
  MessageRole role = MessageRole::kUser;
  std::string content;
  int64_t created_at_ms = 0;
  bool operator==(const Message&) const = default;
};

// A value with the revision of the stream it was built from (its ETag).
template <typename T>
struct Versioned {
  T value;
  uint64_t revision = 0;
};

// Events. Updates carry the whole new value of every mutable field, so a
// projection never needs the previous event to apply one.
struct AgentCreated {
  Agent agent;
  bool operator==(const AgentCreated&) const = default;
};
struct AgentUpdated {
  std::string agent_id;
  std::string name;
  std::string instructions;
  std::optional<std::string> dispatch_name;
  Metadata metadata;
  int64_t updated_at_ms = 0;
  bool operator==(const AgentUpdated&) const = default;
};
struct AgentDeleted {
  std::string agent_id;
  int64_t deleted_at_ms = 0;
  bool operator==(const AgentDeleted&) const = default;
};
struct ConversationCreated {
  Conversation conversation;
  bool operator==(const ConversationCreated&) const = default;
};
struct ConversationUpdated {
  std::string conversation_id;
  std::string title;
  Metadata metadata;
  int64_t updated_at_ms = 0;
  bool operator==(const ConversationUpdated&) const = default;
};
struct ConversationStatusChanged {
  std::string conversation_id;
  ConversationStatus from = ConversationStatus::kActive;
  ConversationStatus to = ConversationStatus::kActive;
  int64_t updated_at_ms = 0;
  bool operator==(const ConversationStatusChanged&) const = default;
};
struct MessageAppended {
  Message message;
  bool operator==(const MessageAppended&) const = default;
};
// Why a conversation was erased.
enum class ErasureReason : uint8_t {
  kDeleted = 0,     // DELETE /v1/conversations/{id}
  kUserErased = 1,  // DELETE /v1/admin/users/{user_id}
  kRetention = 2,   // serve --retention-days
};
std::string_view ToString(ErasureReason reason);
// The conversation is gone: its read-model rows are deleted and its data key
// destroyed, so its earlier events' payloads can no longer be read. Holds no
// personal data (the actor is in the envelope).
struct ConversationErased {
  std::string conversation_id;
  ErasureReason reason = ErasureReason::kDeleted;
  int64_t erased_at_ms = 0;
  bool operator==(const ConversationErased&) const = default;
};

// The agent is gone, as ConversationErased is for a conversation (the
// agent's read-model rows, if it was not deleted before, and its data key).
struct AgentErased {
  std::string agent_id;
  ErasureReason reason = ErasureReason::kUserErased;
  int64_t erased_at_ms = 0;
  bool operator==(const AgentErased&) const = default;
};
// Everything a user created is gone (DELETE /v1/admin/users/{user_id}):
// the last event of that erasure, after the ConversationErased and
// AgentErased events of its subjects, with what was erased. The user is
// named by `user_ref`, a keyed digest of their id (see UserErasure), so the
// event holds no personal data; its stream is UserStream(user_ref).
struct UserErased {
  std::string user_ref;
  int64_t erased_at_ms = 0;
  uint64_t agents = 0;
  uint64_t conversations = 0;
  uint64_t messages = 0;
  uint64_t api_keys = 0;
  uint64_t webhooks = 0;
  bool operator==(const UserErased&) const = default;
};

using EventPayload =
    std::variant<AgentCreated, AgentUpdated, AgentDeleted, ConversationCreated,
                 ConversationUpdated, ConversationStatusChanged,
                 MessageAppended, ConversationErased, AgentErased, UserErased>;

std::string_view EventTypeName(const EventPayload& payload);
// The conversation an event is about; empty for agent events.
std::string_view ConversationIdOf(const EventPayload& payload);

// Stream names, as the contract fixes them: a prefix and the id.
inline constexpr std::string_view kAgentStreamPrefix = "agent-";
inline constexpr std::string_view kConversationStreamPrefix = "conversation-";
inline constexpr std::string_view kMessagesStreamPrefix = "messages-";
inline constexpr std::string_view kUserStreamPrefix = "user-";
std::string AgentStream(std::string_view agent_id);
std::string ConversationStream(std::string_view conversation_id);
std::string MessagesStream(std::string_view conversation_id);
std::string UserStream(std::string_view user_ref);

// An event a decision wants appended. `expected_revision` is the revision the
// stream must be at (nullopt: no check; kNoStream: the stream must not exist).
struct NewEvent {
  static constexpr int64_t kNoStream = -1;
  std::string stream;
  std::optional<int64_t> expected_revision;
  EventPayload payload;
};

// An event as stored in the log.
struct RecordedEvent {
  uint64_t position = 0;
  std::string stream;
  uint64_t revision = 0;
  std::string event_id;
  int64_t recorded_at_ms = 0;
  std::string actor;
  std::string idempotency_key;
  // True when the payload's data key was destroyed (its subject erased):
  // `payload` then holds an empty value of the event's type, and `actor`
  // and `idempotency_key`, sealed with it, are empty.
  bool erased = false;
  EventPayload payload;
};

}  // namespace convstore
