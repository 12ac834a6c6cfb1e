// The small value types of the Store API: stream versions, global positions, expected versions,
// event ids and timestamps. All are plain values, trivially copyable and thread-safe to read.
//
// Terms (docs/glossary.md): a StreamVersion numbers the events of one stream 0, 1, 2, ... with no
// gap; a Position orders every event of the store in commit order. They are different things and
// different types: never compare one with the other.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace cairn {

// 0-based, per stream. The largest version a stream can reach is kMaxStreamVersion (the
// EventStoreDB protocol carries versions as signed 64-bit numbers, and INT64_MAX marks a deleted
// stream there).
using StreamVersion = uint64_t;
inline constexpr StreamVersion kMaxStreamVersion = std::numeric_limits<int64_t>::max() - 1;

// A global position: strictly increasing in commit order across the whole store. Opaque: compare
// and store positions, but do not do arithmetic on them (the embedded engine uses log offsets,
// the PostgreSQL backend a sequence; neither is dense). Start() is before every event; End() is
// after every event, present and future.
class Position {
 public:
  constexpr Position() = default;
  constexpr explicit Position(uint64_t value) : value_(value) {}
  static constexpr Position Start() { return Position(0); }
  static constexpr Position End() { return Position(std::numeric_limits<uint64_t>::max()); }
  constexpr uint64_t value() const { return value_; }
  constexpr auto operator<=>(const Position&) const = default;

 private:
  uint64_t value_ = 0;
};

// Nanoseconds since the Unix epoch, UTC. Recorded times are set by the store and never decrease
// with position.
struct Timestamp {
  int64_t nanos = 0;
  constexpr auto operator<=>(const Timestamp&) const = default;
  static constexpr Timestamp FromMillis(int64_t ms) { return Timestamp{ms * 1'000'000}; }
  static constexpr Timestamp FromSeconds(int64_t s) { return Timestamp{s * 1'000'000'000}; }
  // RFC 3339 with microseconds, e.g. "2026-11-26T09:57:44.123456Z".
  std::string ToRfc3339() const;
  // Accepts RFC 3339 with a "Z" or a numeric offset and up to nanosecond fractions.
  static std::optional<Timestamp> ParseRfc3339(std::string_view text);
};

// What the caller believes about a stream before appending (optimistic concurrency).
class ExpectedVersion {
 public:
  enum class Kind : uint8_t { kAny, kNoStream, kStreamExists, kExact };

  static constexpr ExpectedVersion Any() { return ExpectedVersion(Kind::kAny, 0); }
  // The stream has no events (never written, or soft-deleted).
  static constexpr ExpectedVersion NoStream() { return ExpectedVersion(Kind::kNoStream, 0); }
  // The stream has at least one event and is not deleted.
  static constexpr ExpectedVersion StreamExists() { return ExpectedVersion(Kind::kStreamExists, 0); }
  // The stream's last event has exactly this version.
  static constexpr ExpectedVersion Exact(StreamVersion v) { return ExpectedVersion(Kind::kExact, v); }

  constexpr Kind kind() const { return kind_; }
  constexpr StreamVersion version() const { return version_; }  // only for kExact
  constexpr bool operator==(const ExpectedVersion&) const = default;

  // "any", "no-stream", "exists" or the number: the CLI's and the JSON API's spelling.
  std::string ToString() const;
  static std::optional<ExpectedVersion> Parse(std::string_view text);

 private:
  constexpr ExpectedVersion(Kind k, StreamVersion v) : kind_(k), version_(v) {}
  Kind kind_;
  StreamVersion version_;
};

// A 128-bit UUID, stored and compared as 16 bytes in RFC 4122 (big-endian) order.
struct Uuid {
  std::array<uint8_t, 16> bytes{};

  bool IsNil() const;
  // Canonical lowercase 8-4-4-4-12 form.
  std::string ToString() const;
  // Accepts the canonical form in either case; nullopt for anything else.
  static std::optional<Uuid> Parse(std::string_view text);
  // A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Thread-safe.
  static Uuid V7();
  // The same for a given time (milliseconds since the epoch), for callers that have read the clock.
  static Uuid V7(int64_t unix_millis);
  auto operator<=>(const Uuid&) const = default;
};

}  // namespace cairn
