#!/usr/bin/env bash
# Runs the load generator against our SFU and Janus side by side, inside a
# pair of private network namespaces (Janus, through libnice, never offers loopback
# candidates). Arguments go to loadtest, e.g.
#   ops/bench.sh --scenario video --participants 4 --ramp
set -euo pipefail
cd "$(dirname "$0")/.."
ops/setup.sh test
command -v janus >/dev/null || { sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get install -y -qq janus >/dev/null; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/meet-target}
cargo build --release --locked -p sfu -p loadtest
exec ops/netns-pair.sh "$CARGO_TARGET_DIR/release/loadtest" --compare-janus \
  --media-ip 10.99.0.1 --client-ip 10.99.0.2 "$@"
