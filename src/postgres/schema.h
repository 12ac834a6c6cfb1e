// The PostgreSQL backend's schema and its versioned migrations.
//
// Every store lives in one PostgreSQL schema (default "cairn"; ?schema=NAME in the URL). Its
// tables (docs/scale-out.md has the why of each):
//
//   schema_version (version int PRIMARY KEY, applied_at timestamptz)   migrations applied
//   head     (one row: last_position, last_time)      the position counter; its row lock is the
//                                                     append lock that orders commits
//   events   (position PK, stream, version, event_id, type, content_type, flags, data, metadata,
//             recorded_at, header)                    the log; UNIQUE (stream, version); header
//                                                     (version 4): the columns a reader needs
//                                                     besides data and metadata, in one bytea
//   streams  (name PK, next_version, last_position, tombstone_position, metadata)
//   commits  (first_position PK, last_position, recorded_at)   one row per append transaction:
//                                                     the time index (PositionAtTime, as_of)
//   listeners (id PK, expires_at)                     stores waiting for appends (LISTEN); the
//                                                     writers NOTIFY only while one is alive
//   append_group(...)                                 one group's checks and writes (version 3)
//   append_events(...)                                the same, with the headers (version 4)
//
// Migrations run at open, in one transaction under an advisory lock (so that processes opening
// the same store at once do not race), and are recorded in schema_version. A database whose
// schema is newer than this binary knows is refused with kFailedPrecondition naming both versions.
#pragma once

#include <string>

#include "cairn/status.h"
#include "postgres/pg.h"

namespace cairn::postgres {

// The newest schema version this binary knows. On disk: never reuse a version number.
inline constexpr int kSchemaVersion = 4;

// Event flags (events.flags). On disk: never change or reuse.
inline constexpr int16_t kFlagStartsAppend = 1;  // the first event of one Append call
inline constexpr int16_t kFlagEndsAppend = 2;    // the last event of one Append call
inline constexpr int16_t kFlagGeneratedId = 4;   // the store made the id: never matched for idempotency

// The SQLSTATE `append_events()` (migration 4; append_group() in 3, claim_head() in 2) raises when a writer's cached
// stream states are stale: the head moved, a stream assumed absent exists, or an event id is
// already stored. The writer then runs the group again on the two-round-trip path, which reads
// everything under the head lock.
inline constexpr const char* kStaleCacheSqlstate = "CR001";

// Whether `name` is a schema name cairn accepts: [a-z_][a-z0-9_]*, at most 48 bytes (so that it
// needs no quoting and the NOTIFY channel derived from it fits).
bool ValidSchemaName(const std::string& name);

// Creates or upgrades the schema (up to `up_to`, for the migration tests: an older schema to
// upgrade). kFailedPrecondition when it is newer than kSchemaVersion.
Status Migrate(Conn& conn, const std::string& schema, int up_to = kSchemaVersion);

}  // namespace cairn::postgres
