#!/usr/bin/env bash
# Sets up groupshare (scripts/setup.sh), then runs a tracker and four clients
# on loopback: alice, bob and carol share one generated file in a group, and
# dave downloads it from all three at once. Prints each shell's session, the
# download's progress and the SHA1 check, and stops everything at the end.
#   scripts/demo.sh [--size_mib N]     (default 256)
set -euo pipefail
size_mib=256
[ "${1:-}" = "--size_mib" ] && size_mib=$2
cd "$(dirname "$0")/.."
scripts/setup.sh
bin=$PWD/${BUILD_DIR:-build}/bin
work=$(mktemp -d -t groupshare-demo.XXXXXX)
. scripts/cluster.sh
trap 'stop_cluster; rm -rf "$work"' EXIT

start_tracker
echo "demo: tracker listening on $(cat "$work/tracker_info.txt")"
echo "demo: generating a ${size_mib} MiB file"
head -c "$((size_mib << 20))" /dev/urandom > "$work/film.bin"

# The seeders send at most 64 MiB/s each, so the download is slow enough to
# watch; dave takes different pieces from all three at once.
for who in alice bob carol; do start_client "$who" --max_upload_rate 65536; done
start_client dave
for who in alice bob carol dave; do new_user "$who"; done
expect alice "create_group movies" "group movies created"
for who in bob carol dave; do admit alice "$who" movies; done
for who in alice bob carol; do
  mkdir -p "$work/$who-files"
  cp "$work/film.bin" "$work/$who-files/film.bin"
  expect "$who" "upload_file $work/$who-files/film.bin movies" "shared"
done
expect dave "list_files movies" "film.bin"
mkdir "$work/downloads"
expect dave "download_file movies film.bin $work/downloads" "downloading"
deadline=$((SECONDS + 300))
shown=""
columns=$( (tput cols || echo 80) 2>/dev/null)
until grep -q '^\[C\]\|^\[F\]' "$work/dave.out"; do
  [ $SECONDS -lt $deadline ] || { echo "demo: the download did not finish" >&2; exit 1; }
  cmd dave show_downloads
  sleep 0.5
  line=$(grep '^\[D\]' "$work/dave.out" | tail -1 || true)
  # Each state once: a show_downloads whose answer has not come yet
  # repeats the one before.
  [ -z "$line" ] || [ "$line" = "$shown" ] && continue
  shown=$line
  line="dave> show_downloads: $line"
  if [ -t 1 ]; then printf '\r\033[K%s' "${line:0:$((columns - 1))}"; else echo "$line"; fi
done
[ -t 1 ] && echo
for who in alice bob carol dave; do
  echo
  echo "--- $who's shell"
  cat "$work/$who.out" | grep -v '^\[D\]' | uniq
done
echo
grep "bytes from" "$work/dave/client.log" | sed 's/.*complete: /demo: dave received /'
want=$(sha1sum < "$work/film.bin" | cut -d' ' -f1)
got=$(sha1sum < "$work/downloads/film.bin" | cut -d' ' -f1)
if [ "$want" = "$got" ]; then
  echo "demo: SHA1 of the download matches the original: $got"
else
  echo "demo: SHA1 MISMATCH: $got, expected $want" >&2
  exit 1
fi
echo "demo: done; stopping everything"
