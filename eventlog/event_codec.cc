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

// The reads below assign into existing values, so that a decoder reusing one
// RecordedEvent keeps its strings' storage; into a fresh value they give
// exactly what constructing it would.
void ReadStr(const flatbuffers::String* s, std::string& out) {
  if (s == nullptr) {
    out.clear();
  } else {
    out.assign(s->data(), s->size());
  }
}

void ReadOptStr(const flatbuffers::String* s, std::optional<std::string>& out) {
  if (s == nullptr) {
    out.reset();
  } else if (out) {
    out->assign(s->data(), s->size());
  } else {
    out.emplace(s->data(), s->size());
  }
}

void ReadMetadata(
    const flatbuffers::Vector<Offset<fbs::MetadataEntry>>* entries,
    Metadata& out) {
  out.resize(entries == nullptr ? 0 : entries->size());
  for (size_t i = 0; i < out.size(); ++i) {
    const fbs::MetadataEntry* e =
        entries->Get(static_cast<flatbuffers::uoffset_t>(i));
    ReadStr(e->key(), out[i].first);
    ReadStr(e->value(), out[i].second);
  }
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
               static_cast<fbs::MessageRole>(m.role), b.CreateString(m.content),
               m.created_at_ms)
        .Union();
  }
};

Status MissingPayload() {
  return Status::Corruption("event names a payload type but holds no payload");
}

// The payload alternative T of `payload`, kept (with its storage) when it
// already holds one, else a fresh one.
template <typename T>
T& Reuse(EventPayload& payload) {
  if (T* t = std::get_if<T>(&payload)) return *t;
  return payload.template emplace<T>();
}

Status ReadPayload(const fbs::EventEnvelope& env, EventPayload& out) {
  switch (env.payload_type()) {
    case fbs::Payload::AgentCreated: {
      const auto* e = env.payload_as_AgentCreated();
      if (e == nullptr) return MissingPayload();
      Agent& a = Reuse<AgentCreated>(out).agent;
      ReadStr(e->id(), a.id);
      ReadStr(e->name(), a.name);
      ReadStr(e->instructions(), a.instructions);
      ReadOptStr(e->dispatch_name(), a.dispatch_name);
      ReadMetadata(e->metadata(), a.metadata);
      ReadStr(e->created_by(), a.created_by);
      a.created_at_ms = e->created_at_ms();
      a.updated_at_ms = e->created_at_ms();
      return Status();
    }
    case fbs::Payload::AgentUpdated: {
      const auto* e = env.payload_as_AgentUpdated();
      if (e == nullptr) return MissingPayload();
      AgentUpdated& u = Reuse<AgentUpdated>(out);
      ReadStr(e->id(), u.agent_id);
      ReadStr(e->name(), u.name);
      ReadStr(e->instructions(), u.instructions);
      ReadOptStr(e->dispatch_name(), u.dispatch_name);
      ReadMetadata(e->metadata(), u.metadata);
      u.updated_at_ms = e->updated_at_ms();
      return Status();
    }
    case fbs::Payload::AgentDeleted: {
      const auto* e = env.payload_as_AgentDeleted();
      if (e == nullptr) return MissingPayload();
      AgentDeleted& d = Reuse<AgentDeleted>(out);
      ReadStr(e->id(), d.agent_id);
      d.deleted_at_ms = e->deleted_at_ms();
      return Status();
    }
    case fbs::Payload::ConversationCreated: {
      const auto* e = env.payload_as_ConversationCreated();
      if (e == nullptr) return MissingPayload();
      Conversation& c = Reuse<ConversationCreated>(out).conversation;
      ReadStr(e->id(), c.id);
      ReadStr(e->agent_id(), c.agent_id);
      ReadStr(e->title(), c.title);
      ReadStr(e->created_by(), c.created_by);
      c.status = FromFb(e->status());
      ReadMetadata(e->metadata(), c.metadata);
      c.created_at_ms = e->created_at_ms();
      c.updated_at_ms = e->created_at_ms();
      return Status();
    }
    case fbs::Payload::ConversationUpdated: {
      const auto* e = env.payload_as_ConversationUpdated();
      if (e == nullptr) return MissingPayload();
      ConversationUpdated& u = Reuse<ConversationUpdated>(out);
      ReadStr(e->id(), u.conversation_id);
      ReadStr(e->title(), u.title);
      ReadMetadata(e->metadata(), u.metadata);
      u.updated_at_ms = e->updated_at_ms();
      return Status();
    }
    case fbs::Payload::ConversationStatusChanged: {
      const auto* e = env.payload_as_ConversationStatusChanged();
      if (e == nullptr) return MissingPayload();
      ConversationStatusChanged& c = Reuse<ConversationStatusChanged>(out);
      ReadStr(e->id(), c.conversation_id);
      c.from = FromFb(e->from());
      c.to = FromFb(e->to());
      c.updated_at_ms = e->updated_at_ms();
      return Status();
    }
    case fbs::Payload::MessageAppended: {
      const auto* e = env.payload_as_MessageAppended();
      if (e == nullptr) return MissingPayload();
      Message& m = Reuse<MessageAppended>(out).message;
      ReadStr(e->id(), m.id);
      ReadStr(e->conversation_id(), m.conversation_id);
      m.role = FromFb(e->role());
      ReadStr(e->content(), m.content);
      m.created_at_ms = e->created_at_ms();
      return Status();
    }
    default:
      return Status::Corruption(
          "event has an unknown payload type " +
          std::to_string(static_cast<int>(env.payload_type())));
  }
}

// Verifies and reads `bytes`, which must be 8-byte aligned, into `e`.
Status DecodeAligned(std::string_view bytes, RecordedEvent& e) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  flatbuffers::Verifier verifier(data, bytes.size());
  if (!fbs::VerifyEventEnvelopeBuffer(verifier)) {
    return Status::Corruption("event bytes do not verify as an EventEnvelope");
  }
  const fbs::EventEnvelope* env = fbs::GetEventEnvelope(data);
  e.position = env->position();
  ReadStr(env->stream(), e.stream);
  e.revision = env->revision();
  ReadStr(env->event_id(), e.event_id);
  e.recorded_at_ms = env->recorded_at_ms();
  ReadStr(env->actor(), e.actor);
  ReadStr(env->idempotency_key(), e.idempotency_key);
  return ReadPayload(*env, e.payload);
}

bool Aligned(std::string_view bytes) {
  return reinterpret_cast<uintptr_t>(bytes.data()) % alignof(uint64_t) == 0;
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
  if (!Aligned(bytes)) {
    aligned.reset(new uint64_t[bytes.size() / sizeof(uint64_t) + 1]);
    std::memcpy(aligned.get(), bytes.data(), bytes.size());
    bytes = std::string_view(reinterpret_cast<const char*>(aligned.get()),
                             bytes.size());
  }
  RecordedEvent e;
  CONVSTORE_RETURN_IF_ERROR(DecodeAligned(bytes, e));
  return e;
}

Status EventDecoder::Decode(std::string_view bytes, RecordedEvent& event) {
  // As DecodeEvent: an aligned copy of unaligned input, here in a buffer
  // kept from one event to the next.
  if (!Aligned(bytes)) {
    const size_t words = bytes.size() / sizeof(uint64_t) + 1;
    if (aligned_.size() < words) aligned_.resize(words);
    std::memcpy(aligned_.data(), bytes.data(), bytes.size());
    bytes = std::string_view(reinterpret_cast<const char*>(aligned_.data()),
                             bytes.size());
  }
  return DecodeAligned(bytes, event);
}

}  // namespace convstore
