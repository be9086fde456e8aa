#!/usr/bin/env bash
# Download benchmark: creates a random file, starts a tracker and N seeders on
# loopback, downloads the file once, and prints one line:
#   groupshare tls=on size_mib=1024 seeders=4 seconds=4.10 mib_per_s=249.8 peak_rss_mib=80.1 ...
# The time runs from the download_file command to the completed file, whose
# whole SHA1 was checked. After each run, unless --no_reference, the same
# download with libtorrent (bench/libtorrent_reference.py) on the same file;
# the machine is shared and noisy, so runs alternate and the last line gives
# the medians and their ratio.
#   bench/download_bench.sh [--size_mib N] [--seeders N] [--runs N] [--no_reference]
#                           [--plaintext_too] [--perf FILE] [--pause SECONDS] [--log_dir DIR]
#                           [--no_sha_extensions]
# groupshare runs over TLS, its default. --plaintext_too runs a second
# tracker, seeders and downloader with --plaintext beside them, and each run
# downloads over both, so that the medians give what TLS costs.
# --perf records the downloader's first run with perf (call graphs) into FILE.
# --pause waits that long before each groupshare run (the slow mode of a
# client that sat idle).
# --log_dir keeps the downloading client's log and shell output there.
# --no_sha_extensions hashes as a CPU without the SHA extensions does, in
# every process (libtorrent's OpenSSL too): a figure for such machines.
# Exit status 3: the downloading client died (bench/download_soak.sh counts
# these).
# Run from the repository after scripts/setup.sh; the reference needs
# Debian's python3-libtorrent.
set -euo pipefail
size_mib=1024
seeders=4
reference=1
plaintext_too=0
runs=3
perf_out=
pause=0
log_dir=
while [ $# -gt 0 ]; do
  case $1 in
    --size_mib) size_mib=$2; shift 2 ;;
    --seeders) seeders=$2; shift 2 ;;
    --no_reference) reference=0; shift ;;
    --plaintext_too) plaintext_too=1; shift ;;
    --runs) runs=$2; shift 2 ;;
    --perf) perf_out=$2; shift 2 ;;
    --pause) pause=$2; shift 2 ;;
    --log_dir) log_dir=$2; shift 2 ;;
    --no_sha_extensions)
      # OpenSSL's capability mask: the SHA bit of CPUID leaf 7 off.
      export OPENSSL_ia32cap=":~0x20000000" GROUPSHARE_NO_SHA_EXTENSIONS=1
      shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
bin=$PWD/${BUILD_DIR:-build}/bin
[ -x "$bin/client" ] || { echo "build first: scripts/setup.sh" >&2; exit 1; }
work=$(mktemp -d -t groupshare-bench.XXXXXX)
. scripts/cluster.sh
keep_logs() {
  [ -n "$log_dir" ] || return 0
  mkdir -p "$log_dir"
  cp "$work/dl/client.log" "$work/dl.out" "$log_dir/" 2>/dev/null || true
}
trap 'keep_logs; stop_cluster; rm -rf "$work"' EXIT


# CPU seconds (user + system) process $1 has used so far.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
# Minor page faults of process $1 so far: memory the allocator gave back
# and took again costs one each 4 KiB.
faults_of() { awk '{print $10}' "/proc/$1/stat"; }

head -c "$((size_mib << 20))" /dev/urandom > "$work/file.bin"
# A tracker, seeders and a downloader, their names prefixed with $1 ("" for
# TLS, "p" for plaintext); further arguments are flags for all of them.
declare -A dl_pid_of seeder_pids_of
setup_mode() {
  local p=$1 i
  shift
  tname=${p}tracker
  start_tracker --log_level warning "$@"
  start_client "${p}owner" "$@"
  new_user "${p}owner"
  expect "${p}owner" "create_group bench" "group bench created"
  local key=${p:-_}  # an associative array takes no empty key
  seeder_pids_of[$key]=
  for i in $(seq "$seeders"); do
    start_client "${p}s$i" "$@"
    seeder_pids_of[$key]+="${pids[-1]} "
    new_user "${p}s$i"
    admit "${p}owner" "${p}s$i" bench
    expect "${p}s$i" "upload_file $work/file.bin bench" "shared"
  done
  start_client "${p}dl" "$@"
  dl_pid_of[$key]=${pids[-1]}
  new_user "${p}dl"
  admit "${p}owner" "${p}dl" bench
  tname=
}
setup_mode ""
[ "$plaintext_too" = 1 ] && setup_mode p --plaintext

# One download by the downloader of mode $1 (see setup_mode): prints the
# groupshare line and adds its seconds to $work/ours$1.
download_once() {
  local m=$1
  local dl=${m}dl dl_pid=${dl_pid_of[${m:-_}]}
  local -a seeder_pids
  read -r -a seeder_pids <<<"${seeder_pids_of[${m:-_}]}"
  sleep "$pause"
  : > "$work/$dl.out"
  local dl_cpu0 seed_cpu0 start end dl_cpu seed_cpu rss_kib p t deadline faults0
  dl_cpu0=$(cpu_of "$dl_pid")
  faults0=$(faults_of "$dl_pid")
  seed_cpu0=0
  for p in "${seeder_pids[@]}"; do seed_cpu0=$(calc "$seed_cpu0 + $(cpu_of "$p")"); done
  start=$(date +%s.%N)
  threads0=$(awk '/^Threads/ {print $2}' "/proc/$dl_pid/status")
  peak_threads=0
  local perf_pid=
  if [ -n "$perf_out" ]; then
    perf record -q -g -p "$dl_pid" -o "$perf_out" 2>/dev/null & perf_pid=$!
    perf_out=  # the first run only
    sleep 0.5
  fi
  expect "$dl" "download_file bench file.bin $work/out.bin" "downloading file.bin"
  # Polling costs CPU the download needs, so poll slowly and take the end
  # time from the completion line of the client's log instead.
  deadline=$((SECONDS + 600))
  until state=$(grep -m1 -o "^\[[CF]\]" "$work/$dl.out"); do
    [ $SECONDS -lt $deadline ] || { echo "bench: the download did not finish" >&2; exit 1; }
    if ! kill -0 "$dl_pid" 2>/dev/null; then
      wait "$dl_pid" && rc=0 || rc=$?
      echo "bench: the downloading client died (exit status $rc)" >&2
      exit 3
    fi
    cmd "$dl" show_downloads
    # Threads the download added to the client, at their peak.
    t=$(( $(awk '/^Threads/ {print $2}' "/proc/$dl_pid/status") - threads0 ))
    [ "$t" -gt "$peak_threads" ] && peak_threads=$t
    sleep 0.2
  done
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
  [ "$state" = "[C]" ] || { grep "^\[F\]" "$work/$dl.out" >&2; exit 1; }
  end=$(grep "download of file.bin in bench complete" "$work/$dl/client.log" | tail -1 | cut -d' ' -f1)
  end=$(date -d "$end" +%s.%N)
  dl_cpu=$(calc "$(cpu_of "$dl_pid") - $dl_cpu0")
  seed_cpu=$(calc "0 - $seed_cpu0")
  for p in "${seeder_pids[@]}"; do seed_cpu=$(calc "$seed_cpu + $(cpu_of "$p")"); done
  rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$dl_pid/status")
  cmp -s "$work/file.bin" "$work/out.bin" || { echo "bench: the download differs" >&2; exit 1; }
  t=$(calc "$end - $start")
  echo "$t" >> "$work/ours$m"
  printf "groupshare tls=%s size_mib=%d seeders=%d seconds=%.2f mib_per_s=%.1f peak_rss_mib=%.1f cpu_downloader=%.2f cpu_seeders=%.2f cpu_s_per_gib=%.2f threads=%d page_faults=%d\n" \
    "$([ -z "$m" ] && echo on || echo off)" "$size_mib" "$seeders" "$t" "$(calc "$size_mib / $t")" "$(calc "$rss_kib / 1024")" \
    "$dl_cpu" "$seed_cpu" "$(calc "$dl_cpu * 1024 / $size_mib")" "$peak_threads" \
    "$(( $(faults_of "$dl_pid") - faults0 ))"
  # Ready for the next run: the downloader shares the file now; forget it.
  expect "$dl" "stop_share bench file.bin" "stopped sharing"
  rm -f "$work/out.bin"
}


for run in $(seq "$runs"); do
  download_once ""
  [ "$plaintext_too" = 1 ] && download_once p
  if [ "$reference" = 1 ]; then
    line=$(/usr/bin/python3 bench/libtorrent_reference.py "$work/file.bin" "$seeders")
    echo "$line"
    echo "$line" | sed 's/.*seconds=\([0-9.]*\).*/\1/' >> "$work/theirs"
  fi
done
ours=$(median "$work/ours")
summary=$(printf "median seconds: groupshare=%.2f (%.1f MiB/s)" "$ours" "$(calc "$size_mib / $ours")")
if [ "$plaintext_too" = 1 ]; then
  plain=$(median "$work/oursp")
  summary+=$(printf " plaintext=%.2f (%.1f MiB/s) tls_cost=%.2f" "$plain" \
    "$(calc "$size_mib / $plain")" "$(calc "$ours / $plain")")
fi
if [ "$reference" = 1 ]; then
  theirs=$(median "$work/theirs")
  summary+=$(printf " libtorrent=%.2f (%.1f MiB/s) speedup=%.2f" "$theirs" \
    "$(calc "$size_mib / $theirs")" "$(calc "$theirs / $ours")")
fi
echo "$summary"
