#!/usr/bin/env bash
# Builds the Debian package `meet` with cargo-deb (configured in
# sfu/Cargo.toml, [package.metadata.deb]; unit and maintainer scripts in
# ops/debian/) and prints the path of the .deb as its last line.
#   ops/package.sh                 release build: the package for servers
#   ops/package.sh --profile dev   the debug build the tests already made
#                                  (cargo-deb warns that it is meant for
#                                  releases; a second, release, build of
#                                  everything would double the tests' time)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
fast=()
if [ "${1:-}" = --profile ]; then
  profile=${2:?--profile needs a name}
  # A test package: faster compression, a larger file.
  [ "$profile" = release ] || fast=(--fast)
fi
ops/setup.sh package
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/meet-target}
out=$CARGO_TARGET_DIR/debian
mkdir -p "$out"
# --strip: the dev profile keeps debug info in our crates; a package
# carries none (cargo-deb puts it in a separate .ddeb only if asked).
cargo deb -p sfu --profile "$profile" --strip "${fast[@]}" --output "$out" -- --locked >&2
ls -t "$out"/meet_*.deb | head -n 1
