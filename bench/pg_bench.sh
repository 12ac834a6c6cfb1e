#!/usr/bin/env bash
# cairn on PostgreSQL against the seed's plain table, in one run on one throwaway cluster
# (docs/performance.md, "PostgreSQL backend"). A benchmark, not a test: it never fails on a slow
# figure.
#
# The baseline is the seed's `events` table (event_id UUID PRIMARY KEY, aggregate_id, ...,
# UNIQUE (aggregate_id, version), plus its idx_aggregate_stream), one transaction per append that
# reads the aggregate's current version and inserts the new events after it, driven by pgbench
# with 8 clients (each client owns its own aggregates, so that no two transactions collide on the
# UNIQUE constraint and pgbench never aborts a client). cairn: `cairn bench --db postgres://...`
# with the same shapes (8 writers, 1 and 100 events per append, durable) and read-all.
#
# usage: bench/pg_bench.sh [--build DIR] [--seconds S] [--read-events N] [--dir DIR]
#   --build        build directory holding cairn (default build/release)
#   --seconds      how long each append workload runs (default 20)
#   --read-events  events in the store read by read-all (default 1000000)
#   --dir          where the cluster lives (default: a new directory under /tmp; removed after)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build="$here/../build/release"
seconds=20
read_events=1000000
dir=
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --read-events) read_events=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "pg_bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
cairn="$build/cairn"
[[ -x $cairn ]] || { echo "pg_bench.sh: build cairn_cli in $build first" >&2; exit 1; }
PGBIN=/usr/lib/postgresql/15/bin
made_dir=
if [[ -z $dir ]]; then
  dir=$(mktemp -d /tmp/cairn-pgbench-XXXXXX)
  made_dir=$dir
  chmod 755 "$dir"  # mktemp makes it 0700: the cluster's owner (postgres, when run as root) must reach inside
fi
cluster="$here/../test/postgres/pg_cluster.sh"
url=$("$cluster" start "$dir/cluster")
trap '"$cluster" destroy "$dir/cluster" >/dev/null 2>&1 || true; [[ -z $made_dir ]] || rm -rf "$made_dir"' EXIT
echo "cluster: $url (data in $dir/cluster; fsync and synchronous_commit on)" >&2

psql_() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$url" "$@"; }

# ---- The baseline schema (the seed's, verbatim in meaning).
psql_ <<'SQL'
CREATE TABLE events (
    event_id UUID PRIMARY KEY,
    aggregate_id UUID NOT NULL,
    aggregate_type VARCHAR(255) NOT NULL,
    event_type VARCHAR(255) NOT NULL,
    version INTEGER NOT NULL,
    timestamp TIMESTAMP NOT NULL,
    data JSONB NOT NULL,
    metadata JSONB,
    UNIQUE (aggregate_id, version)
);
CREATE INDEX idx_aggregate_stream ON events (aggregate_id, version);
SQL

# Payloads of the same size as cairn bench's (200 B JSON data, 100 B JSON metadata).
data='{"amount":1234,"currency":"EUR","account":"account-12345","note":"benchmark deposit of a fixed size to match cairn bench","reference":"ref-0000000000000000","channel":"web","x":"xxxxxxxxxxxxxxxxxxxxxx"}'
meta='{"$correlationId":"0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee","$user":"bench","source":"pgbench-run"}'

cat >"$dir/append1.sql" <<SQL
\\set agg :client_id * 1000000 + random(1, 12500)
BEGIN;
SELECT coalesce(max(version), 0) AS v FROM events WHERE aggregate_id = md5(:agg::text)::uuid \\gset
INSERT INTO events VALUES (gen_random_uuid(), md5(:agg::text)::uuid, 'Account', 'Deposited', :v + 1, now(), '$data', '$meta');
END;
SQL
cat >"$dir/append100.sql" <<SQL
\\set agg :client_id * 1000000 + random(1, 12500)
BEGIN;
SELECT coalesce(max(version), 0) AS v FROM events WHERE aggregate_id = md5(:agg::text)::uuid \\gset
INSERT INTO events SELECT gen_random_uuid(), md5(:agg::text)::uuid, 'Account', 'Deposited', :v + g, now(), '$data', '$meta' FROM generate_series(1, 100) AS g;
END;
SQL

pgbench_tps() {  # script -> events/s (tps x events per transaction)
  local script=$1 per=$2
  local out
  out=$("$PGBIN/pgbench" -n -c 8 -j 8 -T "$seconds" -M prepared -f "$script" "$url" 2>&1)
  echo "$out" >"$dir/$(basename "$script").out"
  local tps
  tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -1)
  awk -v t="$tps" -v p="$per" 'BEGIN { printf "%.0f", t * p }'
}

echo "baseline: pgbench 8 clients x 1 event per transaction, ${seconds}s" >&2
base1=$(pgbench_tps "$dir/append1.sql" 1)
echo "baseline: pgbench 8 clients x 100 events per transaction, ${seconds}s" >&2
base100=$(pgbench_tps "$dir/append100.sql" 100)
base_rows=$(psql_ -tA -c "SELECT count(*) FROM events")
# The baseline's read of "all events" (the seed's get_all_events: ORDER BY timestamp), timed by
# psql, rows sent to the client and dropped: the best a plain SELECT can do.
psql_ -c "VACUUM ANALYZE events" >/dev/null
start=$(date +%s.%N)
psql_ -c "COPY (SELECT * FROM events ORDER BY timestamp) TO STDOUT" >/dev/null
end=$(date +%s.%N)
base_read=$(awk -v n="$base_rows" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }')

# ---- cairn, same cluster, its own schema per workload.
cairn_rate() {  # args -> events/s from the TSV row
  local line
  line=$("$cairn" bench --tsv "$@" | tail -1)
  echo "$line" >>"$dir/cairn.tsv"
  echo "$line" | awk -F'\t' '{ print $4 }'
}
echo "cairn: 8 writers x 1 event per append, ${seconds}s" >&2
c1=$(cairn_rate --db "$url?schema=bench_a1" --workload append --writers 8 --batch 1 --events 2000000 --max-seconds "$seconds" --streams 100000)
echo "cairn: 8 writers x 100 events per append, ${seconds}s" >&2
c100=$(cairn_rate --db "$url?schema=bench_a100" --workload append --writers 8 --batch 100 --events 20000000 --max-seconds "$seconds" --streams 100000)
echo "cairn: read-all of $read_events events (filled first, untimed)" >&2
cread=$(cairn_rate --db "$url?schema=bench_read" --workload read-all --events "$read_events" --streams 100000 --stream-events 1000)

printf '\n%-34s %14s %14s %8s\n' "workload" "baseline ev/s" "cairn ev/s" "ratio"
printf '%-34s %14s %14s %8s\n' "append 8 clients x 1 event" "$base1" "$c1" "$(awk -v a="$c1" -v b="$base1" 'BEGIN { printf "%.2f", a / b }')"
printf '%-34s %14s %14s %8s\n' "append 8 clients x 100 events" "$base100" "$c100" "$(awk -v a="$c100" -v b="$base100" 'BEGIN { printf "%.2f", a / b }')"
printf '%-34s %14s %14s %8s\n' "read \$all ($base_rows / $read_events ev)" "$base_read" "$cread" "$(awk -v a="$cread" -v b="$base_read" 'BEGIN { printf "%.2f", a / b }')"
echo
if [[ -n $made_dir ]]; then
  echo "raw outputs removed with $dir (give --dir to keep them)" >&2
else
  echo "raw: $dir/*.out (pgbench), $dir/cairn.tsv (cairn bench rows)" >&2
fi
