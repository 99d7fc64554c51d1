// convstore_bench_streams: holds N server-sent event streams open against a
// local server (for the benchmark's "append with idle subscribers" and
// "memory of idle streams" figures), reading and discarding what arrives.
// Prints "open N" once every stream got its 200, then runs until SIGINT or
// SIGTERM, and prints the bytes it received.
// Usage: convstore_bench_streams PORT KEY N TARGET [TARGET...]
//   (stream i opens TARGET[i % number of targets])

#include <boost/asio.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

struct Stream : std::enable_shared_from_this<Stream> {
  Stream(net::io_context& ioc, std::string request, size_t& open,
         size_t& failed, uint64_t& bytes)
      : socket(ioc),
        request(std::move(request)),
        open(open),
        failed(failed),
        bytes(bytes) {}

  void Start(const tcp::endpoint& endpoint) {
    socket.async_connect(
        endpoint, [self = shared_from_this()](boost::system::error_code ec) {
          if (ec) return self->Fail();
          net::async_write(self->socket, net::buffer(self->request),
                           [self](boost::system::error_code ec, size_t) {
                             if (ec) return self->Fail();
                             self->Read();
                           });
        });
  }

  void Read() {
    socket.async_read_some(
        net::buffer(buf),
        [self = shared_from_this()](boost::system::error_code ec, size_t n) {
          if (ec) return self->Fail();
          self->bytes += n;
          if (!self->counted) {
            std::string_view head(self->buf.data(), n);
            if (head.substr(0, 12) != "HTTP/1.1 200") return self->Fail();
            self->counted = true;
            ++self->open;
          }
          self->Read();
        });
  }

  void Fail() {
    if (counted) --open;
    counted = false;
    ++failed;
  }

  tcp::socket socket;
  std::string request;
  size_t& open;
  size_t& failed;
  uint64_t& bytes;
  bool counted = false;
  std::array<char, 4096> buf;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::cerr << "usage: convstore_bench_streams PORT KEY N TARGET...\n";
    return 2;
  }
  const auto port = static_cast<uint16_t>(std::atoi(argv[1]));
  const std::string key = argv[2];
  const size_t n = std::strtoull(argv[3], nullptr, 10);
  std::vector<std::string> targets(argv + 4, argv + argc);

  net::io_context ioc(1);
  tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), port);
  size_t open = 0, failed = 0;
  uint64_t bytes = 0;
  std::vector<std::shared_ptr<Stream>> streams;
  for (size_t i = 0; i < n; ++i) {
    std::string request = "GET " + targets[i % targets.size()] +
                          " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Authorization: Bearer " +
                          key + "\r\nAccept: text/event-stream\r\n\r\n";
    streams.push_back(
        std::make_shared<Stream>(ioc, std::move(request), open, failed, bytes));
    streams.back()->Start(endpoint);
  }
  bool announced = false;
  net::steady_timer tick(ioc);
  std::function<void()> check = [&] {
    if (!announced && open == n) {
      std::printf("open %zu\n", n);
      std::fflush(stdout);
      announced = true;
    }
    if (failed > 0 && !announced) {
      std::fprintf(stderr, "%zu streams failed to open\n", failed);
      ioc.stop();
      return;
    }
    tick.expires_after(std::chrono::milliseconds(100));
    tick.async_wait([&](boost::system::error_code ec) {
      if (!ec) check();
    });
  };
  check();
  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code, int) { ioc.stop(); });
  ioc.run();
  std::printf("streams open %zu, failed %zu, bytes received %llu\n", open,
              failed, static_cast<unsigned long long>(bytes));
  return failed > 0 && !announced ? 1 : 0;
}
