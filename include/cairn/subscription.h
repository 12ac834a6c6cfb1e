// Catch-up subscriptions: a stream's or $all's events in order, first the history, then each new
// event as it commits, with no gap and no duplicate, resumable from a checkpoint.
//
//   auto sub = SubscribeToAll(*store, {.from = AllFrom::Start()});
//   while (sub->Next(std::chrono::seconds(1))) {
//     const SubscriptionMessage& m = sub->message();
//     if (m.kind == SubscriptionMessage::Kind::kEvent) Use(m.event);
//     SaveCheckpoint(m.checkpoint);            // resume later with AllFrom::Checkpoint(...)
//   }
//   if (!sub->status().ok()) ...               // an error ended it; ok() after a timeout or Stop()
//
// How it works, and why it is safe: a subscription is a reader of the log, not a queue. Each
// "pass" takes the store's head, opens a cursor from the subscription's checkpoint (the cursor
// never returns events past the durable head) and hands out its events one at a time; at the end
// of a pass it waits for the head to move (Store::WaitForAppend) and starts the next pass from
// where the last one stopped. Because positions strictly increase in commit order and readers
// never see a position before every earlier one is visible, a pass can neither skip nor repeat
// an event, under any number of writers. It is built only on the public Store API, so every
// backend gets it.
//
// Back-pressure: nothing is buffered. A slow consumer simply reads later; the events wait in the
// log. A consumer that was caught up and then falls more than `fell_behind_after_events` behind
// the head gets a kFellBehind message, keeps reading from the log, and gets kCaughtUp again when
// it is back within that distance.
//
// Thread-safety: one thread calls Next(); Stop() may be called from any thread. A subscription
// must not outlive its Store. Errors (status()): those of the reads (kCorruption, kIOError,
// kInvalidArgument for a starting position that is not an event's), kNotFound/kStreamDeleted
// when a subscribed stream is tombstoned, kFailedPrecondition when the store closes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "cairn/event.h"
#include "cairn/read.h"
#include "cairn/status.h"
#include "cairn/types.h"

namespace cairn {

class Store;

// Where a $all subscription begins.
class AllFrom {
 public:
  // Every event of the store.
  static AllFrom Start() { return AllFrom(Kind::kCheckpoint, Position::Start()); }
  // Only events committed after the subscription is made (the head at that moment).
  static AllFrom Now() { return AllFrom(Kind::kNow, Position::Start()); }
  // Events strictly after the event at `position` (a position a subscription or read delivered).
  static AllFrom After(Position position) { return AllFrom(Kind::kAfter, position); }
  // Events at or after `checkpoint`: a SubscriptionMessage::checkpoint (or Position::Start()).
  static AllFrom Checkpoint(Position checkpoint) { return AllFrom(Kind::kCheckpoint, checkpoint); }

  enum class Kind : uint8_t { kNow, kAfter, kCheckpoint };
  Kind kind() const { return kind_; }
  Position position() const { return position_; }

 private:
  AllFrom(Kind kind, Position position) : kind_(kind), position_(position) {}
  Kind kind_;
  Position position_;
};

// Where a stream subscription begins.
class StreamFrom {
 public:
  // The stream's first (visible) event.
  static StreamFrom Start() { return StreamFrom(Kind::kVersion, 0); }
  // Only events appended after the subscription is made.
  static StreamFrom Now() { return StreamFrom(Kind::kNow, 0); }
  // Events with versions greater than `version` (the last one the consumer handled).
  static StreamFrom After(StreamVersion version) { return StreamFrom(Kind::kVersion, version + 1); }
  // Events with versions at or above `version` (a SubscriptionMessage::next_version).
  static StreamFrom Version(StreamVersion version) { return StreamFrom(Kind::kVersion, version); }

  enum class Kind : uint8_t { kNow, kVersion };
  Kind kind() const { return kind_; }
  StreamVersion version() const { return version_; }

 private:
  StreamFrom(Kind kind, StreamVersion version) : kind_(kind), version_(version) {}
  Kind kind_;
  StreamVersion version_;
};

struct SubscribeToAllOptions {
  AllFrom from = AllFrom::Start();
  // Only matching events are delivered; the others still move the checkpoint.
  EventFilter filter;
  // A filtered subscription reports a kCheckpoint after this many events were skipped since its
  // last message, so that a consumer of rare events can save its place and need not rescan the
  // log after a restart. Small enough to bound the rescan, large enough that checkpoints cost
  // nothing next to the events. 0 turns it off.
  uint32_t checkpoint_interval_events = 4096;
  // After catching up, falling this many events behind the head counts as falling behind
  // (kFellBehind). Around a second of a busy store's events.
  uint64_t fell_behind_after_events = 100'000;
};

struct SubscribeToStreamOptions {
  StreamFrom from = StreamFrom::Start();
  uint64_t fell_behind_after_events = 100'000;
};

// One message of a subscription.
struct SubscriptionMessage {
  enum class Kind : uint8_t {
    kEvent,       // `event` is the next event
    kCheckpoint,  // a filtered subscription skipped events; save `checkpoint` to resume past them
    kCaughtUp,    // every event committed before now has been delivered; what follows is live
    kFellBehind,  // the consumer is more than fell_behind_after_events behind the head
  };
  Kind kind = Kind::kEvent;
  // For kEvent: borrowed; valid until the next call to Next() (copy with ToOwned()).
  RecordedEventView event;
  // $all: subscribing with AllFrom::Checkpoint(checkpoint) resumes right after this message
  // (every message carries it). Stream subscriptions: Position::Start().
  Position checkpoint;
  // Stream subscriptions: the version the next event of the stream will have; resume with
  // StreamFrom::Version(next_version). $all: 0.
  StreamVersion next_version = 0;
};

class Subscription {
 public:
  virtual ~Subscription() = default;

  // Waits up to `timeout` for the next message. True: message() holds it. False: the timeout
  // passed (done() is false), or the subscription ended (done(): Stop(), the store closed, or an
  // error in status()).
  virtual bool Next(std::chrono::milliseconds timeout) = 0;
  bool Next() { return Next(std::chrono::milliseconds::max()); }
  virtual const SubscriptionMessage& message() const = 0;

  // Ends the subscription: a blocked or later Next() returns false soon after. Any thread.
  virtual void Stop() = 0;
  virtual bool done() const = 0;
  virtual Status status() const = 0;

  // Whether the last kCaughtUp has not been followed by a kFellBehind.
  virtual bool live() const = 0;

  // Where a new subscription would resume right now, as in SubscriptionMessage: for $all past
  // every event read so far, delivered or filtered out (so a filtered consumer that is idle can
  // save its place without waiting for a kCheckpoint); for a stream, the next version.
  virtual Position checkpoint() const = 0;
  virtual StreamVersion next_version() const = 0;
};

// Subscribes to $all. Fails at once only for bad options; a bad starting position is reported by
// the first Next() (kInvalidArgument).
Result<std::unique_ptr<Subscription>> SubscribeToAll(Store& store, const SubscribeToAllOptions& options = {});

// Subscribes to one stream. A stream that does not exist yet, or is soft-deleted, is waited for:
// its events are delivered when they are appended (after a soft delete the stream continues with
// its next versions, and the hidden ones are not delivered again). A tombstone ends the
// subscription with kNotFound/kStreamDeleted. Events that the stream's metadata hides
// (truncate-before, max-count, max-age) at the time they are read are skipped, as ReadStream does.
Result<std::unique_ptr<Subscription>> SubscribeToStream(Store& store, std::string_view stream,
                                                        const SubscribeToStreamOptions& options = {});

// A push runner on top of a Subscription: a thread that calls Next() and hands each message to
// `on_message`, one at a time and in order (no queue: a slow handler slows the reading, never
// the memory). A non-OK Status returned by the handler, or an exception it throws, stops the
// runner; status() then names the handler's error (an exception as kInternal with its what()).
class SubscriptionRunner {
 public:
  using Handler = std::function<Status(const SubscriptionMessage&)>;

  SubscriptionRunner(std::unique_ptr<Subscription> subscription, Handler on_message);
  ~SubscriptionRunner();  // Stop() and join
  SubscriptionRunner(const SubscriptionRunner&) = delete;
  SubscriptionRunner& operator=(const SubscriptionRunner&) = delete;

  // Stops the subscription and waits for the thread. Returns why it ended: OK when Stop() ended
  // it, else the error of the subscription (kFailedPrecondition when the store closed) or of the
  // handler.
  Status Stop();
  // Whether the thread ended by itself (an error or the store closing).
  bool done() const { return done_.load(std::memory_order_acquire); }

 private:
  void Run();

  std::unique_ptr<Subscription> subscription_;
  Handler on_message_;
  Status status_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace cairn
