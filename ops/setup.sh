#!/usr/bin/env bash
# Installs what running (`setup.sh run`) or testing (`setup.sh test`) needs on
# a Debian machine. Idempotent: installs only what is missing.
#   setup.sh run [--no-synapse]   --no-synapse: a homeserver is configured
#   setup.sh test
#   setup.sh package              building the Debian package (ops/package.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}

# The local Matrix homeserver (ops/synapse.sh): tests always use one; the
# quick start does unless MEET_MATRIX_HOMESERVER names another.
synapse=
if [ "$mode" = test ] ||
  { [ "${2:-}" != --no-synapse ] && [ -z "${MEET_MATRIX_HOMESERVER+set}" ]; }; then
  synapse=1
fi

apt_packages=()
need() { command -v "$1" >/dev/null 2>&1 || apt_packages+=("$2"); }

# Rust from rustup: Debian's cargo is older than the workspace's
# rust-version, so it is no fallback.
rust=$({ rustc --version 2>/dev/null || true; } | cut -d" " -f2 | cut -d- -f1)
if [ -z "$rust" ] || ! command -v cargo >/dev/null ||
  ! printf '1.95.0\n%s\n' "$rust" | sort -V -C; then
  echo "setup: needs Rust 1.95 or newer with cargo (install it with rustup); found: ${rust:-none}" >&2
  exit 1
fi
need cc gcc
if [ "$mode" = test ] || [ "$mode" = package ]; then
  need dpkg-deb dpkg
fi
if [ "$mode" = test ]; then
  # The reverse-proxy sample's test (web/tests/nginx.test.mjs) and its
  # self-signed certificate.
  need nginx nginx
  # TURN over TLS on 443 beside the site (web/tests/turn-443.test.mjs):
  # nginx's stream module, ssl_preread in it (ops/nginx/meet-stream.conf).
  [ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || apt_packages+=(libnginx-mod-stream)
  # TURN through coturn (web/tests/turn.test.mjs, turn-443.test.mjs).
  need turnserver coturn
  # Several servers sharing meetings (sfu/tests/cluster*.rs): Redis, and
  # its Sentinel mode.
  need redis-server redis-server
  need openssl openssl
  # The package test (ops/package-test.sh) checks the unit with systemd-analyze.
  need systemd-analyze systemd
  need chromium chromium
  need ip iproute2
  need unshare util-linux
  need prometheus prometheus
  # Loss and outages for network tests, inside their own namespaces.
  need nft nftables
  need pkg-config pkg-config
  # The load generator encodes real Opus with Debian's libopus.
  [ -e /usr/include/opus/opus.h ] || apt_packages+=(libopus-dev)
  need node nodejs
  need npm npm
fi
if [ -n "$synapse" ]; then
  # Synapse goes into a virtualenv; Debian's python3 can only make one
  # with python3-venv installed (it leaves out ensurepip).
  if ! command -v python3 >/dev/null 2>&1; then
    apt_packages+=(python3 python3-venv)
  elif ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt_packages+=(python3-venv)
  fi
fi

if [ "${#apt_packages[@]}" -gt 0 ]; then
  echo "setup: installing ${apt_packages[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
  else
    sudo=
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${apt_packages[@]}" >/dev/null
  # Debian starts nginx (port 80) and coturn when it installs them (unless
  # policy-rc.d forbids it); the tests run their own and want no service.
  for service in nginx coturn redis-server; do
    if [[ " ${apt_packages[*]} " == *" $service "* ]]; then
      { $sudo systemctl disable --now "$service" || $sudo service "$service" stop; } >/dev/null 2>&1 || true
    fi
  done
fi

# The Debian package is built with cargo-deb (from the crates registry,
# once; pinned so that a new release cannot change packages unasked).
cargo_deb_version=3.8.0
if [ "$mode" = test ] || [ "$mode" = package ]; then
  if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
    echo "setup: installing cargo-deb $cargo_deb_version (about 2 minutes on 2 cores)"
    env -u CARGO_TARGET_DIR cargo install --locked --version "$cargo_deb_version" cargo-deb
  fi
fi

if [ "$mode" = test ]; then
  # playwright-core (it drives Debian's Chromium and downloads no browser)
  # and axe-core (the accessibility checks).
  if [ ! -d web/node_modules/playwright-core ] || [ ! -d web/node_modules/axe-core ]; then
    (cd web && npm ci --no-audit --no-fund)
  fi
  # The dashboard generator (ops/grafana/dashboard.mjs), whose output the
  # dashboard test compares with the committed JSON.
  if [ ! -d ops/grafana/node_modules/@grafana/grafana-foundation-sdk ]; then
    (cd ops/grafana && npm ci --no-audit --no-fund)
  fi
fi

if [ -n "$synapse" ]; then
  ops/synapse.sh install
fi
