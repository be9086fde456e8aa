#!/usr/bin/env bash
# Download benchmark: creates a random file, starts a tracker and N seeders on
# loopback, downloads the file once, and prints one line:
#   groupshare size_mib=1024 seeders=4 seconds=4.10 mib_per_s=249.8 peak_rss_mib=80.1 ...
# The time runs from the download_file command to the completed file, whose
# whole SHA1 was checked. Then, unless --no_reference, the same download with
# libtorrent (bench/libtorrent_reference.py) on the same file, and the ratio:
# the machine is shared and noisy, so only numbers of one invocation compare.
#   bench/download_bench.sh [--size_mib N] [--seeders N] [--no_reference]
# Run from the repository after scripts/setup.sh; the reference needs
# Debian's python3-libtorrent.
set -euo pipefail
size_mib=1024
seeders=4
reference=1
while [ $# -gt 0 ]; do
  case $1 in
    --size_mib) size_mib=$2; shift 2 ;;
    --seeders) seeders=$2; shift 2 ;;
    --no_reference) reference=0; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
bin=$PWD/${BUILD_DIR:-build}/bin
[ -x "$bin/client" ] || { echo "build first: scripts/setup.sh" >&2; exit 1; }
work=$(mktemp -d -t groupshare-bench.XXXXXX)
. scripts/cluster.sh
trap 'stop_cluster; rm -rf "$work"' EXIT

# CPU seconds (user + system) process $1 has used so far.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }

head -c "$((size_mib << 20))" /dev/urandom > "$work/file.bin"
start_tracker --log_level warning
start_client owner
new_user owner
expect owner "create_group bench" "group bench created"
seeder_pids=()
for i in $(seq "$seeders"); do
  start_client "s$i"
  seeder_pids+=("${pids[-1]}")
  new_user "s$i"
  admit owner "s$i" bench
  expect "s$i" "upload_file $work/file.bin bench" "shared"
done
start_client dl
dl_pid=${pids[-1]}
new_user dl
admit owner dl bench

dl_cpu0=$(cpu_of "$dl_pid")
seed_cpu0=0
for p in "${seeder_pids[@]}"; do seed_cpu0=$(echo "$seed_cpu0 + $(cpu_of "$p")" | bc); done
start=$(date +%s.%N)
expect dl "download_file bench file.bin $work/out.bin" "downloading file.bin"
deadline=$((SECONDS + 600))
until grep -q "^\[C\]" "$work/dl.out"; do
  if grep "^\[F\]" "$work/dl.out" >&2; then exit 1; fi
  [ $SECONDS -lt $deadline ] || { echo "bench: the download did not finish" >&2; exit 1; }
  cmd dl show_downloads
  sleep 0.02
done
end=$(date +%s.%N)
dl_cpu=$(echo "$(cpu_of "$dl_pid") - $dl_cpu0" | bc)
seed_cpu=$(echo "0 - $seed_cpu0" | bc)
for p in "${seeder_pids[@]}"; do seed_cpu=$(echo "$seed_cpu + $(cpu_of "$p")" | bc); done
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$dl_pid/status")
cmp -s "$work/file.bin" "$work/out.bin" || { echo "bench: the download differs" >&2; exit 1; }
ours=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }')
printf "groupshare size_mib=%d seeders=%d seconds=%.2f mib_per_s=%.1f peak_rss_mib=%.1f cpu_downloader=%.2f cpu_seeders=%.2f\n" \
  "$size_mib" "$seeders" "$ours" "$(echo "$size_mib / $ours" | bc -l)" "$(echo "$rss_kib / 1024" | bc -l)" \
  "$dl_cpu" "$seed_cpu"
stop_cluster
rm -f "$work/out.bin"

if [ "$reference" = 1 ]; then
  line=$(/usr/bin/python3 bench/libtorrent_reference.py "$work/file.bin" "$seeders")
  echo "$line"
  theirs=$(echo "$line" | sed 's/.*seconds=\([0-9.]*\).*/\1/')
  printf "speedup_vs_libtorrent=%.2f\n" "$(echo "$theirs / $ours" | bc -l)"
fi
