#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for cairn's tests: its data, socket and log live in one
# directory, it listens on 127.0.0.1 on a free port, and it is stopped by its own data directory
# (never by a process name), so that several clusters (other people's test runs) can coexist.
#
#   pg_cluster.sh start DIR     a new cluster in DIR (replacing one left there), on a free port;
#                               prints the URL,
#                               which is also written to DIR/url
#   pg_cluster.sh stop DIR      pg_ctl -D DIR/data stop -m fast (no-op when not running)
#   pg_cluster.sh kill DIR      pg_ctl -D DIR/data stop -m immediate (a crash: no checkpoint)
#   pg_cluster.sh restart DIR   start again on the same port after a stop or kill
#   pg_cluster.sh destroy DIR   stop, then remove DIR
#
# PostgreSQL refuses to run as root: as root, the server runs as the `postgres` system user (which
# Debian's postgresql-15 package creates) through runuser; otherwise as the calling user.
# Durability settings are PostgreSQL's defaults (fsync on, synchronous_commit on): the crash
# tests depend on them.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
cmd=${1:-}
dir=${2:-}
if [[ -z $cmd || -z $dir ]]; then
  echo "usage: $0 start|stop|kill|restart|destroy DIR" >&2
  exit 2
fi
if [[ ! -x $PGBIN/initdb ]]; then
  echo "pg_cluster.sh: $PGBIN/initdb not found: install postgresql-15 (scripts/install-deps)" >&2
  exit 1
fi

as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_free() {
  # Nothing accepts a connection there (bash's /dev/tcp; a refused connect fails fast).
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_on() {
  local port=$1
  as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir/sock -c max_connections=200" \
    start >/dev/null
}

case $cmd in
  start)
    # Throwaway: a cluster left by an earlier run that died is stopped (by its data directory)
    # and replaced.
    if [[ -f $dir/data/postmaster.pid ]]; then
      as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ $(id -u) -eq 0 ]]; then
      chown postgres: "$dir"
      chmod 700 "$dir"
      runuser -u postgres -- test -x "$dir" || {
        echo "pg_cluster.sh: the postgres user cannot reach $dir (make its parent directories searchable)" >&2
        exit 1
      }
    fi
    as_owner "$PGBIN/initdb" -D "$dir/data" -U cairn --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      exit 1
    }
    as_owner mkdir -p "$dir/sock"
    # A free port: random tries above the ephemeral range's usual start; a start that still
    # loses a race for the port fails and the next port is tried.
    for _ in $(seq 1 30); do
      port=$((20000 + RANDOM % 30000))
      port_free "$port" || continue
      if start_on "$port"; then
        url="postgres://cairn:cairn@127.0.0.1:$port/postgres"
        as_owner sh -c "echo $port > '$dir/port'; echo '$url' > '$dir/url'"
        echo "$url"
        exit 0
      fi
    done
    echo "pg_cluster.sh: could not start PostgreSQL (see $dir/server.log)" >&2
    tail -20 "$dir/server.log" >&2 || true
    exit 1
    ;;
  stop | kill)
    mode=fast
    [[ $cmd == kill ]] && mode=immediate
    if [[ -f $dir/data/postmaster.pid ]]; then
      as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null
    fi
    ;;
  restart)
    port=$(cat "$dir/port")
    start_on "$port"
    ;;
  destroy)
    if [[ -f $dir/data/postmaster.pid ]]; then
      as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "pg_cluster.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
