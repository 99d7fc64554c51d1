#include "tests/support/sse_client.h"

#include <array>
#include <boost/asio.hpp>
#include <cctype>
#include <chrono>
#include <stdexcept>

namespace convstore::testing {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(c));
  return s;
}

}  // namespace

struct SseClient::Impl {
  net::io_context ioc;
  tcp::socket socket{ioc};
  bool open = true;
};

SseClient::SseClient(uint16_t port, const std::string& target,
                     const std::string& key,
                     std::vector<std::pair<std::string, std::string>> headers)
    : impl_(new Impl) {
  boost::system::error_code ec;
  impl_->socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port),
                        ec);
  if (ec) throw std::runtime_error("connect: " + ec.message());
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (!key.empty()) req += "Authorization: Bearer " + key + "\r\n";
  req += "Accept: text/event-stream\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  req += "\r\n";
  net::write(impl_->socket, net::buffer(req), ec);
  if (ec) throw std::runtime_error("write: " + ec.message());
  // The status line and headers.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  size_t end;
  while ((end = raw_.find("\r\n\r\n")) == std::string::npos) {
    if (std::chrono::steady_clock::now() > deadline || !ReadSome(500)) {
      if (raw_.find("\r\n\r\n") != std::string::npos) break;
      throw std::runtime_error("no response headers: " + raw_);
    }
  }
  end = raw_.find("\r\n\r\n");
  std::string head = raw_.substr(0, end);
  raw_.erase(0, end + 4);
  size_t line_end = head.find("\r\n");
  std::string status_line = head.substr(0, line_end);
  if (status_line.size() >= 12) status_ = std::stoi(status_line.substr(9, 3));
  size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t next = head.find("\r\n", pos);
    if (next == std::string::npos) next = head.size();
    std::string line = head.substr(pos, next - pos);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      headers_[Lower(line.substr(0, colon))] = value;
    }
    pos = next + 2;
  }
  Parse();
}

SseClient::~SseClient() {
  boost::system::error_code ignored;
  impl_->socket.close(ignored);
  delete impl_;
}

std::string SseClient::header(const std::string& name) const {
  auto it = headers_.find(Lower(name));
  return it == headers_.end() ? "" : it->second;
}

bool SseClient::ReadSome(int timeout_ms) {
  if (!impl_->open) return false;
  std::array<char, 16384> buf;
  bool done = false;
  impl_->socket.async_read_some(net::buffer(buf),
                                [&](boost::system::error_code ec, size_t n) {
                                  raw_.append(buf.data(), n);
                                  if (ec && ec != net::error::operation_aborted)
                                    impl_->open = false;
                                  done = true;
                                });
  impl_->ioc.restart();
  impl_->ioc.run_for(std::chrono::milliseconds(timeout_ms));
  if (!done) {
    // Nothing within the time: cancel the read and let it finish.
    boost::system::error_code ignored;
    impl_->socket.cancel(ignored);
    impl_->ioc.restart();
    impl_->ioc.run();
  }
  return impl_->open;
}

void SseClient::Parse() {
  // Chunked transfer coding: "<hex size>\r\n<data>\r\n", ending with size 0.
  for (;;) {
    if (ended_) break;
    size_t line_end = raw_.find("\r\n");
    if (line_end == std::string::npos) break;
    size_t size = std::stoul(raw_.substr(0, line_end), nullptr, 16);
    if (size == 0) {
      ended_ = true;
      break;
    }
    if (raw_.size() < line_end + 2 + size + 2) break;
    decoded_.append(raw_, line_end + 2, size);
    raw_.erase(0, line_end + 2 + size + 2);
  }
  // Events end with a blank line.
  size_t end;
  while ((end = decoded_.find("\n\n")) != std::string::npos) {
    std::string block = decoded_.substr(0, end + 1);
    decoded_.erase(0, end + 2);
    SseEvent e;
    bool any_field = false;
    size_t pos = 0;
    while (pos < block.size()) {
      size_t nl = block.find('\n', pos);
      std::string line = block.substr(pos, nl - pos);
      pos = nl + 1;
      if (line.empty()) continue;
      if (line[0] == ':') {
        ++comments_;
        continue;
      }
      size_t colon = line.find(':');
      std::string field = line.substr(0, colon);
      std::string value =
          colon == std::string::npos ? "" : line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.erase(0, 1);
      any_field = true;
      if (field == "id") e.id = value;
      if (field == "event") e.event = value;
      if (field == "data") e.data += e.data.empty() ? value : "\n" + value;
    }
    if (any_field) events_.push_back(std::move(e));
  }
}

const std::vector<SseEvent>& SseClient::WaitFor(size_t count, int timeout_ms) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (events_.size() < count && !ended_ &&
         std::chrono::steady_clock::now() < deadline) {
    bool open = ReadSome(100);
    Parse();
    if (!open) break;
  }
  return events_;
}

bool SseClient::WaitForEnd(int timeout_ms) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!ended_ && std::chrono::steady_clock::now() < deadline) {
    bool open = ReadSome(100);
    Parse();
    if (!open) return true;
  }
  return ended_;
}

}  // namespace convstore::testing
