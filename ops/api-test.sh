#!/usr/bin/env bash
# Fuzzes the admin API against its own OpenAPI document with schemathesis
# (from PyPI, in a venv of its own): a real server on 127.0.0.1, every
# check schemathesis has (no 5xx, responses match the schema, requests
# without the key refused, ...), a bounded number of cases per operation.
#   SFU_BIN=path/to/sfu ops/api-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${MEET_SCHEMATHESIS_VENV:-$HOME/.cache/meet/schemathesis-venv}
# Pinned so that CI fuzzes with the same checks everywhere; bump deliberately.
spec=schemathesis==4.32.5
if [ "$(cat "$venv/.meet-spec" 2>/dev/null)" != "$spec" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "$spec"
  echo "$spec" >"$venv/.meet-spec"
fi

sfu=${SFU_BIN:?set SFU_BIN to the server binary}
work=$(mktemp -d)
key=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
MEET_ADMIN_KEY=$key MEET_POLICY_STORE="$work/policies.json" MEET_MEDIA_IPS='["127.0.0.1"]' MEET_WORKERS=1 \
  "$sfu" --listen "127.0.0.1:$port" --media-port 0 >"$work/server.log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

status=0
# From the scratch directory: schemathesis keeps a cache in its working one.
(cd "$work" && "$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/openapi.json" \
  --wait-for-schema 20 \
  --header "Authorization: Bearer $key" \
  --checks all \
  --max-examples 40 \
  --seed 1 \
  --workers 1 \
  --generation-database none \
  --report-dir "$work/report" \
  --no-color) || status=$?
if ! kill -0 "$server" 2>/dev/null; then
  echo "api-test: the server died under the fuzzer" >&2
  cat "$work/server.log" >&2
  exit 1
fi
if grep -q "panicked" "$work/server.log"; then
  echo "api-test: the server panicked" >&2
  cat "$work/server.log" >&2
  exit 1
fi
exit "$status"
