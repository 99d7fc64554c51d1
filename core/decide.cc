#include "core/decide.h"

namespace convstore {

Status CheckAccess(bool exists, std::string_view owner, const Actor& actor,
                   std::string_view what) {
  if (!exists) {
    return Status::NotFound(std::string(what) + " not found.");
  }
  if (!actor.admin && owner != actor.user_id) {
    return Status::PermissionDenied("Not authorized to access this " +
                                    std::string(what) + ".");
  }
  return Status();
}

Status CheckIfMatch(const std::optional<IfMatch>& if_match, uint64_t revision) {
  if (!if_match || if_match->any || if_match->revision == revision) {
    return Status();
  }
  return Status::PreconditionFailed(
      "If-Match does not match the current ETag \"" +
      std::to_string(revision) + "\".");
}

bool IsAllowedTransition(ConversationStatus from, ConversationStatus to) {
  using S = ConversationStatus;
  return (from == S::kActive && to == S::kCompleted) ||
         (from == S::kActive && to == S::kArchived) ||
         (from == S::kCompleted && to == S::kArchived);
}

Result<Decision<Agent>> DecideCreateAgent(const CreateAgentRequest& request,
                                          const DecideContext& ctx) {
  Agent agent;
  agent.id = ctx.new_uuid();
  agent.name = request.name;
  agent.instructions = request.instructions;
  agent.dispatch_name = request.dispatch_name;
  agent.metadata = request.metadata;
  agent.created_by = ctx.actor.user_id;
  agent.created_at_ms = ctx.now_ms;
  agent.updated_at_ms = ctx.now_ms;
  Decision<Agent> d;
  d.events.push_back(
      {AgentStream(agent.id), NewEvent::kNoStream, AgentCreated{agent}});
  d.result = std::move(agent);
  d.revision = 0;
  return d;
}

Result<Decision<Agent>> DecideUpdateAgent(
    const UpdateAgentRequest& request,
    const std::optional<Versioned<Agent>>& current,
    const std::optional<IfMatch>& if_match, const DecideContext& ctx) {
  CONVSTORE_RETURN_IF_ERROR(CheckAccess(
      current.has_value(), current ? current->value.created_by : "",
      ctx.actor, "Agent"));
  CONVSTORE_RETURN_IF_ERROR(CheckIfMatch(if_match, current->revision));
  Agent next = current->value;
  if (request.name) next.name = *request.name;
  if (request.instructions) next.instructions = *request.instructions;
  if (request.dispatch_name) next.dispatch_name = *request.dispatch_name;
  if (request.metadata) next.metadata = *request.metadata;
  Decision<Agent> d;
  d.revision = current->revision;
  if (next == current->value) {  // nothing changes: no event
    d.result = std::move(next);
    return d;
  }
  next.updated_at_ms = ctx.now_ms;
  d.events.push_back({AgentStream(next.id),
                      static_cast<int64_t>(current->revision),
                      AgentUpdated{next.id, next.name, next.instructions,
                                   next.dispatch_name, next.metadata,
                                   next.updated_at_ms}});
  d.revision = current->revision + 1;
  d.result = std::move(next);
  return d;
}

Result<Decision<Agent>> DecideDeleteAgent(
    const std::optional<Versioned<Agent>>& current,
    const std::optional<IfMatch>& if_match, const DecideContext& ctx) {
  CONVSTORE_RETURN_IF_ERROR(CheckAccess(
      current.has_value(), current ? current->value.created_by : "",
      ctx.actor, "Agent"));
  CONVSTORE_RETURN_IF_ERROR(CheckIfMatch(if_match, current->revision));
  Decision<Agent> d;
  d.events.push_back({AgentStream(current->value.id),
                      static_cast<int64_t>(current->revision),
                      AgentDeleted{current->value.id, ctx.now_ms}});
  d.revision = current->revision + 1;
  d.result = current->value;
  return d;
}

Result<Decision<Conversation>> DecideEraseConversation(
    const std::optional<Versioned<Conversation>>& current,
    const std::optional<IfMatch>& if_match, ErasureReason reason,
    const DecideContext& ctx) {
  CONVSTORE_RETURN_IF_ERROR(
      CheckAccess(current.has_value(), current ? current->value.created_by : "",
                  ctx.actor, "Conversation"));
  CONVSTORE_RETURN_IF_ERROR(CheckIfMatch(if_match, current->revision));
  Decision<Conversation> d;
  d.events.push_back(
      {ConversationStream(current->value.id),
       static_cast<int64_t>(current->revision),
       ConversationErased{current->value.id, reason, ctx.now_ms}});
  d.revision = current->revision + 1;
  d.result = current->value;
  return d;
}

Result<Decision<Conversation>> DecideCreateConversation(
    const CreateConversationRequest& request,
    const std::optional<Versioned<Agent>>& agent, const DecideContext& ctx) {
  CONVSTORE_RETURN_IF_ERROR(
      CheckAccess(agent.has_value(), agent ? agent->value.created_by : "",
                  ctx.actor, "Agent"));
  Conversation c;
  c.id = "conv-" + ctx.new_uuid();
  c.agent_id = agent->value.id;
  c.title = request.title;
  c.created_by = ctx.actor.user_id;
  c.status = ConversationStatus::kActive;
  c.metadata = request.metadata;
  c.created_at_ms = ctx.now_ms;
  c.updated_at_ms = ctx.now_ms;
  Decision<Conversation> d;
  d.events.push_back(
      {ConversationStream(c.id), NewEvent::kNoStream, ConversationCreated{c}});
  if (!agent->value.instructions.empty()) {
    Message m;
    m.id = "msg-" + ctx.new_uuid();
    m.conversation_id = c.id;
    m.role = MessageRole::kSystem;
    m.content = agent->value.instructions;
    m.created_at_ms = c.created_at_ms;
    d.events.push_back(
        {MessagesStream(c.id), NewEvent::kNoStream, MessageAppended{m}});
  }
  d.result = std::move(c);
  d.revision = 0;
  return d;
}

Result<Decision<Conversation>> DecideUpdateConversation(
    const UpdateConversationRequest& request,
    const std::optional<Versioned<Conversation>>& current,
    const std::optional<IfMatch>& if_match, const DecideContext& ctx) {
  CONVSTORE_RETURN_IF_ERROR(CheckAccess(
      current.has_value(), current ? current->value.created_by : "",
      ctx.actor, "Conversation"));
  CONVSTORE_RETURN_IF_ERROR(CheckIfMatch(if_match, current->revision));
  const Conversation& now = current->value;
  Decision<Conversation> d;
  d.result = now;
  d.revision = current->revision;

  bool status_changes = request.status && *request.status != now.status;
  if (status_changes && !IsAllowedTransition(now.status, *request.status)) {
    return Status::Conflict("Cannot change status from '" +
                                std::string(ToString(now.status)) + "' to '" +
                                std::string(ToString(*request.status)) + "'.",
                            "invalid_status_transition");
  }
  std::string title = request.title.value_or(now.title);
  Metadata metadata = request.metadata.value_or(now.metadata);
  uint64_t revision = current->revision;
  if (title != now.title || metadata != now.metadata) {
    d.events.push_back({ConversationStream(now.id),
                        static_cast<int64_t>(revision),
                        ConversationUpdated{now.id, title, metadata,
                                            ctx.now_ms}});
    d.result.title = std::move(title);
    d.result.metadata = std::move(metadata);
    d.result.updated_at_ms = ctx.now_ms;
    ++revision;
  }
  if (status_changes) {
    d.events.push_back(
        {ConversationStream(now.id), static_cast<int64_t>(revision),
         ConversationStatusChanged{now.id, now.status, *request.status,
                                   ctx.now_ms}});
    d.result.status = *request.status;
    d.result.updated_at_ms = ctx.now_ms;
    ++revision;
  }
  d.revision = revision;
  return d;
}

Result<Decision<Message>> DecideAppendMessage(
    const AppendMessageRequest& request,
    const std::optional<AppendTarget>& conversation, const DecideContext& ctx) {
  CONVSTORE_RETURN_IF_ERROR(
      CheckAccess(conversation.has_value(),
                  conversation ? conversation->created_by : std::string_view(),
                  ctx.actor, "Conversation"));
  if (conversation->status != ConversationStatus::kActive) {
    return Status::Conflict("Conversation is " +
                                std::string(ToString(conversation->status)) +
                                "; only an active conversation takes messages.",
                            "conversation_not_active");
  }
  Message m;
  m.id = "msg-" + ctx.new_uuid();
  m.conversation_id = conversation->id;
  m.role = request.role;
  m.content = request.content;
  m.created_at_ms = ctx.now_ms;
  Decision<Message> d;
  d.events.push_back({MessagesStream(m.conversation_id), std::nullopt,
                      MessageAppended{m}});
  d.result = std::move(m);
  d.revision = conversation->revision;
  return d;
}

}  // namespace convstore
