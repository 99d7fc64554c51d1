// FaultyFileSystem: a RocksDB FileSystem for tests that passes everything
// through until told to fail, then fails every sync of the write-ahead log
// (what an fsync error on a dying disk looks like to RocksDB).
// Thread-safe: the switch is an atomic.
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <memory>
#include <string>

namespace convstore::testing {

class FaultyFileSystem : public rocksdb::FileSystemWrapper {
 public:
  FaultyFileSystem() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "FaultyFileSystem"; }

  void FailWalSyncs(bool fail) { fail_wal_syncs_ = fail; }
  uint64_t failed_syncs() const { return failed_syncs_; }

  rocksdb::IOStatus NewWritableFile(const std::string& name,
                                    const rocksdb::FileOptions& options,
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
      if (fs_->fail_wal_syncs_) return Fail();
      return FSWritableFileOwnerWrapper::Sync(o, d);
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o,
                            rocksdb::IODebugContext* d) override {
      if (fs_->fail_wal_syncs_) return Fail();
      return FSWritableFileOwnerWrapper::Fsync(o, d);
    }

   private:
    rocksdb::IOStatus Fail() {
      ++fs_->failed_syncs_;
      return rocksdb::IOStatus::IOError("injected fsync failure");
    }
    FaultyFileSystem* fs_;
  };

  std::atomic<bool> fail_wal_syncs_{false};
  std::atomic<uint64_t> failed_syncs_{0};
};

// An Env over a FaultyFileSystem, for EventLogOptions::env / AppConfig::env.
inline std::shared_ptr<rocksdb::Env> EnvOver(
    const std::shared_ptr<FaultyFileSystem>& fs) {
  return std::shared_ptr<rocksdb::Env>(rocksdb::NewCompositeEnv(fs).release());
}

}  // namespace convstore::testing
