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

}  // namespace cairn
