#!/usr/bin/env bash
# Builds and runs the meeting server. Arguments go to the server, e.g.
#   ops/run.sh --listen 0.0.0.0:8080 --media-port 40000 --config ops/meet.toml
set -euo pipefail
cd "$(dirname "$0")/.."
ops/setup.sh run
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/meet-target}
exec cargo run --release --locked -p sfu -- "$@"
