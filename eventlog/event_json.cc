#include "eventlog/event_json.h"

#include <boost/json.hpp>
#include <charconv>

#include "core/encoding.h"
#include "core/model_json.h"

namespace convstore {
namespace {

namespace json = boost::json;

// Writes a JSON object member by member, in order, as the bytes
// json::serialize writes for the object built from them ({"key":value,...},
// no spaces): an event's text is written straight into the output, with no
// json::object built and serialized again (an export's largest cost). Opens
// the object when made, closes it when it goes.
class ObjectText {
 public:
  explicit ObjectText(std::string& out) : out_(out) { out_.push_back('{'); }
  ~ObjectText() { out_.push_back('}'); }
  ObjectText(const ObjectText&) = delete;
  ObjectText& operator=(const ObjectText&) = delete;

  void Uint(std::string_view key, uint64_t v) {
    Key(key);
    char digits[20];
    out_.append(digits, std::to_chars(digits, digits + 20, v).ptr);
  }
  void Null(std::string_view key) {
    Key(key);
    out_.append("null");
  }
  void Bool(std::string_view key, bool b) {
    Key(key);
    out_.append(b ? "true" : "false");
  }
  void Str(std::string_view key, std::string_view s) {
    Key(key);
    AppendJsonString(s, out_);
  }
  void OptionalStr(std::string_view key, const std::optional<std::string>& s) {
    if (s) {
      Str(key, *s);
    } else {
      Null(key);
    }
  }
  // A string convstore wrote itself with nothing to escape: a type's or
  // an enum's name, a time.
  void Name(std::string_view key, std::string_view name) {
    Key(key);
    out_.push_back('"');
    out_.append(name);
    out_.push_back('"');
  }
  void Time(std::string_view key, int64_t unix_ms) {
    Name(key, Rfc3339Millis(unix_ms).view());
  }
  void Value(std::string_view key, const json::value& v) {
    Key(key);
    AppendSerialized(v, out_);
  }
  // Each member of `o`, in its order.
  void MembersOf(const json::object& o) {
    for (const json::key_value_pair& kv : o) Value(kv.key(), kv.value());
  }
  // An object member, its members written by fill(ObjectText&).
  template <typename Fill>
  void Object(std::string_view key, Fill fill) {
    Key(key);
    ObjectText inner(out_);
    fill(inner);
  }

 private:
  // Keys are convstore's own names, with nothing to escape.
  void Key(std::string_view key) {
    if (members_++ > 0) out_.push_back(',');
    out_.push_back('"');
    out_.append(key);
    out_.append("\":");
  }

  std::string& out_;
  size_t members_ = 0;
};

// Each payload type's members.
struct PayloadJson {
  ObjectText& m;

  void operator()(const AgentCreated& e) {
    json::object agent = AgentToJson(e.agent);
    agent.erase("updated_at");
    m.MembersOf(agent);
  }
  void operator()(const AgentUpdated& e) {
    m.Str("agent_id", e.agent_id);
    m.Str("name", e.name);
    m.Str("instructions", e.instructions);
    m.OptionalStr("dispatch_name", e.dispatch_name);
    m.Value("metadata", MetadataToJson(e.metadata));
    m.Time("updated_at", e.updated_at_ms);
  }
  void operator()(const AgentDeleted& e) {
    m.Str("agent_id", e.agent_id);
    m.Time("deleted_at", e.deleted_at_ms);
  }
  void operator()(const ConversationCreated& e) {
    const Conversation& c = e.conversation;
    m.Str("id", c.id);
    m.Str("agent_id", c.agent_id);
    m.Str("title", c.title);
    m.Str("created_by", c.created_by);
    m.Name("status", ToString(c.status));
    m.Value("metadata", MetadataToJson(c.metadata));
    m.Time("created_at", c.created_at_ms);
  }
  void operator()(const ConversationUpdated& e) {
    m.Str("conversation_id", e.conversation_id);
    m.Str("title", e.title);
    m.Value("metadata", MetadataToJson(e.metadata));
    m.Time("updated_at", e.updated_at_ms);
  }
  void operator()(const ConversationStatusChanged& e) {
    m.Str("conversation_id", e.conversation_id);
    m.Name("from", ToString(e.from));
    m.Name("to", ToString(e.to));
    m.Time("updated_at", e.updated_at_ms);
  }
  void operator()(const MessageAppended& e) {
    const Message& msg = e.message;
    m.Str("id", msg.id);
    m.Str("conversation_id", msg.conversation_id);
    m.Name("role", ToString(msg.role));
    m.Str("content", msg.content);
    m.Time("created_at", msg.created_at_ms);
  }
  void operator()(const ConversationErased& e) {
    m.Str("conversation_id", e.conversation_id);
    m.Name("reason", ToString(e.reason));
    m.Time("erased_at", e.erased_at_ms);
  }
  void operator()(const AgentErased& e) {
    m.Str("agent_id", e.agent_id);
    m.Name("reason", ToString(e.reason));
    m.Time("erased_at", e.erased_at_ms);
  }
  void operator()(const UserErased& e) {
    m.Str("user_ref", e.user_ref);
    m.Time("erased_at", e.erased_at_ms);
    m.Uint("agents", e.agents);
    m.Uint("conversations", e.conversations);
    m.Uint("messages", e.messages);
    m.Uint("api_keys", e.api_keys);
    m.Uint("webhooks", e.webhooks);
  }
};

void AppendPayloadJson(const EventPayload& payload, std::string& out) {
  ObjectText m(out);
  std::visit(PayloadJson{m}, payload);
}

void AppendEventJson(const RecordedEvent& e, std::string& out) {
  ObjectText m(out);
  m.Uint("position", e.position);
  m.Str("stream", e.stream);
  m.Uint("revision", e.revision);
  m.Str("event_id", e.event_id);
  m.Name("type", EventTypeName(e.payload));
  m.Time("recorded_at", e.recorded_at_ms);
  if (e.erased) {  // sealed with the payload: gone with it
    m.Null("actor");
  } else {
    m.Str("actor", e.actor);
  }
  if (e.idempotency_key.empty()) {
    m.Null("idempotency_key");
  } else {
    m.Str("idempotency_key", e.idempotency_key);
  }
  if (e.erased) {
    // The payload's data key is gone: the envelope is all there is.
    m.Bool("erased", true);
  } else {
    m.Object("payload", [&e](ObjectText& payload) {
      std::visit(PayloadJson{payload}, e.payload);
    });
  }
}

}  // namespace

std::string EventJson(const RecordedEvent& event) {
  std::string out;
  AppendEventJson(event, out);
  return out;
}

std::string EventPayloadJson(const EventPayload& payload) {
  std::string out;
  AppendPayloadJson(payload, out);
  return out;
}

std::string EventCsvHeader() {
  return "position,stream,revision,event_id,type,recorded_at,actor,"
         "idempotency_key,payload\r\n";
}

std::string EventToCsvRow(const RecordedEvent& e) {
  EventTextWriter writer;
  writer.AppendCsvRow(e);
  return std::string(writer.text());
}

void EventTextWriter::AppendJsonLine(const RecordedEvent& event) {
  AppendEventJson(event, text_);
  text_.push_back('\n');
}

void EventTextWriter::AppendCsvRow(const RecordedEvent& e) {
  // A comma, then the field as RFC 4180 has it: quoted when it holds a
  // comma, a quote or a line break, with its quotes doubled.
  auto field = [this](std::string_view s) {
    text_.push_back(',');
    if (s.find_first_of(",\"\r\n") == std::string_view::npos) {
      text_.append(s);
      return;
    }
    text_.push_back('"');
    for (size_t start = 0;;) {
      const size_t quote = s.find('"', start);
      if (quote == std::string_view::npos) {
        text_.append(s.substr(start));
        break;
      }
      text_.append(s.substr(start, quote + 1 - start));
      text_.push_back('"');
      start = quote + 1;
    }
    text_.push_back('"');
  };
  auto number = [this](uint64_t v) {
    char digits[20];
    text_.append(digits, std::to_chars(digits, digits + 20, v).ptr);
  };
  number(e.position);
  field(e.stream);
  text_.push_back(',');
  number(e.revision);
  field(e.event_id);
  text_.push_back(',');
  text_.append(EventTypeName(e.payload));
  text_.push_back(',');
  text_.append(Rfc3339Millis(e.recorded_at_ms).view());
  field(e.actor);
  field(e.idempotency_key);
  payload_text_.clear();
  if (!e.erased) {  // an erased event's payload field is empty
    AppendPayloadJson(e.payload, payload_text_);
  }
  field(payload_text_);
  text_.append("\r\n");
}

}  // namespace convstore
