#include "tools/admin_api.h"

#include <boost/json.hpp>
#include <boost/url.hpp>

namespace convstore::tools {

Result<AdminApi> AdminApi::Connect(const std::string& server,
                                   const std::string& admin_key) {
  if (admin_key.empty()) {
    return Status::InvalidArgument(
        "the server is running: pass --admin-key (or set "
        "CONVSTORE_ADMIN_KEY) to go through its admin API");
  }
  auto url = boost::urls::parse_uri(server);
  if (!url || url->scheme() != "http" || !url->has_port()) {
    return Status::InvalidArgument("--server must be http://HOST:PORT, got '" +
                                   server + "'");
  }
  std::string host(url->host_address());
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  return AdminApi(std::make_unique<http::HttpClient>(url->port_number(), host),
                  admin_key);
}

Result<boost::json::value> AdminApi::Call(const std::string& method,
                                          const std::string& path,
                                          const std::string& body) {
  http::HttpResponse r;
  try {
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Authorization", "Bearer " + key_}};
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    r = client_->Request(method, path, body, headers);
  } catch (const std::exception& e) {
    return Status::Unavailable(std::string("cannot reach the server: ") +
                               e.what());
  }
  if (r.status == 204) return boost::json::value(nullptr);
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(r.body, ec);
  if (r.status >= 200 && r.status < 300 && !ec) return v;
  std::string message = "HTTP " + std::to_string(r.status);
  if (!ec && v.is_object()) {
    if (auto* err = v.as_object().if_contains("error");
        err && err->is_object()) {
      if (auto* m = err->as_object().if_contains("message");
          m && m->is_string()) {
        message += ": " + std::string(m->as_string());
      }
    }
  }
  if (r.status == 404) return Status::NotFound(message);
  if (r.status == 401 || r.status == 403) return Status::PermissionDenied(message);
  return Status::Internal(message);
}

}  // namespace convstore::tools
