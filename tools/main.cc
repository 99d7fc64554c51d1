// convstore: the command-line entry point. Every subcommand that touches a
// store takes --data-dir (default ./data); `convstore <cmd> --help` for more.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "tools/commands.h"

int main(int argc, char** argv) {
  using namespace convstore::tools;
  // Logs go to stderr: stdout carries what a command prints (JSON, events).
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "", std::make_shared<spdlog::sinks::stderr_color_sink_mt>()));
  CLI::App cli{
      "convstore: an event-sourced conversation store serving the "
      "Conversations API.\nAll data lives in one RocksDB directory "
      "(--data-dir, default ./data): the event log and the read models."};
  cli.require_subcommand(1);

  ServeFlags serve;
  CLI::App* serve_cmd = cli.add_subcommand(
      "serve", "Run the HTTP API server (Ctrl-C or SIGTERM stops it cleanly).");
  serve_cmd
      ->add_option("--listen", serve.listen,
                   "HOST:PORT to listen on; port 0 picks a free port")
      ->capture_default_str();
  serve_cmd->add_option("--data-dir", serve.data_dir, "Data directory")
      ->capture_default_str();
  serve_cmd
      ->add_option("--livekit-url", serve.livekit_url,
                   "LiveKit server URL (default ws://localhost:7880)")
      ->envname("LIVEKIT_URL");
  serve_cmd
      ->add_option("--livekit-api-key", serve.livekit_api_key,
                   "LiveKit API key (default devkey)")
      ->envname("LIVEKIT_API_KEY");
  serve_cmd
      ->add_option("--livekit-api-secret", serve.livekit_api_secret,
                   "LiveKit API secret (default: dev-mode 'secret')")
      ->envname("LIVEKIT_API_SECRET");
  serve_cmd
      ->add_option("--token-ttl", serve.token_ttl,
                   "Lifetime of LiveKit tokens, in seconds")
      ->envname("CONVSTORE_TOKEN_TTL")
      ->capture_default_str();
  serve_cmd
      ->add_option("--room-url-template", serve.room_url_template,
                   "room_url of a conversation; {livekit_url} and {room} "
                   "are replaced")
      ->envname("CONVSTORE_ROOM_URL_TEMPLATE")
      ->capture_default_str();
  serve_cmd
      ->add_option("--admin-key", serve.admin_key,
                   "Admin API key to create on first start (instead of "
                   "a generated one)")
      ->envname("CONVSTORE_ADMIN_KEY");
  serve_cmd
      ->add_option("--threads", serve.threads,
                   "HTTP threads, one io_context each")
      ->capture_default_str()
      ->check(CLI::Range(1u, 64u));
  serve_cmd
      ->add_option("--read-timeout", serve.read_timeout,
                   "Seconds a client has to send a whole request, and "
                   "that a kept-alive connection may stay idle; then "
                   "it is closed (slow clients cannot hold connections)")
      ->envname("CONVSTORE_READ_TIMEOUT")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{3600}));
  serve_cmd
      ->add_option("--max-connections", serve.max_connections,
                   "Open connections at most; more are closed at once")
      ->envname("CONVSTORE_MAX_CONNECTIONS")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1000000}));
  serve_cmd
      ->add_option("--webhook-timeout", serve.webhook_timeout,
                   "Seconds a webhook receiver has to answer a delivery "
                   "(connecting included); later is a failed attempt, "
                   "retried")
      ->envname("CONVSTORE_WEBHOOK_TIMEOUT")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{300}));
  serve_cmd
      ->add_option("--webhook-ca-file", serve.webhook_ca_file,
                   "PEM file of CA certificates to trust for https webhook "
                   "URLs, besides the system's (e.g. a private CA)")
      ->envname("CONVSTORE_WEBHOOK_CA_FILE")
      ->check(CLI::ExistingFile);
  serve_cmd
      ->add_option("--retention-days", serve.retention_days,
                   "Erase completed and archived conversations unchanged for "
                   "this many days, in the background (0: keep everything)")
      ->envname("CONVSTORE_RETENTION_DAYS")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{36500}));

  CLI::App* events_cmd =
      cli.add_subcommand("events", "Read the event log (for analytics).");
  events_cmd->require_subcommand(1);
  ExportFlags exp;
  CLI::App* export_cmd = events_cmd->add_subcommand(
      "export",
      "Write event envelopes in position order (JSON lines or CSV). Safe "
      "while the server runs: opens the store as a secondary, never taking "
      "the server's lock.\nExample: convstore events export --type "
      "MessageAppended --out messages.jsonl");
  export_cmd->add_option("--data-dir", exp.data_dir, "Data directory")
      ->capture_default_str();
  // Log positions start at 1; say so rather than CLI11's generic range text.
  const CLI::Validator position(
      [](std::string& value) -> std::string {
        if (value.empty() ||
            value.find_first_not_of("0123456789") != std::string::npos ||
            value.size() > 19 || std::stoull(value) == 0) {
          return "must be a log position: an integer from 1 (positions start "
                 "at 1), got '" +
                 value + "'";
        }
        return "";
      },
      "POSITION");
  export_cmd->add_option("--from", exp.from, "First position (inclusive)")
      ->capture_default_str()
      ->check(position);
  export_cmd
      ->add_option("--to", exp.to,
                   "Last position (inclusive); default: the head")
      ->check(position);
  export_cmd->add_option("--stream", exp.stream,
                         "Only this stream, e.g. messages-conv-<uuid>");
  export_cmd->add_option("--type", exp.type,
                         "Only this event type, e.g. MessageAppended");
  export_cmd->add_option("--format", exp.format, "jsonl or csv")
      ->capture_default_str()
      ->check(CLI::IsMember({"jsonl", "csv"}));
  export_cmd->add_option("--out", exp.out, "Output file (default stdout)");
  export_cmd->add_flag("--follow", exp.follow,
                       "Keep tailing new events until interrupted");

  CLI::App* projections_cmd = cli.add_subcommand(
      "projections", "Rebuild or verify the read models (for operators).");
  projections_cmd->require_subcommand(1);
  ProjectionsFlags proj;
  CLI::App* rebuild_cmd = projections_cmd->add_subcommand(
      "rebuild",
      "Rebuild every read model from the log, offline (stop the server "
      "first). The new read models are built beside the old ones and "
      "switched in only when complete; an interrupted rebuild leaves the "
      "old ones intact.\nExample: convstore projections rebuild --data-dir "
      "./data");
  rebuild_cmd->add_option("--data-dir", proj.data_dir, "Data directory")
      ->capture_default_str();
  CLI::App* verify_cmd = projections_cmd->add_subcommand(
      "verify",
      "Rebuild the read models into a scratch area and compare them with the "
      "live ones key by key; exit 0 when identical, 1 with the first "
      "differences (each key, the two sizes and the first differing byte; "
      "never a row's contents). Safe while the server runs.\nExample: "
      "convstore "
      "projections verify --data-dir ./data");
  verify_cmd->add_option("--data-dir", proj.data_dir, "Data directory")
      ->capture_default_str();
  verify_cmd
      ->add_option("--max-differences", proj.max_differences,
                   "How many differences to print")
      ->capture_default_str();

  // Commands that work on a data dir directly, or through the server's admin
  // API when it is running on that dir.
  auto add_online = [](CLI::App* cmd, OnlineFlags& where) {
    cmd->add_option("--data-dir", where.data_dir, "Data directory")
        ->capture_default_str();
    cmd->add_option("--server", where.server,
                    "The running server's URL, used when it holds the data "
                    "dir")
        ->capture_default_str();
    cmd->add_option("--admin-key", where.admin_key,
                    "Admin API key for --server")
        ->envname("CONVSTORE_ADMIN_KEY");
  };

  CLI::App* keys_cmd = cli.add_subcommand(
      "keys",
      "Manage API keys: directly on the data dir when the server is stopped, "
      "through its admin API when it runs.");
  keys_cmd->require_subcommand(1);
  KeysFlags keys;
  CLI::App* keys_create = keys_cmd->add_subcommand(
      "create",
      "Create a key and print it once.\nExample: convstore keys create "
      "--user user-12345");
  add_online(keys_create, keys.where);
  keys_create->add_option("--user", keys.user, "The key's user id")->required();
  keys_create->add_flag("--admin", keys.admin, "An admin key");
  CLI::App* keys_list = keys_cmd->add_subcommand(
      "list", "List keys (never the keys themselves).");
  add_online(keys_list, keys.where);
  CLI::App* keys_revoke = keys_cmd->add_subcommand(
      "revoke", "Revoke a key by id.\nExample: convstore keys revoke key_...");
  add_online(keys_revoke, keys.where);
  keys_revoke->add_option("id", keys.id, "The key id (key_...)")->required();

  StatsFlags stats;
  CLI::App* stats_cmd = cli.add_subcommand(
      "stats",
      "Events, head position, streams, agents, conversations, messages, size "
      "on disk, read-model checkpoint vs head. Safe while the server runs.");
  stats_cmd->add_option("--data-dir", stats.data_dir, "Data directory")
      ->capture_default_str();
  stats_cmd->add_flag("--json", stats.json, "One JSON object");

  CLI::App* backup_cmd =
      cli.add_subcommand("backup", "Consistent backups of a data dir.");
  backup_cmd->require_subcommand(1);
  BackupFlags backup;
  CLI::App* backup_create = backup_cmd->add_subcommand(
      "create",
      "Write a consistent copy of the whole store into DIR (which must not "
      "exist). Works while the server serves writes (it then makes the copy "
      "itself, so DIR is on the server's host).\nExample: convstore backup "
      "create /backups/2026-11-23");
  add_online(backup_create, backup.where);
  backup_create->add_option("dir", backup.dir, "Backup directory")->required();
  CLI::App* backup_restore = backup_cmd->add_subcommand(
      "restore",
      "Restore backup DIR into --data-dir (which must not exist or be "
      "empty), then check the log is gapless and the read models match. "
      "With --erasures-from LIVE, what was erased in LIVE (after the backup, "
      "say) is erased again."
      "\nExample: convstore backup restore /backups/2026-11-23 --data-dir "
      "./data");
  backup_restore->add_option("dir", backup.dir, "Backup directory")->required();
  backup_restore
      ->add_option("--data-dir", backup.where.data_dir,
                   "Data directory to create")
      ->required();
  backup_restore
      ->add_option("--erasures-from", backup.erasures_from,
                   "A live data dir (the server may run on it): every "
                   "conversation and agent erased there is erased in the "
                   "restored store too, and purged from its files")
      ->check(CLI::ExistingDirectory);

  CLI11_PARSE(cli, argc, argv);
  if (serve_cmd->parsed()) return RunServe(serve);
  if (export_cmd->parsed()) return RunEventsExport(exp);
  if (rebuild_cmd->parsed()) return RunProjectionsRebuild(proj);
  if (verify_cmd->parsed()) return RunProjectionsVerify(proj);
  if (keys_create->parsed()) return RunKeysCreate(keys);
  if (keys_list->parsed()) return RunKeysList(keys);
  if (keys_revoke->parsed()) return RunKeysRevoke(keys);
  if (stats_cmd->parsed()) return RunStats(stats);
  if (backup_create->parsed()) return RunBackupCreate(backup);
  if (backup_restore->parsed()) return RunBackupRestore(backup);
  return 0;
}
