// The convstore subcommands. Each Run* returns the process exit code: 0 on
// success, 1 on a runtime failure (message on stderr), 2 on bad usage.
#pragma once

#include <cstdint>
#include <string>

namespace convstore::tools {

struct ServeFlags {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = "./data";
  std::string livekit_url;
  std::string livekit_api_key;
  std::string livekit_api_secret;
  int64_t token_ttl = 3600;
  std::string room_url_template = "{livekit_url}/room/{room}";
  std::string admin_key;
  unsigned threads = 2;
  int64_t read_timeout = 30;
  size_t max_connections = 10000;
  int64_t webhook_timeout = 10;
  int64_t retention_days = 0;  // 0: keep everything
  std::string webhook_ca_file;
};
int RunServe(const ServeFlags& flags);

struct ExportFlags {
  std::string data_dir = "./data";
  uint64_t from = 1;
  uint64_t to = 0;  // 0: up to the head
  std::string stream;
  std::string type;
  std::string format = "jsonl";
  std::string out;  // empty: stdout
  bool follow = false;
};
int RunEventsExport(const ExportFlags& flags);

struct ProjectionsFlags {
  std::string data_dir = "./data";
  size_t max_differences = 20;
};
int RunProjectionsRebuild(const ProjectionsFlags& flags);
int RunProjectionsVerify(const ProjectionsFlags& flags);

}  // namespace convstore::tools

namespace convstore::tools {

// Where a command that can work online (through the server) or offline
// (directly on the data dir) goes when a server holds the lock.
struct OnlineFlags {
  std::string data_dir = "./data";
  std::string server = "http://127.0.0.1:8080";
  std::string admin_key;  // CONVSTORE_ADMIN_KEY
};

struct KeysFlags {
  OnlineFlags where;
  std::string user;
  bool admin = false;
  std::string id;
};
int RunKeysCreate(const KeysFlags& flags);
int RunKeysList(const KeysFlags& flags);
int RunKeysRevoke(const KeysFlags& flags);

struct StatsFlags {
  std::string data_dir = "./data";
  bool json = false;
};
int RunStats(const StatsFlags& flags);

struct BackupFlags {
  OnlineFlags where;
  std::string dir;
  // restore: a live data dir whose erasures are re-applied to the restored
  // store (empty: none).
  std::string erasures_from;
};
int RunBackupCreate(const BackupFlags& flags);
int RunBackupRestore(const BackupFlags& flags);

}  // namespace convstore::tools
