#!/usr/bin/env bash
# Builds the Debian package `meet` with cargo-deb (configured in
# sfu/Cargo.toml, [package.metadata.deb]; units and maintainer scripts in
# ops/debian/) and prints the path of the .deb as its last line.
#   ops/package.sh                     release build: the package for servers
#   ops/package.sh --from-debug-build  packs the debug binary as it is
#                                      ($CARGO_TARGET_DIR/debug/sfu, built
#                                      beforehand by the caller); builds
#                                      nothing. For the package test: cargo-deb's
#                                      own build of `-p sfu` alone resolves
#                                      other features than the workspace's
#                                      build and would compile the server a
#                                      second time (625 s of a cold CI run).
set -euo pipefail
cd "$(dirname "$0")/.."
args=(--profile release)
case ${1:-} in
  "") ;;
  --from-debug-build)
    # A test package: faster compression, a larger file. cargo-deb warns
    # that a dev build is meant for releases.
    args=(--profile dev --no-build --fast)
    ;;
  *)
    echo "usage: $0 [--from-debug-build]" >&2
    exit 2
    ;;
esac
ops/setup.sh package
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/meet-target}
out=$CARGO_TARGET_DIR/debian
mkdir -p "$out"
# --strip: the dev profile keeps line tables in our crates; a package
# carries none (cargo-deb strips a copy; the built binary stays as it is).
cargo deb -p sfu "${args[@]}" --strip --output "$out" -- --locked >&2
ls -t "$out"/meet_*.deb | head -n 1
