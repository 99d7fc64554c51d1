#include "eventlog/event_json.h"

#include <boost/json.hpp>

#include "core/encoding.h"
#include "core/model_json.h"

namespace convstore {
namespace {

namespace json = boost::json;

json::value OptionalString(const std::optional<std::string>& s) {
  return s ? json::value(*s) : json::value(nullptr);
}

struct PayloadJson {
  json::object operator()(const AgentCreated& e) {
    json::object o = AgentToJson(e.agent);
    o.erase("updated_at");
    return o;
  }
  json::object operator()(const AgentUpdated& e) {
    return {{"agent_id", e.agent_id},
            {"name", e.name},
            {"instructions", e.instructions},
            {"dispatch_name", OptionalString(e.dispatch_name)},
            {"metadata", MetadataToJson(e.metadata)},
            {"updated_at", FormatRfc3339Millis(e.updated_at_ms)}};
  }
  json::object operator()(const AgentDeleted& e) {
    return {{"agent_id", e.agent_id},
            {"deleted_at", FormatRfc3339Millis(e.deleted_at_ms)}};
  }
  json::object operator()(const ConversationCreated& e) {
    const Conversation& c = e.conversation;
    return {{"id", c.id},
            {"agent_id", c.agent_id},
            {"title", c.title},
            {"created_by", c.created_by},
            {"status", ToString(c.status)},
            {"metadata", MetadataToJson(c.metadata)},
            {"created_at", FormatRfc3339Millis(c.created_at_ms)}};
  }
  json::object operator()(const ConversationUpdated& e) {
    return {{"conversation_id", e.conversation_id},
            {"title", e.title},
            {"metadata", MetadataToJson(e.metadata)},
            {"updated_at", FormatRfc3339Millis(e.updated_at_ms)}};
  }
  json::object operator()(const ConversationStatusChanged& e) {
    return {{"conversation_id", e.conversation_id},
            {"from", ToString(e.from)},
            {"to", ToString(e.to)},
            {"updated_at", FormatRfc3339Millis(e.updated_at_ms)}};
  }
  json::object operator()(const MessageAppended& e) {
    const Message& m = e.message;
    return {{"id", m.id},
            {"conversation_id", m.conversation_id},
            {"role", ToString(m.role)},
            {"content", m.content},
            {"created_at", FormatRfc3339Millis(m.created_at_ms)}};
  }
};

std::string CsvField(std::string_view s) {
  bool quote = s.find_first_of(",\"\r\n") != std::string_view::npos;
  if (!quote) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

}  // namespace

json::object EventPayloadToJson(const EventPayload& payload) {
  return std::visit(PayloadJson{}, payload);
}

json::object EventToJson(const RecordedEvent& e) {
  return {{"position", e.position},
          {"stream", e.stream},
          {"revision", e.revision},
          {"event_id", e.event_id},
          {"type", EventTypeName(e.payload)},
          {"recorded_at", FormatRfc3339Millis(e.recorded_at_ms)},
          {"actor", e.actor},
          {"idempotency_key", e.idempotency_key.empty()
                                  ? json::value(nullptr)
                                  : json::value(e.idempotency_key)},
          {"payload", EventPayloadToJson(e.payload)}};
}

std::string EventCsvHeader() {
  return "position,stream,revision,event_id,type,recorded_at,actor,"
         "idempotency_key,payload\r\n";
}

std::string EventToCsvRow(const RecordedEvent& e) {
  std::string row = std::to_string(e.position);
  row += "," + CsvField(e.stream);
  row += "," + std::to_string(e.revision);
  row += "," + CsvField(e.event_id);
  row += "," + std::string(EventTypeName(e.payload));
  row += "," + FormatRfc3339Millis(e.recorded_at_ms);
  row += "," + CsvField(e.actor);
  row += "," + CsvField(e.idempotency_key);
  row += "," + CsvField(json::serialize(EventPayloadToJson(e.payload)));
  row += "\r\n";
  return row;
}

}  // namespace convstore
