#!/usr/bin/env bash
# What four attacks cost, on loopback. A tracker and a seeding client, each
# limited to 1024 open files, are sent 1,100 connections that only send
# HTTP/2's preface, from eight loopback addresses; then 6 connections of 32
# calls whose request declares a 4 MiB message and never finishes it
# (bench/unfinished_messages.py). The tracker then gets a storm of 300
# callers signing up without pause (its sign-up limits lifted, as for an
# attacker with many addresses), and the seeder 48 GetPiece calls that
# never read, made with the downloader's own ticket from another address
# (both bench/hostile_calls.cc). Prints each process's RSS, threads and
# open files before, under and after each attack (5 s after it ended: the
# time a process takes to give back what it freed); how long a known client
# takes to log in, and a logged-in one's list_groups, under it and after
# it; and the time of the same 64 MiB download with and without the attack
# against the seeder.
# The attacks speak HTTP/2 themselves (a member would carry the same inside
# TLS), so every process here runs --plaintext.
#   bench/hostile_figures.sh [--connections N]
# Run from the repository after scripts/setup.sh.
set -euo pipefail
connections=1100
while [ $# -gt 0 ]; do
  case $1 in
    --connections) connections=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
bin=$PWD/${BUILD_DIR:-build}/bin
cmake --build "${BUILD_DIR:-build}" --target hostile_calls >/dev/null ||
  { echo "build first: scripts/setup.sh" >&2; exit 1; }
work=$(mktemp -d -t groupshare-hostile.XXXXXX)
. scripts/cluster.sh
flooder=
trap '[ -n "$flooder" ] && kill "$flooder" 2>/dev/null; stop_cluster; rm -rf "$work"' EXIT

# Holds $2 preface-only connections to 127.0.0.1:$1 until killed; writes
# how many connected to $work/flood.count.
flood() {
  /usr/bin/python3 - "$1" "$2" "$work/flood.count" <<'EOF' &
import resource, signal, socket, sys, time
port, count, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for i in range(count):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.bind(("127.0.0.%d" % (2 + i % 8), 0))
        s.connect(("127.0.0.1", port))
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        held.append(s)
    except OSError:
        s.close()
open(out, "w").write("%d\n" % len(held))
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
deadline = time.time() + 120  # bounded: never outlives a forgotten run
while time.time() < deadline:
    time.sleep(0.5)
EOF
  flooder=$!
  local deadline=$((SECONDS + 60))
  until [ -s "$work/flood.count" ] || [ $SECONDS -ge $deadline ]; do sleep 0.1; done
}
# Runs bench/hostile_calls with arguments $@ in the background for 20 s,
# and lets it get going.
calls() {
  "$bin/hostile_calls" "$@" --seconds 20 >"$work/flood.count" &
  flooder=$!
  sleep 3  # a benchmark's warm-up: the attack takes what it can first
}
# Runs the unfinished-messages attack on 127.0.0.1:$1, calls to $2, for 20 s
# in the background, and lets it fill what it can first.
messages() {
  /usr/bin/python3 bench/unfinished_messages.py --port "$1" --path "$2" --seconds 20 \
    >"$work/flood.count" &
  flooder=$!
  sleep 3  # a benchmark's warm-up: the attack fills the server's buffers
}
unflood() {
  kill "$flooder" 2>/dev/null || true
  wait "$flooder" 2>/dev/null || true
  flooder=
  rm -f "$work/flood.count"
  # What the process freed goes back to the system once it is quiet: it
  # checks every 2 s (services/common/server_setup.cc), so within 4 s.
  sleep 5
}

# RSS (MiB), threads and open files of process $1.
usage() {
  local rss threads
  rss=$(awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status")
  threads=$(awk '/^Threads/ {print $2}' "/proc/$1/status")
  echo "rss_mib=$rss threads=$threads fds=$(ls "/proc/$1/fd" | wc -l)"
}

# Seconds a fresh client takes from start to logged in as $1 (or "failed").
login_time() {
  local name=$1 start
  start=$(date +%s.%N)
  if printf 'login %s pw-%s\nquit\n' "$name" "$name" |
     HOME=$work timeout 30 "$bin/client" 127.0.0.1:0 "$work/tracker_info.txt" \
       --state_dir "$work/probe-$name-$RANDOM" --plaintext 2>>"$work/probe.err" | tee -a "$work/probe.out" |
       grep -q "logged in as"; then
    calc "$(date +%s.%N) - $start"
  else
    echo failed
  fi
}

# The tracker and the clients under a limit of 1024 open files.
echo "127.0.0.1:0" > "$work/bind.txt"
prlimit --nofile=1024:1024 "$bin/tracker" "$work/bind.txt" 1 --db "$work/tracker.db" --plaintext \
  --port_file "$work/tracker.port" --signups_per_address 1000000 --signups_per_hour 1000000 \
  </dev/null >"$work/tracker.out" 2>"$work/tracker.log" &
tracker=$!
pids+=("$tracker")
until [ -s "$work/tracker.port" ]; do sleep 0.05; done
echo "127.0.0.1:$(cat "$work/tracker.port")" > "$work/tracker_info.txt"
CLIENT_WRAPPER="prlimit --nofile=1024:1024" start_client alice --port_file "$work/alice.port" \
  --plaintext
start_client bob --plaintext
new_user alice
new_user bob
expect alice "create_group g" "group g created"
admit alice bob g
head -c $((64 << 20)) /dev/urandom > "$work/f.bin"
expect alice "upload_file $work/f.bin g" "shared f.bin"
alice_pid=$(pgrep -f "state_dir $work/alice" | while read -r p; do
  [ "$(cat /proc/$p/comm)" = client ] && echo "$p"; done | head -1)
probe=prober
printf 'create_user %s pw-%s\nquit\n' $probe $probe | HOME=$work "$bin/client" 127.0.0.1:0 \
  "$work/tracker_info.txt" --state_dir "$work/probe-make" --plaintext >/dev/null 2>&1

echo "tracker before:  $(usage "$tracker")  login_s=$(login_time $probe)"
flood "$(cat "$work/tracker.port")" "$connections"
echo "tracker under:   $(usage "$tracker")  login_s=$(login_time $probe)  connected=$(cat "$work/flood.count")"
unflood
echo "tracker after:   $(usage "$tracker")  login_s=$(login_time $probe)"
[ -n "${KEEP:-}" ] && { cat "$work/probe.out" "$work/probe.err" >&2; tail -5 "$work/tracker.log" >&2; }

download() {  # $1: a name for the destination; prints the seconds it took
  local start
  start=$(date +%s.%N)
  expect bob "download_file g f.bin $work/$1.bin" "downloading"
  wait_for "$work/bob.out" "complete: $work/$1.bin" 120
  calc "$(date +%s.%N) - $start"
  # The next download must not be made from this one.
  expect bob "stop_share g f.bin" "stopped sharing f.bin"
}
peer_port=$(cat "$work/alice.port")
echo "seeder before:   $(usage "$alice_pid")  download_s=$(download quiet)"
flood "$peer_port" "$connections"
echo "seeder under:    $(usage "$alice_pid")  download_s=$(download flooded)  connected=$(cat "$work/flood.count")"
unflood
echo "seeder after:    $(usage "$alice_pid")  download_s=$(download again)"

tracker_port=$(cat "$work/tracker.port")
echo "tracker before messages: $(usage "$tracker")  login_s=$(login_time $probe)"
messages "$tracker_port" /groupshare.tracker.v1.TrackerService/UploadFile
echo "tracker under messages:  $(usage "$tracker")  login_s=$(login_time $probe)"
unflood
echo "tracker after messages:  $(usage "$tracker")  login_s=$(login_time $probe)"
echo "seeder before messages:  $(usage "$alice_pid")  download_s=$(download quiet2)"
messages "$peer_port" /groupshare.peer.v1.PeerService/GetPiece
echo "seeder under messages:   $(usage "$alice_pid")  download_s=$(download attacked)"
unflood
echo "seeder after messages:   $(usage "$alice_pid")  download_s=$(download again2)"

# Seconds a logged-in client's list_groups takes (a session call).
session_call_time() {
  local start mark="end-of-list-$RANDOM$RANDOM"
  start=$(date +%s.%N)
  cmd bob "list_groups"
  expect bob "$mark" "$mark"  # an unknown command, answered after the list
  calc "$(date +%s.%N) - $start"
}
echo "tracker before signups:  $(usage "$tracker")  login_s=$(login_time $probe)  list_groups_s=$(session_call_time)"
calls signups --target "127.0.0.1:$tracker_port" --callers 300 --connections 10
echo "tracker under signups:   $(usage "$tracker")  login_s=$(login_time $probe)  list_groups_s=$(session_call_time)"
wait "$flooder" || true
flooder=
echo "  attack: $(cat "$work/flood.count")"
sleep 5  # as unflood
echo "tracker after signups:   $(usage "$tracker")  login_s=$(login_time $probe)  list_groups_s=$(session_call_time)"

echo "seeder before stalled:   $(usage "$alice_pid")  download_s=$(download quiet3)"
calls stalled --target "127.0.0.1:$tracker_port" --user bob --password pw-bob --file f.bin
echo "seeder under stalled:    $(usage "$alice_pid")  download_s=$(download stalled)"
unflood
echo "seeder after stalled:    $(usage "$alice_pid")  download_s=$(download again3)"
