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
echo "== Debian package: build, install, check, purge (root only)"
ops/package-test.sh
echo "== load generator smoke run (correctness, not speed)"
cargo build --locked -p sfu -p loadtest
"$CARGO_TARGET_DIR/debug/loadtest" --smoke
echo "== admin API fuzzed against its OpenAPI document (schemathesis)"
SFU_BIN="$CARGO_TARGET_DIR/debug/sfu" ops/api-test.sh
echo "== browser tests"
(cd web && SFU_BIN="$CARGO_TARGET_DIR/debug/sfu" ../ops/netns.sh node --test --test-concurrency=1 tests/)
