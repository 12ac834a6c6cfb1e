// PgStore: the Store API on PostgreSQL ("postgres://user:pass@host:port/db"). Same contract as
// the embedded engine (cairn/store.h); docs/scale-out.md explains how to run it.
//
// Ordering (the guarantee SQL-backed stores commonly break): positions are dense (1, 2, 3, ...)
// and assigned under the row lock of the one-row `head` table, which the appending transaction
// takes first and holds until it commits. So transactions that write events commit one after
// another, in position order, and each becomes visible before the next can take the lock
// (PostgreSQL makes a commit visible before it releases the commit's locks). Hence every snapshot
// sees a prefix of the positions: a $all reader never sees position N+1 and later N, and a
// subscription never skips one. This is also true on streaming replicas, which apply commits in
// WAL order.
//
// Throughput is won back inside the process by group commit, as in the embedded engine: Append
// and AppendAsync calls from all threads go into one queue; one writer thread takes what is
// pending (up to kMaxGroupRequests / kMaxGroupBytes), checks each request in queue order in
// memory (expected versions, idempotency) against its cache of stream states, and sends the group
// as one call of the schema's append_events() function in an implicit transaction: it takes the
// head lock, proves the cache exact, inserts the events (unnest of binary arrays), upserts the
// streams, writes the commits row and the head, and sends NOTIFY if a store listens. So one
// statement, one round trip and one commit (one WAL flush) serve every request of the group. When
// the cache is not exact (another process wrote), the group runs in two round trips: BEGIN, lock
// the head and read the streams' rows and event ids; decide; append_events() and COMMIT. Across
// processes the head lock serializes groups; each process still batches its own callers.
//
// Idempotency window: the last Options::idempotency_window_events positions of the store
// (events of every stream and the system's own, like the engine's last W records), checked
// against the events table through a partial index on the client-given ids (generated ids are
// not indexed and never match). Because positions are dense, "among the last W events" is
// exactly position > head - W, and it holds across processes and restarts.
//
// Live wake-up: while a store waits (WaitForAppend), it is registered in the schema's `listeners`
// table and LISTENs; each commit then sends NOTIFY on a channel named after the schema with the
// new head, and the listener thread (its own connection) moves HeadPosition() and wakes
// WaitForAppend. While no store waits, commits send none. The listener also re-reads the head
// every head_poll_ms, so a lost connection delays a wake-up, never loses it (pg_store.cc, "Wake-up
// without a NOTIFY per commit when nobody waits", has why registering never misses a commit).
//
// Durability: SyncMode::kAlways is synchronous_commit=on (PostgreSQL's default and fsync of the
// WAL at commit); kInterval and kNone set synchronous_commit=off on the writer connection (the
// WAL writer flushes within about 3 x wal_writer_delay), and say so at open.
//
// Differences from the engine, all documented in docs/scale-out.md: several processes may open
// one store at once (no kStoreLocked); a broken connection makes the calls in flight fail with
// kUnavailable (when it broke during COMMIT the outcome is unknown: retry with the same event ids,
// which is idempotent); event types may not contain NUL (PostgreSQL text cannot hold it).
#pragma once

#include <memory>
#include <string_view>

#include "cairn/store.h"
#include "env/env.h"

namespace cairn::postgres {

// Opens (creating or migrating its schema) the store at a postgres:// or postgresql:// URL.
// cairn's own query parameters are taken out: schema (default "cairn"), sync,
// idempotency_window, segment_size (as for file:), head_poll_ms (the listener's safety-net
// re-read of the head, default 1000), listen_idle_ms (how long a store stays registered for
// NOTIFY after its last WaitForAppend, default 60000) and debug_commit_delay_ms (tests only); the others go to
// libpq (sslmode, connect_timeout (default 10), application_name, ...). `clock` stamps
// recorded_at (tests pass a manual clock); it must outlive the store. nullptr: the system clock.
Result<std::unique_ptr<Store>> OpenPgStore(std::string_view url, const Options& options, env::Env* clock = nullptr);

}  // namespace cairn::postgres
