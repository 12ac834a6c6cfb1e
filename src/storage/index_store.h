// IndexStore: the persistent tier of the embedded engine's derived indexes (docs/format/index.md).
//
// The engine keeps what changed recently in memory (the memtable: storage/index.h) and moves it
// here when the memtable passes Options::index_memory_bytes, so that RAM stays bounded however
// long the log grows. What is here is never the source of truth: it names the log position it
// covers (IndexHead) with the checksum of the record ending there, and when the log does not
// have that record (a power loss took the log's unsynced tail, or the index belongs to another
// log) the engine clears it and rebuilds it from the log.
//
// Two implementations: LMDB in DIR/index/ for stores on the real file system, and one in memory
// for stores whose files are in memory (`memory:` and the tests' MemEnv), which has nothing to
// persist to.
//
// Threads: any number of readers call the const methods while the one writer thread calls
// Write or Clear; a reader sees each Write entirely or not at all.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cairn/status.h"

namespace cairn::storage {

// A stream as the persistent tier knows it.
struct StreamRow {
  uint64_t id = 0;         // the stream's number in this index (assigned at its first write)
  uint64_t count = 0;      // versions 0..count-1 have positions here
  uint64_t last_position = 0;  // of version count-1 (0 when count is 0)
  uint64_t tombstone = 0;  // position of its tombstone, 0: none
  bool has_meta = false;   // its metastream holds parsed metadata
  std::string metadata_json;  // when has_meta
};

// A sparse time mark: every record before `position` was recorded at or before `time`, and
// `records` records precede `position` in the log.
struct TimeMark {
  int64_t time = 0;
  uint64_t position = 0;
  uint64_t records = 0;
};

// What the persistent tier covers: the log up to `position` (0: nothing).
struct IndexHead {
  uint64_t position = 0;
  uint64_t capacity = 0;     // the log's segment capacity
  uint32_t crc = 0;          // checksum field of the record ending at position
  uint64_t records = 0;      // records before position
  int64_t last_time = 0;     // latest recorded_at before position
  uint64_t next_stream_id = 1;
  std::vector<uint64_t> segment_ends;  // end offsets of the segments before the one position ends in
};

// One atomic write: streams changed since the last one, with the positions of their new
// versions, new time marks, and the new head.
struct IndexBatch {
  struct Stream {
    std::string name;
    StreamRow row;                    // the whole new row
    uint64_t first_new_version = 0;   // new_positions[k] is version first_new_version + k
    std::vector<uint64_t> new_positions;
  };
  std::vector<Stream> streams;
  std::vector<TimeMark> marks;
  IndexHead head;
};

class IndexStore {
 public:
  virtual ~IndexStore() = default;

  virtual Result<std::optional<StreamRow>> GetStream(std::string_view name) const = 0;
  // Appends the positions of versions [from, from+n) of stream `id` (all below its count) to
  // *out, in ascending version order.
  virtual Status GetPositions(uint64_t id, uint64_t from, uint64_t n, std::vector<uint64_t>* out) const = 0;
  // Streams whose names start with `prefix` and sort after `after`, about in name order: at least
  // the first `max` of them by name when that many exist (more may come; the caller sorts and
  // cuts). Appended to *out as (name, row).
  virtual Status ListStreams(std::string_view prefix, std::string_view after, size_t max,
                             std::vector<std::pair<std::string, StreamRow>>* out) const = 0;
  // The last mark with time <= t, if any.
  virtual Result<std::optional<TimeMark>> LastMarkAtOrBefore(int64_t t) const = 0;
  // The last mark with records <= n, if any.
  virtual Result<std::optional<TimeMark>> LastMarkWithRecordsAtMost(uint64_t n) const = 0;
  virtual Result<IndexHead> Head() const = 0;

  virtual Status Write(const IndexBatch& batch) = 0;
  // Forgets everything (the head becomes the empty one).
  virtual Status Clear() = 0;
};

// LMDB environment in directory `path`, which must exist (its files are created if missing).
Result<std::unique_ptr<IndexStore>> OpenLmdbIndex(const std::string& path);
std::unique_ptr<IndexStore> NewMemIndex();

}  // namespace cairn::storage
