#!/usr/bin/env bash
# `make load`: starts the API as `make local` does (scripts/local.sh), on ports of its own and a
# fresh data directory, runs the bounded load client (examples/load.rs) against it on loopback,
# and stops everything it started, whatever the outcome.
set -euo pipefail

export API_PORT=${LOAD_API_PORT:-9200} S3_PORT=${LOAD_S3_PORT:-9201} DYNAMODB_PORT=${LOAD_DYNAMODB_PORT:-9202}
export MOTO_PORT=${LOAD_MOTO_PORT:-9203}
export DATA_DIR=${LOAD_DATA_DIR:-target/load}
rm -rf "$DATA_DIR"
mkdir -p "$DATA_DIR"
log="$DATA_DIR/local.log"

# Build the client first, so that its compile does not count against the API's start-up.
cargo build --quiet --locked --example load

scripts/local.sh >"$log" 2>&1 &
local_pid=$!
stop() {
  # local.sh stops its own children (stand-ins and cargo lambda) when it ends.
  kill "$local_pid" 2>/dev/null || true
  wait "$local_pid" 2>/dev/null || true
}
trap stop EXIT

echo "starting the API on 127.0.0.1:$API_PORT (log: $log; the first build takes a few minutes)..."
for _ in $(seq 1 1800); do
  grep -q '^API ready' "$log" && break
  kill -0 "$local_pid" 2>/dev/null || { cat "$log" >&2; echo "scripts/local.sh stopped" >&2; exit 1; }
  sleep 1
done
grep -q '^API ready' "$log" || { echo "the API did not start within 30 minutes" >&2; exit 1; }

LOAD_BASE_URL="http://127.0.0.1:$API_PORT" target/debug/examples/load
