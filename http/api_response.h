// ApiResponse: what a route hands back to the connection, independent of
// Beast. Errors render the contract's error body from a Status. Values only;
// thread-compatible.
#pragma once

#include <boost/json/object.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "projections/read_models.h"

namespace convstore::http {

// What is needed to mint a LiveKit token for a response (and to re-mint it
// when an idempotent response is replayed: tokens are never stored).
struct TokenSpec {
  std::string room_name;
  std::string conversation_id;
  std::optional<std::string> dispatch_name;
  bool with_expiry = false;  // the body also carries "expires_at"
};

// A body produced over time (server-sent events): the session sends the
// headers, then pulls parts and sends each as a chunk until the body ends.
// Pull is called on the session's thread, one call at a time; `wake` may be
// called from any thread.
class LiveBody {
 public:
  struct Part {
    enum class Kind {
      kText,  // send `text`, then pull again
      kWait,  // nothing yet: `wake` will be called once; pull again then
      kEnd,   // the body is complete
    };
    Kind kind = Kind::kWait;
    std::string text;
  };
  virtual ~LiveBody() = default;
  virtual Part Pull(std::function<void()> wake) = 0;
};

struct ApiResponse {
  unsigned status = 200;
  std::string body;  // JSON text (or empty)
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, the body is sent chunked from this stream instead of `body`.
  std::shared_ptr<MessageStream> stream;
  // When set, the body is sent chunked from this live source (SSE).
  std::shared_ptr<LiveBody> live;
  // Internal, never sent as such: the body's "token" was minted from this,
  // and these members of the body hold secrets shown only once (an API
  // key, a webhook's signing secret), so an idempotent replay leaves them
  // out.
  std::optional<TokenSpec> token_spec;
  std::vector<std::string> secret_fields;

  void AddHeader(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
  }
  const std::string* FindHeader(std::string_view name) const;
};

// Called exactly once per request, from any thread.
using Respond = std::function<void(ApiResponse)>;

ApiResponse JsonResponse(unsigned status, const boost::json::value& body);
ApiResponse ErrorResponse(const Status& status);
unsigned HttpStatusFor(ErrorKind kind);

}  // namespace convstore::http
