#include "storage/record.h"

#include <cstring>

#include "util/check.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace cairn::storage {

using util::DecodeU16;
using util::DecodeU32;
using util::DecodeU64;
using util::EncodeU16;
using util::EncodeU32;
using util::EncodeU64;

void EncodeRecord(const RecordFields& f, std::string* out) {
  const size_t size = RecordSize(f.stream.size(), f.type.size(), f.data.size(), f.metadata.size());
  // Validated at the API; here they are invariants.
  CAIRN_CHECK(f.stream.size() <= 0xffff && f.type.size() <= 0xffff);
  CAIRN_CHECK(size <= 0xffffffffu);
  const size_t start = out->size();
  out->resize(start + size);  // zero-filled: padding and the reserved byte are zero
  char* p = out->data() + start;
  EncodeU32(p + kRecLengthOffset, static_cast<uint32_t>(size));
  EncodeU64(p + kRecPositionOffset, f.position);
  EncodeU64(p + kRecRecordedAtOffset, static_cast<uint64_t>(f.recorded_at));
  EncodeU64(p + kRecVersionOffset, f.version);
  std::memcpy(p + kRecEventIdOffset, f.id.bytes.data(), 16);
  p[kRecKindOffset] = static_cast<char>(RecordKind::kEvent);
  p[kRecFlagsOffset] = static_cast<char>(f.flags);
  p[kRecContentTypeOffset] = static_cast<char>(f.content_type);
  EncodeU16(p + kRecStreamLenOffset, static_cast<uint16_t>(f.stream.size()));
  EncodeU16(p + kRecTypeLenOffset, static_cast<uint16_t>(f.type.size()));
  EncodeU32(p + kRecDataLenOffset, static_cast<uint32_t>(f.data.size()));
  EncodeU32(p + kRecMetadataLenOffset, static_cast<uint32_t>(f.metadata.size()));
  char* q = p + kRecordHeaderSize;
  std::memcpy(q, f.stream.data(), f.stream.size());
  q += f.stream.size();
  std::memcpy(q, f.type.data(), f.type.size());
  q += f.type.size();
  if (!f.data.empty()) std::memcpy(q, f.data.data(), f.data.size());
  q += f.data.size();
  if (!f.metadata.empty()) std::memcpy(q, f.metadata.data(), f.metadata.size());
  EncodeU32(p + size - kRecordTrailerSize, static_cast<uint32_t>(size));
  EncodeU32(p + kRecCrcOffset, util::Crc32c(p + 4, size - 4));
  CAIRN_DCHECK([&] {
    RecordView v;
    return DecodeRecord(reinterpret_cast<const std::byte*>(p), size, f.position, &v) == DecodeError::kOk;
  }());
}

const char* DecodeErrorName(DecodeError e) {
  switch (e) {
    case DecodeError::kOk: return "ok";
    case DecodeError::kZero: return "zero length";
    case DecodeError::kTruncated: return "truncated record";
    case DecodeError::kBadLength: return "bad record length";
    case DecodeError::kBadChecksum: return "checksum mismatch";
    case DecodeError::kBadPosition: return "record position mismatch";
    case DecodeError::kBadKind: return "unknown record kind";
  }
  return "?";
}

DecodeError DecodeRecord(const std::byte* bp, size_t avail, uint64_t position, RecordView* out) {
  const char* p = reinterpret_cast<const char*>(bp);
  if (avail < kRecordHeaderSize) return avail >= 8 && DecodeU32(p + kRecLengthOffset) == 0 ? DecodeError::kZero : DecodeError::kTruncated;
  const uint32_t length = DecodeU32(p + kRecLengthOffset);
  if (length == 0) return DecodeError::kZero;
  if (length % kRecordAlignment != 0 || length < kMinRecordSize) return DecodeError::kBadLength;
  if (length > avail) return DecodeError::kTruncated;
  const uint16_t stream_len = DecodeU16(p + kRecStreamLenOffset);
  const uint16_t type_len = DecodeU16(p + kRecTypeLenOffset);
  const uint32_t data_len = DecodeU32(p + kRecDataLenOffset);
  const uint32_t meta_len = DecodeU32(p + kRecMetadataLenOffset);
  const uint64_t parts = uint64_t{stream_len} + type_len + data_len + meta_len;
  if (kRecordHeaderSize + parts + kRecordTrailerSize > length ||
      AlignUp(kRecordHeaderSize + parts + kRecordTrailerSize) != length ||
      DecodeU32(p + length - kRecordTrailerSize) != length) {
    return DecodeError::kBadLength;
  }
  // The position check comes first: it is cheap, and it tells a read from a wrong offset (an
  // argument error) from damage (a checksum error).
  if (DecodeU64(p + kRecPositionOffset) != position) return DecodeError::kBadPosition;
  if (DecodeU32(p + kRecCrcOffset) != util::Crc32c(p + 4, length - 4)) return DecodeError::kBadChecksum;
  if (static_cast<uint8_t>(p[kRecKindOffset]) != static_cast<uint8_t>(RecordKind::kEvent)) return DecodeError::kBadKind;
  out->length = length;
  out->crc = DecodeU32(p + kRecCrcOffset);
  out->position = position;
  out->recorded_at = static_cast<int64_t>(DecodeU64(p + kRecRecordedAtOffset));
  out->version = DecodeU64(p + kRecVersionOffset);
  std::memcpy(out->id.bytes.data(), p + kRecEventIdOffset, 16);
  out->flags = static_cast<uint8_t>(p[kRecFlagsOffset]);
  out->content_type = static_cast<uint8_t>(p[kRecContentTypeOffset]) == 0 ? ContentType::kBytes : ContentType::kJson;
  const char* q = p + kRecordHeaderSize;
  out->stream = std::string_view(q, stream_len);
  q += stream_len;
  out->type = std::string_view(q, type_len);
  q += type_len;
  out->data = std::string_view(q, data_len);
  q += data_len;
  out->metadata = std::string_view(q, meta_len);
  return DecodeError::kOk;
}

}  // namespace cairn::storage
