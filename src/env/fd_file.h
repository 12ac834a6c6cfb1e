// Internal to src/env: a File over a file descriptor it owns, shared by PosixEnv (a real file)
// and MemEnv (a memfd, which is RAM-backed but behaves exactly like a file: a MAP_SHARED mapping
// sees later writes, and the data lives until the last descriptor is closed, like an unlinked
// file). Also small path and errno helpers used by the env implementations.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "env/env.h"

namespace cairn::env::internal {

struct FdFileOptions {
  // False for MemEnv: a memfd has nothing to make durable.
  bool sync = true;
  // False for MemEnv: fallocate on a memfd commits RAM for every page; ftruncate keeps it sparse.
  bool fallocate = true;
  // False rejects Write/Allocate/Truncate with kIOError (a memfd dup is always O_RDWR).
  bool writable = true;
};

// Takes ownership of `fd` (closed by the File's destructor, after munmap of any mapping).
std::unique_ptr<File> NewFdFile(int fd, std::string path, FdFileOptions options);

// "<op> <path>: <strerror(err)>" as kIOError (kNotFound for ENOENT, kAlreadyExists for EEXIST).
Status ErrnoStatus(std::string_view op, const std::string& path, int err);

// Collapses repeated '/' and drops a trailing '/' (but keeps a lone "/").
std::string NormalizePath(std::string_view path);
// The directory part of a normalized path: "a/b" -> "a", "/a" -> "/", "a" -> "".
std::string ParentDir(const std::string& path);
// The last component of a normalized path.
std::string BaseName(const std::string& path);

}  // namespace cairn::env::internal
