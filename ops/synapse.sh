#!/usr/bin/env bash
# A local Matrix homeserver: Synapse from PyPI in a virtualenv, SQLite, one
# plain-HTTP listener on 127.0.0.1 and nothing that reaches another host (no
# federation, key servers, stats, URL previews). ops/run.sh starts one for
# the quick start; tests start their own.
#
#   ops/synapse.sh install                       venv with Synapse, if missing
#   ops/synapse.sh init DIR PORT [SERVER_NAME]   DIR/homeserver.yaml, keys, secrets
#   ops/synapse.sh run DIR                       exec Synapse in the foreground
#   ops/synapse.sh wait PORT [TIMEOUT_SECS]      until it answers (default 60 s)
#   ops/synapse.sh register DIR USER PASS [--admin]
#   ops/synapse.sh as-token DIR                  the ghost users' appservice token
#
# Environment: MEET_SYNAPSE_VENV (default ~/.cache/meet/synapse-venv),
# MEET_SYNAPSE_SPEC (the pip requirement, default the version below).
set -euo pipefail

venv=${MEET_SYNAPSE_VENV:-$HOME/.cache/meet/synapse-venv}
# Pinned so that tests see the same server everywhere; bump deliberately.
spec=${MEET_SYNAPSE_SPEC:-matrix-synapse==1.163.2}

die() {
  echo "synapse.sh: $*" >&2
  exit 1
}

usage() {
  sed -n 's/^#   \(ops\/synapse.sh \)/usage: \1/p' "$0" >&2
  exit 2
}

# Python for the small HTTP helpers below (the venv's, else the system's).
py() {
  if [ -x "$venv/bin/python" ]; then "$venv/bin/python" "$@"; else python3 "$@"; fi
}

# `python3 -m venv` needs Debian's python3-venv (Debian strips ensurepip).
ensure_python_venv() {
  if command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' 2>/dev/null; then
    return
  fi
  local sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "synapse.sh: installing python3-venv" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 python3-venv >/dev/null
}

installed() {
  [ "$(cat "$venv/.meet-spec" 2>/dev/null)" = "$spec" ] &&
    "$venv/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("synapse") is None)' 2>/dev/null
}

cmd_install() {
  installed && return
  ensure_python_venv
  mkdir -p "$(dirname "$venv")"
  # Concurrent installs (parallel tests) take turns; the loser finds it done.
  exec 9>"$venv.lock"
  flock 9
  if ! installed; then
    # .meet-spec is written last: without it the venv is half-built or
    # holds another version, so it is made anew (venvs cannot be moved,
    # hence in place). Only ever remove something that is a venv.
    if [ -e "$venv" ]; then
      [ -f "$venv/pyvenv.cfg" ] || die "$venv exists and is not a virtualenv"
      rm -rf "$venv"
    fi
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --no-input "$spec"
    printf '%s\n' "$spec" >"$venv/.meet-spec"
  fi
  exec 9>&-
}

check_port() {
  case $1 in
    '' | *[!0-9]*) die "bad port: $1" ;;
  esac
  [ "$1" -ge 1 ] && [ "$1" -le 65535 ] || die "bad port: $1"
}

# The value of a top-level `key: "value"` line of homeserver.yaml.
conf_get() {
  sed -n "s/^$2: \"\\(.*\\)\"\$/\\1/p" "$1"
}

random_hex() {
  od -vAn -N32 -tx1 /dev/urandom | tr -d ' \n'
}

# Replaces FILE with the text on stdin unless it is already that text.
write_if_changed() {
  local file=$1 tmp
  tmp=$(mktemp "$file.XXXXXX")
  cat >"$tmp"
  if cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
  else
    chmod 600 "$tmp"
    mv -f "$tmp" "$file"
  fi
}

# The whole homeserver.yaml is rendered from here on every `init`; what
# must survive (server name, secrets) is read back from the existing file
# and the signing key lives beside it. So init is idempotent, and a new port
# or a newer version of this script takes effect on the next init.
cmd_init() {
  [ "$#" -ge 2 ] && [ "$#" -le 3 ] || usage
  local dir=$1 port=$2 name=${3:-}
  check_port "$port"
  cmd_install
  umask 077
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  case $dir in
    *[\"\\\ ]* | *$'\n'*) die "use a data directory without spaces, quotes or backslashes: $dir" ;;
  esac
  local conf=$dir/homeserver.yaml old_name= reg= mac= form=
  if [ -f "$conf" ]; then
    old_name=$(conf_get "$conf" server_name)
    reg=$(conf_get "$conf" registration_shared_secret)
    mac=$(conf_get "$conf" macaroon_secret_key)
    form=$(conf_get "$conf" form_secret)
  fi
  if [ -n "$name" ] && [ -n "$old_name" ] && [ "$name" != "$old_name" ] &&
    [ -e "$dir/homeserver.db" ]; then
    die "$dir holds server $old_name, not $name (a server name cannot change; use another DIR)"
  fi
  name=${name:-${old_name:-localhost}}
  case $name in
    *[!A-Za-z0-9.:_-]*) die "bad server name: $name" ;;
  esac
  [ -n "$reg" ] || reg=$(random_hex)
  [ -n "$mac" ] || mac=$(random_hex)
  [ -n "$form" ] || form=$(random_hex)
  [ -s "$dir/signing.key" ] || "$venv/bin/generate_signing_key" -o "$dir/signing.key"
  # meet's application service: ghost users @meet_* for meeting
  # participants. No URL: the homeserver pushes nothing (the bot syncs).
  local as_token= hs_token=
  if [ -f "$dir/appservice.yaml" ]; then
    as_token=$(conf_get "$dir/appservice.yaml" as_token)
    hs_token=$(conf_get "$dir/appservice.yaml" hs_token)
  fi
  [ -n "$as_token" ] || as_token=$(random_hex)
  [ -n "$hs_token" ] || hs_token=$(random_hex)
  mkdir -p "$dir/media_store"

  write_if_changed "$dir/log.yaml" <<EOF
# Written by ops/synapse.sh init. Warnings and errors only.
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: "$dir/homeserver.log"
    encoding: utf8
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
EOF

  local name_re=${name//./\\\\.}
  write_if_changed "$dir/appservice.yaml" <<EOF
# Written by ops/synapse.sh init: meet's ghost users.
id: "meet"
url: null
as_token: "$as_token"
hs_token: "$hs_token"
sender_localpart: "meetbridge"
rate_limited: false
namespaces:
  users:
    - exclusive: true
      regex: "@meet_.*:$name_re"
  aliases: []
  rooms: []
EOF

  # Every rate limit Synapse has, raised far beyond what tests and a
  # meeting bot need (the defaults throttle a test after a few requests).
  local rc='{per_second: 1000, burst_count: 1000}' limits=
  local key
  for key in rc_message rc_registration rc_registration_token_validity \
    rc_admin_redaction rc_joins_per_room rc_key_requests rc_3pid_validation \
    rc_third_party_invite rc_media_create rc_delayed_event_mgmt \
    rc_room_creation rc_reports rc_user_directory rc_profile; do
    limits+="$key: $rc"$'\n'
  done
  limits+="rc_login: {address: $rc, account: $rc, failed_attempts: $rc}"$'\n'
  limits+="rc_joins: {local: $rc, remote: $rc}"$'\n'
  limits+="rc_invites: {per_room: $rc, per_user: $rc, per_issuer: $rc}"$'\n'
  limits+="rc_presence: {per_user: $rc}"

  write_if_changed "$conf" <<EOF
# Written by ops/synapse.sh init: a local, offline Synapse for meet's quick
# start and tests. The next init rewrites it (keeping server_name and the
# secrets); put lasting changes in $dir/conf.d/*.yaml, which
# \`ops/synapse.sh run\` reads after this file (a top-level key there
# replaces the one here).
server_name: "$name"
public_baseurl: "http://127.0.0.1:$port/"
listeners:
  # Client API plus the OpenID userinfo endpoint
  # (/_matrix/federation/v1/openid/userinfo), which meet uses to check
  # identities; no federation.
  - port: $port
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client, openid]
        compress: false
database:
  name: sqlite3
  args:
    database: "$dir/homeserver.db"
log_config: "$dir/log.yaml"
media_store_path: "$dir/media_store"
signing_key_path: "$dir/signing.key"
registration_shared_secret: "$reg"
app_service_config_files: ["$dir/appservice.yaml"]
macaroon_secret_key: "$mac"
form_secret: "$form"

# Offline: no stats, key servers, outbound federation or URL previews.
report_stats: false
enable_metrics: false
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
url_preview_enabled: false
serve_server_wellknown: false

# Accounts only through \`ops/synapse.sh register\` (the shared secret above).
enable_registration: false
allow_guest_access: false
presence:
  enabled: false
max_event_delay_duration: 24h
experimental_features:
  msc4143_enabled: true

$limits
EOF
}

cmd_run() {
  [ "$#" -eq 1 ] || usage
  local dir
  dir=$(cd "$1" 2>/dev/null && pwd) || die "no directory $1"
  [ -f "$dir/homeserver.yaml" ] || die "no $dir/homeserver.yaml; run: $0 init $1 PORT"
  installed || cmd_install
  local args=(--config-path "$dir/homeserver.yaml")
  [ -d "$dir/conf.d" ] && args+=(--config-path "$dir/conf.d")
  cd "$dir"
  exec "$venv/bin/python" -m synapse.app.homeserver "${args[@]}"
}

cmd_wait() {
  [ "$#" -ge 1 ] && [ "$#" -le 2 ] || usage
  check_port "$1"
  local timeout=${2:-60}
  case $timeout in '' | *[!0-9]*) die "bad timeout: $timeout" ;; esac
  py - "$1" "$timeout" <<'PY' || die "nothing answers on http://127.0.0.1:$1 after ${timeout}s"
import sys, time, urllib.request
port, timeout = sys.argv[1], float(sys.argv[2])
url = f"http://127.0.0.1:{port}/_matrix/client/versions"
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
deadline = time.monotonic() + timeout
while True:
    try:
        with opener.open(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    if time.monotonic() >= deadline:
        sys.exit(1)
    time.sleep(0.1)
PY
}

# Logs USER in with PASS and out again: 0 if the password is right, 1 if
# the server says it is wrong, 2 for anything else.
check_login() {
  py - "$@" <<'PY'
import json, sys, urllib.error, urllib.request
import os
base, user = sys.argv[1:3]
password = os.environ["MEET_CHECK_PASSWORD"]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
def post(path, body, token=None):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with opener.open(req, timeout=10) as r:
        return json.load(r)
try:
    token = post("/_matrix/client/v3/login", {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    })["access_token"]
    post("/_matrix/client/v3/logout", {}, token)
except urllib.error.HTTPError as e:
    sys.exit(1 if e.code == 403 else 2)
except Exception:
    sys.exit(2)
PY
}

cmd_register() {
  [ "$#" -ge 3 ] && [ "$#" -le 4 ] || usage
  local dir=$1 user=$2 pass=$3 admin=--no-admin
  case ${4:-} in
    '') ;;
    --admin) admin=--admin ;;
    *) usage ;;
  esac
  local conf=$dir/homeserver.yaml base out
  [ -f "$conf" ] || die "no $conf; run: $0 init $dir PORT"
  base=$(conf_get "$conf" public_baseurl)
  base=${base%/}
  installed || cmd_install
  # The password goes through a private file, not the command line (which
  # every local user can read in the process list).
  local pwfile
  pwfile=$(mktemp)
  chmod 600 "$pwfile"
  printf '%s' "$pass" >"$pwfile"
  out=$(NO_PROXY='*' no_proxy='*' "$venv/bin/register_new_matrix_user" \
    -c "$conf" -u "$user" --password-file "$pwfile" "$admin" --exists-ok "$base" 2>&1) || {
    rm -f "$pwfile"
    die "registering $user failed: $out"
  }
  rm -f "$pwfile"
  case $out in
    *"User already exists"*)
      # Existing account: fine if PASS is its password (so reruns work);
      # a different password would only fail later, at login.
      local rc=0
      MEET_CHECK_PASSWORD=$pass check_login "$base" "$user" || rc=$?
      [ "$rc" -ne 1 ] || die "user $user exists with another password"
      [ "$rc" -eq 0 ] || die "user $user exists; could not check its password"
      ;;
  esac
}

cmd_as_token() {
  [ "$#" -eq 1 ] || usage
  [ -f "$1/appservice.yaml" ] || die "no $1/appservice.yaml; run: $0 init $1 PORT"
  conf_get "$1/appservice.yaml" as_token
}

[ "$#" -ge 1 ] || usage
command=$1
shift
case $command in
  install) [ "$#" -eq 0 ] || usage; cmd_install ;;
  init) cmd_init "$@" ;;
  run) cmd_run "$@" ;;
  wait) cmd_wait "$@" ;;
  register) cmd_register "$@" ;;
  as-token) cmd_as_token "$@" ;;
  *) usage ;;
esac
