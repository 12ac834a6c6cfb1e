// Encoding and decoding of one log record (docs/format/log.md, "Records").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cairn/event.h"
#include "cairn/status.h"
#include "storage/log_format.h"

namespace cairn::storage {

// A decoded record: views into the bytes it was decoded from.
struct RecordView {
  uint32_t length = 0;
  uint32_t crc = 0;  // the checksum field (the index records the one of its last record)
  uint64_t position = 0;
  int64_t recorded_at = 0;
  uint64_t version = 0;
  Uuid id;
  uint8_t flags = 0;
  ContentType content_type = ContentType::kJson;
  std::string_view stream;
  std::string_view type;
  std::string_view data;
  std::string_view metadata;

  bool commit() const { return flags & kFlagCommit; }
  bool tombstone() const { return flags & kFlagTombstone; }
  bool generated_id() const { return flags & kFlagGeneratedId; }
  RecordedEventView ToEvent() const {
    return RecordedEventView{stream, version, Position(position), id, type, data, metadata, content_type,
                             Timestamp{recorded_at}};
  }
};

struct RecordFields {
  uint64_t position;
  int64_t recorded_at;
  uint64_t version;
  Uuid id;
  uint8_t flags;
  ContentType content_type;
  std::string_view stream, type, data, metadata;
};

// Appends the encoded record to *out (which grows by RecordSize(...) bytes).
void EncodeRecord(const RecordFields& f, std::string* out);

enum class DecodeError : uint8_t {
  kOk,
  kZero,        // the length field is zero: nothing was written here
  kTruncated,   // the record claims more bytes than are available
  kBadLength,   // length not aligned, too small, or inconsistent with the parts
  kBadChecksum,
  kBadPosition, // the record's own position differs from where it was found
  kBadKind,
};
const char* DecodeErrorName(DecodeError e);

// Decodes the record at `p` with `avail` bytes readable, expected at `position`.
DecodeError DecodeRecord(const std::byte* p, size_t avail, uint64_t position, RecordView* out);

}  // namespace cairn::storage
