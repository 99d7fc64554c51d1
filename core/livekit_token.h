// Mints LiveKit access tokens: HS256 JWTs granting one identity join/publish/
// subscribe rights to one room, optionally asking LiveKit to dispatch a named
// agent worker with the conversation id as metadata. Pure: the caller passes
// the current time; the secret is only used as the HMAC key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace convstore {

struct LiveKitTokenRequest {
  std::string api_key;     // -> "iss"
  std::string api_secret;  // HMAC key; never logged
  std::string identity;    // -> "sub" (the caller's user id)
  std::string room_name;   // -> video.room
  // Agent worker name; when set, the token carries a roomConfig that makes
  // LiveKit dispatch this agent into the room.
  std::optional<std::string> dispatch_name;
  std::string conversation_id;  // goes into the dispatch metadata
  int64_t now_s = 0;            // -> "nbf"
  int64_t ttl_s = 3600;         // "exp" = now_s + ttl_s
};

// Returns "header.payload.signature", each part base64url without padding.
// Header is {"alg":"HS256","typ":"JWT"}. Payload:
//   {"iss":api_key,"sub":identity,"nbf":now_s,"exp":now_s+ttl_s,
//    "video":{"room":room_name,"roomJoin":true,"canPublish":true,
//             "canSubscribe":true,"canPublishData":true},
//    and only when dispatch_name is set:
//    "roomConfig":{"name":room_name,"agents":[{"agentName":dispatch_name,
//        "metadata":"{\"conversation_id\":\"<conversation_id>\"}"}]}}
// The metadata value is a JSON string holding serialized JSON, because
// LiveKit passes agent metadata through as an opaque string.
std::string MintLiveKitToken(const LiveKitTokenRequest& request);

}  // namespace convstore
