#!/usr/bin/env bash
# Runs a command inside a private network namespace that has loopback and a
# veth pair (meet0 10.99.0.1, meet1 10.99.0.2) and no route anywhere else.
# Chromium never gathers loopback ICE candidates, so browser tests need a
# real interface; this gives them one from which no packet can leave.
set -euo pipefail
if [ "$#" -eq 0 ]; then
  echo "usage: $0 COMMAND [ARGS...]" >&2
  exit 2
fi
user_ns=()
[ "$(id -u)" -eq 0 ] || user_ns=(--user --map-root-user)
# No IPv6 on the pair (loopback keeps ::1): its link-local addresses would appear a second or
# two after the links come up (duplicate address detection), and Chromium
# fails the requests in flight then with ERR_NETWORK_CHANGED, a page that
# has started loading its modules stays blank.
exec unshare "${user_ns[@]}" --net -- bash -c '
  set -e
  f=/proc/sys/net/ipv6/conf/default/disable_ipv6
  if [ -w "$f" ]; then echo 1 > "$f"; fi
  ip link set lo up
  ip link add meet0 type veth peer name meet1
  ip addr add 10.99.0.1/24 dev meet0
  ip addr add 10.99.0.2/24 dev meet1
  ip link set meet0 up
  ip link set meet1 up
  exec "$@"
' netns "$@"
