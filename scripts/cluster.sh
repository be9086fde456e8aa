# Shell helpers to run a tracker and clients on loopback in the background,
# each client's commands fed through a FIFO, and a little arithmetic. Sourced
# by scripts/demo.sh and the benchmarks; they set $bin and $work first.

pids=()
fds=()
declare -A fd_of

stop_cluster() {
  local fd p
  for fd in "${fds[@]:-}"; do [ -n "$fd" ] && eval "exec $fd>&-"; done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  wait 2>/dev/null || true
}

# Waits (at most $3 seconds, default 120) until file $1 has a line matching $2.
wait_for() {
  local deadline=$((SECONDS + ${3:-120}))
  until grep -q -- "$2" "$1" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "timed out waiting for '$2' in $1:" >&2
      cat "$1" >&2
      return 1
    fi
    sleep 0.02
  done
}

# Starts a tracker on a free port; writes $work/tracker_info.txt for clients.
# With $tname set, its files are named after it instead of "tracker"
# ($work/<tname>_info.txt, ...), so that two trackers can run side by side;
# clients started meanwhile use it.
start_tracker() {
  local t=${tname:-tracker}
  echo "127.0.0.1:0" > "$work/$t.bind.txt"
  "$bin/tracker" "$work/$t.bind.txt" 1 --db "$work/$t.db" --port_file "$work/$t.port" \
    "$@" </dev/null >"$work/$t.out" 2>"$work/$t.log" &
  pids+=($!)
  local deadline=$((SECONDS + 30))
  until [ -s "$work/$t.port" ]; do
    [ $SECONDS -lt $deadline ] || { echo "the tracker did not start:" >&2; cat "$work/$t.log" >&2; return 1; }
    sleep 0.02
  done
  echo "127.0.0.1:$(cat "$work/$t.port")" > "$work/${t}_info.txt"
}

# Starts client $1 (its state in $work/$1, its output in $work/$1.out);
# further arguments are flags.
start_client() {
  local name=$1 fd
  shift
  mkfifo "$work/$name.in"
  HOME=$work ${CLIENT_WRAPPER:-} "$bin/client" 127.0.0.1:0 "$work/${tname:-tracker}_info.txt" \
    --state_dir "$work/$name" "$@" <"$work/$name.in" >>"$work/$name.out" 2>&1 &
  pids+=($!)
  exec {fd}>"$work/$name.in"
  fds+=("$fd")
  fd_of[$name]=$fd
}

cmd() { echo "$2" >&"${fd_of[$1]}"; }

# Client $1 runs command $2 and waits for an answer matching $3.
expect() { cmd "$1" "$2"; wait_for "$work/$1.out" "$3"; }

# Creates and logs in user $1 on client $1.
new_user() {
  expect "$1" "create_user $1 pw-$1" "user $1 created"
  expect "$1" "login $1 pw-$1" "logged in as $1"
}

# Owner $1 lets $2 into group $3.
admit() {
  expect "$2" "join_group $3" "asked to join $3"
  expect "$1" "accept_request $3 $2" "$2 is now a member of $3"
}

# Arithmetic without bc: calc "1 / 3" prints 0.333333.
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

# The median of the numbers in file $1, one a line.
median() { sort -n "$1" | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
