#include "core/livekit_token.h"

#include <boost/json.hpp>

#include "core/encoding.h"

namespace convstore {
namespace {

namespace json = boost::json;

json::object DispatchRoomConfig(const LiveKitTokenRequest& request) {
  // Serialized separately (not nested) because LiveKit's RoomAgentDispatch
  // metadata field is a string that the agent parses itself.
  json::object metadata;
  metadata["conversation_id"] = request.conversation_id;

  json::object agent;
  agent["agentName"] = *request.dispatch_name;
  agent["metadata"] = json::serialize(metadata);

  json::array agents;
  agents.emplace_back(std::move(agent));

  json::object room_config;
  room_config["name"] = request.room_name;
  room_config["agents"] = std::move(agents);
  return room_config;
}

}  // namespace

std::string MintLiveKitToken(const LiveKitTokenRequest& request) {
  json::object header;
  header["alg"] = "HS256";
  header["typ"] = "JWT";

  json::object video;
  video["room"] = request.room_name;
  video["roomJoin"] = true;
  video["canPublish"] = true;
  video["canSubscribe"] = true;
  video["canPublishData"] = true;

  json::object payload;
  payload["iss"] = request.api_key;
  payload["sub"] = request.identity;
  payload["nbf"] = request.now_s;
  payload["exp"] = request.now_s + request.ttl_s;
  payload["video"] = std::move(video);
  if (request.dispatch_name.has_value()) {
    payload["roomConfig"] = DispatchRoomConfig(request);
  }

  // JWS signing input (RFC 7515 §5.1): the two encoded parts joined by '.'.
  std::string token = Base64UrlEncode(json::serialize(header));
  token.push_back('.');
  token += Base64UrlEncode(json::serialize(payload));
  const std::string signature = HmacSha256(request.api_secret, token);
  token.push_back('.');
  token += Base64UrlEncode(signature);
  return token;
}

}  // namespace convstore
