#!/usr/bin/env bash
# Sets up groupshare (scripts/setup.sh), then runs a tracker and three
# clients on loopback through the account and group flow, printing what each
# shell answers. Everything runs in a temporary folder and is stopped at the
# end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
bin=$PWD/${BUILD_DIR:-build}/bin

work=$(mktemp -d -t groupshare-demo.XXXXXX)
tracker_pid=
cleanup() {
  [ -n "$tracker_pid" ] && kill "$tracker_pid" 2>/dev/null && wait "$tracker_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "127.0.0.1:0" > "$work/bind.txt"
# A tracker whose stdin is not a terminal keeps running until SIGTERM.
"$bin/tracker" "$work/bind.txt" 1 --db "$work/tracker.db" --port_file "$work/port" \
  </dev/null >"$work/tracker.out" 2>"$work/tracker.log" &
tracker_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { echo "demo: the tracker did not start:"; cat "$work/tracker.log"; exit 1; }
echo "127.0.0.1:$(cat "$work/port")" > "$work/tracker_info.txt"
echo "demo: tracker listening on $(cat "$work/tracker_info.txt")"

# Runs one shell session for a user: the commands come from stdin.
session() {
  local who=$1 port=$2
  echo
  echo "--- $who's shell"
  sed 's/^/> /' "$work/cmds"
  echo "---"
  HOME=$work "$bin/client" "127.0.0.1:$port" "$work/tracker_info.txt" \
    --state_dir "$work/$who" < "$work/cmds"
}
run() { local who=$1 port=$2; shift 2; printf '%s\n' "$@" > "$work/cmds"; session "$who" "$port"; }

run alice 7101 "create_user alice alicepw" "login alice alicepw" "create_group movies" "list_groups"
run bob 7102 "create_user bob bobpw" "login bob bobpw" "list_groups" "join_group movies" "list_groups"
run carol 7103 "create_user carol carolpw" "login carol carolpw" "join_group movies"
run alice 7101 "login alice alicepw" "list_requests movies" "accept_request movies bob" \
  "reject_request movies carol" "list_groups"
run bob 7102 "login bob bobpw" "list_groups" "list_files movies"
run carol 7103 "login carol carolpw" "list_files movies" "list_groups"
echo
echo "demo: done; stopping the tracker"
