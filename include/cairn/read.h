// Reading: the options of stream and $all reads, the filter for $all, and EventCursor, which
// walks the result one event at a time without copying it.
//
// A cursor is a snapshot bound: it never returns events past the store's durable position as of
// the call that created it (readers never see what is not yet acknowledged). It is not
// thread-safe; use one cursor per thread. It may outlive neither its Store.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cairn/event.h"
#include "cairn/status.h"
#include "cairn/types.h"

namespace cairn {

enum class ReadDirection : uint8_t { kForward, kBackward };

// Reading one stream. Stream metadata is honoured: events before truncate-before, beyond
// max-count or older than max-age are not returned (EventStoreDB's meaning).
struct ReadStreamOptions {
  ReadDirection direction = ReadDirection::kForward;
  // Forward: the first version to return. Backward: the last version to return; nullopt means
  // the start (forward) or the end (backward).
  std::optional<StreamVersion> from;
  // At most this many events. Reads are cursors, so a large number costs no memory.
  uint64_t max_count = std::numeric_limits<uint64_t>::max();
  // Temporal query: only events recorded at or before this time ("the state at 2pm yesterday").
  std::optional<Timestamp> as_of;
};

// Which events a $all read returns. All set criteria must hold. Empty means every event,
// including the system's own ("$metadata", "$streamDeleted").
struct EventFilter {
  std::vector<std::string> stream_prefixes;  // any of them: "account-", "order"
  std::vector<std::string> categories;       // any of them: exact category match
  std::vector<std::string> event_types;      // any of them: exact type match
  bool exclude_system_events = false;        // drop events whose type starts with '$'

  bool Empty() const {
    return stream_prefixes.empty() && categories.empty() && event_types.empty() && !exclude_system_events;
  }
  bool Matches(std::string_view stream, std::string_view type) const;
};

// Reading $all, the whole store in commit order. Stream metadata (max-count, max-age,
// truncate-before) does not hide events in $all, as in EventStoreDB: $all is the log.
struct ReadAllOptions {
  ReadDirection direction = ReadDirection::kForward;
  // Forward: the first position to return (events at or after it). Backward: return events
  // strictly before it. Start() / End() read from either end.
  Position from = Position::Start();
  uint64_t max_count = std::numeric_limits<uint64_t>::max();
  EventFilter filter;
  // Temporal query: only events recorded at or before this time.
  std::optional<Timestamp> as_of;
};

// The backend side of a cursor. Implemented by each backend; users see EventCursor.
class CursorImpl {
 public:
  virtual ~CursorImpl() = default;
  // Produces the next event into *out, or returns false at the end or on error.
  virtual bool Next(RecordedEventView* out) = 0;
  virtual Status status() const = 0;
  // The position the cursor has scanned up to (for $all: where a later read should resume,
  // also when a filter matched nothing).
  virtual Position checkpoint() const = 0;
};

// Usage:
//   auto cursor = store->ReadStream("account-1", {});
//   if (!cursor.ok()) return cursor.status();
//   while (cursor->Next()) Use(cursor->event());
//   if (!cursor->status().ok()) ...
class EventCursor {
 public:
  explicit EventCursor(std::unique_ptr<CursorImpl> impl) : impl_(std::move(impl)) {}
  EventCursor(EventCursor&&) noexcept = default;
  EventCursor& operator=(EventCursor&&) noexcept = default;

  // Advances to the next event. False at the end, or on an error (then status() says which).
  bool Next() { return impl_->Next(&event_); }
  // The current event; valid until the next call to Next() or the cursor's destruction.
  const RecordedEventView& event() const { return event_; }
  Status status() const { return impl_->status(); }
  Position checkpoint() const { return impl_->checkpoint(); }

  // Reads the rest into owned events (convenience for small reads and tests).
  Result<std::vector<RecordedEvent>> Collect();

 private:
  std::unique_ptr<CursorImpl> impl_;
  RecordedEventView event_;
};

}  // namespace cairn
