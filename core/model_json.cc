#include "core/model_json.h"

#include <boost/json.hpp>

#include "core/encoding.h"

namespace convstore {
namespace {

namespace json = boost::json;

std::string_view Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return {};
  return v->as_string();
}

int64_t Int(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_int64()) return 0;
  return v->as_int64();
}

Metadata MetadataFromJson(const json::object& o) {
  Metadata out;
  const json::value* v = o.if_contains("metadata");
  if (v == nullptr || !v->is_object()) return out;
  for (const auto& kv : v->as_object()) {
    if (kv.value().is_string()) {
      out.emplace_back(std::string(kv.key()),
                       std::string(kv.value().as_string()));
    }
  }
  return out;
}

Result<json::object> ParseRecord(std::string_view bytes) {
  boost::system::error_code ec;
  json::value v = json::parse(bytes, ec);
  if (ec || !v.is_object()) {
    return Status::Corruption("read-model record does not decode");
  }
  return std::move(v.as_object());
}

}  // namespace

json::object MetadataToJson(const Metadata& metadata) {
  json::object o;
  for (const auto& [k, v] : metadata) o[k] = v;
  return o;
}

json::object AgentToJson(const Agent& agent) {
  json::object o;
  o["id"] = agent.id;
  o["name"] = agent.name;
  o["instructions"] = agent.instructions;
  if (agent.dispatch_name) {
    o["dispatch_name"] = *agent.dispatch_name;
  } else {
    o["dispatch_name"] = nullptr;
  }
  o["metadata"] = MetadataToJson(agent.metadata);
  o["created_by"] = agent.created_by;
  o["created_at"] = FormatRfc3339Millis(agent.created_at_ms);
  o["updated_at"] = FormatRfc3339Millis(agent.updated_at_ms);
  return o;
}

json::object ConversationToJson(const Conversation& c,
                                std::string_view room_url) {
  json::object o;
  o["id"] = c.id;
  o["agent_id"] = c.agent_id;
  o["title"] = c.title;
  o["created_at"] = FormatRfc3339Millis(c.created_at_ms);
  o["updated_at"] = FormatRfc3339Millis(c.updated_at_ms);
  o["created_by"] = c.created_by;
  o["status"] = ToString(c.status);
  o["room_name"] = c.id;
  o["room_url"] = room_url;
  o["metadata"] = MetadataToJson(c.metadata);
  return o;
}

std::string JoinJsonArray(const std::vector<std::string>& items) {
  size_t size = 2 + items.size();
  for (const std::string& item : items) size += item.size();
  std::string out;
  out.reserve(size);
  out.push_back('[');
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out.push_back(',');
    out += items[i];
  }
  out.push_back(']');
  return out;
}

std::string RenderMessage(const Message& m) {
  json::object o;
  o["id"] = m.id;
  o["conversation_id"] = m.conversation_id;
  o["role"] = ToString(m.role);
  o["content"] = m.content;
  o["created_at"] = FormatRfc3339Millis(m.created_at_ms);
  return json::serialize(o);
}

std::string EncodeAgentRecord(const Agent& agent, uint64_t revision) {
  json::object o;
  o["rev"] = static_cast<int64_t>(revision);
  o["id"] = agent.id;
  o["name"] = agent.name;
  o["instructions"] = agent.instructions;
  if (agent.dispatch_name) o["dispatch_name"] = *agent.dispatch_name;
  o["metadata"] = MetadataToJson(agent.metadata);
  o["created_by"] = agent.created_by;
  o["created_at"] = agent.created_at_ms;
  o["updated_at"] = agent.updated_at_ms;
  return json::serialize(o);
}

Result<Versioned<Agent>> DecodeAgentRecord(std::string_view bytes) {
  json::object o;
  CONVSTORE_ASSIGN_OR_RETURN(o, ParseRecord(bytes));
  Versioned<Agent> r;
  r.revision = static_cast<uint64_t>(Int(o, "rev"));
  r.value.id = Str(o, "id");
  r.value.name = Str(o, "name");
  r.value.instructions = Str(o, "instructions");
  if (o.contains("dispatch_name")) {
    r.value.dispatch_name = std::string(Str(o, "dispatch_name"));
  }
  r.value.metadata = MetadataFromJson(o);
  r.value.created_by = Str(o, "created_by");
  r.value.created_at_ms = Int(o, "created_at");
  r.value.updated_at_ms = Int(o, "updated_at");
  return r;
}

std::string EncodeConversationRecord(const Conversation& c, uint64_t revision) {
  json::object o;
  o["rev"] = static_cast<int64_t>(revision);
  o["id"] = c.id;
  o["agent_id"] = c.agent_id;
  o["title"] = c.title;
  o["created_by"] = c.created_by;
  o["status"] = ToString(c.status);
  o["metadata"] = MetadataToJson(c.metadata);
  o["created_at"] = c.created_at_ms;
  o["updated_at"] = c.updated_at_ms;
  return json::serialize(o);
}

Result<Versioned<Conversation>> DecodeConversationRecord(
    std::string_view bytes) {
  json::object o;
  CONVSTORE_ASSIGN_OR_RETURN(o, ParseRecord(bytes));
  Versioned<Conversation> r;
  r.revision = static_cast<uint64_t>(Int(o, "rev"));
  r.value.id = Str(o, "id");
  r.value.agent_id = Str(o, "agent_id");
  r.value.title = Str(o, "title");
  r.value.created_by = Str(o, "created_by");
  auto status = ParseConversationStatus(Str(o, "status"));
  if (!status) return Status::Corruption("conversation record has no status");
  r.value.status = *status;
  r.value.metadata = MetadataFromJson(o);
  r.value.created_at_ms = Int(o, "created_at");
  r.value.updated_at_ms = Int(o, "updated_at");
  return r;
}

}  // namespace convstore
