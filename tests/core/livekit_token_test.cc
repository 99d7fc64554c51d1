// Spec for core/livekit_token.h: the token is a standard HS256 JWT whose
// header, claims and signature can be checked independently of the minting
// code, and roomConfig appears only when an agent dispatch is requested.
#include "core/livekit_token.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "core/encoding.h"

namespace convstore {
namespace {

namespace json = boost::json;

struct JwtParts {
  std::string header_b64;
  std::string payload_b64;
  std::string signature_b64;
};

JwtParts Split(const std::string& token) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = token.find('.', start);
    parts.push_back(token.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  EXPECT_EQ(parts.size(), 3u) << token;
  parts.resize(3);
  return {parts[0], parts[1], parts[2]};
}

json::object DecodeJsonPart(const std::string& b64) {
  const auto bytes = Base64UrlDecode(b64);
  EXPECT_TRUE(bytes.has_value()) << b64;
  if (!bytes) return {};
  const json::value v = json::parse(*bytes);
  EXPECT_TRUE(v.is_object());
  return v.is_object() ? v.as_object() : json::object{};
}

// Typed accessors that fail the test (rather than throw) on a type mismatch.
std::string Str(const json::value& v) {
  EXPECT_TRUE(v.is_string()) << v;
  return v.is_string() ? std::string(v.as_string()) : std::string();
}

bool Bool(const json::value& v) {
  EXPECT_TRUE(v.is_bool()) << v;
  return v.is_bool() && v.as_bool();
}

LiveKitTokenRequest BaseRequest() {
  LiveKitTokenRequest r;
  r.api_key = "APIkey123";
  r.api_secret = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t";
  r.identity = "user-42";
  r.room_name = "conv-0189406c-94c3-7234-9678-9abcdef01122";
  r.conversation_id = "conv-0189406c-94c3-7234-9678-9abcdef01122";
  r.now_s = 1689003005;
  r.ttl_s = 600;
  return r;
}

TEST(MintLiveKitTokenTest, HeaderDeclaresHs256Jwt) {
  const JwtParts parts = Split(MintLiveKitToken(BaseRequest()));
  const json::object header = DecodeJsonPart(parts.header_b64);
  EXPECT_EQ(header.size(), 2u);
  EXPECT_EQ(Str(header.at("alg")), "HS256");
  EXPECT_EQ(Str(header.at("typ")), "JWT");
}

TEST(MintLiveKitTokenTest, PartsAreUnpaddedBase64Url) {
  const std::string token = MintLiveKitToken(BaseRequest());
  EXPECT_EQ(token.find_first_of("+/= "), std::string::npos) << token;
}

TEST(MintLiveKitTokenTest, PayloadCarriesIdentityAndRoomGrants) {
  const LiveKitTokenRequest request = BaseRequest();
  const JwtParts parts = Split(MintLiveKitToken(request));
  const json::object payload = DecodeJsonPart(parts.payload_b64);

  EXPECT_EQ(Str(payload.at("iss")), "APIkey123");
  EXPECT_EQ(Str(payload.at("sub")), "user-42");
  EXPECT_EQ(payload.at("nbf").as_int64(), 1689003005);
  EXPECT_EQ(payload.at("exp").as_int64(), 1689003005 + 600);

  const json::object& video = payload.at("video").as_object();
  EXPECT_EQ(video.size(), 5u);
  EXPECT_EQ(Str(video.at("room")), request.room_name);
  EXPECT_TRUE(Bool(video.at("roomJoin")));
  EXPECT_TRUE(Bool(video.at("canPublish")));
  EXPECT_TRUE(Bool(video.at("canSubscribe")));
  EXPECT_TRUE(Bool(video.at("canPublishData")));
}

TEST(MintLiveKitTokenTest, NoRoomConfigWithoutDispatchName) {
  const JwtParts parts = Split(MintLiveKitToken(BaseRequest()));
  const json::object payload = DecodeJsonPart(parts.payload_b64);
  EXPECT_FALSE(payload.contains("roomConfig"));
  EXPECT_EQ(payload.size(), 5u);  // iss, sub, nbf, exp, video
}

TEST(MintLiveKitTokenTest, DispatchNameAddsAgentRoomConfig) {
  LiveKitTokenRequest request = BaseRequest();
  request.dispatch_name = "support-agent";
  const JwtParts parts = Split(MintLiveKitToken(request));
  const json::object payload = DecodeJsonPart(parts.payload_b64);

  ASSERT_TRUE(payload.contains("roomConfig"));
  const json::object& room_config = payload.at("roomConfig").as_object();
  EXPECT_EQ(Str(room_config.at("name")), request.room_name);
  const json::array& agents = room_config.at("agents").as_array();
  ASSERT_EQ(agents.size(), 1u);
  const json::object& agent = agents[0].as_object();
  EXPECT_EQ(Str(agent.at("agentName")), "support-agent");

  // The metadata is a string that itself holds serialized JSON.
  const std::string metadata = Str(agent.at("metadata"));
  EXPECT_EQ(metadata,
            R"({"conversation_id":")" + request.conversation_id + R"("})");
  const json::value parsed = json::parse(metadata);
  EXPECT_EQ(Str(parsed.at("conversation_id")), request.conversation_id);
  // The grants are unchanged by the dispatch request.
  EXPECT_EQ(Str(payload.at("video").at("room")), request.room_name);
}

TEST(MintLiveKitTokenTest, SignatureIsHmacSha256OfHeaderAndPayload) {
  for (bool dispatch : {false, true}) {
    LiveKitTokenRequest request = BaseRequest();
    if (dispatch) request.dispatch_name = "support-agent";
    const JwtParts parts = Split(MintLiveKitToken(request));
    const std::string signing_input =
        parts.header_b64 + "." + parts.payload_b64;
    const auto signature = Base64UrlDecode(parts.signature_b64);
    ASSERT_TRUE(signature.has_value());
    EXPECT_EQ(signature->size(), 32u);
    EXPECT_TRUE(ConstantTimeEquals(
        *signature, HmacSha256(request.api_secret, signing_input)));
  }
}

TEST(MintLiveKitTokenTest, DifferentSecretGivesDifferentSignatureOnly) {
  LiveKitTokenRequest a = BaseRequest();
  LiveKitTokenRequest b = BaseRequest();
  b.api_secret = "another-secret-another-secret";
  const JwtParts pa = Split(MintLiveKitToken(a));
  const JwtParts pb = Split(MintLiveKitToken(b));
  EXPECT_EQ(pa.header_b64, pb.header_b64);
  EXPECT_EQ(pa.payload_b64, pb.payload_b64);
  EXPECT_NE(pa.signature_b64, pb.signature_b64);
}

TEST(MintLiveKitTokenTest, SecretNeverAppearsInToken) {
  const LiveKitTokenRequest request = BaseRequest();
  const std::string token = MintLiveKitToken(request);
  const JwtParts parts = Split(token);
  EXPECT_EQ(token.find(request.api_secret), std::string::npos);
  EXPECT_EQ(json::serialize(DecodeJsonPart(parts.payload_b64))
                .find(request.api_secret),
            std::string::npos);
}

TEST(MintLiveKitTokenTest, IsDeterministicForFixedInputs) {
  EXPECT_EQ(MintLiveKitToken(BaseRequest()), MintLiveKitToken(BaseRequest()));
}

}  // namespace
}  // namespace convstore
