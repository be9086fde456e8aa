#!/usr/bin/env bash
# Tracker benchmark: starts a tracker on loopback, on SQLite and then on a
# local PostgreSQL server (tests/testing/postgres.sh, fsync on), and drives
# it with bench/tracker_bench.cc (gRPC's async API, every answer's status
# checked). For each back-end it prints, one line a run:
#   - grpc.health.v1.Health/Check (gRPC's own answer: the reference line),
#     ListFiles of a group of 100 files, of 1 file, GetFilePeers and
#     KeepAlive, 64 calls in flight over 4 connections, and each call's
#     rate as a share of Check's ("ratio_to_check"); every line gives the
#     tracker's CPU time per call too (server_cpu_us_per_call), steadier
#     than rates on a shared machine;
#   - ListFiles of 100 files with 16 in flight (latency);
#   - ListFiles of 1 file with 16 in flight while 32 threads log in with wrong
#     passwords (a login storm; the tracker hashes with its default cost),
#     once as it comes (the backoff per address soon refuses it unhashed)
#     and once with the backoffs out of the way (every guess is hashed: what
#     a storm from many addresses would cost).
# Every call goes over TLS, as clients make them by default. Then, on SQLite,
# the cost of setting up a connection: 200 new connections one after another
# (TCP, the TLS handshake, HTTP/2 and one Check), over TLS and to a tracker
# run with --plaintext.
#   bench/tracker_bench.sh [--seconds N] [--backend sqlite|postgres|both]
# Run from the repository after scripts/setup.sh (PostgreSQL comes with the
# test packages: scripts/test.sh installs it).
set -euo pipefail
seconds=10
backend=both
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
repo=$PWD
bin=$PWD/${BUILD_DIR:-build}/bin
cmake --build "${BUILD_DIR:-build}" --target tracker_bench >/dev/null ||
  { echo "build first: scripts/setup.sh" >&2; exit 1; }
work=$(mktemp -d -t groupshare-tracker-bench.XXXXXX)
chmod 0755 "$work"
. scripts/cluster.sh
trap 'stop_cluster; "$repo/tests/testing/postgres.sh" stop "$work/pg" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

tracker_at() {  # tracker flags...; sets $target
  rm -f "$work/tracker.port"
  start_tracker --log_level warning --cert_file "$work/tracker.cert.pem" "$@"
  target=127.0.0.1:$(cat "$work/tracker.port")
}

measure() {  # label, tracker flags...
  local label=$1; shift
  rm -f "$work/tracker.db"*
  tracker_at "$@"
  # Over TLS, as clients call it by default.
  local load=("$bin/tracker_bench" --target "$target" --seconds "$seconds" --connections 4
              --prefix bench --cacert "$work/tracker.cert.pem" --server_pid "${pids[-1]}")
  "${load[@]}" --in_flight 64 --calls Check,ListFiles100,ListFiles1,GetFilePeers,KeepAlive |
    tee "$work/rates" | sed "s/^/$label /"
  awk -v label="$label" '
    { for (i = 1; i <= NF; ++i) if ($i ~ /^per_s=/) rate[$1] = substr($i, 7) }
    END { for (c in rate) if (c != "Check" && rate["Check"] > 0)
            printf "%s ratio_to_check %s=%.2f\n", label, c, rate[c] / rate["Check"] }' \
    "$work/rates" | sort
  "${load[@]}" --in_flight 16 --calls ListFiles100 | sed "s/^/$label /"
  "${load[@]}" --in_flight 16 --calls ListFiles1 --login_storm 32 |
    sed "s/^/$label login-storm /"
  stop_cluster
  pids=()
  tracker_at "$@" --failed_logins_per_user 1000000 --failed_logins_per_source 1000000
  load[2]=$target
  load[-1]=${pids[-1]}
  "${load[@]}" --in_flight 16 --calls ListFiles1 --login_storm 32 |
    sed "s/^/$label login-storm-every-guess-hashed /"
  stop_cluster
  pids=()
}

if [ "$backend" != postgres ]; then
  measure sqlite
fi
if [ "$backend" != postgres ]; then
  rm -f "$work/tracker.db"*
  tracker_at
  "$bin/tracker_bench" --target "$target" --handshakes 200 --cacert "$work/tracker.cert.pem" |
    sed "s/^/sqlite /"
  stop_cluster
  pids=()
  rm -f "$work/tracker.db"*
  tracker_at --plaintext
  "$bin/tracker_bench" --target "$target" --handshakes 200 | sed "s/^/sqlite /"
  stop_cluster
  pids=()
fi
if [ "$backend" != sqlite ]; then
  admin=$(GS_PG_FSYNC=on tests/testing/postgres.sh start "$work/pg" 127.0.0.1 "$(python3 -c '
import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')")
  psql "$admin" -qc "CREATE DATABASE bench"
  measure postgres --db "${admin/dbname=postgres/dbname=bench}"
fi
