#!/usr/bin/env bash
# `make local`: the API on this machine, against the S3 and DynamoDB stand-ins, reloading on every
# code change. Everything it starts runs as its child and stops with Ctrl-C.
set -euo pipefail

: "${S3S_FS_BIN:?set by make local}" "${MOTO_SERVER_BIN:?set by make local}"
API_PORT=${API_PORT:-9000}
S3_PORT=${S3_PORT:-9100}
DYNAMODB_PORT=${DYNAMODB_PORT:-9101}
DATA_DIR=${DATA_DIR:-.local}
mkdir -p "$DATA_DIR/s3"

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$API_PORT" "$S3_PORT" "$DYNAMODB_PORT"; do
  port_free "$port" || { echo "port $port is in use: stop what holds it, or set API_PORT / S3_PORT / DYNAMODB_PORT" >&2; exit 1; }
done

wait_for_port() { # name port
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$1 did not start on port $2" >&2; exit 1
}

# Credentials only the stand-ins know: s3s-fs verifies every signature with them.
export AWS_ACCESS_KEY_ID=local-access-key AWS_SECRET_ACCESS_KEY=local-secret-key AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$S3_PORT" AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DYNAMODB_PORT"
export FILES_BUCKET=files FILES_TABLE=file-records S3_FORCE_PATH_STYLE=true
# The local stand-in for the JWT authorizer: whoever sends this header is that user. Never deployed.
export DEV_USER_HEADER=x-dev-user

"$S3S_FS_BIN" --host 127.0.0.1 --port "$S3_PORT" \
  --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$DATA_DIR/s3" \
  >"$DATA_DIR/s3s-fs.log" 2>&1 &
pids+=($!)
# moto keeps DynamoDB in memory: records start empty on every run, objects persist in $DATA_DIR.
"$MOTO_SERVER_BIN" -H 127.0.0.1 -p "$DYNAMODB_PORT" >"$DATA_DIR/moto.log" 2>&1 &
pids+=($!)
wait_for_port s3s-fs "$S3_PORT"
wait_for_port moto_server "$DYNAMODB_PORT"
cargo run --quiet --locked --example local_setup

cargo lambda watch --features dev-identity --bin api --invoke-address 127.0.0.1 --invoke-port "$API_PORT" &
pids+=($!)

base="http://127.0.0.1:$API_PORT"
echo "waiting for the function to build and answer (the first build takes a few minutes)..."
for _ in $(seq 1 1800); do
  status=$(curl -s -o /dev/null -w '%{http_code}' -H 'x-dev-user: readiness-probe' \
    "$base/files/00000000-0000-4000-8000-000000000000" || true)
  if [ "$status" = 404 ]; then
    echo
    echo "API ready at $base"
    echo "(callers are named by the x-dev-user header; Ctrl-C stops everything)"
    wait "${pids[@]}"
    exit 0
  fi
  sleep 1
done
echo "the function did not answer within 30 minutes" >&2
exit 1
