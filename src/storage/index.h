// The in-memory tier of the embedded engine's derived indexes (the memtable). The persistent tier
// is an IndexStore (storage/index_store.h); together they answer every lookup:
// - StreamEntry: a stream touched since the memtable was last written out, with the positions of
//   its versions from `base` on (earlier ones are in the IndexStore), its tombstone and metadata;
// - IdWindow: the ids of the last W events, for idempotent retries (writer thread only; bounded
//   by W and rebuilt from the log at open);
// - TimeIndex: recent sparse (recorded time, position) marks for temporal queries.
// When the memtable passes Options::index_memory_bytes, the writer writes it to the IndexStore
// in one transaction and drops it: memory stays bounded as the log grows.
//
// Each StreamEntry has two halves. The `w_` fields belong to the writer thread alone: it checks
// expected versions against them while it builds a group commit, before anything is durable.
// The other fields are what readers see; the writer changes them only when it publishes a synced
// group, under the index's exclusive lock. So readers never see an unacknowledged append.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cairn/stream.h"
#include "cairn/types.h"
#include "storage/index_store.h"
#include "storage/log_format.h"

namespace cairn::storage {

struct StreamEntry {
  explicit StreamEntry(std::string n) : name(std::move(n)) {}
  // Loaded from the persistent tier: everything it knows is published.
  StreamEntry(std::string n, const StreamRow& row, StreamMetadata md)
      : name(std::move(n)), id(row.id), base(row.count), last_position(row.last_position), metadata(md),
        has_meta(row.has_meta), w_next(row.count), w_tombstoned(row.tombstone != 0), w_metadata(std::move(md)) {
    if (row.tombstone != 0) tombstone_position = row.tombstone;
  }
  // Continues a stream of the immutable memtable (storage/embedded_store.h): its versions from
  // older.count() on. Everything `older` knows is published.
  static std::unique_ptr<StreamEntry> ContinuedFrom(const StreamEntry& older) {
    auto e = std::make_unique<StreamEntry>(older.name);
    e->id = older.id;
    e->base = e->w_next = older.count();
    e->last_position = older.last_position;
    e->tombstone_position = older.tombstone_position;
    e->w_tombstoned = older.tombstone_position.has_value();
    e->metadata = e->w_metadata = older.metadata;
    e->has_meta = older.has_meta;
    return e;
  }
  std::string name;
  uint64_t id = 0;  // the stream's number in the IndexStore (given when the entry is created)

  // Published (readers, under the index lock).
  uint64_t base = 0;                // versions below base have their positions in the IndexStore
  std::vector<uint64_t> positions;  // positions[k]: the position of version base + k
  uint64_t last_position = 0;       // of the last version (0: none)
  std::optional<uint64_t> tombstone_position;
  StreamMetadata metadata;
  bool has_meta = false;  // the metastream "$$name" holds metadata that parsed
  bool dirty = false;     // published changes not yet in the IndexStore

  // Writer thread only.
  uint64_t w_next = 0;  // the version the next event gets
  bool w_tombstoned = false;
  StreamMetadata w_metadata;

  uint64_t count() const { return base + positions.size(); }
  bool SoftDeleted() const { return metadata.truncate_before == kSoftDeletedTruncateBefore; }
  bool WSoftDeleted() const { return w_metadata.truncate_before == kSoftDeletedTruncateBefore; }
  // What expected versions are checked against (writer side): the last version, or nullopt when
  // the stream has no events or is soft-deleted.
  std::optional<uint64_t> WActualVersion() const {
    return w_next > 0 && !WSoftDeleted() ? std::optional<uint64_t>(w_next - 1) : std::nullopt;
  }
  // The row the persistent tier gets for this entry.
  StreamRow Row() const {
    StreamRow r;
    r.id = id;
    r.count = count();
    r.last_position = last_position;
    r.tombstone = tombstone_position.value_or(0);
    r.has_meta = has_meta;
    if (has_meta) r.metadata_json = metadata.ToJson();
    return r;
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
    Enter({id, position});
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
    Enter(Slot{});
  }

  uint64_t capacity() const { return capacity_; }

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
  // Slots reserved at the first event (24 MiB of address space); a larger window grows past it.
  static constexpr uint64_t kReservedSlots = 1 << 20;

  size_t Home(const Uuid& id) const { return UuidHash{}(id) & mask_; }

  // Puts `s` in the ring as the newest of the last N events, forgetting the oldest once full.
  void Enter(const Slot& s) {
    if (ring_.size() < capacity_) {
      // Reserved at the first event (the default window whole): address space only until the
      // slots are used, and no copy of the ring each time it would double on the writer's path
      // (about a tenth of the writer's samples over a new store's first 300,000 events, sync=none).
      if (ring_.empty()) ring_.reserve(std::min<uint64_t>(capacity_, kReservedSlots));
      ring_.push_back(s);
    } else {
      Erase(ring_[next_]);
      ring_[next_] = s;
      next_ = (next_ + 1) % capacity_;
    }
  }

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

// Recent sparse marks: a mark at least every kEvery records or whenever time moved on by
// kStepNanos. Every record before a mark's position has recorded_at <= the mark's time. Older
// marks are in the IndexStore (the writer moves them there with the rest of the memtable).
class TimeIndex {
 public:
  static constexpr uint64_t kEvery = 1024;
  static constexpr int64_t kStepNanos = 1'000'000;

  // `records` records starting at `position`, recorded at `time`.
  void Add(int64_t time, uint64_t position, uint64_t records) {
    if (since_ >= kEvery || !last_mark_time_ || time - *last_mark_time_ >= kStepNanos) {
      marks_.push_back({time, position, total_});
      last_mark_time_ = time;
      since_ = 0;
    }
    since_ += records;
    total_ += records;
  }
  // Records counted so far (those before the head).
  uint64_t total() const { return total_; }
  const std::vector<TimeMark>& marks() const { return marks_; }
  void ClearMarks() { marks_.clear(); }
  // Starts counting after the `records` records that the IndexStore covers.
  void Reset(uint64_t records) {
    *this = TimeIndex();
    total_ = records;
  }

  // The position of the last recent mark with time <= t; nullopt when no recent mark is that
  // early (then the IndexStore knows, or the answer is the start of the log).
  std::optional<uint64_t> StartFor(int64_t t) const { return StartIn(marks_, t); }
  // The same over any marks in order.
  static std::optional<uint64_t> StartIn(const std::vector<TimeMark>& marks, int64_t t) {
    if (marks.empty() || marks.front().time > t) return std::nullopt;
    size_t lo = 0, hi = marks.size();
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (marks[mid].time <= t) lo = mid + 1; else hi = mid;
    }
    return marks[lo - 1].position;
  }
  // The last recent mark with records <= n, if any.
  std::optional<TimeMark> LastWithRecordsAtMost(uint64_t n) const {
    for (size_t i = marks_.size(); i > 0; --i) {
      if (marks_[i - 1].records <= n) return marks_[i - 1];
    }
    return std::nullopt;
  }

 private:
  std::vector<TimeMark> marks_;
  std::optional<int64_t> last_mark_time_;
  uint64_t since_ = 0;
  uint64_t total_ = 0;
};

}  // namespace cairn::storage
