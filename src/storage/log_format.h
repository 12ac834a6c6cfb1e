// Constants of the log's on-disk format. The normative description, with byte tables, worked
// example and the reasons, is docs/format/log.md; this file only pins the numbers.
// On disk: never change or reuse any value here; a change bumps kFormatVersion.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cairn::storage {

// Segment header: the first kSegmentHeaderSize bytes of every segment file.
inline constexpr char kSegmentMagic[8] = {'C', 'A', 'I', 'R', 'N', 'L', 'O', 'G'};
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kSegmentHeaderSize = 64;
// Offsets within the segment header.
inline constexpr size_t kSegMagicOffset = 0;        // 8 bytes
inline constexpr size_t kSegVersionOffset = 8;      // u32
inline constexpr size_t kSegHeaderSizeOffset = 12;  // u32
inline constexpr size_t kSegNumberOffset = 16;      // u64
inline constexpr size_t kSegCapacityOffset = 24;    // u64
inline constexpr size_t kSegCreatedAtOffset = 32;   // i64 nanoseconds since the epoch
inline constexpr size_t kSegCrcOffset = 60;         // u32 CRC32C of bytes [0, 60)

// Record: 8-byte aligned, kRecordHeaderSize bytes of header, the variable part (stream name,
// event type, data, metadata), zero padding, and a 4-byte trailer repeating the length.
inline constexpr size_t kRecordAlignment = 8;
inline constexpr size_t kRecordHeaderSize = 64;
inline constexpr size_t kRecordTrailerSize = 4;
inline constexpr size_t kMinRecordSize = kRecordHeaderSize + kRecordTrailerSize + 4;  // rounded: 72
inline constexpr size_t kRecCrcOffset = 0;             // u32 CRC32C of bytes [4, length)
inline constexpr size_t kRecLengthOffset = 4;          // u32 total length, multiple of 8
inline constexpr size_t kRecPositionOffset = 8;        // u64 the record's own position
inline constexpr size_t kRecRecordedAtOffset = 16;     // i64 nanoseconds since the epoch
inline constexpr size_t kRecVersionOffset = 24;        // u64 stream version
inline constexpr size_t kRecEventIdOffset = 32;        // 16 bytes, RFC 4122 order
inline constexpr size_t kRecKindOffset = 48;           // u8 RecordKind
inline constexpr size_t kRecFlagsOffset = 49;          // u8 RecordFlags
inline constexpr size_t kRecContentTypeOffset = 50;    // u8 ContentType
inline constexpr size_t kRecReservedOffset = 51;       // u8, zero
inline constexpr size_t kRecStreamLenOffset = 52;      // u16
inline constexpr size_t kRecTypeLenOffset = 54;        // u16
inline constexpr size_t kRecDataLenOffset = 56;        // u32
inline constexpr size_t kRecMetadataLenOffset = 60;    // u32

// On disk: never change or reuse.
enum class RecordKind : uint8_t {
  kEvent = 1,
};

// On disk: never change or reuse.
enum RecordFlags : uint8_t {
  // The last record of one append. Recovery keeps whole appends only: it cuts a torn tail back
  // to just after the last record carrying this flag.
  kFlagCommit = 1u << 0,
  // The record is a tombstone: its stream is deleted for good. Its version is kTombstoneVersion.
  kFlagTombstone = 1u << 1,
  // The store generated the event id (the caller gave none): it cannot be retried, so the
  // idempotency window need not remember it.
  kFlagGeneratedId = 1u << 2,
};

inline constexpr uint64_t kTombstoneVersion = 0x7fffffffffffffffULL;  // EventStoreDB's marker too
// "$tb" with this value in stream metadata marks a soft-deleted stream (EventStoreDB's meaning).
inline constexpr uint64_t kSoftDeletedTruncateBefore = 0x7fffffffffffffffULL;

static_assert(kRecMetadataLenOffset + 4 == kRecordHeaderSize);
static_assert(kSegCrcOffset + 4 == kSegmentHeaderSize);
static_assert(kMinRecordSize % kRecordAlignment == 0);

inline constexpr size_t AlignUp(size_t n) { return (n + kRecordAlignment - 1) & ~(kRecordAlignment - 1); }

// The total size of a record with these variable parts.
inline constexpr size_t RecordSize(size_t stream, size_t type, size_t data, size_t metadata) {
  return AlignUp(kRecordHeaderSize + stream + type + data + metadata + kRecordTrailerSize);
}

}  // namespace cairn::storage
