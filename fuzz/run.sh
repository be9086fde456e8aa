#!/usr/bin/env bash
# Runs every libFuzzer target of BUILD_DIR (a GS_FUZZ=ON build) for
# FUZZ_SECONDS each (default 15), as many at once as there are cores
# (FUZZ_JOBS), each starting from its corpus in
# fuzz/corpus/<target>. New inputs go to a scratch folder, not the
# repository; a crash fails the run and names the input to keep: copy it
# into fuzz/corpus/<target>/ with the fix, and every later run replays it.
#   BUILD_DIR=build-asan fuzz/run.sh [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BUILD_DIR:-build-asan}/bin
seconds=${FUZZ_SECONDS:-15}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(ticket_fuzz tracker_info_fuzz ids_fuzz bitfield_fuzz
                                     shell_words_fuzz piece_request_fuzz file_info_fuzz)
# Targets run side by side, FUZZ_JOBS (default: the cores) at a time.
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
scratch=$(mktemp -d -t groupshare-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
fuzz_one() {  # target; leaves $scratch/<target>.failed when it found a crash
  local t=$1
  mkdir -p "$scratch/$t" "$scratch/$t-crash"
  if "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
       -artifact_prefix="$scratch/$t-crash/" "$scratch/$t" "fuzz/corpus/$t" \
       >"$scratch/$t.log" 2>&1; then
    echo "fuzz: $t: $(grep -o 'Done [0-9]* runs' "$scratch/$t.log" | tail -1 || true), no crash"
  else
    touch "$scratch/$t.failed"
    echo "fuzz: $t FAILED:" >&2
    tail -40 "$scratch/$t.log" >&2
    for f in "$scratch/$t-crash"/*; do
      [ -e "$f" ] || continue
      mkdir -p fuzz/crashes
      cp "$f" "fuzz/crashes/$t-$(basename "$f")"
      echo "fuzz: the input is fuzz/crashes/$t-$(basename "$f"); after the fix, move it to fuzz/corpus/$t/" >&2
    done
  fi
  return 0
}
running=0
for t in "${targets[@]}"; do
  fuzz_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait
failed=0
for t in "${targets[@]}"; do
  [ -e "$scratch/$t.failed" ] && failed=1
done
exit $failed
