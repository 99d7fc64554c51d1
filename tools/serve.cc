// convstore serve: the API server until SIGINT/SIGTERM.
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <iostream>

#include "http/app.h"
#include "http/server.h"
#include "tools/commands.h"

namespace convstore::tools {

using http::App;
using http::AppConfig;
using http::Server;
using http::ServerOptions;

int RunServe(const ServeFlags& f) {
  ServerOptions options;
  size_t colon = f.listen.rfind(':');
  if (colon == std::string::npos) {
    std::cerr << "error: --listen must be HOST:PORT, got '" << f.listen << "'\n";
    return 2;
  }
  options.host = f.listen.substr(0, colon);
  try {
    int port = std::stoi(f.listen.substr(colon + 1));
    if (port < 0 || port > 65535) throw std::out_of_range("port");
    options.port = static_cast<uint16_t>(port);
  } catch (const std::exception&) {
    std::cerr << "error: bad port in --listen '" << f.listen << "'\n";
    return 2;
  }
  options.threads = f.threads;
  options.read_timeout = std::chrono::seconds(f.read_timeout);
  options.max_connections = f.max_connections;

  AppConfig config;
  config.data_dir = f.data_dir;
  auto& lk = config.livekit;
  lk.dev_defaults = f.livekit_url.empty() && f.livekit_api_key.empty() &&
                    f.livekit_api_secret.empty();
  if (!f.livekit_url.empty()) lk.url = f.livekit_url;
  if (!f.livekit_api_key.empty()) lk.api_key = f.livekit_api_key;
  if (!f.livekit_api_secret.empty()) lk.api_secret = f.livekit_api_secret;
  if (f.token_ttl <= 0) {
    std::cerr << "error: --token-ttl must be a positive number of seconds\n";
    return 2;
  }
  lk.token_ttl_s = f.token_ttl;
  lk.room_url_template = f.room_url_template;
  if (!f.admin_key.empty()) config.bootstrap_admin_key = f.admin_key;
  config.webhook_timeout = std::chrono::seconds(f.webhook_timeout);
  config.webhook_ca_file = f.webhook_ca_file;
  config.retention_days = f.retention_days;
  if (lk.dev_defaults) {
    spdlog::warn(
        "LiveKit is not configured (LIVEKIT_URL, LIVEKIT_API_KEY, "
        "LIVEKIT_API_SECRET); using LiveKit's dev-mode defaults: {} with key "
        "'devkey'",
        lk.url);
  }

  auto app = App::Open(config);
  if (!app.ok()) {
    std::cerr << "error: cannot open data dir " << f.data_dir << ": "
              << app.status().message() << "\n";
    return 1;
  }
  if (const auto& key = (*app)->bootstrap_key()) {
    if (config.bootstrap_admin_key) {
      std::printf("Created the admin API key from CONVSTORE_ADMIN_KEY.\n");
    } else {
      // Shown once, on stdout only (never through the log).
      std::printf(
          "Admin API key (shown once, store it now): %s\n", key->c_str());
    }
    std::fflush(stdout);
  }

  // Signals are caught before anyone can learn the port: a SIGTERM sent
  // right after "listening on" must stop the server cleanly, not kill it.
  boost::asio::io_context signals_ioc;
  boost::asio::signal_set signals(signals_ioc, SIGINT, SIGTERM);
  signals.async_wait([](const boost::system::error_code&, int sig) {
    spdlog::info("signal {}: draining in-flight writes and stopping", sig);
  });
  Server server(**app, options);
  auto port = server.Start();
  if (!port.ok()) {
    std::cerr << "error: " << port.status().message() << "\n";
    return 1;
  }
  spdlog::info("listening on http://{}:{}", options.host, *port);

  signals_ioc.run();
  server.Shutdown();
  app->reset();  // closes the log
  spdlog::info("stopped");
  return 0;
}

}  // namespace convstore::tools
