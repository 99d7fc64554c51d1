// Does retention hurt foreground writes? Runs the server in process on a
// fresh data dir with a 1-day policy and a backlog of ended conversations,
// then drives appends from 16 connections in alternating windows: with the
// retention clock at "now" (nothing has expired) and 2 days ahead (the
// sweeper erases the backlog, at its bounded rate, during the window).
// Then one window in which a DELETE makes the server purge everything
// retention erased so far (the batched purge), against an idle one.
// Prints requests/s and p50/p99 of each window and the ratios.
// Usage: convstore_bench_retention [--seconds N] [--ended N] [--rounds N]
//                                  [--dir DIR] [--purge-interval-ms N]
//                                  [--purge-batch-ms N]
//   --purge-batch-ms 0 purges retention's erasures at every check, as a
//   DELETE's are (the server's default batches them for 10 minutes).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "http/app.h"
#include "http/client.h"
#include "http/server.h"

namespace {

using convstore::http::HttpClient;
using Clock = std::chrono::steady_clock;
constexpr char kAdmin[] = "csk_bench_retention_admin_key_0123456789";
constexpr int64_t kDayMs = 24LL * 3600 * 1000;

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string IdOf(const convstore::http::HttpResponse& r) {
  return std::string(r.json().as_object().at("id").as_string());
}

uint64_t Metric(uint16_t port, const std::string& name) {
  HttpClient c(port);
  const std::string body = c.Get("/metrics", "").body;
  std::string line_start(1, '\n');  // (not "\n" + name: GCC 12 -Wrestrict)
  line_start += name;
  line_start += ' ';
  const size_t at = body.find(line_start);
  if (at == std::string::npos) return 0;
  return std::strtoull(body.c_str() + at + name.size() + 2, nullptr, 10);
}

struct Window {
  double rps = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  uint64_t errors = 0;
};

// 16 connections appending 200-byte messages to `convs` for `seconds`.
Window Appends(uint16_t port, const std::vector<std::string>& convs,
               int seconds) {
  constexpr int kConnections = 16;
  const std::string body =
      R"({"role":"user","content":")" + std::string(200, 'x') + R"("})";
  std::vector<std::vector<double>> latencies(kConnections);
  std::atomic<uint64_t> errors{0};
  const auto end = Clock::now() + std::chrono::seconds(seconds);
  std::vector<std::thread> threads;
  for (int t = 0; t < kConnections; ++t) {
    threads.emplace_back([&, t] {
      HttpClient c(port);
      for (size_t i = t; Clock::now() < end; i += kConnections) {
        const auto start = Clock::now();
        auto r =
            c.Post("/v1/conversations/" + convs[i % convs.size()] + "/messages",
                   kAdmin, body);
        if (r.status != 201) ++errors;
        latencies[t].push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - start)
                .count());
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  Window w;
  w.rps = static_cast<double>(all.size()) / seconds;
  if (!all.empty()) {
    w.p50_ms = all[all.size() / 2];
    w.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  w.errors = errors;
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = 5;
  int ended = 3000;
  int purge_ms = 1000;  // the server's defaults
  int batch_ms = 600000;
  int rounds = 3;
  std::string dir = std::filesystem::temp_directory_path().string();
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--seconds") seconds = std::atoi(argv[i + 1]);
    if (flag == "--ended") ended = std::atoi(argv[i + 1]);
    if (flag == "--dir") dir = argv[i + 1];
    if (flag == "--purge-interval-ms") purge_ms = std::atoi(argv[i + 1]);
    if (flag == "--purge-batch-ms") batch_ms = std::atoi(argv[i + 1]);
    if (flag == "--rounds") rounds = std::atoi(argv[i + 1]);
  }
  if (seconds < 1 || seconds > 600 || ended < 1 || ended > 1000000 ||
      rounds < 1 || rounds > 20 || purge_ms < 1 || batch_ms < 0) {
    std::fprintf(stderr, "bad --seconds, --ended, --rounds or --purge-*\n");
    return 2;
  }
  std::string data = dir + "/convstore-bench-retention-XXXXXX";
  if (mkdtemp(data.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }

  auto now = std::make_shared<std::atomic<int64_t>>(0);
  convstore::http::AppConfig config;
  config.data_dir = data + "/data";
  config.bootstrap_admin_key = kAdmin;
  config.deliver_webhooks = false;
  config.retention_days = 1;
  config.erasure_purge_interval = std::chrono::milliseconds(purge_ms);
  config.erasure_purge_batch_interval = std::chrono::milliseconds(batch_ms);
  config.retention_interval = std::chrono::milliseconds(200);
  config.retention_clock = [now] { return now->load(); };
  auto app = convstore::http::App::Open(config);
  if (!app.ok()) {
    std::fprintf(stderr, "open: %s\n", app.status().ToString().c_str());
    return 1;
  }
  convstore::http::ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  convstore::http::Server server(**app, options);
  auto port = server.Start();
  if (!port.ok()) {
    std::fprintf(stderr, "start: %s\n", port.status().ToString().c_str());
    return 1;
  }

  // The backlog: `ended` completed conversations with a message each, and
  // 64 active ones for the appends (loaded from 8 connections).
  HttpClient admin(*port);
  const std::string agent =
      IdOf(admin.Post("/v1/agents", kAdmin, R"({"name":"bench"})"));
  const std::string create = R"({"agent_id":")" + agent + R"("})";
  std::vector<std::string> active;
  for (int i = 0; i < 64; ++i) {
    active.push_back(IdOf(admin.Post("/v1/conversations", kAdmin, create)));
  }
  std::atomic<int> next{0};
  std::vector<std::thread> loaders;
  for (int t = 0; t < 8; ++t) {
    loaders.emplace_back([&] {
      HttpClient c(*port);
      while (next.fetch_add(1) < ended) {
        const std::string id =
            IdOf(c.Post("/v1/conversations", kAdmin, create));
        c.Post("/v1/conversations/" + id + "/messages", kAdmin,
               R"({"role":"user","content":"an old call"})");
        c.Patch("/v1/conversations/" + id, kAdmin, R"({"status":"completed"})");
      }
    });
  }
  for (auto& th : loaders) th.join();
  std::printf(
      "loaded %d ended conversations; appends from 16 connections, "
      "%d s per window\n\n",
      ended, seconds);
  std::printf("%-28s %9s %8s %8s %7s %8s\n", "window", "req/s", "p50 ms",
              "p99 ms", "errors", "erased");

  // Until retention has stopped erasing (a step of up to 64 finishes after
  // the clock went back), at most 10 s.
  auto settle = [&] {
    uint64_t last = Metric(*port, "convstore_retention_erased_total");
    for (int i = 0; i < 10; ++i) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      const uint64_t n = Metric(*port, "convstore_retention_erased_total");
      if (n == last) return;
      last = n;
    }
  };
  Appends(*port, active, 1);  // warm-up, not counted
  auto print = [](const char* name, const Window& w, uint64_t erased) {
    std::printf("%-28s %9.0f %8.2f %8.2f %7llu %8llu\n", name, w.rps, w.p50_ms,
                w.p99_ms, static_cast<unsigned long long>(w.errors),
                static_cast<unsigned long long>(erased));
  };
  Window sums[2];
  for (int round = 0; round < rounds; ++round) {
    for (int sweeping = 0; sweeping < 2; ++sweeping) {
      if (!sweeping) settle();
      now->store(sweeping ? WallMs() + 2 * kDayMs : 0);
      const uint64_t before = Metric(*port, "convstore_retention_erased_total");
      Window w = Appends(*port, active, seconds);
      now->store(0);
      print(sweeping ? "retention erasing backlog" : "retention idle", w,
            Metric(*port, "convstore_retention_erased_total") - before);
      sums[sweeping].rps += w.rps / rounds;
      sums[sweeping].p50_ms += w.p50_ms / rounds;
      sums[sweeping].p99_ms += w.p99_ms / rounds;
    }
  }
  std::printf(
      "\nerasing / idle (means of %d alternating windows): req/s %.2f, "
      "p50 %.2f, p99 %.2f\n\n",
      rounds, sums[1].rps / sums[0].rps, sums[1].p50_ms / sums[0].p50_ms,
      sums[1].p99_ms / sums[0].p99_ms);

  // The batched purge: a DELETE at the start of the window makes the server
  // purge every erasure retention made above, while the appends run.
  settle();
  const uint64_t waiting = Metric(*port, "convstore_retention_erased_total");
  const Window idle = Appends(*port, active, seconds);
  print("idle", idle, 0);
  double purge_seconds = -1;  // not within the window
  const std::string deleted = active.back();
  active.pop_back();
  std::thread trigger([&] {
    const auto start = Clock::now();
    HttpClient c(*port);
    c.Delete("/v1/conversations/" + deleted, kAdmin);
    // Polled every 50 ms, for the window at most.
    while (Clock::now() - start < std::chrono::seconds(seconds)) {
      if (Metric(*port, "convstore_erasure_purge_pending") == 0) {
        purge_seconds =
            std::chrono::duration<double>(Clock::now() - start).count();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  const Window purging = Appends(*port, active, seconds);
  trigger.join();
  print("one purge of the erasures", purging, waiting + 1);
  std::printf(
      "\npurge of %llu erasures: %.1f s from the DELETE; window with it / "
      "idle: req/s %.2f, p50 %.2f, p99 %.2f\n",
      static_cast<unsigned long long>(waiting + 1), purge_seconds,
      purging.rps / idle.rps, purging.p50_ms / idle.p50_ms,
      purging.p99_ms / idle.p99_ms);
  server.Shutdown();
  app->reset();
  std::filesystem::remove_all(data);
  return 0;
}
