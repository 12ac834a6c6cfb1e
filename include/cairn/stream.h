// Stream state and stream metadata, with EventStoreDB's meaning.
//
// Metadata is stored as a "$metadata" event in the stream's metastream "$$<stream>", as JSON with
// EventStoreDB's keys: "$maxAge" (seconds), "$maxCount", "$tb" (truncate-before), "$cacheControl"
// (seconds), "$acl"; other keys are the caller's and are kept as they are.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "cairn/status.h"
#include "cairn/types.h"

namespace cairn {

struct StreamMetadata {
  std::optional<uint64_t> max_age_seconds;   // events older than this are not returned
  std::optional<uint64_t> max_count;         // only the newest max_count events are returned
  std::optional<StreamVersion> truncate_before;  // versions below this are not returned
  std::optional<uint64_t> cache_control_seconds;
  std::string acl_json;     // the "$acl" object as JSON text, empty when absent
  std::string custom_json;  // every other key, as a JSON object text, empty when none

  // The JSON the metastream stores; Parse rejects malformed JSON and wrong value types,
  // naming the key.
  std::string ToJson() const;
  static Result<StreamMetadata> Parse(std::string_view json);
  bool operator==(const StreamMetadata&) const = default;
};

struct StreamInfo {
  bool exists = false;      // written to, and neither soft-deleted nor tombstoned
  bool deleted = false;     // soft-deleted: reads say not found; an append re-opens it
  bool tombstoned = false;  // deleted for good: reads and appends fail
  // The version of the last event ever written (also when deleted), nullopt when never written.
  std::optional<StreamVersion> last_version;
  std::optional<Position> last_position;
  // The metastream's last version, nullopt when no metadata was ever set.
  std::optional<StreamVersion> metadata_version;
  StreamMetadata metadata;
};

// Listing streams (Store::ListStreams): the streams whose names start with `prefix`, in name
// order (bytewise), after the name `after` (empty: from the first), at most `max_count` of them.
// Page through a large store by passing the last name of one page as `after` of the next.
// A category "order" is the prefix "order-". Streams never written to (only their metadata was
// set) are not listed; soft-deleted and tombstoned ones are, marked so.
struct ListStreamsOptions {
  std::string prefix;
  std::string after;
  size_t max_count = 100;  // 1 to kMaxListStreams
  // System streams (names starting with '$', metastreams "$$x" among them) are listed only when
  // this is true or `prefix` itself starts with '$'.
  bool include_system = false;
};
inline constexpr size_t kMaxListStreams = 10'000;

struct StreamSummary {
  std::string name;
  StreamVersion last_version = 0;  // of the last event ever written (also when deleted)
  Position last_position;          // of that event
  bool deleted = false;            // soft-deleted (and not re-opened since)
  bool tombstoned = false;
  bool operator==(const StreamSummary&) const = default;
};

}  // namespace cairn
