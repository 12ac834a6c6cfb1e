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
  // What expected versions are checked against (writer side): the last version, or nullopt when
  // the stream has no events or is soft-deleted.
  std::optional<uint64_t> WActualVersion() const {
    return w_next > 0 && !WSoftDeleted() ? std::optional<uint64_t>(w_next - 1) : std::nullopt;
  }
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

// The ids of the most recent `capacity` events and their positions: an open-addressing table
// (linear probing, backward-shift deletion) plus a ring of the ids in insertion order, to evict
// the oldest. About 60 bytes per remembered event; grows with use, up to capacity. Writer thread
// only. The stream and version of a found id are read from its record.
class IdWindow {
 public:
  explicit IdWindow(uint64_t capacity) : capacity_(capacity) {}

  void Insert(const Uuid& id, uint64_t position) {
    if (capacity_ == 0) return;
    if (ring_.size() < capacity_) {
      ring_.push_back({id, position});
    } else {
      Erase(ring_[next_]);
      ring_[next_] = {id, position};
      next_ = (next_ + 1) % capacity_;
    }
    if ((size_ + 1) * 2 > table_.size()) Grow();
    size_t i = Home(id);
    while (table_[i].position != 0 && table_[i].id != id) i = (i + 1) & mask_;
    if (table_[i].position == 0) size_++;
    table_[i] = {id, position};
  }

  // Counts an event whose id needs no remembering (the store generated it): it takes its place
  // in the window, so that the window stays "the last N events", without a table entry.
  void Skip() {
    if (capacity_ == 0) return;
    if (ring_.size() < capacity_) {
      ring_.push_back(Slot{});
    } else {
      Erase(ring_[next_]);
      ring_[next_] = Slot{};
      next_ = (next_ + 1) % capacity_;
    }
  }

  uint64_t capacity() const { return capacity_; }

  // For the index checkpoint: the ring, oldest first, and its restoration.
  template <typename F>
  void ForEachOldestFirst(F&& f) const {
    const bool full = ring_.size() == capacity_;
    for (size_t k = 0; k < ring_.size(); ++k) {
      const Slot& s = ring_[full ? (next_ + k) % capacity_ : k];
      f(s.id, s.position);
    }
  }
  // Appends one ring entry as ForEachOldestFirst gave it (position 0: a skipped event).
  void Restore(const Uuid& id, uint64_t position) {
    if (position == 0) {
      Skip();
    } else {
      Insert(id, position);
    }
  }

  // The position of the event with this id, or 0 when it is not remembered.
  uint64_t Find(const Uuid& id) const {
    if (table_.empty()) return 0;
    for (size_t i = Home(id);; i = (i + 1) & mask_) {
      if (table_[i].position == 0) return 0;
      if (table_[i].id == id) return table_[i].position;
    }
  }

 private:
  struct Slot {
    Uuid id;
    uint64_t position = 0;  // 0: empty (no record is at position 0)
  };

  size_t Home(const Uuid& id) const { return UuidHash{}(id) & mask_; }

  // Forgets `old` unless its id was stored again since (then the table holds the newer position).
  void Erase(const Slot& old) {
    if (old.position == 0) return;
    size_t i = Home(old.id);
    while (table_[i].position != 0 && table_[i].id != old.id) i = (i + 1) & mask_;
    if (table_[i].position != old.position) return;
    // Backward shift: move later entries of the probe run into the hole when their home allows.
    for (size_t j = (i + 1) & mask_; table_[j].position != 0; j = (j + 1) & mask_) {
      const size_t home = Home(table_[j].id);
      const bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
      if (movable) {
        table_[i] = table_[j];
        i = j;
      }
    }
    table_[i] = Slot{};
    size_--;
  }

  void Grow() {
    std::vector<Slot> old = std::move(table_);
    table_.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
    mask_ = table_.size() - 1;
    size_ = 0;
    for (const Slot& s : old) {
      if (s.position == 0) continue;
      size_t i = Home(s.id);
      while (table_[i].position != 0) i = (i + 1) & mask_;
      table_[i] = s;
      size_++;
    }
  }

  uint64_t capacity_;
  std::vector<Slot> ring_;
  size_t next_ = 0;
  std::vector<Slot> table_;
  size_t mask_ = 0;
  size_t size_ = 0;
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
  // For the index checkpoint.
  const std::vector<std::pair<int64_t, uint64_t>>& marks() const { return marks_; }
  uint64_t since() const { return since_; }
  void Restore(std::vector<std::pair<int64_t, uint64_t>> marks, uint64_t since) {
    marks_ = std::move(marks);
    since_ = since;
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
