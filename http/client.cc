#include "http/client.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <functional>
#include <stdexcept>

namespace convstore::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr auto kIoTimeout = std::chrono::seconds(20);

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  auto it = headers.find(Lower(name));
  return it == headers.end() ? std::string() : it->second;
}

boost::json::value HttpResponse::json() const {
  return boost::json::parse(body);
}

struct HttpClient::Impl {
  uint16_t port;
  std::string host;
  net::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  void Connect() {
    stream.emplace(ioc);
    stream->expires_after(kIoTimeout);
    beast::error_code result = net::error::would_block;
    stream->async_connect(
        tcp::endpoint(net::ip::make_address(host), port),
        [&](beast::error_code ec) { result = ec; });
    ioc.restart();
    ioc.run_for(kIoTimeout);
    if (result) throw std::runtime_error("connect: " + result.message());
    buffer.clear();
  }
};

HttpClient::HttpClient(uint16_t port, std::string host)
    : impl_(std::make_unique<Impl>()) {
  impl_->port = port;
  impl_->host = std::move(host);
}

HttpClient::HttpClient(HttpClient&&) noexcept = default;

HttpClient::~HttpClient() = default;

HttpResponse HttpClient::Request(
    const std::string& method, const std::string& target,
    const std::string& body,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!impl_->stream || !impl_->stream->socket().is_open()) impl_->Connect();
    bhttp::request<bhttp::string_body> req(bhttp::string_to_verb(method),
                                           target, 11);
    if (req.method() == bhttp::verb::unknown) req.method_string(method);
    req.set(bhttp::field::host, impl_->host);
    for (const auto& [k, v] : headers) req.set(k, v);
    req.body() = body;
    if (!body.empty() || method == "POST" || method == "PATCH") {
      req.prepare_payload();
    }
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(256 << 20);
    beast::error_code write_ec = net::error::would_block;
    beast::error_code read_ec = net::error::would_block;
    impl_->stream->expires_after(kIoTimeout);
    bhttp::async_write(*impl_->stream, req,
                       [&](beast::error_code ec, size_t) {
                         write_ec = ec;
                         if (ec) return;
                         bhttp::async_read(*impl_->stream, impl_->buffer, parser,
                                           [&](beast::error_code ec2, size_t) {
                                             read_ec = ec2;
                                           });
                       });
    impl_->ioc.restart();
    impl_->ioc.run_for(kIoTimeout);
    if (write_ec || read_ec) {
      // A kept-alive connection the server closed: retry once on a new one.
      impl_->stream.reset();
      if (attempt == 0 && (write_ec == net::error::broken_pipe ||
                           read_ec == bhttp::error::end_of_stream ||
                           read_ec == net::error::connection_reset ||
                           write_ec == net::error::connection_reset)) {
        continue;
      }
      throw std::runtime_error("HTTP " + method + " " + target + ": " +
                               (write_ec ? write_ec : read_ec).message());
    }
    auto res = parser.release();
    HttpResponse out;
    out.status = res.result_int();
    for (const auto& f : res) {
      out.headers[Lower(f.name_string())] = std::string(f.value());
    }
    out.chunked = res.chunked();
    out.body = std::move(res.body());
    if (!res.keep_alive()) impl_->stream.reset();
    return out;
  }
  throw std::runtime_error("unreachable");
}

namespace {
std::vector<std::pair<std::string, std::string>> WithAuth(
    const std::string& key,
    std::vector<std::pair<std::string, std::string>> headers, bool json) {
  if (!key.empty()) headers.emplace_back("Authorization", "Bearer " + key);
  if (json) headers.emplace_back("Content-Type", "application/json");
  return headers;
}
}  // namespace

HttpResponse HttpClient::Get(const std::string& target, const std::string& key) {
  return Request("GET", target, "", WithAuth(key, {}, false));
}

HttpResponse HttpClient::Post(
    const std::string& target, const std::string& key, const std::string& body,
    std::vector<std::pair<std::string, std::string>> extra) {
  return Request("POST", target, body, WithAuth(key, std::move(extra), true));
}

HttpResponse HttpClient::Patch(
    const std::string& target, const std::string& key, const std::string& body,
    std::vector<std::pair<std::string, std::string>> extra) {
  return Request("PATCH", target, body, WithAuth(key, std::move(extra), true));
}

HttpResponse HttpClient::Delete(
    const std::string& target, const std::string& key,
    std::vector<std::pair<std::string, std::string>> extra) {
  return Request("DELETE", target, "", WithAuth(key, std::move(extra), false));
}

std::string HttpClient::Raw(const std::string& raw, int timeout_ms) {
  net::io_context ioc;
  tcp::socket socket(ioc);
  beast::error_code ec;
  socket.connect(tcp::endpoint(net::ip::make_address(impl_->host), impl_->port),
                 ec);
  if (ec) throw std::runtime_error("connect: " + ec.message());
  std::string out;
  std::array<char, 4096> buf;
  std::function<void()> read_more = [&] {
    socket.async_read_some(net::buffer(buf), [&](beast::error_code e, size_t n) {
      out.append(buf.data(), n);
      if (!e) read_more();
    });
  };
  net::async_write(socket, net::buffer(raw), [&](beast::error_code e, size_t) {
    if (!e) read_more();
  });
  ioc.run_for(std::chrono::milliseconds(timeout_ms));
  return out;
}

}  // namespace convstore::http
