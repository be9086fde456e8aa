#!/usr/bin/env bash
# Throwaway PostgreSQL 15 servers for tests, each in a folder of the test's own.
#   postgres.sh start DIR [ADDRESS PORT]      a server; prints a libpq conninfo
#   postgres.sh primary DIR ADDRESS PORT      a server for a standby to stream from
#   postgres.sh require-sync DIR              from now on its commits wait for a
#                                             synchronous standby
#   postgres.sh standby DIR ADDRESS PORT PRIMARY_ADDRESS PRIMARY_PORT
#                                             a streaming standby (pg_basebackup -R)
#   postgres.sh promote DIR                   the standby becomes a primary
#   postgres.sh kill DIR                      SIGKILL, as a crash would
#   postgres.sh stop DIR
# Without an address a server listens on a Unix socket in DIR only. With
# GS_NETNS set, servers run in that network namespace. PostgreSQL refuses to
# run as root: as root, servers run as the 'postgres' user (made by Debian's
# package), which needs o+x on every folder above DIR.
set -euo pipefail
cmd=$1 dir=$2
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ]; then
  echo "error: PostgreSQL is not installed; run scripts/setup.sh (it installs postgresql)" >&2
  exit 1
fi
run=()
[ -n "${GS_NETNS:-}" ] && run=(ip netns exec "$GS_NETNS")
[ "$(id -u)" = 0 ] && run+=(runuser -u postgres --)

own_dir() {
  mkdir -p "$dir"
  chmod 0755 "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
    chmod o+x "$(dirname "$dir")"  # the test's own folder, made 0700
  fi
}

configure() {  # address port
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '$1'
port = $2
unix_socket_directories = '$dir'
fsync = ${GS_PG_FSYNC:-off}
max_connections = 100
wal_keep_size = 64MB
CONF
  # Hosts of a test are on loopback addresses; trust them.
  printf 'host all all 127.0.0.0/8 trust\nhost replication all 127.0.0.0/8 trust\n' \
    >>"$dir/data/pg_hba.conf"
}

start_server() {
  "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
    { cat "$dir/server.log" >&2; exit 1; }
}

case $cmd in
  start|primary)
    address=${3:-} port=${4:-5432}
    own_dir
    "${run[@]}" "$bin/initdb" -D "$dir/data" -U groupshare --auth=trust \
      -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    configure "$address" "$port"
    start_server
    echo "host=${address:-$dir} port=$port user=groupshare dbname=postgres"
    ;;
  standby)
    address=$3 port=$4 primary=$5 primary_port=$6
    own_dir
    "${run[@]}" "$bin/pg_basebackup" -h "$primary" -p "$primary_port" -U groupshare \
      -D "$dir/data" -R -X stream -c fast >"$dir/basebackup.log" 2>&1 ||
      { cat "$dir/basebackup.log" >&2; exit 1; }
    configure "$address" "$port"
    # Alone after a promotion, it commits without waiting for anybody.
    echo "synchronous_standby_names = ''" >>"$dir/data/postgresql.conf"
    start_server
    echo "host=$address port=$port user=groupshare dbname=postgres"
    ;;
  require-sync)
    # Nothing acknowledged is lost when the standby is promoted.
    echo "synchronous_standby_names = '*'" >>"$dir/data/postgresql.conf"
    "${run[@]}" "$bin/pg_ctl" -D "$dir/data" reload >/dev/null
    ;;
  promote)
    "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -w -t 60 promote >/dev/null
    ;;
  kill)
    [ -f "$dir/data/postmaster.pid" ] && kill -KILL "$(head -1 "$dir/data/postmaster.pid")"
    ;;
  stop)
    [ -d "$dir/data" ] && "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop \
      >/dev/null 2>&1 || true
    ;;
  *) echo "usage: postgres.sh start|primary|standby|require-sync|promote|kill|stop DIR ..." >&2
     exit 2 ;;
esac
