#include "storage/validate.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "storage/index.h"
#include "storage/log_format.h"
#include "util/utf8.h"

namespace cairn::storage {

Status ValidateStreamName(std::string_view stream, bool allow_system) {
  if (stream.empty()) return Status::InvalidArgument("stream name is empty");
  if (stream.size() > kMaxStreamNameBytes) {
    return Status::InvalidArgument(
        fmt::format("stream name is {} bytes, the limit is {} bytes", stream.size(), kMaxStreamNameBytes));
  }
  if (stream.find('\0') != std::string_view::npos) return Status::InvalidArgument("stream name contains a NUL byte");
  if (!util::IsValidUtf8(stream)) return Status::InvalidArgument("stream name is not valid UTF-8");
  if (!allow_system && stream[0] == '$') {
    return Status::InvalidArgument(
        fmt::format("stream name \"{}\" starts with '$', which is reserved for system streams", stream));
  }
  return Status::Ok();
}

Status ValidateExpected(ExpectedVersion expected) {
  if (expected.kind() == ExpectedVersion::Kind::kExact && expected.version() > kMaxStreamVersion) {
    return Status::InvalidArgument(
        fmt::format("expected version {} exceeds the limit {}", expected.version(), kMaxStreamVersion));
  }
  return Status::Ok();
}

Result<uint64_t> ValidateAppend(std::string_view stream, ExpectedVersion expected, std::span<const EventData> events,
                                const AppendOptions& options, uint64_t segment_capacity) {
  CAIRN_RETURN_IF_ERROR(ValidateStreamName(stream, options.allow_system_stream));
  CAIRN_RETURN_IF_ERROR(ValidateExpected(expected));
  if (events.empty()) return Status::InvalidArgument("events: an append needs at least one event");
  if (events.size() > kMaxAppendEvents) {
    return Status::InvalidArgument(
        fmt::format("events: {} events in one append, the limit is {}", events.size(), kMaxAppendEvents));
  }
  uint64_t bytes = 0;
  std::vector<Uuid> ids;  // sorted below to find one id twice, without a hash set per append
  ids.reserve(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    const EventData& e = events[i];
    if (e.type.empty()) return Status::InvalidArgument(fmt::format("event {}: event type is empty", i));
    if (e.type.size() > kMaxEventTypeBytes) {
      return Status::InvalidArgument(fmt::format("event {}: event type is {} bytes, the limit is {} bytes", i,
                                                 e.type.size(), kMaxEventTypeBytes));
    }
    if (!util::IsValidUtf8(e.type)) return Status::InvalidArgument(fmt::format("event {}: event type is not valid UTF-8", i));
    if (e.data.size() + e.metadata.size() > kMaxEventBytes) {
      return Status::InvalidArgument(fmt::format("event {}: data and metadata are {} bytes, the limit is {} bytes", i,
                                                 e.data.size() + e.metadata.size(), kMaxEventBytes));
    }
    if (e.content_type != ContentType::kJson && e.content_type != ContentType::kBytes) {
      return Status::InvalidArgument(fmt::format("event {}: unknown content type", i));
    }
    if (!e.id.IsNil()) ids.push_back(e.id);
    bytes += RecordSize(stream.size(), e.type.size(), e.data.size(), e.metadata.size());
  }
  if (ids.size() > 1) {
    std::sort(ids.begin(), ids.end());
    auto dup = std::adjacent_find(ids.begin(), ids.end());
    if (dup != ids.end()) {
      size_t i = 0;
      while (events[i].id != *dup) ++i;
      return Status::InvalidArgument(fmt::format("event {}: event id {} appears twice in one append", i, dup->ToString()),
                                     ErrorDetail::kDuplicateEventId);
    }
  }
  // A soft-deleted stream's re-opening adds one metadata record; leave room for it.
  const uint64_t limit = std::min<uint64_t>(kMaxAppendBytes, segment_capacity - kSegmentHeaderSize - 4096);
  if (bytes > limit) {
    return Status::InvalidArgument(
        limit < kMaxAppendBytes
            ? fmt::format("append of {} bytes exceeds the limit of {} bytes (segment_size {})", bytes, limit, segment_capacity)
            : fmt::format("append of {} bytes exceeds the limit of {} bytes", bytes, limit));
  }
  return bytes;
}

std::string MetastreamName(std::string_view stream) { return "$$" + std::string(stream); }

namespace {
Status ExpectedMismatch(std::string_view stream, ExpectedVersion expected, std::optional<uint64_t> actual) {
  return Status::WrongExpectedVersion(
      fmt::format("append to {}: expected version {}, actual {}", stream, expected.ToString(),
                  actual ? std::to_string(*actual) : std::string("no-stream")),
      actual);
}
}  // namespace

Status CheckExpected(std::string_view stream, ExpectedVersion expected, std::optional<uint64_t> actual) {
  switch (expected.kind()) {
    case ExpectedVersion::Kind::kAny: return Status::Ok();
    case ExpectedVersion::Kind::kNoStream:
      return actual ? ExpectedMismatch(stream, expected, actual) : Status::Ok();
    case ExpectedVersion::Kind::kStreamExists:
      return actual ? Status::Ok() : ExpectedMismatch(stream, expected, actual);
    case ExpectedVersion::Kind::kExact:
      return actual && *actual == expected.version() ? Status::Ok() : ExpectedMismatch(stream, expected, actual);
  }
  return Status::Internal("unknown expected version kind");
}

Status StreamDeleted(std::string_view stream) {
  return Status::NotFound(fmt::format("stream {} is deleted (tombstoned)", stream), ErrorDetail::kStreamDeleted);
}

Status StreamNotFound(std::string_view stream) {
  return Status::NotFound(fmt::format("stream {} not found", stream), ErrorDetail::kStreamNotFound);
}

}  // namespace cairn::storage
