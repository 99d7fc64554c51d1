// FaultyFileSystem: a RocksDB FileSystem for tests that passes everything
// through until told otherwise. FailWalSyncs fails every sync of the
// write-ahead log (what an fsync error on a dying disk looks like to
// RocksDB); HoldWalSyncs makes every sync wait until released (a disk that
// stalls), at most 20 s. Thread-safe: the switches are atomics and a
// condition variable.
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
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
};

// An Env over a FaultyFileSystem, for EventLogOptions::env / AppConfig::env.
inline std::shared_ptr<rocksdb::Env> EnvOver(
    const std::shared_ptr<FaultyFileSystem>& fs) {
  return std::shared_ptr<rocksdb::Env>(rocksdb::NewCompositeEnv(fs).release());
}

}  // namespace convstore::testing
