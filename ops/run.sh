#!/usr/bin/env bash
# Builds and runs the meeting server. Arguments go to the server, e.g.
#   ops/run.sh --listen 0.0.0.0:8080 --media-port 40000 --config ops/meet.toml
#
# Meeting chat needs a Matrix homeserver. Unless one is configured
# (MEET_MATRIX_HOMESERVER in the environment, even empty, which turns chat
# off; or a non-empty matrix_homeserver in the --config file), this also
# runs a local Synapse (ops/synapse.sh) on http://127.0.0.1:MEET_SYNAPSE_PORT
# (default 8008) with its data in MEET_DATA_DIR/synapse (default
# ~/.local/share/meet), registers the bot account `meetbot` there, hands
# both to the server and stops Synapse when the server exits.
set -euo pipefail
caller_dir=$PWD
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/meet-target}

# The file given with --config, if any (relative paths as the server sees
# them: from the repository root).
config=
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --config) config=${args[i + 1]:-} ;;
    --config=*) config=${args[i]#--config=} ;;
  esac
done

# The value of a top-level `KEY = "value"` (or 'value') line of the config
# file, if any; enough for the keys below.
config_value() {
  [ -n "$config" ] && [ -f "$config" ] || return 0
  local k="^[[:space:]]*$1[[:space:]]*=[[:space:]]*"
  sed -n -e '/^[[:space:]]*\[/q' \
    -e "s/$k\"\([^\"]*\)\".*/\1/p" -e "s/$k'\([^']*\)'.*/\1/p" "$config" | head -n 1 || true
}

# This script's own settings share the MEET_ prefix with the server's keys;
# the server refuses keys it does not know, so they stop here.
server_env=(env -u MEET_DATA_DIR -u MEET_SYNAPSE_PORT -u MEET_SYNAPSE_VENV -u MEET_SYNAPSE_SPEC
  -u MEET_SERVER_BIN)
# The server: built from this checkout, or MEET_SERVER_BIN, a binary built
# already (the quick-start test runs this script with the debug build).
if [ -n "${MEET_SERVER_BIN:-}" ]; then
  server_cmd=("$MEET_SERVER_BIN")
else
  server_cmd=(cargo run --release --locked -p sfu --)
fi

# The server admits no anonymous guests unless configured to; it prints a
# link that opens a first meeting as its host.
if [ -n "${MEET_MATRIX_HOMESERVER+set}" ] || [ -n "$(config_value matrix_homeserver)" ]; then
  ops/setup.sh run --no-synapse
  exec "${server_env[@]}" "${server_cmd[@]}" --host-link "$@"
fi

ops/setup.sh run
data=${MEET_DATA_DIR:-$HOME/.local/share/meet}
port=${MEET_SYNAPSE_PORT:-8008}
data=$(cd "$caller_dir" && mkdir -p "$data" && cd "$data" && pwd)
syn=$data/synapse
ops/synapse.sh init "$syn" "$port"

# synapse.pid holds "SYNAPSE_PID OWNER_PID": the Synapse this script
# started and the run.sh that stops it. A Synapse still running from an
# earlier run (one killed before it could clean up) is reused and from then
# on ours to stop; one whose run.sh is still alive is shared, not stopped.
pidfile=$syn/synapse.pid
synapse_pid=
ours=
stop_synapse() {
  [ -n "$ours" ] || return 0
  kill -TERM "$synapse_pid" 2>/dev/null || true
  for ((n = 0; n < 100; n++)); do
    kill -0 "$synapse_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$synapse_pid" 2>/dev/null || true
  rm -f "$pidfile"
}
trap stop_synapse EXIT

if [ -f "$pidfile" ] && read -r pid owner <"$pidfile" &&
  grep -qaF "$syn/homeserver.yaml" "/proc/$pid/cmdline" 2>/dev/null; then
  synapse_pid=$pid
  if ! kill -0 "$owner" 2>/dev/null; then
    ours=1
    echo "$synapse_pid $$" >"$pidfile"
  fi
  if ! ops/synapse.sh wait "$port" 5 2>/dev/null; then
    # Alive but not answering on this port (MEET_SYNAPSE_PORT changed?).
    [ -n "$ours" ] || { echo "run.sh: Synapse $pid (of run.sh $owner) does not answer on port $port" >&2; exit 1; }
    stop_synapse
    synapse_pid= ours=
  fi
fi
if [ -z "$synapse_pid" ]; then
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "run.sh: port $port is taken; set MEET_SYNAPSE_PORT to a free port, or MEET_MATRIX_HOMESERVER to use that homeserver" >&2
    exit 1
  fi
  # Deaf to SIGINT: a Ctrl-C in the terminal reaches the whole process
  # group, and Synapse must outlive the server's graceful shutdown.
  (
    trap '' INT
    exec ops/synapse.sh run "$syn"
  ) >>"$syn/synapse.log" 2>&1 &
  synapse_pid=$!
  ours=1
  echo "$synapse_pid $$" >"$pidfile"
  for ((n = 0; ; n++)); do
    ops/synapse.sh wait "$port" 1 2>/dev/null && break
    if ! kill -0 "$synapse_pid" 2>/dev/null || [ "$n" -ge 60 ]; then
      echo "run.sh: Synapse did not come up; the end of $syn/synapse.log and homeserver.log:" >&2
      tail -n 20 "$syn/synapse.log" "$syn/homeserver.log" >&2 || true
      exit 1
    fi
  done
fi

# The bot's password: made once, kept with the data.
pwfile=$data/bot-password
if [ ! -s "$pwfile" ]; then
  (umask 077 && echo "mb$(od -vAn -N24 -tx1 /dev/urandom | tr -d ' \n')" >"$pwfile")
fi
chmod 600 "$pwfile"
# Caller's environment first, then the config file, then the local defaults.
user=${MEET_MATRIX_USER:-$(config_value matrix_user)}
password=${MEET_MATRIX_PASSWORD:-$(config_value matrix_password)}
export MEET_MATRIX_HOMESERVER=http://127.0.0.1:$port
export MEET_MATRIX_USER=${user:-meetbot}
export MEET_MATRIX_PASSWORD=${password:-$(cat "$pwfile")}
# Participants write in rooms as ghost users of meet's application service
# (registered with this Synapse by ops/synapse.sh init).
if [ -z "${MEET_MATRIX_AS_TOKEN+set}" ] && [ -z "$(config_value matrix_as_token)" ]; then
  MEET_MATRIX_AS_TOKEN=$(ops/synapse.sh as-token "$syn")
  export MEET_MATRIX_AS_TOKEN
fi
if [ -z "${MEET_MATRIX_STORE:-}" ] && [ -z "$(config_value matrix_store)" ]; then
  export MEET_MATRIX_STORE=$data/matrix
fi
ops/synapse.sh register "$syn" "$MEET_MATRIX_USER" "$MEET_MATRIX_PASSWORD" || {
  echo "run.sh: no bot account (if $pwfile was lost, remove $syn to start the homeserver afresh)" >&2
  exit 1
}

# Invite links (like the host link printed at start) outlive a restart.
if [ -z "${MEET_TOKEN_SECRET:-}" ] && [ -z "$(config_value token_secret)" ]; then
  secretfile=$data/token-secret
  if [ ! -s "$secretfile" ]; then
    (umask 077 && od -vAn -N32 -tx1 /dev/urandom | tr -d ' \n' >"$secretfile")
  fi
  MEET_TOKEN_SECRET=$(cat "$secretfile")
  export MEET_TOKEN_SECRET
fi

# On stderr: the server's stdout carries only its "listening on" line and
# the host link.
echo "run.sh: Matrix homeserver on http://127.0.0.1:$port; add accounts with: ops/synapse.sh register $syn USER PASS" >&2

# In the background so that signals sent to this script (not only a
# Ctrl-C, which reaches the whole group) go on to the server, and Synapse
# is stopped once it has exited.
"${server_env[@]}" "${server_cmd[@]}" --host-link "$@" &
server=$!
for sig in INT TERM HUP; do
  trap "kill -$sig $server 2>/dev/null || true" "$sig"
done
while kill -0 "$server" 2>/dev/null; do
  wait "$server" || true # returns early when a trapped signal arrives
done
status=0
wait "$server" || status=$?
exit "$status"
