#include "core/validation.h"

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <charconv>

#include "core/encoding.h"

namespace convstore {
namespace {

namespace json = boost::json;

// Parses `body` as a JSON object. Invalid UTF-8 is reported before JSON
// syntax so the client learns the real cause.
Result<json::object> ParseObject(std::string_view body,
                                 json::storage_ptr storage = {}) {
  if (!IsValidUtf8(body)) {
    return Status::InvalidArgument("Request body is not valid UTF-8.");
  }
  boost::system::error_code ec;
  json::value v = json::parse(body, ec, std::move(storage));
  if (ec) {
    return Status::InvalidArgument("Request body is not valid JSON: " +
                                   ec.message() + ".");
  }
  if (!v.is_object()) {
    return Status::InvalidArgument("Request body must be a JSON object.");
  }
  return std::move(v.as_object());
}

Status TypeError(std::string_view field, std::string_view type) {
  return Status::InvalidArgument(
      "Field '" + std::string(field) + "' must be " + std::string(type) + ".",
      std::string(field));
}

// A string field within [min, max] code points (or bytes when count_bytes).
Result<std::string> StringField(const json::value& v, std::string_view field,
                                size_t min, size_t max,
                                bool count_bytes = false) {
  if (!v.is_string()) return TypeError(field, "a string");
  std::string s(v.as_string());
  size_t n = count_bytes ? s.size() : CountCodePoints(s);
  if (n < min || n > max) {
    std::string unit = count_bytes ? " bytes" : " characters";
    return Status::InvalidArgument(
        "Field '" + std::string(field) + "' must be " + std::to_string(min) +
            " to " + std::to_string(max) + unit + " long.",
        std::string(field));
  }
  return s;
}

Result<Metadata> MetadataField(const json::value& v) {
  Metadata out;
  if (v.is_null()) return out;
  if (!v.is_object()) return TypeError("metadata", "an object");
  const json::object& o = v.as_object();
  if (o.size() > Limits::kMaxMetadataKeys) {
    return Status::InvalidArgument("Field 'metadata' may hold at most 16 keys.",
                                   "metadata");
  }
  for (const auto& kv : o) {
    size_t klen = CountCodePoints(kv.key());
    if (klen < 1 || klen > Limits::kMaxMetadataKeyCodePoints) {
      return Status::InvalidArgument(
          "Metadata keys must be 1 to 64 characters long.", "metadata");
    }
    if (!kv.value().is_string()) {
      return Status::InvalidArgument("Metadata values must be strings.",
                                     "metadata");
    }
    std::string value(kv.value().as_string());
    if (CountCodePoints(value) > Limits::kMaxMetadataValueCodePoints) {
      return Status::InvalidArgument(
          "Metadata values must be at most 512 characters long.", "metadata");
    }
    out.emplace_back(std::string(kv.key()), std::move(value));
  }
  return out;
}

Result<std::optional<std::string>> DispatchNameField(const json::value& v) {
  if (v.is_null()) return std::optional<std::string>();
  auto s = StringField(v, "dispatch_name", 1,
                       Limits::kMaxDispatchNameCodePoints);
  if (!s.ok()) return s.status();
  return std::optional<std::string>(std::move(*s));
}

}  // namespace

std::string_view ToString(KeyRole role) {
  return role == KeyRole::kAdmin ? "admin" : "user";
}

bool IsValidUserId(std::string_view user_id) {
  if (user_id.empty() || user_id.size() > Limits::kMaxUserIdBytes) return false;
  for (char c : user_id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@' ||
              c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Result<CreateAgentRequest> ParseCreateAgent(std::string_view body) {
  json::object o;
  CONVSTORE_ASSIGN_OR_RETURN(o, ParseObject(body));
  CreateAgentRequest r;
  const json::value* name = o.if_contains("name");
  if (name == nullptr || name->is_null()) {
    return Status::InvalidArgument("Missing required field 'name'.", "name");
  }
  CONVSTORE_ASSIGN_OR_RETURN(
      r.name, StringField(*name, "name", 1, Limits::kMaxAgentNameCodePoints));
  if (const json::value* v = o.if_contains("instructions");
      v && !v->is_null()) {
    CONVSTORE_ASSIGN_OR_RETURN(
        r.instructions, StringField(*v, "instructions", 0,
                                    Limits::kMaxInstructionsBytes, true));
  }
  if (const json::value* v = o.if_contains("dispatch_name")) {
    CONVSTORE_ASSIGN_OR_RETURN(r.dispatch_name, DispatchNameField(*v));
  }
  if (const json::value* v = o.if_contains("metadata")) {
    CONVSTORE_ASSIGN_OR_RETURN(r.metadata, MetadataField(*v));
  }
  return r;
}

Result<UpdateAgentRequest> ParseUpdateAgent(std::string_view body) {
  json::object o;
  CONVSTORE_ASSIGN_OR_RETURN(o, ParseObject(body));
  UpdateAgentRequest r;
  if (const json::value* v = o.if_contains("name")) {
    CONVSTORE_ASSIGN_OR_RETURN(
        r.name, StringField(*v, "name", 1, Limits::kMaxAgentNameCodePoints));
  }
  if (const json::value* v = o.if_contains("instructions")) {
    if (v->is_null()) {
      r.instructions = std::string();
    } else {
      CONVSTORE_ASSIGN_OR_RETURN(
          r.instructions, StringField(*v, "instructions", 0,
                                      Limits::kMaxInstructionsBytes, true));
    }
  }
  if (const json::value* v = o.if_contains("dispatch_name")) {
    CONVSTORE_ASSIGN_OR_RETURN(r.dispatch_name, DispatchNameField(*v));
  }
  if (const json::value* v = o.if_contains("metadata")) {
    CONVSTORE_ASSIGN_OR_RETURN(r.metadata, MetadataField(*v));
  }
  return r;
}

Result<CreateConversationRequest> ParseCreateConversation(
    std::string_view body) {
  json::object o;
  CONVSTORE_ASSIGN_OR_RETURN(o, ParseObject(body));
  CreateConversationRequest r;
  const json::value* agent = o.if_contains("agent_id");
  if (agent == nullptr || agent->is_null()) {
    return Status::InvalidArgument("Missing required field 'agent_id'.",
                                   "agent_id");
  }
  CONVSTORE_ASSIGN_OR_RETURN(r.agent_id,
                             StringField(*agent, "agent_id", 1, 64, true));
  if (const json::value* v = o.if_contains("title"); v && !v->is_null()) {
    CONVSTORE_ASSIGN_OR_RETURN(
        r.title, StringField(*v, "title", 1, Limits::kMaxTitleCodePoints));
  }
  if (const json::value* v = o.if_contains("metadata")) {
    CONVSTORE_ASSIGN_OR_RETURN(r.metadata, MetadataField(*v));
  }
  return r;
}

Result<UpdateConversationRequest> ParseUpdateConversation(
    std::string_view body) {
  json::object o;
  CONVSTORE_ASSIGN_OR_RETURN(o, ParseObject(body));
  UpdateConversationRequest r;
  if (const json::value* v = o.if_contains("title")) {
    CONVSTORE_ASSIGN_OR_RETURN(
        r.title, StringField(*v, "title", 1, Limits::kMaxTitleCodePoints));
  }
  if (const json::value* v = o.if_contains("status")) {
    if (!v->is_string()) return TypeError("status", "a string");
    r.status = ParseConversationStatus(std::string_view(v->as_string()));
    if (!r.status) {
      return Status::InvalidArgument(
          "Field 'status' must be one of 'active', 'completed', 'archived'.",
          "status");
    }
  }
  if (const json::value* v = o.if_contains("metadata")) {
    CONVSTORE_ASSIGN_OR_RETURN(r.metadata, MetadataField(*v));
  }
  return r;
}

Result<AppendMessageRequest> ParseAppendMessage(std::string_view body) {
  // The most frequent request: its object is parsed into a buffer on the
  // stack (the heap only past it) instead of an allocation per value.
  unsigned char buffer[1024];
  json::monotonic_resource resource(buffer);
  auto parsed_body = ParseObject(body, &resource);
  if (!parsed_body.ok()) return parsed_body.status();
  // Used in place: assigned to an object of the default storage it would
  // be copied out of the buffer again.
  const json::object& o = *parsed_body;
  AppendMessageRequest r;
  const json::value* role = o.if_contains("role");
  if (role == nullptr || role->is_null()) {
    return Status::InvalidArgument("Missing required field 'role'.", "role");
  }
  if (!role->is_string()) return TypeError("role", "a string");
  auto parsed = ParseMessageRole(std::string_view(role->as_string()));
  if (!parsed) {
    return Status::InvalidArgument(
        "Field 'role' must be one of 'system', 'user', 'assistant'.", "role");
  }
  r.role = *parsed;
  const json::value* content = o.if_contains("content");
  if (content == nullptr || content->is_null()) {
    return Status::InvalidArgument("Missing required field 'content'.",
                                   "content");
  }
  CONVSTORE_ASSIGN_OR_RETURN(
      r.content,
      StringField(*content, "content", 1, Limits::kMaxContentBytes, true));
  return r;
}

Result<CreateApiKeyRequest> ParseCreateApiKey(std::string_view body) {
  json::object o;
  CONVSTORE_ASSIGN_OR_RETURN(o, ParseObject(body));
  CreateApiKeyRequest r;
  const json::value* user = o.if_contains("user_id");
  if (user == nullptr || user->is_null()) {
    return Status::InvalidArgument("Missing required field 'user_id'.",
                                   "user_id");
  }
  if (!user->is_string()) return TypeError("user_id", "a string");
  r.user_id = std::string(user->as_string());
  if (!IsValidUserId(r.user_id)) {
    return Status::InvalidArgument(
        "Field 'user_id' must be 1 to 128 characters of letters, digits and "
        "._@:-",
        "user_id");
  }
  if (const json::value* v = o.if_contains("role"); v && !v->is_null()) {
    if (!v->is_string()) return TypeError("role", "a string");
    std::string_view role = v->as_string();
    if (role == "admin") {
      r.role = KeyRole::kAdmin;
    } else if (role != "user") {
      return Status::InvalidArgument(
          "Field 'role' must be one of 'user', 'admin'.", "role");
    }
  }
  return r;
}

Result<CreateWebhookRequest> ParseCreateWebhook(std::string_view body) {
  json::object o;
  CONVSTORE_ASSIGN_OR_RETURN(o, ParseObject(body));
  CreateWebhookRequest r;
  const json::value* url = o.if_contains("url");
  if (url == nullptr || url->is_null()) {
    return Status::InvalidArgument("Missing required field 'url'.", "url");
  }
  CONVSTORE_ASSIGN_OR_RETURN(
      r.url, StringField(*url, "url", 1, CreateWebhookRequest::kMaxUrlBytes,
                         /*count_bytes=*/true));
  auto parsed = boost::urls::parse_absolute_uri(r.url);
  // A port, when given, is 1..65535 (port_number() wraps past 16 bits).
  bool port_ok = true;
  if (parsed && parsed->has_port()) {
    std::string_view port = parsed->port();
    unsigned n = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
    port_ok = !port.empty() && ec == std::errc() &&
              end == port.data() + port.size() && n >= 1 && n <= 65535;
  }
  if (!parsed || (parsed->scheme() != "http" && parsed->scheme() != "https") ||
      parsed->encoded_host().empty() || parsed->has_userinfo() ||
      parsed->has_fragment() || !port_ok) {
    return Status::InvalidArgument(
        "Field 'url' must be an absolute http:// or https:// URL with a host "
        "and a valid port, without user name, password or fragment.",
        "url");
  }

  const json::value* events = o.if_contains("events");
  if (events == nullptr || events->is_null()) {
    return Status::InvalidArgument("Missing required field 'events'.",
                                   "events");
  }
  const std::string kinds =
      "'conversation.created', 'message.created', "
      "'conversation.status_changed', 'conversation.completed'";
  if (!events->is_array() || events->as_array().empty()) {
    return Status::InvalidArgument(
        "Field 'events' must be a non-empty array of event types (" + kinds +
            ").",
        "events");
  }
  for (const json::value& e : events->as_array()) {
    std::optional<WebhookEventKind> kind;
    if (e.is_string()) kind = ParseWebhookEventKind(e.as_string());
    if (!kind) {
      return Status::InvalidArgument(
          "Each entry of 'events' must be one of " + kinds + ".", "events");
    }
    for (WebhookEventKind seen : r.events) {
      if (seen == *kind) {
        return Status::InvalidArgument("Field 'events' lists '" +
                                           std::string(ToString(*kind)) +
                                           "' twice.",
                                       "events");
      }
    }
    r.events.push_back(*kind);
  }

  if (const json::value* d = o.if_contains("description"); d && !d->is_null()) {
    CONVSTORE_ASSIGN_OR_RETURN(
        r.description,
        StringField(*d, "description", 0,
                    CreateWebhookRequest::kMaxDescriptionCodePoints));
  }
  return r;
}

}  // namespace convstore
