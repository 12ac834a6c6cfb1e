#include "env/fd_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>

#include "util/check.h"

namespace cairn::env::internal {
namespace {

class FdFile final : public File {
 public:
  FdFile(int fd, std::string path, FdFileOptions options)
      : fd_(fd), path_(std::move(path)), options_(options) {}

  ~FdFile() override {
    if (map_ != nullptr) munmap(map_, map_length_);
    if (direct_fd_ >= 0) close(direct_fd_);
    close(fd_);
  }

  Status Write(uint64_t offset, std::span<const std::byte> data) override { return WriteThen(offset, data, {}); }

  Status WriteThen(uint64_t offset, std::span<const std::byte> data, std::span<const std::byte> then) override {
    CAIRN_RETURN_IF_ERROR(CheckWritable("write"));
    iovec parts[2] = {{const_cast<std::byte*>(data.data()), data.size()},
                      {const_cast<std::byte*>(then.data()), then.size()}};
    iovec* v = parts;
    int count = then.empty() ? 1 : 2;
    size_t left = data.size() + then.size();
    while (left > 0) {
      const ssize_t n = pwritev(fd_, v, count, static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("write", path_, errno);
      }
      // A zero-byte write of a non-empty buffer would loop forever; treat it as out of space.
      if (n == 0) return ErrnoStatus("write", path_, ENOSPC);
      left -= static_cast<size_t>(n);
      offset += static_cast<uint64_t>(n);
      // A short write: go on from the first byte that did not go.
      for (size_t done = static_cast<size_t>(n); done > 0;) {
        const size_t step = std::min(done, v->iov_len);
        v->iov_base = static_cast<std::byte*>(v->iov_base) + step;
        v->iov_len -= step;
        done -= step;
        if (v->iov_len == 0 && count > 1) {
          ++v;
          --count;
        }
      }
    }
    return Status::Ok();
  }

  Status Read(uint64_t offset, size_t n, std::byte* dst, size_t* read) const override {
    size_t done = 0;
    while (done < n) {
      ssize_t r = pread(fd_, dst + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        *read = done;
        return ErrnoStatus("read", path_, errno);
      }
      if (r == 0) break;  // end of file
      done += static_cast<size_t>(r);
    }
    *read = done;
    return Status::Ok();
  }

  Status Sync() override {
    if (!options_.sync) return Status::Ok();
    // No retry on EINTR or anything else: after a failed fdatasync the page cache may have
    // dropped the dirty pages (fsyncgate), so the caller must fail-stop.
    if (fdatasync(fd_) != 0) return ErrnoStatus("fdatasync", path_, errno);
    return Status::Ok();
  }

  Status Allocate(uint64_t size) override {
    CAIRN_RETURN_IF_ERROR(CheckWritable("allocate"));
    if (options_.fallocate) {
      int rc;
      do {
        rc = fallocate(fd_, 0, 0, static_cast<off_t>(size));
      } while (rc != 0 && errno == EINTR);
      if (rc == 0) return Status::Ok();
      if (errno != EOPNOTSUPP) return ErrnoStatus("fallocate", path_, errno);
    }
    // No fallocate (or a memfd): grow sparsely. Allocate never shrinks, like fallocate.
    CAIRN_ASSIGN_OR_RETURN(uint64_t current, Size());
    if (size <= current) return Status::Ok();
    return Truncate(size);
  }

  Status Truncate(uint64_t size) override {
    CAIRN_RETURN_IF_ERROR(CheckWritable("truncate"));
    int rc;
    do {
      rc = ftruncate(fd_, static_cast<off_t>(size));
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) return ErrnoStatus("ftruncate", path_, errno);
    return Status::Ok();
  }

  Status PrepareAhead(uint64_t offset, uint64_t length) override {
    CAIRN_RETURN_IF_ERROR(CheckWritable("prepare"));
    if (!options_.sync) return Status::NotSupported("PrepareAhead: a memory file");
    CAIRN_CHECK(offset % kDirectAlign == 0 && length % kDirectAlign == 0);
    if (direct_fd_ < 0) {
      // A second descriptor of the same file, for writes that bypass the page cache: the
      // writer's later Sync then finds no dirty page of these writes to wait for.
      direct_fd_ = open(path_.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
      if (direct_fd_ < 0) {
        if (errno == EINVAL) return Status::NotSupported("PrepareAhead: no O_DIRECT on " + path_);
        return ErrnoStatus("open (O_DIRECT)", path_, errno);
      }
    }
    static const std::byte* const zeros = [] {
      void* p = nullptr;
      CAIRN_CHECK(posix_memalign(&p, kDirectAlign, kZeroBytes) == 0);
      std::memset(p, 0, kZeroBytes);
      return static_cast<const std::byte*>(p);  // kept for the process's life
    }();
    while (length > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(length, kZeroBytes));
      const ssize_t w = pwrite(direct_fd_, zeros, n, static_cast<off_t>(offset));
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EINVAL) return Status::NotSupported("PrepareAhead: O_DIRECT write refused on " + path_);
        return ErrnoStatus("write (O_DIRECT)", path_, errno);
      }
      if (w == 0) return ErrnoStatus("write (O_DIRECT)", path_, ENOSPC);
      // A short direct write ends on a block boundary; go on from there.
      offset += static_cast<uint64_t>(w);
      length -= static_cast<uint64_t>(w);
    }
    if (fdatasync(direct_fd_) != 0) return ErrnoStatus("fdatasync (O_DIRECT)", path_, errno);
    return Status::Ok();
  }

  Result<uint64_t> Size() const override {
    struct stat st;
    if (fstat(fd_, &st) != 0) return ErrnoStatus("fstat", path_, errno);
    return static_cast<uint64_t>(st.st_size);
  }

  Result<const std::byte*> Map(uint64_t length) override {
    CAIRN_CHECK_MSG(!mapped_.exchange(true), "File::Map called twice on " + path_);
    CAIRN_ASSIGN_OR_RETURN(uint64_t size, Size());
    if (size < length) {
      return Status::InvalidArgument("map " + path_ + ": length " + std::to_string(length) +
                                     " is beyond the file size " + std::to_string(size));
    }
    // mmap rejects a zero length; an empty mapping needs no memory, only a non-null pointer.
    static const std::byte kEmpty{};
    if (length == 0) return &kEmpty;
    void* p = mmap(nullptr, length, PROT_READ, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) return ErrnoStatus("mmap", path_, errno);
    map_ = p;
    map_length_ = length;
    return static_cast<const std::byte*>(p);
  }

 private:
  Status CheckWritable(std::string_view op) const {
    if (options_.writable) return Status::Ok();
    return Status::IOError(std::string(op) + " " + path_ + ": file is open read-only");
  }

  static constexpr uint64_t kDirectAlign = 4096;   // O_DIRECT's alignment on every common device
  static constexpr size_t kZeroBytes = 1 << 20;    // zeros written per direct write

  const int fd_;
  int direct_fd_ = -1;  // PrepareAhead's O_DIRECT descriptor, opened on first use
  const std::string path_;
  const FdFileOptions options_;
  std::atomic<bool> mapped_{false};
  void* map_ = nullptr;
  size_t map_length_ = 0;
};

}  // namespace

std::unique_ptr<File> NewFdFile(int fd, std::string path, FdFileOptions options) {
  return std::make_unique<FdFile>(fd, std::move(path), options);
}

Status ErrnoStatus(std::string_view op, const std::string& path, int err) {
  std::string message = std::string(op) + " " + path + ": " + std::generic_category().message(err);
  if (err == ENOENT) return Status::NotFound(std::move(message));
  if (err == EEXIST) return Status::AlreadyExists(std::move(message));
  return Status::IOError(std::move(message));
}

std::string NormalizePath(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (char c : path) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out.push_back(c);
  }
  if (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

std::string ParentDir(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  if (slash == 0) return path.size() > 1 ? "/" : "";
  return path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace cairn::env::internal
