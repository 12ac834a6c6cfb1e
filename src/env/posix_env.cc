// Env::Posix(): the real files and clocks. Every descriptor is O_CLOEXEC so that a child process
// (the CLI runs some) never inherits a data file or, worse, the store's lock.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>

#include "env/env.h"
#include "env/fd_file.h"

namespace cairn::env {
namespace {

using internal::ErrnoStatus;

int64_t ClockNanos(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int OpenRetry(const char* path, int flags, mode_t mode) {
  int fd;
  do {
    fd = open(path, flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// Closing the descriptor releases the flock. The file itself stays: removing it would race with
// a process that has just opened it to lock.
class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(int fd) : fd_(fd) {}
  ~PosixFileLock() override { close(fd_); }

 private:
  int fd_;
};

class PosixEnv final : public Env {
 public:
  bool IsNativeFileSystem() const override { return true; }
  Result<std::unique_ptr<File>> OpenFile(const std::string& path, OpenMode mode) override {
    int flags = O_RDWR;
    switch (mode) {
      case OpenMode::kRead:
        flags = O_RDONLY;
        break;
      case OpenMode::kReadWrite:
        break;
      case OpenMode::kCreate:
        flags |= O_CREAT;
        break;
      case OpenMode::kCreateNew:
        flags |= O_CREAT | O_EXCL;
        break;
    }
    int fd = OpenRetry(path.c_str(), flags, 0644);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    struct stat st;
    int err = fstat(fd, &st) != 0 ? errno : (S_ISDIR(st.st_mode) ? EISDIR : 0);
    if (err != 0) {
      close(fd);
      return ErrnoStatus("open", path, err);
    }
    return internal::NewFdFile(fd, path, internal::FdFileOptions{});
  }

  bool FileExists(const std::string& path) override { return access(path.c_str(), F_OK) == 0; }

  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    DIR* dir = opendir(path.c_str());
    if (dir == nullptr) return ErrnoStatus("opendir", path, errno);
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* e = readdir(dir)) {
      std::string_view name = e->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
    }
    int err = errno;
    closedir(dir);
    if (err != 0) return ErrnoStatus("readdir", path, err);
    return names;
  }

  Status CreateDir(const std::string& path) override {
    std::string normal = internal::NormalizePath(path);
    // Create each prefix in turn; EEXIST is fine (another thread or process may race us).
    for (size_t i = 1; i <= normal.size(); ++i) {
      if (i != normal.size() && normal[i] != '/') continue;
      std::string prefix = normal.substr(0, i);
      if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoStatus("mkdir", prefix, errno);
    }
    struct stat st;
    if (stat(normal.c_str(), &st) != 0) return ErrnoStatus("stat", normal, errno);
    if (!S_ISDIR(st.st_mode)) return ErrnoStatus("mkdir", normal, ENOTDIR);
    return Status::Ok();
  }

  Status SyncDir(const std::string& path) override {
    int fd = OpenRetry(path.c_str(), O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) return ErrnoStatus("open directory", path, errno);
    Status s;
    if (fsync(fd) != 0) s = ErrnoStatus("fsync directory", path, errno);
    close(fd);
    return s;
  }

  Status RemoveFile(const std::string& path) override {
    if (unlink(path.c_str()) != 0) return ErrnoStatus("unlink", path, errno);
    return Status::Ok();
  }

  Status RenameFile(const std::string& from, const std::string& to) override {
    if (rename(from.c_str(), to.c_str()) != 0) return ErrnoStatus("rename " + from + " to", to, errno);
    return Status::Ok();
  }

  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override {
    int fd = OpenRetry(path.c_str(), O_RDWR | O_CREAT, 0644);
    if (fd < 0) return ErrnoStatus("open lock file", path, errno);
    int rc;
    do {
      rc = flock(fd, LOCK_EX | LOCK_NB);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      int err = errno;
      if (err != EWOULDBLOCK) {
        close(fd);
        return ErrnoStatus("flock", path, err);
      }
      char buf[32] = {};
      ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
      close(fd);
      long pid = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
      std::string holder = pid > 0 ? "process " + std::to_string(pid) : "another process (pid unknown)";
      return Status::Unavailable("lock " + path + ": the data directory is in use by " + holder,
                                 ErrorDetail::kStoreLocked);
    }
    // We hold the lock: record our pid for the message a later contender gets.
    std::string pid = std::to_string(getpid()) + "\n";
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      int err = errno;
      close(fd);
      return ErrnoStatus("write pid to lock file", path, err);
    }
    return std::unique_ptr<FileLock>(std::make_unique<PosixFileLock>(fd));
  }

  int64_t NowNanos() override { return ClockNanos(CLOCK_REALTIME); }
  int64_t MonotonicNanos() override { return ClockNanos(CLOCK_MONOTONIC); }
};

}  // namespace

Env* Env::Posix() {
  // Never destroyed: other static destructors may still use it at exit.
  static Env* const env = new PosixEnv();
  return env;
}

}  // namespace cairn::env
