#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server for tests, in a folder of the test's own.
#   postgres.sh start DIR [LISTEN_ADDRESS PORT]   prints a libpq conninfo
#   postgres.sh stop DIR
# Without an address it listens on a Unix socket in DIR only. PostgreSQL
# refuses to run as root: as root, the server runs as the 'postgres' user
# (made by Debian's package), which needs o+x on every folder above DIR.
set -euo pipefail
cmd=$1 dir=$2
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ]; then
  echo "error: PostgreSQL is not installed; run scripts/setup.sh (it installs postgresql)" >&2
  exit 1
fi
as_owner=()
if [ "$(id -u)" = 0 ]; then as_owner=(runuser -u postgres --); fi

case $cmd in
  start)
    address=${3:-} port=${4:-5432}
    mkdir -p "$dir"
    chmod 0755 "$dir"
    if [ "$(id -u)" = 0 ]; then
      chown postgres: "$dir"
      chmod o+x "$(dirname "$dir")"  # the test's own folder, made 0700
    fi
    "${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U groupshare --auth=trust \
      -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '$address'
port = $port
unix_socket_directories = '$dir'
fsync = off
max_connections = 100
CONF
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start \
      >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    echo "host=$dir port=$port user=groupshare dbname=postgres"
    ;;
  stop)
    [ -d "$dir/data" ] && "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop \
      >/dev/null 2>&1 || true
    ;;
  *) echo "usage: postgres.sh start|stop DIR [ADDRESS PORT]" >&2; exit 2 ;;
esac
