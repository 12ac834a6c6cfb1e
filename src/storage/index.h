// The embedded engine's derived indexes, rebuilt from the log on open (the log is the source of
// truth; nothing here is persisted yet):
// - StreamEntry: per stream, the position of every version, its tombstone and its metadata;
// - IdWindow: the ids of the last W events, for idempotent retries (writer thread only);
// - TimeIndex: sparse (recorded time, position) marks for temporal queries.
//
// Each StreamEntry has two halves. The `w_` fields belong to the writer thread alone: it checks
// expected versions against them while it builds a group commit, before anything is durable.
// The other fields are what readers see; the writer changes them only when it publishes a synced
// group, under the index's exclusive lock. So readers never see an unacknowledged append.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cairn/stream.h"
#include "cairn/types.h"
#include "storage/log_format.h"

namespace cairn::storage {

struct StreamEntry {
  explicit StreamEntry(std::string n) : name(std::move(n)) {}
  std::string name;

  // Published (readers, under the index lock).
  std::vector<uint64_t> positions;  // positions[v]: the position of version v
  std::optional<uint64_t> tombstone_position;
  StreamMetadata metadata;
  StreamEntry* meta = nullptr;  // the metastream "$$name", once metadata was set

  // Writer thread only.
  uint64_t w_next = 0;  // the version the next event gets
  bool w_tombstoned = false;
  StreamMetadata w_metadata;

  bool SoftDeleted() const { return metadata.truncate_before == kSoftDeletedTruncateBefore; }
  bool WSoftDeleted() const { return w_metadata.truncate_before == kSoftDeletedTruncateBefore; }
};

struct UuidHash {
  size_t operator()(const Uuid& u) const {
    uint64_t a, b;
    static_assert(sizeof u.bytes == 16);
    __builtin_memcpy(&a, u.bytes.data(), 8);
    __builtin_memcpy(&b, u.bytes.data() + 8, 8);
    // UUIDv7 puts the time first and randomness last: mix both halves.
    uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ULL));
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 32;
    return static_cast<size_t>(h);
  }
};

// The ids of the most recent `capacity` events, in a ring; lookups by id. Writer thread only.
class IdWindow {
 public:
  struct Entry {
    StreamEntry* stream;
    uint64_t version;
    uint64_t position;
  };
  explicit IdWindow(uint64_t capacity) : capacity_(capacity) {}

  void Insert(const Uuid& id, const Entry& e) {
    if (capacity_ == 0) return;
    if (ring_.size() < capacity_) {
      ring_.push_back({id, e.position});
    } else {
      auto& old = ring_[next_];
      auto it = map_.find(old.first);
      if (it != map_.end() && it->second.position == old.second) map_.erase(it);
      old = {id, e.position};
      next_ = (next_ + 1) % capacity_;
    }
    map_[id] = e;
  }
  const Entry* Find(const Uuid& id) const {
    auto it = map_.find(id);
    return it == map_.end() ? nullptr : &it->second;
  }

 private:
  uint64_t capacity_;
  std::vector<std::pair<Uuid, uint64_t>> ring_;
  size_t next_ = 0;
  std::unordered_map<Uuid, Entry, UuidHash> map_;
};

// Sparse marks: a (time, position) pair at least every kEvery records or whenever time moved on
// by kStepNanos. Every record before a mark's position has recorded_at <= the mark's time.
class TimeIndex {
 public:
  static constexpr uint64_t kEvery = 1024;
  static constexpr int64_t kStepNanos = 1'000'000;

  void Add(int64_t time, uint64_t position, uint64_t records) {
    since_ += records;
    if (marks_.empty() || since_ >= kEvery || time - marks_.back().first >= kStepNanos) {
      marks_.emplace_back(time, position);
      since_ = 0;
    }
  }
  // The position of the last mark with time <= t, or 0 (the start) when none.
  uint64_t StartFor(int64_t t) const {
    size_t lo = 0, hi = marks_.size();
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (marks_[mid].first <= t) lo = mid + 1; else hi = mid;
    }
    return lo == 0 ? 0 : marks_[lo - 1].second;
  }

 private:
  std::vector<std::pair<int64_t, uint64_t>> marks_;
  uint64_t since_ = 0;
};

}  // namespace cairn::storage
