#!/usr/bin/env bash
# `make local`: the API and the events function on this machine, reloading on every code change,
# behind local-aws (local/: the bucket with its CORS rules and S3 event notifications, the API's
# CORS front, the demo page's server, EventBridge's PutEvents into a sink, the table's stream
# delivered to the publisher) and moto's DynamoDB. Everything it starts runs as its child
# and stops with Ctrl-C. Every port and the data directory can be moved by the environment, so a
# test harness can start it on free ports.
set -euo pipefail

: "${LOCAL_AWS_BIN:?set by make local}" "${MOTO_SERVER_BIN:?set by make local}"
API_PORT=${API_PORT:-9000}            # the API as browsers and curl call it (CORS front)
S3_PORT=${S3_PORT:-9100}
DYNAMODB_PORT=${DYNAMODB_PORT:-9101}  # local-aws's DynamoDB: authorizes, then passes on to moto
MOTO_PORT=${MOTO_PORT:-9104}          # moto's DynamoDB, behind local-aws
DEMO_PORT=${DEMO_PORT:-9102}          # the demo page, on an origin of its own
LAMBDA_PORT=${LAMBDA_PORT:-9103}      # cargo lambda watch: the functions, behind local-aws
EVENTBRIDGE_PORT=${EVENTBRIDGE_PORT:-9105} # local-aws's EventBridge: the publisher's events, kept in a sink
DATA_DIR=${DATA_DIR:-.local}
VENDOR_DIR=${VENDOR_DIR:-}            # optional: served at $DEMO/vendor/
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
for port in "$API_PORT" "$S3_PORT" "$DYNAMODB_PORT" "$DEMO_PORT" "$LAMBDA_PORT" "$MOTO_PORT" "$EVENTBRIDGE_PORT"; do
  port_free "$port" || { echo "port $port is in use: stop what holds it, or set API_PORT / S3_PORT / DYNAMODB_PORT / DEMO_PORT / LAMBDA_PORT / MOTO_PORT / EVENTBRIDGE_PORT" >&2; exit 1; }
done

wait_for_port() { # name port
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$1 did not start on port $2" >&2; exit 1
}

# RUST_LOG is the functions' level, and theirs only. The local tooling reads RUST_LOG too and keeps
# its own level: cargo lambda watch at trace writes each raw request, authorization header
# included, and traces every path its watcher sees under target/ (GBs); local-aws's crates log
# requests too. So the variable is taken out of the environment here, and handed to the functions
# through an env file (cargo lambda watch --env-file: --env-var would split a value such as
# "info,presign_gate=debug" at its comma), which overrides what the functions would inherit.
function_log=${RUST_LOG:-info}
unset RUST_LOG
function_env="$DATA_DIR/functions.env"
printf 'RUST_LOG=%s\n' "$function_log" >"$function_env"

# The account administrator's credentials, known only to the stand-ins: local-aws and the setup
# use them. Each function signs with its own role's instead (Cargo.toml,
# [package.metadata.lambda.bin.<name>.env], which cargo lambda watch applies over these), so
# local-aws authorizes its calls and the URLs it signs as AWS authorizes that role.
export AWS_ACCESS_KEY_ID=local-access-key AWS_SECRET_ACCESS_KEY=local-secret-key AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$S3_PORT" AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DYNAMODB_PORT"
export AWS_ENDPOINT_URL_EVENTBRIDGE="http://127.0.0.1:$EVENTBRIDGE_PORT"
export S3_FORCE_PATH_STYLE=true
# The bucket's and the table's names as the template makes them (the roles' statements name them),
# and the publisher's bus when the template has a publisher (issue 22's outbound events).
while IFS='=' read -r name value; do
  case "$name" in FILES_BUCKET | FILES_TABLE | EVENT_BUS_NAME) export "$name=$value" ;; esac
done < <("$LOCAL_AWS_BIN" --print-names)
: "${FILES_BUCKET:?local-aws --print-names named no bucket}" "${FILES_TABLE:?local-aws --print-names named no table}"
# The table's stream goes to the publish function only when the template has one (it names its
# bus); local-aws's EventBridge serves either way.
publisher=()
if [ -n "${EVENT_BUS_NAME:-}" ]; then
  publisher=(--publisher-url "http://127.0.0.1:$LAMBDA_PORT/2015-03-31/functions/publish/invocations")
  echo "EVENT_BUS_NAME=$EVENT_BUS_NAME"
else
  echo "the template has no publisher: no outbound events" >&2
fi
# The template's parameters that the local IAM reads and the functions' settings change: the
# bucket policy refuses presigned requests older than the longest URL lifetime.
parameters=()
if [ -n "${URL_TTL_MAX_SECONDS:-}" ]; then parameters+=(--parameter "UrlTtlMaxSeconds=$URL_TTL_MAX_SECONDS"); fi
# Malware scanning (README, "Malware scanning"), on as the template's default: the functions'
# SCAN_UPLOADS and the stack's ScanUploads are one setting, as in AWS. SCAN_UPLOADS=false leaves
# GuardDuty's stand-in and the bucket policy's tag statements out; a scan waits SCAN_DELAY_MS
# (2 s) so that a file is seen scanning.
export SCAN_UPLOADS="${SCAN_UPLOADS:-true}"
parameters+=(--parameter "ScanUploads=$SCAN_UPLOADS")
parameters+=(--scan-delay-ms "${SCAN_DELAY_MS:-2000}")
# The local stand-in for the JWT authorizer: whoever sends this header is that user. Never deployed.
export DEV_USER_HEADER=x-dev-user
# Every other setting of the function (README, Configuration) passes through from the environment
# `make local` runs in, e.g. `QUOTA_MAX_PENDING_UPLOADS=3 QUOTA_MAX_BYTES=1048576 make local`.
for name in URL_TTL_SECONDS URL_TTL_MAX_SECONDS MAX_UPLOAD_BYTES ALLOWED_CONTENT_TYPES \
  MULTIPART_THRESHOLD_BYTES MULTIPART_EXPIRY_SECONDS QUOTA_MAX_PENDING_UPLOADS QUOTA_MAX_BYTES \
  SCAN_UPLOADS; do
  if [ -n "${!name:-}" ]; then echo "$name=${!name}"; fi
done
echo "RUST_LOG=$function_log (the functions' level)"

lambda="http://127.0.0.1:$LAMBDA_PORT"
# With two functions, cargo lambda watch serves each HTTP function under /lambda-url/<name>
# (and strips that prefix from the path the function sees), and invokes any function through
# the Lambda Invoke API.
"$LOCAL_AWS_BIN" --s3-port "$S3_PORT" --data-dir "$DATA_DIR/s3" \
  --dynamodb-port "$DYNAMODB_PORT" --dynamodb-upstream "http://127.0.0.1:$MOTO_PORT" "${parameters[@]}" \
  --grants-log "$DATA_DIR/grants.jsonl" \
  --api-port "$API_PORT" --lambda-url "$lambda/lambda-url/api" \
  --events-url "$lambda/2015-03-31/functions/events/invocations" \
  --eventbridge-port "$EVENTBRIDGE_PORT" --events-log "$DATA_DIR/events.jsonl" "${publisher[@]}" \
  --demo-port "$DEMO_PORT" ${VENDOR_DIR:+--vendor-dir "$VENDOR_DIR"} \
  >"$DATA_DIR/local-aws.log" 2>&1 &
pids+=($!)
# moto keeps DynamoDB in memory: records start empty on every run, objects persist in $DATA_DIR.
"$MOTO_SERVER_BIN" -H 127.0.0.1 -p "$MOTO_PORT" >"$DATA_DIR/moto.log" 2>&1 &
pids+=($!)
wait_for_port local-aws "$S3_PORT"
wait_for_port local-aws "$DYNAMODB_PORT"
wait_for_port local-aws "$EVENTBRIDGE_PORT"
wait_for_port moto_server "$MOTO_PORT"
# The setup reads the functions' configuration, DEV_USER_HEADER included: the same local build.
cargo run --quiet --locked --features dev-identity --example local_setup

# --package: the product's functions (api, events, and reconcile, which runs only when invoked),
# not the other members' binaries (each is then run as `cargo run --package presign-gate --bin
# <name>`). --features dev-identity: the
# x-dev-user header names the caller, in this local build only. --disable-cors: cargo lambda
# watch would otherwise answer every origin; the CORS rules are the template's, applied by
# local-aws in front.
cargo lambda watch --package presign-gate --features dev-identity --disable-cors \
  --env-file "$function_env" --invoke-address 127.0.0.1 --invoke-port "$LAMBDA_PORT" &
pids+=($!)

base="http://127.0.0.1:$API_PORT"
echo "waiting for the functions to build and answer (the first build takes a few minutes)..."
ready() {
  # The API through its front; the events function, and the publish function when there is one,
  # with an event of no records (publish answers {"batchItemFailures": []}).
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'x-dev-user: readiness-probe' \
    "$base/files/00000000-0000-4000-8000-000000000000" || true)" = 404 ] &&
  [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{"Records":[]}' \
    "$lambda/2015-03-31/functions/events/invocations" || true)" = 200 ] &&
  { [ -z "${EVENT_BUS_NAME:-}" ] ||
    curl -s -X POST -d '{"Records":[]}' "$lambda/2015-03-31/functions/publish/invocations" |
      grep -q '"batchItemFailures"'; }
}
for _ in $(seq 1 1800); do
  if ready; then
    echo
    echo "API ready at $base"
    echo "Demo at http://127.0.0.1:$DEMO_PORT"
    echo "Events at http://127.0.0.1:$DEMO_PORT/__events?owner=<sub> (all of them in $DATA_DIR/events.jsonl)"
    echo "(callers are named by the x-dev-user header; uploads confirm through S3 events; Ctrl-C stops everything)"
    wait "${pids[@]}"
    exit 0
  fi
  sleep 1
done
echo "the functions did not answer within 30 minutes" >&2
exit 1
