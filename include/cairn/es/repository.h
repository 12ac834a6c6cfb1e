// Repository<T>: loads aggregates from their streams and saves their new events, for both styles
// of aggregate.h. T is either a seed-style aggregate class or a decider.
//
//   es::Repository<BankAccount> accounts(*store);
//   auto done = accounts.Execute("42", [](BankAccount& a) { a.Withdraw(100); }, es::CommandContext::New("bob"));
//
//   es::Repository<AccountDecider> accounts2(*store);
//   auto done2 = accounts2.Execute("42", Withdraw{100});
//
// - Stream: "<T::kCategory>-<id>" (RepositoryOptions::stream_prefix overrides "<kCategory>-").
// - Load(id): the latest usable snapshot (if any) plus the events after it. A stream with no events
//   is kNotFound (detail kStreamNotFound; kStreamDeleted when tombstoned). Snapshots whose state
//   version differs from the code's kStateVersion are ignored: the state is replayed from the start.
// - Save: appends the new events expecting the version that was loaded; a concurrent change comes
//   back as kConflict (detail kWrongExpectedVersion) and writes nothing.
// - Execute(id, command): load (a missing stream starts from the initial state, and the append then
//   expects no stream), run the command, save; on a conflict, load the fresh state and run the
//   command again, at most max_attempts times in all. A command that throws writes nothing and the
//   exception reaches the caller unchanged (domain errors stay the caller's own types); a command
//   that returns a non-OK Status (or a decider's Result) writes nothing and Execute returns it.
// - Every event carries the CommandContext's correlation id, causation id and user in its
//   metadata, and its schema version (event.h).
// - Store failures come back as Status with the stream named; the repository never throws.
//
// A Repository is thread-safe (it holds no per-call state); the Store (and bus, snapshot store)
// must outlive it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cairn/es/aggregate.h"
#include "cairn/es/bus.h"
#include "cairn/es/codec.h"
#include "cairn/es/event.h"
#include "cairn/es/schema.h"
#include "cairn/es/snapshot.h"
#include "cairn/status.h"
#include "cairn/store.h"

namespace cairn::es {

struct RepositoryOptions {
  // Renames and upcasters applied to every event read (schema.h). Shared, immutable.
  std::shared_ptr<const Upcasters> upcasters;
  // When to take snapshots by itself. On demand only by default: a snapshot costs an append, and
  // most streams are short enough to replay.
  SnapshotPolicy snapshots;
  // Where snapshots go; nullptr: in the store itself ("$snapshot-<stream>", snapshot.h).
  SnapshotStore* snapshot_store = nullptr;
  // Handlers to call after each successful save (bus.h); nullptr: none.
  EventBus* bus = nullptr;
  // Execute: attempts in all when saves conflict. Five is plenty for contention between a few
  // writers of one aggregate; past that, the aggregate is too hot and the conflict is returned.
  int max_attempts = 5;
  // Load: skip events whose type is none of the aggregate's (they are given to on_skipped_event,
  // as a kNotSupported Status naming type, stream and version) instead of failing the load.
  bool skip_unknown_events = false;
  std::function<void(const Status&)> on_skipped_event;
  // How new events are stored (codec.h): JSON by default, readable by every client and tool.
  // kBinary decodes several times faster on replay (docs/performance.md, "Toolkit").
  Encoding encoding = Encoding::kJson;
  // Stream name prefix; empty means "<kCategory>-".
  std::string stream_prefix;
};

// How a load went (for tests, benchmarks and metrics).
struct LoadStats {
  std::optional<StreamVersion> snapshot_version;  // the snapshot used, if any
  bool snapshot_ignored = false;                  // one existed but its state version was stale
  uint64_t events_replayed = 0;
  uint64_t events_skipped = 0;  // unknown types, with skip_unknown_events
};

// A decider's state with the version it was loaded at.
template <class S>
struct Versioned {
  std::string id;
  S state;
  std::optional<StreamVersion> version;  // nullopt: no events yet (the initial state)
};

template <class T>
struct Loaded {
  T value;
  LoadStats stats;
};

// The outcome of a successful Save / Execute.
struct Committed {
  // The stream's last version afterwards; nullopt when it still has no events.
  std::optional<StreamVersion> version;
  uint64_t event_count = 0;            // events appended (0: the command decided nothing)
  std::optional<AppendResult> append;  // when event_count > 0
  int attempts = 1;                    // Execute: 1 plus the conflicts retried
  std::vector<HandlerError> handler_errors;  // bus handlers that failed (the save stands)
  bool snapshot_taken = false;
  Status snapshot_status;  // a failed snapshot write (the save stands; the next load replays more)
};

template <class T>
class Repository;

namespace internal {

// Where a load stops: the latest state, as of a version, or as of a time.
struct LoadPoint {
  std::optional<StreamVersion> version;
  std::optional<Timestamp> time;
};

Status MissingStream(std::string_view stream, const LoadPoint& point);
Status GaveUp(std::string_view stream, int attempts, const Status& last);
Status BadId(std::string_view id);
bool IsMissing(const Status& s);

// What both repository styles share: streams, decoding, replay, snapshots, appends.
template <EventVariant Event, class State, class Holder>
class RepositoryCore {
 public:
  RepositoryCore(Store& store, RepositoryOptions options, std::string_view category)
      : store_(store), options_(std::move(options)), codec_(options_.upcasters) {
    if (options_.stream_prefix.empty()) options_.stream_prefix = std::string(category) + "-";
    if (options_.snapshot_store == nullptr) {
      owned_snapshots_ = NewStoreSnapshotStore(store);
      options_.snapshot_store = owned_snapshots_.get();
    }
    if (options_.max_attempts < 1) options_.max_attempts = 1;
  }

  static constexpr bool kSnapshots = SnapshotState<State, Holder>;

  std::string StreamOf(std::string_view id) const { return options_.stream_prefix + std::string(id); }
  const RepositoryOptions& options() const { return options_; }
  Store& store() const { return store_; }

  // Replays the stream into `state` (the initial state on entry). Returns the last version.
  template <class Evolve>
  Result<StreamVersion> Rebuild(const std::string& stream, State& state, Evolve&& evolve, const LoadPoint& point,
                                LoadStats* stats) const {
    std::optional<StreamVersion> version;
    ReadStreamOptions read;
    if constexpr (kSnapshots) {
      if (!point.time) {
        auto snapshot = options_.snapshot_store->Latest(stream);
        if (!snapshot.ok()) return snapshot.status().WithContext("load " + stream + ": snapshot");
        if (*snapshot && (!point.version || (*snapshot)->version <= *point.version)) {
          const Snapshot& s = **snapshot;
          if (s.state_version == static_cast<uint32_t>(Holder::kStateVersion) && Restore(s.state_json, state)) {
            version = s.version;
            read.from = s.version + 1;
            stats->snapshot_version = s.version;
          } else {
            stats->snapshot_ignored = true;
          }
        }
      }
    }
    if (point.version) {
      if (version && *version >= *point.version) return *version;
      read.max_count = *point.version + 1 - read.from.value_or(0);
    }
    read.as_of = point.time;
    auto cursor = store_.ReadStream(stream, read);
    if (!cursor.ok()) return cursor.status().WithContext("load " + stream);
    while (cursor->Next()) {
      const RecordedEventView& stored = cursor->event();
      auto event = codec_.Decode(stored);
      if (!event.ok()) {
        if (options_.skip_unknown_events && !codec_.Knows(stored.type)) {
          if (options_.on_skipped_event) options_.on_skipped_event(event.status());
          ++stats->events_skipped;
          version = stored.version;
          continue;
        }
        return event.status().WithContext("load " + stream);
      }
      evolve(state, *event);
      version = stored.version;
      ++stats->events_replayed;
    }
    if (!cursor->status().ok()) return cursor->status().WithContext("load " + stream);
    if (!version) return MissingStream(stream, point);
    return *version;
  }

  // Appends `events` expecting `expected` (nullopt: no stream).
  Result<Committed> Commit(const std::string& stream, std::optional<StreamVersion> expected,
                           std::span<const Event> events, const CommandContext& context) const {
    Committed out;
    out.version = expected;
    if (events.empty()) return out;
    std::vector<EventData> data;
    std::vector<EventBus::Typed> typed;
    data.reserve(events.size());
    for (const Event& e : events) {
      auto encoded = EventCodec<Event>::Encode(e, context, options_.encoding);
      if (!encoded.ok()) return encoded.status().WithContext("save " + stream);
      data.push_back(std::move(*encoded));
      if (options_.bus != nullptr) {
        typed.push_back(std::visit([](const auto& x) { return EventBus::Typed{&x, typeid(x)}; }, e));
      }
    }
    ExpectedVersion ev = expected ? ExpectedVersion::Exact(*expected) : ExpectedVersion::NoStream();
    Result<AppendResult> appended = options_.bus != nullptr
                                        ? options_.bus->AppendAndPublish(store_, stream, ev, data, typed,
                                                                         &out.handler_errors)
                                        : store_.Append(stream, ev, data);
    if (!appended.ok()) return appended.status().WithContext("save " + stream);
    out.append = *appended;
    out.version = appended->next_version - 1;
    out.event_count = events.size();
    return out;
  }

  // Takes a snapshot after a commit when the policy says so.
  void MaybeSnapshot(const std::string& stream, std::optional<StreamVersion> before, const State& state,
                     Committed* c) const {
    if constexpr (kSnapshots) {
      const uint64_t every = options_.snapshots.every_events;
      if (every == 0 || c->event_count == 0) return;
      const uint64_t old_next = before ? *before + 1 : 0;
      const uint64_t new_next = *c->version + 1;
      if (old_next / every == new_next / every) return;
      c->snapshot_status = WriteSnapshot(stream, *c->version, state);
      c->snapshot_taken = c->snapshot_status.ok();
    } else {
      (void)stream, (void)before, (void)state, (void)c;
    }
  }

  Status WriteSnapshot(const std::string& stream, StreamVersion version, const State& state) const {
    if constexpr (kSnapshots) {
      Snapshot s;
      s.version = version;
      s.state_version = static_cast<uint32_t>(Holder::kStateVersion);
      try {
        Json j;
        to_json(j, state);
        s.state_json = j.dump();
      } catch (const std::exception& e) {
        return Status::InvalidArgument("snapshot of " + stream + ": state to JSON: " + e.what());
      }
      return options_.snapshot_store->Save(stream, s);
    } else {
      (void)version, (void)state;
      return Status::NotSupported("snapshot of " + stream +
                                  ": the state has no kStateVersion or no to_json/from_json (aggregate.h)");
    }
  }

  Status DeleteSnapshots(const std::string& stream) const { return options_.snapshot_store->Delete(stream); }

 private:
  static bool Restore(const std::string& text, State& state) {
    Json j = Json::parse(text, nullptr, false);
    if (j.is_discarded()) return false;
    try {
      from_json(std::as_const(j), state);
      return true;
    } catch (const std::exception&) {
      return false;  // unreadable with the same state version: a cache miss, replay instead
    }
  }

  Store& store_;
  RepositoryOptions options_;
  EventCodec<Event> codec_;
  std::unique_ptr<SnapshotStore> owned_snapshots_;
};

}  // namespace internal

// The seed's style: T derives from Aggregate<T, Events...>.
template <AggregateRoot A>
class Repository<A> {
 public:
  using Event = typename A::Event;

  explicit Repository(Store& store, RepositoryOptions options = {})
      : core_(store, std::move(options), A::kCategory) {}

  std::string StreamOf(std::string_view id) const { return core_.StreamOf(id); }

  // A new aggregate with this id and no events (Save expects the stream not to exist).
  A New(std::string id) const {
    A a;
    internal::AggregateAccess::Init(a, std::move(id), std::nullopt);
    return a;
  }

  Result<A> Load(std::string_view id) const { return Unwrap(LoadWithStats(id, {})); }
  // As it was after the event with this version (temporal query).
  Result<A> LoadAtVersion(std::string_view id, StreamVersion version) const {
    return Unwrap(LoadWithStats(id, {version, std::nullopt}));
  }
  // As it was at this time: the events recorded at or before it.
  Result<A> LoadAsOf(std::string_view id, Timestamp time) const {
    return Unwrap(LoadWithStats(id, {std::nullopt, time}));
  }

  Result<Loaded<A>> LoadWithStats(std::string_view id, const internal::LoadPoint& point = {}) const {
    if (id.empty()) return internal::BadId(id);
    Loaded<A> out{New(std::string(id)), {}};
    auto version = core_.Rebuild(
        core_.StreamOf(id), out.value,
        [](A& a, const Event& e) { internal::AggregateAccess::ApplyStored(a, e); }, point, &out.stats);
    if (!version.ok()) return version.status();
    internal::AggregateAccess::SetVersion(out.value, *version);
    return out;
  }

  // Appends the aggregate's uncommitted events, expecting its version. On success the aggregate's
  // version advances and its uncommitted events are cleared; on failure it is unchanged.
  Result<Committed> Save(A& aggregate, const CommandContext& context = {}) const {
    if (aggregate.id().empty()) return internal::BadId(aggregate.id());
    const std::string stream = core_.StreamOf(aggregate.id());
    const auto before = aggregate.version();
    auto committed = core_.Commit(stream, before, aggregate.uncommitted_events(), context);
    if (!committed.ok()) return committed;
    if (committed->version) internal::AggregateAccess::MarkSaved(aggregate, *committed->version);
    core_.MaybeSnapshot(stream, before, aggregate, &*committed);
    return committed;
  }

  // Loads (or starts) the aggregate, runs `command(A&)` (returning void or Status), saves, and
  // retries on conflicts (see the header comment).
  template <class F>
    requires std::invocable<F&, A&>
  Result<Committed> Execute(std::string_view id, F&& command, const CommandContext& context = {}) const {
    if (id.empty()) return internal::BadId(id);
    Status last;
    for (int attempt = 1; attempt <= core_.options().max_attempts; ++attempt) {
      auto loaded = Load(id);
      if (!loaded.ok() && !internal::IsMissing(loaded.status())) return loaded.status();
      A aggregate = loaded.ok() ? std::move(*loaded) : New(std::string(id));
      if constexpr (std::is_convertible_v<std::invoke_result_t<F&, A&>, Status>) {
        Status s = command(aggregate);
        if (!s.ok()) return s;
      } else {
        command(aggregate);
      }
      auto committed = Save(aggregate, context);
      if (committed.ok()) {
        committed->attempts = attempt;
        return committed;
      }
      if (committed.status().detail() != ErrorDetail::kWrongExpectedVersion) return committed.status();
      last = committed.status();
    }
    return internal::GaveUp(core_.StreamOf(id), core_.options().max_attempts, last);
  }

  // Snapshots the aggregate's current state now (on demand), at its version.
  Status TakeSnapshot(const A& aggregate) const {
    if (!aggregate.version()) return Status::FailedPrecondition("snapshot of " + StreamOf(aggregate.id()) + ": no events");
    if (!aggregate.uncommitted_events().empty()) {
      return Status::FailedPrecondition("snapshot of " + StreamOf(aggregate.id()) + ": unsaved events");
    }
    return core_.WriteSnapshot(StreamOf(aggregate.id()), *aggregate.version(), aggregate);
  }
  Status TakeSnapshot(std::string_view id) const {
    auto a = Load(id);
    if (!a.ok()) return a.status();
    return TakeSnapshot(*a);
  }
  Status DeleteSnapshots(std::string_view id) const { return core_.DeleteSnapshots(StreamOf(id)); }

 private:
  static Result<A> Unwrap(Result<Loaded<A>> r) {
    if (!r.ok()) return r.status();
    return std::move(r->value);
  }

  internal::RepositoryCore<Event, A, A> core_;
};

// The functional style: D is a decider.
template <Decider D>
  requires(!AggregateRoot<D>)
class Repository<D> {
 public:
  using State = typename D::State;
  using Event = typename D::Event;

  explicit Repository(Store& store, D decider = {}, RepositoryOptions options = {})
      : decider_(std::move(decider)), core_(store, std::move(options), D::kCategory) {}
  Repository(Store& store, RepositoryOptions options) : Repository(store, D{}, std::move(options)) {}

  std::string StreamOf(std::string_view id) const { return core_.StreamOf(id); }
  const D& decider() const { return decider_; }

  Result<Versioned<State>> Load(std::string_view id) const { return Unwrap(LoadWithStats(id, {})); }
  Result<Versioned<State>> LoadAtVersion(std::string_view id, StreamVersion version) const {
    return Unwrap(LoadWithStats(id, {version, std::nullopt}));
  }
  Result<Versioned<State>> LoadAsOf(std::string_view id, Timestamp time) const {
    return Unwrap(LoadWithStats(id, {std::nullopt, time}));
  }

  Result<Loaded<Versioned<State>>> LoadWithStats(std::string_view id, const internal::LoadPoint& point = {}) const {
    if (id.empty()) return internal::BadId(id);
    Loaded<Versioned<State>> out{{std::string(id), decider_.Initial(), std::nullopt}, {}};
    auto version = core_.Rebuild(
        core_.StreamOf(id), out.value.state,
        [this](State& s, const Event& e) { s = decider_.Evolve(std::move(s), e); }, point, &out.stats);
    if (!version.ok()) return version.status();
    out.value.version = *version;
    return out;
  }

  // Appends events decided elsewhere, expecting `expected` (nullopt: no stream yet).
  Result<Committed> Append(std::string_view id, std::optional<StreamVersion> expected, std::span<const Event> events,
                           const CommandContext& context = {}) const {
    if (id.empty()) return internal::BadId(id);
    return core_.Commit(core_.StreamOf(id), expected, events, context);
  }

  // Loads (or starts from Initial()), decides, saves, and retries on conflicts.
  template <class C>
    requires CommandFor<D, C>
  Result<Committed> Execute(std::string_view id, const C& command, const CommandContext& context = {}) const {
    if (id.empty()) return internal::BadId(id);
    const std::string stream = core_.StreamOf(id);
    Status last;
    for (int attempt = 1; attempt <= core_.options().max_attempts; ++attempt) {
      auto loaded = Load(id);
      if (!loaded.ok() && !internal::IsMissing(loaded.status())) return loaded.status();
      Versioned<State> current = loaded.ok() ? std::move(*loaded) : Versioned<State>{std::string(id), decider_.Initial(), {}};
      Result<std::vector<Event>> decided = decider_.Decide(command, std::as_const(current.state));
      if (!decided.ok()) return decided.status();
      auto committed = core_.Commit(stream, current.version, *decided, context);
      if (committed.ok()) {
        committed->attempts = attempt;
        if (core_.options().snapshots.every_events != 0 && committed->event_count != 0) {
          State after = std::move(current.state);
          for (const Event& e : *decided) after = decider_.Evolve(std::move(after), e);
          core_.MaybeSnapshot(stream, current.version, after, &*committed);
        }
        return committed;
      }
      if (committed.status().detail() != ErrorDetail::kWrongExpectedVersion) return committed.status();
      last = committed.status();
    }
    return internal::GaveUp(stream, core_.options().max_attempts, last);
  }

  Status TakeSnapshot(std::string_view id) const {
    auto loaded = Load(id);
    if (!loaded.ok()) return loaded.status();
    return core_.WriteSnapshot(StreamOf(id), *loaded->version, loaded->state);
  }
  Status DeleteSnapshots(std::string_view id) const { return core_.DeleteSnapshots(StreamOf(id)); }

 private:
  static Result<Versioned<State>> Unwrap(Result<Loaded<Versioned<State>>> r) {
    if (!r.ok()) return r.status();
    return std::move(r->value);
  }

  D decider_;
  internal::RepositoryCore<Event, State, D> core_;
};

}  // namespace cairn::es
