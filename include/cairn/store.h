// Store: the event store. Open one with Store::Open(url, options):
//
//   "file:PATH"      the embedded engine on a data directory (created if missing); one process at
//                    a time (an exclusive lock; a second opener gets kUnavailable/kStoreLocked).
//   "memory:"        the same engine on memory, private to this Store object; nothing persists.
//   Query parameters override Options: "file:./data?sync=none&segment_size=67108864".
//
// The contract every backend keeps (docs/architecture.md):
// - Append is atomic: all of its events are stored, or none.
// - Acknowledged means durable: with sync=always (the default) Append returns only after the
//   events are on disk (fdatasync). sync=interval and sync=none acknowledge earlier and can lose
//   the latest appends on a power failure; they say so in the log at open.
// - Versions per stream are 0, 1, 2, ... with no gap. Positions strictly increase in commit order
//   and readers never see a position before all earlier ones are visible.
// - Optimistic concurrency: a wrong ExpectedVersion writes nothing and returns kConflict with
//   the actual version.
// - Idempotent retries: an append whose event ids equal those of an earlier append to the same
//   stream, in the same order, returns the earlier AppendResult and writes nothing, as long as
//   the earlier events are among the last Options::idempotency_window_events events of the store.
//   Outside the window the ids are not checked (a retry appends again). A batch with one id twice
//   is kInvalidArgument; ids that match only part of an earlier append, or another stream's
//   events, are kAlreadyExists/kDuplicateEventId.
// - Integrity: every record is checksummed; corruption is reported with its location, never
//   served. A failed fsync stops the writer for good (kIOError/kWriterStopped).
//
// Thread-safety: every method may be called from any number of threads at once. Appends from
// all threads are committed by one writer thread in groups (one write and one fdatasync per
// group); that is where the throughput comes from, so many concurrent appenders are cheap.
//
// Stream names: 1 to kMaxStreamNameBytes bytes of valid UTF-8 without NUL. Names starting with
// '$' belong to the system: reading them is allowed, appending is not (see AppendOptions).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/event.h"
#include "cairn/read.h"
#include "cairn/stats.h"
#include "cairn/status.h"
#include "cairn/stream.h"
#include "cairn/types.h"

namespace cairn {

// Limits. Inputs beyond them are rejected with kInvalidArgument naming the field and the limit.
inline constexpr size_t kMaxStreamNameBytes = 1000;
inline constexpr size_t kMaxEventTypeBytes = 500;
// One event's data plus metadata.
inline constexpr size_t kMaxEventBytes = 4 << 20;
// All events of one append together (also bounded by the segment size of a store).
inline constexpr size_t kMaxAppendBytes = 16 << 20;
inline constexpr size_t kMaxAppendEvents = 10'000;

enum class SyncMode : uint8_t {
  kAlways,    // fdatasync before acknowledging each group commit (durable, the default)
  kInterval,  // acknowledge after the write; fdatasync every sync_interval_ms (may lose that much)
  kNone,      // never fdatasync (tests, benchmarks, rebuildable data)
};

struct Options {
  // Durable by default: acknowledged appends survive a power failure.
  SyncMode sync = SyncMode::kAlways;
  // For SyncMode::kInterval: the most time an acknowledged append may stay unsynced.
  uint32_t sync_interval_ms = 100;
  // Size of one log segment file. Large enough that file creation (and its directory fsync) is
  // rare, small enough to copy and verify one at a time. Fixed when the store is created.
  uint64_t segment_size_bytes = 256 << 20;
  // How many of the most recent events the idempotency check remembers (see the header comment).
  // About 60 bytes of memory each, once used.
  uint64_t idempotency_window_events = 1'000'000;
  // Memory for the recent part of the stream and time indexes. Past it, the engine moves that
  // part to its on-disk index (DIR/index/, LMDB), so memory stays bounded however long the log
  // grows; a smaller value means more frequent, smaller index writes. 0 writes after every group
  // commit (tests). The idempotency window's memory comes on top of this.
  uint64_t index_memory_bytes = 64 << 20;
  // Create the data directory when it does not exist.
  bool create_if_missing = true;
};

struct AppendOptions {
  // Allow a stream name starting with '$'. For cairn's own layers (the toolkit, projections and
  // the server), which own system streams; applications should not need it.
  bool allow_system_stream = false;
};

struct AppendResult {
  StreamVersion first_version = 0;  // version of the first appended event
  StreamVersion next_version = 0;   // version the next event of the stream will get
  Position position;                // position of the first appended event
  bool operator==(const AppendResult&) const = default;
};

class Store {
 public:
  virtual ~Store() = default;

  // Opens or creates a store. Errors: kInvalidArgument (bad URL or option), kUnavailable with
  // kStoreLocked (another process has it open), kCorruption (with segment and offset), kIOError.
  static Result<std::unique_ptr<Store>> Open(std::string_view url, const Options& options = {});

  // Appends events to one stream atomically. See the header comment for concurrency and
  // idempotency. Blocks until acknowledged (durable under SyncMode::kAlways).
  virtual Result<AppendResult> Append(std::string_view stream, ExpectedVersion expected,
                                      std::span<const EventData> events,
                                      const AppendOptions& options = {}) = 0;

  // The same, without blocking: `done` runs once the append is acknowledged or rejected, on a
  // store thread, in commit order among appends. Keep `done` short; it must not call back into
  // the store synchronously. The events are copied before AppendAsync returns.
  using AppendCallback = std::function<void(Result<AppendResult>)>;
  virtual void AppendAsync(std::string_view stream, ExpectedVersion expected,
                           std::span<const EventData> events, AppendCallback done,
                           const AppendOptions& options = {}) = 0;

  // The same, taking the events instead of copying them: for a caller that built them only to
  // append them (the server builds them from a request's bytes). `events` is left in a valid,
  // unspecified state. A backend without a cheaper way copies, as the overload above does; the
  // embedded engine keeps the vector itself. Chosen for a std::vector rvalue (std::move(v), or
  // a function's returned vector); an lvalue still goes to the span overload and is copied.
  virtual void AppendAsync(std::string_view stream, ExpectedVersion expected, std::vector<EventData>&& events,
                           AppendCallback done, const AppendOptions& options = {}) {
    const std::vector<EventData> taken = std::move(events);
    AppendAsync(stream, expected, std::span<const EventData>(taken), std::move(done), options);
  }

  // Reads one stream. kNotFound with kStreamNotFound when it has no events (or is soft-deleted),
  // with kStreamDeleted when tombstoned. Reading past the end yields an empty cursor.
  virtual Result<EventCursor> ReadStream(std::string_view stream, const ReadStreamOptions& options = {}) = 0;

  // Reads $all, in commit order or its reverse.
  virtual Result<EventCursor> ReadAll(const ReadAllOptions& options = {}) = 0;

  // The position of the first event recorded after `time`: reading $all backward from it, or
  // forward to it, gives the store as it was at `time`. End() when no event is later.
  virtual Result<Position> PositionAtTime(Timestamp time) = 0;

  // Whether the stream exists, its last version and its metadata. Never kNotFound for a
  // well-formed name: a stream never written has exists == false.
  virtual Result<StreamInfo> GetStreamInfo(std::string_view stream) = 0;

  // Sets stream metadata by appending to the metastream "$$<stream>"; `expected` applies to the
  // metastream. Takes effect for reads at once.
  virtual Result<AppendResult> SetStreamMetadata(std::string_view stream, ExpectedVersion expected,
                                                 const StreamMetadata& metadata) = 0;

  // Soft delete: reads say not found; a later append re-opens the stream and continues its
  // version numbers (earlier events stay hidden). `expected` applies to the stream.
  virtual Result<AppendResult> DeleteStream(std::string_view stream, ExpectedVersion expected) = 0;

  // Hard delete: the stream can never be read or written again. Irreversible.
  virtual Result<AppendResult> TombstoneStream(std::string_view stream, ExpectedVersion expected) = 0;

  // Stream names by prefix, in name order, one page at a time (ListStreamsOptions in stream.h).
  // kInvalidArgument when max_count is 0 or above kMaxListStreams, naming the field.
  virtual Result<std::vector<StreamSummary>> ListStreams(const ListStreamsOptions& options) = 0;

  // A snapshot of the store's counters (stats.h). Cheap: for metrics scraped every few seconds.
  // A backend that counts nothing says only where its head is.
  virtual StoreStats Stats() const {
    StoreStats s;
    s.head = HeadPosition();
    return s;
  }

  // The position after the last acknowledged event (what a reader can see now).
  virtual Position HeadPosition() const = 0;

  // Blocks until HeadPosition() > after, or the timeout passes, or the store closes. Returns the
  // head position. The building block of live subscriptions.
  virtual Position WaitForAppend(Position after, std::chrono::milliseconds timeout) = 0;

  // Stops the writer after the appends already accepted, syncs, and releases the directory.
  // Appends after Close() fail with kFailedPrecondition. Called by the destructor too.
  virtual Status Close() = 0;
};

// Checks every record of a store's log without opening it for writing (the data directory's lock
// is taken so that no writer changes it meanwhile). OK when intact; kCorruption naming the
// segment file and offset of the first bad record otherwise. `progress` (may be empty) is called
// now and then with the bytes checked and the total.
Status VerifyStore(std::string_view url, const std::function<void(uint64_t done, uint64_t total)>& progress = {});

}  // namespace cairn
