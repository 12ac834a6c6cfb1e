// The index checkpoint: the embedded engine's derived indexes (stream positions, metadata,
// tombstones, the idempotency window, the time index) saved to DIR/index.ckpt at a clean close,
// so that the next open loads them and scans only the log written after them instead of the
// whole log. Format: docs/format/index-checkpoint.md.
//
// The checkpoint is never the source of truth. It names the log head it covers and the checksum
// of the record just before it; when that record is not the same in the log, or the file fails
// its own checksum or any structural check, the checkpoint is ignored and the indexes are rebuilt
// from the log. A crash after the checkpoint was written leaves it stale but correct: the open
// scans everything after its head with the usual recovery rules.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "cairn/status.h"
#include "env/env.h"
#include "util/coding.h"

namespace cairn::storage {

inline constexpr char kCheckpointMagic[8] = {'C', 'A', 'I', 'R', 'N', 'I', 'D', 'X'};
inline constexpr uint32_t kCheckpointVersion = 1;  // On disk: never change or reuse.
inline constexpr char kCheckpointFile[] = "index.ckpt";

// Appends little-endian values to a buffer.
class ByteWriter {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U16(uint16_t v) { Put(&v, 2); }
  void U32(uint32_t v) { Put(&v, 4); }
  void U64(uint64_t v) { Put(&v, 8); }
  void Bytes(std::string_view s) { out_.append(s.data(), s.size()); }
  void Put(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string& str() { return out_; }

 private:
  std::string out_;
};

// Reads little-endian values; any read past the end sets failed() and returns zeros.
class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}
  uint8_t U8() { uint8_t v = 0; Get(&v, 1); return v; }
  uint16_t U16() { uint16_t v = 0; Get(&v, 2); return v; }
  uint32_t U32() { uint32_t v = 0; Get(&v, 4); return v; }
  uint64_t U64() { uint64_t v = 0; Get(&v, 8); return v; }
  std::string_view Bytes(size_t n) {
    if (n > in_.size() - pos_) { failed_ = true; return {}; }
    std::string_view s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  void Get(void* p, size_t n) {
    if (n > in_.size() - pos_) { failed_ = true; std::memset(p, 0, n); return; }
    std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
  }
  size_t remaining() const { return in_.size() - pos_; }
  bool failed() const { return failed_; }

 private:
  std::string_view in_;
  size_t pos_ = 0;
  bool failed_ = false;
};

// Writes `body` (without magic and checksum) as DIR/index.ckpt atomically: a temporary file,
// synced, renamed over the old one, directory synced.
Status WriteCheckpointFile(env::Env* env, const std::string& dir, const std::string& body);

// Reads DIR/index.ckpt and checks magic, version and checksum. NotFound when there is none;
// Corruption when it fails a check. On success *body is what WriteCheckpointFile was given.
Status ReadCheckpointFile(env::Env* env, const std::string& dir, std::string* body);

}  // namespace cairn::storage
