#!/usr/bin/env bash
# Download benchmark: creates a random file, starts a tracker and N seeders on
# loopback, downloads the file once and prints one line:
#   size_mib=1024 seeders=4 seconds=2.10 mib_per_s=487.6 peak_rss_mib=61.2
# The time runs from the download_file command to the completed, SHA1-checked
# file. Run it from the repository after scripts/setup.sh.
#   bench/download_bench.sh [--size_mib N] [--seeders N] [--build DIR]
set -euo pipefail
size_mib=1024
seeders=4
build=build
while [ $# -gt 0 ]; do
  case $1 in
    --size_mib) size_mib=$2; shift 2 ;;
    --seeders) seeders=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
bin=$PWD/$build/bin
[ -x "$bin/client" ] || { echo "build first: scripts/setup.sh" >&2; exit 1; }

work=$(mktemp -d -t groupshare-bench.XXXXXX)
pids=()
cleanup() {
  for fd in "${fds[@]:-}"; do [ -n "$fd" ] && eval "exec $fd>&-"; done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fds=()

# Waits (at most 120 s) until file $1 has a line matching $2.
wait_for() {
  local deadline=$((SECONDS + 120))
  until grep -q -- "$2" "$1" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "bench: timed out waiting for '$2' in $1" >&2; cat "$1" >&2; exit 1; }
    sleep 0.02
  done
}

# Starts a client named $1; its commands go to fd ${fds[$1]} via cmd_$1.
declare -A fd_of
start_client() {
  local name=$1
  mkfifo "$work/$name.in"
  HOME=$work ${CLIENT_WRAPPER:-} "$bin/client" 127.0.0.1:0 "$work/tracker_info.txt" --state_dir "$work/$name" ${CLIENT_FLAGS:-} \
    <"$work/$name.in" >"$work/$name.out" 2>&1 &
  pids+=($!)
  local fd
  exec {fd}>"$work/$name.in"
  fds+=("$fd")
  fd_of[$name]=$fd
}
cmd() { echo "$2" >&"${fd_of[$1]}"; }

head -c "$((size_mib << 20))" /dev/urandom > "$work/file.bin"

echo "127.0.0.1:0" > "$work/bind.txt"
"$bin/tracker" "$work/bind.txt" 1 --db "$work/tracker.db" --port_file "$work/port" \
  --log_level warning </dev/null >/dev/null 2>"$work/tracker.log" &
pids+=($!)
deadline=$((SECONDS + 30))
until [ -s "$work/port" ]; do [ $SECONDS -lt $deadline ] || exit 1; sleep 0.02; done
echo "127.0.0.1:$(cat "$work/port")" > "$work/tracker_info.txt"

start_client owner
cmd owner "create_user owner pw"
cmd owner "login owner pw"
cmd owner "create_group bench"
wait_for "$work/owner.out" "group bench created"
for i in $(seq "$seeders"); do
  start_client "s$i"
  cmd "s$i" "create_user s$i pw"
  cmd "s$i" "login s$i pw"
  cmd "s$i" "join_group bench"
  wait_for "$work/s$i.out" "asked to join"
  cmd owner "accept_request bench s$i"
  wait_for "$work/owner.out" "s$i is now a member"
  cmd "s$i" "upload_file $work/file.bin bench"
  wait_for "$work/s$i.out" "shared"
done
# The owner only administers the group; it shares nothing.
start_client dl
cmd dl "create_user dl pw"
cmd dl "login dl pw"
cmd dl "join_group bench"
wait_for "$work/dl.out" "asked to join"
cmd owner "accept_request bench dl"
wait_for "$work/owner.out" "dl is now a member"
dl_pid=${pids[-1]}

# CPU seconds (user + system) a process has used so far.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
seeder_pids=("${pids[@]:2:$seeders}")
seeders_cpu() { local t=0; for p in "${seeder_pids[@]}"; do t=$(echo "$t + $(cpu_of "$p")" | bc); done; echo "$t"; }
dl_cpu0=$(cpu_of "$dl_pid"); seed_cpu0=$(seeders_cpu)
start=$(date +%s.%N)
cmd dl "download_file bench file.bin $work/out.bin"
wait_for "$work/dl.out" "downloading file.bin"
deadline=$((SECONDS + 600))
until grep -q "^\[C\]" "$work/dl.out"; do
  grep "^\[F\]" "$work/dl.out" >&2 && exit 1
  [ $SECONDS -lt $deadline ] || { echo "bench: download did not finish" >&2; exit 1; }
  cmd dl "show_downloads"
  sleep 0.02
done
end=$(date +%s.%N)
dl_cpu=$(echo "$(cpu_of "$dl_pid") - $dl_cpu0" | bc); seed_cpu=$(echo "$(seeders_cpu) - $seed_cpu0" | bc)
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$dl_pid/status")
cmp -s "$work/file.bin" "$work/out.bin" || { echo "bench: the download differs" >&2; exit 1; }
awk -v s="$start" -v e="$end" -v mib="$size_mib" -v n="$seeders" -v rss="$rss_kib" \
  -v dc="$dl_cpu" -v sc="$seed_cpu" 'BEGIN {
  t = e - s; printf "groupshare size_mib=%d seeders=%d seconds=%.2f mib_per_s=%.1f peak_rss_mib=%.1f cpu_downloader=%.2f cpu_seeders=%.2f\n",
  mib, n, t, mib / t, rss / 1024, dc, sc }'
