#include "eventlog/event_codec.h"

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <cstring>
#include <memory>

#include "eventlog/events_generated.h"

namespace convstore {
namespace {

namespace fbs = ::convstore::fb;
using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;

Offset<flatbuffers::Vector<Offset<fbs::MetadataEntry>>> BuildMetadata(
    FlatBufferBuilder& b, const Metadata& metadata) {
  std::vector<Offset<fbs::MetadataEntry>> entries;
  entries.reserve(metadata.size());
  for (const auto& [k, v] : metadata) {
    entries.push_back(
        fbs::CreateMetadataEntry(b, b.CreateString(k), b.CreateString(v)));
  }
  return b.CreateVector(entries);
}

Metadata ReadMetadata(
    const flatbuffers::Vector<Offset<fbs::MetadataEntry>>* entries) {
  Metadata out;
  if (entries == nullptr) return out;
  for (const fbs::MetadataEntry* e : *entries) {
    out.emplace_back(e->key() ? e->key()->str() : std::string(),
                     e->value() ? e->value()->str() : std::string());
  }
  return out;
}

std::string Str(const flatbuffers::String* s) {
  return s ? s->str() : std::string();
}

std::optional<std::string> OptStr(const flatbuffers::String* s) {
  if (s == nullptr) return std::nullopt;
  return s->str();
}

Offset<flatbuffers::String> OptString(FlatBufferBuilder& b,
                                      const std::optional<std::string>& s) {
  return s ? b.CreateString(*s) : Offset<flatbuffers::String>();
}

fbs::ConversationStatus ToFb(ConversationStatus s) {
  return static_cast<fbs::ConversationStatus>(s);
}

// Unknown enum values (from a newer writer) fall back to a safe default
// instead of producing an out-of-range enum.
ConversationStatus FromFb(fbs::ConversationStatus s) {
  auto v = static_cast<uint8_t>(s);
  return v <= 2 ? static_cast<ConversationStatus>(v)
                : ConversationStatus::kArchived;
}

MessageRole FromFb(fbs::MessageRole r) {
  auto v = static_cast<uint8_t>(r);
  return v <= 2 ? static_cast<MessageRole>(v) : MessageRole::kUser;
}

struct PayloadBuilder {
  FlatBufferBuilder& b;
  fbs::Payload type = fbs::Payload::NONE;

  Offset<void> operator()(const AgentCreated& e) {
    type = fbs::Payload::AgentCreated;
    const Agent& a = e.agent;
    return fbs::CreateAgentCreated(
               b, b.CreateString(a.id), b.CreateString(a.name),
               b.CreateString(a.instructions), OptString(b, a.dispatch_name),
               BuildMetadata(b, a.metadata), b.CreateString(a.created_by),
               a.created_at_ms)
        .Union();
  }
  Offset<void> operator()(const AgentUpdated& e) {
    type = fbs::Payload::AgentUpdated;
    return fbs::CreateAgentUpdated(
               b, b.CreateString(e.agent_id), b.CreateString(e.name),
               b.CreateString(e.instructions), OptString(b, e.dispatch_name),
               BuildMetadata(b, e.metadata), e.updated_at_ms)
        .Union();
  }
  Offset<void> operator()(const AgentDeleted& e) {
    type = fbs::Payload::AgentDeleted;
    return fbs::CreateAgentDeleted(b, b.CreateString(e.agent_id),
                                   e.deleted_at_ms)
        .Union();
  }
  Offset<void> operator()(const ConversationCreated& e) {
    type = fbs::Payload::ConversationCreated;
    const Conversation& c = e.conversation;
    return fbs::CreateConversationCreated(
               b, b.CreateString(c.id), b.CreateString(c.agent_id),
               b.CreateString(c.title), b.CreateString(c.created_by),
               ToFb(c.status), BuildMetadata(b, c.metadata), c.created_at_ms)
        .Union();
  }
  Offset<void> operator()(const ConversationUpdated& e) {
    type = fbs::Payload::ConversationUpdated;
    return fbs::CreateConversationUpdated(
               b, b.CreateString(e.conversation_id), b.CreateString(e.title),
               BuildMetadata(b, e.metadata), e.updated_at_ms)
        .Union();
  }
  Offset<void> operator()(const ConversationStatusChanged& e) {
    type = fbs::Payload::ConversationStatusChanged;
    return fbs::CreateConversationStatusChanged(
               b, b.CreateString(e.conversation_id), ToFb(e.from), ToFb(e.to),
               e.updated_at_ms)
        .Union();
  }
  Offset<void> operator()(const MessageAppended& e) {
    type = fbs::Payload::MessageAppended;
    const Message& m = e.message;
    return fbs::CreateMessageAppended(
               b, b.CreateString(m.id), b.CreateString(m.conversation_id),
               static_cast<fbs::MessageRole>(m.role),
               b.CreateString(m.content), m.created_at_ms)
        .Union();
  }
};

Status MissingPayload() {
  return Status::Corruption("event names a payload type but holds no payload");
}

Result<EventPayload> ReadPayload(const fbs::EventEnvelope& env) {
  switch (env.payload_type()) {
    case fbs::Payload::AgentCreated: {
      const auto* e = env.payload_as_AgentCreated();
      if (e == nullptr) return MissingPayload();
      Agent a;
      a.id = Str(e->id());
      a.name = Str(e->name());
      a.instructions = Str(e->instructions());
      a.dispatch_name = OptStr(e->dispatch_name());
      a.metadata = ReadMetadata(e->metadata());
      a.created_by = Str(e->created_by());
      a.created_at_ms = e->created_at_ms();
      a.updated_at_ms = e->created_at_ms();
      return EventPayload(AgentCreated{std::move(a)});
    }
    case fbs::Payload::AgentUpdated: {
      const auto* e = env.payload_as_AgentUpdated();
      if (e == nullptr) return MissingPayload();
      return EventPayload(AgentUpdated{
          Str(e->id()), Str(e->name()), Str(e->instructions()),
          OptStr(e->dispatch_name()), ReadMetadata(e->metadata()),
          e->updated_at_ms()});
    }
    case fbs::Payload::AgentDeleted: {
      const auto* e = env.payload_as_AgentDeleted();
      if (e == nullptr) return MissingPayload();
      return EventPayload(AgentDeleted{Str(e->id()), e->deleted_at_ms()});
    }
    case fbs::Payload::ConversationCreated: {
      const auto* e = env.payload_as_ConversationCreated();
      if (e == nullptr) return MissingPayload();
      Conversation c;
      c.id = Str(e->id());
      c.agent_id = Str(e->agent_id());
      c.title = Str(e->title());
      c.created_by = Str(e->created_by());
      c.status = FromFb(e->status());
      c.metadata = ReadMetadata(e->metadata());
      c.created_at_ms = e->created_at_ms();
      c.updated_at_ms = e->created_at_ms();
      return EventPayload(ConversationCreated{std::move(c)});
    }
    case fbs::Payload::ConversationUpdated: {
      const auto* e = env.payload_as_ConversationUpdated();
      if (e == nullptr) return MissingPayload();
      return EventPayload(ConversationUpdated{Str(e->id()), Str(e->title()),
                                              ReadMetadata(e->metadata()),
                                              e->updated_at_ms()});
    }
    case fbs::Payload::ConversationStatusChanged: {
      const auto* e = env.payload_as_ConversationStatusChanged();
      if (e == nullptr) return MissingPayload();
      return EventPayload(ConversationStatusChanged{
          Str(e->id()), FromFb(e->from()), FromFb(e->to()),
          e->updated_at_ms()});
    }
    case fbs::Payload::MessageAppended: {
      const auto* e = env.payload_as_MessageAppended();
      if (e == nullptr) return MissingPayload();
      Message m;
      m.id = Str(e->id());
      m.conversation_id = Str(e->conversation_id());
      m.role = FromFb(e->role());
      m.content = Str(e->content());
      m.created_at_ms = e->created_at_ms();
      return EventPayload(MessageAppended{std::move(m)});
    }
    default:
      return Status::Corruption("event has an unknown payload type " +
                                std::to_string(static_cast<int>(
                                    env.payload_type())));
  }
}

}  // namespace

std::string EncodeEvent(const RecordedEvent& event) {
  FlatBufferBuilder b(256 + [&] {
    if (auto* m = std::get_if<MessageAppended>(&event.payload)) {
      return m->message.content.size();
    }
    return size_t{0};
  }());
  PayloadBuilder pb{b};
  Offset<void> payload = std::visit(pb, event.payload);
  auto env = fbs::CreateEventEnvelope(
      b, event.position, b.CreateString(event.stream), event.revision,
      b.CreateString(event.event_id), event.recorded_at_ms,
      b.CreateString(event.actor),
      event.idempotency_key.empty() ? Offset<flatbuffers::String>()
                                    : b.CreateString(event.idempotency_key),
      pb.type, payload);
  fbs::FinishEventEnvelopeBuffer(b, env);
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()),
                     b.GetSize());
}

Result<RecordedEvent> DecodeEvent(std::string_view bytes) {
  // FlatBuffers reads scalars in place, so the buffer must be aligned as it
  // was built (8 bytes at most); RocksDB hands out values at any address.
  std::unique_ptr<uint64_t[]> aligned;
  if (reinterpret_cast<uintptr_t>(bytes.data()) % alignof(uint64_t) != 0) {
    aligned.reset(new uint64_t[bytes.size() / sizeof(uint64_t) + 1]);
    std::memcpy(aligned.get(), bytes.data(), bytes.size());
    bytes = std::string_view(reinterpret_cast<const char*>(aligned.get()),
                             bytes.size());
  }
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  flatbuffers::Verifier verifier(data, bytes.size());
  if (!fbs::VerifyEventEnvelopeBuffer(verifier)) {
    return Status::Corruption("event bytes do not verify as an EventEnvelope");
  }
  const fbs::EventEnvelope* env = fbs::GetEventEnvelope(data);
  RecordedEvent e;
  e.position = env->position();
  e.stream = Str(env->stream());
  e.revision = env->revision();
  e.event_id = Str(env->event_id());
  e.recorded_at_ms = env->recorded_at_ms();
  e.actor = Str(env->actor());
  e.idempotency_key = Str(env->idempotency_key());
  CONVSTORE_ASSIGN_OR_RETURN(e.payload, ReadPayload(*env));
  return e;
}

}  // namespace convstore
