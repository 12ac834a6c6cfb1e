#!/usr/bin/env bash
# Proves that the official Node.js clients work against `cairn serve`: installs the clients pinned
# in package-lock.json (npm ci, cached by the lockfile's hash), starts the server on a free port
# with a fresh data directory, runs clients.mjs, stops the server with SIGTERM and checks that it
# shut down cleanly.
# Usage: run_e2e.sh CAIRN_BINARY BUILD_DIR [TRANSPORT]
# TRANSPORT: grpc (default) or h2 (`cairn serve --transport h2`, cairn's own HTTP/2 front).
# Fails loudly (never skips) when node, npm or the npm registry is missing.
set -euo pipefail

cairn=${1:?usage: run_e2e.sh CAIRN_BINARY BUILD_DIR}
build_dir=${2:?usage: run_e2e.sh CAIRN_BINARY BUILD_DIR}
transport=${3:-grpc}
here=$(cd "$(dirname "$0")" && pwd)

for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "e2e: FAIL: '$tool' is not installed; scripts/install-deps installs Node.js and npm" >&2
    exit 1
  fi
done

# The clients, installed once per lockfile version.
modules_dir="$build_dir/e2e-node"
lock_hash=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
if [[ ! -f "$modules_dir/.installed-$lock_hash" ]]; then
  rm -rf "$modules_dir"
  mkdir -p "$modules_dir"
  cp "$here/package.json" "$here/package-lock.json" "$modules_dir/"
  echo "e2e: npm ci (clients pinned in test/e2e/package-lock.json)"
  # npm's cache in the build tree: no dependence on $HOME, and a clean build starts clean.
  if ! (cd "$modules_dir" && npm_config_cache="$build_dir/e2e-npm-cache" \
        npm ci --ignore-scripts --no-audit --no-fund --loglevel=error); then
    echo "e2e: FAIL: npm ci could not install the clients (is the npm registry reachable?)" >&2
    exit 1
  fi
  touch "$modules_dir/.installed-$lock_hash"
fi
cp "$here/clients.mjs" "$modules_dir/clients.mjs"

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$cairn" serve --db "file:$work/data" --grpc 127.0.0.1:0 --http 127.0.0.1:0 --transport "$transport" >"$work/server.log" 2>&1 &
server_pid=$!

port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/^cairn serve: gRPC .* on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$work/server.log")
  [[ -n "$port" ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
if [[ -z "$port" ]]; then
  echo "e2e: FAIL: cairn serve did not start" >&2
  cat "$work/server.log" >&2
  exit 1
fi
echo "e2e: cairn serve on port $port"

status=0
# Runs one client script; a run whose only failures are the KurrentDB client's UnavailableError
# (its Rust core's connection, seen now and then on a loaded machine) runs once more, with fresh
# stream names. Any other failure counts at once.
run_node() {
  local log
  log=$(mktemp)
  if (cd "$modules_dir" && timeout 300 node "$@") 2>&1 | tee "$log"; [[ ${PIPESTATUS[0]} -eq 0 ]]; then
    rm -f "$log"; return 0
  fi
  if grep -q '^FAIL' "$log" && ! grep -A1 '^FAIL' "$log" | grep -v '^FAIL' | grep -v -- '^--$' | grep -qv 'UnavailableError'; then
    echo "e2e: only UnavailableError from the client: running $1 once more"
    rm -f "$log"
    (cd "$modules_dir" && timeout 300 node "$@")
    return $?
  fi
  rm -f "$log"; return 1
}

for lib in eventstore kurrent; do
  run_node clients.mjs "$port" "$lib" || status=$?
done

# The CLI through the running server (--server): append, a conflict (exit 3), read, a missing
# stream (exit 4), the stdin protocol, and tail catching up then stopping after --max.
expect() {  # expect WHAT WANT GOT
  if [[ "$2" != "$3" ]]; then
    echo "e2e: FAIL: cairn --server: $1: expected [$2], got [$3]" >&2
    status=1
  else
    echo "ok   cairn --server: $1"
  fi
}
server_url="esdb://127.0.0.1:$port?tls=false"
out=$("$cairn" append --server "$server_url" cli-1 --type Deposited '{"amount":5}')
expect "append" '"first_version":0,"next_version":1' "$(grep -o '"first_version":0,"next_version":1' <<<"$out")"
rc=0; "$cairn" append --server "$server_url" cli-1 --expected no-stream --type Deposited '{}' 2>/dev/null || rc=$?
expect "wrong expected version exits 3" 3 "$rc"
out=$(echo '{"stream":"cli-1","expected":0,"events":[{"type":"Withdrawn","data":{"amount":2}}]}' | "$cairn" append --server "$server_url" -)
expect "append from stdin" '"next_version":2' "$(grep -o '"next_version":2' <<<"$out")"
out=$("$cairn" read --server "$server_url" cli-1 | grep -o '"type":"[A-Za-z]*"' | tr '\n' ' ')
expect "read" '"type":"Deposited" "type":"Withdrawn" ' "$out"
rc=0; "$cairn" read --server "$server_url" cli-missing-1 2>/dev/null || rc=$?
expect "read of a missing stream exits 4" 4 "$rc"
out=$(timeout 20 "$cairn" tail --server "$server_url" cli-1 --from 0 --max 2 | grep -c '"stream":"cli-1"')
expect "tail --from 0 --max 2" 2 "$out"

kill -TERM "$server_pid"
server_status=0
wait "$server_pid" || server_status=$?
server_pid=""
cat "$work/server.log"
if [[ $server_status -ne 0 ]] || ! grep -q '^cairn serve: stopped' "$work/server.log"; then
  echo "e2e: FAIL: cairn serve did not shut down cleanly on SIGTERM (exit $server_status)" >&2
  status=1
fi
# The store closed cleanly: its log verifies.
if ! "$cairn" verify --db "file:$work/data" >/dev/null; then
  echo "e2e: FAIL: cairn verify found a problem in the data directory after shutdown" >&2
  status=1
fi

# The same clients against a server with TLS and authentication (docs/security.md): a certificate
# made here, users made with `cairn user` before the server starts, a config with one rule.
cp "$here/secure.mjs" "$modules_dir/secure.mjs"
# A CA and a server certificate it signs: clients built on rustls (the KurrentDB client's reads)
# refuse a self-signed certificate that is its own CA.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=cairn-e2e-ca \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$work/key.pem" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$work/server.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 1 \
  -extfile "$work/server.ext" -out "$work/cert.pem" 2>/dev/null
"$cairn" user add teller --group tellers --password teller-password --db "file:$work/secure-data" >/dev/null
cat >"$work/secure.toml" <<TOML
tls_cert = "$work/cert.pem"
tls_key = "$work/key.pem"
[[security.acl]]
prefix = "acct-"
read = ["tellers"]
write = ["tellers"]
TOML
admin_password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
CAIRN_ADMIN_PASSWORD=$admin_password "$cairn" serve --db "file:$work/secure-data" --grpc 127.0.0.1:0 --http 127.0.0.1:0 \
  --transport "$transport" \
  --config "$work/secure.toml" >"$work/secure.log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/^cairn serve: gRPC .* on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$work/secure.log")
  [[ -n "$port" ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
if [[ -z "$port" ]]; then
  echo "e2e: FAIL: cairn serve with TLS did not start" >&2
  cat "$work/secure.log" >&2
  exit 1
fi
echo "e2e: cairn serve with TLS and authentication on port $port"
for lib in eventstore kurrent; do
  run_node secure.mjs "$port" "$work/ca.pem" "$admin_password" "$lib" || status=$?
done
secure_url="esdb://teller:teller-password@127.0.0.1:$port?tls=true&tlsCAFile=$work/ca.pem"
out=$("$cairn" append --server "$secure_url" acct-cli-1 --type Opened '{}')
expect "append with TLS and credentials" '"next_version":1' "$(grep -o '"next_version":1' <<<"$out")"
rc=0; "$cairn" append --server "${secure_url/teller-password/wrong-password}" acct-cli-1 --type Opened '{}' 2>/dev/null || rc=$?
expect "a wrong password exits 1" 1 "$rc"
rc=0; "$cairn" read --server "$secure_url" '$all' >/dev/null 2>&1 || rc=$?
expect "reading \$all without the permission exits 1" 1 "$rc"
kill -TERM "$server_pid"
wait "$server_pid" || status=$?
server_pid=""
cat "$work/secure.log"
if grep -q "$admin_password" "$work/secure.log"; then
  echo "e2e: FAIL: the server printed the admin password it was given" >&2
  status=1
fi
exit $status
