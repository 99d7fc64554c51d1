// convstore: the command-line entry point. Every subcommand that touches a
// store takes --data-dir (default ./data); `convstore <cmd> --help` for more.
#include <CLI/CLI.hpp>

#include "tools/commands.h"

int main(int argc, char** argv) {
  using namespace convstore::tools;
  CLI::App cli{
      "convstore: an event-sourced conversation store serving the "
      "Conversations API.\nAll data lives in one RocksDB directory "
      "(--data-dir, default ./data): the event log and the read models."};
  cli.require_subcommand(1);

  ServeFlags serve;
  CLI::App* serve_cmd = cli.add_subcommand(
      "serve", "Run the HTTP API server (Ctrl-C or SIGTERM stops it cleanly).");
  serve_cmd->add_option("--listen", serve.listen,
                        "HOST:PORT to listen on; port 0 picks a free port")
      ->capture_default_str();
  serve_cmd->add_option("--data-dir", serve.data_dir, "Data directory")
      ->capture_default_str();
  serve_cmd->add_option("--livekit-url", serve.livekit_url,
                        "LiveKit server URL (default ws://localhost:7880)")
      ->envname("LIVEKIT_URL");
  serve_cmd->add_option("--livekit-api-key", serve.livekit_api_key,
                        "LiveKit API key (default devkey)")
      ->envname("LIVEKIT_API_KEY");
  serve_cmd->add_option("--livekit-api-secret", serve.livekit_api_secret,
                        "LiveKit API secret (default: dev-mode 'secret')")
      ->envname("LIVEKIT_API_SECRET");
  serve_cmd->add_option("--token-ttl", serve.token_ttl,
                        "Lifetime of LiveKit tokens, in seconds")
      ->envname("CONVSTORE_TOKEN_TTL")
      ->capture_default_str();
  serve_cmd->add_option("--room-url-template", serve.room_url_template,
                        "room_url of a conversation; {livekit_url} and {room} "
                        "are replaced")
      ->envname("CONVSTORE_ROOM_URL_TEMPLATE")
      ->capture_default_str();
  serve_cmd->add_option("--admin-key", serve.admin_key,
                        "Admin API key to create on first start (instead of "
                        "a generated one)")
      ->envname("CONVSTORE_ADMIN_KEY");
  serve_cmd->add_option("--threads", serve.threads,
                        "HTTP threads, one io_context each")
      ->capture_default_str()
      ->check(CLI::Range(1u, 64u));

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
  export_cmd->add_option("--from", exp.from, "First position (inclusive)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  export_cmd->add_option("--to", exp.to,
                         "Last position (inclusive); default: the head")
      ->check(CLI::PositiveNumber);
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
      "differences. Safe while the server runs.\nExample: convstore "
      "projections verify --data-dir ./data");
  verify_cmd->add_option("--data-dir", proj.data_dir, "Data directory")
      ->capture_default_str();
  verify_cmd->add_option("--max-differences", proj.max_differences,
                         "How many differences to print")
      ->capture_default_str();

  CLI11_PARSE(cli, argc, argv);
  if (serve_cmd->parsed()) return RunServe(serve);
  if (export_cmd->parsed()) return RunEventsExport(exp);
  if (rebuild_cmd->parsed()) return RunProjectionsRebuild(proj);
  if (verify_cmd->parsed()) return RunProjectionsVerify(proj);
  return 0;
}
