// Commands -> events: each Decide* function checks access, the If-Match
// precondition and the state rules against the current state, and returns
// the events to append plus the resulting value. Pure: time and fresh ids come
// in through DecideContext, and nothing is written here.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/status.h"
#include "core/validation.h"

namespace convstore {

struct Actor {
  std::string user_id;
  bool admin = false;
};

struct DecideContext {
  Actor actor;
  int64_t now_ms = 0;
  std::function<std::string()> new_uuid;  // a fresh UUIDv7 per call
};

// If-Match: a strong ETag naming a stream revision, or "*" (any existing).
struct IfMatch {
  bool any = false;
  uint64_t revision = 0;
};

template <typename T>
struct Decision {
  std::vector<NewEvent> events;
  T result;
  uint64_t revision = 0;  // the resource's stream revision after the events
};

// Access rule: missing -> 404; another user's and not admin -> 403.
Status CheckAccess(bool exists, std::string_view owner, const Actor& actor,
                   std::string_view what);
Status CheckIfMatch(const std::optional<IfMatch>& if_match, uint64_t revision);

Result<Decision<Agent>> DecideCreateAgent(const CreateAgentRequest& request,
                                          const DecideContext& ctx);
Result<Decision<Agent>> DecideUpdateAgent(
    const UpdateAgentRequest& request,
    const std::optional<Versioned<Agent>>& current,
    const std::optional<IfMatch>& if_match, const DecideContext& ctx);
Result<Decision<Agent>> DecideDeleteAgent(
    const std::optional<Versioned<Agent>>& current,
    const std::optional<IfMatch>& if_match, const DecideContext& ctx);

// Creates the conversation and, when the agent has instructions, its first
// `system` message (same commit, same created_at). `result` is the
// conversation; the system message, if any, is the second event.
Result<Decision<Conversation>> DecideCreateConversation(
    const CreateConversationRequest& request,
    const std::optional<Versioned<Agent>>& agent, const DecideContext& ctx);
Result<Decision<Conversation>> DecideUpdateConversation(
    const UpdateConversationRequest& request,
    const std::optional<Versioned<Conversation>>& current,
    const std::optional<IfMatch>& if_match, const DecideContext& ctx);
// Erases a conversation and its messages (owner or admin): one
// ConversationErased event, which destroys the conversation's data key.
Result<Decision<Conversation>> DecideEraseConversation(
    const std::optional<Versioned<Conversation>>& current,
    const std::optional<IfMatch>& if_match, ErasureReason reason,
    const DecideContext& ctx);
// What appending a message decides on: the conversation's id, who may write
// to it, its status and its revision. The writer takes them from the
// conversation's list entry, which decodes without parsing (the whole
// record is JSON). Views: what they view must outlive the decision call.
struct AppendTarget {
  std::string_view id;
  std::string_view created_by;
  ConversationStatus status = ConversationStatus::kActive;
  uint64_t revision = 0;
};
Result<Decision<Message>> DecideAppendMessage(
    const AppendMessageRequest& request,
    const std::optional<AppendTarget>& conversation, const DecideContext& ctx);

// Status rule: active -> completed -> archived, or active -> archived.
bool IsAllowedTransition(ConversationStatus from, ConversationStatus to);

}  // namespace convstore
