#include "eventlog/event_codec.h"

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <cstring>
#include <memory>

#include "core/data_key.h"
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
  Offset<void> operator()(const ConversationErased& e) {
    type = fbs::Payload::ConversationErased;
    return fbs::CreateConversationErased(
               b, b.CreateString(e.conversation_id),
               static_cast<fbs::ErasureReason>(e.reason), e.erased_at_ms)
        .Union();
  }
  Offset<void> operator()(const AgentErased& e) {
    type = fbs::Payload::AgentErased;
    return fbs::CreateAgentErased(b, b.CreateString(e.agent_id),
                                  static_cast<fbs::ErasureReason>(e.reason),
                                  e.erased_at_ms)
        .Union();
  }
  Offset<void> operator()(const UserErased& e) {
    type = fbs::Payload::UserErased;
    return fbs::CreateUserErased(b, b.CreateString(e.user_ref), e.erased_at_ms,
                                 e.agents, e.conversations, e.messages,
                                 e.api_keys, e.webhooks)
        .Union();
  }
};

ErasureReason FromFb(fbs::ErasureReason r) {
  auto v = static_cast<uint8_t>(r);
  return v <= 2 ? static_cast<ErasureReason>(v) : ErasureReason::kDeleted;
}

// The union's members are in the variant's order (type = index + 1), which
// lets an erased event keep its type with an empty value.
static_assert(static_cast<size_t>(fbs::Payload::MAX) ==
              std::variant_size_v<EventPayload>);

template <size_t... I>
void EmplaceEmpty(EventPayload& payload, size_t index,
                  std::index_sequence<I...>) {
  ((index == I ? (void)payload.template emplace<I>() : void()), ...);
}

Status EmptyPayloadOfType(fbs::Payload type, EventPayload& out) {
  const auto t = static_cast<size_t>(type);
  if (t == 0 || t > std::variant_size_v<EventPayload>) {
    return Status::Corruption("erased event has an unknown payload type " +
                              std::to_string(t));
  }
  EmplaceEmpty(out, t - 1,
               std::make_index_sequence<std::variant_size_v<EventPayload>>());
  return Status();
}

// What a sealed payload is authenticated with: its position and stream, so
// sealed bytes moved to another event do not open.
std::string SealAad(uint64_t position, std::string_view stream) {
  std::string aad(8, '\0');
  for (int i = 7; i >= 0; --i, position >>= 8) {
    aad[i] = static_cast<char>(position & 0xff);
  }
  aad.append(stream);
  return aad;
}

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
    case fbs::Payload::ConversationErased: {
      const auto* e = env.payload_as_ConversationErased();
      if (e == nullptr) return MissingPayload();
      ConversationErased& c = Reuse<ConversationErased>(out);
      ReadStr(e->id(), c.conversation_id);
      c.reason = FromFb(e->reason());
      c.erased_at_ms = e->erased_at_ms();
      return Status();
    }
    case fbs::Payload::AgentErased: {
      const auto* e = env.payload_as_AgentErased();
      if (e == nullptr) return MissingPayload();
      AgentErased& a = Reuse<AgentErased>(out);
      ReadStr(e->id(), a.agent_id);
      a.reason = FromFb(e->reason());
      a.erased_at_ms = e->erased_at_ms();
      return Status();
    }
    case fbs::Payload::UserErased: {
      const auto* e = env.payload_as_UserErased();
      if (e == nullptr) return MissingPayload();
      UserErased& u = Reuse<UserErased>(out);
      ReadStr(e->user_ref(), u.user_ref);
      u.erased_at_ms = e->erased_at_ms();
      u.agents = e->agents();
      u.conversations = e->conversations();
      u.messages = e->messages();
      u.api_keys = e->api_keys();
      u.webhooks = e->webhooks();
      return Status();
    }
    default:
      return Status::Corruption(
          "event has an unknown payload type " +
          std::to_string(static_cast<int>(env.payload_type())));
  }
}

bool Aligned(std::string_view bytes) {
  return reinterpret_cast<uintptr_t>(bytes.data()) % alignof(uint64_t) == 0;
}

// FlatBuffers reads scalars in place, so a buffer must be aligned as it was
// built (8 bytes at most); RocksDB hands out values at any address. Returns
// `bytes`, or an aligned copy of it in `buffer`.
std::string_view AlignedView(std::string_view bytes,
                             std::vector<uint64_t>& buffer) {
  if (Aligned(bytes)) return bytes;
  const size_t words = bytes.size() / sizeof(uint64_t) + 1;
  if (buffer.size() < words) buffer.resize(words);
  std::memcpy(buffer.data(), bytes.data(), bytes.size());
  return std::string_view(reinterpret_cast<const char*>(buffer.data()),
                          bytes.size());
}

const fbs::EventEnvelope* VerifiedEnvelope(std::string_view aligned) {
  const auto* data = reinterpret_cast<const uint8_t*>(aligned.data());
  flatbuffers::Verifier verifier(data, aligned.size());
  if (!fbs::VerifyEventEnvelopeBuffer(verifier)) return nullptr;
  return fbs::GetEventEnvelope(data);
}

// A scan's reused state for opening sealed payloads (EventDecoder's).
struct SealedScratch {
  DataKeyOpener& opener;
  std::string& plain;
};

// Opens a sealed payload with its subject's key, or marks the event erased
// when the key is gone. With `scratch` (a scan), through its opener.
Status ReadSealedPayload(const fbs::EventEnvelope& env, RecordedEvent& e,
                         const DataKeyLookup* keys,
                         std::vector<uint64_t>& buffer,
                         SealedScratch* scratch) {
  std::optional<DataKey> key;
  if (keys != nullptr) {
    CONVSTORE_ASSIGN_OR_RETURN(key, (*keys)(DataKeySubjectOf(e.stream)));
  }
  if (!key) {
    e.erased = true;
    return EmptyPayloadOfType(env.payload_type(), e.payload);
  }
  const auto* fb_sealed = env.sealed_payload();
  const std::string_view sealed(
      reinterpret_cast<const char*>(fb_sealed->data()), fb_sealed->size());
  const std::string aad = SealAad(e.position, e.stream);
  std::string one_off;
  std::string* plain = &one_off;
  if (scratch != nullptr) {
    plain = &scratch->plain;
    CONVSTORE_RETURN_IF_ERROR(scratch->opener.Open(*key, aad, sealed, *plain));
  } else {
    CONVSTORE_ASSIGN_OR_RETURN(one_off, OpenWithDataKey(*key, aad, sealed));
  }
  const fbs::EventEnvelope* inner =
      VerifiedEnvelope(AlignedView(*plain, buffer));
  if (inner == nullptr || inner->payload_type() != env.payload_type()) {
    return Status::Corruption("sealed payload does not verify");
  }
  ReadStr(inner->actor(), e.actor);
  ReadStr(inner->idempotency_key(), e.idempotency_key);
  return ReadPayload(*inner, e.payload);
}

// Verifies and reads `bytes`, which must be 8-byte aligned, into `e`.
Status DecodeAligned(std::string_view bytes, RecordedEvent& e,
                     const DataKeyLookup* keys, std::vector<uint64_t>& buffer,
                     SealedScratch* scratch = nullptr) {
  const fbs::EventEnvelope* env = VerifiedEnvelope(bytes);
  if (env == nullptr) {
    return Status::Corruption("event bytes do not verify as an EventEnvelope");
  }
  e.position = env->position();
  ReadStr(env->stream(), e.stream);
  e.revision = env->revision();
  ReadStr(env->event_id(), e.event_id);
  e.recorded_at_ms = env->recorded_at_ms();
  ReadStr(env->actor(), e.actor);
  ReadStr(env->idempotency_key(), e.idempotency_key);
  e.erased = false;
  if (env->sealed_payload() != nullptr) {
    return ReadSealedPayload(*env, e, keys, buffer, scratch);
  }
  return ReadPayload(*env, e.payload);
}

size_t SizeHint(const RecordedEvent& event) {
  if (auto* m = std::get_if<MessageAppended>(&event.payload)) {
    return 256 + m->message.content.size();
  }
  return 256;
}

std::string BufferBytes(const FlatBufferBuilder& b) {
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()),
                     b.GetSize());
}

// The envelope around the payload in the clear, or around `sealed` bytes
// that hold a payload of type `sealed_type`.
std::string EncodeEnvelope(const RecordedEvent& event,
                           const std::string* sealed,
                           fbs::Payload sealed_type) {
  FlatBufferBuilder b(SizeHint(event));
  PayloadBuilder pb{b};
  Offset<void> payload;
  Offset<flatbuffers::Vector<uint8_t>> sealed_vector;
  if (sealed == nullptr) {
    payload = std::visit(pb, event.payload);
  } else {
    sealed_vector = b.CreateVector(
        reinterpret_cast<const uint8_t*>(sealed->data()), sealed->size());
    pb.type = sealed_type;
  }
  const bool clear = sealed == nullptr;
  auto env = fbs::CreateEventEnvelope(
      b, event.position, b.CreateString(event.stream), event.revision,
      b.CreateString(event.event_id), event.recorded_at_ms,
      clear ? b.CreateString(event.actor) : Offset<flatbuffers::String>(),
      !clear || event.idempotency_key.empty()
          ? Offset<flatbuffers::String>()
          : b.CreateString(event.idempotency_key),
      pb.type, payload, sealed_vector);
  fbs::FinishEventEnvelopeBuffer(b, env);
  return BufferBytes(b);
}

}  // namespace

std::string EncodeEvent(const RecordedEvent& event) {
  return EncodeEnvelope(event, nullptr, fbs::Payload::NONE);
}

Result<std::string> EncodeSealedEvent(const RecordedEvent& event,
                                      const PayloadSeal& seal) {
  // The payload alone, in an envelope of its own, sealed.
  FlatBufferBuilder inner(SizeHint(event));
  PayloadBuilder ipb{inner};
  Offset<void> inner_payload = std::visit(ipb, event.payload);
  // Who wrote it, and the client's idempotency key, are sealed too: they
  // may name a person.
  auto actor = inner.CreateString(event.actor);
  auto key = event.idempotency_key.empty()
                 ? Offset<flatbuffers::String>()
                 : inner.CreateString(event.idempotency_key);
  fbs::EventEnvelopeBuilder eb(inner);
  eb.add_actor(actor);
  if (!key.IsNull()) eb.add_idempotency_key(key);
  eb.add_payload_type(ipb.type);
  eb.add_payload(inner_payload);
  fbs::FinishEventEnvelopeBuffer(inner, eb.Finish());
  std::string sealed;
  CONVSTORE_ASSIGN_OR_RETURN(
      sealed, SealWithDataKey(seal.key, seal.nonce,
                              SealAad(event.position, event.stream),
                              BufferBytes(inner)));
  return EncodeEnvelope(event, &sealed, ipb.type);
}

Result<RecordedEvent> DecodeEvent(std::string_view bytes,
                                  const DataKeyLookup* keys) {
  std::vector<uint64_t> buffer;
  RecordedEvent e;
  CONVSTORE_RETURN_IF_ERROR(
      DecodeAligned(AlignedView(bytes, buffer), e, keys, buffer));
  return e;
}

Status EventDecoder::Decode(std::string_view bytes, RecordedEvent& event,
                            const DataKeyLookup* keys) {
  // As DecodeEvent, with buffers and keyed ciphers kept from one event to
  // the next.
  SealedScratch scratch{opener_, plain_};
  return DecodeAligned(AlignedView(bytes, aligned_), event, keys,
                       opened_aligned_, &scratch);
}

}  // namespace convstore
