// Persistent subscriptions (consumer groups): the store, not the consumer, keeps the place, and
// the consumers of one group share its events (competing consumers), acknowledging each one.
// What EventStoreDB calls persistent subscriptions, with its setting names.
//
//   auto subs = PersistentSubscriptions::Open(*store);
//   (*subs)->Create("orders", "billing", {.start_from = PersistentStart::Start()});
//   auto consumer = (*subs)->Connect("orders", "billing", {.buffer_size = 10});
//   while ((*consumer)->Next(std::chrono::seconds(1))) {
//     const PersistentEvent& e = (*consumer)->event();
//     if (Handle(e.event)) (void)(*consumer)->Ack({&e.event.id, 1});
//     else (void)(*consumer)->Nack({&e.event.id, 1}, NackAction::kRetry, "handler failed");
//   }
//
// Who owns what. A group is named by its source, a stream name or "$all" (kAllStreamName), and
// its group name. Everything durable about it lives in the store, in system streams, so it works
// on every backend and survives crashes:
//   $persistentsubscriptions                         one event per group ever created (the list)
//   $persistentsubscription-<source>::<group>-config      settings; the last event says whether
//                                                         the group exists
//   $persistentsubscription-<source>::<group>-checkpoint  where delivery resumes (last event)
//   $persistentsubscription-<source>::<group>-parked      parked events, as links ("$>" events
//                                                         whose data is "<version>@<stream>")
// The PersistentSubscriptions object holds the live state (what is buffered, in flight, acked):
// it is the only one that may serve a given store's groups at a time (one process, as the
// embedded store's lock ensures).
//
// Delivery. A group reads its source with a catch-up subscription from its checkpoint, at most
// live_buffer_size (history_buffer_size while catching up) events ahead of what its consumers
// took. Each event goes to one consumer (strategy: round-robin, dispatch-to-single, or pinned by
// a hash of the stream name, so that one consumer sees one stream in order) with free room in its
// buffer_size. Retried events go out again before new ones; replayed parked events before both.
//   Ack(ids)            the events are done.
//   Nack(ids, kRetry)   delivered again, with retry_count + 1; past max_retry_count, parked.
//   Nack(ids, kPark)    appended to the parked stream, then done (ReplayParked brings it back).
//   Nack(ids, kSkip)    done, without handling.
//   Nack(ids, kStop)    back to the group as not delivered, and this consumer leaves the group.
// An event not acknowledged within message_timeout_ms is treated as Nack(kRetry) (and so goes to
// another consumer when one has room). A consumer that leaves gives its unacknowledged events
// back the same way. Acks and nacks of ids that are not in flight are ignored (a late answer for
// an event that timed out and went elsewhere).
//
// At least once, never skipped. The checkpoint is the resume point just before the oldest event
// of the group that is not done yet (or past everything read when all is done), written when it
// moved by max_checkpoint_count events, or by min_checkpoint_count events and checkpoint_after_ms
// passed, and when a group stops cleanly. A parked event is in the parked stream before it counts
// as done. After a crash, delivery resumes from the last written checkpoint: the events done
// since then are delivered again, none is skipped. Consumers deduplicate by event id if needed.
//
// Thread-safety: every method of PersistentSubscriptions and of a PersistentConsumer may be
// called from any thread; one thread at a time calls a consumer's Next(). The Store must outlive
// the PersistentSubscriptions, which must outlive its consumers' use (after Close() they end).
//
// Errors: kNotFound (an unknown group), kAlreadyExists (Create of an existing group),
// kInvalidArgument (a bad name or setting: the message names the field and the limit),
// kResourceExhausted (max_subscriber_count reached), kUnavailable for a consumer whose group was
// updated or restarted (connect again), kNotFound for one whose group was deleted,
// kFailedPrecondition after Close(), and the store's own errors.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/event.h"
#include "cairn/read.h"
#include "cairn/status.h"
#include "cairn/types.h"

namespace cairn {

class Store;

// The source name of a group on $all.
inline constexpr std::string_view kAllStreamName = "$all";
// Group names: 1 to this many bytes of UTF-8 without NUL.
inline constexpr size_t kMaxGroupNameBytes = 200;
// Bounds of the settings (kInvalidArgument beyond them, naming the setting and the bound).
inline constexpr int64_t kMaxPersistentBufferSize = 100'000;    // live/history buffer, read batch
inline constexpr int64_t kMaxPersistentRetryCount = 1'000'000;
inline constexpr int64_t kMaxPersistentCheckpointCount = 10'000'000;
inline constexpr int64_t kMaxPersistentSubscriberCount = 10'000;
inline constexpr int64_t kMaxPersistentTimeoutMs = 24LL * 3600 * 1000;  // a day
// A $all group's filter: event type prefixes, and the length of each regular expression.
inline constexpr size_t kMaxPersistentFilterPrefixes = 1'000;
inline constexpr size_t kMaxPersistentFilterRegexBytes = 4'096;
// A consumer's buffer_size (events in flight to it at once).
inline constexpr int64_t kMaxConsumerBufferSize = 10'000;

enum class ConsumerStrategy : uint8_t {
  kDispatchToSingle,  // the first consumer (in connection order) with room
  kRoundRobin,        // the next consumer with room, in turn
  kPinned,            // the consumer chosen by a hash of the stream name (one stream, one consumer)
};
// EventStoreDB's names: "DispatchToSingle", "RoundRobin", "Pinned".
std::string_view ConsumerStrategyName(ConsumerStrategy strategy);
std::optional<ConsumerStrategy> ParseConsumerStrategy(std::string_view name);

// Where a new group starts. For a stream, `value` is a StreamVersion; for $all, a Position's
// value. The event there is included.
struct PersistentStart {
  enum class Kind : uint8_t { kStart, kEnd, kAt };
  static PersistentStart Start() { return {Kind::kStart, 0}; }
  // Only events appended after Create (the end is taken when the group is created).
  static PersistentStart End() { return {Kind::kEnd, 0}; }
  static PersistentStart At(uint64_t value) { return {Kind::kAt, value}; }
  Kind kind = Kind::kEnd;
  uint64_t value = 0;
  bool operator==(const PersistentStart&) const = default;
};

// The settings, with EventStoreDB's names and defaults (signed, as the protocol carries them, so
// that a negative value is reported rather than wrapped).
struct PersistentSubscriptionSettings {
  // Accepted and kept, without effect: cairn stores no link events to resolve.
  bool resolve_links = false;
  // EventStoreDB's default: only new events.
  PersistentStart start_from = PersistentStart::End();
  // Accepted and kept, without effect (cairn always keeps its few counters).
  bool extra_statistics = false;
  // Unacknowledged longer than this, an event is retried. 0: never.
  int64_t message_timeout_ms = 30'000;
  // Retries before an event is parked. 0: the first retry parks it.
  int64_t max_retry_count = 10;
  // Events read ahead of delivery while live, and while catching up.
  int64_t live_buffer_size = 500;
  int64_t history_buffer_size = 500;
  // Events read from the store per round, at most history_buffer_size.
  int64_t read_batch_size = 20;
  // See the header comment (checkpoints). min <= max, max >= 1.
  int64_t checkpoint_after_ms = 2'000;
  int64_t min_checkpoint_count = 10;
  int64_t max_checkpoint_count = 1'000;
  // Consumers at once; 0: no limit.
  int64_t max_subscriber_count = 0;
  ConsumerStrategy consumer_strategy = ConsumerStrategy::kRoundRobin;
  // $all groups only: which events are delivered (the others only move the checkpoint).
  EventFilter filter;
  // $all groups only, on top of `filter` (EventStoreDB's filter kinds): event types by prefix
  // (any of them), and regular expressions that the stream name / the event type must match
  // somewhere (RE2 syntax, which runs in time linear in the text, as .NET's Regex.IsMatch
  // searches). Empty: no condition. Kept with the group's settings.
  std::vector<std::string> event_type_prefixes;
  std::string stream_regex;
  std::string event_type_regex;

  // OK, or kInvalidArgument naming the first bad setting and its bound. `all` says whether the
  // group is on $all (a filter is allowed only there).
  Status Validate(bool all) const;
};

// One event handed to a consumer.
struct PersistentEvent {
  RecordedEvent event;
  // How many times it was delivered before and not acknowledged (0 the first time).
  uint32_t retry_count = 0;
  // The position of a $all event; for a stream group too (every event has one).
  Position position() const { return event.position; }
};

enum class NackAction : uint8_t { kPark, kRetry, kSkip, kStop };

struct ConsumerOptions {
  // Events in flight to this consumer at once (the protocol's buffer_size).
  int64_t buffer_size = 10;
  // Shown in GetInfo / List: the consumer's name, where it connects from, and who it is.
  std::string name;
  std::string from;
  std::string username;
};

class PersistentConsumer {
 public:
  virtual ~PersistentConsumer() = default;  // leaves the group (as Stop())

  // Waits up to `timeout` for the next event. True: event() holds it. False: the timeout passed
  // (done() is false), or the consumer ended (done(); status() says why: OK after Stop()).
  virtual bool Next(std::chrono::milliseconds timeout) = 0;
  // Valid until the next Next().
  virtual const PersistentEvent& event() const = 0;

  // See the header comment. kInvalidArgument for more than kMaxConsumerBufferSize ids at once.
  // Parking happens in the background (the group's thread appends to the parked stream, retrying
  // on a store error); until it is written, the event holds the checkpoint back.
  virtual Status Ack(std::span<const Uuid> ids) = 0;
  virtual Status Nack(std::span<const Uuid> ids, NackAction action, std::string_view reason) = 0;

  // Leaves the group: no more events; unacknowledged ones go back to the group. Any thread.
  virtual void Stop() = 0;
  virtual bool done() const = 0;
  virtual Status status() const = 0;
  // Unique within the process: "<source>::<group>::<n>".
  virtual const std::string& id() const = 0;
};

struct PersistentConnectionInfo {
  std::string id;
  std::string name;
  std::string from;      // ConsumerOptions::from
  std::string username;  // ConsumerOptions::username
  uint64_t delivered = 0;  // events handed to it so far
  uint64_t in_flight = 0;
  uint64_t available_slots = 0;
  // Events handed to it in the last whole second measured (the group measures once a second).
  uint64_t per_second = 0;
};

struct PersistentGroupInfo {
  std::string source;  // the stream name, or "$all"
  std::string group;
  PersistentSubscriptionSettings settings;
  // "Live" (reading new events), "CatchingUp", or "NotReady" (no consumer has connected since
  // the group was loaded).
  std::string status;
  std::vector<PersistentConnectionInfo> connections;
  // The last checkpoint written: the resume point (a version, or a $all position's value) from
  // which delivery starts again after a restart; nullopt when not known.
  std::optional<uint64_t> checkpoint;
  // The resume point after the last event read from the source; nullopt when not known.
  std::optional<uint64_t> last_known;
  // The last event read from the source that the group delivers (its version, or its $all
  // position); nullopt before the first one since the group was loaded.
  std::optional<uint64_t> last_event;
  uint64_t delivered = 0;         // events handed out since the group was loaded
  uint64_t in_flight = 0;         // handed out, not yet acknowledged
  uint64_t buffered = 0;          // read, waiting for a consumer (retries included)
  uint64_t retry_buffered = 0;    // of those, events that come back (nacked, timed out, given back)
  uint64_t parked = 0;            // events in the parked stream
  // Events handed out in the last whole second measured (measured once a second).
  uint64_t per_second = 0;
};

class PersistentSubscriptions {
 public:
  virtual ~PersistentSubscriptions() = default;  // Close()

  // Reads the list of groups. The store's errors only.
  static Result<std::unique_ptr<PersistentSubscriptions>> Open(Store& store);

  // Creates a group. kAlreadyExists when it exists; kInvalidArgument for a bad name or setting.
  virtual Status Create(std::string_view source, std::string_view group,
                        const PersistentSubscriptionSettings& settings) = 0;
  // Replaces the settings (start_from only matters for a group that never wrote a checkpoint,
  // which cannot happen: it is kept but has no effect). Connected consumers end with
  // kUnavailable and connect again. kNotFound for an unknown group.
  virtual Status Update(std::string_view source, std::string_view group,
                        const PersistentSubscriptionSettings& settings) = 0;
  // Deletes a group; its consumers end with kNotFound; its parked events are dropped.
  virtual Status Delete(std::string_view source, std::string_view group) = 0;
  // Every group, or those of one source.
  virtual Result<std::vector<PersistentGroupInfo>> List(std::optional<std::string_view> source = std::nullopt) = 0;
  virtual Result<PersistentGroupInfo> GetInfo(std::string_view source, std::string_view group) = 0;

  // Joins a group as a consumer. kNotFound for an unknown group, kResourceExhausted at
  // max_subscriber_count, kInvalidArgument for a buffer_size outside 1..kMaxConsumerBufferSize.
  virtual Result<std::unique_ptr<PersistentConsumer>> Connect(std::string_view source, std::string_view group,
                                                              const ConsumerOptions& options = {}) = 0;

  // Delivers the parked events again (the oldest `stop_at` of them, or all), ahead of new ones.
  // Each leaves the parked stream once it is done again (acknowledged, skipped or parked anew).
  virtual Status ReplayParked(std::string_view source, std::string_view group,
                              std::optional<uint64_t> stop_at = std::nullopt) = 0;

  // Ends every consumer (kUnavailable), writes the checkpoints and reloads the list of groups.
  virtual Status RestartSubsystem() = 0;

  // Ends every consumer (kFailedPrecondition) and writes the checkpoints. Later calls fail with
  // kFailedPrecondition. Idempotent.
  virtual Status Close() = 0;
};

// The names of a group's system streams (see the header comment).
std::string PersistentConfigStream(std::string_view source, std::string_view group);
std::string PersistentCheckpointStream(std::string_view source, std::string_view group);
std::string PersistentParkedStream(std::string_view source, std::string_view group);

}  // namespace cairn
