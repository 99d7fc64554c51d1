// The one conversion from a parsed Beast request to an ApiRequest, shared by
// the server's sessions and the request fuzzer so both route exactly the same
// thing. Pure function; safe from any thread.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "http/app.h"

namespace convstore::http {

// Moves the body out of `req`. HEAD is routed as GET (the server drops the
// body when it answers).
ApiRequest ToApiRequest(
    boost::beast::http::request<boost::beast::http::string_body>&& req);

}  // namespace convstore::http
