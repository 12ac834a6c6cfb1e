// NewMemEnv(): files in memory, for "memory:" stores and tests.
//
// Each file is a memfd (anonymous, RAM-backed). That gives the memory env the same semantics as
// a real file where the engine depends on them, without a second implementation to get wrong:
//   - Map() is a MAP_SHARED mapping of the memfd, so it sees later writes and stays valid while
//     the file grows (a growable heap buffer would move under the mapping).
//   - Allocate() grows with ftruncate, so the untouched part of a 256 MiB segment is a hole that
//     costs no RAM and reads as zeros (fallocate on a memfd would commit every page).
//   - Each open File holds its own dup of the descriptor, so a removed or replaced file stays
//     readable through it, like an unlinked POSIX file.
// The namespace (which path names which memfd, which directories exist) is a map under a mutex.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <set>

#include "env/env.h"
#include "env/fd_file.h"

namespace cairn::env {
namespace {

using internal::BaseName;
using internal::ErrnoStatus;
using internal::NormalizePath;
using internal::ParentDir;

// The env's own descriptor of a file's memfd; open Files hold dups of it.
struct MemNode {
  explicit MemNode(int fd_in) : fd(fd_in) {}
  ~MemNode() { close(fd); }
  MemNode(const MemNode&) = delete;
  MemNode& operator=(const MemNode&) = delete;
  const int fd;
};

struct MemState {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<MemNode>> files;
  std::set<std::string> dirs;   // "" and "/" always exist and are not listed here
  std::set<std::string> locks;  // paths with a live MemFileLock
};

class MemFileLock final : public FileLock {
 public:
  MemFileLock(std::shared_ptr<MemState> state, std::string path)
      : state_(std::move(state)), path_(std::move(path)) {}
  ~MemFileLock() override {
    std::lock_guard lock(state_->mu);
    state_->locks.erase(path_);
  }

 private:
  std::shared_ptr<MemState> state_;  // shared: the lock may outlive the env
  std::string path_;
};

class MemEnv final : public Env {
 public:
  Result<std::unique_ptr<File>> OpenFile(const std::string& path, OpenMode mode) override {
    const std::string p = NormalizePath(path);
    std::lock_guard lock(state_->mu);
    if (IsDir(p)) return ErrnoStatus("open", p, EISDIR);
    auto it = state_->files.find(p);
    std::shared_ptr<MemNode> node;
    if (it == state_->files.end()) {
      if (mode == OpenMode::kRead || mode == OpenMode::kReadWrite) return ErrnoStatus("open", p, ENOENT);
      CAIRN_ASSIGN_OR_RETURN(node, CreateLocked(p));
    } else {
      if (mode == OpenMode::kCreateNew) return ErrnoStatus("open", p, EEXIST);
      node = it->second;
    }
    int fd = fcntl(node->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return ErrnoStatus("dup", p, errno);
    internal::FdFileOptions options;
    options.sync = false;
    options.fallocate = false;
    options.writable = mode != OpenMode::kRead;
    return internal::NewFdFile(fd, p, options);
  }

  bool FileExists(const std::string& path) override {
    const std::string p = NormalizePath(path);
    std::lock_guard lock(state_->mu);
    return IsDir(p) || state_->files.count(p) > 0;
  }

  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    const std::string p = NormalizePath(path);
    std::lock_guard lock(state_->mu);
    if (!IsDir(p)) {
      return ErrnoStatus("opendir", p, state_->files.count(p) > 0 ? ENOTDIR : ENOENT);
    }
    std::vector<std::string> names;
    for (const auto& [name, node] : state_->files) {
      if (ParentDir(name) == p) names.push_back(BaseName(name));
    }
    for (const std::string& dir : state_->dirs) {
      if (ParentDir(dir) == p) names.push_back(BaseName(dir));
    }
    return names;
  }

  Status CreateDir(const std::string& path) override {
    const std::string p = NormalizePath(path);
    std::lock_guard lock(state_->mu);
    for (size_t i = 1; i <= p.size(); ++i) {
      if (i != p.size() && p[i] != '/') continue;
      std::string prefix = p.substr(0, i);
      if (state_->files.count(prefix) > 0) return ErrnoStatus("mkdir", prefix, ENOTDIR);
      if (prefix != "/") state_->dirs.insert(prefix);
    }
    return Status::Ok();
  }

  Status SyncDir(const std::string& path) override {
    const std::string p = NormalizePath(path);
    std::lock_guard lock(state_->mu);
    if (!IsDir(p)) return ErrnoStatus("open directory", p, ENOENT);
    return Status::Ok();
  }

  Status RemoveFile(const std::string& path) override {
    const std::string p = NormalizePath(path);
    std::lock_guard lock(state_->mu);
    if (state_->files.erase(p) == 0) return ErrnoStatus("unlink", p, IsDir(p) ? EISDIR : ENOENT);
    return Status::Ok();
  }

  Status RenameFile(const std::string& from, const std::string& to) override {
    const std::string f = NormalizePath(from);
    const std::string t = NormalizePath(to);
    std::lock_guard lock(state_->mu);
    auto it = state_->files.find(f);
    if (it == state_->files.end()) return ErrnoStatus("rename " + f + " to", t, IsDir(f) ? EISDIR : ENOENT);
    if (!IsDir(ParentDir(t))) return ErrnoStatus("rename " + f + " to", t, ENOENT);
    if (IsDir(t)) return ErrnoStatus("rename " + f + " to", t, EISDIR);
    if (f == t) return Status::Ok();
    std::shared_ptr<MemNode> node = std::move(it->second);
    state_->files.erase(it);
    state_->files[t] = std::move(node);  // replaces `t` atomically, like rename(2)
    return Status::Ok();
  }

  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override {
    const std::string p = NormalizePath(path);
    std::lock_guard lock(state_->mu);
    if (state_->locks.count(p) > 0) {
      return Status::Unavailable("lock " + p + ": the data directory is in use by this process (pid " +
                                     std::to_string(getpid()) + ", another handle on the same memory env)",
                                 ErrorDetail::kStoreLocked);
    }
    if (IsDir(p)) return ErrnoStatus("open lock file", p, EISDIR);
    if (state_->files.count(p) == 0) {
      CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<MemNode> node, CreateLocked(p));
      std::string pid = std::to_string(getpid()) + "\n";
      if (pwrite(node->fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
        return ErrnoStatus("write pid to lock file", p, errno);
      }
    }
    state_->locks.insert(p);
    return std::unique_ptr<FileLock>(std::make_unique<MemFileLock>(state_, p));
  }

  int64_t NowNanos() override { return Env::Posix()->NowNanos(); }
  int64_t MonotonicNanos() override { return Env::Posix()->MonotonicNanos(); }

 private:
  bool IsDir(const std::string& p) const { return p.empty() || p == "/" || state_->dirs.count(p) > 0; }

  // Requires state_->mu. Creates an empty file at `p`, whose parent directory must exist.
  Result<std::shared_ptr<MemNode>> CreateLocked(const std::string& p) {
    if (!IsDir(ParentDir(p))) return ErrnoStatus("open", p, ENOENT);
    int fd = memfd_create("cairn-mem", MFD_CLOEXEC);
    if (fd < 0) return ErrnoStatus("memfd_create for", p, errno);
    auto node = std::make_shared<MemNode>(fd);
    state_->files[p] = node;
    return node;
  }

  std::shared_ptr<MemState> state_ = std::make_shared<MemState>();
};

}  // namespace

std::unique_ptr<Env> NewMemEnv() { return std::make_unique<MemEnv>(); }

}  // namespace cairn::env
