#!/usr/bin/env bash
# Runs a command in a "client" network namespace wired by a veth pair to a
# "server" namespace: 10.99.0.2 (client) <-> 10.99.0.1 (server), nothing
# else reachable. The server namespace's name is passed to the command as
# LOADTEST_SERVER_NETNS, so it can start servers there (`ip netns exec`).
# Two namespaces, unlike ops/netns.sh, because ICE agents that bind their
# sockets to an interface (Janus's libnice) cannot reach an address of the
# same namespace through the veth wire. Needs root.
set -euo pipefail
if [ "$#" -eq 0 ]; then
  echo "usage: $0 COMMAND [ARGS...]" >&2
  exit 2
fi
srv="meet-srv-$$"
cli="meet-cli-$$"
cleanup() {
  ip netns del "$srv" 2>/dev/null || true
  ip netns del "$cli" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$srv"
ip netns add "$cli"
ip link add meet0 netns "$srv" type veth peer name meet1 netns "$cli"
ip -n "$srv" addr add 10.99.0.1/24 dev meet0
ip -n "$cli" addr add 10.99.0.2/24 dev meet1
for ns in "$srv" "$cli"; do ip -n "$ns" link set lo up; done
ip -n "$srv" link set meet0 up
ip -n "$cli" link set meet1 up
LOADTEST_SERVER_NETNS="$srv" ip netns exec "$cli" "$@"
