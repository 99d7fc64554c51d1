// FaultyFileSystem: a RocksDB FileSystem for tests that passes everything
// through until told otherwise. FailWalSyncs fails every sync of the
// write-ahead log (what an fsync error on a dying disk looks like to
// RocksDB); HoldWalSyncs makes every sync wait until released (a disk that
// stalls), at most 20 s. OnListingWhileReadingManifest runs a step at the
// moment a secondary's open has read the MANIFEST and looks for WAL files.
// Thread-safe: the switches are atomics and a condition variable.
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace convstore::testing {

class FaultyFileSystem : public rocksdb::FileSystemWrapper {
 public:
  FaultyFileSystem() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "FaultyFileSystem"; }

  void FailWalSyncs(bool fail) { fail_wal_syncs_ = fail; }
  // Lets the next `passing` syncs through, then fails every later one.
  void FailWalSyncsAfter(int passing) {
    syncs_left_ = passing;
    counting_ = true;
  }
  uint64_t failed_syncs() const { return failed_syncs_; }

  void HoldWalSyncs(bool hold) {
    {
      std::lock_guard<std::mutex> lock(hold_mu_);
      hold_wal_syncs_ = hold;
    }
    hold_cv_.notify_all();
  }
  // Syncs waiting in HoldWalSyncs right now.
  int held_syncs() const { return held_syncs_; }

  // Runs `step` once, at the first directory listing made while a MANIFEST
  // is open for reading: in a secondary's open, after it read the MANIFEST
  // and before it lists the WAL files to replay. Set it before the open.
  void OnListingWhileReadingManifest(std::function<void()> step) {
    listing_step_ = std::move(step);
  }
  bool listing_step_ran() const { return listing_step_ran_; }

  rocksdb::IOStatus NewSequentialFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSSequentialFile>* file,
      rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewSequentialFile(name, options, file, dbg);
    if (s.ok() && name.find("MANIFEST-") != std::string::npos) {
      *file = std::make_unique<ManifestReader>(std::move(*file), this);
    }
    return s;
  }

  rocksdb::IOStatus GetChildren(const std::string& dir,
                                const rocksdb::IOOptions& options,
                                std::vector<std::string>* children,
                                rocksdb::IODebugContext* dbg) override {
    if (listing_step_ && open_manifests_ > 0 &&
        !listing_step_ran_.exchange(true)) {
      listing_step_();
    }
    return target()->GetChildren(dir, options, children, dbg);
  }

  rocksdb::IOStatus NewWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* file,
      rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewWritableFile(name, options, file, dbg);
    if (s.ok() && name.size() > 4 && name.substr(name.size() - 4) == ".log") {
      *file = std::make_unique<WalFile>(std::move(*file), this);
    }
    return s;
  }

 private:
  class ManifestReader : public rocksdb::FSSequentialFileOwnerWrapper {
   public:
    ManifestReader(std::unique_ptr<rocksdb::FSSequentialFile> file,
                   FaultyFileSystem* fs)
        : FSSequentialFileOwnerWrapper(std::move(file)), fs_(fs) {
      ++fs_->open_manifests_;
    }
    ~ManifestReader() override { --fs_->open_manifests_; }

   private:
    FaultyFileSystem* fs_;
  };

  class WalFile : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    WalFile(std::unique_ptr<rocksdb::FSWritableFile> file, FaultyFileSystem* fs)
        : FSWritableFileOwnerWrapper(std::move(file)), fs_(fs) {}
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* d) override {
      fs_->WaitWhileHeld();
      if (fs_->ShouldFail()) return Fail();
      return FSWritableFileOwnerWrapper::Sync(o, d);
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o,
                            rocksdb::IODebugContext* d) override {
      fs_->WaitWhileHeld();
      if (fs_->ShouldFail()) return Fail();
      return FSWritableFileOwnerWrapper::Fsync(o, d);
    }

   private:
    rocksdb::IOStatus Fail() {
      ++fs_->failed_syncs_;
      return rocksdb::IOStatus::IOError("injected fsync failure");
    }
    FaultyFileSystem* fs_;
  };

  bool ShouldFail() {
    if (fail_wal_syncs_) return true;
    if (counting_ && syncs_left_.fetch_sub(1) <= 0) {
      fail_wal_syncs_ = true;
      return true;
    }
    return false;
  }

  void WaitWhileHeld() {
    std::unique_lock<std::mutex> lock(hold_mu_);
    ++held_syncs_;
    hold_cv_.wait_for(lock, std::chrono::seconds(20),
                      [this] { return !hold_wal_syncs_; });
    --held_syncs_;
  }

  std::mutex hold_mu_;
  std::condition_variable hold_cv_;
  bool hold_wal_syncs_ = false;
  std::atomic<int> held_syncs_{0};
  std::atomic<bool> fail_wal_syncs_{false};
  std::atomic<bool> counting_{false};
  std::atomic<int> syncs_left_{0};
  std::atomic<uint64_t> failed_syncs_{0};
  std::function<void()> listing_step_;
  std::atomic<bool> listing_step_ran_{false};
  std::atomic<int> open_manifests_{0};
};

// An Env over a FaultyFileSystem, for EventLogOptions::env / AppConfig::env.
inline std::shared_ptr<rocksdb::Env> EnvOver(
    const std::shared_ptr<FaultyFileSystem>& fs) {
  return std::shared_ptr<rocksdb::Env>(rocksdb::NewCompositeEnv(fs).release());
}

}  // namespace convstore::testing
