#include "http/server.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include "http/beast_request.h"

namespace convstore::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr size_t kStreamChunkBytes = 64 * 1024;

}  // namespace

struct Server::Shared {
  App* app = nullptr;
  ServerOptions options;
  std::vector<std::unique_ptr<net::io_context>> iocs;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::atomic<size_t> next_ioc{0};
  std::atomic<int64_t> in_flight{0};
  std::atomic<size_t> connections{0};
  std::atomic<bool> accepting{true};
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<Server::Shared> shared)
      : stream_(std::move(socket)), shared_(std::move(shared)) {
    shared_->connections.fetch_add(1);
  }
  ~Session() { shared_->connections.fetch_sub(1); }

  void Start() {
    net::dispatch(stream_.get_executor(),
                  [self = shared_from_this()] { self->Read(); });
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->body_limit(shared_->options.max_body_bytes);
    parser_->header_limit(
        static_cast<std::uint32_t>(shared_->options.max_header_bytes));
    stream_.expires_after(shared_->options.read_timeout);
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) {
          self->OnHeader(ec);
        });
  }

  // A client that sent "Expect: 100-continue" (curl does, for bodies over
  // 1 KiB) waits for a 100 before sending the body; tell it to go on.
  void OnHeader(beast::error_code ec) {
    if (ec || parser_->is_done()) return OnRead(ec);
    const auto& req = parser_->get();
    auto expect = req.find(bhttp::field::expect);
    if (expect != req.end() &&
        beast::iequals(expect->value(), "100-continue")) {
      auto cont = std::make_shared<bhttp::response<bhttp::empty_body>>(
          bhttp::status::continue_, req.version());
      bhttp::async_write(
          stream_, *cont,
          [self = shared_from_this(), cont](beast::error_code ec, size_t) {
            if (ec) return;
            self->ReadBody();
          });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](
                          beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == net::error::eof) {
      return Close();
    }
    if (ec == bhttp::error::body_limit) {
      return SendErrorAndClose(
          Status::PayloadTooLarge("Request body exceeds 1 MiB."));
    }
    if (ec == bhttp::error::header_limit) {
      return SendErrorAndClose(
          Status::HeadersTooLarge("Request headers are too large."));
    }
    if (ec &&
        &ec.category() ==
            &bhttp::make_error_code(bhttp::error::bad_target).category()) {
      return SendErrorAndClose(
          Status::InvalidArgument("Malformed HTTP request."));
    }
    if (ec) return;  // timeout or reset: drop the connection

    bhttp::request<bhttp::string_body> req = parser_->release();
    version_ = req.version();
    keep_alive_ = req.keep_alive();
    head_ = req.method() == bhttp::verb::head;
    ApiRequest api = ToApiRequest(std::move(req));
    api.remembered_key = &remembered_key_;
    shared_->in_flight.fetch_add(1);
    shared_->app->Handle(
        std::move(api), [self = shared_from_this()](ApiResponse response) {
          auto exec = self->stream_.get_executor();
          net::post(exec, [self, r = std::move(response)]() mutable {
            self->Send(std::move(r));
          });
        });
  }

  void Send(ApiResponse r) {
    if (r.live && head_) {
      // HEAD of an event stream: its headers, no stream.
      r.live.reset();
      r.AddHeader("Cache-Control", "no-cache");
    }
    if (r.live) return SendLive(std::move(r));
    if (r.stream) return SendStream(std::move(r));
    bhttp::response<bhttp::empty_body> res(static_cast<bhttp::status>(r.status),
                                           version_);
    res.set(bhttp::field::server, "convstore");
    if (!r.content_type.empty() && r.status != 204) {
      res.set(bhttp::field::content_type, r.content_type);
    }
    for (auto& [k, v] : r.headers) res.set(k, v);
    res.keep_alive(keep_alive_ && !close_after_);
    body_bytes_.clear();
    if (r.status != 204) {
      // A HEAD answer tells the length of the body GET would send.
      res.content_length(r.body.size());
      if (!head_) body_bytes_ = std::move(r.body);
    }
    const bool need_eof = res.need_eof();
    // Beast serializes the header once, into one buffer; header and body
    // then go out in one gathered write. Writing the message with
    // http::async_write walked Beast's nested buffer views on every step of
    // the write (about 21,000 instructions a response; this, about 6,000).
    head_bytes_.clear();
    bhttp::response_serializer<bhttp::empty_body> serializer(res);
    beast::error_code ec;
    while (!ec && !serializer.is_done()) {
      serializer.next(ec, [&](beast::error_code&, const auto& buffers) {
        const size_t n = net::buffer_size(buffers);
        const size_t at = head_bytes_.size();
        head_bytes_.resize(at + n);
        net::buffer_copy(net::buffer(head_bytes_.data() + at, n), buffers);
        serializer.consume(n);
      });
    }
    if (ec) {
      spdlog::error("cannot serialize a response header: {}", ec.message());
      return AfterResponse(ec, true);
    }
    const std::array<net::const_buffer, 2> message = {net::buffer(head_bytes_),
                                                      net::buffer(body_bytes_)};
    stream_.expires_after(shared_->options.write_timeout);
    net::async_write(
        stream_, message,
        [self = shared_from_this(), need_eof](beast::error_code ec, size_t) {
          // An idle kept-alive connection holds no body (a long list's first
          // chunk is up to 64 KiB).
          self->body_bytes_ = std::string();
          self->AfterResponse(ec, need_eof);
        });
  }

  // A list that fits in the first chunk (most transcripts) goes out as one
  // response with a Content-Length; a longer one is sent chunked, a bounded
  // chunk at a time, so its size never sits in memory whole.
  void SendStream(ApiResponse r) {
    auto first = r.stream->NextChunk(kStreamChunkBytes);
    if (!first.ok() || !*first) {
      spdlog::error("message stream failed: {}",
                    first.ok() ? "no first chunk" : first.status().ToString());
      return Send(
          ErrorResponse(Status::Internal("The list could not be read.")));
    }
    if (r.stream->Done()) {
      r.body = std::move(**first);
      r.stream.reset();
      return Send(std::move(r));
    }
    auto res = std::make_shared<bhttp::response<bhttp::empty_body>>(
        static_cast<bhttp::status>(r.status), version_);
    res->set(bhttp::field::server, "convstore");
    res->set(bhttp::field::content_type, r.content_type);
    for (auto& [k, v] : r.headers) res->set(k, v);
    res->keep_alive(keep_alive_);
    res->chunked(true);
    auto sr =
        std::make_shared<bhttp::response_serializer<bhttp::empty_body>>(*res);
    auto data = std::make_shared<std::string>(std::move(**first));
    stream_.expires_after(shared_->options.write_timeout);
    bhttp::async_write_header(
        stream_, *sr,
        [self = shared_from_this(), res, sr, data, ms = std::move(r.stream)](
            beast::error_code ec, size_t) {
          if (ec) return self->AfterResponse(ec, true);
          self->WriteChunk(ms, data, res->need_eof());
        });
  }

  void NextChunk(std::shared_ptr<MessageStream> ms, bool need_eof) {
    auto chunk = ms->NextChunk(kStreamChunkBytes);
    if (!chunk.ok()) {
      // The status line is already sent: all we can do is cut the response
      // short so the client sees an incomplete body, never a wrong one.
      spdlog::error("message stream failed: {}", chunk.status().ToString());
      return AfterResponse(net::error::connection_aborted, true);
    }
    stream_.expires_after(shared_->options.write_timeout);
    if (!*chunk) {
      net::async_write(
          stream_, bhttp::make_chunk_last(),
          [self = shared_from_this(), need_eof](beast::error_code ec, size_t) {
            self->AfterResponse(ec, need_eof);
          });
      return;
    }
    WriteChunk(std::move(ms), std::make_shared<std::string>(std::move(**chunk)),
               need_eof);
  }

  void WriteChunk(std::shared_ptr<MessageStream> ms,
                  std::shared_ptr<std::string> data, bool need_eof) {
    stream_.expires_after(shared_->options.write_timeout);
    net::async_write(stream_, bhttp::make_chunk(net::buffer(*data)),
                     [self = shared_from_this(), data, ms, need_eof](
                         beast::error_code ec, size_t) {
                       if (ec) return self->AfterResponse(ec, true);
                       self->NextChunk(ms, need_eof);
                     });
  }

  // A live body (server-sent events): the headers, then each part the body
  // gives as one chunk. While it has nothing, a comment goes out every
  // heartbeat interval. The connection closes when the body ends.
  void SendLive(ApiResponse r) {
    live_ = std::move(r.live);
    auto res = std::make_shared<bhttp::response<bhttp::empty_body>>(
        static_cast<bhttp::status>(r.status), version_);
    res->set(bhttp::field::server, "convstore");
    res->set(bhttp::field::content_type, r.content_type);
    res->set(bhttp::field::cache_control, "no-cache");
    for (auto& [k, v] : r.headers) res->set(k, v);
    res->keep_alive(false);
    res->chunked(true);
    auto sr =
        std::make_shared<bhttp::response_serializer<bhttp::empty_body>>(*res);
    live_writing_ = true;
    stream_.expires_after(shared_->options.write_timeout);
    bhttp::async_write_header(
        stream_, *sr,
        [self = shared_from_this(), res, sr](beast::error_code ec, size_t) {
          self->AfterLiveWrite(ec);
        });
    WatchForClose();
  }

  // A client that goes away closes its end: reading tells at once, where a
  // write would only fail at the next event or heartbeat. Anything it sends
  // meanwhile is dropped (the stream is the last response on this
  // connection).
  void WatchForClose() {
    auto buf = std::make_shared<std::array<char, 512>>();
    stream_.socket().async_read_some(
        net::buffer(*buf),
        [self = shared_from_this(), buf](beast::error_code ec, size_t) {
          if (!self->live_) return;
          if (!ec) return self->WatchForClose();
          beast::error_code ignored;
          self->stream_.socket().close(ignored);  // fails the write, if any
          self->heartbeat_.cancel();
          if (!self->live_writing_) {
            self->live_.reset();
            self->AfterResponse(ec, true);
          }
        });
  }

  void PullLive() {
    std::weak_ptr<Session> weak = weak_from_this();
    auto exec = stream_.get_executor();
    LiveBody::Part part = live_->Pull([weak, exec] {
      net::post(exec, [weak] {
        if (auto self = weak.lock()) self->OnLiveWake();
      });
    });
    switch (part.kind) {
      case LiveBody::Part::Kind::kText:
        return WriteLive(std::make_shared<std::string>(std::move(part.text)));
      case LiveBody::Part::Kind::kWait:
        return WaitLive();
      case LiveBody::Part::Kind::kEnd:
        live_writing_ = true;
        stream_.expires_after(shared_->options.write_timeout);
        net::async_write(
            stream_, bhttp::make_chunk_last(),
            [self = shared_from_this()](beast::error_code ec, size_t) {
              self->live_.reset();
              self->AfterResponse(ec, /*need_eof=*/true);
            });
        return;
    }
  }

  void WaitLive() {
    stream_.expires_never();
    heartbeat_.expires_after(shared_->options.heartbeat_interval);
    heartbeat_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->live_writing_ || !self->live_) return;  // woken first
      self->WriteLive(std::make_shared<std::string>(":\n\n"));
    });
  }

  void OnLiveWake() {
    if (!live_) return;
    if (live_writing_) return;  // it pulls when the write is done
    heartbeat_.cancel();
    PullLive();
  }

  void WriteLive(std::shared_ptr<std::string> text) {
    live_writing_ = true;
    stream_.expires_after(shared_->options.write_timeout);
    net::async_write(
        stream_, bhttp::make_chunk(net::buffer(*text)),
        [self = shared_from_this(), text](beast::error_code ec, size_t) {
          self->AfterLiveWrite(ec);
        });
  }

  void AfterLiveWrite(beast::error_code ec) {
    live_writing_ = false;
    if (ec) {
      live_.reset();  // the client is gone: let the feed go
      return AfterResponse(ec, true);
    }
    PullLive();
  }

  void AfterResponse(beast::error_code ec, bool need_eof) {
    shared_->in_flight.fetch_sub(1);
    if (close_after_ && !ec) return DrainAndClose();
    if (ec || need_eof || close_after_ || !shared_->accepting.load()) {
      return Close();
    }
    Read();
  }

  // After an error answer to a request whose body we did not read (413,
  // 431, 400): closing with unread input would send a TCP reset that can
  // destroy our answer before the client reads it. So stop sending, discard
  // what the client still sends (bounded in bytes and time), then close.
  void DrainAndClose() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(2));
    DrainSome(std::make_shared<std::array<char, 16384>>(), 0);
  }

  void DrainSome(std::shared_ptr<std::array<char, 16384>> buf, size_t total) {
    constexpr size_t kMaxDrainBytes = 8 << 20;
    if (total > kMaxDrainBytes) return Close();
    stream_.async_read_some(net::buffer(*buf),
                            [self = shared_from_this(), buf, total](
                                beast::error_code ec, size_t n) {
                              if (ec) return self->Close();
                              self->DrainSome(buf, total + n);
                            });
  }

  void SendErrorAndClose(const Status& status) {
    close_after_ = true;
    shared_->in_flight.fetch_add(1);
    Send(ErrorResponse(status));
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  std::shared_ptr<Server::Shared> shared_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  // The response being written (one at a time): its serialized header and
  // its body.
  std::string head_bytes_;
  std::string body_bytes_;
  std::shared_ptr<LiveBody> live_;
  // Read and written only by Handle, on this connection's thread.
  RememberedKey remembered_key_;
  net::steady_timer heartbeat_{stream_.get_executor()};
  bool live_writing_ = false;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_ = false;
  bool close_after_ = false;
};

void Accept(std::shared_ptr<Server::Shared> shared) {
  size_t index = shared->next_ioc.fetch_add(1) % shared->iocs.size();
  net::io_context& target = *shared->iocs[index];
  shared->acceptor->async_accept(
      target, [shared](beast::error_code ec, tcp::socket socket) {
        if (ec == net::error::operation_aborted || !shared->accepting) return;
        if (ec) {
          // Out of file descriptors (or another accept error): accepting
          // again at once would spin; pause so connections can close.
          spdlog::warn("accept failed: {}; pausing 100 ms", ec.message());
          auto timer = std::make_shared<net::steady_timer>(
              shared->acceptor->get_executor(), std::chrono::milliseconds(100));
          timer->async_wait([shared, timer](beast::error_code wait_ec) {
            if (!wait_ec && shared->accepting) Accept(shared);
          });
          return;
        }
        if (shared->connections.load() >= shared->options.max_connections) {
          beast::error_code ignored;
          socket.close(ignored);
        } else {
          // Responses go out in several writes (headers, then chunks of a
          // streamed list); Nagle's algorithm would hold each small one back
          // for the client's delayed ACK (about 40 ms).
          beast::error_code ignored;
          socket.set_option(tcp::no_delay(true), ignored);
          std::make_shared<Session>(std::move(socket), shared)->Start();
        }
        Accept(shared);
      });
}

}  // namespace

Server::Server(App& app, ServerOptions options)
    : app_(app), options_(std::move(options)) {}

Server::~Server() { Shutdown(std::chrono::milliseconds(0)); }

Result<uint16_t> Server::Start() {
  shared_ = std::make_shared<Shared>();
  shared_->app = &app_;
  shared_->options = options_;
  unsigned n = std::max(1u, options_.threads);
  for (unsigned i = 0; i < n; ++i) {
    shared_->iocs.push_back(std::make_unique<net::io_context>(1));
    shared_->guards.push_back(net::make_work_guard(*shared_->iocs.back()));
  }
  beast::error_code ec;
  auto address = net::ip::make_address(options_.host, ec);
  if (ec) return Status::InvalidArgument("bad listen host: " + options_.host);
  tcp::endpoint endpoint(address, options_.port);
  shared_->acceptor = std::make_unique<tcp::acceptor>(*shared_->iocs[0]);
  shared_->acceptor->open(endpoint.protocol(), ec);
  if (!ec)
    shared_->acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) shared_->acceptor->bind(endpoint, ec);
  if (!ec)
    shared_->acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::Unavailable("cannot listen on " + options_.host + ":" +
                               std::to_string(options_.port) + ": " +
                               ec.message());
  }
  uint16_t port = shared_->acceptor->local_endpoint().port();
  Accept(shared_);
  for (size_t i = 0; i < shared_->iocs.size(); ++i) {
    threads_.emplace_back([ioc = shared_->iocs[i].get(), i] {
      pthread_setname_np(pthread_self(),
                         ("cs-io-" + std::to_string(i)).c_str());
      ioc->run();
    });
  }
  started_ = true;
  return port;
}

void Server::Shutdown(std::chrono::milliseconds drain) {
  if (!started_ || stopped_) return;
  stopped_ = true;
  shared_->accepting = false;
  net::post(*shared_->iocs[0], [shared = shared_] {
    beast::error_code ignored;
    shared->acceptor->close(ignored);
  });
  // Everything the writer already took is committed and answered.
  app_.StopWrites();
  auto deadline = std::chrono::steady_clock::now() + drain;
  while (shared_->in_flight.load() > 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // A long read may still hold its connection for a moment after answering;
  // connections must not outlive their io_context.
  app_.WaitForLongReads(std::chrono::seconds(5));
  for (auto& g : shared_->guards) g.reset();
  for (auto& ioc : shared_->iocs) ioc->stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  // Sessions still queued in an io_context hold the Shared state; destroying
  // the contexts destroys those handlers and breaks the cycle.
  shared_->acceptor.reset();
  shared_->guards.clear();
  shared_->iocs.clear();
}

}  // namespace convstore::http
