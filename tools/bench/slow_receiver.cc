// convstore_bench_receiver: a slow webhook receiver for the benchmark. It
// listens on 127.0.0.1 (an ephemeral port), answers every request with 200
// after DELAY_MS milliseconds (without blocking its thread), prints
// "listening PORT" once ready, and at SIGINT or SIGTERM how many requests it
// answered. Usage: convstore_bench_receiver DELAY_MS

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

namespace {

uint64_t answered = 0;

// One connection: requests are read, held for the delay, then answered.
struct Exchange : std::enable_shared_from_this<Exchange> {
  Exchange(tcp::socket s, std::chrono::milliseconds delay)
      : socket(std::move(s)), timer(socket.get_executor()), delay(delay) {}

  void Read() {
    request = {};
    bhttp::async_read(
        socket, buffer, request,
        [self = shared_from_this()](beast::error_code ec, size_t) {
          if (!ec) self->Hold();
        });
  }

  void Hold() {
    timer.expires_after(delay);
    timer.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->Answer();
    });
  }

  void Answer() {
    response = {};
    response.result(bhttp::status::ok);
    response.version(11);
    response.keep_alive(request.keep_alive());
    response.prepare_payload();
    bhttp::async_write(
        socket, response,
        [self = shared_from_this()](beast::error_code ec, size_t) {
          ++answered;
          if (!ec && self->response.keep_alive()) self->Read();
        });
  }

  tcp::socket socket;
  net::steady_timer timer;
  std::chrono::milliseconds delay;
  beast::flat_buffer buffer;
  bhttp::request<bhttp::string_body> request;
  bhttp::response<bhttp::empty_body> response;
};

void Accept(tcp::acceptor& acceptor, std::chrono::milliseconds delay) {
  acceptor.async_accept(
      [&acceptor, delay](beast::error_code ec, tcp::socket socket) {
        if (ec) return;
        std::make_shared<Exchange>(std::move(socket), delay)->Read();
        Accept(acceptor, delay);
      });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: convstore_bench_receiver DELAY_MS\n";
    return 2;
  }
  const std::chrono::milliseconds delay(std::atoll(argv[1]));
  net::io_context ioc(1);
  tcp::acceptor acceptor(ioc,
                         tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  Accept(acceptor, delay);
  std::printf("listening %u\n", acceptor.local_endpoint().port());
  std::fflush(stdout);
  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code, int) { ioc.stop(); });
  ioc.run();
  std::printf("answered %llu\n", static_cast<unsigned long long>(answered));
  return 0;
}
