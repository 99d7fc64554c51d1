#include "eventlog/event_json.h"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cstring>

#include "core/encoding.h"
#include "core/model_json.h"

namespace convstore {
namespace {

namespace json = boost::json;

// Sets an object's members in order, either building it or refreshing one
// that this same code built before (for an earlier event): the i-th member
// set is the object's i-th member when that has the same key (its value is
// overwritten, in place where the kind stays), else the object is cut to i
// members and the member appended; members past the last one set are
// dropped when this goes. So the result is always exactly the object that
// building it afresh would give, and refreshing it allocates nothing new.
class Members {
 public:
  explicit Members(json::object& o) : o_(o) {}
  ~Members() { Truncate(n_); }
  Members(const Members&) = delete;
  Members& operator=(const Members&) = delete;

  void Uint(std::string_view key, uint64_t v) {
    Next(key).emplace_uint64() = v;
  }
  void Null(std::string_view key) { Next(key).emplace_null(); }
  void Bool(std::string_view key, bool b) { Next(key).emplace_bool() = b; }
  void Str(std::string_view key, std::string_view s) {
    json::value& v = Next(key);
    if (json::string* str = v.if_string()) {
      str->assign(s);
    } else {
      v = s;
    }
  }
  void OptionalStr(std::string_view key, const std::optional<std::string>& s) {
    if (s) {
      Str(key, *s);
    } else {
      Null(key);
    }
  }
  void Object(std::string_view key, json::object&& o) {
    Next(key) = std::move(o);
  }
  // The member, as an object (empty unless it was one).
  json::object& ObjectRef(std::string_view key) {
    json::value& v = Next(key);
    if (json::object* o = v.if_object()) return *o;
    return v.emplace_object();
  }

 private:
  json::value& Next(std::string_view key) {
    const size_t i = n_++;
    if (i < o_.size()) {
      auto it = o_.begin() + static_cast<std::ptrdiff_t>(i);
      if (it->key() == key) return it->value();
      Truncate(i);
    }
    return o_.emplace(key, nullptr).first->value();
  }
  void Truncate(size_t n) {
    // Erasing the last member moves no other.
    while (o_.size() > n) o_.erase(o_.end() - 1);
  }

  json::object& o_;
  size_t n_ = 0;
};

struct PayloadJson {
  json::object& o;

  void operator()(const AgentCreated& e) {
    json::object agent = AgentToJson(e.agent);
    agent.erase("updated_at");
    o = std::move(agent);
  }
  void operator()(const AgentUpdated& e) {
    Members m(o);
    m.Str("agent_id", e.agent_id);
    m.Str("name", e.name);
    m.Str("instructions", e.instructions);
    m.OptionalStr("dispatch_name", e.dispatch_name);
    m.Object("metadata", MetadataToJson(e.metadata));
    m.Str("updated_at", Rfc3339Millis(e.updated_at_ms).view());
  }
  void operator()(const AgentDeleted& e) {
    Members m(o);
    m.Str("agent_id", e.agent_id);
    m.Str("deleted_at", Rfc3339Millis(e.deleted_at_ms).view());
  }
  void operator()(const ConversationCreated& e) {
    const Conversation& c = e.conversation;
    Members m(o);
    m.Str("id", c.id);
    m.Str("agent_id", c.agent_id);
    m.Str("title", c.title);
    m.Str("created_by", c.created_by);
    m.Str("status", ToString(c.status));
    m.Object("metadata", MetadataToJson(c.metadata));
    m.Str("created_at", Rfc3339Millis(c.created_at_ms).view());
  }
  void operator()(const ConversationUpdated& e) {
    Members m(o);
    m.Str("conversation_id", e.conversation_id);
    m.Str("title", e.title);
    m.Object("metadata", MetadataToJson(e.metadata));
    m.Str("updated_at", Rfc3339Millis(e.updated_at_ms).view());
  }
  void operator()(const ConversationStatusChanged& e) {
    Members m(o);
    m.Str("conversation_id", e.conversation_id);
    m.Str("from", ToString(e.from));
    m.Str("to", ToString(e.to));
    m.Str("updated_at", Rfc3339Millis(e.updated_at_ms).view());
  }
  void operator()(const MessageAppended& e) {
    const Message& msg = e.message;
    Members m(o);
    m.Str("id", msg.id);
    m.Str("conversation_id", msg.conversation_id);
    m.Str("role", ToString(msg.role));
    m.Str("content", msg.content);
    m.Str("created_at", Rfc3339Millis(msg.created_at_ms).view());
  }
  void operator()(const ConversationErased& e) {
    Members m(o);
    m.Str("conversation_id", e.conversation_id);
    m.Str("reason", ToString(e.reason));
    m.Str("erased_at", Rfc3339Millis(e.erased_at_ms).view());
  }
  void operator()(const AgentErased& e) {
    Members m(o);
    m.Str("agent_id", e.agent_id);
    m.Str("reason", ToString(e.reason));
    m.Str("erased_at", Rfc3339Millis(e.erased_at_ms).view());
  }
  void operator()(const UserErased& e) {
    Members m(o);
    m.Str("user_ref", e.user_ref);
    m.Str("erased_at", Rfc3339Millis(e.erased_at_ms).view());
    m.Uint("agents", e.agents);
    m.Uint("conversations", e.conversations);
    m.Uint("messages", e.messages);
    m.Uint("api_keys", e.api_keys);
    m.Uint("webhooks", e.webhooks);
  }
};

// EventPayloadToJson(payload), into `o` (see Members).
void SetPayloadJson(const EventPayload& payload, json::object& o) {
  std::visit(PayloadJson{o}, payload);
}

// EventToJson(e), into `o` (see Members).
void SetEventJson(const RecordedEvent& e, json::object& o) {
  Members m(o);
  m.Uint("position", e.position);
  m.Str("stream", e.stream);
  m.Uint("revision", e.revision);
  m.Str("event_id", e.event_id);
  m.Str("type", EventTypeName(e.payload));
  m.Str("recorded_at", Rfc3339Millis(e.recorded_at_ms).view());
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
    SetPayloadJson(e.payload, m.ObjectRef("payload"));
  }
}

}  // namespace

json::object EventPayloadToJson(const EventPayload& payload) {
  json::object o;
  SetPayloadJson(payload, o);
  return o;
}

json::object EventToJson(const RecordedEvent& e) {
  json::object o;
  SetEventJson(e, o);
  return o;
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

char* EventTextWriter::Text::Room(size_t n) {
  if (bytes.size() - size < n) {
    bytes.resize(std::max(2 * bytes.size(), size + n));
  }
  return bytes.data() + size;
}

void EventTextWriter::Text::Append(std::string_view s) {
  std::memcpy(Room(s.size()), s.data(), s.size());
  size += s.size();
}

void EventTextWriter::Text::Append(char c) {
  *Room(1) = c;
  ++size;
}

void EventTextWriter::Serialize(const json::object& object, Text& out) {
  serializer_.reset(&object);
  while (!serializer_.done()) {
    char* room = out.Room(4096);
    out.size += serializer_.read(room, out.bytes.size() - out.size).size();
  }
}

void EventTextWriter::AppendJsonLine(const RecordedEvent& event) {
  SetEventJson(event, event_);
  Serialize(event_, text_);
  text_.Append('\n');
}

void EventTextWriter::AppendCsvRow(const RecordedEvent& e) {
  // A comma, then the field as RFC 4180 has it: quoted when it holds a
  // comma, a quote or a line break, with its quotes doubled.
  auto field = [this](std::string_view s) {
    text_.Append(',');
    if (s.find_first_of(",\"\r\n") == std::string_view::npos) {
      text_.Append(s);
      return;
    }
    text_.Append('"');
    for (size_t start = 0;;) {
      const size_t quote = s.find('"', start);
      if (quote == std::string_view::npos) {
        text_.Append(s.substr(start));
        break;
      }
      text_.Append(s.substr(start, quote + 1 - start));
      text_.Append('"');
      start = quote + 1;
    }
    text_.Append('"');
  };
  auto number = [this](uint64_t v) {
    char* room = text_.Room(20);
    text_.size = static_cast<size_t>(std::to_chars(room, room + 20, v).ptr -
                                     text_.bytes.data());
  };
  number(e.position);
  field(e.stream);
  text_.Append(',');
  number(e.revision);
  field(e.event_id);
  text_.Append(',');
  text_.Append(EventTypeName(e.payload));
  text_.Append(',');
  text_.Append(Rfc3339Millis(e.recorded_at_ms).view());
  field(e.actor);
  field(e.idempotency_key);
  payload_text_.size = 0;
  if (!e.erased) {  // an erased event's payload field is empty
    SetPayloadJson(e.payload, payload_);
    Serialize(payload_, payload_text_);
  }
  field(std::string_view(payload_text_.bytes.data(), payload_text_.size));
  text_.Append("\r\n");
}

}  // namespace convstore
