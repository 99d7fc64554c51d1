#include "core/model_json.h"

#include <boost/json.hpp>
#include <cstdint>
#include <cstring>

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

// The writer decodes a record on each command that reads one (an append
// reads its conversation): parse into `resource`, a stack buffer of the
// caller's, rather than a heap allocation per value.
Result<json::object> ParseRecord(std::string_view bytes,
                                 json::monotonic_resource& resource) {
  boost::system::error_code ec;
  json::value v = json::parse(bytes, ec, &resource);
  if (ec || !v.is_object()) {
    return Status::Corruption("read-model record does not decode");
  }
  return std::move(v.as_object());
}

// The fields of ConversationToJson before room_url, in order.
json::object ConversationJsonHead(const Conversation& c) {
  json::object o;
  o["id"] = c.id;
  o["agent_id"] = c.agent_id;
  o["title"] = c.title;
  o["created_at"] = FormatRfc3339Millis(c.created_at_ms);
  o["updated_at"] = FormatRfc3339Millis(c.updated_at_ms);
  o["created_by"] = c.created_by;
  o["status"] = ToString(c.status);
  o["room_name"] = c.id;
  return o;
}

void PutField(std::string_view field, std::string& out) {
  const uint32_t n = static_cast<uint32_t>(field.size());
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((n >> shift) & 0xff));
  }
  out.append(field);
}

bool GetField(std::string_view& in, std::string_view& field) {
  if (in.size() < 4) return false;
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n = (n << 8) | static_cast<unsigned char>(in[i]);
  in.remove_prefix(4);
  if (in.size() < n) return false;
  field = in.substr(0, n);
  in.remove_prefix(n);
  return true;
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
  json::object o = ConversationJsonHead(c);
  o["room_url"] = room_url;
  o["metadata"] = MetadataToJson(c.metadata);
  return o;
}

namespace {

// Whether json::serialize escapes any byte of `s` (a control byte, '"' or
// '\\'). Sixteen bytes at a time, in the compiler's vector registers (SSE2
// on x86-64): every rendered message asks it of its content, and the eight
// bytes at a time of plain integers took about 3.5 instructions a byte.
bool NeedsJsonEscape(std::string_view s) {
  using Bytes16 = unsigned char __attribute__((vector_size(16)));
  const auto any_of_16 = [](const char* p) {
    Bytes16 v;
    std::memcpy(&v, p, 16);
    // Each lane all ones where its byte needs an escape.
    const auto flagged = (v < 0x20) | (v == '"') | (v == '\\');
    uint64_t halves[2];
    std::memcpy(halves, &flagged, 16);
    return (halves[0] | halves[1]) != 0;
  };
  if (s.size() >= 16) {
    size_t i = 0;
    for (; i + 16 <= s.size(); i += 16) {
      if (any_of_16(s.data() + i)) return true;
    }
    // The tail as the last sixteen bytes, overlapping ones already seen.
    return i < s.size() && any_of_16(s.data() + s.size() - 16);
  }
  if (s.empty()) return false;
  // A short string padded with a byte that needs no escape: one step, not
  // a branch a byte (an export asks this of a dozen short values an event).
  char padded[16];
  std::memset(padded, 'a', sizeof padded);
  std::memcpy(padded, s.data(), s.size());
  return any_of_16(padded);
}

// Appends what Boost.JSON's serializer writes for `what` (a value, or a
// string view: serialized as a JSON string without building one), through
// a stack buffer, so this allocates nothing but `out`.
template <typename What>
void AppendSerializedText(const What& what, std::string& out) {
  json::serializer sr;
  sr.reset(what);
  char buf[512];
  while (!sr.done()) out.append(sr.read(buf));
}

}  // namespace

void AppendSerialized(const json::value& v, std::string& out) {
  AppendSerializedText(&v, out);
}

// Most strings (ids, roles, times, most text) hold nothing to escape and are
// copied as they are; the others go through Boost.JSON's serializer.
void AppendJsonString(std::string_view s, std::string& out) {
  if (!NeedsJsonEscape(s)) {
    out.push_back('"');
    out.append(s);
    out.push_back('"');
    return;
  }
  AppendSerializedText(json::string_view(s.data(), s.size()), out);
}

namespace {

// `s` escaped as inside a JSON string, without the quotes.
std::string JsonEscaped(std::string_view s) {
  std::string quoted;
  AppendJsonString(s, quoted);
  return quoted.substr(1, quoted.size() - 2);
}

}  // namespace

RoomUrlTemplate::RoomUrlTemplate(std::string_view url_template,
                                 std::string_view livekit_url) {
  std::string filled(url_template);
  constexpr std::string_view kUrl = "{livekit_url}";
  for (size_t pos = filled.find(kUrl); pos != std::string::npos;
       pos = filled.find(kUrl, pos + livekit_url.size())) {
    filled.replace(pos, kUrl.size(), livekit_url);
  }
  constexpr std::string_view kRoom = "{room}";
  size_t start = 0;
  for (size_t pos = filled.find(kRoom); pos != std::string::npos;
       pos = filled.find(kRoom, start)) {
    pieces_.push_back(filled.substr(start, pos - start));
    start = pos + kRoom.size();
  }
  pieces_.push_back(filled.substr(start));
  for (const std::string& piece : pieces_) {
    json_pieces_.push_back(JsonEscaped(piece));
  }
}

std::string RoomUrlTemplate::Render(std::string_view room) const {
  std::string out = pieces_[0];
  for (size_t i = 1; i < pieces_.size(); ++i) {
    out.append(room);
    out.append(pieces_[i]);
  }
  return out;
}

void RoomUrlTemplate::AppendJson(std::string_view room,
                                 std::string& out) const {
  // Rooms are conversation ids, which need no escape; any other text takes
  // the serializer's.
  std::string escaped;
  if (NeedsJsonEscape(room)) {
    escaped = JsonEscaped(room);
    room = escaped;
  }
  out.push_back('"');
  out.append(json_pieces_[0]);
  for (size_t i = 1; i < json_pieces_.size(); ++i) {
    out.append(room);
    out.append(json_pieces_[i]);
  }
  out.push_back('"');
}

// Layout: six length-prefixed fields (4-byte big-endian length, then the
// bytes): status as its one-byte enum value, agent id, owner, revision as 8
// big-endian bytes, JSON head, JSON tail.
namespace {

void PutU64Field(uint64_t v, std::string& out) {
  char bytes[8];
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<char>((v >> (8 * (7 - i))) & 0xff);
  }
  PutField(std::string_view(bytes, 8), out);
}

bool GetU64Field(std::string_view& in, uint64_t& v) {
  std::string_view bytes;
  if (!GetField(in, bytes) || bytes.size() != 8) return false;
  v = 0;
  for (unsigned char b : bytes) v = (v << 8) | b;
  return true;
}

}  // namespace

std::string EncodeConversationListEntry(const Conversation& c,
                                        uint64_t revision,
                                        uint64_t status_position) {
  std::string head = json::serialize(ConversationJsonHead(c));
  head.back() = ',';  // the object goes on: "...,"room_url":<url>,..."
  head.append("\"room_url\":");
  json::object metadata;
  metadata["metadata"] = MetadataToJson(c.metadata);
  std::string tail = json::serialize(metadata);
  tail.front() = ',';
  std::string out;
  out.reserve(28 + 1 + c.agent_id.size() + c.created_by.size() + 16 +
              head.size() + tail.size());
  const char status = static_cast<char>(c.status);
  PutField(std::string_view(&status, 1), out);
  PutField(c.agent_id, out);
  PutField(c.created_by, out);
  PutU64Field(revision, out);
  PutU64Field(status_position, out);
  PutField(head, out);
  PutField(tail, out);
  return out;
}

Result<ConversationListEntry> DecodeConversationListEntry(
    std::string_view bytes) {
  ConversationListEntry e;
  std::string_view status;
  if (!GetField(bytes, status) || status.size() != 1 ||
      static_cast<uint8_t>(status[0]) >
          static_cast<uint8_t>(ConversationStatus::kArchived) ||
      !GetField(bytes, e.agent_id) || !GetField(bytes, e.created_by) ||
      !GetU64Field(bytes, e.revision) ||
      !GetU64Field(bytes, e.status_position) || !GetField(bytes, e.json_head) ||
      !GetField(bytes, e.json_tail) || !bytes.empty()) {
    return Status::Corruption("conversation list entry does not decode");
  }
  e.status = static_cast<ConversationStatus>(status[0]);
  return e;
}

void AppendConversationJson(const ConversationListEntry& entry,
                            const RoomUrlTemplate& room_url,
                            std::string_view room, std::string& out) {
  out.append(entry.json_head);
  room_url.AppendJson(room, out);
  out.append(entry.json_tail);
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
  // Every append and every rebuilt message renders one, so the object is
  // written field by field (the bytes json::serialize would write for it)
  // instead of built as a json::object first (7.2k -> 3.1k instructions
  // for a 200-byte message, callgrind).
  const Rfc3339Millis created_at_text(m.created_at_ms);
  const std::string_view created_at = created_at_text.view();
  const std::string_view role = ToString(m.role);
  std::string out;
  // Room for the names and quotes; escapes may grow it.
  out.reserve(64 + m.id.size() + m.conversation_id.size() + role.size() +
              m.content.size() + created_at.size());
  out.append("{\"id\":");
  AppendJsonString(m.id, out);
  out.append(",\"conversation_id\":");
  AppendJsonString(m.conversation_id, out);
  out.append(",\"role\":");
  AppendJsonString(role, out);
  out.append(",\"content\":");
  AppendJsonString(m.content, out);
  out.append(",\"created_at\":");
  AppendJsonString(created_at, out);
  out.push_back('}');
  return out;
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
  unsigned char buffer[2048];
  json::monotonic_resource resource(buffer);
  auto parsed = ParseRecord(bytes, resource);
  if (!parsed.ok()) return parsed.status();
  const json::object& o = *parsed;
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
  unsigned char buffer[2048];
  json::monotonic_resource resource(buffer);
  auto parsed = ParseRecord(bytes, resource);
  if (!parsed.ok()) return parsed.status();
  const json::object& o = *parsed;
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
