#include "storage/cursors.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>

#include "util/coding.h"

namespace cairn::storage {

namespace {

// Walks a stream's versions, copying their positions from the index (memtable or IndexStore) a
// chunk at a time, so that a long read holds the index lock only briefly and uses bounded
// memory, and decoding each event from the mapped log. The stream is looked up again for each
// chunk: the memtable may have moved to the IndexStore in between.
class StreamCursor final : public CursorImpl {
  static constexpr size_t kPrefetch = 4;
  static constexpr size_t kPrefetchBytes = 512;

 public:
  StreamCursor(const EmbeddedStore& store, std::string stream, uint64_t next, uint64_t end, bool forward, uint64_t max)
      : store_(store), stream_(std::move(stream)), next_(next), end_(end), forward_(forward), remaining_(max) {}

  bool Next(RecordedEventView* out) override {
    if (!status_.ok() || remaining_ == 0) return false;
    if (i_ == chunk_.size() && !Refill()) return false;
    // A stream's events are scattered through the log: start fetching a few ahead, the whole
    // of a typical record (the checksum reads all of it), not only its first cache line.
    if (i_ + kPrefetch < chunk_.size() && seg_ != nullptr) {
      const uint64_t cap = store_.log().capacity(), ahead = chunk_[i_ + kPrefetch];
      if (ahead / cap == seg_->number) {
        const std::byte* p = seg_->base + ahead % cap;
        for (size_t line = 0; line < kPrefetchBytes; line += 64) __builtin_prefetch(p + line);
      }
    }
    RecordView rv;
    status_ = store_.log().ReadAt(chunk_[i_++], &rv, &seg_);
    if (!status_.ok()) return false;
    *out = rv.ToEvent();
    checkpoint_ = rv.position;
    remaining_--;
    return true;
  }
  Status status() const override { return status_; }
  Position checkpoint() const override { return Position(checkpoint_); }

 private:
  bool Refill() {
    static constexpr uint64_t kChunk = 1024;
    chunk_.clear();
    i_ = 0;
    // Forward: [next_, next_+n). Backward: next_ is one past the version to read next and end_
    // is the lowest visible, so [next_-n, next_) reversed.
    const uint64_t n = std::min({kChunk, remaining_, forward_ ? (end_ > next_ ? end_ - next_ : 0) : (next_ > end_ ? next_ - end_ : 0)});
    if (n == 0) return false;
    const uint64_t from = forward_ ? next_ : next_ - n;
    std::shared_lock lock(store_.index_mu());
    EmbeddedStore::StreamRef ref;
    status_ = store_.FindStream(stream_, &ref);
    if (status_.ok() && (!ref.found || ref.count < from + n)) {
      status_ = Status::Internal(fmt::format("stream {} lost versions below {} while being read", stream_, from + n));
    }
    if (status_.ok()) status_ = store_.PositionsOf(ref, from, n, &chunk_);
    if (!status_.ok()) {
      chunk_.clear();
      return false;
    }
    if (forward_) {
      next_ += n;
    } else {
      std::reverse(chunk_.begin(), chunk_.end());
      next_ -= n;
    }
    return true;
  }

  const EmbeddedStore& store_;
  std::string stream_;
  uint64_t next_, end_;
  bool forward_;
  uint64_t remaining_;
  std::vector<uint64_t> chunk_;
  size_t i_ = 0;
  const Segment* seg_ = nullptr;
  Status status_;
  uint64_t checkpoint_ = 0;
};

// How far ahead of the record being decoded a forward $all read prefetches (measured: 2 to 4 KiB
// read 10 M events 1.4 to 1.5 times as fast as no prefetch; 8 and 16 KiB no faster).
constexpr uint64_t kPrefetchDistance = 4096;

// Walks the log itself, forward or backward, between segment boundaries, verifying each record's
// checksum. Stops at `limit` (the head when the cursor was made).
class AllCursor final : public CursorImpl {
 public:
  AllCursor(const EmbeddedStore& store, const ReadAllOptions& options, uint64_t limit)
      : log_(store.log()), cap_(log_.capacity()), filter_(options.filter), forward_(options.direction == ReadDirection::kForward),
        remaining_(options.max_count), limit_(limit) {
    pos_ = forward_ ? options.from.value() : std::min(options.from.value(), limit);
    user_position_ = forward_ ? options.from != Position::Start() : options.from < Position(limit);
    checkpoint_ = pos_;
  }

  bool Next(RecordedEventView* out) override {
    while (status_.ok() && remaining_ > 0) {
      RecordView rv;
      if (!(forward_ ? Forward(&rv) : Backward(&rv))) return false;
      if (filter_.Empty() || filter_.Matches(rv.stream, rv.type)) {
        *out = rv.ToEvent();
        remaining_--;
        return true;
      }
    }
    return false;
  }
  Status status() const override { return status_; }
  Position checkpoint() const override { return Position(checkpoint_); }

 private:
  bool Fail(const Segment* s, uint64_t off, DecodeError e) {
    if (user_position_) {
      status_ = Status::InvalidArgument(fmt::format("position {} is not the position of an event", pos_));
    } else {
      status_ = Status::Corruption(fmt::format("segment {} offset {} (position {}): {}", s->path, off,
                                               s->number * cap_ + off, DecodeErrorName(e)));
    }
    return false;
  }

  bool Forward(RecordView* rv) {
    for (;;) {
      if (pos_ >= limit_) return false;
      uint64_t number = pos_ / cap_, off = pos_ % cap_;
      if (off < kSegmentHeaderSize) {
        off = kSegmentHeaderSize;
        pos_ = number * cap_ + off;
        continue;
      }
      const Segment* s = Seg(number);
      if (s == nullptr) return false;
      const uint64_t end = s->end.load(std::memory_order_acquire);
      if (off >= end) {
        if (off > end && user_position_) {
          status_ = Status::InvalidArgument(fmt::format("position {} is not the position of an event", pos_));
          return false;
        }
        pos_ = (number + 1) * cap_ + kSegmentHeaderSize;
        continue;
      }
      // The records are read in file order, but the pages of a mapped file are scattered in
      // memory and the hardware prefetcher stops at each page boundary: ask for the cache lines
      // kPrefetchDistance bytes ahead, so that the checksum below rarely waits for memory.
      if (forward_ahead_ < off) forward_ahead_ = off;
      const uint64_t ahead_end = std::min<uint64_t>(end, off + kPrefetchDistance);
      for (; forward_ahead_ < ahead_end; forward_ahead_ += 64) __builtin_prefetch(s->base + forward_ahead_);
      DecodeError e = DecodeRecord(s->base + off, end - off, pos_, rv);
      if (e != DecodeError::kOk) return Fail(s, off, e);
      user_position_ = false;
      pos_ += rv->length;
      checkpoint_ = pos_;
      return true;
    }
  }

  // Backward keeps (segment, offset) rather than a position: the end of a segment filled to its
  // capacity has the same position as the start of the next one.
  bool Backward(RecordView* rv) {
    if (!backward_started_) {
      backward_started_ = true;
      bnumber_ = pos_ / cap_;
      boffset_ = pos_ % cap_;
    }
    for (;;) {
      const Segment* s = Seg(bnumber_);
      if (s == nullptr) {
        // Past the last segment: continue from the end of the last one.
        const uint64_t count = log_.SegmentCount();
        if (count == 0 || bnumber_ < count) return false;
        bnumber_ = count - 1;
        boffset_ = cap_;
        continue;
      }
      boffset_ = std::min(boffset_, s->end.load(std::memory_order_acquire));
      if (boffset_ <= kSegmentHeaderSize) {
        if (bnumber_ == 0) return false;
        bnumber_--;
        boffset_ = cap_;
        continue;
      }
      const uint32_t len = util::DecodeU32(s->base + boffset_ - kRecordTrailerSize);
      if (len < kMinRecordSize || len % kRecordAlignment != 0 || len > boffset_ - kSegmentHeaderSize) {
        return Fail(s, boffset_, DecodeError::kBadLength);
      }
      const uint64_t start = boffset_ - len;
      DecodeError e = DecodeRecord(s->base + start, len, bnumber_ * cap_ + start, rv);
      if (e == DecodeError::kOk && rv->length != len) e = DecodeError::kBadLength;
      if (e != DecodeError::kOk) return Fail(s, start, e);
      user_position_ = false;
      boffset_ = start;
      pos_ = bnumber_ * cap_ + start;
      checkpoint_ = pos_;
      return true;
    }
  }

  // Segments never go away while the store is open: look each up (under the log's lock) once.
  const Segment* Seg(uint64_t number) {
    if (number != seg_number_ || seg_ == nullptr) {
      seg_ = log_.SegmentAt(number);
      seg_number_ = number;
      forward_ahead_ = 0;
    }
    return seg_;
  }

  const Log& log_;
  const uint64_t cap_;
  const Segment* seg_ = nullptr;
  uint64_t seg_number_ = 0;
  EventFilter filter_;
  bool forward_;
  uint64_t remaining_;
  uint64_t limit_;
  uint64_t pos_ = 0;
  bool backward_started_ = false;
  uint64_t bnumber_ = 0, boffset_ = 0;
  bool user_position_ = false;
  uint64_t checkpoint_ = 0;
  uint64_t forward_ahead_ = 0;  // Forward: the offset in seg_ prefetched up to
  Status status_;
};

}  // namespace

Result<EventCursor> MakeStreamCursor(const EmbeddedStore& store, std::string stream, uint64_t lo, uint64_t hi,
                                     const ReadStreamOptions& options) {
  if (options.direction == ReadDirection::kForward) {
    uint64_t start = std::max(options.from.value_or(0), lo);
    return EventCursor(std::make_unique<StreamCursor>(store, std::move(stream), start, std::max(start, hi), true, options.max_count));
  }
  // Backward: from `from` (inclusive) down to lo.
  uint64_t top = hi;  // one past the highest version to return
  if (options.from) top = std::min(top, *options.from + 1);
  return EventCursor(std::make_unique<StreamCursor>(store, std::move(stream), std::max(top, lo), lo, false, options.max_count));
}

Result<EventCursor> MakeAllCursor(const EmbeddedStore& store, const ReadAllOptions& options, uint64_t limit) {
  return EventCursor(std::make_unique<AllCursor>(store, options, limit));
}

}  // namespace cairn::storage
