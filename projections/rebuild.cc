#include "projections/rebuild.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace convstore {
namespace {

constexpr char kActivePrefixKey[] = "read_models_prefix";

// Generation n >= 2 is "rm<n>_"; generation 1 is the default "rm_".
uint64_t GenerationOf(std::string_view prefix) {
  if (prefix == kDefaultReadModelsPrefix) return 1;
  std::string_view digits = prefix.substr(2, prefix.size() - 3);
  uint64_t n = 0;
  for (char c : digits) n = n * 10 + static_cast<uint64_t>(c - '0');
  return n;
}

std::string PrefixOf(uint64_t generation) {
  if (generation <= 1) return std::string(kDefaultReadModelsPrefix);
  return "rm" + std::to_string(generation) + "_";
}

// The generation prefix of a read-model column family name, if it is one.
std::optional<std::string> ReadModelsPrefixOf(std::string_view name) {
  auto split = ReadModels::SplitColumnFamilyName(name);
  if (!split) return std::nullopt;
  return std::string(split->first);
}

// Printable form of a binary key: bytes outside ASCII graphics as \xNN.
std::string Printable(std::string_view bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// How two values of one key differ: their sizes and the first byte that
// differs, not the bytes themselves. A row can hold message text and other
// personal data, which an operator's terminal or a CI log need not get; the
// key and the offset are enough to find the row and read it deliberately.
std::string DescribeDifference(std::string_view live,
                               std::string_view rebuilt) {
  const size_t common = std::min(live.size(), rebuilt.size());
  const size_t first =
      std::mismatch(live.begin(), live.begin() + common, rebuilt.begin())
          .first -
      live.begin();
  return "live " + std::to_string(live.size()) + " bytes, rebuilt " +
         std::to_string(rebuilt.size()) + " bytes, first difference at byte " +
         std::to_string(first);
}

}  // namespace

Status CreateGeneration(EventLog& log, std::string_view prefix) {
  return log.CreateColumnFamilies(ReadModels::ColumnFamilies(prefix));
}

Status DropGeneration(EventLog& log, std::string_view prefix) {
  return log.DropColumnFamilies(ReadModels::ColumnFamilies(prefix));
}

std::string NextGenerationPrefix(std::string_view prefix) {
  return PrefixOf(GenerationOf(prefix) + 1);
}

void SetActiveReadModelsPrefix(LogBatch& batch, std::string_view prefix) {
  batch.Put(batch.log()->cf(rocksdb::kDefaultColumnFamilyName),
            kActivePrefixKey, prefix);
}

Result<std::string> ActiveReadModelsPrefix(const EventLog& log) {
  std::string value;
  rocksdb::Status s = log.db()->Get(rocksdb::ReadOptions(),
                                    log.cf(rocksdb::kDefaultColumnFamilyName),
                                    kActivePrefixKey, &value);
  if (s.IsNotFound()) return std::string(kDefaultReadModelsPrefix);
  if (!s.ok()) return FromRocksStatus(s, "read the read-models generation");
  if (!ReadModelsPrefixOf(value + "meta")) {
    return Status::Corruption("bad read-models prefix '" + value + "'");
  }
  return value;
}

Result<std::shared_ptr<ReadModels>> OpenActiveReadModels(EventLog& log) {
  std::string prefix;
  CONVSTORE_ASSIGN_OR_RETURN(prefix, ActiveReadModelsPrefix(log));
  CONVSTORE_RETURN_IF_ERROR(CreateGeneration(log, prefix));
  auto read_models = std::make_shared<ReadModels>(&log, prefix);
  std::optional<uint8_t> format;
  CONVSTORE_ASSIGN_OR_RETURN(format, read_models->Format());
  if (!format || *format == kReadModelsFormat) return read_models;
  // Written by another version of convstore: the log is the truth, so the
  // read models are built again from it before anything reads them.
  read_models.reset();
  spdlog::warn(
      "read models are in format {}, this build uses format {}: rebuilding "
      "them from the log ({} events)",
      *format, kReadModelsFormat, log.head());
  RebuildReport report;
  CONVSTORE_ASSIGN_OR_RETURN(report, RebuildReadModels(log));
  spdlog::info("read models rebuilt: {} events in {:.1f} s", report.events,
               report.seconds);
  return std::make_shared<ReadModels>(&log, report.new_prefix);
}

Status DropStaleGenerations(EventLog& log) {
  std::string active;
  CONVSTORE_ASSIGN_OR_RETURN(active, ActiveReadModelsPrefix(log));
  std::vector<std::string> stale;
  for (const std::string& name : log.ColumnFamilyNames()) {
    std::optional<std::string> prefix = ReadModelsPrefixOf(name);
    if (prefix && *prefix != active) stale.push_back(name);
  }
  return log.DropColumnFamilies(stale);
}

Result<RebuildReport> RebuildReadModels(EventLog& log) {
  auto start = std::chrono::steady_clock::now();
  RebuildReport report;
  CONVSTORE_ASSIGN_OR_RETURN(report.old_prefix, ActiveReadModelsPrefix(log));
  report.new_prefix = NextGenerationPrefix(report.old_prefix);
  // Leftovers of an earlier, interrupted rebuild are not trusted.
  CONVSTORE_RETURN_IF_ERROR(DropGeneration(log, report.new_prefix));
  CONVSTORE_RETURN_IF_ERROR(CreateGeneration(log, report.new_prefix));
  {
    ReadModels next(&log, report.new_prefix);
    CONVSTORE_RETURN_IF_ERROR(next.BuildFrom(log, log.head()));
  }
  report.events = log.head();
  // The switch: one synced write. Before it the old generation is in use,
  // after it the new one.
  LogBatch flip(&log);
  SetActiveReadModelsPrefix(flip, report.new_prefix);
  CONVSTORE_RETURN_IF_ERROR(flip.Commit());
  CONVSTORE_RETURN_IF_ERROR(DropGeneration(log, report.old_prefix));
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return report;
}

Result<VerifyReport> VerifyReadModels(EventLog& log,
                                      const std::string& scratch_dir,
                                      size_t max_differences) {
  VerifyReport report;
  std::string prefix;
  CONVSTORE_ASSIGN_OR_RETURN(prefix, ActiveReadModelsPrefix(log));
  for (const std::string& name : ReadModels::ColumnFamilies(prefix)) {
    if (log.cf(name) == nullptr) {
      return Status::NotFound("the live read models are missing " + name);
    }
  }
  ReadModels live(&log, prefix);
  std::optional<uint8_t> format;
  CONVSTORE_ASSIGN_OR_RETURN(format, live.Format());
  if (format && *format != kReadModelsFormat) {
    return Status::Unavailable(
        "the read models are in format " + std::to_string(*format) +
        " and this build uses format " + std::to_string(kReadModelsFormat) +
        "; starting the server or `convstore projections rebuild` rebuilds "
        "them");
  }
  CONVSTORE_ASSIGN_OR_RETURN(report.checkpoint, live.Checkpoint());
  report.head = log.head();

  EventLogOptions scratch_options;
  scratch_options.extra_column_families = ReadModels::ColumnFamilies();
  scratch_options.tune_column_family = ReadModels::TuneColumnFamily;
  std::unique_ptr<EventLog> scratch;
  CONVSTORE_ASSIGN_OR_RETURN(scratch,
                             EventLog::Open(scratch_dir, scratch_options));
  ReadModels rebuilt(scratch.get());
  CONVSTORE_RETURN_IF_ERROR(rebuilt.BuildFrom(log, report.checkpoint));

  const std::vector<std::string> live_cfs = ReadModels::ColumnFamilies(prefix);
  const std::vector<std::string> rebuilt_cfs = ReadModels::ColumnFamilies();
  auto note = [&](std::string line) {
    if (report.differences.size() < max_differences) {
      report.differences.push_back(std::move(line));
    }
  };
  size_t total_differences = 0;
  for (size_t i = 0; i < live_cfs.size(); ++i) {
    std::string table = rebuilt_cfs[i].substr(kDefaultReadModelsPrefix.size());
    const rocksdb::ReadOptions whole_table = WholeTableReadOptions();
    std::unique_ptr<rocksdb::Iterator> a(
        log.db()->NewIterator(whole_table, log.cf(live_cfs[i])));
    std::unique_ptr<rocksdb::Iterator> b(
        scratch->db()->NewIterator(whole_table, scratch->cf(rebuilt_cfs[i])));
    a->SeekToFirst();
    b->SeekToFirst();
    while (a->Valid() || b->Valid()) {
      ++report.keys_compared;
      int order = !a->Valid()   ? 1
                  : !b->Valid() ? -1
                                : a->key().compare(b->key());
      if (order < 0) {
        ++total_differences;
        note(table + ": key " + Printable(a->key().ToStringView()) +
             " is live but not in a rebuild");
        a->Next();
      } else if (order > 0) {
        ++total_differences;
        note(table + ": key " + Printable(b->key().ToStringView()) +
             " is missing from the live read model");
        b->Next();
      } else {
        if (a->value() != b->value()) {
          ++total_differences;
          note(table + ": key " + Printable(a->key().ToStringView()) +
               " differs: " +
               DescribeDifference(a->value().ToStringView(),
                                  b->value().ToStringView()));
        }
        a->Next();
        b->Next();
      }
    }
    CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(a->status(), "read live"));
    CONVSTORE_RETURN_IF_ERROR(FromRocksStatus(b->status(), "read rebuild"));
  }
  if (total_differences > report.differences.size()) {
    report.differences.push_back(
        "... and " +
        std::to_string(total_differences - report.differences.size()) +
        " more differences");
  }
  return report;
}

}  // namespace convstore
