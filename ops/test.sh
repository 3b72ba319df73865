#!/usr/bin/env bash
# Runs every check and test: formatting, lints, Rust unit and integration
# tests, and the browser end-to-end tests (Chromium in a private network
# namespace, see ops/netns.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ops/setup.sh test
# Outside the clone, so warm machines reuse it; nothing in it is trusted
# beyond what cargo itself checks.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/meet-target}
# That cache keeps what every earlier dependency or profile change built.
# It is started over when it has grown large or the disk is short, rather
# than letting the build fail half-way with "no space left on device".
mkdir -p "$CARGO_TARGET_DIR"
free_gib() { echo $(($(df -Pk "$CARGO_TARGET_DIR" | awk 'NR == 2 { print $4 }') / 1048576)); }
cache_gib=$(($(du -sk "$CARGO_TARGET_DIR" | cut -f1) / 1048576))
# A cold run fills about 8 GiB; 40 leaves room for a few dependency and
# profile changes before starting over costs a cold run.
if [ "$(free_gib)" -lt 10 ] || [ "$cache_gib" -gt 40 ]; then
  echo "== build cache $CARGO_TARGET_DIR ($cache_gib GiB, $(free_gib) GiB free on its disk): starting it over"
  rm -rf "$CARGO_TARGET_DIR" && mkdir -p "$CARGO_TARGET_DIR"
fi
if [ "$(free_gib)" -lt 8 ]; then
  echo "ops/test.sh: $(free_gib) GiB free for $CARGO_TARGET_DIR; the tests need about 8" >&2
  exit 1
fi

echo "== Prometheus configuration, alerting rules and their unit tests"
promtool check config ops/prometheus/prometheus.yml
promtool check rules ops/prometheus/rules/*.yml
promtool test rules ops/prometheus/tests/*.yml
echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test"
cargo test --locked --workspace
echo "== build: the server and the load generator"
# One build, whose server binary the package test packs and the smoke run
# and the browser tests run.
cargo build --locked -p sfu -p loadtest
echo "== Debian package: build, install, check, HTTPS on a passed port 443, purge (root)"
ops/package-test.sh
echo "== load generator smoke run (correctness, not speed)"
"$CARGO_TARGET_DIR/debug/loadtest" --smoke
echo "== admin API fuzzed against its OpenAPI document (schemathesis)"
SFU_BIN="$CARGO_TARGET_DIR/debug/sfu" ops/api-test.sh
echo "== browser tests"
(cd web && SFU_BIN="$CARGO_TARGET_DIR/debug/sfu" ../ops/netns.sh node --test --test-concurrency=1 tests/)
