// Spec for a full disk: the real server runs on a small tmpfs whose space a
// ballast file has taken. Writes that no longer fit get 507 (or 503 once
// the log refuses writes), never a crash or a false 201; reads keep working.
// Once the ballast is deleted and the server restarted, every acknowledged
// message is there, the log is gapless and the read models equal a rebuild.
// Mounting a tmpfs needs root (CI runs as root); elsewhere the test skips.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <atomic>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "tests/support/api_assertions.h"
#include "tests/support/durability.h"
#include "tests/support/process.h"

namespace convstore::testing {
namespace {

namespace fs = std::filesystem;
const std::string kKey = TestServer::kAdminKey;

// A tmpfs of `megabytes` mounted on `dir` for the life of the object.
class TmpfsMount {
 public:
  TmpfsMount(const fs::path& dir, int megabytes) : dir_(dir) {
    fs::create_directories(dir_);
    const std::string options = "size=" + std::to_string(megabytes) + "m";
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, options.c_str()) == 0) {
      mounted_ = true;
    } else {
      error_ = std::strerror(errno);
    }
  }
  ~TmpfsMount() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

 private:
  fs::path dir_;
  bool mounted_ = false;
  std::string error_;
};

// Writes 256 KiB blocks to `path` until the filesystem refuses one (bounded
// by `max_megabytes`); returns the bytes written.
size_t FillWithBallast(const fs::path& path, int max_megabytes) {
  std::ofstream out(path, std::ios::binary);
  const std::string block(256 << 10, 'b');
  size_t written = 0;
  for (int i = 0; i < max_megabytes * 4; ++i) {
    out.write(block.data(), static_cast<std::streamsize>(block.size()));
    out.flush();
    if (!out) break;
    written += block.size();
  }
  return written;
}

TEST(FullDiskTest, WritesGet507NothingCrashesAndAcknowledgedWritesSurvive) {
  TempDir dir;
  const fs::path disk = dir.path() / "disk";
  TmpfsMount tmpfs(disk, 64);
  if (!tmpfs.mounted()) {
    GTEST_SKIP() << "cannot mount a tmpfs here (" << tmpfs.error()
                 << "); the full-disk test needs root";
  }
  const std::string data = (disk / "data").string();

  auto server = std::make_unique<ServerProcess>(data);
  HttpClient c = server->Client();
  const std::string agent =
      Str(c.Post("/v1/agents", kKey, R"({"name":"disk"})").json(), "id");
  std::vector<std::string> conversations;
  for (int i = 0; i < 4; ++i) {
    conversations.push_back(Str(
        c.Post("/v1/conversations", kKey, R"({"agent_id":")" + agent + R"("})")
            .json(),
        "id"));
  }
  ASSERT_EQ(4u, conversations.size());

  // Leave the server about 2 MiB, then append 8 KiB messages from 8
  // connections until the disk refuses them.
  const fs::path ballast = disk / "ballast";
  FillWithBallast(ballast, 64);
  fs::resize_file(ballast, fs::file_size(ballast) - (2 << 20));

  std::mutex mu;
  AckedMessages acked;
  std::map<unsigned, int> refusals;  // status -> count
  std::atomic<bool> crashed{false};
  {
    std::vector<std::thread> writers;
    for (int w = 0; w < 8; ++w) {
      writers.emplace_back([&, w] {
        HttpClient client(server->port());
        const std::string target =
            "/v1/conversations/" + conversations[w % 4] + "/messages";
        const std::string filler(8 << 10, 'x');
        int refused = 0;
        // Bounded: 2 MiB of space fits a few hundred such messages.
        for (int i = 0; i < 2000 && refused < 20; ++i) {
          HttpResponse r;
          try {
            r = client.Post(target, kKey,
                            R"({"role":"user","content":"w)" +
                                std::to_string(w) + "-" + std::to_string(i) +
                                " " + filler + R"("})");
          } catch (const std::exception&) {
            crashed = true;  // the server went away
            return;
          }
          std::lock_guard<std::mutex> lock(mu);
          if (r.status == 201) {
            acked[Str(r.json(), "id")] = r.body;
          } else {
            ++refusals[r.status];
            ++refused;
            if (r.status == 507 || r.status == 503) {
              EXPECT_TRUE(IsError(r, r.status, "unavailable")) << r.body;
            }
          }
        }
      });
    }
    for (auto& t : writers) t.join();
  }
  ASSERT_FALSE(crashed) << "the server died on a full disk:\n"
                        << server->output();
  ASSERT_TRUE(server->running());
  ASSERT_GT(refusals[507], 0) << "the disk never filled up";
  for (const auto& [status, count] : refusals) {
    EXPECT_TRUE(status == 507 || status == 503)
        << count << " writes answered " << status;
  }
  EXPECT_GT(acked.size(), 0u);

  // Reads keep working; the server says it is not ready for writes.
  EXPECT_EQ(200u, c.Get("/v1/conversations/" + conversations[0], kKey).status);
  EXPECT_EQ(200u, c.Get("/healthz", "").status);
  EXPECT_EQ(503u, c.Get("/readyz", "").status);
  HttpResponse later = c.Post("/v1/agents", kKey, R"({"name":"later"})");
  EXPECT_TRUE(IsError(later, 507, "unavailable")) << later.body;

  // Free the space, restart: everything acknowledged is there, writes work.
  fs::remove(ballast);
  server->Stop();
  server = std::make_unique<ServerProcess>(data);
  HttpClient after = server->Client();
  EXPECT_EQ(acked.size(), ExpectAcknowledgedMessagesPresent(
                              after, kKey, conversations, acked));
  ExpectGaplessLog(after, kKey);
  EXPECT_EQ(201u,
            after
                .Post("/v1/conversations/" + conversations[0] + "/messages",
                      kKey, R"({"role":"user","content":"space again"})")
                .status);
  ASSERT_EQ(0, server->Stop());
  ExpectReadModelsEqualRebuild(data);
  std::cout << "[ full disk ] " << acked.size() << " acknowledged, refusals:";
  for (const auto& [status, count] : refusals)
    std::cout << " " << status << "x" << count;
  std::cout << "\n";
}

}  // namespace
}  // namespace convstore::testing
