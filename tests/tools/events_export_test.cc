// `convstore events export` run as the real binary beside a running server
// on the same data dir (a secondary instance, never the server's lock): the
// JSON lines equal GET /v1/admin/events, the filters, CSV, --out, --follow,
// and the error paths (missing dir, bad positions).

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <boost/json.hpp>
#include <filesystem>
#include <functional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "eventlog/event_json.h"
#include "eventlog/event_log.h"
#include "tests/support/api_assertions.h"
#include "tests/support/process.h"
#include "tests/support/test_server.h"

namespace convstore::testing {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

uint64_t Position(const json::value& v) {
  return v.at("position").to_number<uint64_t>();
}

// Every envelope of GET /v1/admin/events, following Link rel="next" pages of
// `page` events.
std::vector<json::value> PagedAdminEvents(uint16_t port, size_t page = 3) {
  std::vector<json::value> out;
  HttpClient c(port);
  std::string target = "/v1/admin/events?limit=" + std::to_string(page);
  for (int i = 0; i < 10000 && !target.empty(); ++i) {
    HttpResponse r = c.Get(target, kAdmin);
    EXPECT_EQ(200u, r.status) << r.body;
    if (r.status != 200) break;
    json::value page_items = r.json();
    for (const json::value& e : page_items.as_array()) out.push_back(e);
    target = NextLink(r);
  }
  return out;
}

// Splits JSON-lines output; every line must parse.
std::vector<json::value> ParseLines(const std::string& text) {
  std::vector<json::value> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    EXPECT_NE(std::string::npos, end) << "last line has no newline";
    if (end == std::string::npos) end = text.size();
    boost::system::error_code ec;
    json::value v = json::parse(text.substr(start, end - start), ec);
    EXPECT_FALSE(ec) << "not JSON: " << text.substr(start, end - start);
    out.push_back(v);
    start = end + 1;
  }
  return out;
}

// RFC 4180: records of fields; quoted fields may hold commas, CR/LF and ""
// (an escaped quote). Records end with CRLF (a bare LF is accepted too).
std::vector<std::vector<std::string>> ParseCsv(const std::string& text,
                                               bool* ok) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, in_quotes = false, field_started = false;
  *ok = true;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        field.push_back(c);
      }
      continue;
    }
    if (c == '"') {
      if (field_started) *ok = false;  // a quote inside an unquoted field
      in_quotes = quoted = field_started = true;
    } else if (c == ',') {
      row.push_back(field);
      field.clear();
      quoted = field_started = false;
    } else if (c == '\r' || c == '\n') {
      if (c == '\r') {
        if (i + 1 >= text.size() || text[i + 1] != '\n') *ok = false;
        ++i;
      }
      row.push_back(field);
      rows.push_back(row);
      row.clear();
      field.clear();
      quoted = field_started = false;
    } else {
      if (quoted) *ok = false;  // text after a closing quote
      field.push_back(c);
      field_started = true;
    }
  }
  if (in_quotes || !field.empty() || !row.empty()) *ok = false;  // no CRLF
  return rows;
}

// A server process on a fresh data dir with a small store: an agent with
// instructions, three conversations, messages whose content needs CSV
// quoting (commas, quotes, newlines, non-ASCII), one with an
// Idempotency-Key, and a status change.
class EventsExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(data_dir_);
    HttpClient c = server_->Client();
    HttpResponse k = c.Post("/v1/admin/api-keys", kAdmin,
                            R"({"user_id":"analyst-1","role":"user"})");
    ASSERT_EQ(201u, k.status) << k.body;
    user_key_ = Str(k.json(), "key");
    json::object agent = CreateAgent(
        c, user_key_, R"({"name":"Bot","instructions":"Answer, briefly."})");
    for (int i = 0; i < 3; ++i) {
      json::object conv = CreateConversation(c, user_key_, Str(agent, "id"),
                                             "T" + std::to_string(i));
      conversations_.push_back(Str(conv, "id"));
    }
    Append(conversations_[0],
           R"({"role":"user","content":"a, \"quoted\"\nline"})");
    Append(conversations_[1],
           R"({"role":"assistant","content":"grüße 🙂"})");
    HttpResponse idem = c.Post(
        "/v1/conversations/" + conversations_[0] + "/messages", user_key_,
        R"({"role":"user","content":"plain"})", {{"Idempotency-Key", "k-1"}});
    ASSERT_EQ(201u, idem.status) << idem.body;
    Append(conversations_[2], R"({"role":"user","content":"x"})");
    ASSERT_EQ(200u, c.Patch("/v1/conversations/" + conversations_[2], user_key_,
                            R"({"status":"completed"})")
                        .status);
  }

  std::string Append(const std::string& conv, const std::string& body) {
    HttpClient c = server_->Client();
    HttpResponse r =
        c.Post("/v1/conversations/" + conv + "/messages", user_key_, body);
    EXPECT_EQ(201u, r.status) << r.body;
    return r.status == 201 ? Str(r.json(), "id") : "";
  }

  CommandResult Export(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"events", "export", "--data-dir",
                                     data_dir_};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunConvstore(args);
  }

  TempDir tmp_;
  std::string data_dir_ = (tmp_.path() / "data").string();
  std::unique_ptr<ServerProcess> server_;
  std::string user_key_;
  std::vector<std::string> conversations_;
};

TEST_F(EventsExportTest, JsonLinesEqualTheAdminEventsPagesWhileTheServerRuns) {
  CommandResult r = Export();
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  std::vector<json::value> exported = ParseLines(r.out);
  std::vector<json::value> served = PagedAdminEvents(server_->port());
  ASSERT_GE(served.size(), 12u);
  ASSERT_EQ(served.size(), exported.size());
  for (size_t i = 0; i < served.size(); ++i) {
    EXPECT_EQ(served[i], exported[i]) << "line " << i + 1;
  }
}

TEST_F(EventsExportTest,
       AfterAnErasureEveryEnvelopeStaysAndOnlyItsPayloadGoes) {
  CommandResult before = Export();
  ASSERT_EQ(0, before.exit_code) << Describe(before);
  const std::vector<json::value> was = ParseLines(before.out);
  HttpClient c = server_->Client();
  ASSERT_EQ(
      204u,
      c.Delete("/v1/conversations/" + conversations_[0], user_key_).status);
  // After the purge that follows (its flush is what a secondary open must
  // not miss; OpenSecondary reads the MANIFEST again for that).
  ASSERT_TRUE(WaitUntil(
      [&] { return MetricValue(c, "convstore_erasure_purge_pending") == 0; },
      30000));

  CommandResult after = Export();
  ASSERT_EQ(0, after.exit_code) << Describe(after);
  const std::vector<json::value> is = ParseLines(after.out);
  ASSERT_EQ(was.size() + 1, is.size()) << "the erasure is one more event";
  size_t erased = 0;
  for (size_t i = 0; i < was.size(); ++i) {
    const json::object& w = was[i].as_object();
    const json::object& e = is[i].as_object();
    for (const char* same : {"position", "stream", "revision", "event_id",
                             "type", "recorded_at"}) {
      EXPECT_EQ(w.at(same), e.at(same)) << same << " of line " << i + 1;
    }
    if (!Str(e, "stream").ends_with(conversations_[0])) {
      EXPECT_EQ(was[i], is[i]) << "line " << i + 1 << " is not erased";
      continue;
    }
    ++erased;
    EXPECT_EQ(json::value(true),
              e.contains("erased") ? e.at("erased") : json::value())
        << json::serialize(e);
    EXPECT_FALSE(e.contains("payload")) << json::serialize(e);
    EXPECT_TRUE(e.at("actor").is_null()) << json::serialize(e);
    EXPECT_TRUE(e.at("idempotency_key").is_null()) << json::serialize(e);
  }
  // Created, the system message, two messages (one with an Idempotency-Key).
  EXPECT_EQ(4u, erased);
  EXPECT_EQ("ConversationErased", Str(is.back(), "type"));
  EXPECT_EQ(conversations_[0], Str(is.back().at("payload"), "conversation_id"));

  CommandResult csv = Export({"--format", "csv"});
  ASSERT_EQ(0, csv.exit_code) << Describe(csv);
  bool ok = true;
  EXPECT_EQ(is.size() + 1, ParseCsv(csv.out, &ok).size()) << "and a header";
  EXPECT_TRUE(ok);
}

TEST_F(EventsExportTest, LinesAreInGaplessPositionOrderFromOne) {
  CommandResult r = Export();
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  std::vector<json::value> lines = ParseLines(r.out);
  ASSERT_FALSE(lines.empty());
  for (size_t i = 0; i < lines.size(); ++i)
    EXPECT_EQ(i + 1, Position(lines[i]));
}

TEST_F(EventsExportTest, DoesNotTakeTheServersLock) {
  CommandResult r = Export();
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  // The server keeps serving writes and reads during and after the export.
  std::string id =
      Append(conversations_[0], R"({"role":"user","content":"after"})");
  EXPECT_FALSE(id.empty());
  EXPECT_TRUE(server_->running());
  CommandResult again = Export();
  ASSERT_EQ(0, again.exit_code) << Describe(again);
  std::vector<json::value> lines = ParseLines(again.out);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(id, Str(lines.back().at("payload"), "id"))
      << "an export sees what the server acknowledged before it started";
}

TEST_F(EventsExportTest, WorksOnAStoppedServersDataDir) {
  std::vector<json::value> served = PagedAdminEvents(server_->port());
  ASSERT_EQ(0, server_->Stop()) << server_->output();
  CommandResult r = Export();
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  std::vector<json::value> exported = ParseLines(r.out);
  EXPECT_EQ(served, exported);
}

// Where two texts first differ, for a failure message (they can be large).
std::string FirstDifference(const std::string& a, const std::string& b) {
  auto [ia, ib] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  const size_t at = static_cast<size_t>(ia - a.begin());
  return "sizes " + std::to_string(a.size()) + " and " +
         std::to_string(b.size()) + ", first difference at byte " +
         std::to_string(at) + ": \"" + a.substr(at, 80) + "\" vs \"" +
         b.substr(at, 80) + "\"";
}

// More events than several chunks of the export's reads (4096 events each),
// and more chunks than run at once on a 2-to-7-core machine (cores + 1), so
// chunk buffers are reused; appended straight to the stopped server's log:
// chunks are read and rendered side by side, yet the lines are, byte for byte
// and in order, EventJson(e), what GET /v1/admin/events serves,
// and the CSV rows EventToCsvRow(e); --from, --to and the filters cut across
// chunks.
TEST_F(EventsExportTest, ManyChunksExportTheAdminEventsBytesInOrder) {
  ASSERT_EQ(0, server_->Stop()) << server_->output();
  std::vector<RecordedEvent> all;
  {
    EventLogOptions options;
    options.create_if_missing = false;
    auto log = EventLog::Open(data_dir_, options);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    int ids = 0;
    auto event_id = [&ids] { return "evt-bulk-" + std::to_string(++ids); };
    LogBatch batch(log->get());
    for (int i = 0; i < 40000; ++i) {
      Message m;
      m.id = "msg-bulk-" + std::to_string(i);
      m.conversation_id = conversations_[i % conversations_.size()];
      m.role = i % 2 ? MessageRole::kAssistant : MessageRole::kUser;
      m.content = i % 7 ? "bulk " + std::to_string(i) : "a, \"b\"\nc";
      m.created_at_ms = 1'700'000'000'000 + int64_t{i} * 60'000;  // 28 days
      EventMeta meta{"bulk-user", i % 5 ? "" : "idem-" + std::to_string(i),
                     m.created_at_ms};
      auto appended = batch.Append({{MessagesStream(m.conversation_id),
                                     std::nullopt, MessageAppended{m}}},
                                   meta, event_id);
      ASSERT_TRUE(appended.ok()) << appended.status().ToString();
    }
    Status committed = batch.Commit();
    ASSERT_TRUE(committed.ok()) << committed.ToString();
    auto read = (*log)->ReadRange(1, 100000);
    ASSERT_TRUE(read.ok()) << read.status().ToString();
    all = std::move(*read);
  }
  ASSERT_GT(all.size(), 9u * 4096u);
  auto lines = [&all](const std::function<bool(const RecordedEvent&)>& keep) {
    std::string text;
    for (const RecordedEvent& e : all) {
      if (keep(e)) text += EventJson(e) + "\n";
    }
    return text;
  };
  auto check = [](const CommandResult& r, const std::string& want) {
    ASSERT_EQ(0, r.exit_code) << r.err;
    EXPECT_TRUE(r.out == want) << FirstDifference(r.out, want);
  };

  const std::string everything =
      lines([](const RecordedEvent&) { return true; });
  check(Export(), everything);
  std::string csv = EventCsvHeader();
  for (const RecordedEvent& e : all) csv += EventToCsvRow(e);
  check(Export({"--format", "csv"}), csv);
  check(Export({"--from", "4000", "--to", "8200"}),
        lines([](const RecordedEvent& e) {
          return e.position >= 4000 && e.position <= 8200;
        }));
  check(Export({"--from", "4096", "--to", "4097"}),
        lines([](const RecordedEvent& e) {
          return e.position == 4096 || e.position == 4097;
        }));
  const std::string stream = MessagesStream(conversations_[1]);
  check(Export(
            {"--stream", stream, "--type", "MessageAppended", "--from", "100"}),
        lines([&stream](const RecordedEvent& e) {
          return e.stream == stream && e.position >= 100;
        }));

  // And what the server serves, as bytes: its largest page (10,000), the
  // export's first 10,000 lines.
  server_ = std::make_unique<ServerProcess>(data_dir_);
  HttpResponse page =
      server_->Client().Get("/v1/admin/events?limit=10000", kAdmin);
  ASSERT_EQ(200u, page.status) << page.body;
  std::string joined = "[";
  size_t start = 0;
  for (int n = 0; n < 10000; ++n) {
    const size_t end = everything.find('\n', start);
    if (start > 0) joined += ',';
    joined.append(everything, start, end - start);
    start = end + 1;
  }
  joined += ']';
  EXPECT_TRUE(page.body == joined) << FirstDifference(page.body, joined);
}

TEST_F(EventsExportTest, StreamFilterKeepsOnlyThatStreamsEvents) {
  const std::string stream = "messages-" + conversations_[0];
  CommandResult r = Export({"--stream", stream});
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  std::vector<json::value> want;
  for (const json::value& e : PagedAdminEvents(server_->port())) {
    if (Str(e, "stream") == stream) want.push_back(e);
  }
  ASSERT_EQ(3u, want.size());  // the system message and two appended ones
  EXPECT_EQ(want, ParseLines(r.out));
}

TEST_F(EventsExportTest, TypeFilterKeepsOnlyThatType) {
  CommandResult r = Export({"--type", "ConversationCreated"});
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  std::vector<json::value> want;
  for (const json::value& e : PagedAdminEvents(server_->port())) {
    if (Str(e, "type") == "ConversationCreated") want.push_back(e);
  }
  ASSERT_EQ(3u, want.size());
  EXPECT_EQ(want, ParseLines(r.out));
}

TEST_F(EventsExportTest, StreamWithoutEventsExportsNothing) {
  CommandResult r = Export({"--stream", "messages-conv-nope"});
  EXPECT_EQ(0, r.exit_code) << Describe(r);
  EXPECT_EQ("", r.out);
}

TEST_F(EventsExportTest, FromAndToAreAnInclusiveRange) {
  std::vector<json::value> all = PagedAdminEvents(server_->port());
  ASSERT_GE(all.size(), 6u);
  CommandResult r = Export({"--from", "3", "--to", "5"});
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  EXPECT_EQ(std::vector<json::value>(all.begin() + 2, all.begin() + 5),
            ParseLines(r.out));
}

TEST_F(EventsExportTest, FromAloneRunsToTheHeadAndToAloneStartsAtOne) {
  std::vector<json::value> all = PagedAdminEvents(server_->port());
  CommandResult from = Export({"--from", "4"});
  ASSERT_EQ(0, from.exit_code) << Describe(from);
  EXPECT_EQ(std::vector<json::value>(all.begin() + 3, all.end()),
            ParseLines(from.out));
  CommandResult to = Export({"--to", "2"});
  ASSERT_EQ(0, to.exit_code) << Describe(to);
  EXPECT_EQ(std::vector<json::value>(all.begin(), all.begin() + 2),
            ParseLines(to.out));
}

TEST_F(EventsExportTest, FromEqualToExportsOneEvent) {
  std::vector<json::value> all = PagedAdminEvents(server_->port());
  CommandResult r = Export({"--from", "2", "--to", "2"});
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  EXPECT_EQ(std::vector<json::value>{all[1]}, ParseLines(r.out));
}

TEST_F(EventsExportTest, ToPastTheHeadStopsAtTheHead) {
  std::vector<json::value> all = PagedAdminEvents(server_->port());
  CommandResult r = Export({"--to", "1000000"});
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  EXPECT_EQ(all, ParseLines(r.out));
}

TEST_F(EventsExportTest, FiltersCombine) {
  const std::string stream = "messages-" + conversations_[0];
  std::vector<json::value> all = PagedAdminEvents(server_->port());
  // Skip the first of that stream's events by starting just after it.
  uint64_t first = 0;
  for (const json::value& e : all) {
    if (Str(e, "stream") == stream) {
      first = Position(e);
      break;
    }
  }
  ASSERT_GT(first, 0u);
  CommandResult r = Export({"--stream", stream, "--type", "MessageAppended",
                            "--from", std::to_string(first + 1)});
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  std::vector<json::value> want;
  for (const json::value& e : all) {
    if (Str(e, "stream") == stream && Position(e) > first) want.push_back(e);
  }
  ASSERT_EQ(2u, want.size());
  EXPECT_EQ(want, ParseLines(r.out));
}

TEST_F(EventsExportTest, CsvHasTheHeaderAndOneParsableRowPerEvent) {
  CommandResult r = Export({"--format", "csv"});
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  bool ok = false;
  std::vector<std::vector<std::string>> rows = ParseCsv(r.out, &ok);
  ASSERT_TRUE(ok) << "not RFC 4180 CSV:\n" << r.out;
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ((std::vector<std::string>{"position", "stream", "revision",
                                      "event_id", "type", "recorded_at",
                                      "actor", "idempotency_key", "payload"}),
            rows[0]);
  std::vector<json::value> all = PagedAdminEvents(server_->port());
  ASSERT_EQ(all.size() + 1, rows.size());
  for (size_t i = 0; i < all.size(); ++i) {
    const std::vector<std::string>& row = rows[i + 1];
    const json::value& e = all[i];
    ASSERT_EQ(9u, row.size()) << "row " << i + 1;
    EXPECT_EQ(std::to_string(Position(e)), row[0]);
    EXPECT_EQ(Str(e, "stream"), row[1]);
    EXPECT_EQ(std::to_string(e.at("revision").to_number<uint64_t>()), row[2]);
    EXPECT_EQ(Str(e, "event_id"), row[3]);
    EXPECT_EQ(Str(e, "type"), row[4]);
    EXPECT_EQ(Str(e, "recorded_at"), row[5]);
    EXPECT_EQ(Str(e, "actor"), row[6]);
    EXPECT_EQ(
        e.at("idempotency_key").is_null() ? "" : Str(e, "idempotency_key"),
        row[7]);
    boost::system::error_code ec;
    json::value payload = json::parse(row[8], ec);
    ASSERT_FALSE(ec) << "payload is not JSON: " << row[8];
    EXPECT_EQ(e.at("payload"), payload) << "row " << i + 1;
  }
}

TEST_F(EventsExportTest, CsvKeepsContentWithCommasQuotesAndNewlinesIntact) {
  CommandResult r = Export({"--format", "csv", "--type", "MessageAppended"});
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  bool ok = false;
  std::vector<std::vector<std::string>> rows = ParseCsv(r.out, &ok);
  ASSERT_TRUE(ok) << r.out;
  std::set<std::string> contents;
  for (size_t i = 1; i < rows.size(); ++i) {
    ASSERT_EQ(9u, rows[i].size());
    contents.insert(Str(json::parse(rows[i][8]), "content"));
  }
  EXPECT_EQ(1u, contents.count("a, \"quoted\"\nline"));
  EXPECT_EQ(1u, contents.count("grüße 🙂"));
}

TEST_F(EventsExportTest, OutWritesTheSameBytesToTheFileAndNothingToStdout) {
  CommandResult to_stdout = Export();
  ASSERT_EQ(0, to_stdout.exit_code) << Describe(to_stdout);
  const std::string file = (tmp_.path() / "events.jsonl").string();
  CommandResult to_file = Export({"--out", file});
  ASSERT_EQ(0, to_file.exit_code) << Describe(to_file);
  EXPECT_EQ("", to_file.out);
  EXPECT_EQ(to_stdout.out, ReadFileText(file));
}

TEST_F(EventsExportTest, OutWithCsvWritesCsvToTheFile) {
  const std::string file = (tmp_.path() / "events.csv").string();
  CommandResult r = Export({"--format", "csv", "--out", file});
  ASSERT_EQ(0, r.exit_code) << Describe(r);
  EXPECT_EQ(Export({"--format", "csv"}).out, ReadFileText(file));
}

TEST_F(EventsExportTest, OutIntoAMissingDirectoryFailsWithAMessage) {
  const std::string file = (tmp_.path() / "no" / "such" / "dir.jsonl").string();
  CommandResult r = Export({"--out", file});
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_NE(std::string::npos, r.err.find(file)) << Describe(r);
  EXPECT_FALSE(fs::exists(file));
}

TEST_F(EventsExportTest,
       FollowPrintsEventsWrittenAfterItStartedAndExitsZeroOnSigint) {
  const size_t before = PagedAdminEvents(server_->port()).size();
  ProcessHandle follow(
      {"events", "export", "--data-dir", data_dir_, "--follow"});
  auto lines = [&] {
    std::string out = follow.out();
    return static_cast<size_t>(std::count(out.begin(), out.end(), '\n'));
  };
  ASSERT_TRUE(WaitUntil([&] { return lines() >= before; }, 20000))
      << "the existing events did not appear; stdout:\n"
      << follow.out() << "\nstderr:\n"
      << follow.err();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(Append(
        conversations_[1],
        R"({"role":"user","content":"live )" + std::to_string(i) + R"("})"));
  }
  ASSERT_TRUE(WaitUntil([&] { return lines() >= before + 3; }, 20000))
      << "new events did not appear; stdout:\n"
      << follow.out() << "\nstderr:\n"
      << follow.err();
  EXPECT_TRUE(follow.running()) << "--follow must keep tailing";

  follow.Signal(SIGINT);
  std::optional<int> code = follow.Wait(10000);
  ASSERT_TRUE(code.has_value()) << "--follow did not stop on SIGINT";
  EXPECT_EQ(0, *code) << follow.err();

  std::vector<json::value> out = ParseLines(follow.out());
  ASSERT_EQ(before + 3, out.size()) << follow.out();
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(i + 1, Position(out[i]));
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(ids[i], Str(out[before + i].at("payload"), "id"));
  }
  EXPECT_EQ(PagedAdminEvents(server_->port()), out);
}

TEST_F(EventsExportTest, FollowWithFiltersPrintsOnlyMatchingNewEvents) {
  const std::string stream = "messages-" + conversations_[1];
  ProcessHandle follow({"events", "export", "--data-dir", data_dir_, "--follow",
                        "--stream", stream, "--type", "MessageAppended"});
  auto lines = [&] {
    std::string out = follow.out();
    return static_cast<size_t>(std::count(out.begin(), out.end(), '\n'));
  };
  // The system message and one appended message so far.
  ASSERT_TRUE(WaitUntil([&] { return lines() >= 2; }, 20000)) << follow.err();
  Append(conversations_[0], R"({"role":"user","content":"elsewhere"})");
  std::string mine =
      Append(conversations_[1], R"({"role":"user","content":"m"})");
  // Events come in position order: once `mine` shows, the other write has
  // been passed over.
  ASSERT_TRUE(WaitUntil([&] { return lines() >= 3; }, 20000)) << follow.err();
  follow.Signal(SIGINT);
  std::optional<int> code = follow.Wait(10000);
  ASSERT_TRUE(code.has_value()) << "--follow did not stop on SIGINT";
  EXPECT_EQ(0, *code) << follow.err();
  std::vector<json::value> out = ParseLines(follow.out());
  ASSERT_EQ(3u, out.size()) << follow.out();
  for (const json::value& e : out) {
    EXPECT_EQ(stream, Str(e, "stream"));
    EXPECT_EQ("MessageAppended", Str(e, "type"));
  }
  EXPECT_EQ(mine, Str(out.back().at("payload"), "id"));
}

TEST_F(EventsExportTest, FollowKeepsTailingThroughAnOnlineRebuild) {
  const size_t before = PagedAdminEvents(server_->port()).size();
  ProcessHandle follow(
      {"events", "export", "--data-dir", data_dir_, "--follow"});
  auto lines = [&] {
    std::string out = follow.out();
    return static_cast<size_t>(std::count(out.begin(), out.end(), '\n'));
  };
  ASSERT_TRUE(WaitUntil([&] { return lines() >= before; }, 20000))
      << follow.err();

  // The server builds a new read-model generation (new column families) and
  // drops the old one while the export tails the log.
  HttpClient admin = server_->Client();
  ASSERT_EQ(202u,
            admin.Post("/v1/admin/projections/rebuild", kAdmin, "").status);
  ASSERT_TRUE(WaitUntil(
      [&] {
        HttpResponse r = admin.Get("/v1/admin/projections", kAdmin);
        return r.status == 200 &&
               Str(r.json().at("rebuild"), "state") != "building";
      },
      60000));
  std::string id =
      Append(conversations_[1], R"({"role":"user","content":"after"})");
  ASSERT_TRUE(WaitUntil(
      [&] { return lines() >= before + 1 || !follow.running(); }, 20000))
      << follow.err();
  EXPECT_TRUE(follow.running()) << "the export stopped: " << follow.err();
  follow.Signal(SIGINT);
  std::optional<int> code = follow.Wait(10000);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(0, *code) << follow.err();
  std::vector<json::value> out = ParseLines(follow.out());
  ASSERT_EQ(before + 1, out.size()) << follow.out() << follow.err();
  EXPECT_EQ(id, Str(out.back().at("payload"), "id"));
}

TEST_F(EventsExportTest, FollowAlsoStopsCleanlyOnSigterm) {
  ProcessHandle follow(
      {"events", "export", "--data-dir", data_dir_, "--follow"});
  ASSERT_TRUE(WaitUntil([&] { return !follow.out().empty(); }, 20000))
      << follow.err();
  follow.Signal(SIGTERM);
  std::optional<int> code = follow.Wait(10000);
  ASSERT_TRUE(code.has_value()) << "--follow did not stop on SIGTERM";
  EXPECT_EQ(0, *code) << follow.err();
}

// ------------------------------------------------------------ errors

TEST_F(EventsExportTest, MissingDataDirFailsWithAMessageNamingIt) {
  const std::string missing = (tmp_.path() / "nope").string();
  CommandResult r = RunConvstore({"events", "export", "--data-dir", missing});
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_EQ("", r.out);
  EXPECT_NE(std::string::npos, r.err.find(missing)) << Describe(r);
  EXPECT_FALSE(fs::exists(missing)) << "the export must not create a store";
}

TEST_F(EventsExportTest, ToBeforeFromFailsWithAMessage) {
  CommandResult r = Export({"--from", "5", "--to", "2"});
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_EQ("", r.out);
  EXPECT_NE(std::string::npos, r.err.find("--to")) << Describe(r);
  EXPECT_NE(std::string::npos, r.err.find("--from")) << Describe(r);
}

TEST_F(EventsExportTest, FromZeroIsNotAPosition) {
  CommandResult r = Export({"--from", "0"});
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_EQ("", r.out);
  EXPECT_NE(std::string::npos, r.err.find("--from")) << Describe(r);
}

// The issue asks for a clear message on a bad position: it should say what a
// position is (an integer from 1), not only that a value is out of range.
TEST_F(EventsExportTest, FromZeroMessageSaysPositionsStartAtOne) {
  CommandResult r = Export({"--from", "0"});
  EXPECT_NE(0, r.exit_code) << Describe(r);
  static const std::regex kClear(R"(position|positive|>= ?1|at least 1)");
  EXPECT_TRUE(std::regex_search(r.err, kClear)) << Describe(r);
}

TEST_F(EventsExportTest, NonNumericPositionsAreRejected) {
  for (std::vector<std::string> bad :
       {std::vector<std::string>{"--from", "abc"},
        std::vector<std::string>{"--to", "-3"},
        std::vector<std::string>{"--to", "0"}}) {
    CommandResult r = Export(bad);
    EXPECT_NE(0, r.exit_code) << bad[0] << " " << bad[1] << ": " << Describe(r);
    EXPECT_EQ("", r.out) << bad[0] << " " << bad[1];
  }
}

TEST_F(EventsExportTest, UnknownFormatIsRejected) {
  CommandResult r = Export({"--format", "xml"});
  EXPECT_NE(0, r.exit_code) << Describe(r);
  EXPECT_EQ("", r.out);
  EXPECT_NE(std::string::npos, r.err.find("--format")) << Describe(r);
}

TEST_F(EventsExportTest, HelpDescribesTheFlags) {
  CommandResult r = RunConvstore({"events", "export", "--help"});
  EXPECT_EQ(0, r.exit_code) << Describe(r);
  for (const char* flag : {"--from", "--to", "--stream", "--type", "--format",
                           "--out", "--follow", "--data-dir"}) {
    EXPECT_NE(std::string::npos, r.out.find(flag)) << flag << "\n" << r.out;
  }
}

}  // namespace
}  // namespace convstore::testing
