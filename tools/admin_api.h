// AdminApi: what the tools use when a server holds the data dir's lock: the
// admin routes of that server, over loopback, with an admin key.
#pragma once

#include <boost/json/value.hpp>
#include <memory>
#include <string>

#include "core/status.h"
#include "http/client.h"

namespace convstore::tools {

class AdminApi {
 public:
  // `server` is "http://HOST:PORT"; `admin_key` must not be empty.
  static Result<AdminApi> Connect(const std::string& server,
                                  const std::string& admin_key);

  // Sends a request; a non-2xx answer becomes an error Status carrying the
  // server's error message. A 204 gives a null value.
  Result<boost::json::value> Call(const std::string& method,
                                  const std::string& path,
                                  const std::string& body = "");

 private:
  AdminApi(std::unique_ptr<http::HttpClient> client, std::string key)
      : client_(std::move(client)), key_(std::move(key)) {}
  std::unique_ptr<http::HttpClient> client_;
  std::string key_;
};

}  // namespace convstore::tools
