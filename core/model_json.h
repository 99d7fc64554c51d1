// JSON forms of the domain types: the API's response objects, and the records
// that read models store. Renderings are byte-stable (same value, same bytes),
// which is what lets a projection rebuild reproduce its read models exactly.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/model.h"
#include "core/status.h"

namespace convstore {

boost::json::object MetadataToJson(const Metadata& metadata);

// {id, name, instructions, dispatch_name, metadata, created_by, created_at,
// updated_at}
boost::json::object AgentToJson(const Agent& agent);

// {id, agent_id, title, created_at, updated_at, created_by, status, room_name,
// room_url, metadata}; the caller adds `token` where the API returns one.
boost::json::object ConversationToJson(const Conversation& conversation,
                                       std::string_view room_url);

// A conversation's room URL: the configured template with "{livekit_url}"
// and "{room}" filled in. Immutable after construction; thread-safe.
class RoomUrlTemplate {
 public:
  RoomUrlTemplate(std::string_view url_template, std::string_view livekit_url);
  std::string Render(std::string_view room) const;
  // Appends Render(room) as a JSON string: the bytes json::serialize writes
  // for it, with no URL built first (a list page renders one per item).
  void AppendJson(std::string_view room, std::string& out) const;

 private:
  // The template with {livekit_url} filled in, split at each "{room}".
  std::vector<std::string> pieces_;
  // The same pieces JSON-escaped, without quotes: escaping goes byte by
  // byte, so the escaped URL is the escaped pieces and rooms joined.
  std::vector<std::string> json_pieces_;
};

// The rendered form of a conversation, which the read models keep in the
// list index so that a page of a list is one scan and a GET one read, with
// no parsing: the fields lists filter on and access checks need, and the
// rendered object split where the room_url goes (it depends on
// configuration, not on events).
struct ConversationListEntry {
  ConversationStatus status = ConversationStatus::kActive;
  std::string_view agent_id;
  std::string_view created_by;  // for access checks
  uint64_t revision = 0;        // the conversation stream's (ETag)
  // Log position of the event that set the status (created or changed).
  uint64_t status_position = 0;
  std::string_view json_head;   // from "{" to "room_url":
  std::string_view json_tail;   // from ,"metadata": to the last "}"
};
std::string EncodeConversationListEntry(const Conversation& conversation,
                                        uint64_t revision,
                                        uint64_t status_position);
// Views into `bytes`, which must outlive the entry.
Result<ConversationListEntry> DecodeConversationListEntry(
    std::string_view bytes);
// Appends the same bytes as serializing
// ConversationToJson(c, room_url.Render(room)).
void AppendConversationJson(const ConversationListEntry& entry,
                            const RoomUrlTemplate& room_url,
                            std::string_view room, std::string& out);

// Appends `s` as a JSON string, quoted and escaped byte for byte as
// json::serialize writes it.
void AppendJsonString(std::string_view s, std::string& out);
// Appends json::serialize(v), without the temporary string.
void AppendSerialized(const boost::json::value& v, std::string& out);

// {id, conversation_id, role, content, created_at}, serialized.
std::string RenderMessage(const Message& message);

// A JSON array of items that are already JSON text (stored rendered
// messages): joined, never parsed again.
std::string JoinJsonArray(const std::vector<std::string>& items);

// Read-model records: a value and its stream revision.
std::string EncodeAgentRecord(const Agent& agent, uint64_t revision);
Result<Versioned<Agent>> DecodeAgentRecord(std::string_view bytes);
std::string EncodeConversationRecord(const Conversation& conversation,
                                     uint64_t revision);
Result<Versioned<Conversation>> DecodeConversationRecord(
    std::string_view bytes);

}  // namespace convstore
