#!/usr/bin/env bash
# Soak: the download benchmark's download again and again (no reference),
# counting what went wrong: downloading clients that died, downloads that
# failed, and the peers the downloader dropped, by reason. A client that
# died is counted and the runs go on with a new cluster.
#   bench/download_soak.sh [--runs N] [--seeders N] [--size_mib N]
# Prints one line a run, then:
#   soak size_mib=1024 seeders=1 runs=50 completed=50 crashed=0 failed=0 dropped=0
# and the drop reasons with their counts. Exit status 1 when anything crashed
# or failed.
set -euo pipefail
runs=50
seeders=1
size_mib=1024
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --seeders) seeders=$2; shift 2 ;;
    --size_mib) size_mib=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
logs=$(mktemp -d -t groupshare-soak.XXXXXX)
trap 'rm -rf "$logs"' EXIT
done_runs=0 crashed=0 failed=0 attempt=0
while [ "$done_runs" -lt "$runs" ]; do
  attempt=$((attempt + 1))
  out=$logs/$attempt
  rc=0
  bench/download_bench.sh --no_reference --runs "$((runs - done_runs))" --seeders "$seeders" \
    --size_mib "$size_mib" --log_dir "$out" >"$out.txt" 2>&1 || rc=$?
  grep "^groupshare " "$out.txt" || true
  done_runs=$((done_runs + $(grep -c "^groupshare " "$out.txt" || true)))
  case $rc in
    0) ;;
    3) crashed=$((crashed + 1)); done_runs=$((done_runs + 1)); grep "^bench:" "$out.txt" ;;
    *) failed=$((failed + 1)); done_runs=$((done_runs + 1)); tail -5 "$out.txt" ;;
  esac
done
completed=$(cat "$logs"/*.txt | grep -c "^groupshare " || true)
dropped=$(cat "$logs"/*/client.log 2>/dev/null | grep -c "dropped peer" || true)
echo "soak size_mib=$size_mib seeders=$seeders runs=$runs completed=$completed crashed=$crashed failed=$failed dropped=$dropped"
cat "$logs"/*/client.log 2>/dev/null | grep "dropped peer" | sed 's/.*dropped peer [^:]*:[0-9]*: //' |
  sort | uniq -c | sed 's/^ */  dropped because: /' || true
[ "$crashed" = 0 ] && [ "$failed" = 0 ]
