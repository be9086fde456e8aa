#!/usr/bin/env bash
# Flash-crowd benchmark: one seeder and N downloaders who all ask for the same
# file at once, every client's upload capped at R. The seeder alone needs F/R
# to send one copy; a swarm that passes pieces on as soon as they are checked
# finishes all N downloads in not much more. Prints one line per run:
#   groupshare size_mib=64 downloaders=8 rate_mib_s=16 slowest_s=5.1 f_over_r_s=4.0 ratio=1.28
# then, unless --no_reference, the same with libtorrent
# (bench/libtorrent_flash_crowd.py, every session capped alike), and the
# medians of both ratios.
#   bench/flash_crowd.sh [--size_mib F] [--downloaders N] [--rate_mib R] [--runs K]
#                        [--no_reference] [--perf FILE]
# --perf records the whole machine with perf during the first run into FILE.
# Run from the repository after scripts/setup.sh; the reference needs
# Debian's python3-libtorrent.
set -euo pipefail
size_mib=64
downloaders=8
rate_mib=16
runs=3
reference=1
perf_out=
while [ $# -gt 0 ]; do
  case $1 in
    --size_mib) size_mib=$2; shift 2 ;;
    --downloaders) downloaders=$2; shift 2 ;;
    --rate_mib) rate_mib=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --no_reference) reference=0; shift ;;
    --perf) perf_out=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
bin=$PWD/${BUILD_DIR:-build}/bin
[ -x "$bin/client" ] || { echo "build first: scripts/setup.sh" >&2; exit 1; }
work=$(mktemp -d -t groupshare-flash.XXXXXX)
. scripts/cluster.sh
trap 'stop_cluster; [ -n "${KEEP_WORK:-}" ] && echo "kept $work" >&2 || rm -rf "$work"' EXIT


rate_kib=$((rate_mib * 1024))
f_over_r=$(calc "$size_mib / $rate_mib")
head -c "$((size_mib << 20))" /dev/urandom > "$work/file.bin"
start_tracker --log_level warning
start_client seed --max_upload_rate "$rate_kib"
new_user seed
expect seed "create_group crowd" "group crowd created"
expect seed "upload_file $work/file.bin crowd" "shared"
names=()
for i in $(seq "$downloaders"); do
  start_client "d$i" --max_upload_rate "$rate_kib"
  new_user "d$i"
  admit seed "d$i" crowd
  names+=("d$i")
done

# One run: every downloader asks at once; prints the groupshare line and
# appends the ratio to $work/ours.
crowd_once() {
  local run=$1 name start slowest=0 end t deadline
  local perf_pid=
  if [ -n "$perf_out" ]; then
    perf record -q -a -g -o "$perf_out" 2>/dev/null & perf_pid=$!
    perf_out=  # the first run only
    sleep 0.5
  fi
  start=$(date +%s.%N)
  for name in "${names[@]}"; do cmd "$name" "download_file crowd file.bin $work/$name-$run.bin"; done
  deadline=$((SECONDS + 600))
  for name in "${names[@]}"; do
    until grep -q "download of file.bin in crowd complete" "$work/$name/client.log" 2>/dev/null &&
          [ "$(grep -c "download of file.bin in crowd complete" "$work/$name/client.log")" -ge "$run" ]; do
      [ $SECONDS -lt $deadline ] || { echo "bench: $name did not finish" >&2; exit 1; }
      # Read from the files the clients write, not by commands: the
      # downloaders' CPU is all theirs.
      if grep -q "^notice: download of .* failed" "$work/$name.out"; then
        grep "^notice: download of .* failed" "$work/$name.out" >&2
        exit 1
      fi
      sleep 0.2
    done
    end=$(grep "download of file.bin in crowd complete" "$work/$name/client.log" | tail -1 | cut -d' ' -f1)
    t=$(calc "$(date -d "$end" +%s.%N) - $start")
    slowest=$(awk -v a="$slowest" -v b="$t" 'BEGIN { print (b > a) ? b : a }')
    cmp -s "$work/file.bin" "$work/$name-$run.bin" || { echo "bench: $name's copy differs" >&2; exit 1; }
  done
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
  local ratio
  ratio=$(calc "$slowest / $f_over_r")
  echo "$ratio" >> "$work/ours"
  printf "groupshare size_mib=%d downloaders=%d rate_mib_s=%d slowest_s=%.2f f_over_r_s=%.2f ratio=%.2f\n" \
    "$size_mib" "$downloaders" "$rate_mib" "$slowest" "$f_over_r" "$ratio"
  # Ready for the next run: the copies are shared now; forget them.
  for name in "${names[@]}"; do
    expect "$name" "stop_share crowd file.bin" "stopped sharing"
    rm -f "$work/$name-$run.bin"
  done
}

for run in $(seq "$runs"); do
  crowd_once "$run"
  if [ "$reference" = 1 ]; then
    line=$(/usr/bin/python3 bench/libtorrent_flash_crowd.py "$work/file.bin" "$downloaders" "$rate_mib")
    echo "$line"
    echo "$line" | sed 's/.*ratio=\([0-9.]*\).*/\1/' >> "$work/theirs"
  fi
done
if [ "$reference" = 1 ]; then
  printf "median slowest/(F/R): groupshare=%.2f libtorrent=%.2f\n" \
    "$(median "$work/ours")" "$(median "$work/theirs")"
else
  printf "median slowest/(F/R): groupshare=%.2f\n" "$(median "$work/ours")"
fi
