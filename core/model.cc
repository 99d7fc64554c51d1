#include "core/model.h"

namespace convstore {

std::string_view ToString(ConversationStatus status) {
  switch (status) {
    case ConversationStatus::kActive:
      return "active";
    case ConversationStatus::kCompleted:
      return "completed";
    case ConversationStatus::kArchived:
      return "archived";
  }
  return "active";
}

std::string_view ToString(MessageRole role) {
  switch (role) {
    case MessageRole::kSystem:
      return "system";
    case MessageRole::kUser:
      return "user";
    case MessageRole::kAssistant:
      return "assistant";
  }
  return "user";
}

std::string_view ToString(ErasureReason reason) {
  switch (reason) {
    case ErasureReason::kDeleted:
      return "deleted";
    case ErasureReason::kUserErased:
      return "user_erased";
    case ErasureReason::kRetention:
      return "retention";
  }
  return "deleted";
}

std::optional<ConversationStatus> ParseConversationStatus(std::string_view s) {
  if (s == "active") return ConversationStatus::kActive;
  if (s == "completed") return ConversationStatus::kCompleted;
  if (s == "archived") return ConversationStatus::kArchived;
  return std::nullopt;
}

std::optional<MessageRole> ParseMessageRole(std::string_view s) {
  if (s == "system") return MessageRole::kSystem;
  if (s == "user") return MessageRole::kUser;
  if (s == "assistant") return MessageRole::kAssistant;
  return std::nullopt;
}

std::string_view EventTypeName(const EventPayload& payload) {
  struct Visitor {
    std::string_view operator()(const AgentCreated&) { return "AgentCreated"; }
    std::string_view operator()(const AgentUpdated&) { return "AgentUpdated"; }
    std::string_view operator()(const AgentDeleted&) { return "AgentDeleted"; }
    std::string_view operator()(const ConversationCreated&) {
      return "ConversationCreated";
    }
    std::string_view operator()(const ConversationUpdated&) {
      return "ConversationUpdated";
    }
    std::string_view operator()(const ConversationStatusChanged&) {
      return "ConversationStatusChanged";
    }
    std::string_view operator()(const MessageAppended&) {
      return "MessageAppended";
    }
    std::string_view operator()(const ConversationErased&) {
      return "ConversationErased";
    }
    std::string_view operator()(const AgentErased&) { return "AgentErased"; }
    std::string_view operator()(const UserErased&) { return "UserErased"; }
  };
  return std::visit(Visitor{}, payload);
}

std::string AgentStream(std::string_view agent_id) {
  std::string stream(kAgentStreamPrefix);
  stream.append(agent_id);
  return stream;
}
std::string ConversationStream(std::string_view conversation_id) {
  std::string stream(kConversationStreamPrefix);
  stream.append(conversation_id);
  return stream;
}
std::string_view ConversationIdOf(const EventPayload& payload) {
  struct Visitor {
    std::string_view operator()(const ConversationCreated& p) const {
      return p.conversation.id;
    }
    std::string_view operator()(const ConversationUpdated& p) const {
      return p.conversation_id;
    }
    std::string_view operator()(const ConversationStatusChanged& p) const {
      return p.conversation_id;
    }
    std::string_view operator()(const MessageAppended& p) const {
      return p.message.conversation_id;
    }
    std::string_view operator()(const ConversationErased& p) const {
      return p.conversation_id;
    }
    std::string_view operator()(const AgentCreated&) const { return {}; }
    std::string_view operator()(const AgentUpdated&) const { return {}; }
    std::string_view operator()(const AgentDeleted&) const { return {}; }
    std::string_view operator()(const AgentErased&) const { return {}; }
    std::string_view operator()(const UserErased&) const { return {}; }
  };
  return std::visit(Visitor{}, payload);
}

std::string MessagesStream(std::string_view conversation_id) {
  std::string stream(kMessagesStreamPrefix);
  stream.append(conversation_id);
  return stream;
}

std::string UserStream(std::string_view user_ref) {
  std::string stream(kUserStreamPrefix);
  stream.append(user_ref);
  return stream;
}

}  // namespace convstore
