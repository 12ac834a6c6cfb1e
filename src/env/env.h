// Env: the only code in cairn that touches the operating system's files and clocks.
//
// Three implementations: PosixEnv (the real one), MemEnv (files in memory, for "memory:" stores
// and tests) and FaultInjectionEnv (wraps another Env; for tests: it remembers what was synced,
// can "crash" by dropping or tearing unsynced writes, and can fail the Nth operation).
//
// Paths are plain strings joined with '/'. All methods are thread-safe. A File may be used from
// several threads (reads concurrent with the single writer); Write/Sync/Truncate of one file are
// called by one thread at a time.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/status.h"

namespace cairn::env {

class File {
 public:
  virtual ~File() = default;

  // Writes all of `data` at `offset` (like pwrite, retried until complete).
  virtual Status Write(uint64_t offset, std::span<const std::byte> data) = 0;
  // Writes `data` at `offset` and `then` right after it, in one system call where the file
  // allows (pwritev): a log group's records and the zeros that fill its last page. The default
  // is two Writes.
  virtual Status WriteThen(uint64_t offset, std::span<const std::byte> data, std::span<const std::byte> then) {
    CAIRN_RETURN_IF_ERROR(Write(offset, data));
    return Write(offset + data.size(), then);
  }
  // Reads up to n bytes at offset; *read is less than n only at end of file.
  virtual Status Read(uint64_t offset, size_t n, std::byte* dst, size_t* read) const = 0;
  // Makes every completed Write durable (fdatasync). After an error the file's durable state is
  // unknown: callers must treat it as fatal (fail-stop), never retry and carry on.
  virtual Status Sync() = 0;
  // Reserves disk space so that writes below `size` cannot fail for lack of space and need no
  // size change (fallocate with KEEP_SIZE semantics is not used: the size becomes `size`, and
  // the new bytes read as zeros).
  virtual Status Allocate(uint64_t size) = 0;
  virtual Status Truncate(uint64_t size) = 0;
  virtual Result<uint64_t> Size() const = 0;

  // Writes zeros over [offset, offset + length), bytes that hold no data (no Write has put
  // anything there, and none runs there meanwhile), and makes that durable, without going
  // through the page cache where the file system allows. After Allocate, a file system such as
  // ext4 keeps the space as unwritten extents and records each block as written when a Write
  // first lands in it, so that Write's Sync persists a metadata change besides the data; once
  // prepared, the blocks are written already and that Sync persists data alone (a log's group
  // commit syncs about half as long). offset and length are multiples of 4096. The bytes'
  // content is unchanged (zeros either way), so it is safe to lose on a crash. kNotSupported
  // where it does not apply (memory files, a file system without O_DIRECT): the caller stops
  // asking. May run on another thread while Write and Sync run (on other bytes).
  virtual Status PrepareAhead(uint64_t offset, uint64_t length) {
    (void)offset;
    (void)length;
    return Status::NotSupported("PrepareAhead");
  }

  // Maps the first `length` bytes of the file read-only and shared: later writes below `length`
  // become visible through the mapping. The file must already be at least `length` bytes long.
  // The pointer stays valid until the File is destroyed. Map may be called once per File.
  virtual Result<const std::byte*> Map(uint64_t length) = 0;
};

enum class OpenMode : uint8_t {
  kRead,          // must exist; read-only
  kReadWrite,     // must exist
  kCreate,        // create if missing, else open read-write
  kCreateNew,     // must not exist
};

// Held while a data directory is in use; released when destroyed (or when the process dies).
class FileLock {
 public:
  virtual ~FileLock() = default;
};

class Env {
 public:
  virtual ~Env() = default;

  virtual Result<std::unique_ptr<File>> OpenFile(const std::string& path, OpenMode mode) = 0;
  virtual bool FileExists(const std::string& path) = 0;
  // Names (not paths) of the entries of a directory, in no particular order.
  virtual Result<std::vector<std::string>> ListDir(const std::string& path) = 0;
  // Creates the directory and its missing parents; OK if it exists.
  virtual Status CreateDir(const std::string& path) = 0;
  // fsync of a directory: makes created, renamed and removed entries durable.
  virtual Status SyncDir(const std::string& path) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  // An exclusive, non-blocking lock on `path` (created if missing). kUnavailable with
  // kStoreLocked if another holder has it; the message names the holder's pid when known.
  virtual Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) = 0;

  // Wall-clock time in nanoseconds since the Unix epoch (recorded_at of events).
  virtual int64_t NowNanos() = 0;
  // A monotonic clock in nanoseconds (timeouts, intervals).
  virtual int64_t MonotonicNanos() = 0;

  // True when paths name files of the real file system, so that a library doing its own I/O
  // (LMDB, for the index) may open them. An Env in memory returns false.
  virtual bool IsNativeFileSystem() const { return false; }

  // The process-wide real environment.
  static Env* Posix();
};

// Tells the OS that this process will not read the mapped pages [p, p+n) soon: they leave the
// process's resident set (a file's pages stay in the page cache). Reading them again is correct,
// only slower. Used after recovery has scanned a segment.
void DropMappedPages(const std::byte* p, size_t n);

// Files and directories in memory. Locks are per MemEnv object. Clock: the real one unless set.
std::unique_ptr<Env> NewMemEnv();

// Forwards every call to a base Env; subclass it to override a few.
class EnvWrapper : public Env {
 public:
  explicit EnvWrapper(Env* base) : base_(base) {}
  Env* base() const { return base_; }
  Result<std::unique_ptr<File>> OpenFile(const std::string& p, OpenMode m) override { return base_->OpenFile(p, m); }
  bool FileExists(const std::string& p) override { return base_->FileExists(p); }
  Result<std::vector<std::string>> ListDir(const std::string& p) override { return base_->ListDir(p); }
  Status CreateDir(const std::string& p) override { return base_->CreateDir(p); }
  Status SyncDir(const std::string& p) override { return base_->SyncDir(p); }
  Status RemoveFile(const std::string& p) override { return base_->RemoveFile(p); }
  Status RenameFile(const std::string& f, const std::string& t) override { return base_->RenameFile(f, t); }
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& p) override { return base_->LockFile(p); }
  int64_t NowNanos() override { return base_->NowNanos(); }
  int64_t MonotonicNanos() override { return base_->MonotonicNanos(); }
  bool IsNativeFileSystem() const override { return base_->IsNativeFileSystem(); }

 private:
  Env* base_;
};

// An Env whose wall clock the test sets (temporal queries). Everything else goes to the base.
class ManualClockEnv : public EnvWrapper {
 public:
  explicit ManualClockEnv(Env* base, int64_t start_nanos) : EnvWrapper(base), now_(start_nanos) {}
  int64_t NowNanos() override { return now_.load(); }
  void SetNowNanos(int64_t n) { now_.store(n); }
  void AdvanceNanos(int64_t d) { now_.fetch_add(d); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace cairn::env
