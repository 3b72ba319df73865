#!/usr/bin/env bash
# Coverage-guided fuzzing of what reaches the server from outside
# (sfu/fuzz: v1 signalling messages into the room core, datagrams from the
# network into it and the media engine, RTP payloads into the code that
# reads and rewrites them), with cargo-fuzz on the machine's
# nightly toolchain. Not part of the test command, which runs the same
# targets over their seeds (sfu/tests/fuzz_smoke.rs).
#   ops/fuzz.sh TARGET [SECONDS]     TARGET: signalling, datagrams or payloads
# A crash is saved under sfu/fuzz/artifacts/TARGET/; once fixed, copy it
# into sfu/fuzz/seeds/TARGET/ so that every test run replays it.
set -euo pipefail
cd "$(dirname "$0")/../sfu/fuzz"
target=${1:?usage: ops/fuzz.sh TARGET [SECONDS]}
seconds=${2:-60}
# Pinned so that every machine fuzzes alike; bump deliberately.
version=0.13.2
if ! cargo +nightly fuzz --version 2>/dev/null | grep -q " $version"; then
  cargo +nightly install --locked cargo-fuzz --version "$version"
fi
# The corpus grows across runs, outside the clone.
corpus=${MEET_FUZZ_CORPUS:-$HOME/.cache/meet/fuzz-corpus}/$target
mkdir -p "$corpus"
export CARGO_TARGET_DIR=${MEET_FUZZ_TARGET_DIR:-$HOME/.cache/meet/fuzz-target}
exec cargo +nightly fuzz run "$target" "$corpus" "seeds/$target" -- \
  -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1
