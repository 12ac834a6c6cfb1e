#include "postgres/schema.h"

#include <fmt/format.h>

#include <vector>

namespace cairn::postgres {

namespace {

struct Migration {
  int version;
  const char* sql;  // "{s}" stands for the schema name
};

// On disk: append new migrations at the end; never edit one that was released.
const std::vector<Migration>& Migrations() {
  static const std::vector<Migration> kMigrations = {
      {1, R"sql(
CREATE TABLE {s}.head (
  id int PRIMARY KEY CHECK (id = 1),
  last_position bigint NOT NULL,
  last_time bigint NOT NULL
);
INSERT INTO {s}.head VALUES (1, 0, 0);
CREATE TABLE {s}.events (
  position bigint PRIMARY KEY,
  stream text NOT NULL,
  version bigint NOT NULL,
  event_id uuid NOT NULL,
  type text NOT NULL,
  content_type smallint NOT NULL,
  flags smallint NOT NULL,
  data bytea NOT NULL,
  metadata bytea NOT NULL,
  recorded_at bigint NOT NULL,
  UNIQUE (stream, version)
);
CREATE INDEX events_event_id ON {s}.events (event_id) WHERE (flags & 4) = 0;
CREATE TABLE {s}.streams (
  name text COLLATE "C" PRIMARY KEY,
  next_version bigint NOT NULL,
  last_position bigint,
  tombstone_position bigint,
  metadata text
);
CREATE TABLE {s}.commits (
  first_position bigint PRIMARY KEY,
  last_position bigint NOT NULL,
  recorded_at bigint NOT NULL
);
CREATE INDEX commits_recorded_at ON {s}.commits (recorded_at, first_position);
)sql"},
      // A group commit in one round trip: the writer assigns positions and checks expected versions
      // from its cache of stream states, and this function, first in the same transaction, takes
      // the head lock and proves the cache was exact (see pg_store.cc, "Appends in one round trip").
      {2, R"sql(
CREATE FUNCTION {s}.claim_head(expected_last bigint, absent text[], ids uuid[]) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
  cur bigint;
BEGIN
  SELECT last_position INTO cur FROM {s}.head WHERE id = 1 FOR UPDATE;
  IF cur IS DISTINCT FROM expected_last THEN
    RAISE EXCEPTION 'cairn: the head moved from % to %', expected_last, cur USING ERRCODE = 'CR001';
  END IF;
  IF EXISTS (SELECT 1 FROM {s}.streams WHERE name = ANY(absent)) THEN
    RAISE EXCEPTION 'cairn: a stream assumed new exists' USING ERRCODE = 'CR001';
  END IF;
  IF cardinality(ids) > 0 AND EXISTS (SELECT 1 FROM {s}.events WHERE event_id = ANY(ids) AND (flags & 4) = 0) THEN
    RAISE EXCEPTION 'cairn: an event id is already stored' USING ERRCODE = 'CR001';
  END IF;
  RETURN cur;
END
$fn$;
)sql"},
      // A group in one statement: claim_head()'s checks, then every write of the group and, only
      // when some store waits for appends (a row in `listeners`), the NOTIFY (see pg_store.cc,
      // "Appends in one round trip" and "Wake-up"). claim_head() stays: processes of the previous
      // binary still running during an upgrade call it, and they notify on every commit anyway.
      {3, R"sql(
CREATE TABLE {s}.listeners (
  id uuid PRIMARY KEY,
  expires_at timestamptz NOT NULL
);
CREATE FUNCTION {s}.append_group(expected_last bigint, absent text[], ids uuid[],
    p int8[], n text[], v int8[], i uuid[], t text[], c int2[], f int2[], d bytea[], m bytea[], rec bigint,
    sn text[], sv int8[], slp int8[], stp int8[], smd text[]) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
  cur bigint;
  last bigint := p[cardinality(p)];
BEGIN
  SELECT last_position INTO cur FROM {s}.head WHERE id = 1 FOR UPDATE;
  IF cur IS DISTINCT FROM expected_last THEN
    RAISE EXCEPTION 'cairn: the head moved from % to %', expected_last, cur USING ERRCODE = 'CR001';
  END IF;
  IF cardinality(absent) > 0 AND EXISTS (SELECT 1 FROM {s}.streams WHERE name = ANY(absent)) THEN
    RAISE EXCEPTION 'cairn: a stream assumed new exists' USING ERRCODE = 'CR001';
  END IF;
  IF cardinality(ids) > 0 AND EXISTS (SELECT 1 FROM {s}.events WHERE event_id = ANY(ids) AND (flags & 4) = 0) THEN
    RAISE EXCEPTION 'cairn: an event id is already stored' USING ERRCODE = 'CR001';
  END IF;
  INSERT INTO {s}.events (position, stream, version, event_id, type, content_type, flags, data, metadata, recorded_at)
    SELECT u.p, u.n, u.v, u.i, u.t, u.c, u.f, u.d, u.m, rec FROM unnest(p, n, v, i, t, c, f, d, m) AS u(p, n, v, i, t, c, f, d, m);
  INSERT INTO {s}.streams (name, next_version, last_position, tombstone_position, metadata)
    SELECT u.n, u.v, NULLIF(u.lp, -1), NULLIF(u.tp, -1), NULLIF(u.md, '') FROM unnest(sn, sv, slp, stp, smd) AS u(n, v, lp, tp, md)
    ON CONFLICT (name) DO UPDATE SET next_version = EXCLUDED.next_version, last_position = EXCLUDED.last_position,
      tombstone_position = EXCLUDED.tombstone_position, metadata = EXCLUDED.metadata;
  INSERT INTO {s}.commits (first_position, last_position, recorded_at) VALUES (p[1], last, rec);
  UPDATE {s}.head SET last_position = last, last_time = rec WHERE id = 1;
  -- A listener registers under the head lock (FOR SHARE) and reads the head there, so this
  -- statement, run after this transaction took the lock, sees every registration whose head read
  -- did not see this commit.
  IF EXISTS (SELECT 1 FROM {s}.listeners WHERE expires_at > now()) THEN
    PERFORM pg_notify('{s}', (last + 1)::text);
  END IF;
  RETURN last;
END
$fn$;
)sql"},
      // Each event's header in one column (see pg_store.cc, "The event header"), so that a read
      // selects three columns (header, data, metadata) instead of nine: PostgreSQL's send function
      // per column and per row was most of what producing a `$all` row cost the server. Rows
      // written before (by version 3 binaries, or still by their append_group() during a rolling
      // upgrade) have no header; readers build it from the columns then. append_events() is
      // append_group() with the headers, planned once per connection (generic plans, never a
      // sequential scan: planning its statements on every call was a fifth of a small group's
      // server time). jit is off because enable_seqscan = off prices the only plan of a scan of
      // `listeners` past jit_above_cost: compiling it took 33 ms per call.
      {4, R"sql(
ALTER TABLE {s}.events ADD COLUMN header bytea;
CREATE FUNCTION {s}.append_events(expected_last bigint, absent text[], ids uuid[],
    p int8[], n text[], v int8[], i uuid[], t text[], c int2[], f int2[], d bytea[], m bytea[], h bytea[], rec bigint,
    sn text[], sv int8[], slp int8[], stp int8[], smd text[]) RETURNS bigint
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $fn$
DECLARE
  cur bigint;
  last bigint := p[cardinality(p)];
BEGIN
  SELECT last_position INTO cur FROM {s}.head WHERE id = 1 FOR UPDATE;
  IF cur IS DISTINCT FROM expected_last THEN
    RAISE EXCEPTION 'cairn: the head moved from % to %', expected_last, cur USING ERRCODE = 'CR001';
  END IF;
  IF cardinality(absent) > 0 AND EXISTS (SELECT 1 FROM {s}.streams WHERE name = ANY(absent)) THEN
    RAISE EXCEPTION 'cairn: a stream assumed new exists' USING ERRCODE = 'CR001';
  END IF;
  IF cardinality(ids) > 0 AND EXISTS (SELECT 1 FROM {s}.events WHERE event_id = ANY(ids) AND (flags & 4) = 0) THEN
    RAISE EXCEPTION 'cairn: an event id is already stored' USING ERRCODE = 'CR001';
  END IF;
  INSERT INTO {s}.events (position, stream, version, event_id, type, content_type, flags, data, metadata, recorded_at, header)
    SELECT u.p, u.n, u.v, u.i, u.t, u.c, u.f, u.d, u.m, rec, u.h
    FROM unnest(p, n, v, i, t, c, f, d, m, h) AS u(p, n, v, i, t, c, f, d, m, h);
  INSERT INTO {s}.streams (name, next_version, last_position, tombstone_position, metadata)
    SELECT u.n, u.v, NULLIF(u.lp, -1), NULLIF(u.tp, -1), NULLIF(u.md, '') FROM unnest(sn, sv, slp, stp, smd) AS u(n, v, lp, tp, md)
    ON CONFLICT (name) DO UPDATE SET next_version = EXCLUDED.next_version, last_position = EXCLUDED.last_position,
      tombstone_position = EXCLUDED.tombstone_position, metadata = EXCLUDED.metadata;
  INSERT INTO {s}.commits (first_position, last_position, recorded_at) VALUES (p[1], last, rec);
  UPDATE {s}.head SET last_position = last, last_time = rec WHERE id = 1;
  -- As in append_group(): a listener registers under the head lock (FOR SHARE).
  IF EXISTS (SELECT 1 FROM {s}.listeners WHERE expires_at > now()) THEN
    PERFORM pg_notify('{s}', (last + 1)::text);
  END IF;
  RETURN last;
END
$fn$;
)sql"},
  };
  return kMigrations;
}

std::string Expand(const char* sql, const std::string& schema) {
  std::string out;
  for (const char* p = sql; *p != '\0'; ++p) {
    if (p[0] == '{' && p[1] == 's' && p[2] == '}') {
      out += schema;
      p += 2;
    } else {
      out += *p;
    }
  }
  return out;
}

}  // namespace

bool ValidSchemaName(const std::string& name) {
  if (name.empty() || name.size() > 48) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

Status Migrate(Conn& conn, const std::string& schema, int up_to) {
  CAIRN_ASSIGN_OR_RETURN(Txn txn, Txn::Begin(conn));
  // One migrator at a time per schema, across processes: the lock ends with the transaction.
  CAIRN_RETURN_IF_ERROR(
      conn.Exec(fmt::format("SELECT pg_advisory_xact_lock(hashtext({}))", Literal("cairn.migrate." + schema))).status());
  CAIRN_RETURN_IF_ERROR(conn.Exec(fmt::format("CREATE SCHEMA IF NOT EXISTS {}", schema)).status());
  CAIRN_RETURN_IF_ERROR(conn.Exec(fmt::format("CREATE TABLE IF NOT EXISTS {}.schema_version (version int PRIMARY KEY, "
                                              "applied_at timestamptz NOT NULL DEFAULT now())",
                                              schema))
                            .status());
  CAIRN_ASSIGN_OR_RETURN(Res r, conn.Exec(fmt::format("SELECT coalesce(max(version), 0)::int8 FROM {}.schema_version", schema),
                                          Params()));
  const int64_t have = r.Int64(0, 0);
  if (have > kSchemaVersion) {
    return Status::FailedPrecondition(fmt::format(
        "PostgreSQL schema \"{}\" at {} is at version {}, newer than this cairn binary knows (up to {}): "
        "upgrade cairn (or open another schema with ?schema=NAME)",
        schema, conn.where(), have, kSchemaVersion));
  }
  for (const Migration& m : Migrations()) {
    if (m.version <= have || m.version > up_to) continue;
    CAIRN_RETURN_IF_ERROR(conn.Exec(Expand(m.sql, schema)).status().WithContext(fmt::format("migration {}", m.version)));
    CAIRN_RETURN_IF_ERROR(
        conn.Exec(fmt::format("INSERT INTO {}.schema_version (version) VALUES ({})", schema, m.version)).status());
  }
  return txn.Commit();
}

}  // namespace cairn::postgres
